"""The Run's reconcile as tables: (status, pods, now) -> (actions, next status). No cluster."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from cairn_operator.graph import InvalidJob, build
from cairn_operator.models import JobSpec
from cairn_operator.reconcile import (
    CreatePod,
    DeletePod,
    Event,
    PodObs,
    RunInput,
    collectable,
    reconcile,
    ts,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def job(**op_extra: dict[str, Any]) -> JobSpec:
    ops: list[dict[str, Any]] = [
        {"name": "start"},
        {"name": "left", "inputs": {"x": "start"}},
        {"name": "right", "inputs": {"x": "start"}},
        {"name": "end", "inputs": {"a": "left", "b": "right"}},
    ]
    for o in ops:
        o.update(op_extra.get(o["name"], {}))
    return JobSpec.model_validate(
        {"image": "img", "python": {"job": "m:j"}, "storage": {"secretRef": {"name": "s"}}, "ops": ops}
    )


def ok_msg(*outs: str) -> str:
    return json.dumps(
        {
            "protocol": 1,
            "status": "SUCCESS",
            "outputs": {o: {"key": f"k/{o}", "size": 3, "sha256": "h", "etag": "e"} for o in outs or ("result",)},
        }
    )


def fail_msg(message: str = "blah") -> str:
    return json.dumps({"protocol": 1, "status": "FAILURE", "error": {"type": "Exception", "message": message}})


def pod(
    step: str, phase: str, attempt: int = 1, msg: str | None = None, code: int | None = None, reason: str | None = None
) -> PodObs:
    return PodObs(
        name=f"r-{step}-{attempt}",
        step=step,
        attempt=attempt,
        phase=phase,
        exit_code=code,
        message=msg,
        reason=reason,
        started="2026-01-01T00:00:00Z",
        finished="2026-01-01T00:00:01Z",
    )


def cycle(spec: JobSpec, status: dict[str, Any], pods: list[PodObs], now: dt.datetime = T0, **kw: Any) -> Any:
    run = RunInput(name="r", uid="u", generation=3, status=status, max_parallel=kw.pop("max_parallel", 10), **kw)
    return reconcile(run, build(spec), pods, now)


def creates(res: Any) -> list[tuple[str, int]]:
    return [(a.step, a.attempt) for a in res.actions if isinstance(a, CreatePod)]


def phases(res: Any) -> dict[str, str]:
    return {s: v["phase"] for s, v in res.status["steps"].items()}


def run_to(spec: JobSpec, outcomes: dict[str, list[PodObs]]) -> tuple[dict[str, Any], list[PodObs]]:
    """Drive cycles, giving each created pod the next outcome listed for its step."""
    status: dict[str, Any] = {}
    pods: list[PodObs] = []
    for _ in range(20):
        res = cycle(spec, status, pods, now=T0 + dt.timedelta(hours=1))
        status = res.status
        for step, attempt in creates(res):
            nxt = outcomes[step].pop(0)
            pods.append(PodObs(**{**nxt.__dict__, "step": step, "attempt": attempt, "name": f"r-{step}-{attempt}"}))
        if status["phase"] in ("Succeeded", "Failed", "Canceled"):
            return status, pods
    raise AssertionError("did not finish")


def test_first_cycle_starts_the_roots_and_says_running() -> None:
    res = cycle(job(), {}, [])
    assert creates(res) == [("start", 1)]
    assert phases(res) == {"start": "Running", "left": "Pending", "right": "Pending", "end": "Pending"}
    assert res.status["phase"] == "Running" and res.status["progress"] == "0/4"
    assert res.status["observedGeneration"] == 3
    assert res.status["steps"]["start"]["podName"].startswith("r-start-1-")


def test_the_same_cycle_twice_creates_nothing_new() -> None:
    first = cycle(job(), {}, [])
    again = cycle(job(), first.status, [pod("start", "Pending")])
    assert creates(again) == [] and phases(again)["start"] == "Running"


def test_a_pod_created_by_a_cycle_whose_status_was_lost_is_adopted() -> None:
    res = cycle(job(), {}, [pod("start", "Running")])
    assert creates(res) == [] and res.status["steps"]["start"]["attempt"] == 1


def test_success_flows_down_with_outputs_and_parallel_branches() -> None:
    s1 = cycle(job(), {}, []).status
    s2 = cycle(job(), s1, [pod("start", "Succeeded", msg=ok_msg(), code=0)])
    assert creates(s2) == [("left", 1), ("right", 1)]
    assert s2.status["steps"]["start"]["outputs"] == {
        "result": {"key": "k/result", "size": 3, "etag": "e", "sha256": "h"}
    }
    assert any(isinstance(a, Event) and a.reason == "StepSucceeded" for a in s2.actions)


def test_max_parallel_and_the_operator_wide_limit() -> None:
    s1 = cycle(job(), {}, []).status
    started = [pod("start", "Succeeded", msg=ok_msg(), code=0)]
    assert creates(cycle(job(), s1, started, max_parallel=1)) == [("left", 1)]
    assert creates(cycle(job(), s1, started, slots=0)) == []


def test_the_whole_run_succeeds() -> None:
    ok = pod("x", "Succeeded", msg=ok_msg(), code=0)
    status, _ = run_to(job(), {s: [ok] for s in ("start", "left", "right", "end")})
    assert status["phase"] == "Succeeded" and status["progress"] == "4/4" and status["failedSteps"] == 0
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds == {"Ready": "True", "Reconciling": "False", "Stalled": "False", "Succeeded": "True"}


def test_a_failure_stops_downstream_but_independent_branches_finish() -> None:
    ok = pod("x", "Succeeded", msg=ok_msg(), code=0)
    bad = pod("x", "Failed", msg=fail_msg(), code=1)
    status, pods = run_to(job(), {"start": [ok], "left": [bad], "right": [ok], "end": [ok]})
    assert {s: v["phase"] for s, v in status["steps"].items()} == {
        "start": "Succeeded",
        "left": "Failed",
        "right": "Succeeded",
        "end": "NotExecuted",
    }
    assert status["steps"]["left"]["message"] == "Exception: blah" and status["steps"]["left"]["exitCode"] == 1
    assert status["steps"]["end"]["reason"] == "upstream failed: left"
    assert status["phase"] == "Failed" and status["message"] == "step(s) failed: left"
    assert not any(p.step == "end" for p in pods)


def test_retries_make_new_attempt_pods_after_the_backoff() -> None:
    spec = job(left={"retries": {"limit": 2, "backoff": {"durationSeconds": 10, "factor": 2}}})
    s1 = cycle(spec, {}, []).status
    s2 = cycle(spec, s1, [pod("start", "Succeeded", msg=ok_msg(), code=0)]).status
    pods = [
        pod("start", "Succeeded", msg=ok_msg(), code=0),
        pod("left", "Failed", msg=fail_msg(), code=1),
        pod("right", "Running"),
    ]
    r3 = cycle(spec, s2, pods)
    st = r3.status["steps"]["left"]
    assert st["phase"] == "Retrying" and st["nextAttemptAt"] == "2026-01-01T00:00:10Z"
    assert any(isinstance(a, Event) and a.reason == "StepRetrying" for a in r3.actions)
    assert creates(cycle(spec, r3.status, pods, now=T0 + dt.timedelta(seconds=9))) == []
    r4 = cycle(spec, r3.status, pods, now=T0 + dt.timedelta(seconds=10))
    assert creates(r4) == [("left", 2)] and r4.status["steps"]["left"]["attempt"] == 2
    pods.append(pod("left", "Failed", attempt=2, msg=fail_msg(), code=1))
    r5 = cycle(spec, r4.status, pods, now=T0 + dt.timedelta(seconds=11))
    assert r5.status["steps"]["left"]["nextAttemptAt"] == "2026-01-01T00:00:31Z"  # 20 s: factor 2
    r6 = cycle(spec, r5.status, pods, now=T0 + dt.timedelta(seconds=40))
    assert creates(r6) == [("left", 3)]
    pods.append(pod("left", "Failed", attempt=3, msg=fail_msg(), code=1))
    r7 = cycle(spec, r6.status, pods, now=T0 + dt.timedelta(seconds=41))
    assert r7.status["steps"]["left"]["phase"] == "Failed"  # 3 attempts: limit 2 retries


def test_a_deleted_pod_is_an_interrupted_attempt() -> None:
    s1 = cycle(job(), {}, []).status
    res = cycle(job(), s1, [])
    assert res.status["steps"]["start"]["phase"] == "Interrupted"
    assert res.status["steps"]["start"]["message"].startswith("the step's pod was deleted while it ran")
    assert res.status["phase"] == "Failed" and res.status["failedSteps"] == 1
    assert res.status["message"] == "step(s) failed: start"


@pytest.mark.parametrize(("retries", "phase", "new_pods"), [(0, "Interrupted", []), (1, "Running", [("start", 2)])])
def test_a_pod_deleted_or_evicted_while_it_runs_ends_its_attempt(
    retries: int, phase: str, new_pods: list[tuple[str, int]]
) -> None:
    """Evicted from a lost node, the pod may stay Terminating for ever (no kubelet confirms): its
    attempt is over as soon as the deletion is seen, and the step retried per its retries."""
    spec = job(start={"retries": {"limit": retries, "backoff": {"durationSeconds": 0}}})
    s1 = cycle(spec, {}, []).status
    evicted = dataclasses.replace(pod("start", "Running"), deleting=True)
    res = cycle(spec, s1, [evicted])
    st = res.status["steps"]["start"]
    assert st["phase"] == phase and "was deleted or evicted while it ran" in st["message"]
    assert creates(res) == new_pods
    # a cancel deletes running pods itself: that is not an interruption to retry
    canceled = cycle(spec, s1, [evicted], cancel=True)
    assert canceled.status["steps"]["start"]["phase"] == "Interrupted" and creates(canceled) == []


@pytest.mark.parametrize(
    ("lost_for", "grace", "phase", "deleted"),
    [
        (61, 60.0, "Interrupted", [("r-start-1", True)]),  # lost longer than tolerated: over, force-deleted
        (30, 60.0, "Running", []),  # still tolerated
        (3600, None, "Running", []),  # the pod tolerates a lost node for ever
        (None, 60.0, "Running", []),  # its node answers
    ],
)
def test_a_pod_on_a_node_that_stopped_answering(
    lost_for: int | None, grace: float | None, phase: str, deleted: list[tuple[str, bool]]
) -> None:
    """A single-node zone never evicts (the node controller's full disruption mode): the operator ends
    the attempt itself once the pod's own tolerations of a lost node have run out."""
    s1 = cycle(job(), {}, []).status
    since = None if lost_for is None else ts(T0 - dt.timedelta(seconds=lost_for))
    running = dataclasses.replace(pod("start", "Running"), node="n1", node_lost_since=since, node_lost_grace=grace)
    res = cycle(job(), s1, [running])
    st = res.status["steps"]["start"]
    assert st["phase"] == phase
    assert [(a.name, a.force) for a in res.actions if isinstance(a, DeletePod)] == deleted
    if deleted:
        assert "the node n1 of the step's pod r-start-1 stopped answering" in st["message"]


def test_a_deleted_pod_with_retries_left_is_retried() -> None:
    spec = job(start={"retries": {"limit": 1, "backoff": {"durationSeconds": 0}}})
    s1 = cycle(spec, {}, []).status
    res = cycle(spec, s1, [])  # no backoff: the next attempt starts in the same cycle
    assert res.status["steps"]["start"]["phase"] == "Running" and res.status["steps"]["start"]["attempt"] == 2
    assert [a for a in res.actions if isinstance(a, CreatePod)] == [CreatePod("start", 2)]


@pytest.mark.parametrize(
    ("pod_", "message"),
    [
        (pod("start", "Succeeded", msg="not json", code=0), "wrote no valid result"),
        (pod("start", "Failed", msg="Traceback ... boom", code=2), "Traceback ... boom"),
        (pod("start", "Failed", code=137, reason="DeadlineExceeded"), "timed out"),
    ],
)
def test_failure_messages(pod_: PodObs, message: str) -> None:
    s1 = cycle(job(), {}, []).status
    st = cycle(job(), s1, [pod_]).status["steps"]["start"]
    assert st["phase"] == "Failed" and message in st["message"]


def test_cancel_deletes_running_pods_and_ends_canceled() -> None:
    s1 = cycle(job(), {}, []).status
    res = cycle(job(), s1, [pod("start", "Running")], cancel=True)
    assert [a.name for a in res.actions if isinstance(a, DeletePod)] == ["r-start-1"]
    assert res.status["phase"] == "Canceled"
    assert phases(res) == {"start": "Interrupted", "left": "Canceled", "right": "Canceled", "end": "Canceled"}


def logged(status: dict[str, Any], pods: list[PodObs]) -> dict[str, Any]:
    """`status` with each finished pod's log key recorded, as the handler's SaveLog does."""
    out = copy.deepcopy(status)
    for p in pods:
        st = out["steps"][p.step]
        st["logs"] = {**(st.get("logs") or {}), str(p.attempt): f"logs/{p.name}"}
    return out


def test_a_finished_run_is_left_alone_and_pod_gc_follows_the_policy() -> None:
    ok = pod("x", "Succeeded", msg=ok_msg(), code=0)
    status, pods = run_to(job(), {s: [ok] for s in ("start", "left", "right", "end")})
    status = logged(status, pods)
    assert cycle(job(), status, pods).actions == []
    gc = cycle(job(), status, pods, pod_gc="OnRunSuccess").actions
    assert sorted(a.name for a in gc if isinstance(a, DeletePod)) == sorted(p.name for p in pods)


def test_a_missing_optional_output_skips_its_consumer() -> None:
    spec = JobSpec.model_validate(
        {
            "image": "i",
            "python": {"job": "m:j"},
            "storage": {"secretRef": {"name": "s"}},
            "ops": [
                {"name": "split", "outputs": ["a", "b"], "optionalOutputs": ["b"]},
                {"name": "use-b", "inputs": {"x": "split.b"}},
                {"name": "use-a", "inputs": {"x": "split.a"}},
            ],
        }
    )
    status, _ = run_to(
        spec,
        {
            "split": [pod("x", "Succeeded", msg=ok_msg("a"), code=0)],
            "use-a": [pod("x", "Succeeded", msg=ok_msg(), code=0)],
        },
    )
    assert {s: v["phase"] for s, v in status["steps"].items()} == {
        "split": "Succeeded",
        "use-b": "Skipped",
        "use-a": "Succeeded",
    }
    assert status["phase"] == "Succeeded"


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ([{"name": "a", "inputs": {"x": "nope"}}], "input 'x' reads 'nope', but the Job has no op 'nope'"),
        ([{"name": "a"}, {"name": "b", "inputs": {"x": "a.zz"}}], "reads output 'zz' of op 'a', which declares only"),
        ([{"name": "a", "inputs": {"x": "b"}}, {"name": "b", "inputs": {"x": "a"}}], "form a dependency cycle"),
        ([{"name": "a", "inputs": {"x": "a"}}], "reads its own output"),
        ([{"name": "a", "optionalOutputs": ["q"]}], "optionalOutputs ['q'] are not in its outputs"),
    ],
)
def test_graph_errors(ops: list[dict[str, Any]], message: str) -> None:
    spec = JobSpec.model_validate(
        {"image": "i", "python": {"job": "m:j"}, "storage": {"secretRef": {"name": "s"}}, "ops": ops}
    )
    with pytest.raises(InvalidJob, match=message.replace("(", r"\(").replace("[", r"\[")):
        build(spec)


