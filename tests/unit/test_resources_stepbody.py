"""The step body with resources, IO managers and hooks (`cairn.stepbody.run_step_body`), driven directly with an
in-memory store: what the op's context sees, when resources are set up and torn down, what a job IO manager
is given and what Cairn's store keeps instead, and which hooks run for which attempt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from cairn.definitions import DynamicOut, DynamicOutput, JobDefinition, Out, Output, job, op
from cairn.errors import DagsterInvalidDefinitionError, DagsterUnknownResourceError
from cairn.hooks import failure_hook, success_hook
from cairn.resources import (
    ConfigurableResource,
    InMemoryIOManager,
    IOManager,
    ManagedOutput,
    io_manager,
    resource,
)
from cairn.retries import RetryPolicy
from cairn.stepbody import outs_format, run_step_body


class Store:
    """Cairn's store for one test: values by (run, step, output), with the format each was stored in."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], tuple[Any, str]] = {}

    def run(self, job: JobDefinition, step: str, run_id: str = "r1", parent: str | None = None, **kw: Any) -> list[str]:
        def load(inp: str, up: str, out: str) -> Any:
            value, fmt = self.values[(parent or run_id, up, out)]
            assert fmt == outs_format(job, up, out)
            return json.loads(json.dumps(value)) if fmt == "json" else value

        def store(name: str, value: Any, fmt: str) -> None:
            self.values[(run_id, step, name)] = (value, fmt)

        return run_step_body(job, step, run_id, None, load, store, **kw)


LOG: list[Any] = []


class Counter(ConfigurableResource):
    start: int = 0

    def setup_for_execution(self, context: Any) -> None:
        LOG.append(("setup", self.start))

    def teardown_after_execution(self, context: Any) -> None:
        LOG.append(("teardown", self.start))


@resource(config_schema={"k": int})
def knob(init_context: Any) -> Iterator[int]:
    LOG.append(("knob up", init_context.run_id))
    yield init_context.resource_config["k"]
    LOG.append(("knob down",))


@op(required_resource_keys={"counter", "knob"})
def uses(context: Any) -> int:
    with pytest.raises(DagsterUnknownResourceError, match="Unknown resource `other`"):
        context.resources.other  # noqa: B018
    return int(context.resources.counter.start) + int(context.resources.knob)


@op(required_resource_keys={"knob"})
def fails(context: Any) -> int:
    raise ValueError("op broke")


@job(resource_defs={"counter": Counter(start=1), "knob": knob, "other": 5})
def with_resources() -> None:
    uses()
    fails()


def test_the_op_sees_only_its_resources_set_up_and_torn_down_around_the_step() -> None:
    LOG.clear()
    store = Store()
    config = {"knob": {"config": {"k": 4}}, "counter": {"config": {"start": 10}}}
    assert store.run(with_resources, "uses", resources_config=config) == ["result"]
    assert store.values[("r1", "uses", "result")] == (14, "pickle")
    assert LOG == [("setup", 10), ("knob up", "r1"), ("knob down",), ("teardown", 10)]
    LOG.clear()
    with pytest.raises(ValueError, match="op broke"):
        store.run(with_resources, "fails", resources_config=config)
    assert LOG == [("knob up", "r1"), ("knob down",)]


def test_resources_the_run_already_opened_are_used_as_they_are() -> None:
    LOG.clear()
    from cairn.context import Resources

    store = Store()
    assert store.run(with_resources, "uses", resources=Resources({"counter": Counter(start=2), "knob": 3}))
    assert store.values[("r1", "uses", "result")] == (5, "pickle") and LOG == []


def test_a_resource_the_job_does_not_define_is_dagsters_definition_error_at_run_time() -> None:
    @op(required_resource_keys={"foo"})
    def needs_foo(context: Any) -> Any:
        return context.resources.foo

    def make() -> JobDefinition:
        @job
        def j() -> None:
            needs_foo()

        return j

    with pytest.raises(DagsterInvalidDefinitionError, match="resource with key 'foo' required by op 'needs_foo'"):
        Store().run(make(), "needs_foo")


class Recording(IOManager):
    def __init__(self) -> None:
        self.handled: list[tuple[list[str], Any]] = []
        self.inner = InMemoryIOManager()

    def handle_output(self, context: Any, obj: Any) -> None:
        self.handled.append((context.get_identifier(), obj))
        self.inner.handle_output(context, obj)

    def load_input(self, context: Any) -> Any:
        return ("loaded", context.name, context.upstream_output.run_id, self.inner.load_input(context))


RECORDING = Recording()


@io_manager
def recording(_: Any) -> Recording:
    return RECORDING


@op(out=Out(io_manager_key="mine"))
def produce() -> int:
    return 7


@op
def consume(x: Any) -> Any:
    return x


@op(out=DynamicOut(io_manager_key="mine"))
def split() -> Iterator[DynamicOutput]:
    for k in ("p", "q"):
        yield DynamicOutput(k * 2, mapping_key=k)


@op
def per_key(v: Any) -> Any:
    return v


