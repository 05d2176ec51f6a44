"""The containerd node of `cairn dev up --node=containerd`: a real kubelet, containerd, runc and CNI.

Layout (all names derive from the cluster directory, so `down` finds them even after a crashed `up`):

- a network namespace ``cairn-<id>`` joined to the host by one veth pair on a /30 that no host
  address or route uses (host ``10.201.x.1``, node ``10.201.x.2``: the node's InternalIP). Inside it:
  the CNI bridge ``cni0`` with pods on 10.244.0.0/24, and one DNAT rule that sends the ``kubernetes``
  Service address (10.96.0.1:443) to the API server (there is no kube-proxy: the dev cluster has no
  other Service a pod needs). The host's own addresses, routes and iptables rules are not touched.
- a relay (:mod:`cairn_dev.portbridge`) that listens inside the namespace on the API server's and S3's
  ports and connects to them on the host's 127.0.0.1, where they listen.
- containerd (Debian's, CRI plugin; ``restrict_oom_score_adj`` because root here lacks
  CAP_SYS_RESOURCE, cgroupfs driver) and the kubelet of the pinned release, both in the network
  namespace and in one private mount namespace of their own. Every mount they make (overlay rootfs,
  secret volumes, pod network namespaces) lives and dies with that mount namespace; the kernel
  settings the kubelet would rewrite (``vm.overcommit_memory``, ``kernel.panic``, ...) are shadowed
  there by files that already hold its values, so the host's stay as they are.
- pod cgroups under ``/cairn-<id>`` in each cgroup v1 hierarchy (the kubelet's ``cgroupRoot``), and
  under the v2 (unified) one where runc also writes (see :mod:`cairn_dev.cgroups`).
- the kubelet's configuration file and its command-line flags (:func:`kubelet_config`,
  :func:`kubelet_argv`), and the start and the stop of the whole node (:func:`start`, :func:`stop`).

Images come from :mod:`cairn_dev.builds.images` (built without a Docker engine) and are imported with
``ctr -n k8s.io images import``; there is no registry, so pods use ``imagePullPolicy: IfNotPresent``.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cairn_dev import cgroups, debs, procs
from cairn_dev.errors import DevError
from cairn_dev.pki import PKI

NODE_NAME = "cairn-node"
POD_CIDR = "10.244.0.0/24"
SERVICE_IP = "10.96.0.1"
#: Where the /30 between the host and the node namespace is taken from.
LINK_POOL = ipaddress.ip_network("10.201.0.0/16")
#: What the kubelet sets on start unless `protectKernelDefaults` (then it refuses to start instead);
#: shadowed inside the node's mount namespace by files holding these values.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
#: Host directories that hard-coded paths of containerd 1.6 and libcni use; inside the node's mount
#: namespace each is a bind mount of a directory under the node's root.
SHADOWED_DIRS = {"/run/containerd": "run-containerd", "/var/lib/cni": "cni-cache"}


@dataclass(frozen=True)
class NodeNames:
    """Everything named after one cluster directory."""

    ident: str

    @property
    def netns(self) -> str:
        return f"cairn-{self.ident}"

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    @property
    def host_if(self) -> str:
        return f"cairnh{self.ident}"  # 14 characters: interface names are at most 15

    @property
    def sockets(self) -> Path:
        """containerd's sockets: a short path (a unix socket's is at most 107 bytes) whatever the directory."""
        return Path(f"/run/cairn-{self.ident}")

    @property
    def cgroup(self) -> str:
        return f"cairn-{self.ident}"


def names_for(root: Path) -> NodeNames:
    return NodeNames(hashlib.sha256(str(root).encode()).hexdigest()[:8])


def pick_link(ident: str, used: Iterable[ipaddress.IPv4Network]) -> tuple[str, str]:
    """A /30 of LINK_POOL that overlaps nothing in `used`: (host address, node address).

    The search starts at a block chosen by `ident`, so two clusters on one machine rarely try the same
    one first; it walks on until a free block is found.
    """
    used = list(used)
    blocks = LINK_POOL.num_addresses // 4
    first = int(ident, 16) % blocks
    for i in range(blocks):
        block = (first + i) % blocks
        net = ipaddress.ip_network(f"{LINK_POOL.network_address + block * 4}/30")
        if not any(net.overlaps(u) for u in used):
            hosts = list(net.hosts())
            return str(hosts[0]), str(hosts[1])
    raise DevError(f"every /30 of {LINK_POOL} overlaps an address or route of this machine; free one")


def host_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks of the host's addresses and routes (what a new link must not overlap)."""
    nets: list[ipaddress.IPv4Network] = []
    for argv in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route", "show", "table", "all"]):
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            for word in line.split():
                if word == "default":
                    continue
                with contextlib.suppress(ValueError):
                    net = ipaddress.ip_network(word, strict=False)
                    if isinstance(net, ipaddress.IPv4Network) and net.prefixlen > 0:
                        nets.append(net)
    return nets