def test_ops_in_any_order_get_a_topological_order() -> None:
    spec = JobSpec.model_validate(
        {
            "image": "i",
            "python": {"job": "m:j"},
            "storage": {"secretRef": {"name": "s"}},
            "ops": [
                {"name": "c", "inputs": {"x": "b"}},
                {"name": "b", "inputs": {"x": "a"}},
                {"name": "a"},
                {"name": "z"},
            ],
        }
    )
    assert build(spec).order == ("a", "z", "b", "c")


def test_persist_then_destroy_the_cycle_that_observes_a_result_deletes_nothing() -> None:
    """A pod is deleted only in a cycle whose OBSERVED status holds its result and log: the cycle that
    reads the result from the pod writes it first; the next one deletes the pod."""
    one = JobSpec.model_validate(
        {"image": "i", "python": {"job": "m:j"}, "storage": {"secretRef": {"name": "s"}}, "ops": [{"name": "only"}]}
    )
    done_pod = pod("only", "Succeeded", msg=ok_msg(), code=0)
    for gc in ("OnRunSuccess", "OnStepSuccess"):
        s1 = cycle(one, {}, [], pod_gc=gc).status
        done = cycle(one, s1, [done_pod], pod_gc=gc)
        assert done.status["phase"] == "Succeeded"
        assert [a for a in done.actions if isinstance(a, DeletePod)] == []  # not persisted yet
        after = cycle(one, logged(done.status, [done_pod]), [done_pod], pod_gc=gc)
        assert [a.name for a in after.actions if isinstance(a, DeletePod)] == ["r-only-1"]
    failed = cycle(one, s1, [pod("only", "Failed", msg=fail_msg(), code=1)], pod_gc="OnStepSuccess")
    assert failed.status["phase"] == "Failed"
    assert [a for a in failed.actions if isinstance(a, DeletePod)] == []  # failed pods are kept for debugging


