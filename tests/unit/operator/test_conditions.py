"""Conditions by the Kubernetes API conventions and kstatus, as tables: which condition is True in which
phase, when lastTransitionTime moves, observedGeneration; and a Run that waits for its Job or Secret."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cairn.runstate import RunPhase
from cairn_operator.blocked import invalid
from cairn_operator.reconcile import run_conditions, rx_conditions
from cairn_operator.resources import owner_reference, without_gitops
from cairn_operator.runs import RunController
from tests.unit.operator.fakes import JOB, Events, FakeKube, FakeRun, controller

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:09Z"


def statuses(conditions: list[dict[str, Any]]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in conditions}


@pytest.mark.parametrize(
    ("phase", "reason", "expected"),
    [
        (RunPhase.PENDING, "JobNotFound", {"Ready": "False", "Reconciling": "True", "Stalled": "False"}),
        (RunPhase.PENDING, "SecretNotFound", {"Ready": "False", "Reconciling": "True", "Stalled": "False"}),
        (RunPhase.PENDING, "FailedCreate", {"Ready": "False", "Reconciling": "True", "Stalled": "False"}),
        (RunPhase.RUNNING, "Running", {"Ready": "False", "Reconciling": "True", "Stalled": "False"}),
        (RunPhase.RUNNING, "ImagePullFailed", {"Ready": "False", "Reconciling": "True", "Stalled": "False"}),
        (RunPhase.SUCCEEDED, "Succeeded", {"Ready": "True", "Reconciling": "False", "Stalled": "False"}),
        (RunPhase.FAILED, "Failed", {"Ready": "False", "Reconciling": "False", "Stalled": "True"}),
        (RunPhase.FAILED, "InvalidJob", {"Ready": "False", "Reconciling": "False", "Stalled": "True"}),
        (RunPhase.CANCELED, "Canceled", {"Ready": "False", "Reconciling": "False", "Stalled": "True"}),
    ],
)
def test_run_conditions_per_phase(phase: RunPhase, reason: str, expected: dict[str, str]) -> None:
    conds = run_conditions(phase, reason, "why", 3, T0)
    succeeded = {RunPhase.SUCCEEDED: "True", RunPhase.FAILED: "False", RunPhase.CANCELED: "False"}
    assert statuses(conds) == {**expected, "Succeeded": succeeded.get(phase, "Unknown")}
    for c in conds:
        assert c == {
            "type": c["type"],
            "status": c["status"],
            "reason": reason,
            "message": "why",
            "lastTransitionTime": T0,
            "observedGeneration": 3,
        }


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("Pending", {"Ready": "False", "Reconciling": "True", "Stalled": "False"}),
        ("Running", {"Ready": "False", "Reconciling": "True", "Stalled": "False"}),
        ("Planned", {"Ready": "True", "Reconciling": "False", "Stalled": "False"}),
        ("Succeeded", {"Ready": "True", "Reconciling": "False", "Stalled": "False"}),
        ("Failed", {"Ready": "False", "Reconciling": "False", "Stalled": "True"}),
        ("Invalid", {"Ready": "False", "Reconciling": "False", "Stalled": "True"}),
    ],
)
def test_reexecution_conditions_per_phase(phase: str, expected: dict[str, str]) -> None:
    conds = rx_conditions(phase, "ParentNotFound", "m", 2, T0)
    assert statuses(conds) == expected
    assert {(c["reason"], c["message"], c["observedGeneration"]) for c in conds} == {("ParentNotFound", "m", 2)}


@pytest.mark.parametrize(
    ("before", "after", "moved"),
    [
        # status unchanged (reason, message or generation may change): the transition time stays
        ((RunPhase.PENDING, "JobNotFound"), (RunPhase.PENDING, "SecretNotFound"), set()),
        ((RunPhase.PENDING, "JobNotFound"), (RunPhase.RUNNING, "Running"), set()),
        # Running -> Succeeded: every condition changes its status
        ((RunPhase.RUNNING, "Running"), (RunPhase.SUCCEEDED, "Succeeded"), {"Ready", "Reconciling", "Succeeded"}),
        # Running -> Failed: Ready stays False
        ((RunPhase.RUNNING, "Running"), (RunPhase.FAILED, "Failed"), {"Reconciling", "Stalled", "Succeeded"}),
        ((RunPhase.FAILED, "Failed"), (RunPhase.CANCELED, "Canceled"), set()),
    ],
)
def test_last_transition_time_moves_only_when_the_status_changes(
    before: tuple[RunPhase, str], after: tuple[RunPhase, str], moved: set[str]
) -> None:
    old = run_conditions(*before, "m1", 1, T0)
    new = run_conditions(after[0], after[1], "m2", 2, T1, old)
    assert {c["type"] for c in new if c["lastTransitionTime"] == T1} == moved
    assert {c["observedGeneration"] for c in new} == {2}
    assert {c["reason"] for c in new} == {after[1]}


def test_a_dropped_condition_type_is_not_kept() -> None:
    old = [{"type": "Failed", "status": "False", "lastTransitionTime": T0}]
    assert "Failed" not in statuses(run_conditions(RunPhase.RUNNING, "Running", "m", 1, T1, old))


def test_invalid_is_terminal_and_stalled() -> None:
    st = invalid({}, "ops a, b form a dependency cycle", 4)
    assert st["phase"] == "Failed" and st["observedGeneration"] == 4
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Stalled"]["status"] == "True" and conds["Stalled"]["reason"] == "InvalidJob"
    assert conds["Stalled"]["message"] == "ops a, b form a dependency cycle"
    assert conds["Succeeded"]["status"] == "False" and conds["Ready"]["status"] == "False"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"config": {"ops": {"a": {"config": {}}, "zz": {"config": {}}}}}, "config.ops names unknown step(s): zz"),
        ({"overrides": {"ghost": {"image": "x"}}}, "overrides name unknown step(s): ghost"),
    ],
)
def test_config_and_overrides_for_steps_the_job_lacks_are_refused(spec: dict[str, Any], message: str) -> None:
    run = FakeRun(refusals=0)
    run.cycle(**spec)
    assert run.status["phase"] == "Failed" and run.pods == [] and "jobSnapshot" not in run.status
    assert run.status["message"].startswith(message) and "(the Job's steps: a, b)" in run.status["message"]
    conds = {c["type"]: c for c in run.status["conditions"]}
    assert (conds["Stalled"]["status"], conds["Stalled"]["reason"]) == ("True", "UnknownSteps")
    assert run.events == [("Warning", "UnknownSteps", run.status["message"])]


@pytest.mark.parametrize(
    ("job", "secret", "reason", "pieces"),
    [
        (None, True, "JobNotFound", ["waiting for Job 'j'", "namespace ns"]),
        ({"spec": JOB}, False, "SecretNotFound", ["waiting for Secret 'cairn-s3'", "of Job j", "namespace ns"]),
    ],
)
def test_a_run_before_its_job_or_secret_waits_and_starts_when_it_appears(
    job: dict[str, Any] | None, secret: bool, reason: str, pieces: list[str]
) -> None:
    run = FakeRun(refusals=0)
    if job is None:
        del run.kube.jobs["j"]
    if not secret:
        del run.kube.secrets["cairn-s3"]
    for _ in range(3):
        assert run.cycle() == run.ctl.wait_resync
    assert run.status["phase"] == "Pending" and run.pods == []
    assert "jobSnapshot" not in run.status and run.status["observedGeneration"] == 1
    for piece in pieces:
        assert piece in run.status["message"]
    conds = {c["type"]: c for c in run.status["conditions"]}
    assert (conds["Reconciling"]["status"], conds["Reconciling"]["reason"]) == ("True", reason)
    assert conds["Stalled"]["status"] == "False" and conds["Succeeded"]["status"] == "Unknown"
    assert run.events == [("Warning", reason, run.status["message"])]  # once, not per cycle
    assert len(run.kube.status_patches) == 1  # the status is written when it changes only
    assert ({("ns", "j"): {"r"}} if job is None else {}) == run.ctl.waiting_for_job
    # It appears: the next cycle starts the Run.
    run.kube.jobs["j"] = {"spec": JOB}
    run.kube.secrets["cairn-s3"] = {}
    run.cycle()
    assert run.status["phase"] == "Running" and "message" not in run.status
    assert [p["metadata"]["labels"]["cairn.dev/step"] for p in run.pods] == ["a"]
    conds = {c["type"]: c for c in run.status["conditions"]}
    assert conds["Reconciling"]["status"] == "True" and conds["Reconciling"]["reason"] == "Running"


def test_a_jobs_watch_event_wakes_the_runs_waiting_for_it() -> None:
    async def scenario() -> None:
        ctl: RunController = controller(FakeKube(), Events())
        woken = asyncio.Event()
        ctl.wakers[("ns", "r")] = woken
        ctl.waiting_for_job[("ns", "j")] = {"r"}
        ctl.wake_waiting_for_job("ns", "other")
        assert not woken.is_set()
        ctl.wake_waiting_for_job("ns", "j")
        assert woken.is_set() and ctl.waiting_for_job == {}

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ({"team": "a", "app.kubernetes.io/instance": "prod"}, {"team": "a"}),
        ({"argocd.argoproj.io/instance": "x", "argocd.argoproj.io/sync-wave": "1"}, {}),
        ({"kustomize.toolkit.fluxcd.io/name": "k", "helm.toolkit.fluxcd.io/namespace": "h"}, {}),
        (
            {"app.kubernetes.io/name": "cairn", "cairn.dev/x": "y"},
            {"app.kubernetes.io/name": "cairn", "cairn.dev/x": "y"},
        ),
        (None, {}),
    ],
)
def test_gitops_tracking_keys_are_never_copied(given: dict[str, str] | None, kept: dict[str, str]) -> None:
    assert without_gitops(given) == kept


def test_a_child_run_is_controlled_by_its_reexecution() -> None:
    ref = owner_reference("Reexecution", "rx1", "uid-1")
    assert ref == {
        "apiVersion": "cairn.dev/v1alpha1",
        "kind": "Reexecution",
        "name": "rx1",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ops": ["start"]}, "config.ops must map each step to its config, not be a list"),
        ({"ops": {"a": 5}}, "config.ops.a must be a mapping with a `config` key, not a int"),
    ],
)
def test_a_config_of_the_wrong_shape_fails_the_run_once_with_what_to_write(config: Any, message: str) -> None:
    run = FakeRun(refusals=0)
    run.cycle(config=config)  # then finished: the next cycles only settle it (finish_up)
    assert run.status["phase"] == "Failed" and run.pods == []
    assert run.status["message"].startswith(message) and "config: {ops: {<step>: {config:" in run.status["message"]
    assert {c["type"]: c["reason"] for c in run.status["conditions"]}["Stalled"] == "InvalidConfig"
    assert [e[1] for e in run.events] == ["InvalidConfig"]
