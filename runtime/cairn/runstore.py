"""The local run store: one SQLite file (WAL) of runs, their steps, output indexes and mapping keys; its schema,
the migration of stores older cairn versions wrote, and every write. Reads build `cairn.records`.

Tables:

- ``runs``: one row per run, with the process that executes it (`cairn.liveness`).
- ``steps``: a run's steps in order (``seq``), each with its state, why it runs or not, the run its outputs
  come from when reused, and the code and config version that produced them.
- ``outputs``: each run's output index, (step, output) -> the run that wrote the value and its storage key.
- ``mapping_keys``: per run, the keys each dynamic (step, output) emitted in its lineage (`cairn.dynamic`):
  those it emitted itself and those of the dynamic steps it reuses, so a child of a child still sees them.
- ``events``: each run's Dagster events in order, in batches: a row per batch (its first event's number,
  ``first_seq``, from 1), the batch a JSON list of [timestamp, type, step key, data, logging tags]
  (`cairn.events.pack`'s form); written by `record_events`, read back by `records.read_events`.
  With fan-out, a mapped op's steps are its instances ``op[key]`` (a placeholder ``op[*]`` until the keys
  are known, replaced by the instances once its dynamic step ran).

A run only ever writes its own rows: a re-execution creates a new run and never modifies its parent.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from cairn import records
from cairn.errors import RunNotFoundError
from cairn.io import StoredOutput
from cairn.liveness import this_process
from cairn.planner import OutputRef
from cairn.records import RunRecord
from cairn.runstate import StepState
from cairn.status import RunStatus

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
    attempts INTEGER NOT NULL DEFAULT 0,
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
-- Added with Dagster's events: opening an older store creates it (its runs read back with no events).
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    batch TEXT NOT NULL,
    PRIMARY KEY (run_id, first_seq)
);
"""


class Column(NamedTuple):
    table: str
    name: str
    type: str


#: Columns added to a table after stores were written without them (new tables need no entry: SCHEMA creates
#: them). Their rows in an old store read NULL: a step's version then reads as "unrecorded".
ADDED_COLUMNS: tuple[Column, ...] = (
    Column("steps", "version", "TEXT"),
    Column("steps", "attempts", "INTEGER NOT NULL DEFAULT 0"),  # with retries: attempts started (old runs: 0)
)

#: A step row to insert: step, state, reason, source run, version (of a step not executed: the version that
#: produced what it reuses).
StepRow = tuple[str, StepState, str | None, str | None, str | None]


def missing_columns(existing: Mapping[str, set[str]], added: Sequence[Column] = ADDED_COLUMNS) -> list[Column]:
    """The added columns a store lacks, given each table's existing column names."""
    return [c for c in added if c.name not in existing.get(c.table, set())]


def open_db(path: Path) -> sqlite3.Connection:
    """Open (creating or migrating) the run store at `path`: autocommit, WAL, usable from any thread."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    events = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    if events and "batch" not in events:  # a row-per-event table of an unreleased build: its events are dropped
        conn.execute("DROP TABLE events")
    conn.executescript(SCHEMA)
    tables = {c.table for c in ADDED_COLUMNS}
    existing = {t: {row[1] for row in conn.execute(f"PRAGMA table_info({t})")} for t in tables}
    for c in missing_columns(existing):
        conn.execute(f"ALTER TABLE {c.table} ADD COLUMN {c.name} {c.type}")
    return conn


class RunStore:
    """The run store in SQLite file `db_path`, written by the runs of this process and read as `RunRecord`s."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._conn = open_db(db_path)
        self.host = socket.gethostname()

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
        steps: Sequence[StepRow],
        inherited: Mapping[tuple[str, str], OutputRef],
        inherited_formats: Mapping[tuple[str, str], str],
        job_ref: str | None = None,
        mode: str | None = None,
        keys: Mapping[tuple[str, str], Sequence[str]] | None = None,
        keys_source: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        """Create a run's rows, recording this process as the one that executes it. `keys`: the mapping keys
        it starts with (of the dynamic steps it reuses), `keys_source` the run that emitted each (default:
        this run)."""
        now = time.time()
        proc = this_process(self.host)  # at each run: a forked process creates runs as itself
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
                    proc.host,
                    proc.pid,
                    proc.start,
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
        """The step's next attempt starts (its first, or a retry): counted in its `attempts` (one statement:
        this is on every step's path)."""
        self._conn.execute(
            "UPDATE steps SET state=?, started=?, attempts=attempts+1 WHERE run_id=? AND step=?",
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
        self, run_id: str, removed: Sequence[str], added: Sequence[StepRow], order: Sequence[str]
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

    def record_events(self, run_id: str, first_seq: int, batch: Sequence[Sequence[Any]]) -> None:
        """Append a batch of a run's events ([timestamp, type, step key, data, tags] each, numbered from
        `first_seq`): one statement, one row."""
        self._conn.execute(
            "INSERT INTO events (run_id, first_seq, batch) VALUES (?,?,?)", (run_id, first_seq, json.dumps(batch))
        )

    def run_finished(self, run_id: str, status: RunStatus) -> None:
        self._conn.execute("UPDATE runs SET status=?, updated=? WHERE run_id=?", (status.value, time.time(), run_id))

    # ----- reads (the read model: cairn.records) ----------------------------------------------------
    def has_run(self, run_id: str) -> bool:
        return records.has_run(self._conn, run_id)

    def run_ids(self) -> set[str]:
        return records.all_ids(self._conn)

    def get_run(self, run_id: str) -> RunRecord:
        record = records.read_run(self._conn, run_id, here=self.host)
        if record is None:
            raise RunNotFoundError(
                f"Run {run_id} not found in the run store {self.db_path}; `cairn runs list` shows the runs there"
            )
        return record

    def get_run_group(self, run_id: str) -> list[RunRecord]:
        """Every run of the lineage `run_id` belongs to, root first (then by creation)."""
        return [self.get_run(i) for i in records.lineage_ids(self._conn, self.get_run(run_id).root_run_id)]

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        return [self.get_run(i) for i in records.recent_ids(self._conn, limit)]