def test_on_step_success_deletes_each_succeeded_pod_while_the_run_goes_on() -> None:
    s1 = cycle(job(), {}, [], pod_gc="OnStepSuccess").status
    started = pod("start", "Succeeded", msg=ok_msg(), code=0)
    s2 = cycle(job(), s1, [started], pod_gc="OnStepSuccess").status
    res = cycle(job(), logged(s2, [started]), [started], pod_gc="OnStepSuccess")
    assert res.status["steps"]["start"]["phase"] == "Succeeded"
    assert [a.name for a in res.actions if isinstance(a, DeletePod)] == ["r-start-1"]
    assert [
        a.name
        for a in cycle(job(), logged(s2, [started]), [started], pod_gc="OnRunSuccess").actions
        if isinstance(a, DeletePod)
    ] == []


OK_STEP = {"phase": "Succeeded", "attempt": 1, "outputs": {"result": {"key": "k"}}, "logs": {"1": "l"}}


@pytest.mark.parametrize(
    ("gc", "run_phase", "step", "deleted"),
    [
        ("OnStepSuccess", "Running", OK_STEP, True),
        ("OnStepSuccess", "Running", {**OK_STEP, "phase": "Running"}, False),  # result not written yet
        ("OnStepSuccess", "Running", {k: v for k, v in OK_STEP.items() if k != "outputs"}, False),
        ("OnStepSuccess", "Running", {**OK_STEP, "logs": {}}, False),  # log not saved yet
        ("OnStepSuccess", "Running", {**OK_STEP, "attempt": 2}, False),  # another attempt's result
        ("OnStepSuccess", "Running", None, False),  # the step not in status at all
        ("OnRunSuccess", "Running", OK_STEP, False),
        ("OnRunSuccess", "Succeeded", OK_STEP, True),
        ("Never", "Succeeded", OK_STEP, False),
    ],
)
def test_collectable_only_pods_whose_result_is_in_the_observed_status(
    gc: str, run_phase: str, step: dict[str, Any] | None, deleted: bool
) -> None:
    observed = {"phase": run_phase, "steps": {"start": step} if step else {}}
    got = collectable(gc, observed, [pod("start", "Succeeded", msg=ok_msg(), code=0)])
    assert [a.name for a in got] == (["r-start-1"] if deleted else [])


