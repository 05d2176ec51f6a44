"""Re-execution over dynamic steps, end to end in process: what a child run executes and produces for a
selection or from failure, as Dagster 1.13 does for the same job (observed with Dagster: keys a, b, c,
``process[b]`` failing in the parent), and the same refusals in Dagster's words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.definitions import DynamicOut, DynamicOutput, Field, job, op
from cairn.errors import DagsterExecutionStepNotFoundError, DagsterInvariantViolationError
from cairn.execution import execute_job
from cairn.instance import Instance
from cairn.launch import ReexecutionOptions

FAIL_ENV = "CAIRN_TEST_DYN_FAIL"


@op(out=DynamicOut(), config_schema={"keys": Field(list, default_value=["a", "b", "c"])})
def split(context: Any) -> Iterator[DynamicOutput]:
    for k in context.op_config["keys"]:
        if k == "boom":
            raise Exception("split failed")
        yield DynamicOutput(k, mapping_key=k)


@op
def process(context: Any, x: str) -> str:
    import os

    if x in os.environ.get(FAIL_ENV, "").split(","):
        raise Exception(f"process {x} failed")
    return x.upper()


@op
def merge(xs: list[str]) -> list[str]:
    return sorted(xs)


@job
def dyn() -> None:
    merge(split().map(process).collect())


def keys(*ks: str) -> dict[str, Any]:
    return {"ops": {"split": {"config": {"keys": list(ks)}}}}


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    inst = Instance.local(tmp_path / "home")
    yield inst
    inst.close()


@pytest.fixture
def failed_parent(instance: Instance, monkeypatch: pytest.MonkeyPatch) -> str:
    """A run where process[b] failed (merge not executed); later runs do not fail."""
    monkeypatch.setenv(FAIL_ENV, "b")
    with execute_job(dyn, instance) as result:
        assert not result.success
        assert {e.step_key for e in result.get_step_failure_events()} == {"process[b]"}
        run_id = result.run_id
    monkeypatch.setenv(FAIL_ENV, "")
    return run_id


def ran(result: Any) -> list[str]:
    return sorted(e.step_key for e in result.get_step_success_events())


@pytest.mark.parametrize(
    ("selection", "succeeded", "outputs"),
    [
        (["process[b]"], ["process[b]"], {"process": {"b": "B"}}),
        (["process[b]+"], ["merge", "process[b]"], {"process": {"b": "B"}, "merge": ["A", "B", "C"]}),
        (["process[?]"], ["process[a]", "process[b]", "process[c]"], {"process": {"a": "A", "b": "B", "c": "C"}}),
        (["split"], ["split"], {"split": {"a": "a", "b": "b", "c": "c"}}),
        (["split+"], ["process[a]", "process[b]", "process[c]", "split"], {"process": {"a": "A", "b": "B", "c": "C"}}),
        (["split*"], ["merge", "process[a]", "process[b]", "process[c]", "split"], {"merge": ["A", "B", "C"]}),
        (["+merge"], ["merge", "process[a]", "process[b]", "process[c]"], {"merge": ["A", "B", "C"]}),
    ],
)
def test_a_selection_runs_what_dagster_runs(
    instance: Instance, failed_parent: str, selection: list[str], succeeded: list[str], outputs: dict[str, Any]
) -> None:
    with execute_job(dyn, instance, reexecution_options=ReexecutionOptions(failed_parent, selection)) as child:
        assert child.success
        assert ran(child) == succeeded
        for node, value in outputs.items():
            assert child.output_for_node(node) == value


def test_the_dynamic_step_alone_records_its_new_keys_and_runs_no_map(instance: Instance) -> None:
    parent = execute_job(dyn, instance)
    options = ReexecutionOptions(parent.run_id, ["split"])
    with execute_job(dyn, instance, keys("a", "b", "d"), reexecution_options=options) as child:
        assert ran(child) == ["split"]
        assert child.output_for_node("split") == {"a": "a", "b": "b", "d": "d"}
    grandchild = ReexecutionOptions(child.run_id, ["process[?]"])  # over the child's keys, not the parent's
    with execute_job(dyn, instance, keys("a", "b", "d"), reexecution_options=grandchild) as grand:
        assert ran(grand) == ["process[a]", "process[b]", "process[d]"]
        assert grand.output_for_node("process") == {"a": "A", "b": "B", "d": "D"}


def test_the_dynamic_step_with_its_map_runs_over_the_keys_it_emits_now(instance: Instance) -> None:
    parent = execute_job(dyn, instance)
    options = ReexecutionOptions(parent.run_id, ["split", "process[?]"])
    with execute_job(dyn, instance, keys("a", "d"), reexecution_options=options) as child:
        assert ran(child) == ["process[a]", "process[d]", "split"]
        assert child.output_for_node("process") == {"a": "A", "d": "D"}


def test_from_failure_reruns_the_failed_instance_and_the_collector(instance: Instance, failed_parent: str) -> None:
    options = ReexecutionOptions.from_failure(failed_parent, instance)
    with execute_job(dyn, instance, reexecution_options=options) as child:
        assert ran(child) == ["merge", "process[b]"]
        assert child.output_for_node("merge") == ["A", "B", "C"]
        assert child.output_for_node("process") == {"b": "B"}  # only what this run produced


@pytest.mark.parametrize(
    ("selection", "error", "message"),
    [
        (["process[zz]"], DagsterExecutionStepNotFoundError, "Step selection refers to unknown step: process[zz]"),
        (["process"], DagsterExecutionStepNotFoundError, "Step selection refers to unknown step: process"),
        (["split", "process[a]"], DagsterExecutionStepNotFoundError, "Can not build subset plan from unknown step"),
    ],
)
def test_dagsters_refusals(
    instance: Instance, failed_parent: str, selection: list[str], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as err:
        execute_job(dyn, instance, reexecution_options=ReexecutionOptions(failed_parent, selection))
    assert str(err.value).startswith(message)


def test_keys_the_parent_never_knew_are_refused_until_the_dynamic_step_is_selected(instance: Instance) -> None:
    parent = execute_job(dyn, instance, keys("boom"))
    assert not parent.success
    for step in ("process[?]", "merge"):
        with pytest.raises(DagsterInvariantViolationError) as err:
            execute_job(dyn, instance, reexecution_options=ReexecutionOptions(parent.run_id, [step]))
        assert str(err.value).startswith(f'Unresolved ExecutionStep "{step}" is resolved by "split" which is not')
    options = ReexecutionOptions(parent.run_id, ["split*"])
    with execute_job(dyn, instance, keys("a"), reexecution_options=options) as child:
        assert ran(child) == ["merge", "process[a]", "split"] and child.output_for_node("merge") == ["A"]


@op
def first() -> int:
    return 1


@op
def second(x: int) -> int:
    return x + 1


@op
def alone() -> int:
    return 0


@job
def with_alone() -> None:
    second(first())
    alone()


def test_a_run_of_an_op_selection_is_reexecuted_within_it(instance: Instance) -> None:
    parent = execute_job(with_alone, instance, op_selection=["first+"])
    assert ran(parent) == ["first", "second"]
    with pytest.raises(DagsterExecutionStepNotFoundError) as err:  # Dagster: not a step of the parent's plan
        execute_job(with_alone, instance, reexecution_options=ReexecutionOptions(parent.run_id, ["alone"]))
    assert str(err.value).startswith("Step selection refers to unknown step: alone")
    with execute_job(with_alone, instance, reexecution_options=ReexecutionOptions(parent.run_id)) as child:
        assert ran(child) == ["first", "second"]  # all of the selection, not the job
        assert child.dagster_run.op_selection == ["first+"]


def test_from_failure_of_a_selection_retries_within_it(
    instance: Instance, failed_parent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAIL_ENV, "b")
    again = execute_job(dyn, instance, reexecution_options=ReexecutionOptions(failed_parent, ["process[b]"]))
    assert not again.success
    monkeypatch.setenv(FAIL_ENV, "")
    options = ReexecutionOptions.from_failure(again.run_id, instance)
    with execute_job(dyn, instance, reexecution_options=options) as child:  # Dagster: merge was not selected
        assert ran(child) == ["process[b]"]
    options = ReexecutionOptions.from_failure(failed_parent, instance)
    with execute_job(dyn, instance, reexecution_options=options) as child:
        assert ran(child) == ["merge", "process[b]"]
