"""A Reexecution's decisions as tables: (Reexecution, parent, child) -> (phase, reason, actions). No cluster."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from typing import Any

import pytest

from cairn.errors import MissingOutputsError
from cairn.planner import Request, RunView, plan
from cairn_operator.graph import build
from cairn_operator.models import JobSpec
from cairn_operator.reconcile import Event
from cairn_operator.rxdecide import (
    PROTECT,
    CreateChild,
    Decision,
    Located,
    ProtectParent,
    RxObserved,
    decide,
)
from tests.unit.operator.test_replan import FAILED_ROOT, SNAPSHOT

UID = "uid-rx"
CHILD = "root-rx-child"


def planner(job: JobSpec, view: RunView, request: Request, rerun_missing: bool) -> Located:
    return Located(plan(build(job).job_graph(), view, request), "bucket", "prefix")


def missing(job: JobSpec, view: RunView, request: Request, rerun_missing: bool) -> Located:
    raise MissingOutputsError("Cannot re-execute run root: 1 output(s) it would reuse are missing", [])


def parent(phase: str = "Failed", finalizers: tuple[str, ...] = (), deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "root", "resourceVersion": "7", "finalizers": list(finalizers), "labels": {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = {**FAILED_ROOT, "phase": phase, "jobSnapshot": SNAPSHOT}
    return {"metadata": meta, "spec": {"jobRef": {"name": "job"}}, "status": status}


def child(phase: str | None = "Running", owner: str = UID) -> dict[str, Any]:
    meta = {"name": CHILD, "ownerReferences": [{"kind": "Reexecution", "name": "rx", "uid": owner}]}
    return {"metadata": meta, "status": {"phase": phase} if phase else {}}


def obs(
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    parent_: dict[str, Any] | None = None,
    child_: dict[str, Any] | None = None,
    siblings: tuple[str, ...] = (),
) -> RxObserved:
    return RxObserved(
        namespace="ns",
        name="rx",
        uid=UID,
        generation=1,
        spec={"parentRun": "root", "mode": "FromFailure", "runName": CHILD, **(spec or {})},
        status=status or {},
        parent=parent_,
        child=child_,
        live_siblings=siblings,
    )


def kinds(d: Decision) -> list[str]:
    return [type(a).__name__ + (f":{a.reason}" if isinstance(a, Event) else "") for a in d.actions]


@pytest.mark.parametrize(
    ("observed", "phase", "reason", "actions", "message"),
    [
        (obs({"mode": "Sideways"}), "Invalid", None, [], "mode"),
        (obs({"runName": "root"}), "Invalid", None, [], "is the parent Run's name"),
        (obs({"parentRun": "other/root", "runName": None}), "Invalid", None, [], "parentRun"),
        (obs(), "Pending", "ParentNotFound", ["Event:ParentNotFound"], "waiting for the parent Run 'root'"),
        (obs(parent_=parent("Running")), "Pending", "WaitingForParent", [], "to finish (it is Running)"),
        (obs(parent_=parent(deleting=True)), "Failed", "ParentDeleted", [], "is being deleted"),
        (
            obs({"concurrencyPolicy": "Forbid"}, parent_=parent(), siblings=("root-rx-a",)),
            "Pending",
            "ConcurrencyPolicy",
            [],
            "waiting for root-rx-a",
        ),
        (
            obs(parent_=parent()),
            "Running",
            None,
            ["CreateChild", "ProtectParent", "Event:ChildRunCreated"],
            f"child Run {CHILD} created",
        ),
        (obs(parent_=parent(finalizers=(PROTECT,))), "Running", None, ["CreateChild", "Event:ChildRunCreated"], ""),
        (obs({"dryRun": True}, parent_=parent()), "Planned", None, [], "dry run: 2 step(s) would run"),
        (
            obs({"config": {"ops": {"nope": {"config": {}}}}, "overrides": {"ghost": {}}}, parent_=parent()),
            "Invalid",
            "UnknownSteps",
            [],
            "config.ops names unknown step(s): nope; overrides name unknown step(s): ghost",
        ),
        (
            obs({"config": {"ops": {"end": 3}}}, parent_=parent()),
            "Invalid",
            "InvalidConfig",
            [],
            "config.ops.end must be a mapping with a `config` key",
        ),
        (
            obs(parent_={**parent(), "status": {"phase": "Failed", "message": "ops a, b form a cycle"}}),
            "Invalid",
            "ParentNeverStarted",
            [],
            "never started (it has no Job snapshot: ops a, b form a cycle)",
        ),
        # the child exists: followed, and the parent protected while it runs (once)
        (obs(parent_=parent(), child_=child()), "Running", "Running", ["ProtectParent"], "is Running"),
        (obs(parent_=parent(finalizers=(PROTECT,)), child_=child()), "Running", "Running", [], ""),
        (obs(parent_=parent(), child_=child(None)), "Running", "Pending", ["ProtectParent"], "is Pending"),
        (obs(parent_=parent(), child_=child("Succeeded")), "Succeeded", "Succeeded", [], ""),
        (obs(parent_=parent(), child_=child("Canceled")), "Failed", "Canceled", [], ""),
        (obs(parent_=None, child_=child()), "Running", "Running", [], ""),  # parent gone: nothing to protect
        # runName names a Run that is not this Reexecution's child (another's, or a user's)
        (obs(parent_=parent(), child_=child(owner="someone-else")), "Invalid", "RunNameTaken", [], "not this"),
        (
            obs({"runName": None}, {"phase": "Running", "childRun": "root-rx-4a3b1"}, parent()),
            "Running",
            None,
            ["CreateChild", "ProtectParent", "Event:ChildRunCreated"],
            "",
        ),
        (obs(status={"childRun": CHILD}, parent_=parent()), "Failed", "ChildRunDeleted", [], "was deleted"),
    ],
)
def test_decide(observed: RxObserved, phase: str, reason: str | None, actions: list[str], message: str) -> None:
    d = decide(observed, planner)
    assert (d.phase, d.reason, kinds(d)) == (phase, reason, actions), d.message
    assert message in d.message
    assert decide(observed, planner) == d  # the same observation, the same decision


def test_the_child_is_owned_linked_and_free_of_tracking_labels() -> None:
    labels = {"app.kubernetes.io/instance": "argo-app", "team": "ml", "kustomize.toolkit.fluxcd.io/name": "x"}
    d = decide(
        obs({"labels": labels, "overrides": {"end": {"env": [{"name": "A", "value": "1"}]}}}, parent_=parent()),
        planner,
    )
    create = next(a for a in d.actions if isinstance(a, CreateChild))
    meta = create.body["metadata"]
    assert meta["ownerReferences"][0]["uid"] == UID and meta["ownerReferences"][0]["kind"] == "Reexecution"
    assert meta["labels"] == {
        "team": "ml",
        "cairn.dev/parent-run": "root",
        "cairn.dev/root-run": "root",
        "cairn.dev/reexecution": "rx",
    }
    spec = create.body["spec"]
    assert [s["name"] for s in spec["execution"]["steps"]] == ["unreliable", "end"]
    assert spec["execution"]["reused"]["start"]["sourceRun"] == "root"
    assert spec["overrides"] == {"end": {"env": [{"name": "A", "value": "1"}]}}
    assert d.extra["plan"]["reused"][0]["uri"] == "s3://bucket/prefix/ns/root/start/result"


def test_the_parent_is_protected_after_its_child_is_created_at_the_version_read() -> None:
    d = decide(obs(parent_=parent(finalizers=("other",))), planner)
    create, protect = d.actions[0], d.actions[1]
    assert isinstance(create, CreateChild)
    assert protect == ProtectParent("root", ("other", PROTECT), "7")


def test_missing_outputs_fail_it() -> None:
    d = decide(obs(parent_=parent()), missing)
    assert (d.phase, d.reason) == ("Failed", "MissingOutputs") and not d.actions


def test_storage_that_cannot_be_read_is_said_and_waited_on() -> None:
    def forbidden(job: JobSpec, view: RunView, request: Request, rerun_missing: bool) -> Located:
        raise PermissionError("An error occurred (403) when calling the HeadObject operation: Forbidden")

    d = decide(obs(parent_=parent()), forbidden)
    assert (d.phase, d.reason, kinds(d)) == ("Pending", "StorageUnavailable", ["Event:StorageUnavailable"])
    assert "HeadObject operation: Forbidden" in d.message
    again = decide(obs(status={"message": d.message}, parent_=parent()), forbidden)
    assert kinds(again) == []  # said once


def test_a_wait_said_once() -> None:
    first = decide(obs(), planner)
    again = decide(obs(status={"message": first.message}), planner)
    assert kinds(first) == ["Event:ParentNotFound"] and kinds(again) == []


def test_status_keeps_transition_times_and_sets_observed_generation() -> None:
    t0, t1 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
    d = decide(obs(parent_=parent("Running")), planner)
    s0 = d.status({}, 3, t0)
    s1 = d.status(s0, 3, t1)
    assert s0 == s1 and s1["observedGeneration"] == 3
    assert {c["type"]: c["status"] for c in s1["conditions"]} == {
        "Ready": "False",
        "Reconciling": "True",
        "Stalled": "False",
    }


def _stale_parent() -> dict[str, Any]:
    from cairn_operator.resources import step_versions

    p = parent()
    versions = step_versions(JobSpec.model_validate(SNAPSHOT), None, None)
    p["status"]["steps"]["start"]["version"] = versions["start"]
    return p


def _job_now(**start: Any) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(SNAPSHOT)
    spec["ops"][0].update(start)
    return {"metadata": {"name": "job"}, "spec": spec}


@pytest.mark.parametrize(
    ("job_now", "to_run"),
    [
        # nothing changed: what the parent produced is reused, what it did not runs (as from failure)
        (_job_now(), [("unreliable", "failed"), ("end", "downstream-of:unreliable")]),
        # start's code version changed: it re-runs, and everything downstream of it
        (
            _job_now(codeVersion="v2"),
            [("start", "stale"), ("unreliable", "downstream-of:start"), ("end", "downstream-of:start")],
        ),
        # so does a new image of it
        (
            _job_now(image="i:2"),
            [("start", "stale"), ("unreliable", "downstream-of:start"), ("end", "downstream-of:start")],
        ),
    ],
)
def test_stale_compares_the_parents_steps_with_the_job_as_it_is_now(
    job_now: dict[str, Any], to_run: list[tuple[str, str]]
) -> None:
    observed = dataclasses.replace(obs({"mode": "Stale"}, parent_=_stale_parent()), job=job_now)
    d = decide(observed, planner)
    assert d.phase == "Running", d.message
    steps = [
        (s["name"], "stale" if s["reason"].startswith("stale: ") else s["reason"]) for s in d.extra["plan"]["steps"]
    ]
    assert steps == to_run
    create = next(a for a in d.actions if isinstance(a, CreateChild))
    assert create.body["spec"]["execution"]["jobSnapshot"] == job_now["spec"]  # the child runs today's Job
    versions = d.extra["plan"]["versions"]["start"]
    assert versions["old"] == _stale_parent()["status"]["steps"]["start"]["version"]
    assert (versions["old"] == versions["new"]) is (to_run[0][0] != "start")
    if "start" not in dict(to_run):
        assert create.body["spec"]["execution"]["reused"]["start"]["version"] == versions["old"]


def test_stale_waits_for_the_job() -> None:
    d = decide(obs({"mode": "Stale"}, parent_=_stale_parent()), planner)
    assert (d.phase, d.reason, kinds(d)) == ("Pending", "JobNotFound", ["Event:JobNotFound"])
    assert "compares the parent's steps with the Job as it is now" in d.message


@pytest.mark.parametrize(
    ("said", "events"),
    [
        (None, 1),  # new: said once, as a Warning Event
        ("could not create the child Run: ConnectionError: down; retrying within 15s", 0),  # said already
    ],
)
def test_a_passing_failure_to_create_the_child_is_said_once_and_retried(said: str | None, events: int) -> None:
    from cairn_operator.rxdecide import child_create_failed

    d = child_create_failed("ConnectionError: down", said, 15.0)
    assert (d.phase, d.reason) == ("Pending", "Retrying")
    assert d.message == "could not create the child Run: ConnectionError: down; retrying within 15s"
    assert len(d.actions) == events


def test_a_refused_child_fails_the_reexecution_saying_what_to_fix() -> None:
    from cairn_operator.rxdecide import child_refused

    d = child_refused("creating Run c refused by the API server (403 Forbidden): quota exceeded")
    assert d.phase == "Failed" and d.reason == "ChildCreateRefused"
    assert d.message.endswith("quota exceeded: fix what it names, then apply a new Reexecution")
    assert [(a.reason, a.type) for a in d.actions if isinstance(a, Event)] == [("ChildCreateRefused", "Warning")]
    assert len(d.actions) == 1
