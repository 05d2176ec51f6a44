"""Hooks in local runs (`execute_job`), as Dagster 1.13 behaves (observed with it): job hooks on every op, node
hooks from ``with_hooks``, success hooks after a step succeeded and failure hooks after it failed for good; a
failed attempt that is retried skips every hook; a hook that raises is HOOK_ERRORED and the run still succeeds;
the events are Dagster's (HOOK_COMPLETED, HOOK_SKIPPED, HOOK_ERRORED)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cairn.active import Clock
from cairn.definitions import job, op
from cairn.execution import execute_job
from cairn.hooks import failure_hook, success_hook
from cairn.instance import Instance
from cairn.resources import ResourceDefinition
from cairn.retries import RetryPolicy

CALLS: list[Any] = []


@dataclass
class FakeClock:
    now: float = 1_000_000.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> Clock:
        return Clock(wall=lambda: self.now, sleep=self.sleep, rand=lambda: 0.5)


@success_hook
def on_success(context: Any) -> None:
    CALLS.append(("success", context.step_key, context.op.name, dict(context.op_output_values)))


@failure_hook(required_resource_keys={"r"})
def on_failure(context: Any) -> None:
    CALLS.append(("failure", context.step_key, repr(context.op_exception), context.resources.r))


@success_hook(name="bad")
def bad(context: Any) -> None:
    raise ValueError("hook broke")


@op(retry_policy=RetryPolicy(max_retries=2))
def flaky(context: Any) -> int:
    if context.retry_number < 1:
        raise Exception("flake")
    return 5


@op
def fails() -> int:
    raise ValueError("op broke")


@op(retry_policy=RetryPolicy(max_retries=1))
def always() -> int:
    raise Exception("again")


@op
def ok() -> int:
    return 1


@job(hooks={on_success, on_failure}, resource_defs={"r": ResourceDefinition.hardcoded_resource("R")})
def hooked() -> None:
    flaky()
    fails()
    always.with_hooks({bad})()
    ok.with_hooks({bad})()


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    return Instance.local(tmp_path / "home")


def _hook_events(result: Any, step: str) -> list[tuple[str, str]]:
    return [
        (e.event_type_value, e.event_specific_data.hook_name)
        for e in result.all_events
        if e.step_key == step and e.event_type_value.startswith("HOOK_")
    ]


def test_hooks_fire_once_on_each_steps_final_outcome(instance: Instance) -> None:
    CALLS.clear()
    with execute_job(hooked, instance, clock=FakeClock().clock()) as result:
        assert not result.success
        assert sorted(CALLS, key=str) == sorted(
            [
                ("success", "flaky", "flaky", {"result": 5}),
                ("failure", "fails", "ValueError('op broke')", "R"),
                ("failure", "always", "Exception('again')", "R"),
                ("success", "ok", "ok", {"result": 1}),
            ],
            key=str,
        )
        # a retried attempt skips every hook; the final one runs those of its outcome
        assert _hook_events(result, "flaky") == [
            ("HOOK_SKIPPED", "on_failure"),
            ("HOOK_SKIPPED", "on_success"),
            ("HOOK_SKIPPED", "on_failure"),
            ("HOOK_COMPLETED", "on_success"),
        ]
        assert _hook_events(result, "fails") == [("HOOK_COMPLETED", "on_failure"), ("HOOK_SKIPPED", "on_success")]


def test_a_hook_that_raises_is_hook_errored_and_the_run_still_succeeds(instance: Instance) -> None:
    @job(hooks={bad, on_success})
    def one() -> None:
        ok.with_hooks({on_success})()

    CALLS.clear()
    with execute_job(one, instance, raise_on_error=True) as result:
        assert result.success
        assert CALLS == [("success", "ok", "ok", {"result": 1})]
        assert _hook_events(result, "ok") == [("HOOK_ERRORED", "bad"), ("HOOK_COMPLETED", "on_success")]
        errored = next(e for e in result.all_events if e.event_type_value == "HOOK_ERRORED")
        assert "hook broke" in str(errored.event_specific_data.error)
