"""The local instance: a SQLite run store (WAL) and a filesystem store for outputs.

Layout of an instance directory (``$CAIRN_HOME``, else ``./.cairn``)::

    runs.db          runs, steps, each run's output index and the mapping keys of its dynamic steps
    storage/         outputs, at <namespace>/<run_id>/<step>/<output>

With fan-out (`cairn.dynamic`), a mapped op's steps are its instances ``op[key]`` (a placeholder
``op[*]`` until the keys are known, replaced by the instances once its dynamic step ran), and table
``mapping_keys`` holds, per run, the keys each dynamic (step, output) emitted in its lineage: those it
emitted itself and those of the dynamic steps it reuses (so a child of a child still sees them).

A run only ever writes its own rows: a re-execution creates a new run and never modifies its parent.
A run whose process died without a word (status STARTED, its process gone from this host) reads back
as FAILURE with its running step interrupted; nothing is written for that, so the record is unchanged.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.errors import CairnError, RunNotFoundError
from cairn.io import FilesystemIOManager, IOManager, StoredOutput
from cairn.planner import OutputRef, RunView
from cairn.runstate import RunPhase, StepState
from cairn.status import RunStatus, StepStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    job_name TEXT NOT NULL,
    status TEXT NOT NULL,
    parent_run_id TEXT,
    root_run_id TEXT NOT NULL,
    tags TEXT NOT NULL,
    run_config TEXT NOT NULL,
    job_ref TEXT,
    mode TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    host TEXT,
    pid INTEGER,
    pid_start INTEGER
);
CREATE INDEX IF NOT EXISTS runs_root ON runs(root_run_id);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    source_run_id TEXT,
    started REAL,
    finished REAL,
    error TEXT,
    version TEXT,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS outputs (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    output TEXT NOT NULL,
    source_run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER,
    sha256 TEXT,
    format TEXT NOT NULL DEFAULT 'pickle',
    PRIMARY KEY (run_id, step, output)
);
-- Added with fan-out: opening an older store creates it (empty: its runs have no dynamic steps).
CREATE TABLE IF NOT EXISTS mapping_keys (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    output TEXT NOT NULL,
    keys TEXT NOT NULL,
    source_run_id TEXT NOT NULL,
    PRIMARY KEY (run_id, step, output)
);
"""


