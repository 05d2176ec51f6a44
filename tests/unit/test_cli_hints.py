"""Hints name a `cairn` the user's shell finds (`.venv/bin/cairn` before `. .venv/bin/activate`), and
`cairn runs list -q` prints run IDs alone, for `RUN_ID=$(cairn runs list -q --limit 1)`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.cli_runs import cairn_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A stand-in venv: bin/python and bin/cairn under tmp_path/proj/.venv."""
    bin_dir = tmp_path / "proj" / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").touch()
    (bin_dir / "cairn").touch()
    return bin_dir


@pytest.mark.parametrize(
    ("found", "cwd", "expected"),
    [
        ("{bin}/cairn", "{proj}", "cairn"),  # activated: PATH finds this very script
        (None, "{proj}", ".venv/bin/cairn"),  # not on PATH: the script, relative to the checkout
        ("/usr/local/bin/cairn", "{proj}", ".venv/bin/cairn"),  # another cairn on PATH: not that one
        (None, "/", "{bin}/cairn"),  # from elsewhere: the absolute path
        (None, "{proj}/sub", "{bin}/cairn"),
    ],
)
def test_a_hint_names_the_cairn_that_runs_now(venv: Path, found: str | None, cwd: str, expected: str) -> None:
    def fill(s: str) -> str:
        return s.format(bin=venv, proj=venv.parent.parent)

    got = cairn_command(fill(found) if found else None, str(venv / "python"), Path(fill(cwd)))
    assert got == fill(expected)


def test_without_a_cairn_script_the_hint_runs_the_module(tmp_path: Path) -> None:
    python = str(tmp_path / "bin" / "python")
    assert cairn_command(None, python, tmp_path) == f"{python} -m cairn.cli"
    assert cairn_command("/usr/bin/cairn", python, tmp_path) == "cairn"


def test_runs_list_quiet_prints_run_ids_newest_first(tmp_path: Path) -> None:
    path = os.defpath  # the system's default PATH: no venv on it, as before `. .venv/bin/activate`

    def cairn(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "cairn.cli", *args, "--home", str(tmp_path / "home")]
        environ = {**os.environ, "PATH": path, **env}
        return subprocess.run(argv, capture_output=True, text=True, env=environ, cwd=ROOT, timeout=60)

    assert cairn("runs", "list", "-q").stdout == ""  # none yet: nothing, not a table header
    job = f"{ROOT / 'examples' / 'unreliable.py'}:unreliable_job"
    first = cairn("run", job, CAIRN_UNRELIABLE="fail")
    second = cairn("run", job, CAIRN_UNRELIABLE="pass")
    ids = [p.stdout.split()[1].rstrip(":") for p in (first, second)]
    assert cairn("runs", "list", "-q").stdout.split() == ids[::-1]
    assert cairn("runs", "list", "-q", "--limit", "1").stdout == f"{ids[1]}\n"
    hint = cairn_command(shutil.which("cairn", path=path), sys.executable, ROOT)
    assert f"re-execute from failure with: {hint} reexecute {ids[0]} --from-failure" in first.stderr
