"""The run-state machine both executors share: one enum of step states and the pure rules over it.

The in-process executor (`cairn.execution`) applies these rules step by step; the operator's reconcile
(`cairn_operator.reconcile`) applies them once per cycle to a Run's status, as Argo's controller
assesses a DAG. Nothing here does I/O, so one table of tests (tests/unit/test_runstate.py) pins the
semantics of both:

- `StepState`: what happened to a step in one run. Its values are the `status.steps[*].phase` strings
  of a Run; the local run store writes them too (and still reads the upper-case names it wrote before).
- `initial_state`: a step's state when a run is created (planned to run, reused from an ancestor,
  skipped, or not selected).
- `gate`: whether a waiting step may start now, must wait, is blocked by a failed upstream or is
  skipped for want of an input.
- `on_cancel`: what a canceled run makes of each step.
- `run_outcome`: a run's phase from its steps' states.
- `from_failure_reason`: how a re-execution from failure classifies a step of the parent run.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cairn.status import RunStatus, StepStatus


class StepState(enum.Enum):
    PENDING = "Pending"  # planned to run, not started
    RUNNING = "Running"  # an attempt runs (in-process: the op is being called; on a cluster: its pod exists)
    RETRYING = "Retrying"  # an attempt failed; the next one starts after its backoff
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"  # its last attempt failed
    INTERRUPTED = "Interrupted"  # stopped while it ran: canceled, its pod or process gone
    CANCELED = "Canceled"  # the run was canceled before the step started
    SKIPPED = "Skipped"  # an input it needs was not produced (an optional output, a skipped upstream)
    NOT_EXECUTED = "NotExecuted"  # not selected, or blocked by a failed upstream
    REUSED = "Reused"  # not executed: its outputs are read from the ancestor run that produced them

    @classmethod
    def _missing_(cls, value: object) -> StepState | None:
        """The names the local run store wrote before this enum (cairn 0.1): read, never lost."""
        legacy = {"STARTED": "Running", "SUCCESS": "Succeeded", "FAILURE": "Failed"}
        if isinstance(value, str):
            name = legacy.get(value, value)
            for member in cls:
                if member.value == name or member.name == name:
                    return member
        return None

    @property
    def terminal(self) -> bool:
        return self not in _LIVE

    @property
    def waiting(self) -> bool:
        """Not started yet (first attempt or a retry): `gate` decides when it starts."""
        return self is StepState.PENDING or self is StepState.RETRYING

    @property
    def produced_outputs(self) -> bool:
        return self is StepState.SUCCEEDED or self is StepState.REUSED

    @property
    def blocks_downstream(self) -> bool:
        """A downstream step cannot run: its input will not come in this run."""
        return self in _BLOCKING

    @property
    def ran(self) -> bool:
        """Its op's body ran in this run (an interrupted step counts, as Dagster lists it among the steps run)."""
        return self in (StepState.SUCCEEDED, StepState.FAILED, StepState.INTERRUPTED)

    @property
    def failed(self) -> bool:
        """Makes a finished run Failed (a canceled run is Canceled whatever its steps are)."""
        return self in (StepState.FAILED, StepState.INTERRUPTED, StepState.CANCELED)

    def public(self) -> StepStatus:
        """The Dagster-style status `step_statuses` reports."""
        return _PUBLIC.get(self, StepStatus.NOT_EXECUTED)


_LIVE = frozenset({StepState.PENDING, StepState.RUNNING, StepState.RETRYING})
_BLOCKING = frozenset({StepState.FAILED, StepState.INTERRUPTED, StepState.CANCELED, StepState.NOT_EXECUTED})
_PUBLIC = {
    StepState.SUCCEEDED: StepStatus.SUCCESS,
    StepState.FAILED: StepStatus.FAILURE,
    StepState.INTERRUPTED: StepStatus.FAILURE,
    StepState.RUNNING: StepStatus.FAILURE,  # in a finished run: it never finished
    StepState.RETRYING: StepStatus.FAILURE,
    StepState.SKIPPED: StepStatus.SKIPPED,
    StepState.REUSED: StepStatus.REUSED,
}


