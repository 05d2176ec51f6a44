"""Pure decisions of the local node agent: what to do with a pod, the environment its command gets,
and the pod status to report, as the kubelet would.

Nothing here talks to the API server or the disk; `cairn_dev.standin_node` gathers what it observes into
`PodView` and `LocalView`, calls `decide`, and carries the `Action` out.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
DEADLINE_REASON = "DeadlineExceeded"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
LOST_REASON = "ContainerStatusUnknown"
LOST_MESSAGE = "The container could not be located when the pod was terminated"


class Action(enum.Enum):
    START = "start"  # run the first container's command
    REPORT_RUNNING = "report-running"
    REPORT_EXIT = "report-exit"  # the command ended: Succeeded or Failed
    REPORT_LOST = "report-lost"  # started once, but its process and exit record are gone: never rerun
    KILL_DEADLINE = "kill-deadline"  # activeDeadlineSeconds passed
    KILL_DELETED = "kill-deleted"  # the pod is being deleted while its command runs
    FINALIZE_DELETE = "finalize-delete"  # nothing runs any more: delete the pod object for good
    NOTHING = "nothing"


TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class PodView:
    """What the API server says of a pod bound to this node."""

    uid: str
    phase: str
    deleting: bool
    active_deadline: int | None
    start_time: dt.datetime | None
    container_started: bool  # the API already shows the container running or terminated

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> PodView:
        meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
        started = False
        for cs in status.get("containerStatuses") or []:
            state = cs.get("state") or {}
            started = started or "running" in state or "terminated" in state
        return cls(
            uid=meta["uid"],
            phase=status.get("phase", "Pending"),
            deleting=meta.get("deletionTimestamp") is not None,
            active_deadline=spec.get("activeDeadlineSeconds"),
            start_time=parse_time(status.get("startTime")),
            container_started=started,
        )


@dataclass(frozen=True)
class LocalView:
    """What the node's own records say of the pod."""

    claimed: bool  # the agent decided to run it (written before the process starts)
    running: bool  # its shim process is alive
    exited: bool  # the shim recorded how the command ended


def decide(pod: PodView, local: LocalView, now: dt.datetime) -> Action:
    """The one thing to do next for a pod; calling it again after doing it moves the pod on."""
    if pod.deleting:
        return Action.KILL_DELETED if local.running and not local.exited else Action.FINALIZE_DELETE
    if pod.phase in TERMINAL_PHASES:
        return Action.NOTHING
    if not local.claimed:
        # A pod the API shows as started, of which this node has no record, must not run again.
        return Action.REPORT_LOST if pod.container_started else Action.START
    if local.exited:
        return Action.REPORT_EXIT
    if not local.running:
        return Action.REPORT_LOST
    if deadline_passed(pod, now):
        return Action.KILL_DEADLINE
    if pod.phase != "Running":
        return Action.REPORT_RUNNING
    return Action.NOTHING


def deadline_passed(pod: PodView, now: dt.datetime) -> bool:
    if pod.active_deadline is None or pod.start_time is None:
        return False
    return (now - pod.start_time).total_seconds() >= pod.active_deadline


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def fmt_time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----- environment ---------------------------------------------------------------------------------


class ConfigError(Exception):
    """The container's configuration cannot be resolved (kubelet: CreateContainerConfigError)."""


Lookup = Callable[[str, str], Mapping[str, str] | None]  # (namespace, name) -> data, or None if absent

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known names are replaced, unknown ones kept, `$$` escapes `$`."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, value)