def cni_conflist(ipam_dir: Path) -> dict[str, Any]:
    """A bridge network for pods, addresses from host-local IPAM kept under the node's root."""
    return {
        "cniVersion": "1.0.0",
        "name": "cairn",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def containerd_config(base: Path, cni_conf_dir: Path, sandbox_image: str, sockets: Path) -> str:
    """containerd's config: everything under `base` (sockets under `sockets`), the CRI plugin set for this
    machine."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{sockets / "containerd.sock"}"

[ttrpc]
  address = "{sockets / "containerd.sock.ttrpc"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  # root here lacks CAP_SYS_RESOURCE: negative oom_score_adj values are clamped, not refused
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{cni_conf_dir}"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{base / "runc"}"
"""


def kubelet_config(
    *,
    node_ip: str,
    port: int,
    healthz_port: int,
    cgroup_root: str,
    runtime_socket: Path,
    client_ca: Path,
    tls_cert: Path,
    tls_key: Path,
    pod_logs: Path,
) -> dict[str, Any]:
    """The KubeletConfiguration of the containerd node."""
    endpoint = f"unix://{runtime_socket}"
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{cgroup_root}",
        "containerRuntimeEndpoint": endpoint,
        "imageServiceEndpoint": endpoint,
        # Only clients with a certificate of the cluster's CA (the API server's kubelet client).
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "tlsCertFile": str(tls_cert),
        "tlsPrivateKeyFile": str(tls_key),
        "podLogsDir": str(pod_logs),
        "failSwapOn": False,
        "oomScoreAdj": 0,
        "protectKernelDefaults": False,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "maxPods": 250,
        "resolvConf": "/etc/resolv.conf",
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "logging": {"format": "text"},
        "featureGates": {},
    }


def sh(argv: list[str], what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise DevError(f"{what} failed: `{' '.join(argv)}` (exit {res.returncode}): {res.stderr.strip()}")
    return res


def netns_exists(names: NodeNames) -> bool:
    return Path(names.netns_path).exists()


def link_exists(name: str) -> bool:
    return sh(["ip", "link", "show", name], "ip link", check=False).returncode == 0


def check_network_free(names: NodeNames) -> None:
    """Refuse to start when the node's namespace or host interface exists already (nothing is touched)."""
    if netns_exists(names):
        raise DevError(
            f"the network namespace {names.netns} already exists (a crashed `cairn dev up` of this directory?); "
            f"run `cairn dev down` for this directory first, or delete it (`ip netns del {names.netns}`)"
        )
    if link_exists(names.host_if):
        raise DevError(
            f"the network interface {names.host_if} already exists; run `cairn dev down` for this directory first "
            f"or delete it (`ip link del {names.host_if}`)"
        )


def setup_network(names: NodeNames, host_ip: str, node_ip: str, api_port: int) -> None:
    """The node's namespace, its veth to the host, and the DNAT of the `kubernetes` Service."""
    inside = ["ip", "netns", "exec", names.netns]
    sh(["ip", "netns", "add", names.netns], "creating the node's network namespace")
    sh(
        ["ip", "link", "add", names.host_if, "type", "veth", "peer", "name", "eth0", "netns", names.netns],
        "creating the node's veth pair",
    )
    sh(["ip", "addr", "add", f"{host_ip}/30", "dev", names.host_if], "addressing the host end")
    sh(["ip", "link", "set", names.host_if, "up"], "bringing up the host end")
    for argv in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "addr", "add", f"{node_ip}/30", "dev", "eth0"],
        ["ip", "link", "set", "eth0", "up"],
        ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
    ):
        sh(inside + argv, "setting up the node's network namespace")
    dnat = ["-d", f"{SERVICE_IP}/32", "-p", "tcp", "--dport", "443", "-j", "DNAT", "--to-destination"]
    for chain in ("PREROUTING", "OUTPUT"):
        sh(
            [*inside, "iptables", "-w", "-t", "nat", "-A", chain, *dnat, f"{node_ip}:{api_port}"],
            "adding the kubernetes Service rule",
        )


