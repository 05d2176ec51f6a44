"""The one run-state machine (cairn.runstate, cairn.machine, cairn.retries) as tables: the rules and
transitions both executors apply."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cairn import machine
from cairn.errors import DefinitionError
from cairn.machine import Announce, Moved, Planned, StepRow
from cairn.retries import (
    Backoff,
    ExponentialRetries,
    Jitter,
    RetryPolicy,
    RetryRequested,
    RetryRule,
    requested_rule,
)
from cairn.runstate import (
    Decision,
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


# ----- the transitions (cairn.machine) and the retry rules (cairn.retries) ---------------------------------

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def no_rand() -> float:
    raise AssertionError("a rule without jitter draws no random number")


def row(state: StepState, attempt: int = 0, **kw: Any) -> StepRow:
    return StepRow(state, attempt, **kw)


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        (row(P), row(RUN, 1), ("StepStarted", "step s started (attempt 1)")),
        (
            row(RT, 2, message="boom", next_attempt_at=at(9), finished_at=at(5), exit_code=1, reason="failed"),
            row(RUN, 3, message="boom", reason="failed"),
            ("StepStarted", "step s started (attempt 3)"),
        ),
    ],
)
def test_start(before: StepRow, after: StepRow, event: tuple[str, str]) -> None:
    moved = machine.start("s", before)
    assert moved.row == after and moved.event == Announce(*event)


def test_start_refuses_a_step_that_is_not_waiting() -> None:
    with pytest.raises(AssertionError):
        machine.start("s", row(OK, 1))


@pytest.mark.parametrize(
    ("before", "finished", "after"),
    [
        (row(RUN, 1, message="pulling"), None, row(OK, 1, finished_at=at(10), exit_code=0)),
        (row(RUN, 2, started_at=at(1)), at(7), row(OK, 2, started_at=at(1), finished_at=at(7), exit_code=0)),
    ],
)
def test_succeed(before: StepRow, finished: dt.datetime | None, after: StepRow) -> None:
    moved = machine.succeed("s", before, at(10), finished)
    assert moved.row == after
    assert moved.event == Announce("StepSucceeded", f"step s succeeded (attempt {before.attempt})")


TWICE = ExponentialRetries(max_retries=2, base=10, factor=2, cap=25)
W = "Warning"


@pytest.mark.parametrize(
    ("rule", "attempt", "interrupted", "finished", "after", "event"),
    [
        # no rule: the first failure ends the step
        (
            None,
            1,
            False,
            None,
            row(F, 1, message="E", exit_code=3, finished_at=at(100)),
            "step s failed after 1 attempt(s): E",
        ),
        # retried while attempt <= max_retries, after the rule's delay; the attempt's end time kept
        (
            TWICE,
            1,
            False,
            at(99),
            row(RT, 1, message="E", exit_code=3, finished_at=at(99), next_attempt_at=at(110)),
            "step s attempt 1 failed (E); retrying in 10s (attempt 2 of 3)",
        ),
        (
            TWICE,
            2,
            True,
            None,
            row(RT, 2, message="E", exit_code=3, next_attempt_at=at(120)),
            "step s attempt 2 failed (E); retrying in 20s (attempt 3 of 3)",
        ),
        # exhausted: Failed, or Interrupted when stopped from outside
        (
            TWICE,
            3,
            False,
            at(99),
            row(F, 3, message="E", exit_code=3, finished_at=at(99)),
            "step s failed after 3 attempt(s): E",
        ),
        (
            TWICE,
            3,
            True,
            None,
            row(INT, 3, message="E", exit_code=3, finished_at=at(100)),
            "step s failed after 3 attempt(s): E",
        ),
        # Dagster's policy: 0.2 s, then 0.4 s (LINEAR)
        (
            RetryPolicy(2, 0.2, Backoff.LINEAR).rule(),
            2,
            False,
            None,
            row(RT, 2, message="E", exit_code=3, next_attempt_at=at(100.4)),
            "step s attempt 2 failed (E); retrying in 0.4s (attempt 3 of 3)",
        ),
        # an op's RetryRequested(max_retries=1, seconds_to_wait=None): at once, once
        (
            requested_rule(RetryRequested()),
            1,
            False,
            None,
            row(RT, 1, message="E", exit_code=3, next_attempt_at=at(100)),
            "step s attempt 1 failed (E); retrying in 0s (attempt 2 of 2)",
        ),
        (
            requested_rule(RetryRequested()),
            2,
            False,
            None,
            row(F, 2, message="E", exit_code=3, finished_at=at(100)),
            "step s failed after 2 attempt(s): E",
        ),
    ],
)
def test_attempt_failed(
    rule: RetryRule | None,
    attempt: int,
    interrupted: bool,
    finished: dt.datetime | None,
    after: StepRow,
    event: str,
) -> None:
    moved = machine.attempt_failed(
        "s", row(RUN, attempt), rule, "E", at(100), no_rand, exit_code=3, finished=finished, interrupted=interrupted
    )
    assert moved.row == after
    assert moved.event == Announce("StepRetrying" if after.state is RT else "StepFailed", event, W)


@pytest.mark.parametrize(
    ("finished", "reason", "after", "event"),
    [
        (at(4), None, row(F, 1, message="M", finished_at=at(4)), Announce("StepFailed", "step s: M", W)),
        (None, "PodRefused", row(F, 1, message="M", finished_at=at(5)), Announce("PodRefused", "step s: M", W)),
    ],
)
def test_fail_ignores_retries(
    finished: dt.datetime | None, reason: str | None, after: StepRow, event: Announce
) -> None:
    kw = {"reason": reason} if reason else {}
    moved = machine.fail("s", row(RUN, 1), "M", at(5), finished, **kw)
    assert moved == Moved(after, event)


@pytest.mark.parametrize(
    ("before", "attempt", "after"),
    [
        (row(P), 1, row(RUN, 1)),
        (row(RT, 1, next_attempt_at=at(5), message="E"), 2, row(RUN, 2, message="E")),
    ],
)
def test_adopt(before: StepRow, attempt: int, after: StepRow) -> None:
    assert machine.adopt(before, attempt) == Moved(after, None)


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        (
            row(RUN, 1),
            row(INT, 1, finished_at=at(3)),
            ("StepInterrupted", "step s interrupted: the run was canceled", W),
        ),
        (
            row(P),
            row(C, finished_at=at(3)),
            ("StepCanceled", "step s canceled before it started: the run was canceled", "Normal"),
        ),
        (
            row(RT, 1, next_attempt_at=at(9)),
            row(C, 1, next_attempt_at=at(9), finished_at=at(3)),
            ("StepCanceled", "step s canceled before it started: the run was canceled", "Normal"),
        ),
        (row(OK, 1, finished_at=at(1)), row(OK, 1, finished_at=at(1)), None),
        (row(N, reason="not selected"), row(N, reason="not selected"), None),
    ],
)
def test_cancel(before: StepRow, after: StepRow, event: tuple[str, str, str] | None) -> None:
    moved = machine.cancel("s", before, at(3))
    assert moved.row == after and moved.event == (Announce(*event) if event else None)


def test_interrupt() -> None:
    moved = machine.interrupt("s", row(RUN, 2), "interrupted: run canceled", at(3))
    assert moved.row == row(INT, 2, message="interrupted: run canceled", finished_at=at(3))
    assert moved.event == Announce("StepInterrupted", "step s interrupted: interrupted: run canceled", W)


@pytest.mark.parametrize(
    ("decision", "after", "reason"),
    [
        (Decision(Gate.BLOCKED, "upstream failed: b"), row(N, reason="upstream failed: b"), "StepNotExecuted"),
        (Decision(Gate.SKIP, "input not produced: b.x"), row(K, reason="input not produced: b.x"), "StepSkipped"),
    ],
)
def test_settle(decision: Decision, after: StepRow, reason: str) -> None:
    moved = machine.settle("s", row(P, reason="failed"), decision)
    assert moved.row == after and moved.event == Announce(reason, f"step s: {decision.reason}")


CHILD = Planned(
    to_run={"split": "failed", "work[*]": "downstream-of:split", "work[b]": "failed"},
    reused={"work[a]": "root-run", "load": "root-run"},
    skipped={"opt": "skipped in the parent run"},
)


@pytest.mark.parametrize(
    ("plan", "step", "after"),
    [
        (Planned(), "work[x]", row(P)),  # a first run runs everything
        (CHILD, "split", row(P, reason="failed")),
        (CHILD, "work[z]", row(P, reason="downstream-of:split")),  # an instance takes its placeholder's reason
        (CHILD, "work[b]", row(P, reason="failed")),  # ... unless the plan names it
        (CHILD, "work[a]", row(R, reason="reused")),
        (CHILD, "load", row(R, reason="reused")),
        (CHILD, "opt", row(K, reason="skipped in the parent run")),
        (CHILD, "other[q]", row(N, reason="not selected")),
    ],
)
def test_initial_row(plan: Planned, step: str, after: StepRow) -> None:
    assert machine.initial_row(step, plan) == after


@pytest.mark.parametrize(
    ("keys", "rows"),
    [
        (["z", "b"], {"work[z]": row(P, reason="downstream-of:split"), "work[b]": row(P, reason="failed")}),
        ([], {}),
    ],
)
def test_expand(keys: list[str], rows: dict[str, StepRow]) -> None:
    new, event = machine.expand("work[*]", keys, CHILD)
    assert new == rows and list(new) == list(rows)
    assert event == Announce("StepMapped", f"step work[*] mapped over {len(keys)} key(s)")


@pytest.mark.parametrize(
    ("states", "canceled", "result"),
    [
        ({"a": OK, "b": RUN}, None, (RunPhase.RUNNING, "1/2", 0, None, None)),
        ({"a": OK, "b": R, "c": K}, None, (RunPhase.SUCCEEDED, "3/3", 0, "all 3 steps done", "Normal")),
        ({"a": F, "b": N, "c": INT}, None, (RunPhase.FAILED, "3/3", 2, "step(s) failed: a, c", W)),
        ({"a": INT, "b": C}, "canceled by spec.cancel", (RunPhase.CANCELED, "2/2", 1, "canceled by spec.cancel", W)),
    ],
)
def test_run_result(
    states: dict[str, StepState], canceled: str | None, result: tuple[RunPhase, str, int, str | None, str | None]
) -> None:
    r = machine.run_result(states, canceled)
    phase, progress, failed, message, kind = result
    assert (r.phase, r.progress, r.failed, r.message) == (phase, progress, failed, message)
    assert r.event == (Announce(f"Run{phase.value}", message, kind) if message and kind else None)


DRAWS = [0.25]


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        (RetryPolicy(), [0, 0, 0]),  # Dagster's default: max_retries=1, no delay
        (RetryPolicy(3, 2), [2, 2, 2]),
        (RetryPolicy(3, 2, Backoff.LINEAR), [2, 4, 6]),
        (RetryPolicy(3, 2, Backoff.EXPONENTIAL), [2, 6, 14]),  # (2**n - 1) * delay
        (RetryPolicy(3, 2, Backoff.EXPONENTIAL, Jitter.FULL), [0.5, 1.5, 3.5]),  # rand() * that
        (RetryPolicy(3, 2, None, Jitter.PLUS_MINUS), [1, 1, 1]),  # that + 2 * rand() * delay - delay
        (RetryPolicy(3, 2, Backoff.LINEAR, Jitter.PLUS_MINUS), [1, 3, 5]),
    ],
)
def test_dagster_delay(policy: RetryPolicy, delays: list[float]) -> None:
    rule = policy.rule()
    assert rule.max_retries == policy.max_retries
    assert [rule.delay(n, lambda: DRAWS[0]) for n in (1, 2, 3)] == delays


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"backoff": Backoff.LINEAR}, "Can not set backoff on RetryPolicy without also setting delay"),
        ({"jitter": Jitter.FULL}, "Can not set jitter on RetryPolicy without also setting delay"),
        ({"max_retries": -1}, "a number of retries, 0 or more"),
        ({"delay": "1s"}, "seconds, a number"),
    ],
)
def test_retry_policy_refuses(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(DefinitionError, match=error):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("rule", "delays"),
    [
        (ExponentialRetries(3, 10, 2, 25), [10, 20, 25]),  # a Job's retries.backoff, capped
        (ExponentialRetries(3, 5, 1, 300), [5, 5, 5]),
        (requested_rule(RetryRequested(max_retries=3, seconds_to_wait=1.5)), [1.5, 1.5, 1.5]),
    ],
)
def test_other_rules(rule: RetryRule, delays: list[float]) -> None:
    assert [rule.delay(n, no_rand) for n in (1, 2, 3)] == delays
