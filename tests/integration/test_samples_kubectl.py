"""`kubectl apply -f crds/samples/` as a user types it, on the cluster `cairn dev up` makes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from cairn_dev.builds import k8s
from tests.integration.test_operator import get_run, wait_phase

ROOT = Path(__file__).resolve().parents[2]


def kubectl(dev_cluster: Any, *args: str) -> str:
    exe = str(k8s.find_binaries().binary("kubectl"))
    out = subprocess.run(
        [exe, "--kubeconfig", str(dev_cluster.kubeconfig), *args], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_samples_run_as_they_are_with_kubectl(cairn_operator: Any, kube: Any, dev_cluster: Any) -> None:
    try:
        kubectl(dev_cluster, "apply", "-f", str(ROOT / "crds" / "samples"))
        ok = wait_phase(kube, "default", "unreliable-succeeds", "Succeeded", "Failed", timeout=120)
        bad = wait_phase(kube, "default", "unreliable-fails", "Succeeded", "Failed", timeout=120)
        assert (ok["status"]["phase"], bad["status"]["phase"]) == ("Succeeded", "Failed")
        table = kubectl(dev_cluster, "get", "crun")
        header = table.splitlines()[0].split()
        assert header == ["NAME", "PHASE", "STEPS", "FAILED", "PARENT", "AGE"]
        rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
        assert rows["unreliable-succeeds"][1:4] == ["Succeeded", "3/3", "0"]
        assert rows["unreliable-fails"][1:4] == ["Failed", "3/3", "1"]
        assert "unreliable" in kubectl(dev_cluster, "get", "cairn")  # the category lists Jobs and Runs
        assert get_run(kube, "default", "unreliable-fails")["status"]["steps"]["unreliable"]["phase"] == "Failed"
        fan = wait_phase(kube, "default", "fanout-fails", "Succeeded", "Failed", timeout=120)["status"]
        assert fan["phase"] == "Failed"
        assert fan["steps"]["split"]["keys"] == {"result": [f"shard_{i}" for i in range(5)]}
        failed = {s: st.get("message") for s, st in fan["steps"].items() if st["phase"] == "Failed"}
        assert list(failed) == ["process[shard_1]"], failed
    finally:
        kubectl(dev_cluster, "delete", "-f", str(ROOT / "crds" / "samples"), "--ignore-not-found")