def teardown_network(names: NodeNames) -> bool:
    """Delete the namespace (its veth pair, bridge, rules and pod links go with it). True if it existed."""
    existed = netns_exists(names)
    if existed:
        sh(["ip", "netns", "del", names.netns], "deleting the node's network namespace", check=False)
    if link_exists(names.host_if):
        sh(["ip", "link", "del", names.host_if], "deleting the host end of the veth", check=False)
    return existed


def cgroup_dirs(names: NodeNames) -> list[Path]:
    """The node's cgroup in every hierarchy (v1 and v2) of this machine."""
    return cgroups.node_dirs(names.cgroup)


def setup_cgroups(names: NodeNames) -> None:
    """The kubelet's cgroupRoot in every v1 hierarchy (it must exist before the kubelet starts)."""
    missing = cgroups.missing_controllers()
    if missing:
        raise DevError(
            f"the containerd node needs cgroup v1 hierarchies {', '.join(missing)} under {cgroups.CGROUP_FS} "
            "(cgroupfs driver); this machine does not have them"
        )
    cgroups.make_roots(names.cgroup)


def ns_inode(pid: int, kind: str = "mnt") -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def pids_in_ns(inode: int, kind: str) -> set[int]:
    """Every process whose `kind` namespace (net, mnt) is the one with `inode`."""
    out: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and ns_inode(int(entry.name), kind) == inode:
            out.add(int(entry.name))
    return out


def kill_all(
    find: Callable[[], set[int]], what: str, timeout: float = 15.0, sleep: Callable[[float], None] = time.sleep
) -> int:
    """SIGKILL whatever `find` returns until it returns nothing; the number of processes killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while pids := find() - {os.getpid()}:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            procs.reap(pid)
        killed |= pids
        if time.monotonic() > deadline:
            raise DevError(f"could not stop the {what} processes {sorted(pids)}; kill them by hand")
        sleep(0.1)
    return len(killed)


def write_sysctl_shadows(folder: Path) -> dict[str, Path]:
    """Files holding the kubelet's wanted kernel settings, to be bind-mounted over /proc/sys."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for key, value in KUBELET_SYSCTLS.items():
        f = folder / key.replace("/", ".")
        f.write_text(value + "\n")
        out[f"/proc/sys/{key}"] = f
    return out


def namespace_script(binds: dict[str, Path]) -> str:
    """The shell that runs first in the node's new mount namespace: bind mounts, then exec."""
    lines = ["set -e", "mount --make-rprivate /"]
    for target, source in binds.items():
        lines.append(f"mkdir -p '{target}'" if source.is_dir() else f"test -e '{target}'")
        lines.append(f"mount --bind '{source}' '{target}'")
    lines.append('exec "$@"')
    return "; ".join(lines)


def ctr(address: Path, *args: str) -> list[str]:
    return ["ctr", "--address", str(address), "--namespace", "k8s.io", *args]


def ensure_host_tools(say: Callable[[str], None]) -> None:
    if os.geteuid() != 0:
        raise DevError(
            "`cairn dev up --node=containerd` runs containerd and a kubelet and makes a network namespace: "
            "run it as root (or use the default --node=local)"
        )
    debs.ensure(debs.NODE, "the containerd node", say)


def node_dirs(node_root: Path) -> dict[str, Path]:
    return {
        "containerd": node_root / "containerd",
        "cni_conf": node_root / "cni" / "net.d",
        "cni_ipam": node_root / "cni" / "ipam",
        "kubelet": node_root / "kubelet",
        "pod_logs": node_root / "pod-logs",
        "sysctl": node_root / "sysctl",
        **{key.strip("/").replace("/", "-"): node_root / rel for key, rel in SHADOWED_DIRS.items()},
    }


def write_files(node_root: Path, sandbox_image: str, sockets: Path) -> dict[str, Path]:
    d = node_dirs(node_root)
    for p in [*d.values(), sockets]:
        p.mkdir(parents=True, exist_ok=True)
    (d["cni_conf"] / "10-cairn.conflist").write_text(json.dumps(cni_conflist(d["cni_ipam"]), indent=2))
    (d["containerd"] / "config.toml").write_text(
        containerd_config(d["containerd"], d["cni_conf"], sandbox_image, sockets)
    )
    return d


