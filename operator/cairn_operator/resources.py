"""Kubernetes objects the operator makes, built as plain dicts by pure functions.

Pod names are deterministic (run, step, attempt and a short hash of the Run's uid, at most 63
characters), so creating a pod twice meets 409 and adopts the first one. Every pod carries an owner
reference to its Run and the labels `cairn.dev/run`, `cairn.dev/step`, `cairn.dev/job`,
`cairn.dev/attempt`: their values are the names themselves, never truncated (selectors find pods and
Runs by them), which is valid because the CRDs refuse a Job, Run or Reexecution whose name is longer
than 63 characters (models.NAME_RULES) and op names are DNS-1123 labels. S3 credentials reach pods only
as `secretKeyRef` env entries.

Step pods are hardened by default, so they are admitted in namespaces that enforce the `restricted`
Pod Security Standard: the step ServiceAccount (unless a podTemplate names another), no API token
mounted, non-root uid/gid 65532, RuntimeDefault seccomp, no privilege escalation, all capabilities
dropped. A podTemplate's `securityContext` replaces the pod-level defaults field by field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

# The label keys, re-exported (`as`) for the operator's modules that import them from here: defined in cairn.contract.
from cairn.contract import ANNOTATION_STEP as ANNOTATION_STEP
from cairn.contract import API_VERSION, STEP_PROTOCOL
from cairn.contract import LABEL_ATTEMPT as LABEL_ATTEMPT
from cairn.contract import LABEL_JOB as LABEL_JOB
from cairn.contract import LABEL_PARENT as LABEL_PARENT
from cairn.contract import LABEL_RETRY as LABEL_RETRY
from cairn.contract import LABEL_ROOT as LABEL_ROOT
from cairn.contract import LABEL_RUN as LABEL_RUN
from cairn.contract import LABEL_RX as LABEL_RX
from cairn.contract import LABEL_STEP as LABEL_STEP
from cairn.dynamic import node_of, split_step
from cairn.s3io import object_key
from cairn.step import context_env
from cairn_operator.graph import OpGraph, output_location
from cairn_operator.models import JobSpec, OpSpec, StepOverride

#: Labels and annotations by which GitOps tools (Argo CD, Flux) track what they applied: never copied
#: onto an object the operator makes, or the tool would take it for its own (and prune or diff it).
GITOPS_KEYS = frozenset({"app.kubernetes.io/instance"})
GITOPS_PREFIXES = ("argocd.argoproj.io/", "kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/")
#: The ServiceAccount step pods run as, unless a podTemplate names one (CAIRN_STEP_SERVICE_ACCOUNT).
STEP_SERVICE_ACCOUNT = "cairn-step"
STEP_UID = 65532
#: The pod securityContext of every step pod, before a podTemplate's securityContext.
POD_SECURITY_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "runAsNonRoot": True,
        "runAsUser": STEP_UID,
        "runAsGroup": STEP_UID,
        "seccompProfile": MappingProxyType({"type": "RuntimeDefault"}),
    }
)
#: The step container's securityContext (readOnlyRootFilesystem stays off: ops write temporary files).
CONTAINER_SECURITY: Mapping[str, Any] = MappingProxyType(
    {"allowPrivilegeEscalation": False, "capabilities": MappingProxyType({"drop": ("ALL",)})}
)


def thaw(value: Any) -> Any:
    """A fresh, mutable copy of a constant table (read-only mappings and tuples become dicts and lists)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def _dns(part: str, n: int) -> str:
    part = re.sub(r"[^a-z0-9-]", "-", part.lower())[:n].strip("-")
    return part or "x"


