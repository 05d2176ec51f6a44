"""The one run-state machine (cairn.runstate) as tables: the rules both executors apply."""

from __future__ import annotations

import pytest

from cairn.runstate import (
    Gate,
    Initial,
    RunPhase,
    StepState,
    from_failure_reason,
    gate,
    initial_state,
    on_cancel,
    run_outcome,
    stays_skipped,
)
from cairn.status import RunStatus, StepStatus

P, RUN, RT, OK, F, INT, C, K, N, R = (
    StepState.PENDING,
    StepState.RUNNING,
    StepState.RETRYING,
    StepState.SUCCEEDED,
    StepState.FAILED,
    StepState.INTERRUPTED,
    StepState.CANCELED,
    StepState.SKIPPED,
    StepState.NOT_EXECUTED,
    StepState.REUSED,
)


@pytest.mark.parametrize(
    ("state", "terminal", "waiting", "produced", "blocks", "ran", "public", "from_failure"),
    [
        (P, False, True, False, False, False, StepStatus.NOT_EXECUTED, "not-executed"),
        (RUN, False, False, False, False, False, StepStatus.FAILURE, "interrupted"),
        (RT, False, True, False, False, False, StepStatus.FAILURE, "failed"),
        (OK, True, False, True, False, True, StepStatus.SUCCESS, None),
        (F, True, False, False, True, True, StepStatus.FAILURE, "failed"),
        (INT, True, False, False, True, True, StepStatus.FAILURE, "interrupted"),
        (C, True, False, False, True, False, StepStatus.NOT_EXECUTED, "not-executed"),
        (K, True, False, False, False, False, StepStatus.SKIPPED, None),
        (N, True, False, False, True, False, StepStatus.NOT_EXECUTED, "not-executed"),
        (R, True, False, True, False, False, StepStatus.REUSED, None),
    ],
)
def test_each_state(
    state: StepState,
    terminal: bool,
    waiting: bool,
    produced: bool,
    blocks: bool,
    ran: bool,
    public: StepStatus,
    from_failure: str | None,
) -> None:
    assert (state.terminal, state.waiting, state.produced_outputs, state.blocks_downstream, state.ran) == (
        terminal,
        waiting,
        produced,
        blocks,
        ran,
    )
    assert state.public() is public
    assert from_failure_reason(state) == from_failure
    assert stays_skipped(state) is (state is K)


def test_every_state_is_in_the_tables() -> None:
    assert len(StepState) == 10 and len({s.value for s in StepState}) == 10


@pytest.mark.parametrize(
    ("stored", "state"),
    [
        ("Succeeded", OK),
        ("NotExecuted", N),
        # what the local run store wrote before this enum: still read
        ("SUCCESS", OK),
        ("FAILURE", F),
        ("STARTED", RUN),
        ("NOT_EXECUTED", N),
        ("INTERRUPTED", INT),
        ("REUSED", R),
        ("SKIPPED", K),
        ("PENDING", P),
    ],
)
def test_stored_values_are_read(stored: str, state: StepState) -> None:
    assert StepState(stored) is state


def test_an_unknown_stored_value_is_refused() -> None:
    with pytest.raises(ValueError, match="'Bogus' is not a valid StepState"):
        StepState("Bogus")


@pytest.mark.parametrize(
    ("phase", "finished", "resumable", "public"),
    [
        (RunPhase.PENDING, False, False, RunStatus.QUEUED),
        (RunPhase.RUNNING, False, False, RunStatus.STARTED),
        (RunPhase.SUCCEEDED, True, False, RunStatus.SUCCESS),
        (RunPhase.FAILED, True, True, RunStatus.FAILURE),
        (RunPhase.CANCELED, True, True, RunStatus.CANCELED),
    ],
)
def test_run_phases(phase: RunPhase, finished: bool, resumable: bool, public: RunStatus) -> None:
    assert (phase.finished, phase.can_resume_from_failure, phase.public()) == (finished, resumable, public)
    assert RunPhase.of(public) is phase


PLAN = {"b": "failed", "c": "downstream-of:b"}
REUSED = {"a": "root-run"}
SKIPPED = {"g": "skipped in the parent run"}


@pytest.mark.parametrize(
    ("step", "to_run", "initial"),
    [
        ("a", None, Initial(P)),  # a first run executes everything
        ("b", PLAN, Initial(P, "failed")),
        ("c", PLAN, Initial(P, "downstream-of:b")),
        ("a", PLAN, Initial(R, "reused", "root-run")),
        ("g", PLAN, Initial(K, "skipped in the parent run")),
        ("e", PLAN, Initial(N, "not selected")),
    ],
)
def test_initial_state(step: str, to_run: dict[str, str | None] | None, initial: Initial) -> None:
    assert initial_state(step, to_run, REUSED, SKIPPED) == initial


# d reads b.result and c.result; c.maybe is optional
INPUTS = {"x": ("b", "result"), "y": ("c", "result")}


@pytest.mark.parametrize(
    ("b", "c", "produced", "decision"),
    [
        (OK, OK, {"b.result", "c.result"}, (Gate.READY, "", None)),
        (R, OK, {"b.result", "c.result"}, (Gate.READY, "", None)),
        (OK, RUN, {"b.result"}, (Gate.WAIT, "", None)),
        (OK, RT, {"b.result"}, (Gate.WAIT, "", None)),
        (F, RUN, set(), (Gate.BLOCKED, "upstream failed: b", N)),  # blocked while c still runs
        (INT, N, set(), (Gate.BLOCKED, "upstream failed: b, c", N)),
        (C, OK, {"c.result"}, (Gate.BLOCKED, "upstream failed: b", N)),
        (K, OK, {"c.result"}, (Gate.SKIP, "input not produced: b.result", K)),
        (OK, OK, {"b.result"}, (Gate.SKIP, "input not produced: c.result", K)),  # an optional output
    ],
)
def test_gate(b: StepState, c: StepState, produced: set[str], decision: tuple[Gate, str, StepState | None]) -> None:
    d = gate(INPUTS, {"b": b, "c": c}.__getitem__, lambda up, out: f"{up}.{out}" in produced)
    assert (d.gate, d.reason, d.state) == decision


def test_a_step_without_inputs_is_ready() -> None:
    none: dict[str, StepState] = {}
    assert gate({}, none.__getitem__, lambda up, out: False).gate is Gate.READY


@pytest.mark.parametrize(
    ("state", "after"), [(P, C), (RT, C), (RUN, INT), (OK, OK), (F, F), (K, K), (N, N), (R, R), (INT, INT)]
)
def test_on_cancel(state: StepState, after: StepState) -> None:
    assert on_cancel(state) is after


@pytest.mark.parametrize(
    ("states", "canceled", "phase"),
    [
        ([OK, R, K, N], False, RunPhase.SUCCEEDED),
        ([OK, RUN], False, RunPhase.RUNNING),
        ([F, P], False, RunPhase.RUNNING),
        ([OK, RT], False, RunPhase.RUNNING),
        ([OK, F, N], False, RunPhase.FAILED),
        ([OK, INT], False, RunPhase.FAILED),
        ([OK, RUN], True, RunPhase.CANCELED),
        ([OK, OK], True, RunPhase.CANCELED),
        ([], False, RunPhase.SUCCEEDED),
    ],
)
def test_run_outcome(states: list[StepState], canceled: bool, phase: RunPhase) -> None:
    assert run_outcome(states, canceled) is phase