def _proc_start(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def _alive(pid: int | None, start: int | None) -> bool:
    if pid is None:
        return True  # unknown: trust the record
    if Path("/proc").is_dir():
        return _proc_start(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class StepRecord:
    step: str
    state: StepState
    reason: str | None = None
    source_run_id: str | None = None
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    outputs: dict[str, StoredOutput] = field(default_factory=dict)
    version: str | None = None  # the code and config version that produced its outputs (in its lineage)

    @property
    def status(self) -> StepStatus:
        return self.state.public()

    @property
    def interrupted(self) -> bool:
        return self.state is StepState.INTERRUPTED or self.state is StepState.RUNNING


@dataclass
class RunRecord:
    run_id: str
    job_name: str
    status: RunStatus
    parent_run_id: str | None
    root_run_id: str
    tags: dict[str, str]
    run_config: dict[str, Any]
    job_ref: str | None
    mode: str | None
    created: float
    updated: float
    steps: dict[str, StepRecord]
    outputs: dict[tuple[str, str], OutputRef]  # the output index
    formats: dict[tuple[str, str], str]
    process_lost: bool = False  # STARTED, but its process is gone: read as FAILURE
    #: (dynamic step, output) -> the mapping keys it emitted in this run's lineage, in emission order
    keys: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    def view(self) -> RunView:
        return RunView(
            run_id=self.run_id,
            status=RunPhase.of(self.status),
            root_run_id=self.root_run_id,
            steps={s: r.state for s, r in self.steps.items()},
            outputs=self.outputs,
            versions={s: r.version for s, r in self.steps.items() if r.version},
            keys=self.keys,
        )

    @property
    def step_statuses(self) -> dict[str, StepStatus]:
        return {s: r.status for s, r in self.steps.items()}


class Instance:
    """A run store and an output store in one directory."""

    def __init__(self, root: Path, io_manager: IOManager | None = None, namespace: str = "local") -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "runs.db"
        self.namespace = namespace
        self.io_manager: IOManager = io_manager or FilesystemIOManager(self.root / "storage")
        self._conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)
        # Stores made before steps had a version: add the column (its rows read as "unrecorded").
        if "version" not in {row[1] for row in self._conn.execute("PRAGMA table_info(steps)")}:
            self._conn.execute("ALTER TABLE steps ADD COLUMN version TEXT")
        self.host = socket.gethostname()

    @classmethod
    def local(cls, path: str | os.PathLike[str] | None = None, io_manager: IOManager | None = None) -> Instance:
        """The instance at `path`, else $CAIRN_HOME, else ./.cairn.

        Outputs go to files under it, unless `io_manager` is given or CAIRN_IO_MANAGER=s3, which stores them
        in S3 as the standard AWS variables and CAIRN_S3_BUCKET (and CAIRN_S3_PREFIX) say."""
        if io_manager is None and os.environ.get("CAIRN_IO_MANAGER", "fs") == "s3":
            from cairn.s3io import S3IOManager

            io_manager = S3IOManager.from_env(prefix=os.environ.get("CAIRN_S3_PREFIX", "cairn"))
        elif os.environ.get("CAIRN_IO_MANAGER", "fs") not in ("fs", "s3"):
            raise CairnError(f"CAIRN_IO_MANAGER={os.environ['CAIRN_IO_MANAGER']!r}: use 'fs' (default) or 's3'")
        return cls(Path(path or os.environ.get("CAIRN_HOME") or ".cairn"), io_manager=io_manager)

    def __repr__(self) -> str:
        return f"<Instance {self.root}>"

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # ----- writes (each run writes only its own rows) ------------------------------------------------
    def create_run(
        self,
        run_id: str,
        job_name: str,
        parent_run_id: str | None,
        root_run_id: str,
        tags: Mapping[str, str],
        run_config: Mapping[str, Any],
        steps: Sequence[tuple[str, StepState, str | None, str | None, str | None]],  # step, state, reason,
        # source run, version (of a step not executed: the one that produced what it reuses)
        inherited: Mapping[tuple[str, str], OutputRef],
        inherited_formats: Mapping[tuple[str, str], str],
        job_ref: str | None = None,
        mode: str | None = None,
        keys: Mapping[tuple[str, str], Sequence[str]] | None = None,
        keys_source: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        """Create a run's rows. `keys`: the mapping keys it starts with (of the dynamic steps it reuses),
        `keys_source` the run that emitted each (default: this run)."""
        now = time.time()
        pid = os.getpid()
        with self.tx() as c:
            c.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    job_name,
                    RunStatus.STARTED.value,
                    parent_run_id,
                    root_run_id,
                    json.dumps(dict(tags)),
                    json.dumps(dict(run_config)),
                    job_ref,
                    mode,
                    now,
                    now,
                    self.host,
                    pid,
                    _proc_start(pid),
                ),
            )
            c.executemany(
                "INSERT INTO steps (run_id, step, seq, state, reason, source_run_id, version) VALUES (?,?,?,?,?,?,?)",
                [(run_id, s, i, st.value, reason, src, v) for i, (s, st, reason, src, v) in enumerate(steps)],
            )
            c.executemany(
                "INSERT INTO outputs (run_id, step, output, source_run_id, key, format) VALUES (?,?,?,?,?,?)",
                [
                    (run_id, s, o, ref.run_id, ref.key, inherited_formats.get((s, o), "pickle"))
                    for (s, o), ref in inherited.items()
                ],
            )
            c.executemany(
                "INSERT INTO mapping_keys (run_id, step, output, keys, source_run_id) VALUES (?,?,?,?,?)",
                [
                    (run_id, s, o, json.dumps(list(ks)), (keys_source or {}).get((s, o), run_id))
                    for (s, o), ks in (keys or {}).items()
                ],
            )

    def step_started(self, run_id: str, step: str) -> None:
        self._conn.execute(
            "UPDATE steps SET state=?, started=? WHERE run_id=? AND step=?",
            (StepState.RUNNING.value, time.time(), run_id, step),
        )

    def step_finished(
        self,
        run_id: str,
        step: str,
        state: StepState,
        error: str | None = None,
        reason: str | None = None,
        version: str | None = None,
    ) -> None:
        if version is not None:
            self._conn.execute("UPDATE steps SET version=? WHERE run_id=? AND step=?", (version, run_id, step))
        if reason is None:
            self._conn.execute(
                "UPDATE steps SET state=?, finished=?, error=? WHERE run_id=? AND step=?",
                (state.value, time.time(), error, run_id, step),
            )
        else:
            self._conn.execute(
                "UPDATE steps SET state=?, finished=?, error=?, reason=? WHERE run_id=? AND step=?",
                (state.value, time.time(), error, reason, run_id, step),
            )

    def record_output(self, run_id: str, step: str, output: str, stored: StoredOutput, fmt: str) -> None:
        """Called after the value is fully written: from then on, the run's index points at it."""
        self._conn.execute(
            "INSERT OR REPLACE INTO outputs VALUES (?,?,?,?,?,?,?,?)",
            (run_id, step, output, run_id, stored.key, stored.size, stored.sha256, fmt),
        )

    def record_keys(self, run_id: str, step: str, output: str, keys: Sequence[str]) -> None:
        """The mapping keys dynamic output `output` of `step` emitted in this run, in emission order."""
        self._conn.execute(
            "INSERT OR REPLACE INTO mapping_keys (run_id, step, output, keys, source_run_id) VALUES (?,?,?,?,?)",
            (run_id, step, output, json.dumps(list(keys)), run_id),
        )

    def replace_steps(
        self,
        run_id: str,
        removed: Sequence[str],
        added: Sequence[tuple[str, StepState, str | None, str | None, str | None]],
        order: Sequence[str],
    ) -> None:
        """Replace placeholder rows (`removed`, e.g. ``op[*]``) by instance rows (`added`: step, state,
        reason, source run, version), and renumber the run's steps in `order` (all of its steps)."""
        with self.tx() as c:
            c.executemany("DELETE FROM steps WHERE run_id=? AND step=?", [(run_id, s) for s in removed])
            c.executemany(
                "INSERT INTO steps (run_id, step, seq, state, reason, source_run_id, version) VALUES (?,?,?,?,?,?,?)",
                [(run_id, s, -1, st.value, reason, src, v) for s, st, reason, src, v in added],
            )
            c.executemany(
                "UPDATE steps SET seq=? WHERE run_id=? AND step=?", [(i, run_id, s) for i, s in enumerate(order)]
            )

    def forget_output(self, run_id: str, step: str, output: str) -> None:
        """Drop an inherited entry of the run's output index: the step ran again without producing it."""
        self._conn.execute("DELETE FROM outputs WHERE run_id=? AND step=? AND output=?", (run_id, step, output))

    def run_finished(self, run_id: str, status: RunStatus) -> None:
        self._conn.execute("UPDATE runs SET status=?, updated=? WHERE run_id=?", (status.value, time.time(), run_id))

    # ----- reads ------------------------------------------------------------------------------------
    def has_run(self, run_id: str) -> bool:
        return self._conn.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone() is not None

    def run_ids(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT run_id FROM runs")}

    def get_run(self, run_id: str) -> RunRecord:
        row = self._conn.execute(
            "SELECT run_id, job_name, status, parent_run_id, root_run_id, tags, run_config, job_ref, mode, "
            "created, updated, host, pid, pid_start FROM runs WHERE run_id=?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise RunNotFoundError(
                f"Run {run_id} not found in the run store {self.db_path}; `cairn runs list` shows the runs there"
            )
        status = RunStatus(row[2])
        lost = status is RunStatus.STARTED and row[11] == self.host and not _alive(row[12], row[13])
        steps: dict[str, StepRecord] = {}
        for s, state, reason, src, started, finished, error, version in self._conn.execute(
            "SELECT step, state, reason, source_run_id, started, finished, error, version FROM steps WHERE run_id=? "
            "ORDER BY seq",
            (run_id,),
        ):
            st = StepState(state)
            if lost and st is StepState.RUNNING:
                st = StepState.INTERRUPTED
            steps[s] = StepRecord(s, st, reason, src, started, finished, error, version=version)
        outputs: dict[tuple[str, str], OutputRef] = {}
        formats: dict[tuple[str, str], str] = {}
        for s, o, src, key, size, sha, fmt in self._conn.execute(
            "SELECT step, output, source_run_id, key, size, sha256, format FROM outputs WHERE run_id=?", (run_id,)
        ):
            outputs[(s, o)] = OutputRef(src, key)
            formats[(s, o)] = fmt
            if src == run_id and s in steps:
                steps[s].outputs[o] = StoredOutput(key, size or 0, sha or "")
        keys = {
            (s, o): tuple(json.loads(ks))
            for s, o, ks in self._conn.execute(
                "SELECT step, output, keys FROM mapping_keys WHERE run_id=? ORDER BY step, output", (run_id,)
            )
        }
        return RunRecord(
            run_id=row[0],
            job_name=row[1],
            status=RunStatus.FAILURE if lost else status,
            parent_run_id=row[3],
            root_run_id=row[4],
            tags=json.loads(row[5]),
            run_config=json.loads(row[6]),
            job_ref=row[7],
            mode=row[8],
            created=row[9],
            updated=row[10],
            steps=steps,
            outputs=outputs,
            formats=formats,
            process_lost=lost,
            keys=keys,
        )

    def get_run_group(self, run_id: str) -> list[RunRecord]:
        """Every run of the lineage `run_id` belongs to, root first (then by creation)."""
        root = self.get_run(run_id).root_run_id
        ids = [
            r[0]
            for r in self._conn.execute("SELECT run_id FROM runs WHERE root_run_id=? ORDER BY created, rowid", (root,))
        ]
        return [self.get_run(i) for i in ids]

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        ids = [r[0] for r in self._conn.execute("SELECT run_id FROM runs ORDER BY created DESC LIMIT ?", (limit,))]
        return [self.get_run(i) for i in ids]
