"""The plan of a fresh run with Dagster's `op_selection` (`cairn.launch.selected_plan`), pure: which steps run,
which are not selected, and which inputs come from run config; Dagster's refusals."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.errors import DagsterInvalidConfigError, DagsterInvalidSubsetError
from cairn.launch import selected_plan
from cairn.planner import JobGraph

# a -> b -> d, c -> d; d's inputs x (from b) and y (from c)
DIAMOND = JobGraph(
    steps=("a", "b", "c", "d"),
    deps={"a": {}, "b": {"i": ("a", "result")}, "c": {}, "d": {"x": ("b", "result"), "y": ("c", "result")}},
    outputs={s: {"result": True} for s in "abcd"},
)

# split fans out over items, proc is mapped, merge collects
FAN = JobGraph(
    steps=("split", "proc", "merge"),
    deps={"split": {}, "proc": {"s": ("split", "items")}, "merge": {}},
    outputs={"split": {"items": True}, "proc": {"result": True}, "merge": {"result": True}},
    dynamic={"split": ("items",)},
    mapped={"proc": ("split", "items")},
    collects={"merge": {"xs": ("proc", "result")}},
)


@pytest.mark.parametrize(
    ("graph", "selection", "config", "to_run", "given"),
    [
        (DIAMOND, ["a"], {}, ["a"], {}),
        (DIAMOND, ["*d"], {}, ["a", "b", "c", "d"], {}),
        (DIAMOND, ["a+"], {}, ["a", "b"], {}),
        (DIAMOND, ["c", "*b"], {}, ["a", "b", "c"], {}),
        (DIAMOND, ["d"], {"ops": {"d": {"inputs": {"x": {"value": 1}, "y": 2}}}}, ["d"], {"d": {"x": 1, "y": 2}}),
        (
            DIAMOND,
            ["b", "d"],
            {"ops": {"d": {"inputs": {"y": 5}}, "b": {"inputs": {"i": 0}}}},
            ["b", "d"],
            {"b": {"i": 0}, "d": {"y": 5}},
        ),
        (FAN, ["split*"], {}, ["split", "proc[*]", "merge"], {}),
        (FAN, ["split", "proc"], {}, ["split", "proc[*]"], {}),
    ],
)
def test_the_selected_ops_run(
    graph: JobGraph, selection: list[str], config: dict[str, Any], to_run: list[str], given: dict[str, Any]
) -> None:
    plan, values = selected_plan("j", graph, selection, config)
    assert plan.steps_to_run == to_run
    assert set(plan.not_executed) == set(plan.steps) - set(to_run)
    assert values == given


@pytest.mark.parametrize(
    ("graph", "selection", "config", "error", "prefix"),
    [
        (DIAMOND, ["zz"], {}, DagsterInvalidSubsetError, "No qualified ops to execute found for op_selection=['zz']"),
        (DIAMOND, ["b"], {}, DagsterInvalidConfigError, "Error in config for job j"),
        (DIAMOND, ["d"], {"ops": {"d": {"inputs": {"x": 1}}}}, DagsterInvalidConfigError, "Error in config for job j"),
        (FAN, ["proc"], {}, DagsterInvalidConfigError, "Error in config for job j"),
        (FAN, ["merge"], {}, DagsterInvalidConfigError, "Error in config for job j"),
    ],
)
def test_refusals(
    graph: JobGraph, selection: list[str], config: dict[str, Any], error: type[Exception], prefix: str
) -> None:
    with pytest.raises(error) as err:
        selected_plan("j", graph, selection, config)
    assert str(err.value).startswith(prefix)


def test_a_missing_input_says_which_and_how_to_give_it() -> None:
    with pytest.raises(DagsterInvalidConfigError) as err:
        selected_plan("j", DIAMOND, ["d"], {"ops": {"d": {"inputs": {"x": 1}}}})
    assert "{'ops': {'d': {'inputs': {'y': '<selector>'}}}}" in str(err.value)
    assert "ops.d.inputs.y.value" in str(err.value)


def test_a_nested_op_reads_its_inputs_under_its_graphs_entry() -> None:
    graph = JobGraph(
        steps=("outer.emit", "outer.add"),
        deps={"outer.emit": {}, "outer.add": {"x": ("outer.emit", "result")}},
        outputs={"outer.emit": {"result": True}, "outer.add": {"result": True}},
    )
    config = {"ops": {"outer": {"ops": {"add": {"inputs": {"x": {"value": 5}}}}}}}
    plan, values = selected_plan("j", graph, ["outer.add"], config)
    assert plan.steps_to_run == ["outer.add"] and values == {"outer.add": {"x": 5}}