class RunPhase(enum.Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def finished(self) -> bool:
        return self in (RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.CANCELED)

    @property
    def can_resume_from_failure(self) -> bool:
        return self is RunPhase.FAILED or self is RunPhase.CANCELED

    def public(self) -> RunStatus:
        """The Dagster-style run status the local run store and `execute_job` report."""
        return _RUN_PUBLIC[self]

    @classmethod
    def of(cls, status: RunStatus) -> RunPhase:
        """The phase a Dagster-style run status stands for."""
        return _RUN_OF[status]


_RUN_PUBLIC = {
    RunPhase.PENDING: RunStatus.QUEUED,
    RunPhase.RUNNING: RunStatus.STARTED,
    RunPhase.SUCCEEDED: RunStatus.SUCCESS,
    RunPhase.FAILED: RunStatus.FAILURE,
    RunPhase.CANCELED: RunStatus.CANCELED,
}
_RUN_OF = {s: p for p, s in _RUN_PUBLIC.items()}


#: The reason of a step a re-execution did not select (`Initial`), which a from-failure of that run reads.
NOT_SELECTED = "not selected"


@dataclass(frozen=True)
class Initial:
    """A step's state when its run is created, why, and (for a reused step) the run that produced it."""

    state: StepState
    reason: str | None = None
    source_run: str | None = None


def initial_state(
    step: str,
    to_run: Mapping[str, str | None] | None,
    reused: Mapping[str, str] | None = None,
    skipped: Mapping[str, str] | None = None,
) -> Initial:
    """`to_run` None: a first run executes every step. Otherwise a re-execution's plan: its steps to run
    (step -> reason), its reused steps (step -> the run whose outputs it reads: nothing is copied) and
    the steps that stay skipped (step -> why); any other step is not selected."""
    if to_run is None:
        return Initial(StepState.PENDING)
    if step in to_run:
        return Initial(StepState.PENDING, to_run[step])
    if reused and step in reused:
        return Initial(StepState.REUSED, "reused", reused[step])
    if skipped and step in skipped:
        return Initial(StepState.SKIPPED, skipped[step])
    return Initial(StepState.NOT_EXECUTED, NOT_SELECTED)


class Gate(enum.Enum):
    WAIT = "wait"  # an upstream step has not finished
    READY = "ready"  # every input is there: start it (budget and backoff permitting)
    BLOCKED = "blocked"  # an upstream step failed or did not run: NotExecuted
    SKIP = "skip"  # an upstream finished without the output it needs: Skipped


@dataclass(frozen=True)
class Decision:
    gate: Gate
    reason: str = ""

    @property
    def state(self) -> StepState | None:
        """The state the step takes now, if the decision ends it."""
        return {Gate.BLOCKED: StepState.NOT_EXECUTED, Gate.SKIP: StepState.SKIPPED}.get(self.gate)


def gate(
    inputs: Mapping[str, tuple[str, str]],
    state_of: Callable[[str], StepState],
    produced: Callable[[str, str], bool],
) -> Decision:
    """May a waiting step start? `inputs`: its input -> (upstream step, output); `state_of(step)` the
    upstream's state; `produced(step, output)` whether that output is available to this run (produced in
    it, or reused from an ancestor). A failed upstream blocks even while other upstreams still run."""
    ups = {up for up, _ in inputs.values()}
    blocked = sorted(up for up in ups if state_of(up).blocks_downstream)
    if blocked:
        return Decision(Gate.BLOCKED, f"upstream failed: {', '.join(blocked)}")
    if not all(state_of(up).terminal for up in ups):
        return Decision(Gate.WAIT)
    missing = [f"{up}.{out}" for up, out in inputs.values() if not produced(up, out)]
    if missing:
        return Decision(Gate.SKIP, f"input not produced: {', '.join(missing)}")
    return Decision(Gate.READY)


def on_cancel(state: StepState) -> StepState:
    """A canceled run stops its running steps (Interrupted) and starts no other (Canceled)."""
    if state is StepState.RUNNING:
        return StepState.INTERRUPTED
    return StepState.CANCELED if state.waiting else state


def run_outcome(states: Iterable[StepState], canceled: bool = False) -> RunPhase:
    """Running until every step is terminal; then Failed if a step failed or was interrupted or
    canceled, else Succeeded. A canceled run is Canceled."""
    if canceled:
        return RunPhase.CANCELED
    states = list(states)
    if not all(s.terminal for s in states):
        return RunPhase.RUNNING
    return RunPhase.FAILED if any(s.failed for s in states) else RunPhase.SUCCEEDED


def from_failure_reason(state: StepState) -> str | None:
    """Why a re-execution from failure re-runs a step of the parent by itself: "failed", "interrupted"
    or "not-executed" (never started); None for a step that re-runs only when downstream of one of
    those (succeeded, reused) or never (skipped: `stays_skipped`)."""
    return _FROM_FAILURE.get(state)


def stays_skipped(state: StepState) -> bool:
    return state is StepState.SKIPPED


_FROM_FAILURE = {
    StepState.FAILED: "failed",
    StepState.RETRYING: "failed",
    StepState.RUNNING: "interrupted",
    StepState.INTERRUPTED: "interrupted",
    StepState.PENDING: "not-executed",
    StepState.CANCELED: "not-executed",
    StepState.NOT_EXECUTED: "not-executed",
}
