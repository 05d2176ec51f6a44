"""`cairn dev` as a user runs it: up (twice), status, env, kubectl against it, a pod, down, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn_dev.builds import k8s
from cairn_dev.procs import ProcRecord

pytestmark = pytest.mark.e2e

CAIRN = [sys.executable, "-m", "cairn.cli"]


def cairn(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CAIRN, *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"cairn {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    exe = str(k8s.find_binaries().binary("kubectl"))
    out = subprocess.run(
        [exe, "--kubeconfig", str(kubeconfig), *args], input=stdin, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def recorded_processes(d: Path) -> list[ProcRecord]:
    state = json.loads((d / "state.json").read_text())
    recs = [ProcRecord.from_json(r) for r in state["procs"].values()]
    for shim in (d / "node" / "pods").glob("*/shim.json"):
        data = json.loads(shim.read_text())
        recs.append(ProcRecord("shim", data["pid"], data["start_time"], [], ""))
    return recs


POD = """
apiVersion: v1
kind: Pod
metadata: {name: hello, namespace: default}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: python:3.11-slim
    command: ["python", "-c", "print('to the log'); open('/dev/termination-log', 'w').write('hello from cairn-local')"]
---
apiVersion: v1
kind: Pod
metadata: {name: sleeper, namespace: default}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox, command: ["sleep", "600"]}
"""


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for a cluster the test starts with the CLI; stopped afterwards even if the test failed."""
    d = tmp_path / "cluster"
    yield d
    if (d / "state.json").exists():
        subprocess.run([*CAIRN, "dev", "down", "--dir", str(d)], capture_output=True, timeout=300)


def test_up_use_and_down_leave_nothing_running(cluster_dir: Path) -> None:
    d = cluster_dir
    first = cairn("dev", "up", "--dir", str(d))
    assert "is up in" in first.stdout and "no isolation" in first.stdout
    state1 = json.loads((d / "state.json").read_text())
    again = cairn("dev", "up", "--dir", str(d))  # running `up` twice is safe
    assert "already up" in again.stderr
    assert json.loads((d / "state.json").read_text())["procs"] == state1["procs"]

    status = cairn("dev", "status", "--dir", str(d))
    assert "kube-apiserver" in status.stdout and "DOWN" not in status.stdout
    assert "no isolation" in status.stdout
    env = cairn("dev", "env", "--dir", str(d)).stdout
    for var in ("KUBECONFIG", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "CAIRN_S3_BUCKET"):
        assert f"export {var}=" in env
    assert (d / "env").read_text() == env

    kc = d / "kubeconfig"
    assert kubectl(kc, "get", "--raw", "/readyz") == "ok"
    kubectl(kc, "apply", "-f", "-", stdin=POD)
    kubectl(kc, "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/hello", "--timeout=60s")
    assert (
        kubectl(kc, "get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].state.terminated.message}")
        == "hello from cairn-local"
    )
    assert kubectl(kc, "logs", "hello") == "to the log\n"
    kubectl(kc, "wait", "--for=jsonpath={.status.phase}=Running", "pod/sleeper", "--timeout=60s")

    procs = recorded_processes(d)
    components = [p for p in procs if p.name != "shim"]
    assert len(components) == 6 and all(p.alive() for p in components)
    assert sum(p.alive() for p in procs if p.name == "shim") == 1  # the sleeper; hello has ended
    down = cairn("dev", "down", "--dir", str(d))
    assert "stopped" in down.stderr
    assert [p.name for p in procs if p.alive()] == []
    assert not d.exists()


def test_up_refuses_a_taken_port_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = cairn("dev", "up", "--dir", str(tmp_path / "c"), "--apiserver-port", str(port), check=False)
    assert res.returncode == 2
    assert f"port {port} (--apiserver-port) is already in use" in res.stderr
    assert not (tmp_path / "c" / "state.json").exists()


def test_a_crashed_component_is_restarted_by_up_and_down_cleans(cluster_dir: Path) -> None:
    d = cluster_dir
    cairn("dev", "up", "--dir", str(d), "--no-node")
    procs = recorded_processes(d)
    etcd = next(p for p in procs if p.name == "etcd")
    os.kill(etcd.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while etcd.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    status = cairn("dev", "status", "--dir", str(d), check=False)
    assert status.returncode == 1 and "etcd                DOWN" in status.stdout
    assert f"run `cairn dev up --dir {d}` to start them again" in status.stdout
    res = cairn("dev", "up", "--dir", str(d))
    restarted = next(p for p in recorded_processes(d) if p.name == "etcd")
    assert f"restarted etcd (pid {restarted.pid})" in res.stderr and restarted.alive()
    assert cairn("dev", "status", "--dir", str(d)).returncode == 0
    procs = recorded_processes(d)
    cairn("dev", "down", "--dir", str(d))
    assert [p.name for p in procs if p.alive()] == []
    assert not d.exists()


def test_a_component_that_crashes_at_start_shows_its_log(tmp_path: Path, cluster_dir: Path) -> None:
    """A broken kube-apiserver binary: `up` reports its log's tail and stops what it had started."""
    cache = tmp_path / "cache"
    real = k8s.find_binaries()
    fake = k8s.layout(cache=cache)
    shutil.copytree(real.bin, fake.bin, symlinks=True)
    apiserver = fake.binary("kube-apiserver")
    apiserver.unlink()
    apiserver.write_text("#!/bin/sh\necho 'E1129 simulated: invalid --etcd-servers' >&2\nexit 1\n")
    apiserver.chmod(0o755)
    env = {**os.environ, "CAIRN_CACHE_DIR": str(cache)}
    d = tmp_path / "cluster"
    res = subprocess.run([*CAIRN, "dev", "up", "--dir", str(d)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2
    assert "kube-apiserver exited before it was ready" in res.stderr
    assert "simulated: invalid --etcd-servers" in res.stderr
    assert not (d / "state.json").exists()
    out = subprocess.run(["pgrep", "-f", str(d)], capture_output=True, text=True)
    assert out.stdout.strip() == "", f"processes of the failed up still run: {out.stdout}"