def write_kubelet_config(path: Path, cfg: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def import_images(address: Path, archives: Iterable[Path], say: Callable[[str], None]) -> None:
    """`ctr -n k8s.io images import` each archive (docker-archive tars with their full names)."""
    for archive in archives:
        t0 = time.monotonic()
        argv = ctr(address, "images", "import", str(archive))
        res = subprocess.run(argv, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            why = res.stderr.strip() or res.stdout.strip()
            raise DevError(f"containerd refused the image archive {archive}: {why}")
        say(f"  imported {archive.name} into containerd ({time.monotonic() - t0:.1f}s)")


def portbridge_argv(names: NodeNames, ports: Iterable[int]) -> list[str]:
    """The relay that serves the host's loopback ports (API server, S3) inside the node's namespace."""
    return [sys.executable, "-m", "cairn_dev.portbridge", "--netns", names.netns_path, *map(str, ports)]


def containerd_argv(names: NodeNames, binds: dict[str, Path], config: Path) -> list[str]:
    """containerd in the node's network namespace and a new private mount namespace set up by `binds`."""
    enter = ["nsenter", f"--net={names.netns_path}", "--", "unshare", "--mount", "--propagation", "private", "--"]
    return [*enter, "sh", "-c", namespace_script(binds), "sh", "containerd", "--config", str(config)]


def kubelet_argv(
    names: NodeNames,
    containerd_pid: int,
    binary: Path,
    config: Path,
    kubeconfig: Path,
    root_dir: Path,
    node_ip: str,
    extra: Iterable[str] = (),
) -> list[str]:
    """The kubelet's command line: in the node's network namespace and containerd's mount namespace,
    configured by `config` (:func:`kubelet_config`); `extra` (`--kubelet-arg`) comes after Cairn's flags."""
    enter = ["nsenter", f"--net={names.netns_path}", f"--mount=/proc/{containerd_pid}/ns/mnt", "--"]
    flags = ["--config", str(config), "--kubeconfig", str(kubeconfig), "--root-dir", str(root_dir)]
    flags += ["--hostname-override", NODE_NAME, "--node-ip", node_ip, "--v=1"]
    return [*enter, str(binary), *flags, *extra]


@dataclass(frozen=True)
class Start:
    """What starting the node needs from its cluster: files, the kubelet binary and how to run things."""

    root: Path
    pki: PKI
    #: The node's kubeconfig (identity system:node:cairn-node).
    kubeconfig: Path
    kubelet: Path
    #: Start a process by name and record it in state.json.
    launch: Callable[[str, list[str]], procs.ProcRecord]
    #: Write state.json (after each thing made, so `down` finds it even after a crash).
    save: Callable[[], None]
    #: Whether the node is Ready in the API server.
    ready: Callable[[], bool]
    timeout: float
    say: Callable[[str], None]


def start(ctx: Start, node: dict[str, Any], ports: dict[str, int], archives: list[Path], extra: Iterable[str]) -> None:
    """cairn-node: cgroups, network namespace, relay, containerd, images, kubelet; `node` and `ports` are
    the state's records, updated (and saved) as each thing is made."""
    names = names_for(ctx.root)
    setup_cgroups(names)
    node["cgroup"] = names.cgroup
    ctx.save()
    check_network_free(names)
    node["netns_owned"] = True  # from here on, `down` deletes the namespace (also after a crash)
    ctx.save()
    setup_network(names, node["host_ip"], node["node_ip"], ports["apiserver"])
    node["netns_inode"] = os.stat(names.netns_path).st_ino
    ctx.save()
    ctx.launch("portbridge", portbridge_argv(names, (ports["apiserver"], ports["s3"])))
    containerd = _start_containerd(ctx, node, names)
    import_images(names.sockets / "containerd.sock", archives, ctx.say)
    kubelet = _start_kubelet(ctx, node, ports, names, containerd.pid, extra)
    procs.wait_until(f"node {NODE_NAME} to be Ready", ctx.ready, kubelet, ctx.timeout)


def _start_containerd(ctx: Start, node: dict[str, Any], names: NodeNames) -> procs.ProcRecord:
    from cairn_dev.builds.images import PAUSE_IMAGE

    node_root = ctx.root / "node"
    dirs = write_files(node_root, PAUSE_IMAGE, names.sockets)
    node["host_dirs"] = [d for d in SHADOWED_DIRS if not Path(d).exists()]
    ctx.save()
    binds = {**write_sysctl_shadows(dirs["sysctl"])}
    binds.update({target: node_root / rel for target, rel in SHADOWED_DIRS.items()})
    rec = ctx.launch("containerd", containerd_argv(names, binds, dirs["containerd"] / "config.toml"))
    sock = names.sockets / "containerd.sock"

    def serves() -> bool:
        return subprocess.run(ctr(sock, "version"), capture_output=True, text=True, check=False).returncode == 0

    procs.wait_until("containerd to serve its socket", serves, rec, ctx.timeout)
    node["mntns_inode"] = ns_inode(rec.pid)
    ctx.save()
    return rec


def _start_kubelet(
    ctx: Start, node: dict[str, Any], ports: dict[str, int], names: NodeNames, containerd_pid: int, extra: Iterable[str]
) -> procs.ProcRecord:
    dirs = node_dirs(ctx.root / "node")
    kubelet_port, healthz_port = procs.free_port(), procs.free_port()
    ports["kubelet"] = kubelet_port
    cfg = dirs["kubelet"] / "config.yaml"
    config = kubelet_config(
        node_ip=node["node_ip"],
        port=kubelet_port,
        healthz_port=healthz_port,
        cgroup_root=names.cgroup,
        runtime_socket=names.sockets / "containerd.sock",
        client_ca=ctx.pki.ca_cert,
        tls_cert=ctx.pki.kubelet_cert,
        tls_key=ctx.pki.kubelet_key,
        pod_logs=dirs["pod_logs"],
    )
    write_kubelet_config(cfg, config)
    argv = kubelet_argv(
        names, containerd_pid, ctx.kubelet, cfg, ctx.kubeconfig, dirs["kubelet"], node["node_ip"], extra
    )
    return ctx.launch("kubelet", argv)


@dataclass
class Teardown:
    """What `stop` did: what it stopped (for the message) and the cgroups it left because they are not empty."""

    stopped: list[str]
    cgroups_left: list[Path]


def stop(root: Path, node: Mapping[str, Any], running: Mapping[str, procs.ProcRecord]) -> Teardown:
    """Stop the kubelet and containerd, then everything left in the node's namespaces and cgroups, and remove
    the namespace, the cgroups (v1 and v2) and the host directories `up` made. Safe after a crash: the
    names come from the cluster directory, ownership from state.json's `node`."""
    names = names_for(root)
    stopped: list[str] = []
    for name in ("kubelet", "containerd"):
        rec = running.get(name)
        if rec is not None and rec.alive():
            procs.stop(rec, grace=10)
            stopped.append(name)
    killed = kill_all(lambda: _leftovers(names, node), "containerd node")
    if killed:
        stopped.append(f"{killed} container process(es)")
    left = cgroups.remove(names.cgroup)
    if node.get("netns_owned") and teardown_network(names):
        stopped.append(f"network namespace {names.netns}")
    shutil.rmtree(names.sockets, ignore_errors=True)
    for d in node.get("host_dirs", []):
        with contextlib.suppress(OSError):
            Path(d).rmdir()
    return Teardown(stopped, left)


def _leftovers(names: NodeNames, node: Mapping[str, Any]) -> set[int]:
    """Processes of the node still running: in its cgroups, or in its network or mount namespace. The
    namespace inodes identify ours only while the namespace exists (not after a reboot)."""
    found = cgroups.pids(names.cgroup)
    if node.get("netns_owned") and netns_exists(names):
        found |= pids_in_ns(os.stat(names.netns_path).st_ino, "net")
        mnt = node.get("mntns_inode")
        if mnt and mnt != ns_inode(os.getpid()):
            found |= pids_in_ns(int(mnt), "mnt")
    return found


def summary(root: Path, node: Mapping[str, Any], containerd: procs.ProcRecord | None, ready: str) -> str:
    """One line for `status`: the node's Ready condition (`ready`, as read from the API server), how many
    containers containerd holds, and its cgroup root."""
    sock = names_for(root).sockets / "containerd.sock"
    try:
        if containerd is None or not containerd.alive() or not sock.exists():
            raise FileNotFoundError(sock)  # containerd is down: do not wait for ctr to time out
        res = subprocess.run(
            ctr(sock, "containers", "ls", "-q"), capture_output=True, text=True, check=False, timeout=10
        )
        count: int | str = len(res.stdout.split()) if res.returncode == 0 else "?"
    except (OSError, subprocess.TimeoutExpired):
        count = "?"
    return f"{ready}; {count} container(s) in containerd; cgroups /{node.get('cgroup', '?')}"


def node_line(node: Mapping[str, Any], k8s_version: str) -> str:
    """What the containerd node is, for `up`'s and `status`'s messages."""
    return (
        f"{node['name']}: kubelet {k8s_version} + containerd, runc, CNI bridge in network namespace "
        f"{node['netns']} (InternalIP {node['node_ip']}, host end {node['host_ip']}, pods {POD_CIDR})"
    )
