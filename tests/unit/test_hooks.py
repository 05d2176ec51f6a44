"""Hooks as Dagster defines them (`cairn.hooks`): the decorators and their refusals, which hooks fire for which
outcome, when a failure counts as final (the retry decision), and that a hook's error is its own outcome. The
expected messages are Dagster 1.13's, observed with it."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.definitions import job, op
from cairn.errors import DagsterInvalidDefinitionError, DagsterInvariantViolationError
from cairn.hooks import (
    HookContext,
    HookDefinition,
    HookKind,
    HookOutcome,
    build_hook_context,
    failure_hook,
    run_hooks,
    step_hooks,
    success_hook,
    will_retry,
)
from cairn.resources import ResourceDefinition
from cairn.retries import Failure, RetryPolicy, RetryRequested

DAGSTER_HOOK_PARAM_MESSAGE = (
    "'{name}' decorated function does not have required positional parameter 'context'. Hook functions should only "
    "have keyword arguments that match input names and a first positional parameter named 'context' and a second "
    "positional parameter named 'event_list'."
)


def _ctx(context: Any) -> None:
    return None


def _underscore(_: Any) -> None:
    return None


def _with_events(context: Any, event_list: Any) -> None:
    return None


def _ctx_named_otherwise(ctx: Any) -> None:
    return None


def _keyword_only(*, context: Any) -> None:
    return None


def _none() -> None:
    return None


@pytest.mark.parametrize("fn", [_ctx, _underscore, _with_events])
@pytest.mark.parametrize("decorator", [success_hook, failure_hook])
def test_hook_functions_dagster_accepts(fn: Any, decorator: Any) -> None:
    hook = decorator(fn)
    assert isinstance(hook, HookDefinition) and hook.name == fn.__name__


@pytest.mark.parametrize("fn", [_ctx_named_otherwise, _keyword_only, _none])
@pytest.mark.parametrize("decorator", [success_hook, failure_hook])
def test_hook_functions_dagster_refuses_with_its_message(fn: Any, decorator: Any) -> None:
    with pytest.raises(DagsterInvalidDefinitionError) as info:
        decorator(fn)
    assert str(info.value) == DAGSTER_HOOK_PARAM_MESSAGE.format(name=fn.__name__)


def test_decorator_forms_name_and_resources() -> None:
    named = failure_hook("named")(_ctx)
    keyed = success_hook(name="s", required_resource_keys={"db"})(_ctx)
    bare_failure = failure_hook(required_resource_keys={"x"})(_ctx)
    assert (named.name, named.kind) == ("named", HookKind.FAILURE)
    assert (keyed.name, keyed.kind, keyed.required_resource_keys) == ("s", HookKind.SUCCESS, frozenset({"db"}))
    assert (bare_failure.name, bare_failure.required_resource_keys) == ("_ctx", frozenset({"x"}))


def test_a_hook_called_directly_runs_its_function_with_a_built_context() -> None:
    seen: list[Any] = []

    @success_hook
    def record(context: Any) -> None:
        seen.append((context.run_id, context.job_name, context.resources.db, context.op_exception))

    record(build_hook_context(resources={"db": 1}, run_id="r", job_name="j"))
    record(build_hook_context(resources={"db": ResourceDefinition.hardcoded_resource(2)}))
    assert seen == [("r", "j", 1, None), (None, None, 2, None)]


@pytest.mark.parametrize(
    ("kind", "succeeded", "fires"),
    [
        (HookKind.SUCCESS, True, True),
        (HookKind.SUCCESS, False, False),
        (HookKind.FAILURE, True, False),
        (HookKind.FAILURE, False, True),
        (HookKind.ANY, True, True),
        (HookKind.ANY, False, True),
    ],
)
def test_which_hooks_fire(kind: HookKind, succeeded: bool, fires: bool) -> None:
    hook = HookDefinition(name="h", hook_fn=lambda c, e: None, kind=kind)
    assert hook.fires(succeeded) is fires


@pytest.mark.parametrize(
    ("policy", "exc", "retry_number", "retried"),
    [
        (None, ValueError(), 0, False),
        (RetryPolicy(max_retries=2), ValueError(), 0, True),
        (RetryPolicy(max_retries=2), ValueError(), 1, True),
        (RetryPolicy(max_retries=2), ValueError(), 2, False),
        (RetryPolicy(max_retries=2), ValueError(), None, False),
        (RetryPolicy(max_retries=2), Failure("no", allow_retries=False), 0, False),
        (RetryPolicy(max_retries=2), Failure("yes"), 0, True),
        (RetryPolicy(max_retries=2), DagsterInvariantViolationError("framework"), 0, False),
        (RetryPolicy(max_retries=2), KeyboardInterrupt(), 0, False),
        (None, RetryRequested(max_retries=1), 0, True),
        (None, RetryRequested(max_retries=1), 1, False),
        (RetryPolicy(max_retries=5), RetryRequested(max_retries=1), 1, False),
    ],
)
def test_will_retry_matches_the_run_machines_rule(
    policy: RetryPolicy | None, exc: BaseException, retry_number: int | None, retried: bool
) -> None:
    assert will_retry(policy, exc, retry_number) is retried


def test_run_hooks_outcomes_completed_skipped_errored() -> None:
    calls: list[str] = []

    @success_hook
    def ok(context: Any) -> None:
        calls.append(f"ok {context.step_key}")

    @failure_hook
    def on_fail(context: Any) -> None:
        calls.append(f"fail {context.op_exception}")

    @success_hook(name="broken")
    def broken(context: Any) -> None:
        raise ValueError("hook broke")

    def context_for(hook: HookDefinition) -> HookContext:
        return HookContext(hook_def=hook, step_key="s", op_exception=None)

    results = run_hooks([broken, ok, on_fail], True, False, context_for)
    assert [(r.hook, r.outcome) for r in results] == [
        ("broken", HookOutcome.ERRORED),
        ("ok", HookOutcome.COMPLETED),
        ("on_fail", HookOutcome.SKIPPED),
    ]
    assert isinstance(results[0].error, ValueError) and calls == ["ok s"]
    retrying = run_hooks([broken, ok, on_fail], False, True, context_for)
    assert {r.outcome for r in retrying} == {HookOutcome.SKIPPED} and calls == ["ok s"]
    assert [r.outcome for r in run_hooks([ok, on_fail], False, False, context_for)] == [
        HookOutcome.SKIPPED,
        HookOutcome.COMPLETED,
    ]


def test_step_hooks_are_the_jobs_and_the_nodes_each_once() -> None:
    @success_hook
    def a(context: Any) -> None:
        return None

    @failure_hook
    def b(context: Any) -> None:
        return None

    @op
    def one() -> int:
        return 1

    @job(hooks={a})
    def j() -> None:
        one.with_hooks({a, b})()
        one()

    assert [h.name for h in step_hooks(j, j.nodes["one"])] == ["a", "b"]
    assert [h.name for h in step_hooks(j, j.nodes["one_2"])] == ["a"]
