"""The result of a run as Dagster defines it (`cairn.results`), `execute_job`'s and `execute_in_process`'s
arguments, op selection for a fresh run, and the instance's Dagster API (`cairn.instance`).

Expected messages and orders are Dagster 1.13's, observed with Dagster itself."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import pytest

from cairn.definitions import DynamicOut, DynamicOutput, Out, Output, job, op
from cairn.errors import (
    DagsterError,
    DagsterInvalidConfigError,
    DagsterInvalidSubsetError,
    DagsterInvariantViolationError,
)
from cairn.events import DagsterEventType
from cairn.execution import execute_job
from cairn.instance import DagsterInstance, Instance, RunsFilter, instance_for_test
from cairn.launch import ReexecutionOptions
from cairn.results import OUTSIDE_WITH, ExecuteInProcessResult, JobExecutionResult, execute_in_process
from cairn.runstate import StepState
from cairn.status import DagsterRunStatus

T = DagsterEventType


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    return Instance.local(tmp_path / "home")


@op
def one() -> int:
    return 1


@op
def two() -> int:
    return 2


@op
def add(x: int, y: int) -> int:
    return x + y


@op
def bad(x: int) -> int:
    raise ValueError(f"nope {x}")


@op(out={"o1": Out(is_required=False), "o2": Out()})
def optional() -> Any:
    yield Output(5, "o2")


@op
def use(v: int) -> int:
    return v


@op(out={"items": DynamicOut()})
def split(context: Any) -> Any:
    for k in context.op_config or ["a", "b", "c"]:
        yield DynamicOutput(k, mapping_key=k, output_name="items")


@op
def shout(s: str) -> str:
    if os.environ.get("CAIRN_TEST_SHOUT_FAIL") == s:
        raise RuntimeError(f"cannot shout {s}")
    return s.upper()


@op
def joined(xs: list[str]) -> str:
    return "".join(xs)


@job
def adding() -> None:
    add(one(), two())


@job
def failing() -> None:
    bad(one())
    two()


@job
def optional_job() -> None:
    o1, o2 = optional()
    use(o1)
    use(o2)


@job
def fan() -> None:
    joined(split().map(shout).collect())


# ----- signatures ----------------------------------------------------------------------------------------
def _params(fn: Any) -> list[tuple[str, Any]]:
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values() if p.kind is not p.KEYWORD_ONLY]


def test_execute_job_takes_dagsters_arguments_in_dagsters_order() -> None:
    names = [n for n, _ in _params(execute_job)]
    assert names == [
        "job",
        "instance",
        "run_config",
        "tags",
        "raise_on_error",
        "op_selection",
        "reexecution_options",
        "asset_selection",
    ]
    assert dict(_params(execute_job))["raise_on_error"] is False
    keyword_only = [p.name for p in inspect.signature(execute_job).parameters.values() if p.kind is p.KEYWORD_ONLY]
    assert keyword_only == ["on_event", "clock"]


def test_execute_in_process_takes_dagsters_arguments_in_dagsters_order() -> None:
    params = _params(execute_in_process)
    assert [n for n, _ in params] == [
        "job",
        "run_config",
        "instance",
        "partition_key",
        "raise_on_error",
        "op_selection",
        "asset_selection",
        "run_id",
        "input_values",
        "tags",
        "resources",
    ]
    assert dict(params)["raise_on_error"] is True


def test_positional_arguments_land_where_dagster_puts_them(instance: Instance) -> None:
    result = execute_job(adding, instance, None, {"team": "data"}, False, ["one"])
    assert result.executed_steps == ["one"] and result.dagster_run.tags["team"] == "data"


# ----- the result as a context manager --------------------------------------------------------------------
def test_outputs_only_inside_the_with_block(instance: Instance) -> None:
    result = execute_job(adding, instance)
    assert isinstance(result, JobExecutionResult) and result.success
    with pytest.raises(DagsterInvariantViolationError) as outside:
        result.output_for_node("add")
    assert str(outside.value) == OUTSIDE_WITH
    assert str(outside.value).startswith("In order to access output objects, the result of `execute_job` must be")
    with result as opened:
        assert opened is result and opened.output_for_node("add") == 3
    with pytest.raises(DagsterInvariantViolationError):
        result.output_for_node("add")  # closed again


def test_with_execute_job_as_result(instance: Instance) -> None:
    with execute_job(adding, instance) as result:
        assert (result.output_for_node("one"), result.output_for_node("add")) == (1, 3)


def test_the_run_as_dagster_describes_it(instance: Instance) -> None:
    result = execute_job(adding, instance, tags={"k": "v"})
    run = result.dagster_run
    assert (run.run_id, run.job_name, run.status) == (result.run_id, "adding", DagsterRunStatus.SUCCESS)
    assert run.is_success and run.is_finished and not run.is_failure and run.tags["k"] == "v"
    assert (run.parent_run_id, run.root_run_id) == (None, result.run_id)


# ----- events ---------------------------------------------------------------------------------------------
def test_events_of_a_run_in_dagsters_order(instance: Instance) -> None:
    result = execute_job(adding, instance)
    assert [(e.event_type, e.step_key) for e in result.all_events] == [
        (T.RUN_START, None),
        (T.STEP_START, "one"),
        (T.STEP_OUTPUT, "one"),
        (T.HANDLED_OUTPUT, "one"),
        (T.STEP_SUCCESS, "one"),
        (T.STEP_START, "two"),
        (T.STEP_OUTPUT, "two"),
        (T.HANDLED_OUTPUT, "two"),
        (T.STEP_SUCCESS, "two"),
        (T.STEP_START, "add"),
        (T.LOADED_INPUT, "add"),
        (T.LOADED_INPUT, "add"),
        (T.STEP_INPUT, "add"),
        (T.STEP_INPUT, "add"),
        (T.STEP_OUTPUT, "add"),
        (T.HANDLED_OUTPUT, "add"),
        (T.STEP_SUCCESS, "add"),
        (T.RUN_SUCCESS, None),
    ]
    assert [e.message for e in result.events_for_node("add")][1:4] == [
        'Loaded input "x" using input manager "io_manager", from output "result" of step "one"',
        'Loaded input "y" using input manager "io_manager", from output "result" of step "two"',
        'Got input "x" of type "Any". (Type check passed).',
    ]
    assert [e.step_key for e in result.get_step_success_events()] == ["one", "two", "add"]
    assert len(result.all_node_events) == len(result.all_events) - 2  # all but the run's own
    assert result.get_run_success_event().event_type is T.RUN_SUCCESS
    assert result.is_node_success("add") and not result.is_node_failed("add")


def test_a_failed_run_says_which_steps_failed(instance: Instance) -> None:
    result = execute_job(failing, instance)
    assert not result.success and result.dagster_run.status is DagsterRunStatus.FAILURE
    assert result.get_failed_step_keys() == {"bad"}
    failure = result.get_step_failure_events()[0].step_failure_data
    assert failure.error is not None and failure.error.cause is not None
    assert failure.error.cause.message == "ValueError: nope 1\n"
    assert result.get_run_failure_event().message == "Execution of run for \"failing\" failed. Steps failed: ['bad']."
    assert result.is_node_failed("bad") and result.is_node_success("two")
    with pytest.raises(DagsterError, match=r"^No event of type DagsterEventType.PIPELINE_SUCCESS found.$"):
        result.get_run_success_event()


def test_a_skipped_step_and_an_untouched_one(instance: Instance) -> None:
    result = execute_job(optional_job, instance)
    assert [e.step_key for e in result.get_step_skipped_events()] == ["use"]
    assert result.is_node_skipped("use") and not result.is_node_skipped("use_2")
    told = [(e.event_type, e.step_key) for e in result.all_events]
    assert told.index((T.STEP_SKIPPED, "use")) < told.index((T.STEP_START, "use_2"))  # in order, as it happened
    with result, pytest.raises(DagsterInvariantViolationError, match=r"^Did not find result o1 in op 'optional'$"):
        result.output_for_node("optional", "o1")
    child = execute_job(optional_job, instance, reexecution_options=ReexecutionOptions(result.run_id, ["use_2"]))
    assert child.is_node_untouched("optional") and child.is_node_success("use_2")


# ----- outputs: this run's -------------------------------------------------------------------------------
def test_a_mapped_op_gives_only_the_keys_this_run_executed(instance: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    first = execute_job(fan, instance)
    with first:
        assert first.output_for_node("shout") == {"a": "A", "b": "B", "c": "C"}
        assert first.output_for_node("split", "items") == {"a": "a", "b": "b", "c": "c"}
        assert first.output_for_node("joined") == "ABC"
        assert first.output_for_node("shout[b]") == "B"  # Cairn's: one instance by its step key
    child = execute_job(fan, instance, reexecution_options=ReexecutionOptions(first.run_id, ["shout[b]"]))
    with child:
        assert child.output_for_node("shout") == {"b": "B"}
        with pytest.raises(DagsterInvariantViolationError, match=r"^Did not find result items in op 'split'$"):
            child.output_for_node("split", "items")
    assert child.output_from_lineage("shout") == {"a": "A", "b": "B", "c": "C"}  # Cairn's reading of the lineage


def test_a_failed_instance_is_left_out(instance: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_TEST_SHOUT_FAIL", "b")
    with execute_job(fan, instance) as result:
        assert result.output_for_node("shout") == {"a": "A", "c": "C"}
        assert result.get_failed_step_keys() == {"shout[b]"}


@pytest.mark.parametrize(
    ("node", "output", "message"),
    [
        ("zzz", "result", "adding has no op named zzz."),
        ("add", "nope", "add has no output named nope."),
    ],
)
def test_unknown_nodes_and_outputs_are_refused_as_dagster(node: str, output: str, message: str) -> None:
    result = execute_in_process(adding)
    with pytest.raises(DagsterInvariantViolationError) as err:
        result.output_for_node(node, output)
    assert str(err.value) == message


# ----- execute_in_process ---------------------------------------------------------------------------------
def test_execute_in_process_result() -> None:
    result = adding.execute_in_process()
    assert isinstance(result, ExecuteInProcessResult) and result.success
    assert result.output_for_node("add") == 3  # no with block needed
    with pytest.raises(DagsterInvariantViolationError) as err:
        result.output_value()
    assert str(err.value) == "Attempted to retrieve top-level outputs for 'adding', which has no outputs."


def test_execute_in_process_not_produced_output() -> None:
    result = execute_in_process(optional_job)
    with pytest.raises(DagsterInvariantViolationError) as err:
        result.output_for_node("optional", "o1")
    assert str(err.value) == "No outputs found for output 'o1' from node 'optional'."


def test_execute_in_process_raises_the_ops_own_error_by_default() -> None:
    with pytest.raises(ValueError, match=r"^nope 1$"):
        execute_in_process(failing)
    result = execute_in_process(failing, raise_on_error=False)
    assert not result.success and result.get_failed_step_keys() == {"bad"}


def test_execute_in_process_on_an_ephemeral_instance_with_a_run_id_and_tags() -> None:
    result = execute_in_process(adding, run_id="my-run", tags={"k": "v"}, partition_key="2024-01-01")
    assert result.run_id == "my-run" and result.dagster_run.tags["dagster/partition"] == "2024-01-01"
    assert result.dagster_run.tags["k"] == "v"
    assert result.instance.db_path == Path(":memory:")


def test_execute_in_process_on_a_given_instance(instance: Instance) -> None:
    result = execute_in_process(adding, instance=instance)
    assert instance.get_run_by_id(result.run_id) is not None


def test_a_run_id_already_in_the_instance_is_refused(instance: Instance) -> None:
    execute_in_process(adding, instance=instance, run_id="same")
    with pytest.raises(DagsterInvariantViolationError, match="same"):
        execute_in_process(adding, instance=instance, run_id="same")


# ----- raise_on_error with execute_job ------------------------------------------------------------------
def test_raise_on_error_raises_the_ops_own_error_after_the_run_is_recorded(instance: Instance) -> None:
    with pytest.raises(ValueError, match=r"^nope 1$") as err:
        execute_job(failing, instance, raise_on_error=True)
    assert type(err.value) is ValueError
    (run,) = instance.get_runs()
    assert run.status is DagsterRunStatus.FAILURE
    # as Dagster's in-process executor, no step runs after the failure (a re-execution from failure runs it)
    assert run.steps["two"].state is StepState.CANCELED
    child = execute_job(failing, instance, reexecution_options=ReexecutionOptions.from_failure(run.run_id, instance))
    assert child.executed_steps == ["bad", "two"]


# ----- op selection ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("selection", "executed"),
    [
        (["one"], ["one"]),
        (["one", "two"], ["one", "two"]),
        (["*add"], ["one", "two", "add"]),
        (["one+"], None),  # add needs two, not selected: refused below
        (["*"], ["one", "two", "add"]),
    ],
)
def test_op_selection_runs_the_selected_ops(
    instance: Instance, selection: list[str], executed: list[str] | None
) -> None:
    if executed is None:
        with pytest.raises(DagsterInvalidConfigError, match=r"^Error in config for job adding"):
            execute_job(adding, instance, op_selection=selection)
        return
    result = execute_job(adding, instance, op_selection=selection)
    assert result.success and result.executed_steps == executed
    assert (
        result.dagster_run.op_selection == selection and execute_job(adding, instance).dagster_run.op_selection is None
    )
    assert [e.step_key for e in result.get_step_success_events()] == executed


def test_op_selection_of_an_unknown_op(instance: Instance) -> None:
    with pytest.raises(
        DagsterInvalidSubsetError, match=r"^No qualified ops to execute found for op_selection=\['zz'\]"
    ):
        execute_job(adding, instance, op_selection=["zz"])


def test_op_selection_and_reexecution_together_are_refused(instance: Instance) -> None:
    first = execute_job(adding, instance)
    with pytest.raises(
        DagsterInvariantViolationError, match=r"^re-execution and op selection cannot be used together at this time.$"
    ):
        execute_job(adding, instance, op_selection=["one"], reexecution_options=ReexecutionOptions(first.run_id))


def test_run_config_with_an_execution_section_runs_in_process(instance: Instance) -> None:
    sections: list[dict[str, Any]] = [
        {"config": {"in_process": {}}},
        {"config": {"multiprocess": {"max_concurrent": 1}}},
    ]
    for section in sections:
        assert execute_job(adding, instance, run_config={"execution": section}).success


def test_the_jobs_default_config_is_used_without_run_config(instance: Instance) -> None:
    @op(config_schema={"n": int})
    def emit(context: Any) -> int:
        return int(context.op_config["n"])

    @job(config={"ops": {"emit": {"config": {"n": 7}}}})
    def configured() -> None:
        emit()

    with execute_job(configured, instance) as result:
        assert result.output_for_node("emit") == 7
    with execute_job(configured, instance, run_config={"ops": {"emit": {"config": {"n": 8}}}}) as result:
        assert result.output_for_node("emit") == 8


# ----- the instance -----------------------------------------------------------------------------------------
def test_get_run_by_id(instance: Instance) -> None:
    result = execute_job(adding, instance)
    assert instance.get_run_by_id("no-such-run") is None
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.status is DagsterRunStatus.SUCCESS and DagsterInstance is Instance


def test_the_stored_events_are_the_results(tmp_path: Path) -> None:
    instance = Instance.local(tmp_path)
    result = execute_job(fan, instance)
    instance.close()
    again = Instance.local(tmp_path)  # another process reading the store later
    logs = again.all_logs(result.run_id)
    assert [(e.dagster_event_type, e.step_key, e.user_message) for e in logs] == [
        (e.event_type, e.step_key, e.message) for e in result.all_events
    ]
    outputs = again.all_logs(result.run_id, of_type=T.STEP_OUTPUT)
    assert [(e.step_key, e.get_dagster_event().step_output_data.mapping_key) for e in outputs][:3] == [
        ("split", "a"),
        ("split", "b"),
        ("split", "c"),
    ]


def test_events_are_written_in_batches(instance: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    from cairn.active import EventLog

    monkeypatch.setattr(EventLog, "BATCH", 3)
    result = execute_job(fan, instance)
    assert [e.dagster_event for e in instance.all_logs(result.run_id)] == result.all_events


def test_get_records_for_run_pages_with_a_cursor(instance: Instance) -> None:
    result = execute_job(adding, instance)
    total = len(result.all_events)
    first = instance.get_records_for_run(result.run_id, limit=5)
    assert [r.storage_id for r in first.records] == [1, 2, 3, 4, 5] and first.has_more
    rest = instance.get_records_for_run(result.run_id, cursor=first.cursor)
    assert len(rest.records) == total - 5 and not rest.has_more
    starts = instance.get_records_for_run(result.run_id, of_type={T.STEP_START})
    assert [r.event_log_entry.step_key for r in starts.records] == ["one", "two", "add"]


def test_an_ephemeral_instance_keeps_everything_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    instance = DagsterInstance.ephemeral()
    with execute_job(fan, instance) as result:
        assert result.output_for_node("joined") == "ABC"
    child = execute_job(fan, instance, reexecution_options=ReexecutionOptions(result.run_id, ["joined"]))
    with child:
        assert child.output_for_node("joined") == "ABC"
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_instance_for_test_is_a_temporary_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_HOME", "/elsewhere")
    with instance_for_test() as instance:
        root = instance.root
        assert os.environ["CAIRN_HOME"] == str(root)
        got = DagsterInstance.get()
        assert got.root == root
        got.close()
        assert execute_job(adding, instance).success
    assert not root.exists() and os.environ["CAIRN_HOME"] == "/elsewhere"


def test_get_runs_with_dagsters_filter(instance: Instance) -> None:
    ok = execute_job(adding, instance)
    bad = execute_job(failing, instance)
    assert [r.run_id for r in instance.get_runs()] == [bad.run_id, ok.run_id]  # newest first
    assert [r.run_id for r in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))] == [bad.run_id]
    assert [r.run_id for r in instance.get_runs(RunsFilter(job_name="adding"))] == [ok.run_id]
    assert instance.get_runs_count() == 2 and len(instance.get_runs(limit=1)) == 1


@pytest.mark.parametrize("given", [{"value": 4}, 4])
def test_op_selection_takes_unconnected_inputs_from_config(instance: Instance, given: Any) -> None:
    config = {"ops": {"add": {"inputs": {"x": given, "y": {"value": 10}}}}}
    with execute_job(adding, instance, op_selection=["add"], run_config=config) as result:
        assert result.executed_steps == ["add"] and result.output_for_node("add") == 14
        assert _kinds_of(result.events_for_node("add"))[:3] == [T.STEP_START, T.STEP_INPUT, T.STEP_INPUT]
    with pytest.raises(DagsterInvalidConfigError, match=r"ops\.add\.inputs\.y"):
        execute_job(adding, instance, op_selection=["add"], run_config={"ops": {"add": {"inputs": {"x": 1}}}})


def _kinds_of(events: Any) -> list[DagsterEventType]:
    return [e.event_type for e in events]


def test_execute_in_process_reads_outputs_an_in_memory_io_manager_holds() -> None:
    from cairn.resources import mem_io_manager

    @job(resource_defs={"io_manager": mem_io_manager})
    def in_memory() -> None:
        add(one(), two())

    result = execute_in_process(in_memory)
    assert result.success and (result.output_for_node("one"), result.output_for_node("add")) == (1, 3)


def test_execute_in_process_gives_a_graph_jobs_inputs() -> None:
    from cairn.graphs import graph

    @op
    def plus_one(x: int) -> int:
        return x + 1

    @graph
    def incremented(x: int) -> Any:
        return plus_one(x)

    made = incremented.to_job(input_values={"x": 1})
    assert execute_in_process(made).output_for_node("plus_one") == 2
    assert execute_in_process(made, input_values={"x": 5}).output_for_node("plus_one") == 6
