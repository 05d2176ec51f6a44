"""Re-execution plans from a parent Run's status: the runtime planner's rules on the cluster's records."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.errors import ReexecutionError, StepSelectionError
from cairn.planner import Mode, Request
from cairn.runstate import RunPhase, StepState
from cairn_operator.graph import build
from cairn_operator.models import JobSpec
from cairn_operator.replan import child_execution, parent_view, plan_child

SNAPSHOT = {
    "image": "i",
    "python": {"job": "cairn.examples.unreliable:unreliable_job"},
    "storage": {"secretRef": {"name": "cairn-s3"}},
    "ops": [
        {"name": "start"},
        {"name": "unreliable", "inputs": {"num": "start"}},
        {"name": "end", "inputs": {"_num": "unreliable"}},
    ],
}
GRAPH = build(JobSpec.model_validate(SNAPSHOT))


def out(key: str) -> dict[str, Any]:
    return {"result": {"key": key, "size": 5, "etag": f"etag-{key}"}}


FAILED_ROOT = {
    "phase": "Failed",
    "steps": {
        "start": {"phase": "Succeeded", "outputs": out("ns/root/start/result")},
        "unreliable": {"phase": "Failed", "podName": "p"},
        "end": {"phase": "NotExecuted"},
    },
}


def test_from_failure_of_the_seed_run() -> None:
    p = plan_child(GRAPH, "root", FAILED_ROOT, "root", Request(Mode.FROM_FAILURE))
    assert list(p.to_run) == [("unreliable", "failed"), ("end", "downstream-of:unreliable")]
    ex = child_execution(p, "root", "root", SNAPSHOT, FAILED_ROOT)
    assert ex.reused["start"].sourceRun == "root"
    assert ex.reused["start"].outputs["result"].key == "ns/root/start/result"
    assert ex.reused["start"].outputs["result"].etag == "etag-ns/root/start/result"
    assert [s.name for s in ex.steps] == ["unreliable", "end"] and ex.jobSnapshot == SNAPSHOT


def test_a_grandchild_reads_from_the_run_that_produced_the_output() -> None:
    child = {
        "phase": "Failed",
        "steps": {
            "start": {"phase": "Reused", "sourceRun": "root", "outputs": out("ns/root/start/result")},
            "unreliable": {"phase": "Failed", "podName": "p"},
            "end": {"phase": "NotExecuted"},
        },
    }
    view = parent_view("child", child, "root")
    assert view.outputs[("start", "result")].run_id == "root" and view.steps["start"] is StepState.REUSED
    p = plan_child(GRAPH, "child", child, "root", Request(Mode.FROM_FAILURE))
    ex = child_execution(p, "child", "root", SNAPSHOT, child)
    assert ex.parentRun == "child" and ex.rootRun == "root"
    assert ex.reused["start"].sourceRun == "root"


@pytest.mark.parametrize(
    ("step", "state"),
    [
        ({"phase": "Interrupted", "podName": "p"}, StepState.INTERRUPTED),
        ({"phase": "Failed"}, StepState.FAILED),
        ({"phase": "Canceled"}, StepState.CANCELED),
        ({"phase": "Skipped"}, StepState.SKIPPED),
        ({"phase": "Reused"}, StepState.REUSED),
        ({"phase": "Retrying"}, StepState.RETRYING),
        ({}, StepState.PENDING),
    ],
)
def test_step_phases_are_the_runtimes_states(step: dict[str, Any], state: StepState) -> None:
    assert parent_view("r", {"phase": "Canceled", "steps": {"s": step}}, "r").steps["s"] is state


def test_the_runtime_planners_errors_hold_on_the_cluster() -> None:
    ok = {
        "phase": "Succeeded",
        "steps": {s: {"phase": "Succeeded", "outputs": out(f"k/{s}")} for s in ("start", "unreliable", "end")},
    }
    assert parent_view("r", ok, "r").status is RunPhase.SUCCEEDED
    with pytest.raises(ReexecutionError, match=r"^Cannot reexecute from failure a run that is not failed or canceled$"):
        plan_child(GRAPH, "r", ok, "r", Request(Mode.FROM_FAILURE))
    with pytest.raises(StepSelectionError, match=r"^Step selection refers to unknown step: nope$"):
        plan_child(GRAPH, "r", ok, "r", Request(Mode.SELECTED, ("nope",)))
    p = plan_child(GRAPH, "r", ok, "r", Request(Mode.SELECTED, ("unreliable*",)))
    assert list(p.to_run) == [("unreliable", "selected"), ("end", "selected")]


def test_from_failure_of_a_child_that_ran_a_selection_retries_only_within_it() -> None:
    # The child ran only `b` (a and c not selected); b failed. From failure retries b alone, as Dagster.
    steps = {
        "a": {"phase": "NotExecuted", "reason": "not selected"},
        "b": {"phase": "Failed"},
        "c": {"phase": "NotExecuted", "reason": "not selected"},
    }
    view = parent_view("child", {"phase": "Failed", "steps": steps}, "root")
    assert view.not_selected == frozenset({"a", "c"})
    blocked = {**steps, "c": {"phase": "NotExecuted", "reason": "blocked"}}
    assert parent_view("child", {"phase": "Failed", "steps": blocked}, "root").not_selected == frozenset({"a"})
