"""The local instance: a run store and an output store in one directory, and the one place that reads the
environment for them (`Instance.local`).

Layout of an instance directory (``$CAIRN_HOME``, else ``./.cairn``)::

    runs.db          the run store (`cairn.runstore`): runs, steps, each run's output index, mapping keys
    storage/         outputs, at <namespace>/<run_id>/<step>/<output>

What a run looks like read back is `cairn.records` (re-exported here: `RunRecord`, `StepRecord`); which run
lost its process, `cairn.liveness`.

With Dagster's names (`DagsterInstance` is this class): `DagsterInstance.ephemeral()` (runs and outputs in
this process's memory), `DagsterInstance.get()` (the environment's, as `local`), `local_temp()`,
`instance_for_test()` (a temporary instance for a `with` block), `get_run_by_id` (None for an unknown run),
`all_logs` and `get_records_for_run` (a run's events, `cairn.events`), `get_runs`.
"""

from __future__ import annotations

import enum
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cairn import events, records
from cairn.errors import CairnError
from cairn.io import FileSource, FilesystemIOManager, IOManager, StoredOutput, serialize
from cairn.records import RunRecord, StepRecord
from cairn.runstore import SCHEMA, RunStore
from cairn.status import RunStatus

__all__ = [
    "SCHEMA",
    "DagsterInstance",
    "DagsterRun",
    "Instance",
    "InstanceSettings",
    "MemoryOutputs",
    "OutputStore",
    "RunRecord",
    "RunsFilter",
    "StepRecord",
    "instance_for_test",
    "settings_from_env",
]


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

    def __init__(
        self, root: Path, io_manager: IOManager | None = None, namespace: str = "local", *, in_memory: bool = False
    ) -> None:
        self.root = Path(root) if in_memory else Path(root).absolute()
        if not in_memory:
            self.root.mkdir(parents=True, exist_ok=True)
        super().__init__(Path(":memory:") if in_memory else self.root / "runs.db")
        self.namespace = namespace
        self.io_manager: IOManager = io_manager or (
            MemoryOutputs() if in_memory else FilesystemIOManager(self.root / "storage")
        )

    @classmethod
    def ephemeral(cls) -> Instance:
        """Dagster's ephemeral instance: runs and outputs in this process's memory, gone with it."""
        return cls(Path(":memory:"), in_memory=True)

    @classmethod
    def get(cls) -> Instance:
        """Dagster's `DagsterInstance.get()`: the instance the environment names (`local`)."""
        return cls.local()

    @classmethod
    def local_temp(cls, tempdir: str | None = None) -> Instance:
        """An instance in a new temporary directory (under `tempdir`), left in place."""
        return cls(Path(tempfile.mkdtemp(prefix="cairn-", dir=tempdir)))

    # ----- reads with Dagster's names ---------------------------------------------------------------------
    def get_run_by_id(self, run_id: str) -> RunRecord | None:
        return self.get_run(run_id) if self.has_run(run_id) else None

    def get_runs(self, filters: Any = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first; `filters` (Dagster's RunsFilter) by its `run_ids`, `job_name` and `statuses`."""
        runs = self.list_runs(limit if limit is not None and filters is None else 1 << 30)
        if filters is not None:
            ids, job, statuses = (getattr(filters, a, None) for a in ("run_ids", "job_name", "statuses"))
            runs = [
                r
                for r in runs
                if (not ids or r.run_id in ids)
                and (not job or r.job_name == job)
                and (not statuses or r.status in statuses)
            ]
        return runs[:limit] if limit is not None else runs

    def get_runs_count(self, filters: Any = None) -> int:
        return len(self.get_runs(filters))

    def _events(self, run_id: str) -> list[tuple[int, events.EventLogEntry]]:
        job = self.get_run(run_id).job_name
        rows = records.read_events(self._conn, run_id)
        return [(seq, events.log_entry(run_id, ts, events.unpack(job, t, s, d, g))) for seq, ts, t, s, d, g in rows]

    def all_logs(self, run_id: str, of_type: Any = None) -> list[events.EventLogEntry]:
        """The run's events in order (`of_type`: a DagsterEventType or a set of them)."""
        wanted = _types(of_type)
        return [e for _, e in self._events(run_id) if wanted is None or e.dagster_event_type in wanted]

    def get_records_for_run(
        self,
        run_id: str,
        cursor: str | None = None,
        of_type: Any = None,
        limit: int | None = None,
        ascending: bool = True,
    ) -> events.EventRecordsResult:
        """The run's event records after `cursor` (the `cursor` of a previous result), at most `limit`."""
        wanted, after = _types(of_type), int(cursor or 0)
        rows = [
            (seq, e)
            for seq, e in self._events(run_id)
            if (seq > after if ascending else after == 0 or seq < after)
            and (wanted is None or e.dagster_event_type in wanted)
        ]
        if not ascending:
            rows.reverse()
        page = rows[:limit] if limit is not None else rows
        recs = [events.EventLogRecord(seq, e) for seq, e in page]
        last = str(page[-1][0]) if page else (cursor or "0")
        return events.EventRecordsResult(recs, last, len(page) < len(rows))

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


#: Dagster's name for the instance.
DagsterInstance = Instance
#: Dagster's name for a run as the instance gives it back.
DagsterRun = RunRecord


@dataclass(frozen=True)
class RunsFilter:
    """Dagster's filter of `get_runs`: runs with one of `run_ids`, of `job_name`, with one of `statuses`."""

    run_ids: Sequence[str] | None = None
    job_name: str | None = None
    statuses: Sequence[RunStatus] | None = None


def _types(of_type: Any) -> set[events.DagsterEventType] | None:
    if of_type is None:
        return None
    if isinstance(of_type, events.DagsterEventType):
        return {of_type}
    return set(of_type)


@contextmanager
def instance_for_test(
    overrides: Mapping[str, Any] | None = None, set_dagster_home: bool = True, temp_dir: str | None = None
) -> Iterator[Instance]:
    """Dagster's `instance_for_test`: a local instance in a temporary directory for the block, removed after;
    while it lasts CAIRN_HOME names it (`DagsterInstance.get()` returns it), unless `set_dagster_home=False`.
    `overrides` (Dagster's instance settings) are accepted and not read: Cairn's instance has none of them."""
    with tempfile.TemporaryDirectory(dir=temp_dir) as home:
        before = os.environ.get("CAIRN_HOME")
        if set_dagster_home:
            os.environ["CAIRN_HOME"] = home
        instance = Instance(Path(home))
        try:
            yield instance
        finally:
            instance.close()
            if set_dagster_home:
                if before is None:
                    os.environ.pop("CAIRN_HOME", None)
                else:
                    os.environ["CAIRN_HOME"] = before


class MemoryOutputs:
    """Outputs kept as objects in this process's memory, as Dagster's in-memory IO manager keeps them: the
    output store of an ephemeral instance (nothing is serialized; a later process cannot read them)."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def store(self, key: str, value: Any, fmt: str = "pickle") -> StoredOutput:
        self._values[key] = value.path.read_bytes() if isinstance(value, FileSource) else value
        return StoredOutput(key=key, size=0, sha256="")

    def load(self, key: str, fmt: str = "pickle") -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise CairnError(f"stored output {key} is missing from this ephemeral instance's memory") from None

    def exists(self, key: str) -> bool:
        return key in self._values

    def load_into(self, key: str, sink: IO[bytes]) -> None:
        value = self.load(key)
        serialize(value, "bytes" if isinstance(value, bytes) else "pickle", sink)

    def describe(self, key: str) -> str:
        return f"memory:{key}"
