"""The local instance: a run store and an output store in one directory, and the one place that reads the
environment for them (`Instance.local`).

Layout of an instance directory (``$CAIRN_HOME``, else ``./.cairn``)::

    runs.db          the run store (`cairn.runstore`): runs, steps, each run's output index, mapping keys
    storage/         outputs, at <namespace>/<run_id>/<step>/<output>

What a run looks like read back is `cairn.records` (re-exported here: `RunRecord`, `StepRecord`); which run
lost its process, `cairn.liveness`.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cairn.errors import CairnError
from cairn.io import FilesystemIOManager, IOManager
from cairn.records import RunRecord, StepRecord
from cairn.runstore import SCHEMA, RunStore

__all__ = ["SCHEMA", "Instance", "InstanceSettings", "OutputStore", "RunRecord", "StepRecord", "settings_from_env"]


class OutputStore(enum.Enum):
    """Where `Instance.local` stores outputs (CAIRN_IO_MANAGER)."""

    FS = "fs"  # files under the instance directory
    S3 = "s3"  # S3, as the standard AWS variables and CAIRN_S3_BUCKET say (`cairn.s3io.S3IOManager.from_env`)


@dataclass(frozen=True)
class InstanceSettings:
    """What the environment says of the local instance."""

    home: Path = Path(".cairn")  # CAIRN_HOME
    outputs: OutputStore = OutputStore.FS  # CAIRN_IO_MANAGER
    s3_prefix: str = "cairn"  # CAIRN_S3_PREFIX: the prefix of output keys in the bucket


def settings_from_env(env: Mapping[str, str]) -> InstanceSettings:
    """The instance settings `env` gives (an unset or empty CAIRN_HOME: ./.cairn)."""
    kind = env.get("CAIRN_IO_MANAGER", OutputStore.FS.value)
    try:
        outputs = OutputStore(kind)
    except ValueError:
        raise CairnError(f"CAIRN_IO_MANAGER={kind!r}: use 'fs' (default) or 's3'") from None
    return InstanceSettings(
        home=Path(env.get("CAIRN_HOME") or ".cairn"),
        outputs=outputs,
        s3_prefix=env.get("CAIRN_S3_PREFIX", "cairn"),
    )


class Instance(RunStore):
    """A run store (`cairn.runstore.RunStore`, in ``runs.db``) and an output store in one directory; runs
    store their outputs under `namespace`."""

    def __init__(self, root: Path, io_manager: IOManager | None = None, namespace: str = "local") -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        super().__init__(self.root / "runs.db")
        self.namespace = namespace
        self.io_manager: IOManager = io_manager or FilesystemIOManager(self.root / "storage")

    @classmethod
    def local(
        cls,
        path: str | os.PathLike[str] | None = None,
        io_manager: IOManager | None = None,
        settings: InstanceSettings | None = None,
    ) -> Instance:
        """The instance at `path`, else at `settings.home`; `settings` default to the environment's
        (`settings_from_env(os.environ)`, read here and nowhere else).

        Outputs go to files under it, unless `io_manager` is given or the settings say S3
        (CAIRN_IO_MANAGER=s3), which stores them in S3 as the standard AWS variables and CAIRN_S3_BUCKET say."""
        if settings is None:
            settings = settings_from_env(os.environ)
        if io_manager is None and settings.outputs is OutputStore.S3:
            from cairn.s3io import S3IOManager

            io_manager = S3IOManager.from_env(prefix=settings.s3_prefix)
        return cls(Path(path) if path else settings.home, io_manager=io_manager)

    def __repr__(self) -> str:
        return f"<Instance {self.root}>"
