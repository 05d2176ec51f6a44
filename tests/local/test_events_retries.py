"""The events of retried, failing and fanned-out steps in a local run, in Dagster's order and with Dagster's data
(observed with Dagster 1.13's in-process executor), and that the run store gives the same events back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cairn.active import Clock
from cairn.definitions import DynamicOut, DynamicOutput, job, op
from cairn.events import DagsterEventType, ErrorSource
from cairn.execution import execute_job
from cairn.instance import Instance
from cairn.retries import Failure, RetryPolicy, RetryRequested

T = DagsterEventType


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    return Instance.local(tmp_path / "home")


@dataclass
class FakeTime:
    t: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def clock(self) -> Clock:
        return Clock(wall=lambda: self.t, sleep=self.sleep, rand=lambda: 0.5)


def retried_job(fails: int, policy: RetryPolicy) -> Any:
    attempts: list[int] = []

    @op
    def seed() -> int:
        return 1

    @op(retry_policy=policy)
    def flaky(x: int) -> int:
        attempts.append(len(attempts) + 1)
        if len(attempts) <= fails:
            raise RuntimeError(f"attempt {len(attempts)} failed")
        return x + 1

    @job
    def retried() -> None:
        flaky(seed())

    return retried


def _kinds(events: Any) -> list[DagsterEventType]:
    return [e.event_type for e in events]


def test_a_retried_step_tells_up_for_retry_then_restarted(instance: Instance) -> None:
    fake = FakeTime()
    result = execute_job(retried_job(2, RetryPolicy(max_retries=3, delay=2)), instance, clock=fake.clock())
    assert result.success and fake.sleeps == [2, 2]
    attempt = [T.LOADED_INPUT, T.STEP_INPUT]
    assert _kinds(result.events_for_node("flaky")) == [
        T.STEP_START,
        *attempt,
        T.STEP_UP_FOR_RETRY,
        T.STEP_RESTARTED,
        *attempt,
        T.STEP_UP_FOR_RETRY,
        T.STEP_RESTARTED,
        *attempt,
        T.STEP_OUTPUT,
        T.HANDLED_OUTPUT,
        T.STEP_SUCCESS,
    ]
    assert result.retry_attempts_for_node("flaky") == 2
    retries = [e for e in result.all_events if e.is_step_up_for_retry]
    assert [e.step_retry_data.seconds_to_wait for e in retries] == [2, 2]
    assert [e.step_retry_data.error.message for e in retries if e.step_retry_data.error] == [
        "RuntimeError: attempt 1 failed\n",
        "RuntimeError: attempt 2 failed\n",
    ]
    restarts = [e.message for e in result.all_events if e.is_step_restarted]
    assert restarts == [
        'Started re-execution (attempt # 2) of step "flaky".',
        'Started re-execution (attempt # 3) of step "flaky".',
    ]
    with result:
        assert result.output_for_node("flaky") == 2


def test_the_last_failed_attempt_is_a_step_failure(instance: Instance) -> None:
    result = execute_job(retried_job(5, RetryPolicy(max_retries=1)), instance, clock=FakeTime().clock())
    assert _kinds(result.events_for_node("flaky")) == [
        T.STEP_START,
        T.LOADED_INPUT,
        T.STEP_INPUT,
        T.STEP_UP_FOR_RETRY,
        T.STEP_RESTARTED,
        T.LOADED_INPUT,
        T.STEP_INPUT,
        T.STEP_FAILURE,
    ]
    assert result.all_events[-1].event_type is T.RUN_FAILURE and result.get_failed_step_keys() == {"flaky"}
    data = result.failure_data_for_node("flaky")
    assert data is not None and data.error_source is ErrorSource.USER_CODE_ERROR
    assert data.error is not None and data.error.cause is not None
    assert data.error.cause.message == "RuntimeError: attempt 2 failed\n"


def test_retry_requested_and_failure_without_retries(instance: Instance) -> None:
    @op
    def requests() -> None:
        raise RetryRequested(max_retries=1)

    @op(retry_policy=RetryPolicy(max_retries=3))
    def gives_up() -> None:
        raise Failure("no more", metadata={"rows": 0}, allow_retries=False)

    @job
    def both() -> None:
        requests()
        gives_up()

    result = execute_job(both, instance, clock=FakeTime().clock())
    assert _kinds(result.events_for_node("requests")) == [
        T.STEP_START,
        T.STEP_UP_FOR_RETRY,
        T.STEP_RESTARTED,
        T.STEP_FAILURE,
    ]
    assert _kinds(result.events_for_node("gives_up")) == [T.STEP_START, T.STEP_FAILURE]
    data = result.failure_data_for_node("gives_up")
    assert data is not None and data.user_failure_data is not None
    assert (data.user_failure_data.label, data.user_failure_data.description) == ("intentional-failure", "no more")
    assert data.user_failure_data.metadata["rows"].value == 0  # Dagster's normalized metadata value
    assert result.retry_attempts_for_node("gives_up") == 0


def test_a_retried_runs_events_read_back_from_the_store(instance: Instance) -> None:
    result = execute_job(retried_job(1, RetryPolicy(max_retries=2, delay=1)), instance, clock=FakeTime().clock())
    stored = [e.get_dagster_event() for e in instance.all_logs(result.run_id)]
    assert stored == result.all_events
    retry = next(e for e in stored if e.is_step_up_for_retry)
    assert (
        retry.step_retry_data.seconds_to_wait == 1
        and retry.message == result.all_events[result.all_events.index(retry)].message
    )


def test_fan_out_events_name_mapping_keys(instance: Instance) -> None:
    @op(out={"items": DynamicOut()})
    def split() -> Any:
        for k in ("x", "y"):
            yield DynamicOutput(k, mapping_key=k, output_name="items")

    @op
    def up(s: str) -> str:
        return s.upper()

    @op
    def cat(xs: list[str]) -> str:
        return "".join(xs)

    @job
    def fanned() -> None:
        cat(split().map(up).collect())

    result = execute_job(fanned, instance)
    outputs = [e.step_output_data for e in result.all_events if e.is_successful_output and e.step_key == "split"]
    assert [(o.output_name, o.mapping_key) for o in outputs] == [("items", "x"), ("items", "y")]
    assert next(e.message for e in result.all_events if e.is_successful_output and e.step_key == "split") == (
        'Yielded output "items" mapping key "x" of type "Any". (Type check passed).'
    )
    cat_events = result.events_for_node("cat")
    assert _kinds(cat_events)[:4] == [T.STEP_START, T.LOADED_INPUT, T.LOADED_INPUT, T.STEP_INPUT]
    assert [e.message for e in cat_events[1:3]] == [
        'Loaded input "xs" using input manager "io_manager", from output "result" of step "up[x]"',
        'Loaded input "xs" using input manager "io_manager", from output "result" of step "up[y]"',
    ]
    assert [e.node_name for e in result.events_for_node("up") if e.is_step_start] == ["up", "up"]
    assert [e.step_key for e in result.events_for_node("up") if e.is_step_start] == ["up[x]", "up[y]"]