def without_gitops(meta: Mapping[str, str] | None) -> dict[str, str]:
    """Labels or annotations without the GitOps tools' tracking keys (GITOPS_KEYS, GITOPS_PREFIXES)."""
    return {k: v for k, v in (meta or {}).items() if k not in GITOPS_KEYS and not k.startswith(GITOPS_PREFIXES)}


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """The controller owner reference to one of cairn's objects: deleting the owner deletes the object."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_name(run: str, run_uid: str, step: str, attempt: int) -> str:
    """`<run>-<step>-<attempt>-<hash>`, at most 63 characters, the same every time for the same inputs."""
    digest = hashlib.sha256(f"{run_uid}/{run}/{step}/{attempt}".encode()).hexdigest()[:5]
    tail = f"-{attempt}-{digest}"
    room = 63 - len(tail)
    step_part = _dns(step, max(8, room // 2))
    run_part = _dns(run, room - len(step_part) - 1)
    return f"{run_part}-{step_part}{tail}"


def run_key(run: str, run_uid: str) -> str:
    """The run id in storage keys: the Run's name plus its uid's start, so a re-created Run never
    overwrites the outputs of an earlier one with the same name."""
    return f"{run}.{run_uid[:8]}" if run_uid else run


def step_context(
    namespace: str, spec: JobSpec, inputs: Mapping[str, Mapping[str, Any]], config: Any, attempt: int
) -> dict[str, Any]:
    """What a step pod is told (the step protocol): where storage is, its inputs, its op's config and which
    attempt it is (1 for the first; its failure hooks run on the last only, as Dagster's)."""
    storage: dict[str, Any] = {"kind": "s3", "prefix": spec.storage.prefix}
    if spec.storage.bucket:
        storage["bucket"] = spec.storage.bucket
    if spec.storage.endpoint:
        storage["endpoint"] = spec.storage.endpoint
    return {
        "protocol": STEP_PROTOCOL,
        "namespace": namespace,
        "storage": storage,
        "inputs": dict(inputs),
        "config": config,
        "attempt": attempt,
    }


def storage_env(spec: JobSpec) -> list[dict[str, Any]]:
    secret = spec.storage.secretRef.name

    def ref(var: str, optional: bool) -> dict[str, Any]:
        return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var, "optional": optional}}}

    env = [ref("AWS_ACCESS_KEY_ID", False), ref("AWS_SECRET_ACCESS_KEY", False), ref("AWS_REGION", True)]
    env.append(
        {"name": "AWS_ENDPOINT_URL", "value": spec.storage.endpoint}
        if spec.storage.endpoint
        else ref("AWS_ENDPOINT_URL", True)
    )
    env.append(
        {"name": "CAIRN_S3_BUCKET", "value": spec.storage.bucket}
        if spec.storage.bucket
        else ref("CAIRN_S3_BUCKET", False)
    )
    return env


def _dump(items: Iterable[BaseModel]) -> list[dict[str, Any]]:
    """Typed podTemplate entries (tolerations, volumes, mounts) as the core API's dicts: unset fields left
    out, set but empty ones kept (`emptyDir: {}`)."""
    return [i.model_dump(exclude_none=True) for i in items]


def _merge_template(pod_spec: dict[str, Any], meta: dict[str, Any], container: dict[str, Any], *templates: Any) -> None:
    for t in templates:
        if t is None:
            continue
        if t.nodeSelector:
            pod_spec["nodeSelector"] = {**pod_spec.get("nodeSelector", {}), **t.nodeSelector}
        if t.tolerations:
            pod_spec["tolerations"] = [*pod_spec.get("tolerations", []), *_dump(t.tolerations)]
        if t.serviceAccountName:
            pod_spec["serviceAccountName"] = t.serviceAccountName
        if t.volumes:
            pod_spec["volumes"] = [*pod_spec.get("volumes", []), *_dump(t.volumes)]
        if t.volumeMounts:
            container["volumeMounts"] = [*container.get("volumeMounts", []), *_dump(t.volumeMounts)]
        if t.priorityClassName:
            pod_spec["priorityClassName"] = t.priorityClassName
        if t.labels:
            meta["labels"] = {**t.labels, **meta["labels"]}  # ours win
        if t.annotations:
            meta["annotations"] = {**meta.get("annotations", {}), **t.annotations}
        if t.securityContext:
            # Field by field: a template that sets runAsUser keeps the default seccompProfile.
            pod_spec["securityContext"] = {
                **pod_spec.get("securityContext", {}),
                **t.securityContext.model_dump(exclude_none=True),
            }


