"""What one `cairn dev up` started and made (DIR/state.json), its components, and which of them `up` may
start again in place (the pure `restart_plan`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cairn_dev import procs

STATE_FILE = "state.json"
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


def _blocked_reason(state: State, name: str, down: list[str], netns_present: bool) -> str | None:
    """Why the down component `name` cannot be started again in place; None when it can."""
    missing = [p for p in COMPONENT_PORTS.get(name, ()) if p not in state.ports]
    if name not in state.procs:
        return "`up` did not finish"
    if name not in START_ORDER:
        return "cairn dev does not know this component"
    if missing:
        return f"state.json records no {', '.join(missing)} port for it"
    if name == "containerd":
        return "its mount namespace, where the kubelet and the containers live, ended with it"
    if name in CONTAINERD_NODE and not netns_present:
        return "the node's network namespace is gone"
    if name == "kubelet" and "containerd" in down:
        return "it runs in containerd's mount namespace, which is gone"
    return None


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
        reason = _blocked_reason(state, name, down, netns_present)
        if reason is None:
            restart.append(name)
        else:
            blocked.append((name, reason))
    return RestartPlan(down=tuple(down), restart=tuple(restart), blocked=tuple(blocked))


def describe(state: State, plan: RestartPlan) -> str:
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


#: Modules a state.json written before the builder became its own package (cairn.dev) names in its
#: command lines, and where they are now.
MOVED_MODULES = {
    "cairn.dev.node": "cairn_dev.standin_node",
    "cairn.dev.portbridge": "cairn_dev.portbridge",
    "cairn.dev.shim": "cairn_dev.shim",
}


def current_argv(argv: list[str]) -> list[str]:
    """A recorded command line as it runs today: `python -m <module>` of a moved module names its new place."""
    return [MOVED_MODULES.get(word, word) if i and argv[i - 1] == "-m" else word for i, word in enumerate(argv)]