def test_duplicate_op_names_are_invalid_even_past_the_api_server() -> None:
    spec = JobSpec.model_validate(
        {
            "image": "i",
            "python": {"job": "m:j"},
            "storage": {"secretRef": {"name": "s"}},
            "ops": [{"name": "a"}, {"name": "b"}, {"name": "a"}],
        }
    )
    with pytest.raises(InvalidJob, match="op names must be unique within a Job: a appear more than once"):
        build(spec)


def test_a_child_run_executes_only_its_planned_steps_and_reads_reused_outputs_in_place() -> None:
    from cairn_operator.models import Execution
    from cairn_operator.resources import step_inputs

    spec = job()
    execution = Execution.model_validate(
        {
            "parentRun": "parent",
            "rootRun": "root",
            "jobSnapshot": spec.model_dump(exclude_none=True),
            "steps": [{"name": "left", "reason": "failed"}, {"name": "end", "reason": "downstream-of:left"}],
            "reused": {
                "start": {"sourceRun": "root", "outputs": {"result": {"key": "ns/root/start/result", "etag": "e1"}}},
                "right": {"sourceRun": "parent", "outputs": {"result": {"key": "ns/parent/right/result"}}},
            },
        }
    )
    first = cycle(spec, {}, [], execution=execution)
    assert creates(first) == [("left", 1)]
    st = first.status["steps"]
    assert st["start"] == {
        "phase": "Reused",
        "attempt": 0,
        "reason": "reused",
        "sourceRun": "root",
        "outputs": {"result": {"key": "ns/root/start/result", "etag": "e1"}},
    }
    assert st["left"]["reason"] == "failed" and st["end"]["phase"] == "Pending"
    assert step_inputs(build(spec), "left", st) == {"start.result": {"key": "ns/root/start/result", "names": ["x"]}}
    done_left = cycle(spec, first.status, [pod("left", "Succeeded", msg=ok_msg(), code=0)], execution=execution)
    assert creates(done_left) == [("end", 1)]
    assert step_inputs(build(spec), "end", done_left.status["steps"])["right.result"]["key"] == "ns/parent/right/result"
    done = cycle(spec, done_left.status, [pod("end", "Succeeded", msg=ok_msg(), code=0)], execution=execution)
    assert done.status["phase"] == "Succeeded" and done.status["progress"] == "4/4"