@job(resource_defs={"mine": recording})
def managed() -> None:
    consume(produce())
    split().map(per_key)


def test_an_output_of_a_job_io_manager_goes_to_it_and_the_store_keeps_its_record() -> None:
    RECORDING.handled.clear()
    store = Store()
    store.run(managed, "produce", run_id="parent")
    assert RECORDING.handled == [(["parent", "produce", "result"], 7)]
    value, fmt = store.values[("parent", "produce", "result")]
    assert fmt == "json" and ManagedOutput.from_stored(value) == ManagedOutput("mine", "parent", "produce", "result")
    # a child run's step loads it through the IO manager, as the parent run that produced it
    store.run(managed, "consume", run_id="child", parent="parent")
    assert store.values[("child", "consume", "result")] == (("loaded", "x", "parent", 7), "pickle")


def test_each_key_of_a_dynamic_output_goes_to_its_io_manager_and_the_key_index_to_the_store() -> None:
    RECORDING.handled.clear()
    store = Store()
    assert store.run(managed, "split") == ["result[p]", "result[q]", "result"]
    assert RECORDING.handled == [(["r1", "split", "result", "p"], "pp"), (["r1", "split", "result", "q"], "qq")]
    assert store.values[("r1", "split", "result")] == (["p", "q"], "json")
    store.run(managed, "per_key[q]")
    assert store.values[("r1", "per_key[q]", "result")][0] == ("loaded", "v", "r1", "qq")


HOOK_CALLS: list[Any] = []
KNOB_2 = {"knob": {"config": {"k": 2}}}


@success_hook(required_resource_keys={"knob"})
def on_ok(context: Any) -> None:
    HOOK_CALLS.append(("ok", context.step_key, context.resources.knob, dict(context.op_output_values)))


@failure_hook
def on_fail(context: Any) -> None:
    HOOK_CALLS.append(("fail", context.step_key, repr(context.op_exception), dict(context.op_output_values)))


@success_hook(name="broken")
def broken(context: Any) -> None:
    raise RuntimeError("hook broke")


@op(retry_policy=RetryPolicy(max_retries=1))
def flaky() -> int:
    raise ValueError("flake")


@op
def fine() -> int:
    return 3


@op(out=DynamicOut())
def fan() -> Iterator[DynamicOutput]:
    for k in ("p", "q"):
        yield DynamicOutput(k * 2, mapping_key=k)


@job(resource_defs={"knob": knob}, hooks={on_ok, on_fail})
def hooked() -> None:
    flaky()
    fine.with_hooks({broken})()
    fan().map(per_key)


@pytest.mark.parametrize(
    ("retry_number", "calls", "outcomes"),
    [
        (0, [], ["hook_skipped", "hook_skipped"]),  # will be retried: every hook skipped (Dagster)
        (1, [("fail", "flaky", "ValueError('flake')", {})], ["hook_completed", "hook_skipped"]),  # the last attempt
        (None, [("fail", "flaky", "ValueError('flake')", {})], ["hook_completed", "hook_skipped"]),  # unknown: last
    ],
)
def test_failure_hooks_run_on_the_final_failure_only(
    retry_number: int | None, calls: list[Any], outcomes: list[str]
) -> None:
    HOOK_CALLS.clear()
    events: list[Any] = []
    with pytest.raises(ValueError, match="flake"):
        Store().run(hooked, "flaky", retry_number=retry_number, emit=events.append, resources_config=KNOB_2)
    assert calls == HOOK_CALLS
    assert [e[0] for e in events] == outcomes and [e[2]["hook"] for e in events] == ["on_fail", "on_ok"]


def test_success_hooks_see_the_outputs_and_a_broken_hook_does_not_fail_the_step() -> None:
    HOOK_CALLS.clear()
    events: list[Any] = []
    store = Store()
    assert store.run(hooked, "fine", retry_number=0, resources_config=KNOB_2, emit=events.append)
    assert HOOK_CALLS == [("ok", "fine", 2, {"result": 3})]
    assert [(e[0], e[2]["hook"]) for e in events] == [
        ("hook_errored", "broken"),
        ("hook_skipped", "on_fail"),
        ("hook_completed", "on_ok"),
    ]
    assert events[0][2]["error"] == "RuntimeError: hook broke"
    HOOK_CALLS.clear()
    store.run(hooked, "fan", resources_config=KNOB_2)
    assert HOOK_CALLS == [("ok", "fan", 2, {"result": {"p": "pp", "q": "qq"}})]


@op(out={"one": Out(), "two": Out()})
def half() -> Iterator[Output]:
    yield Output(1, "one")
    raise ValueError("half done")


@on_fail
@job
def half_job() -> None:
    half()


def test_a_hook_above_job_hooks_every_op_and_failure_hooks_see_what_was_yielded_before_the_error() -> None:
    HOOK_CALLS.clear()
    with pytest.raises(ValueError, match="half done"):
        Store().run(half_job, "half", retry_number=0)
    assert HOOK_CALLS == [("fail", "half", "ValueError('half done')", {"one": 1})]
