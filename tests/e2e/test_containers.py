"""Real containers end to end: the README's path on a cluster with the containerd node.

`cairn dev up --node=containerd` (kubelet + containerd + runc + CNI), the images from `cairn dev image
build`, `helm install` of charts/cairn (the operator runs in-cluster from its image under the chart's
ServiceAccount), `kubectl apply -f crds/samples/` in a namespace that enforces PodSecurity
`restricted`, a FromFailure Reexecution that fixes the op, a memory limit seen from inside a container,
`kubectl logs` and `kubectl wait`; then `cairn dev down` leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn_dev import containerd_node
from cairn_dev.builds import helm, images, k8s
from cairn_dev.cluster import Cluster
from cairn_dev.versions import K8S_VERSION
from tests.e2e.conftest import containerd_cluster

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NS = "pipelines"
OPERATOR_NS = "cairn-system"


class Kube:
    """kubectl and helm against one cluster, with errors that show what they printed."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.kubectl_bin = str(k8s.find_binaries().binary("kubectl"))
        self.helm_bin = str(helm.find_helm())
        self.env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "HELM_CACHE_HOME": str(cluster.root / "helm")}

    def run(self, argv: list[str], check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(argv, capture_output=True, text=True, env=self.env, input=stdin, check=False, timeout=600)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run([self.kubectl_bin, *args], check=check, stdin=stdin)

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run([self.helm_bin, *args])

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def wait_for(self, what: str, check: Any, timeout: float = 240.0) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(1)
        pods = self.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
        raise AssertionError(f"timed out waiting for {what}; last: {last}\npods:\n{pods}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    helm.find_helm()
    with containerd_cluster(tmp_path_factory, "ctr") as c:
        yield c


@pytest.fixture(scope="module")
def kube(cluster: Cluster) -> Kube:
    return Kube(cluster)


@pytest.fixture(scope="module")
def installed(kube: Kube) -> Kube:
    """The chart installed the way the README says, in a namespace that enforces `restricted`."""
    for ns in (OPERATOR_NS, NS):
        kube.kubectl("create", "namespace", ns)
        kube.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    secret = kube.json("get", "secret", "cairn-s3", "-n", "default")
    kube.kubectl(
        "create",
        "secret",
        "generic",
        "cairn-s3",
        "-n",
        NS,
        *(f"--from-literal={k}={_b64(v)}" for k, v in secret["data"].items()),
    )
    kube.helm(
        "install",
        "cairn",
        str(ROOT / "charts" / "cairn"),
        "--namespace",
        OPERATOR_NS,
        "--wait",
        "--timeout",
        "4m",
    )
    return kube


def _b64(v: str) -> str:
    import base64

    return base64.b64decode(v).decode()


def _phase(kube: Kube, run: str) -> str:
    out = kube.kubectl("get", "crun", run, "-n", NS, "-o", "jsonpath={.status.phase}", check=False)
    return out.stdout.strip()


def test_the_node_is_a_real_kubelet_on_containerd(kube: Kube, cluster: Cluster) -> None:
    node = kube.json("get", "node", containerd_node.NODE_NAME)
    info = node["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert info["kubeletVersion"] == K8S_VERSION
    state = cluster.load_state()
    assert state is not None
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == state.node["node_ip"]
    text, healthy = cluster.status()
    assert healthy, text
    assert "cairn-node" in text and "Ready=True" in text and "kubelet" in text


def test_the_operator_runs_in_cluster_from_its_image_under_the_charts_account(installed: Kube) -> None:
    pods = installed.json("get", "pods", "-n", OPERATOR_NS, "-l", "app.kubernetes.io/name=cairn")["items"]
    assert len(pods) == 1, pods
    pod = pods[0]
    account = pod["spec"]["serviceAccountName"]
    bindings = installed.json("get", "clusterrolebindings", "-l", "app.kubernetes.io/instance=cairn")["items"]
    subjects = [(s["name"], s["namespace"]) for b in bindings for s in b.get("subjects", [])]
    assert (account, OPERATOR_NS) in subjects, (account, subjects)  # the chart's account, bound by the chart
    assert pod["spec"]["containers"][0]["image"] == images.OPERATOR_IMAGE
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] is True and status["containerID"].startswith("containerd://")


def test_the_seed_samples_run_in_containers_and_a_fromfailure_reexecution_fixes_the_op(installed: Kube) -> None:
    kube = installed
    kube.kubectl("apply", "-n", NS, "-f", str(ROOT / "crds" / "samples"))
    # `kubectl wait` on the Run's condition returns when it succeeds.
    kube.kubectl("wait", "--for=condition=Succeeded", "crun/unreliable-succeeds", "-n", NS, "--timeout=300s")
    kube.wait_for("unreliable-fails to fail", lambda: _phase(kube, "unreliable-fails") == "Failed")
    kube.wait_for("fanout-fails to fail", lambda: _phase(kube, "fanout-fails") == "Failed")  # shard_1 of 5

    pods = kube.json("get", "pods", "-n", NS)["items"]
    assert len(pods) >= 5, [p["metadata"]["name"] for p in pods]  # 3 + 2 (end never ran)
    for pod in pods:
        assert pod["spec"]["containers"][0]["image"] == images.STEP_IMAGE
        for cs in pod["status"]["containerStatuses"]:
            assert cs["containerID"].startswith("containerd://"), cs
        assert pod["spec"]["automountServiceAccountToken"] is False

    fix = """
apiVersion: cairn.dev/v1alpha1
kind: Reexecution
metadata:
  name: fix-unreliable
spec:
  parentRun: unreliable-fails
  mode: FromFailure
  overrides:
    unreliable:
      env:
        - name: CAIRN_UNRELIABLE
          value: pass
"""
    kube.kubectl("apply", "-n", NS, "-f", "-", stdin=fix)

    def child() -> str:
        out = kube.kubectl("get", "rx", "fix-unreliable", "-n", NS, "-o", "jsonpath={.status.childRun}", check=False)
        return out.stdout.strip()

    name = kube.wait_for("the Reexecution's child Run", child)
    kube.kubectl("wait", "--for=condition=Succeeded", f"crun/{name}", "-n", NS, "--timeout=300s")
    run = kube.json("get", "crun", name, "-n", NS)
    steps = run["status"]["steps"]
    child_pods = kube.json("get", "pods", "-n", NS, "-l", f"cairn.dev/run={name}")["items"]
    assert {p["metadata"]["labels"]["cairn.dev/step"] for p in child_pods} == {"unreliable", "end"}
    assert steps["start"]["phase"] == "Reused", steps["start"]  # read in place from the parent, not run
    assert (steps["unreliable"]["phase"], steps["end"]["phase"]) == ("Succeeded", "Succeeded")

    # The fan-out sample: one container per shard; from failure runs the failed shard and the collector only.
    fan = kube.json("get", "crun", "fanout-fails", "-n", NS)["status"]["steps"]
    assert [s for s, st in fan.items() if st["phase"] == "Failed"] == ["process[shard_1]"]
    fix_fan = fix.replace("fix-unreliable", "fix-fanout").replace("unreliable-fails", "fanout-fails")
    fix_fan = fix_fan.replace("unreliable:", "process:").replace("CAIRN_UNRELIABLE", "CAIRN_FANOUT_FAIL")
    kube.kubectl("apply", "-n", NS, "-f", "-", stdin=fix_fan.replace("value: pass", 'value: ""'))
    out = lambda: kube.kubectl(  # noqa: E731
        "get", "rx", "fix-fanout", "-n", NS, "-o", "jsonpath={.status.childRun}", check=False
    ).stdout.strip()
    fan_child = kube.wait_for("the fan-out Reexecution's child Run", out)
    kube.kubectl("wait", "--for=condition=Succeeded", f"crun/{fan_child}", "-n", NS, "--timeout=300s")
    fan_pods = kube.json("get", "pods", "-n", NS, "-l", f"cairn.dev/run={fan_child}")["items"]
    ran = {
        (p["metadata"].get("annotations") or {}).get("cairn.dev/step-key", p["metadata"]["labels"]["cairn.dev/step"])
        for p in fan_pods
    }
    assert ran == {"process[shard_1]", "summarize"}, ran
    reused = kube.json("get", "crun", fan_child, "-n", NS)["status"]["steps"]
    assert sum(1 for st in reused.values() if st["phase"] == "Reused") == 5  # split and 4 shards, read in place


def test_a_memory_limit_is_seen_inside_the_container_and_kubectl_logs_works(installed: Kube) -> None:
    kube = installed
    job = f"""
apiVersion: cairn.dev/v1alpha1
kind: Job
metadata:
  name: limits
spec:
  image: {images.STEP_IMAGE}
  storage:
    secretRef:
      name: cairn-s3
  ops:
    - name: limit
      outputs: [limit]
      command: ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes | tee $CAIRN_OUTPUT_LIMIT; id -u"]
      resources:
        limits:
          memory: 96Mi
---
apiVersion: cairn.dev/v1alpha1
kind: Run
metadata:
  name: limits-1
spec:
  jobRef:
    name: limits
"""
    kube.kubectl("apply", "-n", NS, "-f", "-", stdin=job)
    kube.kubectl("wait", "--for=condition=Succeeded", "crun/limits-1", "-n", NS, "--timeout=300s")
    pod = kube.json("get", "pods", "-n", NS, "-l", "cairn.dev/run=limits-1")["items"][0]
    logs = kube.kubectl("logs", "-n", NS, pod["metadata"]["name"]).stdout
    assert str(96 * 1024 * 1024) in logs.split(), logs
    assert "65532" in logs.split(), logs  # not root


def test_down_leaves_no_process_mount_namespace_link_or_cgroup(cluster: Cluster) -> None:
    state = cluster.load_state()
    assert state is not None
    names = containerd_node.names_for(cluster.root)
    cluster.down()
    assert not containerd_node.netns_exists(names)
    assert not containerd_node.link_exists(names.host_if)
    assert not any(d.exists() for d in containerd_node.cgroup_dirs(names))
    assert not containerd_node.pids_in_ns(int(state.node["netns_inode"]), "net")
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(cluster.root) not in mounts
    assert not cluster.root.exists() or not any(cluster.root.iterdir())
