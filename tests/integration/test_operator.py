"""The operator on the real control plane: Jobs and Runs from manifests, one pod per op on cairn-local,
outputs in SeaweedFS S3."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.helpers import after_cycles, eventually

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "crds" / "samples"
G, V = "cairn.dev", "v1alpha1"


@pytest.fixture
def ns(namespace: str, core: Any) -> str:
    """A namespace with its own copy of the Secret cairn-s3, as a user would create it."""
    src = core.read_namespaced_secret("cairn-s3", "default")
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="cairn-s3"), data=src.data)
    )
    return namespace


def co(kube: Any) -> Any:
    return client.CustomObjectsApi(kube)


def apply(kube: Any, ns: str, doc: dict[str, Any]) -> dict[str, Any]:
    plural = {"Job": "jobs", "Run": "runs"}[doc["kind"]]
    created: dict[str, Any] = co(kube).create_namespaced_custom_object(G, V, ns, plural, doc)
    return created


def get_run(kube: Any, ns: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = co(kube).get_namespaced_custom_object(G, V, ns, "runs", name)
    return obj


FINISHED = ("Succeeded", "Failed", "Canceled")


def wait_phase(kube: Any, ns: str, name: str, *phases: str, timeout: float = 90) -> dict[str, Any]:
    """The Run once in one of `phases`; a finished one also settled (what follows its end is done, so its
    status no longer changes: a test may compare it with a later read)."""

    def done() -> dict[str, Any] | None:
        run = get_run(kube, ns, name)
        status = run.get("status") or {}
        if status.get("phase") not in phases:
            return None
        return run if status.get("phase") not in FINISHED or status.get("settled") else None

    return eventually(done, timeout=timeout, interval=0.5, what=f"run {name} to reach {phases}")


def touch(kube: Any, ns: str, plural: str, name: str) -> None:
    """Change an annotation of the object and nothing else: a change, so its controller runs a cycle at
    once (rather than at its next resync or back-off)."""
    patch = {"metadata": {"annotations": {"test.cairn.dev/touched": uuid.uuid4().hex}}}
    co(kube).patch_namespaced_custom_object(G, V, ns, plural, name, patch)


def cycles_on_job_edits(op: Any, kube: Any, ns: str, run: str, job: str, n: int = 3) -> None:
    """Wait until the Run (not started: it waits on its Job, e.g. refused) had `n` more reconcile cycles,
    each woken at once by an edit of its Job (`touch`) rather than at the end of its growing back-off."""
    after_cycles(op, "Run", ns, run, n=n, nudge=lambda: touch(kube, ns, "jobs", job))


def lineage_settled(kube: Any, ns: str, root: str, runs: int) -> list[dict[str, Any]] | None:
    """The Runs of `root`'s lineage once there are `runs` of them and each has settled: a finished Run
    writes `status.settled` only after its automatic-retry decision, so then no further retry can come."""
    items: list[dict[str, Any]] = co(kube).list_namespaced_custom_object(
        G, V, ns, "runs", label_selector=f"cairn.dev/root-run={root}"
    )["items"]
    settled = [r for r in items if (r.get("status") or {}).get("settled")]
    return items if len(items) == runs and len(settled) == runs else None


def sample(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SAMPLES / name).read_text())
    return doc


def test_the_seed_samples_fail_and_succeed_with_outputs_in_s3(
    cairn_operator: Any, kube: Any, core: Any, ns: str, s3: Any
) -> None:
    apply(kube, ns, sample("job-unreliable.yaml"))
    apply(kube, ns, sample("run-unreliable-fails.yaml"))
    apply(kube, ns, sample("run-unreliable-succeeds.yaml"))
    ok = wait_phase(kube, ns, "unreliable-succeeds", "Succeeded", "Failed")
    bad = wait_phase(kube, ns, "unreliable-fails", "Succeeded", "Failed")
    assert ok["status"]["phase"] == "Succeeded", ok["status"]
    assert ok["status"]["progress"] == "3/3" and ok["status"]["failedSteps"] == 0
    assert {c["type"]: c["status"] for c in ok["status"]["conditions"]} == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "Succeeded": "True",
    }
    assert ok["status"]["observedGeneration"] == ok["metadata"]["generation"]
    assert {c["observedGeneration"] for c in ok["status"]["conditions"]} == {ok["metadata"]["generation"]}
    assert ok["status"]["jobSnapshot"]["python"]["job"] == "cairn.examples.unreliable:unreliable_job"
    assert ok["metadata"]["labels"]["cairn.dev/job"] == "unreliable"
    for step in ("start", "unreliable", "end"):
        st = ok["status"]["steps"][step]
        assert st["phase"] == "Succeeded" and st["attempt"] == 1 and st["exitCode"] == 0
        out = st["outputs"]["result"]
        head = s3.head_object(Bucket=s3.bucket, Key=f"cairn/{out['key']}")
        assert head["ContentLength"] == out["size"]
        assert head["ETag"].strip('"') == out["etag"] and len(out["sha256"]) == 64
        assert out["key"].startswith(f"{ns}/unreliable-succeeds.")
        # `uri` names the full object (the storage prefix joined with the relative key): it exists.
        assert out["bucket"] == s3.bucket and out["uri"] == f"s3://{s3.bucket}/cairn/{out['key']}"
        bucket, _, key = out["uri"].removeprefix("s3://").partition("/")
        assert s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"') == out["etag"]
    assert bad["status"]["phase"] == "Failed"
    steps = bad["status"]["steps"]
    assert (steps["start"]["phase"], steps["unreliable"]["phase"], steps["end"]["phase"]) == (
        "Succeeded",
        "Failed",
        "NotExecuted",
    )
    assert steps["unreliable"]["message"] == "Exception: blah" and steps["unreliable"]["exitCode"] == 1
    conds = {c["type"]: c for c in bad["status"]["conditions"]}
    assert {t: c["status"] for t, c in conds.items()} == {
        "Ready": "False",
        "Reconciling": "False",
        "Stalled": "True",
        "Succeeded": "False",
    }
    assert conds["Stalled"]["reason"] == "Failed" and conds["Stalled"]["message"] == bad["status"]["message"]

    pods = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=unreliable-fails").items
    assert sorted(p.metadata.labels["cairn.dev/step"] for p in pods) == ["start", "unreliable"]
    for p in pods:
        assert p.metadata.owner_references[0].kind == "Run" and p.metadata.labels["cairn.dev/attempt"] == "1"
        env = {e.name: e for e in p.spec.containers[0].env}
        assert env["AWS_SECRET_ACCESS_KEY"].value is None and env["AWS_SECRET_ACCESS_KEY"].value_from
    secret = base64.b64decode(core.read_namespaced_secret("cairn-s3", ns).data["AWS_SECRET_ACCESS_KEY"]).decode()
    assert secret not in yaml.safe_dump(bad)  # credentials never in a status
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=unreliable-fails").items
    reasons = {e.reason for e in events}
    assert {"StepStarted", "StepSucceeded", "StepFailed", "RunFailed"} <= reasons


def job_of(name: str, python_job: str, ops: list[dict[str, Any]], image: str = "x", **spec: Any) -> dict[str, Any]:
    """A Job whose ops run the Python job `python_job`, storage from the Secret cairn-s3."""
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "image": image,
            "python": {"job": python_job},
            "storage": {"secretRef": {"name": "cairn-s3"}},
            **spec,
            "ops": ops,
        },
    }


def flaky_job(ns_marker: Path, retries: int) -> dict[str, Any]:
    path = {"name": "PYTHONPATH", "value": str(ROOT)}
    ops: list[dict[str, Any]] = [
        {"name": "start", "env": [path]},
        {
            "name": "flaky",
            "inputs": {"num": "start"},
            "retries": {"limit": retries, "backoff": {"durationSeconds": 1}},
            "env": [path, {"name": "CAIRN_TEST_MARKER", "value": str(ns_marker)}],
        },
        {"name": "end", "inputs": {"_num": "flaky"}, "env": [path]},
    ]
    return job_of("flaky", "tests.local.jobs:flaky_job", ops, image="python:3.11-slim")


def run_of(job: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Run",
        "metadata": {"name": name},
        "spec": {"jobRef": {"name": job}, **spec},
    }


def test_a_failed_step_is_retried_as_a_new_attempt_pod(
    cairn_operator: Any, kube: Any, core: Any, ns: str, tmp_path: Path, dev_cluster: Any, dev_state: Any
) -> None:
    apply(kube, ns, flaky_job(tmp_path / "marker", retries=2))
    apply(kube, ns, run_of("flaky", "r1"))
    run = wait_phase(kube, ns, "r1", "Succeeded", "Failed")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["steps"]["flaky"]["attempt"] == 2
    pods = core.list_namespaced_pod(ns, label_selector="cairn.dev/step=flaky").items
    assert sorted(p.metadata.labels["cairn.dev/attempt"] for p in pods) == ["1", "2"]
    assert {p.metadata.labels["cairn.dev/attempt"]: p.status.phase for p in pods} == {"1": "Failed", "2": "Succeeded"}
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=r1").items
    assert any(e.reason == "StepRetrying" for e in events)
    # Each attempt's log outlives its pod, in storage; `cairn k8s logs` shows it.
    logs = run["status"]["steps"]["flaky"]["logs"]
    assert sorted(logs) == ["1", "2"]
    for p in pods:
        core.delete_namespaced_pod(p.metadata.name, ns)
    env = {**os.environ, **dev_cluster.env(dev_state)}
    out = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "k8s", "logs", "r1", "flaky", "--attempt", "1", "-n", ns],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "RuntimeError: first attempt fails" in out.stdout


def test_without_retries_the_run_fails(cairn_operator: Any, kube: Any, ns: str, tmp_path: Path) -> None:
    apply(kube, ns, flaky_job(tmp_path / "marker", retries=0))
    apply(kube, ns, run_of("flaky", "r0"))
    run = wait_phase(kube, ns, "r0", "Succeeded", "Failed")
    assert run["status"]["phase"] == "Failed"
    assert run["status"]["steps"]["flaky"]["message"] == "RuntimeError: first attempt fails"


SLOW_JOB: dict[str, Any] = {
    "apiVersion": f"{G}/{V}",
    "kind": "Job",
    "metadata": {"name": "slow"},
    "spec": {
        "image": "x",
        "python": {"job": "tests.local.jobs:slow_job"},
        "storage": {"secretRef": {"name": "cairn-s3"}},
        "ops": [
            {"name": "start", "env": [{"name": "PYTHONPATH", "value": str(ROOT)}]},
            {"name": "slow", "inputs": {"num": "start"}, "env": [{"name": "PYTHONPATH", "value": str(ROOT)}]},
            {"name": "end", "inputs": {"_num": "slow"}, "env": [{"name": "PYTHONPATH", "value": str(ROOT)}]},
        ],
    },
}


def test_cancel_deletes_running_pods_and_ends_canceled(cairn_operator: Any, kube: Any, core: Any, ns: str) -> None:
    apply(kube, ns, copy.deepcopy(SLOW_JOB))
    apply(kube, ns, run_of("slow", "c1"))
    eventually(
        lambda: (
            (get_run(kube, ns, "c1").get("status") or {}).get("steps", {}).get("slow", {}).get("phase") == "Running"
        ),
        timeout=60,
        what="slow step running",
    )
    co(kube).patch_namespaced_custom_object(G, V, ns, "runs", "c1", {"spec": {"cancel": True}})
    run = wait_phase(kube, ns, "c1", "Canceled", timeout=60)
    assert run["status"]["steps"]["slow"]["phase"] == "Interrupted"  # it ran: stopped while running
    assert run["status"]["steps"]["end"]["phase"] == "Canceled"  # never started

    def slow_pod_gone() -> bool:
        return not core.list_namespaced_pod(ns, label_selector="cairn.dev/run=c1,cairn.dev/step=slow").items

    eventually(slow_pod_gone, timeout=60, what="the slow step's pod to be deleted")


def conditions(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (run.get("status") or {}).get("conditions") or []}


def waiting_for(kube: Any, ns: str, name: str, reason: str) -> dict[str, Any]:
    """The Run once it says it waits (Pending, Reconciling with `reason`)."""

    def done() -> dict[str, Any] | None:
        run = get_run(kube, ns, name)
        c = conditions(run).get("Reconciling") or {}
        return run if (c.get("status"), c.get("reason")) == ("True", reason) else None

    run = eventually(done, timeout=30, interval=0.5, what=f"run {name} to wait with reason {reason}")
    assert run["status"]["phase"] == "Pending" and "jobSnapshot" not in run["status"]
    assert {t: c["status"] for t, c in conditions(run).items()} == {
        "Ready": "False",
        "Reconciling": "True",
        "Stalled": "False",
        "Succeeded": "Unknown",
    }
    return run


def events_of(core: Any, ns: str, name: str, reason: str) -> list[Any]:
    events = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    return [e for e in events if e.reason == reason]


def test_a_run_applied_before_its_job_waits_and_starts_when_the_job_appears(
    cairn_operator: Any, kube: Any, core: Any, ns: str
) -> None:
    apply(kube, ns, sample("run-unreliable-succeeds.yaml"))
    run = waiting_for(kube, ns, "unreliable-succeeds", "JobNotFound")
    assert "waiting for Job 'unreliable'" in run["status"]["message"] and ns in run["status"]["message"]
    eventually(lambda: events_of(core, ns, "unreliable-succeeds", "JobNotFound"), timeout=10, what="JobNotFound event")
    # Two more cycles (checks every 5 s): still one Event, no status write.
    after_cycles(cairn_operator, "Run", ns, "unreliable-succeeds", n=2)
    assert get_run(kube, ns, "unreliable-succeeds")["metadata"]["resourceVersion"] == run["metadata"]["resourceVersion"]
    [event] = events_of(core, ns, "unreliable-succeeds", "JobNotFound")
    assert event.type == "Warning" and (event.count or 1) == 1
    apply(kube, ns, sample("job-unreliable.yaml"))  # the Job's watch event wakes the Run
    done = wait_phase(kube, ns, "unreliable-succeeds", "Succeeded", "Failed")
    assert done["status"]["phase"] == "Succeeded" and done["status"]["message"] == "all 3 steps done"
    assert conditions(done)["Ready"]["status"] == "True"


def test_a_run_applied_before_its_secret_waits_and_starts_when_the_secret_appears(
    cairn_operator: Any, kube: Any, core: Any, namespace: str
) -> None:
    apply(kube, namespace, sample("job-unreliable.yaml"))
    apply(kube, namespace, sample("run-unreliable-succeeds.yaml"))
    run = waiting_for(kube, namespace, "unreliable-succeeds", "SecretNotFound")
    assert "waiting for Secret 'cairn-s3'" in run["status"]["message"]
    src = core.read_namespaced_secret("cairn-s3", "default")
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="cairn-s3"), data=src.data)
    )
    done = wait_phase(kube, namespace, "unreliable-succeeds", "Succeeded", "Failed")
    assert done["status"]["phase"] == "Succeeded"
    assert len(events_of(core, namespace, "unreliable-succeeds", "SecretNotFound")) == 1


def test_an_invalid_graph_fails_the_run_with_a_clear_message(cairn_operator: Any, kube: Any, ns: str) -> None:
    cyclic = copy.deepcopy(SLOW_JOB)
    cyclic["metadata"]["name"] = "cyclic"
    cyclic["spec"]["ops"][0]["inputs"] = {"x": "end"}
    apply(kube, ns, cyclic)
    apply(kube, ns, run_of("cyclic", "loop"))
    run = wait_phase(kube, ns, "loop", "Failed", timeout=30)
    assert "form a dependency cycle" in run["status"]["message"]
    stalled = conditions(run)["Stalled"]
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidJob")
    assert stalled["message"] == run["status"]["message"]
    assert conditions(run)["Succeeded"]["status"] == "False"


def test_schema_and_cel_refuse_bad_manifests_at_apply(cairn_operator: Any, kube: Any, ns: str) -> None:
    bad = copy.deepcopy(SLOW_JOB)
    bad["metadata"]["name"] = "dupes"
    bad["spec"]["ops"].append({"name": "start"})
    with pytest.raises(ApiException) as err:
        apply(kube, ns, bad)
    assert err.value.status == 422 and "spec.ops[3]: Duplicate value" in json.loads(err.value.body)["message"]
    bad["spec"]["ops"] = []
    with pytest.raises(ApiException) as err:
        apply(kube, ns, bad)
    assert "should have at least 1 items" in err.value.body
    bad["spec"]["ops"] = [{"name": "Not_DNS"}]
    with pytest.raises(ApiException) as err:
        apply(kube, ns, bad)
    assert "spec.ops[0].name" in err.value.body
    bad["spec"]["ops"] = [{"name": "ok", "surprise": 1}]
    with pytest.raises(ApiException) as err:
        co(kube).create_namespaced_custom_object(G, V, ns, "jobs", bad, field_validation="Strict")
    assert 'unknown field "spec.ops[0].surprise"' in json.loads(err.value.body)["message"]


def slow_job_recording(tmp_path: Path, sleep: int) -> dict[str, Any]:
    """SLOW_JOB whose ops append their names to tmp_path/calls, signal tmp_path/started, and whose slow
    step sleeps `sleep` seconds."""
    job = copy.deepcopy(SLOW_JOB)
    for op in job["spec"]["ops"]:
        op["env"] += [
            {"name": "CAIRN_TEST_CALLS", "value": str(tmp_path / "calls")},
            {"name": "CAIRN_TEST_STARTED", "value": str(tmp_path / "started")},
            {"name": "CAIRN_TEST_SLEEP", "value": str(sleep)},
        ]
    return job


def test_a_run_keeps_its_snapshot_and_survives_an_operator_restart(
    cairn_operator: Any, kube: Any, core: Any, ns: str, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    apply(kube, ns, slow_job_recording(tmp_path, sleep=4))
    apply(kube, ns, run_of("slow", "rs"))
    eventually(lambda: (tmp_path / "started").exists(), timeout=60, what="the slow step to start")
    # Edit the Job: the running Run must not see it.
    co(kube).patch_namespaced_custom_object(G, V, ns, "jobs", "slow", {"spec": {"maxParallel": 7}})
    cairn_operator.stop()

    def slow_pod_done() -> bool:
        pods = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=rs,cairn.dev/step=slow").items
        return bool(pods) and pods[0].status.phase == "Succeeded"

    eventually(slow_pod_done, timeout=60, what="the slow pod to finish while the operator is down")
    cairn_operator.restart()
    run = wait_phase(kube, ns, "rs", "Succeeded", "Failed", timeout=90)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["jobSnapshot"].get("maxParallel", 4) == 4
    assert calls.read_text().splitlines() == ["start", "slow", "end"]  # no step ran twice
    pods = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=rs").items
    assert sorted((p.metadata.labels["cairn.dev/step"], p.metadata.labels["cairn.dev/attempt"]) for p in pods) == [
        ("end", "1"),
        ("slow", "1"),
        ("start", "1"),
    ]


def test_command_ops_in_any_language_pass_files_and_pod_gc_cleans_up(
    cairn_operator: Any, kube: Any, core: Any, ns: str, s3: Any
) -> None:
    job = {
        "apiVersion": f"{G}/{V}",
        "kind": "Job",
        "metadata": {"name": "shell"},
        "spec": {
            "image": "alpine",
            "storage": {"secretRef": {"name": "cairn-s3"}, "prefix": "cmd"},
            "ops": [
                {"name": "gen", "command": ["sh", "-c", 'printf hello > "$CAIRN_OUTPUT_RESULT"']},
                {
                    "name": "upper",
                    "inputs": {"text": "gen"},
                    "command": ["sh", "-c", 'tr a-z A-Z < "$CAIRN_INPUT_TEXT" > "$CAIRN_OUTPUT_RESULT"'],
                },
            ],
        },
    }
    apply(kube, ns, job)
    apply(kube, ns, run_of("shell", "sh1", podGC={"strategy": "OnRunSuccess"}))
    run = wait_phase(kube, ns, "sh1", "Succeeded", "Failed")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    key = run["status"]["steps"]["upper"]["outputs"]["result"]["key"]
    assert s3.get_object(Bucket=s3.bucket, Key=f"cmd/{key}")["Body"].read() == b"HELLO"
    eventually(
        lambda: not core.list_namespaced_pod(ns, label_selector="cairn.dev/run=sh1").items,
        timeout=30,
        what="podGC OnRunSuccess to delete the pods",
    )


def test_the_operator_reports_liveness(cairn_operator: Any) -> None:
    import urllib.request

    def live() -> bool:
        try:
            with urllib.request.urlopen(cairn_operator.liveness_url, timeout=5) as resp:
                return bool(resp.status == 200)
        except OSError:  # not listening yet
            return False

    assert eventually(live, timeout=30, what="the liveness endpoint")


def test_a_child_run_reexecutes_failed_steps_reusing_the_parents_outputs(
    cairn_operator: Any, kube: Any, core: Any, ns: str, s3: Any
) -> None:
    """What a Reexecution creates: a Run with spec.execution, linked to its parent, that runs only the
    planned steps and reads every other input where the parent stored it."""
    apply(kube, ns, sample("job-unreliable.yaml"))
    apply(kube, ns, sample("run-unreliable-fails.yaml"))
    parent = wait_phase(kube, ns, "unreliable-fails", "Failed", "Succeeded")
    assert parent["status"]["phase"] == "Failed"
    start_out = parent["status"]["steps"]["start"]["outputs"]["result"]
    child = run_of("unreliable", "unreliable-fails-rx1")
    child["metadata"]["labels"] = {"cairn.dev/parent-run": "unreliable-fails", "cairn.dev/root-run": "unreliable-fails"}
    child["spec"]["overrides"] = {"unreliable": {"env": [{"name": "CAIRN_UNRELIABLE", "value": "pass"}]}}
    child["spec"]["execution"] = {
        "parentRun": "unreliable-fails",
        "rootRun": "unreliable-fails",
        "jobSnapshot": parent["status"]["jobSnapshot"],
        "steps": [{"name": "unreliable", "reason": "failed"}, {"name": "end", "reason": "downstream-of:unreliable"}],
        "reused": {
            "start": {
                "sourceRun": "unreliable-fails",
                "outputs": {"result": {"key": start_out["key"], "etag": start_out["etag"]}},
            }
        },
    }
    # The Job changes after the parent ran: the child still runs the parent's snapshot.
    co(kube).patch_namespaced_custom_object(G, V, ns, "jobs", "unreliable", {"spec": {"image": "changed:2"}})
    apply(kube, ns, child)
    done = wait_phase(kube, ns, "unreliable-fails-rx1", "Succeeded", "Failed")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    steps = done["status"]["steps"]
    assert (steps["start"]["phase"], steps["start"]["sourceRun"]) == ("Reused", "unreliable-fails")
    assert steps["start"]["outputs"]["result"]["key"] == start_out["key"]  # read in place, not copied
    assert steps["unreliable"]["reason"] == "failed" and steps["end"]["phase"] == "Succeeded"
    pods = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=unreliable-fails-rx1").items
    assert sorted(p.metadata.labels["cairn.dev/step"] for p in pods) == ["end", "unreliable"]
    assert {p.spec.containers[0].image for p in pods} == {"localhost/cairn-step:0.1.0"}  # snapshot
    child_prefix = f"cairn/{ns}/unreliable-fails-rx1."
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket, Prefix=f"cairn/{ns}/")["Contents"]]
    assert not any(k.startswith(child_prefix) and "/start/" in k for k in keys)
    table = get_run(kube, ns, "unreliable-fails-rx1")
    assert table["metadata"]["labels"]["cairn.dev/parent-run"] == "unreliable-fails"
    assert get_run(kube, ns, "unreliable-fails")["status"] == parent["status"]  # the parent is unchanged
