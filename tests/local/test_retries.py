"""Local retries: an op's RetryPolicy, a job's op_retry_policy and RetryRequested, in-process, with a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cairn import (
    Backoff,
    Clock,
    DefinitionError,
    Instance,
    Jitter,
    Out,
    Output,
    ReexecutionOptions,
    RetryPolicy,
    RetryRequested,
    RunStatus,
    StepStatus,
    execute_job,
    job,
    op,
)
from cairn.execution import Event
from cairn.runstate import StepState


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    return Instance.local(tmp_path / "home")


@dataclass
class FakeTime:
    """Time that passes only when the executor sleeps; every sleep recorded."""

    t: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)
    draws: list[float] = field(default_factory=lambda: [0.5])

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def clock(self) -> Clock:
        return Clock(wall=lambda: self.t, sleep=self.sleep, rand=lambda: self.draws[0])


def flaky_job(fails: int, policy: RetryPolicy | None, job_policy: RetryPolicy | None = None) -> Any:
    """A job whose op `flaky` fails its first `fails` attempts; `calls` lists every op call in order."""
    calls: list[str] = []

    @op(retry_policy=policy)
    def flaky() -> int:
        calls.append("flaky")
        if calls.count("flaky") <= fails:
            raise RuntimeError(f"attempt {calls.count('flaky')} failed")
        return 1

    @op
    def after(x: int) -> int:
        calls.append("after")
        return x + 1

    @op
    def aside() -> int:
        calls.append("aside")
        return 0

    @job(op_retry_policy=job_policy)
    def flaky_pipeline() -> None:
        after(flaky())
        aside()

    return flaky_pipeline, calls


@pytest.mark.parametrize(
    ("policy", "fails", "sleeps", "status", "attempts"),
    [
        (RetryPolicy(max_retries=3, delay=2), 2, [2, 2], RunStatus.SUCCESS, 3),
        (RetryPolicy(max_retries=3, delay=1, backoff=Backoff.EXPONENTIAL), 3, [1, 3, 7], RunStatus.SUCCESS, 4),
        (RetryPolicy(max_retries=2, delay=1, backoff=Backoff.LINEAR), 5, [1, 2], RunStatus.FAILURE, 3),
        (
            RetryPolicy(max_retries=2, delay=2, backoff=Backoff.LINEAR, jitter=Jitter.FULL),
            5,
            [1, 2],
            RunStatus.FAILURE,
            3,
        ),
        (RetryPolicy(), 1, [], RunStatus.SUCCESS, 2),  # Dagster's default: one retry, at once
        (None, 1, [], RunStatus.FAILURE, 1),
    ],
)
def test_an_op_is_retried_per_its_policy(
    instance: Instance, policy: RetryPolicy | None, fails: int, sleeps: list[float], status: RunStatus, attempts: int
) -> None:
    pipeline, calls = flaky_job(fails, policy)
    fake = FakeTime()
    events: list[Event] = []
    result = execute_job(pipeline, instance=instance, clock=fake.clock(), on_event=events.append)
    assert result.status is status
    assert fake.sleeps == pytest.approx(sleeps)
    assert calls.count("flaky") == attempts
    run = result.get_run()
    assert run.steps["flaky"].attempts == attempts
    assert run.steps["aside"].attempts == 1
    retries = [d for kind, step, d in events if kind == "step_retry"]
    assert [d["attempt"] for d in retries] == list(range(1, attempts))  # the last failure is not retried
    assert all(d["error"].startswith("RuntimeError: attempt ") for d in retries)
    if status is RunStatus.SUCCESS:
        assert result.step_statuses["after"] is StepStatus.SUCCESS and result.output_from_lineage("after") == 2
        assert run.steps["flaky"].error is None
    else:
        assert run.steps["flaky"].state is StepState.FAILED
        assert result.step_statuses["after"] is StepStatus.NOT_EXECUTED
        assert f"RuntimeError: attempt {attempts} failed" in result.errors["flaky"]


@pytest.mark.parametrize(
    ("own", "of_job", "attempts"),
    [
        (None, RetryPolicy(max_retries=2), 3),  # the job's op_retry_policy
        (RetryPolicy(max_retries=1), RetryPolicy(max_retries=4), 2),  # the op's own wins
    ],
)
def test_a_jobs_op_retry_policy_applies_to_ops_without_their_own(
    instance: Instance, own: RetryPolicy | None, of_job: RetryPolicy, attempts: int
) -> None:
    pipeline, calls = flaky_job(10, own, of_job)
    result = execute_job(pipeline, instance=instance, clock=FakeTime().clock())
    assert not result.success and calls.count("flaky") == attempts


def test_steps_that_do_not_need_a_retrying_step_run_while_it_waits(instance: Instance) -> None:
    pipeline, calls = flaky_job(1, RetryPolicy(max_retries=1, delay=5))
    fake = FakeTime()
    result = execute_job(pipeline, instance=instance, clock=fake.clock())
    assert result.success
    assert calls == ["flaky", "aside", "flaky", "after"]  # aside ran first; after waited for flaky
    assert fake.sleeps == [5]


@pytest.mark.parametrize(
    ("request_", "sleeps", "attempts", "status"),
    [
        (RetryRequested(), [], 2, RunStatus.FAILURE),  # max_retries=1, seconds_to_wait=None
        (RetryRequested(max_retries=3, seconds_to_wait=1.5), [1.5, 1.5, 1.5], 4, RunStatus.FAILURE),
    ],
)
def test_an_op_requests_a_retry(
    instance: Instance, request_: RetryRequested, sleeps: list[float], attempts: int, status: RunStatus
) -> None:
    calls: list[int] = []

    @op(retry_policy=RetryPolicy(max_retries=10, delay=100))  # a RetryRequested is not subject to the policy
    def asks() -> None:
        calls.append(1)
        try:
            raise ConnectionError("flaky network")
        except ConnectionError as exc:
            raise request_ from exc

    @job
    def asking() -> None:
        asks()

    fake = FakeTime()
    result = execute_job(asking, instance=instance, clock=fake.clock())
    assert result.status is status and len(calls) == attempts and fake.sleeps == sleeps
    assert result.get_run().steps["asks"].attempts == attempts
    assert "ConnectionError: flaky network" in result.errors["asks"]


def test_a_failed_attempts_outputs_are_not_the_steps(instance: Instance) -> None:
    """An optional output the failed attempt stored and the retry did not: gone, its consumer skipped."""
    attempts: list[int] = []

    @op(out={"a": Out(), "b": Out(is_required=False)}, retry_policy=RetryPolicy(max_retries=1))
    def two() -> Any:
        attempts.append(1)
        yield Output(1, "a")
        if len(attempts) == 1:
            yield Output(2, "b")
            raise RuntimeError("after b")

    @op
    def use_b(b: int) -> int:
        return b

    @job
    def partial() -> None:
        _, b = two()
        use_b(b)

    result = execute_job(partial, instance=instance, clock=FakeTime().clock())
    assert result.success and len(attempts) == 2
    assert result.step_statuses == {"two": StepStatus.SUCCESS, "use_b": StepStatus.SKIPPED}
    assert ("two", "b") not in result.get_run().outputs and result.output_from_lineage("two", "a") == 1


def test_ctrl_c_while_waiting_for_a_retry_cancels_the_run(instance: Instance) -> None:
    pipeline, _ = flaky_job(1, RetryPolicy(max_retries=1, delay=30))

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    result = execute_job(pipeline, instance=instance, clock=Clock(wall=lambda: 0.0, sleep=interrupted))
    assert result.status is RunStatus.CANCELED
    run = result.get_run()
    assert {s: r.state for s, r in run.steps.items()} == {
        "flaky": StepState.CANCELED,
        "after": StepState.CANCELED,
        "aside": StepState.SUCCEEDED,
    }
    child = execute_job(
        pipeline, instance=instance, reexecution_options=ReexecutionOptions.from_failure(result.run_id, instance)
    )
    assert child.success and child.executed_steps == ["flaky", "after"]


def test_raise_on_error_after_the_last_attempt(instance: Instance) -> None:
    pipeline, calls = flaky_job(5, RetryPolicy(max_retries=1))
    with pytest.raises(RuntimeError, match=r"^attempt 2 failed$"):  # the op's own error, as Dagster raises it
        execute_job(pipeline, instance=instance, raise_on_error=True, clock=FakeTime().clock())
    assert calls.count("flaky") == 2


@pytest.mark.parametrize(
    ("declare", "error"),
    [
        (lambda: op(retry_policy=3)(lambda: 1), "retry_policy must be a RetryPolicy, got 3"),  # type: ignore[call-overload]
        (lambda: job(op_retry_policy={"max_retries": 1})(lambda: None), "op_retry_policy must be a RetryPolicy"),  # type: ignore[call-overload]
    ],
)
def test_a_policy_that_is_not_one_is_refused(declare: Any, error: str) -> None:
    with pytest.raises(DefinitionError, match=error):
        declare()
