"""Bad manifests: refused at apply by the schema or CEL, or failing their Run with InvalidJob, while the
operator keeps serving other Runs. Also: timeouts, and an operator killed with SIGKILL mid-run."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from tests.helpers import eventually
from tests.integration.test_operator import SLOW_JOB, G, V, apply, ns, run_of, sample, slow_job_recording, wait_phase

__all__ = ["ns"]
ROOT = Path(__file__).resolve().parents[2]


def job_with(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SLOW_JOB)
    doc["metadata"]["name"] = "bad"
    for path, value in changes.items():
        target = doc["spec"]
        keys = path.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        last = keys[-1]
        if value is None:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return doc


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ops": [{"name": "a"}, {"name": "a"}]}, "spec.ops[1]: Duplicate value"),
        ({"ops": []}, "should have at least 1 items"),
        ({"ops": [{"name": "Not_DNS"}]}, "spec.ops[0].name"),
        ({"ops": [{"name": "a", "inputs": {"x": "UP.x"}}]}, "spec.ops[0].inputs.x"),
        ({"ops": [{"name": "a", "outputs": ["1bad"]}]}, "spec.ops[0].outputs[0]"),
        ({"maxParallel": 0}, "spec.maxParallel"),
        ({"ops": [{"name": "a", "retries": {"limit": 21}}]}, "spec.ops[0].retries.limit"),
        ({"ops": [{"name": "a", "retries": {"backoff": {"factor": 0.5}}}]}, "spec.ops[0].retries.backoff.factor"),
        ({"ops": [{"name": "a", "timeoutSeconds": 0}]}, "spec.ops[0].timeoutSeconds"),
        ({"python": None}, "an op without `command` runs the Job's python entrypoint"),
        ({"image": None}, "every op needs an image"),
        ({"storage": None}, "spec.storage: Required value"),
        ({"python": {"job": "no-colon"}}, "spec.python.job"),
        ({"storage": {"secretRef": {"name": ""}}}, "spec.storage.secretRef.name"),
    ],
)
def test_bad_jobs_are_refused_at_apply(
    cairn_operator: Any, kube: Any, ns: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiException) as err:
        apply(kube, ns, job_with(**changes))
    assert err.value.status == 422, err.value.body
    assert message in json.loads(err.value.body)["message"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"jobRef": {"name": "x"}, "podGC": {"strategy": "Sometimes"}}, "spec.podGC.strategy"),
        ({"config": {}}, "spec.jobRef: Required value"),
        ({"jobRef": {"name": "x"}, "maxParallel": 0}, "spec.maxParallel"),
    ],
)
def test_bad_runs_are_refused_at_apply(
    cairn_operator: Any, kube: Any, ns: str, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiException) as err:
        apply(kube, ns, {"apiVersion": f"{G}/{V}", "kind": "Run", "metadata": {"name": "bad"}, "spec": spec})
    assert message in json.loads(err.value.body)["message"]


GRAPH_ERRORS = [
    ([{"name": "a", "inputs": {"x": "nope"}}], "input 'x' reads 'nope', but the Job has no op 'nope'"),
    ([{"name": "a"}, {"name": "b", "inputs": {"x": "a.zz"}}], "reads output 'zz' of op 'a', which declares only"),
    ([{"name": "a", "inputs": {"x": "b"}}, {"name": "b", "inputs": {"x": "a"}}], "form a dependency cycle"),
    ([{"name": "a", "inputs": {"x": "a"}}], "reads its own output"),
    ([{"name": "a", "optionalOutputs": ["q"]}], "optionalOutputs ['q'] are not in its outputs"),
]


def test_graph_errors_fail_their_runs_while_a_good_run_goes_on(cairn_operator: Any, kube: Any, ns: str) -> None:
    apply(kube, ns, sample("job-unreliable.yaml"))
    apply(kube, ns, sample("run-unreliable-succeeds.yaml"))
    for i, (ops, _) in enumerate(GRAPH_ERRORS):
        job = job_with(ops=ops)
        job["metadata"]["name"] = f"bad-{i}"
        apply(kube, ns, job)
        apply(kube, ns, run_of(f"bad-{i}", f"bad-run-{i}"))
    for i, (_, message) in enumerate(GRAPH_ERRORS):
        run = wait_phase(kube, ns, f"bad-run-{i}", "Failed", "Succeeded", timeout=60)
        cond = {c["type"]: c for c in run["status"]["conditions"]}["Stalled"]
        assert (cond["status"], cond["reason"]) == ("True", "InvalidJob")
        assert message in run["status"]["message"]
    good = wait_phase(kube, ns, "unreliable-succeeds", "Succeeded", "Failed", timeout=90)
    assert good["status"]["phase"] == "Succeeded"


def test_a_timeout_fails_the_step(cairn_operator: Any, kube: Any, ns: str) -> None:
    job = copy.deepcopy(SLOW_JOB)
    job["spec"]["ops"][1]["timeoutSeconds"] = 2
    apply(kube, ns, job)
    apply(kube, ns, run_of("slow", "t1"))
    run = wait_phase(kube, ns, "t1", "Failed", "Succeeded", timeout=90)
    slow = run["status"]["steps"]["slow"]
    assert run["status"]["phase"] == "Failed" and slow["phase"] == "Failed"
    assert "timed out" in slow["message"]
    assert run["status"]["steps"]["end"]["phase"] == "NotExecuted"


def test_sigkill_of_the_operator_mid_run_then_restart(
    cairn_operator: Any, kube: Any, core: Any, ns: str, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    apply(kube, ns, slow_job_recording(tmp_path, sleep=3))
    apply(kube, ns, run_of("slow", "k1"))
    eventually(lambda: (tmp_path / "started").exists(), timeout=60, what="the slow step to start")
    cairn_operator.kill()

    def slow_pod_phase() -> str | None:
        pods = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=k1,cairn.dev/step=slow").items
        return str(pods[0].status.phase) if pods and pods[0].status.phase in ("Running", "Succeeded") else None

    eventually(slow_pod_phase, timeout=30, what="the slow step to go on (its pod Running) without an operator")
    cairn_operator.restart()
    run = wait_phase(kube, ns, "k1", "Succeeded", "Failed", timeout=90)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert calls.read_text().splitlines() == ["start", "slow", "end"]
    pods = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=k1").items
    assert sorted(p.metadata.name.rsplit("-", 2)[0] for p in pods) == sorted(
        {p.metadata.name.rsplit("-", 2)[0] for p in pods}
    )  # no duplicate pods
    assert len(pods) == 3
