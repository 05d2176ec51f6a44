"""The environment of a `cairn dev` cluster as a shell file: DIR/env, written by `up`, printed by `cairn dev env`.

Sourcing it (``source "$(cairn dev env --path)"`` or ``eval "$(cairn dev env)"``) points kubectl and the
AWS clients at the cluster and puts the kubectl and helm that `cairn dev build` made first on PATH, so a
system's older kubectl does not answer instead.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path


def script(variables: Mapping[str, str], path_first: Sequence[Path] = ()) -> str:
    """`export` lines for `variables` (values quoted for the shell), then PATH with `path_first` in front."""
    lines = [f"export {name}={shlex.quote(value)}\n" for name, value in variables.items()]
    if path_first:
        lines.append(f'export PATH={":".join(shlex.quote(str(d)) for d in path_first)}:"$PATH"\n')
    return "".join(lines)


def source_hint(env_file: Path, default_file: Path) -> str:
    """The command that loads the environment of the cluster whose env file is `env_file`: the shortest
    that is right in a new shell (`--dir` only when the cluster is not where `cairn dev` looks by default)."""
    if env_file == default_file:
        return 'source "$(cairn dev env --path)"'
    return f'source "$(cairn dev env --path --dir {shlex.quote(str(env_file.parent))})"'
