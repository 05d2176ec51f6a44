"""`cairn dev up` on a cluster that exists starts what is down: the pure `restart_plan` decision, and `up`
and `status` around it with stand-in processes (no Kubernetes: readiness checks are replaced)."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn_dev import procs
from cairn_dev.cluster import Cluster, UpOptions
from cairn_dev.errors import DevError
from cairn_dev.procs import ProcRecord
from cairn_dev.state import COMPONENT_PORTS, State, components, current_argv, restart_plan

#: In start order, spelled out (not taken from the module under test).
CONTROL = ("etcd", "seaweedfs", "kube-apiserver", "controller-manager", "scheduler")
LOCAL = (*CONTROL, "node")
CONTAINERD = (*CONTROL, "portbridge", "containerd", "kubelet")
ALL_PORTS = sorted({p for ports in COMPONENT_PORTS.values() for p in ports})


def make_state(kind: str | None, names: tuple[str, ...], ports: tuple[str, ...] = tuple(ALL_PORTS)) -> State:
    node = {"kind": kind, "name": "n"} if kind else {}
    return State(
        k8s_version="v1.34.4",
        phase="up",
        node=node,
        ports={p: 40000 + i for i, p in enumerate(ports)},
        procs={n: ProcRecord(n, 1000 + i, 1, [n], f"/logs/{n}.log") for i, n in enumerate(names)},
    )


@pytest.mark.parametrize(
    ("kind", "names", "down", "netns", "restart", "blocked"),
    [
        pytest.param("local", LOCAL, (), True, (), (), id="all-up"),
        pytest.param(
            "local",
            LOCAL,
            ("scheduler", "kube-apiserver"),
            True,
            ("kube-apiserver", "scheduler"),
            (),
            id="apiserver-and-scheduler",
        ),
        pytest.param("local", LOCAL, LOCAL[::-1], True, LOCAL, (), id="everything-after-a-reboot-in-start-order"),
        pytest.param("local", LOCAL, ("node",), True, ("node",), (), id="stand-in-node"),
        pytest.param(
            "local", LOCAL, ("seaweedfs", "etcd"), True, ("etcd", "seaweedfs"), (), id="etcd-and-s3-data-kept"
        ),
        pytest.param(None, CONTROL, ("etcd",), True, ("etcd",), (), id="no-node"),
        pytest.param("containerd", CONTAINERD, ("kubelet",), True, ("kubelet",), (), id="kubelet-alone"),
        pytest.param("containerd", CONTAINERD, ("portbridge",), True, ("portbridge",), (), id="relay"),
        pytest.param(
            "containerd",
            CONTAINERD,
            ("containerd", "kube-apiserver"),
            True,
            ("kube-apiserver",),
            ("containerd",),
            id="containerd-cannot",
        ),
        pytest.param(
            "containerd",
            CONTAINERD,
            ("containerd", "kubelet"),
            True,
            (),
            ("containerd", "kubelet"),
            id="kubelet-needs-containerd",
        ),
        pytest.param(
            "containerd", CONTAINERD, ("kubelet", "portbridge"), False, (), ("portbridge", "kubelet"), id="netns-gone"
        ),
        pytest.param(
            "containerd", CONTAINERD, ("scheduler",), False, ("scheduler",), (), id="netns-irrelevant-to-control-plane"
        ),
    ],
)
def test_restart_plan(
    kind: str | None,
    names: tuple[str, ...],
    down: tuple[str, ...],
    netns: bool,
    restart: tuple[str, ...],
    blocked: tuple[str, ...],
) -> None:
    state = make_state(kind, names)
    plan = restart_plan(state, {n: n not in down for n in names}, netns_present=netns)
    assert plan.restart == restart
    assert tuple(name for name, _ in plan.blocked) == blocked
    assert sorted(plan.down) == sorted(down)


def test_restart_plan_refuses_a_component_whose_ports_are_not_recorded() -> None:
    state = make_state("local", LOCAL, ports=tuple(p for p in ALL_PORTS if p != "etcd_peer"))
    plan = restart_plan(state, {n: n != "etcd" for n in LOCAL})
    assert plan.restart == ()
    assert plan.blocked == (("etcd", "state.json records no etcd_peer port for it"),)


def test_restart_plan_of_a_cluster_that_never_finished_starting() -> None:
    state = make_state("local", ("etcd", "seaweedfs"))
    plan = restart_plan(state, {"etcd": True, "seaweedfs": True})
    assert plan.restart == ()
    assert [n for n, _ in plan.blocked] == ["kube-apiserver", "controller-manager", "scheduler", "node"]
    assert all(why == "`up` did not finish" for _, why in plan.blocked)


def test_missing_alive_entry_counts_as_down() -> None:
    plan = restart_plan(make_state("local", LOCAL), {n: True for n in LOCAL if n != "node"})
    assert plan.restart == ("node",)


@pytest.mark.parametrize(
    ("kind", "names", "expected"),
    [
        ("local", LOCAL, list(LOCAL)),
        ("containerd", CONTAINERD, list(CONTAINERD)),
        (None, CONTROL, list(CONTROL)),
        ("local", ("etcd",), list(LOCAL)),  # the expected ones are listed even when never started
    ],
)
def test_components_in_start_order(kind: str | None, names: tuple[str, ...], expected: list[str]) -> None:
    assert components(make_state(kind, names)) == expected


# ----- up and status with stand-in processes ------------------------------------------------------------
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def started() -> Iterator[list[ProcRecord]]:
    """Every stand-in process a test starts (directly or through `up`), stopped at the end."""
    recs: list[ProcRecord] = []
    yield recs
    for rec in recs:
        procs.stop(rec, grace=1)


def write_cluster(
    root: Path, started: list[ProcRecord], kind: str | None, names: tuple[str, ...], down: tuple[str, ...]
) -> State:
    """A state.json whose components run as sleepers, except those in `down` (a dead pid, a sleeper argv)."""
    root.mkdir(parents=True)
    taken: set[int] = set()
    state = make_state(kind, names)
    state.ports = {p: procs.free_port(taken) for p in ALL_PORTS}
    for name in names:
        log = root / "logs" / f"{name}.log"
        if name in down:
            state.procs[name] = ProcRecord(name, 999999, 1, SLEEPER, str(log), cwd=str(root))
        else:
            rec = procs.start(name, SLEEPER, log)
            started.append(rec)
            state.procs[name] = rec
    (root / "state.json").write_text(json.dumps(state.to_json()))
    return state


def test_up_restarts_what_is_down_in_start_order_and_keeps_the_rest(
    tmp_path: Path, started: list[ProcRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "c"
    before = write_cluster(root, started, None, CONTROL, down=("scheduler", "etcd"))
    waited: list[str] = []
    monkeypatch.setattr(Cluster, "_wait_ready", lambda self, name, state, rec, timeout: waited.append(name))
    said: list[str] = []
    cluster = Cluster(root)
    state = cluster.up(say=said.append)
    started.extend(state.procs.values())
    assert waited == ["etcd", "scheduler"]
    for name in ("etcd", "scheduler"):
        rec = state.procs[name]
        assert rec.alive() and rec.pid != 999999
        assert f"cairn dev: restarted {name} (pid {rec.pid})" in said
        assert rec.argv == SLEEPER and rec.cwd == str(root)
        assert "was not running; starting it again" in Path(rec.log).read_text()
    for name in ("seaweedfs", "kube-apiserver", "controller-manager"):
        assert state.procs[name] == before.procs[name]  # untouched
    saved = cluster.load_state()
    assert saved is not None and saved.procs == state.procs and saved.ports == before.ports

    said.clear()
    again = cluster.up(say=said.append)
    assert again.procs == state.procs
    assert said == [f"cairn dev: already up in {root} (all 5 components run; nothing changed)"]


def test_up_refuses_when_a_recorded_port_is_taken_and_starts_nothing(
    tmp_path: Path, started: list[ProcRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "c"
    state = write_cluster(root, started, "local", LOCAL, down=("kube-apiserver", "scheduler"))
    monkeypatch.setattr(Cluster, "_wait_ready", lambda *a: None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", state.ports["scheduler"]))
        s.listen()
        port = state.ports["scheduler"]
        with pytest.raises(DevError) as err:
            Cluster(root).up(say=lambda _: None)
    msg = str(err.value)
    assert f"cannot restart scheduler: its port {port} on 127.0.0.1 (kube-scheduler --secure-port)" in msg
    assert f"ss -ltnp 'sport = :{port}'" in msg and "nothing was started" in msg
    saved = Cluster(root).load_state()
    assert saved is not None and saved.procs["kube-apiserver"].pid == 999999  # the apiserver was not started


def test_up_refuses_a_dead_containerd_and_says_how_to_recover(tmp_path: Path, started: list[ProcRecord]) -> None:
    root = tmp_path / "c"
    write_cluster(root, started, "containerd", CONTAINERD, down=("containerd", "scheduler"))
    with pytest.raises(DevError) as err:
        Cluster(root).up(say=lambda _: None)
    msg = str(err.value)
    assert "containerd: its mount namespace" in msg and "nothing was started" in msg
    assert f"cairn dev down --dir {root} && cairn dev up --dir {root} --node=containerd" in msg
    saved = Cluster(root).load_state()
    assert saved is not None and saved.procs["scheduler"].pid == 999999


@pytest.mark.parametrize(
    ("opts", "match"),
    [
        (UpOptions(apiserver_port=1), r"uses port \d+ where --apiserver-port asks for 1"),
        (UpOptions(s3_port=1), r"uses port \d+ where --s3-port asks for 1"),
        (UpOptions(node_kind="containerd"), "has node kind local, not containerd"),
    ],
)
def test_up_refuses_options_that_contradict_the_cluster(
    tmp_path: Path, started: list[ProcRecord], opts: UpOptions, match: str
) -> None:
    root = tmp_path / "c"
    write_cluster(root, started, "local", LOCAL, down=())
    with pytest.raises(DevError, match=match):
        Cluster(root).up(opts, say=lambda _: None)


def test_status_lists_every_component_with_state_pid_and_ports(tmp_path: Path, started: list[ProcRecord]) -> None:
    root = tmp_path / "c"
    state = write_cluster(root, started, "local", LOCAL, down=("kube-apiserver",))
    text, healthy = Cluster(root).status()
    assert not healthy
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:7]}
    assert list(rows) == list(LOCAL)
    for name in LOCAL:
        rec = state.procs[name]
        assert rows[name][1:4] == ["DOWN" if name == "kube-apiserver" else "up", "pid", str(rec.pid)]
    assert rows["etcd"][4] == f"127.0.0.1:{state.ports['etcd']}(etcd),{state.ports['etcd_peer']}(etcd_peer)"
    assert rows["seaweedfs"][4].startswith(f"127.0.0.1:{state.ports['s3']}(s3),{state.ports['s3_grpc']}(s3_grpc),")
    assert rows["kube-apiserver"][4] == f"127.0.0.1:{state.ports['apiserver']}"
    assert f"down: kube-apiserver; run `cairn dev up --dir {root}` to start them again" in text


def test_status_of_a_containerd_node_lists_its_components_and_how_to_recover(
    tmp_path: Path, started: list[ProcRecord]
) -> None:
    root = tmp_path / "c"
    state = write_cluster(root, started, "containerd", CONTAINERD, down=("containerd",))
    state.node.update(netns="cairn-x", node_ip="10.1.2.3", host_ip="10.1.2.2")
    (root / "state.json").write_text(json.dumps(state.to_json()))
    text, healthy = Cluster(root).status()
    assert not healthy
    listed = [line.split()[0] for line in text.splitlines()[1:9]]
    assert listed == list(CONTAINERD)
    assert f"kubelet             up    pid {state.procs['kubelet'].pid:<9} 10.1.2.3:{state.ports['kubelet']}" in text
    assert "containerd          DOWN" in text
    assert f"recover with `cairn dev down --dir {root} && cairn dev up --dir {root} --node=containerd`" in text


def test_port_in_use_with_reuse_addr_ignores_time_wait() -> None:
    """A server that died leaves its connections in TIME_WAIT: its port is free for a server to bind again."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's servers (all of the cluster's) do
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server side closes first: its end goes to TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    assert procs.port_in_use(port)  # a plain bind is refused
    assert not procs.port_in_use(port, reuse_addr=True)
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()
        assert procs.port_in_use(port, reuse_addr=True)  # a listener does count


@pytest.mark.parametrize(
    ("recorded", "runs"),
    [
        (
            ["/v/python", "-m", "cairn.dev.node", "--root", "x"],
            ["/v/python", "-m", "cairn_dev.standin_node", "--root", "x"],
        ),
        (["/v/python", "-m", "cairn.dev.portbridge", "1"], ["/v/python", "-m", "cairn_dev.portbridge", "1"]),
        (["/v/python", "-m", "cairn_dev.standin_node"], ["/v/python", "-m", "cairn_dev.standin_node"]),
        (["etcd", "--name", "cairn.dev.node"], ["etcd", "--name", "cairn.dev.node"]),  # not after -m: kept
        (["cairn.dev.node"], ["cairn.dev.node"]),
    ],
)
def test_a_command_line_recorded_before_the_builder_moved_runs_its_module_where_it_is_now(
    recorded: list[str], runs: list[str]
) -> None:
    assert current_argv(recorded) == runs
