"""Jobs written with Dagster's authoring API run in process: nested graphs and their step names, aliases,
the ``_`` context, a node's retry policy, the job's default config, fan-out through a graph, and
``reconstructable(define_job)`` for runs and re-executions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cairn.definitions import (
    Config,
    DynamicOut,
    DynamicOutput,
    In,
    JobDefinition,
    Nothing,
    RunConfig,
    job,
    op,
    reconstructable,
)
from cairn.execution import ReexecutionOptions, execute_job
from cairn.graphs import GraphOut, graph
from cairn.instance import Instance
from cairn.retries import RetryPolicy


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    return Instance.local(tmp_path / "home")


@op
def one() -> int:
    return 1


@op
def add(x: int, y: int = 2) -> int:
    return x + y


@op
def named(_: Any, x: int) -> str:
    return f"{_.op_name}:{x}"


@graph
def inner(x: Any) -> Any:
    return add(x)


@graph(out={"a": GraphOut(), "b": GraphOut()})
def outer() -> Any:
    v = one()
    return {"a": inner(v), "b": add.alias("plus")(v)}


@job
def nested() -> None:
    a, b = outer()
    named.alias("label")(add(a, b))


def test_nested_graphs_run_with_dagsters_step_names(instance: Instance) -> None:
    with execute_job(nested, instance=instance) as result:
        assert result.success
        assert result.output_for_node("outer.inner.add") == 3
        assert result.output_for_node("outer.plus") == 3
        assert result.output_for_node("add") == 6
        assert result.output_for_node("label") == "label:6"  # `_` is the context; op_name is the node's


@op(config_schema={"n": int})
def scaled(context: Any) -> int:
    return int(context.op_config["n"]) * 10


@job(config={"ops": {"scaled": {"config": {"n": 4}}}})
def with_default_config() -> None:
    scaled()


def test_the_jobs_config_is_the_runs_default(instance: Instance) -> None:
    with execute_job(with_default_config, instance=instance) as result:
        assert result.output_for_node("scaled") == 40
    other = {"ops": {"scaled": {"config": {"n": 5}}}}
    with execute_job(with_default_config, instance=instance, run_config=other) as result:
        assert result.output_for_node("scaled") == 50


def test_a_nodes_retry_policy_retries_that_node(instance: Instance) -> None:
    attempts: list[int] = []

    @op
    def shaky(context: Any) -> int:
        attempts.append(context.retry_number)
        if len(attempts) < 2:
            raise RuntimeError("first attempt fails")
        return 7

    @job
    def retried() -> None:
        shaky.with_retry_policy(RetryPolicy(max_retries=1))()

    with execute_job(retried, instance=instance) as result:
        assert result.success and result.output_for_node("shaky") == 7
        assert len(attempts) == 2  # one retry, from the node's policy (the op has none, nor the job)


def test_fan_out_through_a_graph(instance: Instance) -> None:
    @op(out=DynamicOut(int))
    def split() -> Any:
        for k in ("a", "b", "c"):
            yield DynamicOutput(len(k) + ord(k) - ord("a"), mapping_key=k)

    @graph
    def per_key(x: Any) -> Any:
        return add(x)

    @op
    def total(xs: list[int]) -> int:
        return sum(xs)

    @job
    def fan() -> None:
        total(split().map(per_key).collect())

    with execute_job(fan, instance=instance) as result:
        assert result.success and result.output_for_node("total") == (1 + 2) + (2 + 2) + (3 + 2)


@op(config_schema={"fail": bool})
def maybe_fail(context: Any, x: int) -> int:
    if context.op_config["fail"]:
        raise RuntimeError("asked to fail")
    return x * 2


def define_job() -> JobDefinition:
    @job
    def defined() -> None:
        maybe_fail(one())

    return defined


def test_reconstructable_of_a_function_runs_and_reexecutes(instance: Instance) -> None:
    failing = {"ops": {"maybe_fail": {"config": {"fail": True}}}}
    first = execute_job(reconstructable(define_job), instance=instance, run_config=failing)
    assert not first.success
    options = ReexecutionOptions.from_failure(first.run_id, instance)
    fixed = {"ops": {"maybe_fail": {"config": {"fail": False}}}}
    with execute_job(
        reconstructable(define_job), instance=instance, run_config=fixed, reexecution_options=options
    ) as second:
        assert second.success and second.output_for_node("maybe_fail") == 2


def test_nothing_inputs_order_steps_and_pass_no_value(instance: Instance) -> None:
    order: list[str] = []

    @op
    def first() -> None:
        order.append("first")

    @op(ins={"start": In(Nothing)})
    def then(x: int) -> int:
        order.append("then")
        return x + 1

    @job
    def ordered() -> None:
        then(one(), start=first())

    with execute_job(ordered, instance=instance) as result:
        assert result.success and result.output_for_node("then") == 2
        assert order == ["first", "then"]


class Scale(Config):
    factor: int = 3


@op
def scaled_by(config: Scale, x: int) -> int:
    return x * config.factor


@job
def pythonic() -> None:
    scaled_by(one())


def test_pythonic_config_in_a_run(instance: Instance) -> None:
    with execute_job(pythonic, instance=instance) as result:
        assert result.output_for_node("scaled_by") == 3
    given = RunConfig(ops={"scaled_by": Scale(factor=5)})
    with execute_job(pythonic, instance=instance, run_config=given) as result:
        assert result.output_for_node("scaled_by") == 5


def test_fan_in_of_outputs_runs(instance: Instance) -> None:
    @op
    def total(items: list[int]) -> int:
        return sum(items)

    @job
    def fanned() -> None:
        total([one(), add(one.alias("other")())])

    with execute_job(fanned, instance=instance) as result:
        assert result.success and result.output_for_node("total") == 1 + 3


def test_an_inputs_declared_default_is_used_when_unconnected(instance: Instance) -> None:
    @op(ins={"x": In(int, default_value=5)})
    def defaulted(x: int) -> int:
        return x * 2

    @job
    def uses_default() -> None:
        defaulted()
        defaulted.alias("connected")(one())

    with execute_job(uses_default, instance=instance) as result:
        assert (result.output_for_node("defaulted"), result.output_for_node("connected")) == (10, 2)


def test_a_graphs_input_values_reach_its_ops(instance: Instance) -> None:
    @graph
    def doubled(x: Any) -> Any:
        return add(add.alias("first")(x), x)

    with execute_job(doubled.to_job(input_values={"x": 5}), instance=instance) as result:
        assert result.success and result.output_for_node("add") == 12