def field_ref(pod: Mapping[str, Any], path: str, host_ip: str) -> str:
    meta, spec = pod["metadata"], pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": host_ip,
        "status.podIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def resolve_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    secret: Lookup,
    configmap: Lookup,
    host_ip: str = "127.0.0.1",
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom first, then env in order."""
    ns = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = {}

    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, lookup in (("configMapRef", configmap), ("secretRef", secret)):
            ref = src.get(kind)
            if ref is None:
                continue
            data = lookup(ns, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                what = "configmap" if kind == "configMapRef" else "secret"
                raise ConfigError(f'{what} "{ref["name"]}" not found')
            for k, v in data.items():
                env[prefix + k] = v

    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(item.get("value", ""), env)
            continue
        vf = item["valueFrom"]
        if "secretKeyRef" in vf or "configMapKeyRef" in vf:
            is_secret = "secretKeyRef" in vf
            ref = vf["secretKeyRef" if is_secret else "configMapKeyRef"]
            data = (secret if is_secret else configmap)(ns, ref["name"])
            what = "secret" if is_secret else "configmap"
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                if data is None:
                    raise ConfigError(f'{what} "{ref["name"]}" not found')
                raise ConfigError(f"couldn't find key {ref['key']} in {what.capitalize()} {ns}/{ref['name']}")
            env[name] = data[ref["key"]]
        elif "fieldRef" in vf:
            env[name] = field_ref(pod, vf["fieldRef"]["fieldPath"], host_ip)
        elif "resourceFieldRef" in vf:
            res = vf["resourceFieldRef"]["resource"]
            kind, _, rname = res.partition(".")
            value = ((container.get("resources") or {}).get(kind) or {}).get(rname)
            env[name] = str(value) if value is not None else "0"
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom {sorted(vf)}")
    return env


# ----- status --------------------------------------------------------------------------------------


def termination_message(file_text: str, log_text: str, policy: str, exit_code: int) -> str:
    """The kubelet's rule: the file's content (at most 4 KiB); with FallbackToLogsOnError, the log's
    tail when the file is empty and the container failed."""
    msg = file_text[:MAX_TERMINATION_MESSAGE]
    if not msg.strip() and policy == "FallbackToLogsOnError" and exit_code != 0:
        lines = log_text.splitlines()[-FALLBACK_LOG_LINES:]
        msg = "\n".join(lines)[-FALLBACK_LOG_BYTES:]
    return msg


def _conditions(ready: bool, now: str, reason: str | None = None) -> list[dict[str, Any]]:
    conds: list[dict[str, Any]] = [
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
    ]
    for t in ("ContainersReady", "Ready"):
        c: dict[str, Any] = {"type": t, "status": "True" if ready else "False", "lastTransitionTime": now}
        if reason:
            c["reason"] = reason
        conds.append(c)
    return conds


def _addresses(host_ip: str) -> dict[str, Any]:
    return {"hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": host_ip, "podIPs": [{"ip": host_ip}]}


def _container_status(
    pod: Mapping[str, Any], ready: bool, state: dict[str, Any], created: bool = True
) -> dict[str, Any]:
    """The first container's status entry; without `created`, no containerID (nothing was started)."""
    c = pod["spec"]["containers"][0]
    entry: dict[str, Any] = {
        "name": c["name"],
        "image": c.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": ready,
        "restartCount": 0,
    }
    if created:
        entry["containerID"] = container_id(pod)
    entry["state"] = state
    return entry


def container_id(pod: Mapping[str, Any]) -> str:
    return f"cairn-local://{pod['metadata']['uid']}"


def running_status(pod: Mapping[str, Any], started_at: str, host_ip: str = "127.0.0.1") -> dict[str, Any]:
    return {
        "phase": "Running",
        "startTime": (pod.get("status") or {}).get("startTime") or started_at,
        **_addresses(host_ip),
        "conditions": _conditions(True, started_at),
        "containerStatuses": [_container_status(pod, True, {"running": {"startedAt": started_at}})],
    }


def waiting_status(pod: Mapping[str, Any], reason: str, message: str, now: str) -> dict[str, Any]:
    return {
        "phase": "Pending",
        "startTime": (pod.get("status") or {}).get("startTime") or now,
        **_addresses("127.0.0.1"),
        "conditions": _conditions(False, now, "ContainersNotReady"),
        "containerStatuses": [
            _container_status(pod, False, {"waiting": {"reason": reason, "message": message}}, created=False)
        ],
    }


def terminated_status(
    pod: Mapping[str, Any],
    exit_code: int,
    message: str,
    started_at: str,
    finished_at: str,
    pod_reason: str | None = None,
    pod_message: str | None = None,
    container_reason: str | None = None,
    host_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    terminated: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": container_reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": started_at,
        "finishedAt": finished_at,
        "containerID": container_id(pod),
    }
    if message:
        terminated["message"] = message
    status: dict[str, Any] = {
        "phase": "Succeeded" if exit_code == 0 and pod_reason is None else "Failed",
        "startTime": (pod.get("status") or {}).get("startTime") or started_at,
        **_addresses(host_ip),
        "conditions": _conditions(False, finished_at, "PodCompleted"),
        "containerStatuses": [_container_status(pod, False, {"terminated": terminated})],
    }
    if pod_reason:
        status["reason"] = pod_reason
    if pod_message:
        status["message"] = pod_message
    return status
