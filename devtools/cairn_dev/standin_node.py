"""The stand-in node `cairn-local` (`cairn dev up`, `--node=local`): a node agent doing the kubelet's job for
the pods bound to it, without containers.

Run as ``python -m cairn_dev.standin_node --kubeconfig K --node-name cairn-local --root DIR/node``
(``cairn dev up`` does this, with :func:`argv`). It registers the Node (Ready, with capacity), renews its
Lease and Ready heartbeat as a kubelet does, and for each pod the scheduler binds to it runs the first
container's ``command`` + ``args`` as a host process (through `cairn_dev.shim`) in the current Python
environment, ignoring the image. There is no isolation of any kind: it is a development stand-in.

Per pod it keeps ``ROOT/pods/<uid>/``: ``claimed`` (written before the process starts), ``shim.json``,
``exit.json``, ``log`` (the container's output) and ``termination-log`` (where the container's
``terminationMessagePath`` is redirected: occurrences of that path in command, args and env values are
replaced by it, and ``CAIRN_TERMINATION_MESSAGE_PATH`` names it). Decisions are made by the pure
`cairn_dev.podlogic.decide` from what the API server and these files say, so a restart of the agent
picks up where it was and never runs a pod twice.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cairn_dev import podlogic
from cairn_dev.kubeletapi import KubeletAPI, LogSource
from cairn_dev.podlogic import Action
from cairn_dev.procs import ProcRecord
from cairn_dev.shim import write_json_atomic
from cairn_dev.versions import K8S_VERSION

log = logging.getLogger("cairn_dev.standin_node")

NODE_NAME = "cairn-local"
NO_ISOLATION = (
    "the local node cairn-local runs each pod's command as a plain host process with no isolation "
    "(no container, no image, no resource limits): a development stand-in for a kubelet"
)


def argv(kubeconfig: Path, root: Path, kubelet_port: int, cert: Path, key: Path, client_ca: Path) -> list[str]:
    """The agent's command line: the node's identity, its directory, and the kubelet API (logs) it serves on
    `kubelet_port` with the serving certificate `cert` to clients of `client_ca`."""
    words = [sys.executable, "-m", "cairn_dev.standin_node", "--kubeconfig", str(kubeconfig), "--node-name", NODE_NAME]
    words += ["--root", str(root), "--kubelet-port", str(kubelet_port)]
    return [*words, "--kubelet-cert", str(cert), "--kubelet-key", str(key), "--client-ca", str(client_ca)]


HOST_IP = "127.0.0.1"
LEASE_SECONDS = 40
RENEW_EVERY = 10.0
RESYNC_EVERY = 1.0
NODE_READY_MESSAGE = "cairn-local agent is posting ready status (pods run as host processes, no isolation)"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ts(t: dt.datetime | None = None) -> str:
    return podlogic.fmt_time(t or _now())


def running_shims(root: Path) -> list[ProcRecord]:
    """Shim processes of pods on this node that still run (used by `cairn dev down` and status)."""
    out: list[ProcRecord] = []
    for shim_file in sorted((root / "pods").glob("*/shim.json")):
        try:
            data = json.loads(shim_file.read_text())
        except (OSError, ValueError):
            continue
        meta = _read_json(shim_file.parent / "pod.json") or {}
        rec = ProcRecord(
            name=f"{meta.get('namespace', '?')}/{meta.get('name', shim_file.parent.name)}",
            pid=int(data["pid"]),
            start_time=int(data.get("start_time") or -1),
            argv=[],
            log=str(shim_file.parent / "log"),
        )
        if rec.alive():
            out.append(rec)
    return out


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class PodDir:
    """The node's own record of one pod."""

    def __init__(self, root: Path, uid: str) -> None:
        self.path = root / "pods" / uid

    @property
    def termination_log(self) -> Path:
        return self.path / "termination-log"

    @property
    def log(self) -> Path:
        return self.path / "log"

    @property
    def deadline_marker(self) -> Path:
        return self.path / "deadline-exceeded"

    def shim(self) -> ProcRecord | None:
        data = _read_json(self.path / "shim.json")
        if data is None:
            return None
        return ProcRecord("shim", int(data["pid"]), int(data.get("start_time") or -1), [], str(self.log))

    def exit(self) -> dict[str, Any] | None:
        return _read_json(self.path / "exit.json")

    def view(self) -> podlogic.LocalView:
        claimed = (self.path / "claimed").exists()
        shim = self.shim()
        running = shim is not None and shim.alive()
        if claimed and shim is None:
            # The shim may be starting right now: give it a moment before calling the pod lost.
            claimed_at = (self.path / "claimed").stat().st_mtime
            running = time.time() - claimed_at < 10
        return podlogic.LocalView(claimed=claimed, running=running, exited=self.exit() is not None)


