"""A step whose image the node does not have, on the real containerd node: the kubelet leaves its pod
Pending (ErrImagePull / ImagePullBackOff), and the Run says so: the step's message names the image and
the fix, the Run's message and Succeeded condition name the step, one Warning Event is posted (not one
per cycle). The step keeps waiting: once the image is on the node the pod starts, the message clears and
the Run succeeds.

One cluster for the module (a containerd node costs ~30 s to start); the operator runs on the host
against it, as in the integration tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cairn_dev import containerd_node, procs
from cairn_dev.builds import images
from cairn_dev.cluster import Cluster
from tests.e2e.conftest import containerd_cluster
from tests.e2e.test_containers import Kube
from tests.helpers import after_cycles, cycles_at

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NS = "default"  # where `cairn dev up` puts the S3 Secret cairn-s3
MISSING = "localhost/does-not-exist:1"
RUN = "imgerr-1"
STEP = "fetch"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with containerd_cluster(tmp_path_factory, "ctr-img") as c:
        yield c


@pytest.fixture(scope="module")
def kube(cluster: Cluster) -> Kube:
    return Kube(cluster)


@dataclass(frozen=True)
class HostOperator:
    """The operator process on the host: its log, and the reconcile cycles its metrics count."""

    log: Path
    metrics_url: str

    def cycles(self, kind: str, namespace: str, name: str) -> int:
        return cycles_at(self.metrics_url, kind, namespace, name)


@pytest.fixture(scope="module")
def operator(cluster: Cluster, kube: Kube) -> Iterator[HostOperator]:
    """The CRDs applied and the operator running on the host against the cluster, serving its metrics."""
    for crd in sorted((ROOT / "crds").glob("*.yaml")):
        kube.kubectl("apply", "-f", str(crd))
    kube.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    log = cluster.root / "logs" / "cairn-operator-host.log"
    liveness = f"http://127.0.0.1:{procs.free_port()}/healthz"
    metrics = f"127.0.0.1:{procs.free_port()}"
    rec = procs.start(
        "cairn-operator",
        [sys.executable, "-m", "cairn_operator", "--liveness", liveness, "--metrics", metrics],
        log,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        cwd=ROOT,
    )
    try:
        yield HostOperator(log, f"http://{metrics}/metrics")
    finally:
        procs.stop(rec, grace=10)


def _run(kube: Kube) -> dict[str, Any]:
    out = kube.kubectl("get", "crun", RUN, "-n", NS, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _warnings(kube: Kube) -> list[dict[str, Any]]:
    selector = f"involvedObject.name={RUN},reason=ImagePullFailed"
    events = kube.json("get", "events", "-n", NS, "--field-selector", selector)["items"]
    return [e for e in events if e["involvedObject"].get("kind") == "Run"]


def _log_tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.exists() else "(no log)"


def test_a_missing_image_is_named_with_its_fix_once_and_the_step_waits_for_it(
    cluster: Cluster, kube: Kube, operator: HostOperator
) -> None:
    job = f"""
apiVersion: cairn.dev/v1alpha1
kind: Job
metadata:
  name: imgerr
spec:
  image: {MISSING}
  storage:
    secretRef:
      name: cairn-s3
  ops:
    - name: {STEP}
      command: ["sh", "-c", "echo fetched > $CAIRN_OUTPUT_RESULT"]
---
apiVersion: cairn.dev/v1alpha1
kind: Run
metadata:
  name: {RUN}
spec:
  jobRef:
    name: imgerr
"""
    kube.kubectl("apply", "-n", NS, "-f", "-", stdin=job)

    def stuck() -> dict[str, Any] | None:
        run = _run(kube)
        step = ((run.get("status") or {}).get("steps") or {}).get(STEP) or {}
        return run if MISSING in (step.get("message") or "") else None

    t0 = time.monotonic()
    try:
        run = kube.wait_for("the step's message to name the missing image", stuck, timeout=90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\noperator log:\n{_log_tail(operator.log)}") from None
    seen_after = time.monotonic() - t0
    status = run["status"]
    message = status["steps"][STEP]["message"]
    assert message.startswith(f"ImagePullFailed: image {MISSING} is not on node {containerd_node.NODE_NAME}"), message
    assert f"kind load docker-image {MISSING}" in message and "cairn dev up --node=containerd" in message
    assert "fix the op's image" in message
    assert status["phase"] == "Running" and status["steps"][STEP]["phase"] == "Running", status
    assert status["message"] == f"step {STEP} cannot start: {message}"
    conditions = {c["type"]: c for c in status["conditions"]}
    # Still in progress (kstatus: InProgress): it goes on once the image is there.
    assert (conditions["Succeeded"]["status"], conditions["Succeeded"]["reason"]) == ("Unknown", "ImagePullFailed")
    assert (conditions["Reconciling"]["status"], conditions["Stalled"]["status"]) == ("True", "False"), conditions

    pod = kube.json("get", "pods", "-n", NS, "-l", f"cairn.dev/run={RUN}")["items"][0]
    assert pod["status"]["phase"] == "Pending"
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff"), waiting

    # Cycles go on (every second, and on each pod change: the kubelet retries the pull): one Event.
    kube.wait_for("the Warning Event", lambda: _warnings(kube), timeout=30)

    def pod_version() -> str:
        return str(kube.json("get", "pod", pod["metadata"]["name"], "-n", NS)["metadata"]["resourceVersion"])

    # The kubelet tries the pull again: two more writes of the pod's status (back-off, pull failed), each
    # waking the Run; then three more cycles of it.
    versions = {pod_version()}

    def kubelet_retried() -> bool:
        versions.add(pod_version())
        return len(versions) >= 3

    kube.wait_for("the kubelet to write the pod's status twice more", kubelet_retried, timeout=120)
    after_cycles(operator, "Run", NS, RUN, n=3)
    events = _warnings(kube)
    assert len(events) == 1 and events[0].get("count", 1) == 1, events
    assert events[0]["type"] == "Warning"
    assert events[0]["message"] == f"step {STEP} (pod {pod['metadata']['name']}): {message}"
    assert _run(kube)["status"]["steps"][STEP]["message"] == message  # the back-off did not replace it

    # The image arrives on the node: the kubelet's next try starts the pod, the message clears.
    sock = containerd_node.names_for(cluster.root).sockets / "containerd.sock"
    subprocess.run(
        containerd_node.ctr(sock, "images", "tag", images.STEP_IMAGE, MISSING), check=True, capture_output=True
    )

    def succeeded_run() -> dict[str, Any] | None:
        run = _run(kube)
        return run if (run.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

    done = kube.wait_for("the Run to finish once the image is on the node", succeeded_run, timeout=240)
    assert done["status"]["phase"] == "Succeeded", json.dumps(done["status"]["steps"])
    assert "message" not in done["status"]["steps"][STEP], done["status"]["steps"][STEP]
    assert len(_warnings(kube)) == 1
    print(f"step message seen {seen_after:.1f}s after apply: {message}")
