"""The node lost mid-step: the stand-in node and every process it ran are killed, as a machine that
dies would be. Its pods are evicted once the node stops answering (step pods tolerate a lost node for
a bounded time), the step's attempt is Interrupted and retried per its retries, and `cairn dev up`
brings the node back, where the retry runs and the Run succeeds."""

from __future__ import annotations

import copy
import os
import signal
import time
from pathlib import Path
from typing import Any

from cairn_dev.standin_node import running_shims
from tests.helpers import eventually
from tests.integration.test_operator import apply, get_run, ns, run_of, slow_job_recording, wait_phase

__all__ = ["ns"]


def kill_node_and_its_pods(cluster: Any) -> None:
    state = cluster.load_state()
    node = state.procs["node"]
    shims = running_shims(Path(cluster.root) / "node")
    assert shims, "no step process runs on the node"
    os.kill(node.pid, signal.SIGKILL)
    for shim in shims:  # the pods' processes die with the machine
        os.killpg(shim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while node.alive() or any(s.alive() for s in shims):
        assert time.monotonic() < deadline, "the node or a step process still runs after SIGKILL"
        time.sleep(0.1)


def test_a_step_on_a_lost_node_is_interrupted_retried_and_runs_when_the_node_is_back(
    cairn_operator: Any, dev_cluster: Any, kube: Any, core: Any, ns: str, tmp_path: Path
) -> None:
    job = slow_job_recording(tmp_path, sleep=600)
    job = copy.deepcopy(job)
    for op in job["spec"]["ops"]:
        op["env"].append({"name": "CAIRN_TEST_ONCE", "value": "1"})  # the retry is fast
        if op["name"] == "slow":
            op["retries"] = {"limit": 1, "backoff": {"durationSeconds": 0}}
    # given up 5 s after the node stops answering (the default is 60 s: NODE_LOST_SECONDS)
    job["spec"]["podTemplate"] = {
        "tolerations": [
            {"key": k, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
            for k in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
        ]
    }
    apply(kube, ns, job)
    apply(kube, ns, run_of("slow", "lost"))
    eventually(lambda: (tmp_path / "started").exists(), timeout=60, what="the slow step to start")
    try:
        kill_node_and_its_pods(dev_cluster)

        def slow() -> dict[str, Any]:
            step: dict[str, Any] = get_run(kube, ns, "lost")["status"]["steps"]["slow"]
            return step

        # the node controller marks the node unreachable after its grace period (about 50 s) and its
        # pods not ready; 5 s later the operator ends the attempt (a single-node zone never evicts),
        # force-deletes the pod and retries (attempt 2 waits for a node to run on)
        try:
            eventually(lambda: slow().get("attempt") == 2, timeout=200, interval=1, what="the slow step's retry")
        except AssertionError:
            node = core.read_node("cairn-local")
            pods = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=lost").items
            conds = [p.status.conditions for p in core.list_namespaced_pod(ns).items]
            raise AssertionError(
                f"no retry: step {slow()}; pod conditions {conds}; node conditions "
                f"{[(c.type, c.status, c.reason) for c in node.status.conditions]}, taints {node.spec.taints}; "
                f"pods {[(p.metadata.name, p.status.phase, p.metadata.deletion_timestamp) for p in pods]}"
            ) from None
        # the operator gave up on the node itself, or the cluster evicted the pod first (when the node
        # controller taints the node NoExecute, which it does not in a single-node zone): both end it
        lost = ("stopped answering", "was deleted or evicted while it ran")
        assert any(w in slow()["message"] for w in lost), slow()["message"]

        def retrying_said() -> bool:  # kopf posts Events from a queue: a moment later
            events = core.list_namespaced_event(ns, field_selector="involvedObject.name=lost").items
            return any(e.reason == "StepRetrying" and any(w in e.message for w in lost) for e in events)

        eventually(retrying_said, timeout=30, what="the StepRetrying Event")
    finally:
        dev_cluster.up(say=lambda _: None)  # the node comes back (etcd's data and certificates kept)
    run = wait_phase(kube, ns, "lost", "Succeeded", "Failed", timeout=120)
    assert run["status"]["phase"] == "Succeeded", run["status"]["steps"]
    assert run["status"]["steps"]["slow"]["attempt"] == 2
    assert (tmp_path / "calls").read_text().splitlines() == ["start", "slow", "slow", "end"]