class Agent:
    """Registers the node and drives its pods; every step is idempotent and level-triggered."""

    def __init__(
        self, api: Any, node_name: str, root: Path, python_bin: Path | None = None, kubelet_port: int = 0
    ) -> None:
        from kubernetes import client

        self.api = api
        self.core = client.CoreV1Api(api)
        self.coord = client.CoordinationV1Api(api)
        self.node_name = node_name
        self.root = root
        self.python_bin = python_bin or Path(sys.executable).parent
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.killing: dict[str, float] = {}  # uid -> when KILL is due
        self.kubelet_port = kubelet_port
        self.started_at = _ts()

    # ----- node, lease ------------------------------------------------------------------------------
    def node_status(self) -> dict[str, Any]:
        cpus = os.cpu_count() or 1
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        disk = shutil.disk_usage(self.root).total
        resources = {
            "cpu": str(cpus),
            "memory": f"{mem // 1024}Ki",
            "pods": "110",
            "ephemeral-storage": f"{disk // 1024}Ki",
        }
        now = _ts()
        conds = [
            {
                "type": t,
                "status": "False",
                "reason": r,
                "message": m,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self.started_at,
            }
            for t, r, m in (
                ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            )
        ]
        conds.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": NODE_READY_MESSAGE,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self.started_at,
            }
        )
        uname = platform.uname()
        return {
            "capacity": resources,
            "allocatable": resources,
            "conditions": conds,
            "addresses": [
                {"type": "InternalIP", "address": HOST_IP},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "architecture": "amd64" if uname.machine in ("x86_64", "amd64") else uname.machine,
                "operatingSystem": "linux",
                "kernelVersion": uname.release,
                "osImage": "cairn-local (host processes)",
                "containerRuntimeVersion": "cairn-local://0.1.0",
                "kubeletVersion": K8S_VERSION,
                "kubeProxyVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }

    def register(self) -> dict[str, Any]:
        from kubernetes.client.rest import ApiException

        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "cairn.dev/local-node": "true",
                },
            },
        }
        try:
            self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self.post_status()
        node: dict[str, Any] = json.loads(self.core.read_node(self.node_name, _preload_content=False).data)
        return node

    def post_status(self) -> None:
        self.core.patch_node_status(self.node_name, {"status": self.node_status()})

    def renew_lease(self, node_uid: str) -> None:
        from kubernetes.client.rest import ApiException

        now = _now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now}
        try:
            self.coord.patch_namespaced_lease(self.node_name, "kube-node-lease", {"spec": spec})
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.coord.create_namespaced_lease(
                "kube-node-lease",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": self.node_name,
                        "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": node_uid}
                        ],
                    },
                    "spec": spec,
                },
            )

    def heartbeat_loop(self, node_uid: str) -> None:
        while not self.stop_event.is_set():
            try:
                self.renew_lease(node_uid)
                self.post_status()
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)
            self.stop_event.wait(RENEW_EVERY)

    # ----- pods -------------------------------------------------------------------------------------
    def list_pods(self) -> list[dict[str, Any]]:
        resp = self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self.node_name}", _preload_content=False
        )
        items: list[dict[str, Any]] = json.loads(resp.data)["items"]
        return items

    def watch_loop(self) -> None:
        """Wake the sync loop on any change of this node's pods (the periodic resync covers gaps)."""
        from kubernetes import watch

        while not self.stop_event.is_set():
            try:
                w = watch.Watch()
                for _ in w.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=f"spec.nodeName={self.node_name}",
                    timeout_seconds=60,
                ):
                    self.wake.set()
                    if self.stop_event.is_set():
                        w.stop()
            except Exception as exc:
                log.debug("watch ended: %s", exc)
                self.stop_event.wait(1)

    def sync_once(self) -> None:
        now = _now()
        pods = self.list_pods()
        self.kill_orphans({p["metadata"]["uid"] for p in pods})
        for pod in pods:
            uid = pod["metadata"]["uid"]
            pdir = PodDir(self.root, uid)
            action = podlogic.decide(podlogic.PodView.of(pod), pdir.view(), now)
            if action is Action.NOTHING:
                continue
            try:
                self.apply(action, pod, pdir, now)
            except Exception as exc:
                log.exception(
                    "pod %s/%s: %s failed: %s",
                    pod["metadata"]["namespace"],
                    pod["metadata"]["name"],
                    action.value,
                    exc,
                )

    def apply(self, action: Action, pod: dict[str, Any], pdir: PodDir, now: dt.datetime) -> None:
        meta = pod["metadata"]
        ns, name = meta["namespace"], meta["name"]
        if action is Action.START:
            self.start(pod, pdir)
        elif action is Action.REPORT_RUNNING:
            child = _read_json(pdir.path / "child.json") or {}
            self.patch_status(pod, podlogic.running_status(pod, child.get("started_at") or _ts(now)))
        elif action is Action.REPORT_EXIT:
            self.report_exit(pod, pdir)
        elif action is Action.REPORT_LOST:
            started = (pod.get("status") or {}).get("startTime") or _ts(now)
            self.patch_status(
                pod,
                podlogic.terminated_status(
                    pod,
                    137,
                    "",
                    started,
                    _ts(now),
                    container_reason=podlogic.LOST_REASON,
                    pod_message=podlogic.LOST_MESSAGE,
                    pod_reason=podlogic.LOST_REASON,
                ),
            )
        elif action is Action.KILL_DEADLINE:
            pdir.deadline_marker.touch()
            if self.kill(pod, pdir, grace=int(pod["spec"].get("terminationGracePeriodSeconds", 30))):
                self.record_killed(pdir)
                self.report_exit(pod, pdir)
        elif action is Action.KILL_DELETED:
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            if self.kill(pod, pdir, grace=int(grace)):
                self.record_killed(pdir)
                self.finalize(ns, name, meta["uid"])
        elif action is Action.FINALIZE_DELETE:
            self.finalize(ns, name, meta["uid"])

    def kill_orphans(self, known: set[str]) -> None:
        """Kill processes of pods that vanished from the API server (a forced deletion)."""
        for shim_file in (self.root / "pods").glob("*/shim.json"):
            uid = shim_file.parent.name
            if uid in known:
                continue
            pdir = PodDir(self.root, uid)
            shim = pdir.shim()
            if shim is None or not shim.alive():
                continue
            due = self.killing.setdefault(uid, time.monotonic() + 2)
            sig = signal.SIGKILL if time.monotonic() >= due else signal.SIGTERM
            log.info("pod %s is gone from the API server; sending %s to its processes", uid, sig.name)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(shim.pid, sig)

    def finalize(self, ns: str, name: str, uid: str) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        try:
            self.core.delete_namespaced_pod(
                name,
                ns,
                body=client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)),
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
        self.killing.pop(uid, None)

    def kill(self, pod: dict[str, Any], pdir: PodDir, grace: int) -> bool:
        """TERM the pod's process group, KILL it `grace` seconds later; True once nothing runs."""
        uid = pod["metadata"]["uid"]
        shim = pdir.shim()
        child = _read_json(pdir.path / "child.json")
        if shim is None or not shim.alive():
            return True
        pgid = shim.pid
        if uid not in self.killing:
            log.info("killing pod %s/%s (grace %ss)", pod["metadata"]["namespace"], pod["metadata"]["name"], grace)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
            self.killing[uid] = time.monotonic() + grace
        elif time.monotonic() >= self.killing[uid]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        # The shim outlives TERM to record the command's exit, then ends itself.
        time.sleep(0.05)
        return not shim.alive() or (pdir.exit() is not None and child is not None)

    def record_killed(self, pdir: PodDir) -> None:
        if pdir.exit() is None:
            child = _read_json(pdir.path / "child.json") or {}
            write_json_atomic(
                pdir.path / "exit.json",
                {
                    "exit_code": 137,
                    "signal": 9,
                    "started_at": child.get("started_at") or _ts(),
                    "finished_at": _ts(),
                },
            )

    def read_message(self, pod: dict[str, Any], pdir: PodDir, exit_code: int) -> str:
        c = pod["spec"]["containers"][0]
        try:
            text = pdir.termination_log.read_text(errors="replace")
        except OSError:
            text = ""
        log_text = ""
        if c.get("terminationMessagePolicy") == "FallbackToLogsOnError" and not text.strip() and exit_code:
            with contextlib.suppress(OSError):
                log_text = pdir.log.read_text(errors="replace")
        return podlogic.termination_message(text, log_text, c.get("terminationMessagePolicy", "File"), exit_code)

    def report_exit(self, pod: dict[str, Any], pdir: PodDir) -> None:
        rec = pdir.exit() or {}
        code = int(rec.get("exit_code", 1))
        message = rec.get("start_error") or self.read_message(pod, pdir, code)
        reason = "StartError" if rec.get("start_error") else None
        deadline = pdir.deadline_marker.exists()
        self.patch_status(
            pod,
            podlogic.terminated_status(
                pod,
                code,
                message,
                rec.get("started_at") or _ts(),
                rec.get("finished_at") or _ts(),
                container_reason=reason,
                pod_reason=podlogic.DEADLINE_REASON if deadline else None,
                pod_message=podlogic.DEADLINE_MESSAGE if deadline else None,
            ),
        )

    def patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": status})

    def lookups(self) -> tuple[podlogic.Lookup, podlogic.Lookup]:
        import base64

        from kubernetes.client.rest import ApiException

        def secret(ns: str, name: str) -> Mapping[str, str] | None:
            try:
                s = self.core.read_namespaced_secret(name, ns)
            except ApiException as exc:
                if exc.status in (403, 404):
                    return None
                raise
            return {k: base64.b64decode(v).decode() for k, v in (s.data or {}).items()}

        def configmap(ns: str, name: str) -> Mapping[str, str] | None:
            try:
                cm = self.core.read_namespaced_config_map(name, ns)
            except ApiException as exc:
                if exc.status in (403, 404):
                    return None
                raise
            return dict(cm.data or {})

        return secret, configmap

    def start(self, pod: dict[str, Any], pdir: PodDir) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        c = spec["containers"][0]
        now = _ts()
        command = list(c.get("command") or [])
        if not command:
            self.patch_status(
                pod,
                podlogic.waiting_status(
                    pod,
                    "CreateContainerError",
                    "cairn-local runs a pod's first container as a host process and ignores images: "
                    "set the container's `command` (the image's entrypoint is not known here)",
                    now,
                ),
            )
            return
        secret, configmap = self.lookups()
        try:
            env = podlogic.resolve_env(pod, c, secret, configmap, HOST_IP)
        except podlogic.ConfigError as exc:
            self.patch_status(pod, podlogic.waiting_status(pod, "CreateContainerConfigError", str(exc), now))
            return
        workdir = c.get("workingDir")
        if workdir and not Path(workdir).is_dir():
            self.patch_status(
                pod,
                podlogic.waiting_status(
                    pod,
                    "CreateContainerError",
                    f"workingDir {workdir} does not exist on this host (cairn-local runs pods as host processes)",
                    now,
                ),
            )
            return

        pdir.path.mkdir(parents=True, exist_ok=True)
        (pdir.path / "work").mkdir(exist_ok=True)
        write_json_atomic(
            pdir.path / "pod.json", {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}
        )
        pdir.termination_log.touch()
        tpath = c.get("terminationMessagePath") or podlogic.DEFAULT_TERMINATION_MESSAGE_PATH
        redirected = str(pdir.termination_log)

        def redirect(s: str) -> str:
            return s.replace(tpath, redirected)

        env = {k: redirect(v) for k, v in env.items()}
        argv = [redirect(podlogic.expand(a, env)) for a in command + list(c.get("args") or [])]
        base = {
            "PATH": f"{self.python_bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/root"),
            "HOSTNAME": meta["name"],
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "CAIRN_TERMINATION_MESSAGE_PATH": redirected,
        }
        if "VIRTUAL_ENV" in os.environ:
            base["VIRTUAL_ENV"] = os.environ["VIRTUAL_ENV"]
        full_env = {**base, **env}
        exe = shutil.which(argv[0], path=full_env["PATH"]) if "/" not in argv[0] else argv[0]
        if exe is None:
            self.patch_status(
                pod,
                podlogic.waiting_status(
                    pod,
                    "CreateContainerError",
                    f'executable "{argv[0]}" not found in PATH ({full_env["PATH"]})',
                    now,
                ),
            )
            return
        argv[0] = exe
        (pdir.path / "claimed").write_text(_ts() + "\n")  # from here on, the pod is never started again
        log.info("starting pod %s/%s: %s", meta["namespace"], meta["name"], argv)
        subprocess.Popen(
            [sys.executable, "-m", "cairn_dev.shim", "--pod-dir", str(pdir.path), "--", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=full_env,
            cwd=workdir or str(pdir.path / "work"),
            start_new_session=True,
            close_fds=True,
        )
        # Report Running once the command really runs (the shim records it), as a kubelet does.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            child = _read_json(pdir.path / "child.json")
            if child is not None:
                self.patch_status(pod, podlogic.running_status(pod, child["started_at"]))
                return
            if pdir.exit() is not None:
                return  # it could not start; the next sync reports how it ended
            time.sleep(0.02)

    def log_source(self, ns: str, name: str, container: str) -> LogSource | None:
        """For the kubelet API: the log file of a pod's container on this node."""
        from kubernetes.client.rest import ApiException

        try:
            pod = self.core.read_namespaced_pod(name, ns)
        except ApiException:
            return None
        if pod.spec.node_name != self.node_name or pod.spec.containers[0].name != container:
            return None
        pdir = PodDir(self.root, pod.metadata.uid)

        def finished() -> bool:
            shim = pdir.shim()
            return pdir.exit() is not None or shim is None or not shim.alive()

        return LogSource(pdir.log, finished)

    # ----- main -------------------------------------------------------------------------------------
    def run(self, ready_file: Path | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        node = self.register()
        self.renew_lease(node["metadata"]["uid"])
        threading.Thread(target=self.heartbeat_loop, args=(node["metadata"]["uid"],), daemon=True).start()
        threading.Thread(target=self.watch_loop, daemon=True).start()
        if ready_file:
            ready_file.write_text(_ts())
        log.info("node %s registered; running pods as host processes (no isolation)", self.node_name)
        while not self.stop_event.is_set():
            try:
                self.sync_once()
            except Exception as exc:
                log.warning("sync failed: %s", exc)
            self.wake.wait(RESYNC_EVERY)
            self.wake.clear()
            reap_children()


def reap_children() -> None:
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break


def main(
    argv: list[str] | None = None,
    install_signals: bool = True,
    on_agent: Callable[[Agent], None] | None = None,
) -> int:
    from kubernetes import config

    parser = argparse.ArgumentParser(prog="cairn_dev.standin_node", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node-name", default="cairn-local")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--kubelet-port", type=int, default=0, help="serve container logs on this port (0: off)")
    parser.add_argument("--kubelet-cert", type=Path, help="serving certificate of the kubelet API")
    parser.add_argument("--kubelet-key", type=Path, help="its key")
    parser.add_argument("--client-ca", type=Path, help="CA that signs the API server's client certificate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = Agent(
        config.new_client_from_config(config_file=args.kubeconfig),
        args.node_name,
        args.root,
        kubelet_port=args.kubelet_port,
    )
    if args.kubelet_port:
        if not (args.kubelet_cert and args.kubelet_key and args.client_ca):
            parser.error("--kubelet-port needs --kubelet-cert, --kubelet-key and --client-ca")
        KubeletAPI(args.kubelet_port, args.kubelet_cert, args.kubelet_key, args.client_ca, agent.log_source).start()
    if install_signals:

        def stop(*_: Any) -> None:
            agent.stop_event.set()
            agent.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    if on_agent:
        on_agent(agent)
    agent.run()
    log.info("node agent stopped; pod processes keep running, as containers outlive a kubelet restart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
