"""Resources and IO managers in local runs (`execute_job`), as Dagster behaves: resources configured from the run
config and given to the ops that require them, Pythonic resources set up and torn down, IO managers handling
outputs and re-execution loading a parent run's outputs through them, and Dagster's refusals."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.definitions import DynamicOut, DynamicOutput, Out, job, op
from cairn.errors import DagsterInvalidDefinitionError, DagsterInvariantViolationError, DagsterResourceFunctionError
from cairn.execution import execute_job
from cairn.instance import Instance
from cairn.launch import ReexecutionOptions
from cairn.resources import ConfigurableResource, fs_io_manager, mem_io_manager, resource

SETUPS: list[Any] = []


class Greeter(ConfigurableResource):
    greeting: str
    punctuation: str = "!"

    def setup_for_execution(self, context: Any) -> None:
        SETUPS.append(("setup", self.greeting))

    def teardown_after_execution(self, context: Any) -> None:
        SETUPS.append(("teardown", self.greeting))

    def greet(self, name: str) -> str:
        return f"{self.greeting}, {name}{self.punctuation}"


@resource(config_schema={"name": str})
def who(init_context: Any) -> Iterator[str]:
    SETUPS.append(("who up", init_context.resource_config["name"]))
    yield init_context.resource_config["name"]
    SETUPS.append(("who down",))


@op(required_resource_keys={"greeter", "who"})
def greet(context: Any) -> str:
    return str(context.resources.greeter.greet(context.resources.who))


@op
def greet_param(greeter: Greeter) -> str:
    return greeter.greet("param")


@job(resource_defs={"greeter": Greeter(greeting="Hello"), "who": who})
def greeting_job() -> None:
    greet()
    greet_param()


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    return Instance.local(tmp_path / "home")


def test_resources_from_run_config_reach_the_ops_and_are_torn_down(instance: Instance) -> None:
    SETUPS.clear()
    config = {"resources": {"who": {"config": {"name": "Ada"}}, "greeter": {"config": {"punctuation": "?"}}}}
    with execute_job(greeting_job, instance, run_config=config) as result:
        assert result.success
        assert result.output_for_node("greet") == "Hello, Ada?"
        assert result.output_for_node("greet_param") == "Hello, param?"
    assert SETUPS[0] in (("setup", "Hello"), ("who up", "Ada"))
    assert SETUPS.count(("teardown", "Hello")) == SETUPS.count(("setup", "Hello")) >= 1
    assert ("who down",) in SETUPS


def test_missing_resource_config_is_refused_before_running(instance: Instance) -> None:
    from cairn.errors import DagsterInvalidConfigError

    with pytest.raises(DagsterInvalidConfigError, match='Missing required config entry "who"'):
        execute_job(greeting_job, instance)


@resource
def broken(_: Any) -> Any:
    raise ValueError("cannot connect")


@op(required_resource_keys={"db"})
def reads_db(context: Any) -> Any:
    return context.resources.db


@job(resource_defs={"db": broken})
def broken_job() -> None:
    reads_db()


def test_a_failing_resource_fails_the_run_with_dagsters_resource_function_error(instance: Instance) -> None:
    with (
        pytest.raises(DagsterResourceFunctionError, match="Error executing resource_fn on ResourceDefinition db"),
        execute_job(broken_job, instance, raise_on_error=True),
    ):
        pass
    with execute_job(broken_job, instance) as result:
        assert not result.success


def test_an_op_requiring_an_undefined_resource_is_dagsters_definition_error(instance: Instance) -> None:
    def define() -> Any:
        @job
        def lacking() -> None:
            reads_db()

        return lacking

    # Dagster refuses the run before it starts (no run is recorded); so does Cairn.
    expected = "resource with key 'db' required by op 'reads_db' was not provided"
    with pytest.raises(DagsterInvalidDefinitionError) as info:
        execute_job(define(), instance)
    assert str(info.value).startswith(expected)
    assert instance.get_runs() == []


@op
def emit() -> int:
    return 20


@op
def add_one(x: int) -> int:
    return x + 1


@op(out=DynamicOut())
def fan() -> Iterator[DynamicOutput]:
    for k in ("a", "b"):
        yield DynamicOutput(k, mapping_key=k)


@op
def shout(v: str) -> str:
    return v.upper()


def _fs_job(base_dir: Path) -> Any:
    @job(resource_defs={"io_manager": fs_io_manager.configured({"base_dir": str(base_dir)})})
    def fs_job() -> None:
        add_one(emit())
        fan().map(shout)

    return fs_job


def test_fs_io_manager_stores_each_output_in_dagsters_layout(instance: Instance, tmp_path: Path) -> None:
    base = tmp_path / "fs"
    with execute_job(_fs_job(base), instance) as result:
        assert result.success
        run_id = result.run_id
        assert result.output_for_node("add_one") == 21
        assert result.output_for_node("shout") == {"a": "A", "b": "B"}
    files = sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())
    assert files == sorted(
        f"{run_id}/{p}"
        for p in ("emit/result", "add_one/result", "fan/result/a", "fan/result/b", "shout[a]/result", "shout[b]/result")
    )
    assert pickle.loads((base / run_id / "emit/result").read_bytes()) == 20


def test_reexecution_loads_the_parents_outputs_through_the_io_manager(instance: Instance, tmp_path: Path) -> None:
    fs_job = _fs_job(tmp_path / "fs")
    with execute_job(fs_job, instance) as parent:
        parent_id = parent.run_id
    options = ReexecutionOptions(parent_run_id=parent_id, step_selection=["add_one"])
    with execute_job(fs_job, instance, reexecution_options=options) as child:
        assert child.success
        assert child.output_for_node("add_one") == 21
    # the parent's file is what the child read: remove it and the child's load fails
    (tmp_path / "fs" / parent_id / "emit/result").unlink()
    with execute_job(fs_job, instance, reexecution_options=options) as again:
        assert not again.success


@op(out=Out(io_manager_key="mem"))
def in_memory() -> int:
    return 5


@op
def after_memory(x: int) -> int:
    return x * 2


@job(resource_defs={"mem": mem_io_manager})
def memory_job() -> None:
    after_memory(in_memory())


def test_mem_io_manager_keeps_values_for_the_run_and_refuses_reexecution(instance: Instance) -> None:
    with execute_job(memory_job, instance) as result:
        assert result.success and result.output_for_node("after_memory") == 10
        parent_id = result.run_id
    with pytest.raises(DagsterInvariantViolationError, match="Cannot perform reexecution with in-memory io managers"):
        execute_job(
            memory_job,
            instance,
            reexecution_options=ReexecutionOptions(parent_run_id=parent_id, step_selection=["after_memory"]),
        )
