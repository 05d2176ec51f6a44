"""The control plane's command lines and ports as data: each component listens on exactly the ports
state.json records for it (what a restart checks), fixed ports are kept, and no port is given twice."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from cairn_dev import containerd_node, control_plane
from cairn_dev.builds.k8s import BuildLayout
from cairn_dev.state import COMPONENT_PORTS, CONTROL_PLANE


def counter(start: int = 30000) -> Callable[[set[int]], int]:
    """Ports in order, skipping the taken ones (as procs.free_port, without sockets)."""
    numbers = itertools.count(start)

    def pick(taken: set[int]) -> int:
        port = next(n for n in numbers if n not in taken)
        taken.add(port)
        return port

    return pick


@pytest.mark.parametrize(("apiserver", "s3"), [(0, 0), (6443, 0), (0, 9000), (6443, 9000)])
def test_pick_ports_keeps_fixed_ones_and_gives_every_recorded_port_once(apiserver: int, s3: int) -> None:
    ports = control_plane.pick_ports(apiserver, s3, pick=counter())
    wanted = {p for name in (*CONTROL_PLANE, "node") for p in COMPONENT_PORTS[name]}
    assert set(ports) == wanted
    assert len(set(ports.values())) == len(ports)
    assert (ports["apiserver"] == apiserver) is bool(apiserver) and (ports["s3"] == s3) is bool(s3)


def test_pick_ports_never_hands_out_a_fixed_port_again() -> None:
    ports = control_plane.pick_ports(30001, 30003, pick=counter())
    assert sorted(ports.values()).count(30001) == 1 and sorted(ports.values()).count(30003) == 1


#: Ports a component's command line names besides its own: the servers it connects to.
CONNECTS_TO = {"kube-apiserver": ("etcd",)}


def ports_named(argv: list[str], ports: dict[str, int]) -> set[int]:
    """The ports in `argv`: whole words, `-flag=PORT` values and the ports of `host:PORT` URLs."""
    words = {w.rsplit("=", 1)[-1].rsplit(":", 1)[-1] for w in argv}
    return {p for p in ports.values() if str(p) in words}


@pytest.mark.parametrize("name", CONTROL_PLANE)
def test_each_component_listens_on_exactly_its_recorded_ports(name: str, tmp_path: Path) -> None:
    ports = control_plane.pick_ports(pick=counter())
    cmd = control_plane.command(name, ports, control_plane.Files(tmp_path / "c"), BuildLayout(tmp_path / "k8s"))
    expected = {ports[k] for k in (*COMPONENT_PORTS[name], *CONNECTS_TO.get(name, ()))}
    assert ports_named(cmd.argv, ports) == expected


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("etcd", "etcd /health"),
        ("seaweedfs", "SeaweedFS S3 bucket b"),
        ("kube-apiserver", "kube-apiserver /readyz"),
        ("controller-manager", "kube-controller-manager /healthz"),
        ("scheduler", "kube-scheduler /healthz"),
    ],
)
def test_every_component_has_a_readiness_check(name: str, what: str, tmp_path: Path) -> None:
    ports = control_plane.pick_ports(pick=counter())
    said, check = control_plane.readiness(name, ports, control_plane.Files(tmp_path), object(), "b")
    assert said == what and callable(check)


def test_kubelet_flags_run_it_in_the_node_namespaces_with_its_config_and_extra_flags_last(tmp_path: Path) -> None:
    names = containerd_node.names_for(tmp_path)
    argv = containerd_node.kubelet_argv(
        names,
        4242,
        Path("/k/kubelet"),
        tmp_path / "config.yaml",
        tmp_path / "node.kc",
        tmp_path / "kl",
        "10.201.0.2",
        ["--v=4"],
    )
    assert argv[:4] == ["nsenter", f"--net={names.netns_path}", "--mount=/proc/4242/ns/mnt", "--"]
    assert argv[4] == "/k/kubelet" and argv[-1] == "--v=4" and argv[-2] == "--v=1"
    flags = dict(zip(argv[5:-2:2], argv[6:-2:2], strict=True))
    assert flags == {
        "--config": str(tmp_path / "config.yaml"),
        "--kubeconfig": str(tmp_path / "node.kc"),
        "--root-dir": str(tmp_path / "kl"),
        "--hostname-override": containerd_node.NODE_NAME,
        "--node-ip": "10.201.0.2",
    }
