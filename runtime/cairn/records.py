"""The local run store's read model: what a run looks like read back (`RunRecord`, `StepRecord`) and the queries
that build it from the store's tables (`cairn.runstore` writes them).

A `RunRecord` is also Dagster's `DagsterRun` for a porting user (`run_id`, `job_name`, `status`, `tags`,
`parent_run_id`, `root_run_id`, `run_config`, `is_success`, `is_failure`, `is_finished`...). A run's events
(table ``events``) are read by `read_events`, as rows `cairn.events.unpack` turns back into events.

A run whose process died without a word (status STARTED, its process gone from this host: `cairn.liveness`)
reads back as FAILURE with its running steps interrupted; nothing is written for that, so the record in the
store is unchanged and a later reader decides again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cairn.io import StoredOutput
from cairn.liveness import alive, lost
from cairn.planner import OutputRef, RunView
from cairn.runstate import RunPhase, StepState
from cairn.selection import OP_SELECTION_TAG
from cairn.status import FINISHED_STATUSES, RunStatus, StepStatus

#: A stored event: its number in the run (from 1), timestamp, event type value, step key, data, logging tags.
EventRow = tuple[int, float, str, str | None, Any, dict[str, str] | None]


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
    attempts: int = 0  # attempts started in this run (1 + its retries); 0 in a store older than retries

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
        """What the planner reads of a run (`cairn.planner.RunView`)."""
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

    # ----- Dagster's DagsterRun -------------------------------------------------------------------------
    @property
    def is_success(self) -> bool:
        return self.status is RunStatus.SUCCESS

    @property
    def is_failure(self) -> bool:
        return self.status is RunStatus.FAILURE

    @property
    def is_failure_or_canceled(self) -> bool:
        return self.status is RunStatus.FAILURE or self.status is RunStatus.CANCELED

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def is_resume_retry(self) -> bool:
        """A re-execution from failure (Dagster's tag ``dagster/is_resume_retry``)."""
        return self.mode == "from_failure"

    @property
    def op_selection(self) -> list[str] | None:
        """The op selection the run was started with (Dagster's `DagsterRun.op_selection`), None: all ops."""
        chosen = self.tags.get(OP_SELECTION_TAG)
        return list(json.loads(chosen)) if chosen else None

    @property
    def previous_run_id(self) -> str | None:
        return self.parent_run_id

    @property
    def step_keys_to_execute(self) -> list[str] | None:
        """The steps this run executed (None: a first run, which executes them all, as Dagster says)."""
        if self.parent_run_id is None:
            return None
        return [s for s, r in self.steps.items() if r.state.ran or r.state.waiting]


def read_run(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    here: str,
    is_alive: Callable[[int | None, int | None], bool] = alive,
) -> RunRecord | None:
    """Run `run_id` as read on host `here` (None: no such run)."""
    row = conn.execute(
        "SELECT run_id, job_name, status, parent_run_id, root_run_id, tags, run_config, job_ref, mode, "
        "created, updated, host, pid, pid_start FROM runs WHERE run_id=?",
        (run_id,),
    ).fetchone()
    if row is None:
        return None
    status = RunStatus(row[2])
    process_lost = lost(status, row[11], row[12], row[13], here=here, is_alive=is_alive)
    steps = _steps(conn, run_id, process_lost)
    outputs, formats = _outputs(conn, run_id, steps)
    return RunRecord(
        run_id=row[0],
        job_name=row[1],
        status=RunStatus.FAILURE if process_lost else status,
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
        process_lost=process_lost,
        keys=_keys(conn, run_id),
    )


def _steps(conn: sqlite3.Connection, run_id: str, process_lost: bool) -> dict[str, StepRecord]:
    """The run's steps in order; of a run that lost its process, a step still running reads interrupted."""
    steps: dict[str, StepRecord] = {}
    for s, state, reason, src, started, finished, error, version, attempts in conn.execute(
        "SELECT step, state, reason, source_run_id, started, finished, error, version, attempts FROM steps "
        "WHERE run_id=? ORDER BY seq",
        (run_id,),
    ):
        st = StepState(state)
        if process_lost and st is StepState.RUNNING:
            st = StepState.INTERRUPTED
        steps[s] = StepRecord(s, st, reason, src, started, finished, error, version=version, attempts=attempts)
    return steps


def _outputs(
    conn: sqlite3.Connection, run_id: str, steps: dict[str, StepRecord]
) -> tuple[dict[tuple[str, str], OutputRef], dict[tuple[str, str], str]]:
    """The run's output index and each output's format; the outputs the run wrote itself go to their step's
    record too (`steps` is updated)."""
    outputs: dict[tuple[str, str], OutputRef] = {}
    formats: dict[tuple[str, str], str] = {}
    for s, o, src, key, size, sha, fmt in conn.execute(
        "SELECT step, output, source_run_id, key, size, sha256, format FROM outputs WHERE run_id=?", (run_id,)
    ):
        outputs[(s, o)] = OutputRef(src, key)
        formats[(s, o)] = fmt
        if src == run_id and s in steps:
            steps[s].outputs[o] = StoredOutput(key, size or 0, sha or "")
    return outputs, formats


def _keys(conn: sqlite3.Connection, run_id: str) -> dict[tuple[str, str], tuple[str, ...]]:
    return {
        (s, o): tuple(json.loads(ks))
        for s, o, ks in conn.execute(
            "SELECT step, output, keys FROM mapping_keys WHERE run_id=? ORDER BY step, output", (run_id,)
        )
    }


def read_events(conn: sqlite3.Connection, run_id: str) -> list[EventRow]:
    """The run's stored events, in order."""
    out: list[EventRow] = []
    for first, batch in conn.execute(
        "SELECT first_seq, batch FROM events WHERE run_id=? ORDER BY first_seq", (run_id,)
    ):
        rows = json.loads(batch)
        out.extend((first + i, ts, kind, step, body, tags) for i, (ts, kind, step, body, tags) in enumerate(rows))
    return out


def lineage_ids(conn: sqlite3.Connection, root_run_id: str) -> list[str]:
    """The runs of the lineage rooted at `root_run_id`, root first (then by creation)."""
    return [
        r[0]
        for r in conn.execute("SELECT run_id FROM runs WHERE root_run_id=? ORDER BY created, rowid", (root_run_id,))
    ]


def recent_ids(conn: sqlite3.Connection, limit: int) -> list[str]:
    """The `limit` most recently created runs, newest first."""
    return [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY created DESC LIMIT ?", (limit,))]


def all_ids(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT run_id FROM runs")}


def has_run(conn: sqlite3.Connection, run_id: str) -> bool:
    return conn.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone() is not None
