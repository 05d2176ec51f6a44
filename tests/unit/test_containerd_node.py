"""The containerd node's pure parts: names, the host link, configs of containerd, CNI and the kubelet."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

import pytest

from cairn_dev import containerd_node
from cairn_dev.errors import DevError


def test_names_derive_from_the_directory_and_fit_the_kernels_limits() -> None:
    a = containerd_node.names_for(Path("/tmp/a/dev"))
    assert a == containerd_node.names_for(Path("/tmp/a/dev"))  # down finds them again after a crash
    assert a != containerd_node.names_for(Path("/tmp/b/dev"))
    assert len(a.host_if) <= 15  # IFNAMSIZ - 1
    assert a.netns_path == f"/run/netns/{a.netns}"
    assert a.cgroup.startswith("cairn-")
    assert len(str(a.sockets / "containerd.sock.ttrpc")) < 108  # a unix socket path, whatever the directory


@pytest.mark.parametrize(
    ("used", "must_avoid"),
    [
        ([], []),
        (["10.201.0.0/16"], None),  # the whole pool is taken
        (["10.0.0.0/8"], None),
        (["10.201.0.0/17"], ["10.201.0.0/17"]),
        (["192.168.1.0/24", "127.0.0.0/8"], []),
    ],
)
def test_the_host_link_never_overlaps_what_the_host_uses(used: list[str], must_avoid: list[str] | None) -> None:
    nets = [ipaddress.IPv4Network(u) for u in used]
    if must_avoid is None:
        with pytest.raises(DevError, match="overlaps"):
            containerd_node.pick_link("38020ff4", nets)
        return
    host, node = containerd_node.pick_link("38020ff4", nets)
    link = ipaddress.ip_network(f"{host}/30", strict=False)
    assert ipaddress.ip_address(node) in link and host != node
    assert link.subnet_of(containerd_node.LINK_POOL)  # type: ignore[arg-type]
    assert not any(link.overlaps(n) for n in nets)


def test_the_first_block_tried_depends_on_the_cluster() -> None:
    assert containerd_node.pick_link("00000000", []) != containerd_node.pick_link("00000001", [])


def test_containerd_config_keeps_everything_under_the_node_and_fits_this_machine(tmp_path: Path) -> None:
    text = containerd_node.containerd_config(
        tmp_path / "ctr", tmp_path / "net.d", "localhost/pause:1", Path("/run/cairn-x")
    )
    cfg = tomllib.loads(text)
    assert cfg["version"] == 2
    for path in (cfg["root"], cfg["state"]):
        assert path.startswith(str(tmp_path / "ctr"))
    assert cfg["grpc"]["address"] == "/run/cairn-x/containerd.sock"
    assert cfg["ttrpc"]["address"] == "/run/cairn-x/containerd.sock.ttrpc"
    assert cfg["plugins"]["io.containerd.internal.v1.opt"]["path"].startswith(str(tmp_path))
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # root lacks CAP_SYS_RESOURCE here
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == "localhost/pause:1"
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": str(tmp_path / "net.d")}
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is False  # cgroupfs: PID 1 is not systemd
    assert runc["options"]["Root"].startswith(str(tmp_path))


def test_cni_bridge_network_keeps_its_addresses_under_the_node(tmp_path: Path) -> None:
    conf = containerd_node.cni_conflist(tmp_path / "ipam")
    bridge = conf["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["isGateway"] and bridge["ipMasq"]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "ipam")
    assert bridge["ipam"]["ranges"] == [[{"subnet": containerd_node.POD_CIDR}]]
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap"]


def test_kubelet_config_serves_only_the_clusters_clients_on_the_node_address(tmp_path: Path) -> None:
    cfg = containerd_node.kubelet_config(
        node_ip="10.201.0.2",
        port=10250,
        healthz_port=10248,
        cgroup_root="cairn-x",
        runtime_socket=tmp_path / "c.sock",
        client_ca=tmp_path / "ca.crt",
        tls_cert=tmp_path / "k.crt",
        tls_key=tmp_path / "k.key",
        pod_logs=tmp_path / "logs",
    )
    assert cfg["address"] == "10.201.0.2" and cfg["readOnlyPort"] == 0
    assert cfg["authentication"]["anonymous"]["enabled"] is False
    assert cfg["authentication"]["x509"]["clientCAFile"] == str(tmp_path / "ca.crt")
    assert cfg["cgroupDriver"] == "cgroupfs" and cfg["cgroupRoot"] == "/cairn-x"
    assert cfg["containerRuntimeEndpoint"] == f"unix://{tmp_path / 'c.sock'}"
    assert cfg["healthzBindAddress"] == "127.0.0.1"
    assert cfg["podLogsDir"] == str(tmp_path / "logs")


def test_the_namespace_script_binds_then_execs(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    f = tmp_path / "file"
    f.write_text("1\n")
    script = containerd_node.namespace_script({"/run/x": d, "/proc/sys/vm/overcommit_memory": f})
    steps = script.split("; ")
    assert steps[:2] == ["set -e", "mount --make-rprivate /"]
    assert f"mount --bind '{d}' '/run/x'" in steps and "mkdir -p '/run/x'" in steps
    assert "test -e '/proc/sys/vm/overcommit_memory'" in steps  # a file target is never created
    assert steps[-1] == 'exec "$@"'


def test_sysctl_shadows_hold_the_values_the_kubelet_wants(tmp_path: Path) -> None:
    shadows = containerd_node.write_sysctl_shadows(tmp_path)
    assert set(shadows) == {f"/proc/sys/{k}" for k in containerd_node.KUBELET_SYSCTLS}
    assert shadows["/proc/sys/kernel/panic"].read_text() == "10\n"


def test_kill_all_stops_when_nothing_is_left_and_says_when_something_stays() -> None:
    rounds = iter([{999_999_991}, set()])
    assert containerd_node.kill_all(lambda: next(rounds), "test", sleep=lambda _: None) == 1
    with pytest.raises(DevError, match="could not stop the test processes"):
        containerd_node.kill_all(lambda: {999_999_992}, "test", timeout=0.0, sleep=lambda _: None)