def test_steps_a_child_run_neither_runs_nor_reuses_are_not_executed() -> None:
    from cairn_operator.models import Execution

    spec = job()
    execution = Execution.model_validate(
        {"parentRun": "p", "rootRun": "p", "jobSnapshot": {}, "steps": [{"name": "start", "reason": "selected"}]}
    )
    st = cycle(spec, {}, [], execution=execution).status["steps"]
    assert {s: (v["phase"], v.get("reason")) for s, v in st.items()} == {
        "start": ("Running", "selected"),
        "left": ("NotExecuted", "not selected"),
        "right": ("NotExecuted", "not selected"),
        "end": ("NotExecuted", "not selected"),
    }


# ----- a step whose container cannot start (image missing, kubelet cannot create it) ------------------
IMG = "localhost/foo:1"
PULL = 'failed to pull and unpack image "localhost/foo:1": dial tcp 127.0.0.1:443: connect: connection refused'
NEVER = 'Container image "localhost/foo:1" is not present with pull policy of Never'
NO_KEY = "couldn't find key token in Secret t/creds"
ROOT_USER = "container has runAsNonRoot and image will run as root (pod: r-start-1, container: step)"


def waiting(reason: str | None, message: str | None = None, phase: str = "Pending", attempt: int = 1) -> PodObs:
    """The start step's pod as the kubelet leaves it: phase, and its container's state.waiting."""
    return PodObs(
        name=f"r-start-{attempt}",
        step="start",
        attempt=attempt,
        phase=phase,
        waiting_reason=reason,
        waiting_message=message,
        image=IMG,
        node="cairn-node",
        started="2026-01-01T00:00:05Z" if phase == "Running" else None,
    )