def step_pod(
    *,
    run: str,
    run_uid: str,
    namespace: str,
    job_name: str,
    spec: JobSpec,
    graph: OpGraph,
    step: str,
    attempt: int,
    inputs: Mapping[str, Mapping[str, Any]],
    config: Any,
    override: StepOverride | None = None,
    service_account: str = STEP_SERVICE_ACCOUNT,
) -> dict[str, Any]:
    """The pod of one attempt of one step; it runs as `service_account` unless a podTemplate names one."""
    op: OpSpec = graph.ops[step]
    name = pod_name(run, run_uid, step, attempt)
    rid = run_key(run, run_uid)
    ctx = step_context(namespace, spec, inputs, config, attempt)
    wiring = graph.deps[step]
    if node_of(step) != step or any("[" in f"{inp}{up}{out}" for inp, (up, out) in wiring.items()):
        # the concrete wiring: which upstream step and output each input (a per-key value, a collected list) reads
        ctx["deps"] = {inp: [up, out] for inp, (up, out) in graph.deps[step].items()}
        collect: dict[str, list[list[str]]] = {}
        for inp, (up, out) in graph.deps[step].items():
            collected, key = split_step(inp)
            if key is not None:  # `scores[a]`: one key's value of the collected input `scores`
                collect.setdefault(collected, []).append([key, f"{up}.{out}"])
        if collect:
            ctx["collect"] = collect
    dynamic_flags = [f for o in op.dynamicOutputs for f in ("--dynamic-output", o)]
    if op.command:
        command = [
            "python",
            "-m",
            "cairn.step",
            "exec",
            "--run-id",
            rid,
            "--step",
            step,
            "--outputs",
            ",".join(op.outputs),
            "--optional-outputs",
            ",".join(op.optionalOutputs),
            *dynamic_flags,
            "--",
            *op.command,
            *(op.args or []),
        ]
    else:
        assert spec.python is not None  # guaranteed by the CRD's CEL rule
        command = [
            "python",
            "-m",
            "cairn.step",
            "run",
            "--job",
            spec.python.job,
            "--run-id",
            rid,
            "--step",
            step,
            *(op.args or []),
        ]
    extra = [e.model_dump(exclude_none=True) for e in (op.env or [])]
    if override and override.env:
        replaced = {e.name for e in override.env}
        extra = [e for e in extra if e["name"] not in replaced]
        extra += [e.model_dump(exclude_none=True) for e in override.env]
    env = [
        *({"name": k, "value": v} for k, v in context_env(ctx).items()),
        *storage_env(spec),
        *extra,
    ]
    container: dict[str, Any] = {
        "name": "step",
        "image": (override.image if override and override.image else None) or op.image or spec.image,
        "command": command,
        "env": env,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": thaw(CONTAINER_SECURITY),
    }
    if op.resources:
        container["resources"] = op.resources.model_dump(exclude_none=True)
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {
            LABEL_RUN: run,
            LABEL_STEP: node_of(step),
            LABEL_JOB: job_name,
            LABEL_ATTEMPT: str(attempt),
            "app.kubernetes.io/managed-by": "cairn",
        },
        "ownerReferences": [owner_reference("Run", run, run_uid)],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "securityContext": thaw(POD_SECURITY_DEFAULTS),
        "containers": [container],
    }
    if op.timeoutSeconds:
        pod_spec["activeDeadlineSeconds"] = op.timeoutSeconds
    _merge_template(pod_spec, meta, container, spec.podTemplate, op.podTemplate)
    if node_of(step) != step:
        meta.setdefault("annotations", {})[ANNOTATION_STEP] = step
    pod_spec["tolerations"] = with_node_lost_tolerations(pod_spec.get("tolerations") or [])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}


#: Seconds a step pod stays bound to a node that stopped answering (NotReady or unreachable) before it
#: is evicted, and its step retried per its retries (an Interrupted attempt). Kubernetes' default is 300;
#: a podTemplate toleration for either key sets it per Job or op.
NODE_LOST_SECONDS = 60
NODE_LOST_KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def tolerates(toleration: Mapping[str, Any], key: str) -> bool:
    """Whether a toleration matches taints with `key`: by that key, or as a toleration of every taint."""
    return toleration.get("key") == key or (not toleration.get("key") and toleration.get("operator") == "Exists")


