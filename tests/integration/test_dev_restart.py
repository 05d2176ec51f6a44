"""`cairn dev up` on a cluster whose components died starts them again, keeping etcd's data, S3's data
and the certificates, and `status` lists every component. A cluster of its own (the tests kill parts of it)."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn_dev import procs
from cairn_dev.cluster import Cluster
from cairn_dev.errors import DevError
from cairn_dev.state import State

LOCAL = ("etcd", "seaweedfs", "kube-apiserver", "controller-manager", "scheduler", "node")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("restart") / "dev")
    try:
        c.up(say=lambda _: None)
        yield c
    finally:
        c.down(say=lambda _: None)


def current(cluster: Cluster) -> State:
    state = cluster.load_state()
    assert state is not None
    return state


def kill(state: State, *names: str) -> None:
    """SIGKILL, as a crash or the OOM killer would: no cleanup at all (those already dead are left)."""
    for name in names:
        if state.procs[name].alive():
            os.kill(state.procs[name].pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while any(state.procs[n].alive() for n in names):
        assert time.monotonic() < deadline, f"{names} still run after SIGKILL"
        time.sleep(0.1)


def make_configmap(cluster: Cluster) -> str:
    from kubernetes import client

    name = f"kept-{uuid.uuid4().hex[:8]}"
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"k": name})
    client.CoreV1Api(cluster.api()).create_namespaced_config_map("default", body)
    return name


def read_configmap(cluster: Cluster, name: str) -> dict[str, str]:
    from kubernetes import client

    data: dict[str, str] = client.CoreV1Api(cluster.api()).read_namespaced_config_map(name, "default").data
    return data


def rows(text: str) -> dict[str, list[str]]:
    """Component name -> its status row, split on whitespace."""
    out = {}
    for line in text.splitlines()[1:]:
        words = line.split()
        if words and words[0] in LOCAL and words[1] in ("up", "DOWN"):
            out[words[0]] = words
    return out


def restart(cluster: Cluster, killed: tuple[str, ...]) -> State:
    """Kill `killed`, check status reports them, `up` again; check exactly they were restarted."""
    before = current(cluster)
    kill(before, *killed)
    text, healthy = cluster.status()
    assert not healthy
    listed = rows(text)
    assert list(listed) == list(LOCAL), text
    for name in LOCAL:
        assert listed[name][1:4] == ["DOWN" if name in killed else "up", "pid", str(before.procs[name].pid)], text
    assert f"down: {', '.join(n for n in LOCAL if n in killed)}; run `cairn dev up --dir {cluster.root}`" in text

    said: list[str] = []
    after = cluster.up(say=said.append)
    assert current(cluster).procs == after.procs
    restarted = [line for line in said if " restarted " in line]
    assert restarted == [f"cairn dev: restarted {n} (pid {after.procs[n].pid})" for n in LOCAL if n in killed]
    for name in LOCAL:
        rec = after.procs[name]
        assert rec.alive(), f"{name} is not running after up"
        if name in killed:
            assert rec.pid != before.procs[name].pid
        else:
            assert rec == before.procs[name], f"{name} was restarted though it ran"
    assert after.ports == before.ports and after.s3 == before.s3

    text, healthy = cluster.status()
    assert healthy, text
    assert {n: r[1] for n, r in rows(text).items()} == dict.fromkeys(LOCAL, "up")
    return after


def test_killed_apiserver_and_scheduler_come_back_with_the_data(cluster: Cluster) -> None:
    name = make_configmap(cluster)
    ca = cluster.pki.ca_cert.read_bytes()
    restart(cluster, ("kube-apiserver", "scheduler"))
    assert read_configmap(cluster, name) == {"k": name}  # etcd's data kept
    assert cluster.pki.ca_cert.read_bytes() == ca  # the same certificates: the old kubeconfig still works

    said: list[str] = []
    again = cluster.up(say=said.append)
    assert said == [f"cairn dev: already up in {cluster.root} (all 6 components run; nothing changed)"]
    assert again.procs == current(cluster).procs


def test_killed_etcd_and_s3_come_back_with_their_data(cluster: Cluster) -> None:
    state = current(cluster)
    s3 = cluster.s3_client(state)
    key = f"kept/{uuid.uuid4().hex}"
    s3.put_object(Bucket=state.s3["bucket"], Key=key, Body=b"still here")
    name = make_configmap(cluster)
    after = restart(cluster, ("etcd", "seaweedfs"))
    assert read_configmap(cluster, name) == {"k": name}
    body = cluster.s3_client(after).get_object(Bucket=after.s3["bucket"], Key=key)["Body"].read()
    assert body == b"still here"


def test_a_taken_port_is_refused_then_the_node_and_controller_manager_come_back(cluster: Cluster) -> None:
    state = current(cluster)
    port = state.ports["controller_manager"]
    kill(state, "controller-manager")
    deadline = time.monotonic() + 10  # its sockets may outlive it by a moment
    while procs.port_in_use(port, reuse_addr=True):
        assert time.monotonic() < deadline, f"port {port} stays taken after controller-manager died"
        time.sleep(0.2)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(DevError, match=rf"cannot restart controller-manager: its port {port} on 127.0.0.1"):
            cluster.up(say=lambda _: None)
    assert current(cluster).procs["controller-manager"] == state.procs["controller-manager"]  # nothing started
    Path(state.procs["node"].log).write_text("")  # the restarted agent's log only, for the check below
    after = restart(cluster, ("controller-manager", "node"))
    assert "starting it again" in Path(after.procs["node"].log).read_text()