def warnings(res: Any) -> list[str]:
    return [a.reason for a in res.actions if isinstance(a, Event) and a.type == "Warning"]


#: Rows: the start pod's successive observations, one per cycle, and after each: (the Warning Events
#: posted, the pieces the step's message holds or None when it has none, whether the status changed).
Obs = tuple[PodObs, list[str], list[str] | None, bool]
CANNOT_START: dict[str, list[Obs]] = {
    "ErrImagePull: message and event once; image loaded later: Running clears the message": [
        (
            waiting("ErrImagePull", PULL),
            ["ImagePullFailed"],
            [
                f"image {IMG} is not on node cairn-node and could not be pulled (ErrImagePull: {PULL})",
                f"kind load docker-image {IMG}",
                "cairn dev up --node=containerd",
                "fix the op's image",
            ],
            True,
        ),
        (waiting("ErrImagePull", PULL), [], [PULL], False),  # the same observation: nothing new
        (waiting("ImagePullBackOff", f'Back-off pulling image "{IMG}"'), [], [PULL], False),
        (waiting("ErrImagePull", PULL), [], [PULL], False),
        (waiting("ContainerCreating"), [], None, True),  # loaded: being created is not a problem
        (waiting(None, phase="Running"), [], None, True),  # started: startedAt
        (waiting(None, phase="Running"), [], None, False),
    ],
    "ErrImageNeverPull names the node and the fix": [
        (
            waiting("ErrImageNeverPull", NEVER),
            ["ImagePullFailed"],
            [f"ImagePullFailed: image {IMG} is not on node cairn-node (ErrImageNeverPull: {NEVER}): build or load it"],
            True,
        ),
        (waiting("ErrImageNeverPull", NEVER), [], [NEVER], False),
        (waiting(None, phase="Running"), [], None, True),
    ],
    "the first sight is the back-off: its message, then the pull's error without a second event": [
        (waiting("ImagePullBackOff", f'Back-off pulling image "{IMG}"'), ["ImagePullFailed"], ["Back-off"], True),
        (waiting("ErrImagePull", PULL), [], [PULL], True),
        (waiting("ImagePullBackOff", f'Back-off pulling image "{IMG}"'), [], [PULL], False),
    ],
    "InvalidImageName": [
        (
            waiting("InvalidImageName", "invalid reference format"),
            ["ImagePullFailed"],
            ["not a valid image name"],
            True,
        ),
    ],
    "CreateContainerConfigError: the kubelet's message surfaced": [
        (waiting("CreateContainerConfigError", NO_KEY), ["CreateContainerFailed"], [NO_KEY, "node cairn-node"], True),
        (waiting("CreateContainerConfigError", NO_KEY), [], [NO_KEY], False),
    ],
    "CreateContainerError (runAsNonRoot, a root image), then an image pull problem: one event each": [
        (waiting("CreateContainerError", ROOT_USER), ["CreateContainerFailed"], [ROOT_USER, "USER"], True),
        (waiting("ErrImageNeverPull", NEVER), ["ImagePullFailed"], [NEVER], True),
    ],
    "a container being created is just starting": [
        (waiting("ContainerCreating"), [], None, False),
    ],
}


