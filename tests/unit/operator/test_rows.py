"""A Run's status rows and the run machine's typed rows (reconcile.row_of / apply), as tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cairn import machine
from cairn.machine import Moved, StepRow
from cairn.retries import ExponentialRetries
from cairn.runstate import StepState
from cairn_operator.models import Backoff, Retries
from cairn_operator.reconcile import Event, apply, backoff_seconds, retry_rule, row_of

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
RUNNING = {"phase": "Running", "attempt": 1, "podName": "p-1", "startedAt": "2026-01-01T00:00:02Z", "reason": "failed"}


def test_a_status_row_reads_as_a_typed_row() -> None:
    st = {**RUNNING, "nextAttemptAt": "2026-01-01T00:01:00Z", "exitCode": 2, "message": "m", "keys": {"x": []}}
    assert row_of(st) == StepRow(
        StepState.RUNNING,
        1,
        "failed",
        "m",
        next_attempt_at=T0 + dt.timedelta(minutes=1),
        started_at=T0 + dt.timedelta(seconds=2),
        exit_code=2,
    )
    assert row_of({"phase": "Pending"}) == StepRow(StepState.PENDING)


def rule(limit: int) -> ExponentialRetries:
    return ExponentialRetries(limit, 10, 2, 300)


@pytest.mark.parametrize(
    ("move", "after", "events"),
    [
        # only the fields the transition changed are written; the operator's own keys stay
        (
            lambda r: machine.succeed("s", r, T0, T0 + dt.timedelta(seconds=5)),
            {**RUNNING, "phase": "Succeeded", "finishedAt": "2026-01-01T00:00:05Z", "exitCode": 0},
            [Event("StepSucceeded", "step s succeeded (attempt 1)")],
        ),
        (
            lambda r: machine.attempt_failed("s", r, rule(1), "E: x", T0, lambda: 0.0, exit_code=1),
            {**RUNNING, "phase": "Retrying", "nextAttemptAt": "2026-01-01T00:00:10Z", "exitCode": 1, "message": "E: x"},
            [Event("StepRetrying", "step s attempt 1 failed (E: x); retrying in 10s (attempt 2 of 2)", "Warning")],
        ),
        # a field the transition clears is removed
        (
            lambda r: machine.start("s", machine.attempt_failed("s", r, rule(1), "E", T0, lambda: 0.0).row),
            {**{k: v for k, v in RUNNING.items() if k != "startedAt"}, "attempt": 2, "message": "E"},
            [Event("StepStarted", "step s started (attempt 2)")],
        ),
    ],
)
def test_a_transition_is_written_into_the_status_row(move: Any, after: dict[str, Any], events: list[Event]) -> None:
    st = dict(RUNNING)
    before = row_of(st)
    told: list[Any] = []
    apply(st, before, move(before), told)
    assert st == after and told == events
    quiet = dict(RUNNING)
    apply(quiet, before, move(before))  # no event list: nothing posted (gates, cancels)
    assert quiet == after


def test_an_unchanged_row_writes_nothing() -> None:
    st = dict(RUNNING)
    apply(st, row_of(st), Moved(row_of(st)))
    assert st == RUNNING


@pytest.mark.parametrize(
    ("retries", "delays", "limit"),
    [
        (None, [5, 10, 20], 0),  # the defaults: 5 s doubling, but no retry
        (Retries(limit=3, backoff=Backoff(durationSeconds=5, factor=3, maxDurationSeconds=30)), [5, 15, 30], 3),
    ],
)
def test_an_ops_retries_as_the_machines_rule(retries: Retries | None, delays: list[float], limit: int) -> None:
    r = retry_rule(retries)
    assert r.max_retries == limit
    assert [r.delay(n, lambda: 0.0) for n in (1, 2, 3)] == delays
    if retries is not None:
        assert [backoff_seconds(retries, n) for n in (1, 2, 3)] == delays
