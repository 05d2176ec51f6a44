"""Faults of `cairn dev up --node=containerd`: one clear message, and nothing left running or mounted.

A kubelet that cannot start, a network namespace that is already taken, and an `up` killed half-way
(then cleaned by `down`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cairn_dev import containerd_node

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="the containerd node needs root"),
]


def cairn(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn.cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def processes_of(root: Path) -> list[str]:
    """Command lines that mention the cluster directory (our processes all do)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(root) in cmd:
                found.append(f"{entry.name}: {cmd[:200]}")
    return found


def assert_nothing_left(root: Path) -> None:
    names = containerd_node.names_for(root)
    assert not processes_of(root), processes_of(root)
    assert not containerd_node.netns_exists(names)
    assert not containerd_node.link_exists(names.host_if)
    assert not any(d.exists() for d in containerd_node.cgroup_dirs(names))
    assert str(root) not in Path("/proc/self/mountinfo").read_text()


def test_a_kubelet_that_cannot_start_is_reported_with_its_log_and_everything_is_stopped(tmp_path: Path) -> None:
    root = tmp_path / "dev"
    try:
        res = cairn("dev", "up", "--node=containerd", "--dir", str(root), "--kubelet-arg=--no-such-flag")
        assert res.returncode == 2, res.stdout + res.stderr
        assert "kubelet exited before it was ready" in res.stderr, res.stderr
        assert "unknown flag: --no-such-flag" in res.stderr, res.stderr  # the kubelet's own words, from its log
        assert_nothing_left(root)
    finally:
        cairn("dev", "down", "--dir", str(root))


def test_a_taken_network_namespace_is_refused_and_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "dev"
    names = containerd_node.names_for(root)
    subprocess.run(["ip", "netns", "add", names.netns], check=True)
    try:
        res = cairn("dev", "up", "--node=containerd", "--dir", str(root))
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"the network namespace {names.netns} already exists" in res.stderr, res.stderr
        assert f"ip netns del {names.netns}" in res.stderr  # the fix is named
        assert containerd_node.netns_exists(names)  # not ours: untouched
        assert not processes_of(root)
        assert not any(d.exists() for d in containerd_node.cgroup_dirs(names))
    finally:
        cairn("dev", "down", "--dir", str(root))
        subprocess.run(["ip", "netns", "del", names.netns], check=False)


def test_down_cleans_up_after_an_up_that_was_killed_half_way(tmp_path: Path) -> None:
    root = tmp_path / "dev"
    up = subprocess.Popen(
        [sys.executable, "-m", "cairn.cli", "dev", "up", "--node=containerd", "--dir", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state_file = root / "state.json"
    deadline = time.monotonic() + 180
    try:
        # Kill it once containerd runs (the namespace, cgroups, mounts and relay exist by then).
        while time.monotonic() < deadline:
            try:
                if "containerd" in json.loads(state_file.read_text()).get("procs", {}):
                    break
            except (OSError, ValueError):
                pass
            assert up.poll() is None, "up ended before containerd started"
            time.sleep(0.05)
        else:
            pytest.fail("containerd never started")
        up.send_signal(signal.SIGKILL)
        up.wait()
        names = containerd_node.names_for(root)
        assert containerd_node.netns_exists(names) and processes_of(root)  # the crash left things behind
        status = cairn("dev", "status", "--dir", str(root))
        assert status.returncode == 1 and "starting" in status.stdout, status.stdout
        res = cairn("dev", "down", "--dir", str(root))
        assert res.returncode == 0, res.stderr
        assert "network namespace" in res.stderr and "containerd" in res.stderr, res.stderr
        assert_nothing_left(root)
    finally:
        if up.poll() is None:
            up.kill()
        cairn("dev", "down", "--dir", str(root))  # whatever failed above, leave nothing running