@pytest.mark.parametrize("observations", list(CANNOT_START.values()), ids=list(CANNOT_START))
def test_a_container_that_cannot_start_is_named_once_and_the_step_keeps_waiting(observations: list[Obs]) -> None:
    status = cycle(job(), {}, []).status
    status = cycle(job(), status, [waiting("ContainerCreating")], now=T0).status
    for i, (obs, events, pieces, changed) in enumerate(observations, start=1):
        res = cycle(job(), status, [obs], now=T0 + dt.timedelta(seconds=i))
        st = res.status["steps"]["start"]
        assert warnings(res) == events, i
        assert (res.status != status) is changed, i
        assert st["phase"] == "Running" and creates(res) == [] and res.status["phase"] == "Running"
        conds = {c["type"]: c for c in res.status["conditions"]}
        if pieces is None:
            assert "message" not in st and "message" not in res.status
            assert conds["Reconciling"]["reason"] == "Running" and conds["Reconciling"]["status"] == "True"
        else:
            for piece in pieces:
                assert piece in st["message"], (i, piece, st["message"])
            # The Run says which step is stuck, in its message and its Reconciling condition (not Stalled:
            # the image may be loaded later).
            assert res.status["message"] == f"step start cannot start: {st['message']}"
            assert conds["Reconciling"]["status"] == "True" and conds["Stalled"]["status"] == "False"
            assert conds["Succeeded"]["status"] == "Unknown"
            assert conds["Reconciling"]["reason"] == st["message"].split(":")[0]
            assert conds["Reconciling"]["message"] == res.status["message"]
        for a in res.actions:
            if isinstance(a, Event) and a.type == "Warning":
                assert a.message == f"step start (pod r-start-1): {st['message']}"
        status = res.status


def test_a_running_run_whose_pods_do_not_change_keeps_its_status_as_it_is() -> None:
    """Condition times are transitions: a cycle that observes nothing new writes nothing."""
    s1 = cycle(job(), {}, []).status
    s2 = cycle(job(), s1, [pod("start", "Running")], now=T0 + dt.timedelta(seconds=1)).status
    assert cycle(job(), s2, [pod("start", "Running")], now=T0 + dt.timedelta(seconds=9)).status == s2
    assert {c["lastTransitionTime"] for c in s2["conditions"]} == {"2026-01-01T00:00:00Z"}


def test_a_stuck_step_with_a_timeout_fails_naming_what_it_waited_for_and_retries_anew() -> None:
    spec = job(start={"timeoutSeconds": 60, "retries": {"limit": 1, "backoff": {"durationSeconds": 1}}})
    s1 = cycle(spec, {}, []).status
    s2 = cycle(spec, s1, [waiting("ErrImageNeverPull", NEVER)]).status
    dead = PodObs(**{**waiting("ErrImageNeverPull", NEVER).__dict__, "phase": "Failed", "reason": "DeadlineExceeded"})
    r3 = cycle(spec, s2, [dead], now=T0 + dt.timedelta(seconds=61))
    st = r3.status["steps"]["start"]
    assert st["phase"] == "Retrying" and r3.status["phase"] == "Running" and "message" not in r3.status
    assert st["message"].startswith("timed out (timeoutSeconds, pod reason DeadlineExceeded) before its container")
    assert NEVER in st["message"] and warnings(r3) == ["StepRetrying"]
    r4 = cycle(spec, r3.status, [dead], now=T0 + dt.timedelta(seconds=63))
    assert creates(r4) == [("start", 2)]
    again = waiting("ErrImageNeverPull", NEVER, attempt=2)
    r5 = cycle(spec, r4.status, [dead, again], now=T0 + dt.timedelta(seconds=64))
    assert warnings(r5) == ["ImagePullFailed"]  # a new pod: said again, once
    assert r5.status["message"].startswith("step start cannot start: ImagePullFailed: image localhost/foo:1")


