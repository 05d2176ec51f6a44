"""Every step transition of a run, as pure functions over typed rows: the one machine both executors drive.

A step's row (`StepRow`) is what a run records of it: state, attempt, reason, message, the due time of
its next attempt, start and finish times, exit code. Each transition takes a row and returns the new
row and what to announce (`Moved`: the row, an `Announce` or None). The in-process executor
(`cairn.execution`) writes the rows to the local run store and turns announcements into progress
events; the operator (`cairn_operator.reconcile`) keeps rows as dicts in a Run's status, converts the
rows a transition touches, and posts the announcements it always posted as Kubernetes Events.

- `start`: attempt n+1 of a waiting step begins.
- `succeed`, `attempt_failed`: an attempt's result; a failure is retried per the step's `RetryRule`
  (Retrying until its due time) or ends the step (Failed, or Interrupted when stopped from outside).
- `fail`: the step fails whatever its retries (e.g. it emitted more mapping keys than a run holds).
- `adopt`: an attempt found running that the row does not know yet (its start was not recorded).
- `cancel`, `interrupt`: a canceled run; a running attempt stopped.
- `settle`: a waiting step that `runstate.gate` blocks (NotExecuted) or skips.
- `initial_row`, `expand`: a run's first rows from its plan; a map's instances once its keys are known.
- `run_result`: the run's phase, progress and closing announcement from its steps' states.

Times are timezone-aware datetimes passed in (`now`), randomness a `rand()` passed in: no clock, no I/O.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cairn import dynamic
from cairn.retries import Rand, RetryRule
from cairn.runstate import Decision, Gate, Initial, RunPhase, StepState, initial_state, on_cancel, run_outcome

NORMAL, WARNING = "Normal", "Warning"


@dataclass(frozen=True)
class StepRow:
    """What a run records of one step."""

    state: StepState
    attempt: int = 0  # attempts started so far (the current one while Running)
    reason: str | None = None  # why it runs, or why it does not (planned, blocked, skipped)
    message: str | None = None  # what the last attempt said (an error) or what the step waits for
    next_attempt_at: dt.datetime | None = None  # Retrying: when the next attempt is due
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class Announce:
    """What a transition tells (a Kubernetes Event's reason, message and type; a local progress event)."""

    reason: str
    message: str
    type: str = NORMAL


@dataclass(frozen=True)
class Moved:
    row: StepRow
    event: Announce | None = None


def _with(row: StepRow, **changes: Any) -> StepRow:
    """`row` with `changes`: `dataclasses.replace` without its per-field work (the operator moves 2,000
    rows in one cycle of a large Run)."""
    new = object.__new__(StepRow)
    new.__dict__.update(row.__dict__)
    new.__dict__.update(changes)
    return new


def _secs(delay: float) -> str:
    return f"{delay:.0f}s" if delay >= 1 or delay == 0 else f"{delay:.2g}s"


def start(step: str, row: StepRow) -> Moved:
    """A waiting step's next attempt begins (its start time is observed later: the pod's, the store's)."""
    assert row.state is StepState.PENDING or row.state is StepState.RETRYING, (step, row.state)
    n = row.attempt + 1
    new = _with(
        row, state=StepState.RUNNING, attempt=n, next_attempt_at=None, started_at=None, finished_at=None, exit_code=None
    )
    return Moved(new, Announce("StepStarted", f"step {step} started (attempt {n})"))


def adopt(row: StepRow, attempt: int) -> Moved:
    """An attempt found running that the row does not know yet (started by a cycle whose write was lost)."""
    return Moved(_with(row, state=StepState.RUNNING, attempt=attempt, next_attempt_at=None))


def succeed(step: str, row: StepRow, now: dt.datetime, finished: dt.datetime | None = None) -> Moved:
    """The running attempt succeeded: the step is done (its outputs are the executor's to record)."""
    new = _with(row, state=StepState.SUCCEEDED, finished_at=finished or now, exit_code=0, message=None)
    return Moved(new, Announce("StepSucceeded", f"step {step} succeeded (attempt {row.attempt})"))


def attempt_failed(
    step: str,
    row: StepRow,
    rule: RetryRule | None,
    message: str,
    now: dt.datetime,
    rand: Rand,
    exit_code: int | None = None,
    finished: dt.datetime | None = None,
    interrupted: bool = False,
) -> Moved:
    """The running attempt failed with `message`: Retrying after the rule's delay while the rule allows
    another attempt (attempt n is retried when n <= max_retries), else Failed (Interrupted when it was
    stopped from outside: its pod deleted, its node lost). `finished`: when the attempt ended, if known."""
    n = row.attempt
    ended = finished or row.finished_at
    if rule is not None and n <= rule.max_retries:
        delay = rule.delay(n, rand)
        new = _with(
            row,
            state=StepState.RETRYING,
            exit_code=exit_code,
            message=message,
            finished_at=ended,
            next_attempt_at=now + dt.timedelta(seconds=delay),
        )
        told = (
            f"step {step} attempt {n} failed ({message}); retrying in {_secs(delay)} "
            f"(attempt {n + 1} of {rule.max_retries + 1})"
        )
        return Moved(new, Announce("StepRetrying", told, WARNING))
    end = StepState.INTERRUPTED if interrupted else StepState.FAILED
    new = _with(row, state=end, exit_code=exit_code, message=message, finished_at=ended or now)
    return Moved(new, Announce("StepFailed", f"step {step} failed after {n} attempt(s): {message}", WARNING))


def fail(
    step: str,
    row: StepRow,
    message: str,
    now: dt.datetime,
    finished: dt.datetime | None = None,
    reason: str = "StepFailed",
) -> Moved:
    """The step fails now, retries or not: what it did cannot be retried into a valid run (it emitted too
    many keys), or its attempt cannot even start (its pod is refused: `reason` PodRefused)."""
    new = _with(row, state=StepState.FAILED, message=message, finished_at=finished or now)
    return Moved(new, Announce(reason, f"step {step}: {message}", WARNING))


def cancel(step: str, row: StepRow, now: dt.datetime) -> Moved:
    """The run is canceled: a running step is Interrupted, a waiting one Canceled; a finished one stays."""
    if row.state.terminal:
        return Moved(row)
    state = on_cancel(row.state)
    new = _with(row, state=state, finished_at=now)
    if state is StepState.INTERRUPTED:
        return Moved(new, Announce("StepInterrupted", f"step {step} interrupted: the run was canceled", WARNING))
    return Moved(new, Announce("StepCanceled", f"step {step} canceled before it started: the run was canceled"))


def interrupt(step: str, row: StepRow, message: str, now: dt.datetime) -> Moved:
    """The running attempt was stopped (the run canceled while it ran): Interrupted, not retried."""
    new = _with(row, state=StepState.INTERRUPTED, message=message, finished_at=now)
    return Moved(new, Announce("StepInterrupted", f"step {step} interrupted: {message}", WARNING))


def settle(step: str, row: StepRow, decision: Decision) -> Moved:
    """A waiting step `gate` ends: NotExecuted (an upstream failed) or Skipped (an input not produced)."""
    assert decision.state is not None, decision
    new = _with(row, state=decision.state, reason=decision.reason)
    reason = "StepNotExecuted" if decision.gate is Gate.BLOCKED else "StepSkipped"
    return Moved(new, Announce(reason, f"step {step}: {decision.reason}"))


@dataclass(frozen=True)
class Planned:
    """What a run's plan says of its steps: `to_run` (step -> why) None for a first run (everything
    runs); the steps it reuses (step -> the run that produced their outputs) and those that stay skipped."""

    to_run: Mapping[str, str | None] | None = None
    reused: Mapping[str, str] = dataclasses.field(default_factory=dict)
    skipped: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def initial(self, step: str) -> Initial:
        """`runstate.initial_state`, where an instance ``op[key]`` the plan does not name (to run, reused
        or skipped) takes its placeholder's (``op[*]``) planned reason: a map planned whole runs every
        instance."""
        to_run = self.to_run
        named = to_run is None or step in to_run or step in self.reused or step in self.skipped
        if to_run is not None and not named and "[" in step:
            placeholder = dynamic.step_key(dynamic.node_of(step), dynamic.ANY)
            if placeholder in to_run:
                return Initial(StepState.PENDING, to_run[placeholder])
        return initial_state(step, to_run, self.reused, self.skipped)


def initial_row(step: str, plan: Planned) -> StepRow:
    init = plan.initial(step)
    return StepRow(init.state, reason=init.reason)


def expand(placeholder: str, keys: Sequence[str], plan: Planned) -> tuple[dict[str, StepRow], Announce]:
    """The rows of a map's instances once its keys are known, in key order (none for zero keys), each as
    the plan has it (`Planned.initial`: its placeholder's planned reason unless the plan names it)."""
    node = dynamic.node_of(placeholder)
    rows = {dynamic.step_key(node, k): initial_row(dynamic.step_key(node, k), plan) for k in keys}
    return rows, Announce("StepMapped", f"step {placeholder} mapped over {len(rows)} key(s)")


@dataclass(frozen=True)
class RunResult:
    phase: RunPhase
    done: int  # steps in a terminal state
    total: int
    failed: int  # Failed or Interrupted
    message: str | None = None  # a finished run: why it ended so
    event: Announce | None = None

    @property
    def progress(self) -> str:
        return f"{self.done}/{self.total}"


def run_result(states: Mapping[str, StepState] | Iterable[tuple[str, StepState]], canceled: str | None) -> RunResult:
    """The run's phase from its steps' states (`runstate.run_outcome`), counted, and once finished the
    message and announcement that close it. `canceled`: why the run was canceled, None if it was not."""
    pairs = list(states.items() if isinstance(states, Mapping) else states)
    done = sum(1 for _, s in pairs if s.terminal)
    bad = [step for step, s in pairs if s is StepState.FAILED or s is StepState.INTERRUPTED]
    phase = run_outcome((s for _, s in pairs), canceled is not None)
    base = RunResult(phase, done, len(pairs), len(bad))
    if not phase.finished:
        return base
    message = {
        RunPhase.SUCCEEDED: f"all {len(pairs)} steps done",
        RunPhase.FAILED: f"step(s) failed: {', '.join(bad)}",
        RunPhase.CANCELED: canceled or "canceled",
    }[phase]
    kind = NORMAL if phase is RunPhase.SUCCEEDED else WARNING
    return dataclasses.replace(base, message=message, event=Announce(f"Run{phase.value}", message, kind))