def with_node_lost_tolerations(tolerations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`tolerations` plus NoExecute tolerations of a lost node for NODE_LOST_SECONDS, for each key the
    podTemplate does not tolerate itself (by that key, or by a toleration of every taint)."""

    extra = [
        {"key": k, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": NODE_LOST_SECONDS}
        for k in NODE_LOST_KEYS
        if not any(tolerates(t, k) for t in tolerations)
    ]
    return [*tolerations, *extra]


def step_service_account(namespace: str, name: str) -> dict[str, Any]:
    """The ServiceAccount step pods run as, as the operator creates it where it is missing: it grants
    nothing (no RoleBinding names it) and mounts no token."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "cairn"}},
        "automountServiceAccountToken": False,
    }


def service_accounts_to_ensure(pods: Iterable[Mapping[str, Any]], step_account: str) -> set[tuple[str, str]]:
    """(namespace, name) of the step ServiceAccount for each namespace where one of `pods` runs as it
    (pods whose podTemplate names another ServiceAccount need none: that one is the user's)."""
    return {
        (p["metadata"]["namespace"], step_account) for p in pods if p["spec"].get("serviceAccountName") == step_account
    }


def pod_step(pod: Mapping[str, Any]) -> str:
    """The step a pod (as made by `step_pod`) runs: its annotated `op[key]`, else its step label."""
    meta = pod["metadata"]
    return str((meta.get("annotations") or {}).get(ANNOTATION_STEP) or meta["labels"][LABEL_STEP])


def step_inputs(graph: OpGraph, step: str, steps_status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Where each input of `step` is: the key recorded in the upstream step's status (for one key's value
    of a dynamic output, where its step stored it: see `graph.output_location`)."""
    out: dict[str, dict[str, Any]] = {}
    for name, (up, output) in graph.deps[step].items():
        loc = output_location(steps_status.get(up) or {}, output)
        if loc is not None:
            entry = out.setdefault(f"{up}.{output}", {"key": loc["key"], "names": []})
            entry["names"].append(name)
    return out


def object_uri(bucket: str, prefix: str, key: str) -> str:
    """``s3://<bucket>/<full object key>`` of an output whose status `key` is relative to the storage
    `prefix`, joined by the runtime's own :func:`cairn.s3io.object_key`."""
    return f"s3://{bucket}/{object_key(prefix, key)}"


def needs_locations(steps_status: Mapping[str, Any]) -> bool:
    """Whether an output in a Run's `status.steps` has a key but no `uri` yet."""
    return any(
        "key" in loc and "uri" not in loc
        for st in steps_status.values()
        for loc in ((st or {}).get("outputs") or {}).values()
    )


def add_locations(outputs: Iterable[dict[str, Any]], bucket: str | None, prefix: str) -> None:
    """Add `bucket` and `uri` (see object_uri) to each output location that has a `key`, in place;
    nothing when the bucket is unknown (never guessed). The relative `key` is kept as it is."""
    if not bucket:
        return
    for loc in outputs:
        if loc.get("key"):
            loc["bucket"] = bucket
            loc["uri"] = object_uri(bucket, prefix, str(loc["key"]))


def step_output_locations(steps_status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The output locations (dicts, to be changed in place) recorded in a Run's `status.steps`."""
    return [loc for st in steps_status.values() for loc in ((st or {}).get("outputs") or {}).values()]


def _digest(value: Any, n: int) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:n]


def step_versions(
    spec: JobSpec, config: Mapping[str, Any] | None, overrides: Mapping[str, StepOverride] | None
) -> dict[str, str]:
    """Each op's version in a Run: its code (the op's `codeVersion`; else a hash of a command op's command
    and args, or the Python entrypoint), its image as referenced (pin it by digest, `image@sha256:...`,
    for a moved tag to count) and a hash of its config: `CODE+img:IMAGE+cfg:HASH`. A Run records the
    version of each step that succeeded; a Stale re-execution compares them with the Job as it is now."""
    out = {}
    entries = (config or {}).get("ops") or {}
    for op in spec.ops:
        override = (overrides or {}).get(op.name)
        image = (override.image if override and override.image else None) or op.image or spec.image or ""
        if op.codeVersion:
            code = op.codeVersion
        elif op.command:
            code = "cmd:" + _digest([op.command, op.args or []], 12)
        else:
            code = "py:" + (spec.python.job if spec.python else "")
        entry = entries.get(op.name) if isinstance(entries, Mapping) else None
        op_config = entry.get("config") if isinstance(entry, Mapping) else None
        out[op.name] = f"{code}+img:{image}+cfg:{_digest(op_config, 8)}"
    return out