def test_two_stuck_steps_are_both_named() -> None:
    s1 = cycle(job(), {}, []).status
    s2 = cycle(job(), s1, [pod("start", "Succeeded", msg=ok_msg(), code=0)]).status
    pods = [pod("start", "Succeeded", msg=ok_msg(), code=0)]
    for step in ("left", "right"):
        pods.append(PodObs(**{**waiting("ErrImageNeverPull", NEVER).__dict__, "step": step, "name": f"r-{step}-1"}))
    res = cycle(job(), s2, pods)
    assert warnings(res) == ["ImagePullFailed", "ImagePullFailed"]
    assert res.status["message"].startswith("step left cannot start (also stuck: right): ImagePullFailed: ")


def _pod_doc(ready: dict[str, Any], tolerations: list[dict[str, Any]], running: bool = True) -> dict[str, Any]:
    state = {"running": {"startedAt": "2026-01-01T00:00:00Z"}} if running else {"waiting": {"reason": "X"}}
    return {
        "metadata": {"name": "p", "labels": {"cairn.dev/step": "s", "cairn.dev/attempt": "1"}},
        "spec": {"nodeName": "n1", "tolerations": tolerations, "containers": [{"image": "i"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", **ready}],
            "containerStatuses": [{"state": state}],
        },
    }


LOST = {"status": "False", "lastTransitionTime": "2026-01-01T00:00:05Z"}
TOL = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]


@pytest.mark.parametrize(
    ("doc", "since", "grace"),
    [
        (_pod_doc(LOST, TOL), "2026-01-01T00:00:05Z", 60.0),
        (_pod_doc({**LOST, "reason": "ContainersNotReady"}, TOL), None, 60.0),  # the kubelet's own word
        (_pod_doc({"status": "True"}, TOL), None, 60.0),
        (_pod_doc(LOST, TOL, running=False), None, 60.0),
        (_pod_doc(LOST, [{"operator": "Exists"}]), "2026-01-01T00:00:05Z", None),  # tolerates it for ever
        (
            _pod_doc(
                LOST, [*TOL, {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "tolerationSeconds": 9}]
            ),
            "2026-01-01T00:00:05Z",
            9.0,
        ),
        (_pod_doc(LOST, []), "2026-01-01T00:00:05Z", None),
    ],
)
def test_a_lost_node_is_read_from_the_pod(doc: dict[str, Any], since: str | None, grace: float | None) -> None:
    from cairn_operator import kube

    obs = kube.pod_obs(doc)
    assert (obs.node_lost_since, obs.node_lost_grace, obs.node) == (since, grace, "n1")


def test_a_succeeded_step_records_the_version_that_produced_it() -> None:
    """What a Stale re-execution compares: the version (code, image, config) of each step that succeeded;
    a failed step records none."""
    versions = {"start": "v1+img:img+cfg:00", "left": "v9+img:img+cfg:00"}
    s1 = cycle(job(), {}, [], versions=versions).status
    res = cycle(job(), s1, [pod("start", "Succeeded", msg=ok_msg(), code=0)], versions=versions)
    assert res.status["steps"]["start"]["version"] == "v1+img:img+cfg:00"
    failed = cycle(job(), s1, [pod("start", "Failed", msg=fail_msg("boom"), code=1)], versions=versions)
    assert "version" not in failed.status["steps"]["start"]


def test_step_versions_change_with_code_image_and_config() -> None:
    from cairn_operator.resources import step_versions

    base = job().model_copy(deep=True)
    v0 = step_versions(base, None, None)
    assert v0["start"].startswith("py:m:j+img:img+cfg:")
    coded = JobSpec.model_validate(
        {**base.model_dump(exclude_none=True), "ops": [{"name": "start", "codeVersion": "v2"}]}
    )
    assert step_versions(coded, None, None)["start"].startswith("v2+img:img+cfg:")
    from cairn_operator.models import StepOverride

    assert step_versions(base, None, {"start": StepOverride(image="img:2")})["start"] != v0["start"]
    assert step_versions(base, {"ops": {"start": {"config": {"x": 1}}}}, None)["start"] != v0["start"]
    assert step_versions(base, {"ops": {"left": {"config": {"x": 1}}}}, None)["start"] == v0["start"]
