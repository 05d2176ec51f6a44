"""What a child Run inherits from its parent, as tables: the run config, yes; per-step overrides, no (the
child gets only its Reexecution's); an automatic retry carries the failed Run's own overrides explicitly."""

from __future__ import annotations

from typing import Any

import pytest

from cairn_operator.models import RunSpec
from cairn_operator.rxdecide import CreateChild, decide, retry_spec
from tests.unit.operator.test_rxdecide import obs, parent, planner

FAIL = {"unreliable": {"env": [{"name": "CAIRN_UNRELIABLE", "value": "fail"}]}}
PASS = {"unreliable": {"env": [{"name": "CAIRN_UNRELIABLE", "value": "pass"}]}}
IMAGE = {"end": {"image": "localhost/mine:2"}}
CONFIG = {"ops": {"start": {"config": {"n": 1}}}}
OTHER = {"ops": {"start": {"config": {"n": 2}}}}


def child_spec(parent_spec: dict[str, Any], rx_spec: dict[str, Any]) -> dict[str, Any]:
    """The spec of the child Run that a FromFailure Reexecution of a failed seed Run creates."""
    p = parent()
    p["spec"].update(parent_spec)
    d = decide(obs(rx_spec, parent_=p), planner)
    create = next(a for a in d.actions if isinstance(a, CreateChild))
    spec: dict[str, Any] = create.body["spec"]
    return spec


@pytest.mark.parametrize(
    ("parent_spec", "rx_spec", "overrides", "config"),
    [
        # a parent's overrides are not inherited: a plain from-failure runs the Job's own env and image
        ({"overrides": FAIL}, {}, None, None),
        ({"overrides": {**FAIL, **IMAGE}}, {}, None, None),
        # the child gets exactly its Reexecution's, nothing of the parent's merged in
        ({"overrides": {**FAIL, **IMAGE}}, {"overrides": PASS}, PASS, None),
        ({}, {"overrides": IMAGE}, IMAGE, None),
        # the run config is inherited (Dagster's rule), unless the Reexecution sets one
        ({"config": CONFIG, "overrides": FAIL}, {}, None, CONFIG),
        ({"config": CONFIG}, {"config": OTHER}, None, OTHER),
        ({"config": CONFIG, "overrides": FAIL}, {"config": OTHER, "overrides": PASS}, PASS, OTHER),
    ],
)
def test_a_child_inherits_the_run_config_and_no_overrides(
    parent_spec: dict[str, Any], rx_spec: dict[str, Any], overrides: Any, config: Any
) -> None:
    spec = child_spec(parent_spec, rx_spec)
    assert (spec.get("overrides"), spec.get("config")) == (overrides, config)


@pytest.mark.parametrize(
    ("run_spec", "expected"),
    [
        ({"retryPolicy": {"maxRetries": 1}}, {"parentRun": "r", "mode": "FromFailure"}),
        ({"retryPolicy": {"maxRetries": 1, "strategy": "AllSteps"}}, {"parentRun": "r", "mode": "All"}),
        # a retry runs the steps as the failed Run ran them: its overrides go into the Reexecution
        (
            {"retryPolicy": {"maxRetries": 2}, "overrides": FAIL},
            {"parentRun": "r", "mode": "FromFailure", "overrides": FAIL},
        ),
        (
            {"retryPolicy": {"maxRetries": 2, "strategy": "AllSteps"}, "overrides": {**FAIL, **IMAGE}},
            {"parentRun": "r", "mode": "All", "overrides": {**FAIL, **IMAGE}},
        ),
    ],
)
def test_a_retry_carries_the_failed_runs_own_overrides(run_spec: dict[str, Any], expected: dict[str, Any]) -> None:
    spec = RunSpec.model_validate({"jobRef": {"name": "unreliable"}, **run_spec})
    assert retry_spec("r", spec) == expected


def test_a_retry_child_gets_the_overrides_its_retry_carries() -> None:
    """The two rules together: the retry's Reexecution names the overrides, so its child runs with them."""
    run = RunSpec.model_validate(
        {"jobRef": {"name": "unreliable"}, "retryPolicy": {"maxRetries": 1}, "overrides": FAIL}
    )
    rx = {k: v for k, v in retry_spec("root", run).items() if k != "parentRun"}
    assert child_spec({"overrides": FAIL}, rx)["overrides"] == FAIL


@pytest.mark.parametrize("overrides", [None, FAIL])
def test_the_run_controllers_retry_is_made_with_retry_spec(overrides: Any) -> None:
    """The controller's automatic retry carries what `retry_spec` says (fakes, no cluster)."""
    from tests.unit.operator.fakes import Events, FakeKube, controller

    kube = FakeKube()
    doc: dict[str, Any] = {"jobRef": {"name": "unreliable"}, "retryPolicy": {"maxRetries": 1}}
    spec = RunSpec.model_validate({**doc, "overrides": overrides} if overrides else doc)
    controller(kube, Events()).settler.retry_failed_run("ns", "r", {"name": "r"}, spec)
    assert [rx["spec"] for rx in kube.reexecutions] == [retry_spec("r", spec)]
    assert kube.reexecutions[0]["spec"].get("overrides") == overrides
