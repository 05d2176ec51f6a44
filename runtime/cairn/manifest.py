"""`cairn manifest module:job`: the Kubernetes `Job` manifest (cairn.dev/v1alpha1) of a Python job.

Op names become DNS-1123 labels (``op_2`` -> ``op-2``); the step entrypoint maps them back.

What Dagster's definitions say that a cluster can carry (the pure functions below, each table-tested):

- retry policies (the node's, else its op's, else the job's ``op_retry_policy``) become the op's
  ``retries``: ``limit`` is ``max_retries``; the cluster's backoff ``min(cap, base * factor**(n - 1))`` is
  chosen so that the first two delays and the last are Dagster's (``base`` the delay, ``factor`` 1 with no
  backoff, 2 LINEAR, 3 EXPONENTIAL, ``cap`` Dagster's delay before the last retry), in whole seconds rounded
  up; jitter is not carried (`retries_of`);
- op tags (with the invocation's, ``op.tag({...})()``) become the pod's labels ``tag.cairn.dev/<key>`` where
  key and value are label-safe, else annotations ``tag.cairn.dev/<key>``; every tag, exactly, is also in the
  annotation ``cairn.dev/tags`` (JSON). The job's tags do the same on the Job's podTemplate under
  ``run-tag.cairn.dev/`` and ``cairn.dev/run-tags`` (`pod_metadata`);
- the config of the resources an op needs (its ``required_resource_keys`` and its outputs' IO managers),
  from the job's default run config (``@job(config={"resources": ...})``), goes to the op's environment as
  ``CAIRN_RESOURCES_CONFIG`` (JSON, Dagster's ``{key: {"config": ...}}``) (`resources_config_of`).

Fan-out: an op's dynamic outputs are listed in ``dynamicOutputs``; a mapped op's inputs read the dynamic
output (``split.items``, or ``split`` for a dynamic ``result``) or a mapped op of the same dimension as
any input does (the operator maps an op whose input reads either); an input that collects a mapped op
goes to ``collect: {input: "proc"}`` (``proc.out`` for an output other than ``result``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import yaml

from cairn.contract import API_VERSION, GROUP, JOB
from cairn.contract import key as cairn_key
from cairn.definitions import JobDefinition, Node
from cairn.retries import Backoff, RetryPolicy, calculate_delay
from cairn.s3io import DEFAULT_PREFIX

#: The CRD's bound of a Job op's ``retries.limit`` (operator/cairn_operator/models.py: Retries).
MAX_CLUSTER_RETRIES = 20
#: Labels and annotations a podTemplate may carry (the CRD's MAX_LABELS), and one left for the JSON annotation.
MAX_POD_METADATA = 64
#: Where op and job tags go on a pod: label and annotation prefixes, and the annotations holding them all.
OP_TAG_PREFIX = f"tag.{GROUP}/"
RUN_TAG_PREFIX = f"run-tag.{GROUP}/"
OP_TAGS_ANNOTATION = cairn_key("tags")
RUN_TAGS_ANNOTATION = cairn_key("run-tags")
RESOURCES_ENV = "CAIRN_RESOURCES_CONFIG"
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_FACTOR = {None: 1.0, Backoff.LINEAR: 2.0, Backoff.EXPONENTIAL: 3.0}


def dns_name(name: str) -> str:
    """A node name as a DNS-1123 label: lower case, `_` and `.` as `-`, at most 63 characters."""
    out = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63].strip("-")
    return out or "op"


def retries_of(policy: RetryPolicy | None, where: str = "op") -> dict[str, Any] | None:
    """A Dagster retry policy as a Job op's ``retries`` (None: no policy, no retries). The cluster's delay
    after attempt n is ``min(cap, base * factor**(n - 1))``: base is Dagster's first delay, factor the ratio
    of its second to its first, cap its delay before the last retry; so delays 1, 2 and the last are
    Dagster's (all of them up to 3 retries), in whole seconds rounded up; jitter is not carried."""
    if policy is None:
        return None
    if policy.max_retries > MAX_CLUSTER_RETRIES:
        raise ValueError(
            f"{where}: RetryPolicy(max_retries={policy.max_retries}) is more retries than a Kubernetes Job op "
            f"allows ({MAX_CLUSTER_RETRIES}); lower max_retries to run it on a cluster"
        )
    base = float(policy.delay or 0)
    last = calculate_delay(max(1, policy.max_retries), policy.backoff, None, base, lambda: 0.0)
    return {
        "limit": policy.max_retries,
        "backoff": {
            "durationSeconds": math.ceil(base),
            "factor": _FACTOR[policy.backoff] if base else 1.0,
            "maxDurationSeconds": math.ceil(last),
        },
    }


def pod_metadata(tags: Mapping[str, str], prefix: str, annotation: str) -> dict[str, dict[str, str]]:
    """Tags as a pod's labels and annotations: ``<prefix><key>`` a label where key and value are label-safe,
    else an annotation (value not label-safe); every tag, exactly, in the JSON annotation `annotation` (keys
    that are no label name are only there). At most MAX_POD_METADATA - 1 of each, in key order."""
    if not tags:
        return {}
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {annotation: json.dumps(dict(tags), sort_keys=True)}
    for key in sorted(tags):
        value = str(tags[key])
        if not _LABEL_NAME.match(key):
            continue
        if _LABEL_VALUE.match(value) and len(labels) < MAX_POD_METADATA - 1:
            labels[prefix + key] = value
        elif len(annotations) < MAX_POD_METADATA:
            annotations[prefix + key] = value
    return {"labels": labels, "annotations": annotations} if labels else {"annotations": annotations}


def resources_config_of(node: Node, run_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The section of `run_config`'s ``resources`` that the node's op needs: its required resource keys and
    the IO managers of its outputs (``{key: {"config": ...}}``, Dagster's shape)."""
    section = (run_config or {}).get("resources") or {}
    keys = set(getattr(node.op, "required_resource_keys", ()) or ())
    keys |= {getattr(out, "io_manager_key", None) or "io_manager" for out in node.op.outs.values()}
    return {k: section[k] for k in sorted(keys) if k in section}


def _op_extras(job: JobDefinition, n: str, node: Node) -> dict[str, Any]:
    """What an op's entry carries of Dagster's definitions: retries, tags as pod metadata, resources' config."""
    extra: dict[str, Any] = {}
    retries = retries_of(job.retry_policy(n), f"op {n}")
    if retries is not None:
        extra["retries"] = retries
    meta = pod_metadata(getattr(node, "tags", None) or node.op.tags, OP_TAG_PREFIX, OP_TAGS_ANNOTATION)
    if meta:
        extra["podTemplate"] = meta
    resources = resources_config_of(node, getattr(job, "default_config", None))
    if resources:
        extra["env"] = [{"name": RESOURCES_ENV, "value": json.dumps(resources, sort_keys=True)}]
    return extra


def job_manifest(
    job: JobDefinition,
    ref: str,
    image: str,
    secret: str = "cairn-s3",
    name: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> dict[str, Any]:
    names = {n: dns_name(n) for n in job.nodes}
    if len(set(names.values())) != len(names):
        dupes = sorted(n for n in names if list(names.values()).count(names[n]) > 1)
        raise ValueError(f"op names {dupes} map to the same Kubernetes name; rename one of them")
    ops: list[dict[str, Any]] = []

    def input_ref(node: str, output: str) -> str:
        return names[node] if output == "result" else f"{names[node]}.{output}"

    for n, node in job.nodes.items():
        op: dict[str, Any] = {"name": names[n], "codeVersion": node.op.code_version}
        if node.inputs:
            op["inputs"] = {inp: input_ref(h.node, h.output) for inp, h in node.inputs.items()}
        if node.collects:
            op["collect"] = {inp: input_ref(h.node, h.output) for inp, h in node.collects.items()}
        outs = list(node.op.outs)
        if outs != ["result"]:
            op["outputs"] = outs
        optional = [o for o, d in node.op.outs.items() if not d.is_required]
        if optional:
            op["optionalOutputs"] = optional
        if node.op.dynamic_outs:
            op["dynamicOutputs"] = list(node.op.dynamic_outs)
        op.update(_op_extras(job, n, node))
        ops.append(op)
    spec: dict[str, Any] = {
        "image": image,
        "python": {"job": ref},
        "storage": {"secretRef": {"name": secret}, "prefix": prefix},
    }
    run_meta = pod_metadata(getattr(job, "tags", None) or {}, RUN_TAG_PREFIX, RUN_TAGS_ANNOTATION)
    if run_meta:
        spec["podTemplate"] = run_meta
    spec["ops"] = ops
    return {
        "apiVersion": API_VERSION,
        "kind": JOB.kind,
        "metadata": {"name": name or dns_name(job.name)},
        "spec": spec,
    }


#: Strings that YAML 1.1 (what kubectl reads) takes for booleans: an input named `n` would become `false`.
_YAML11_BOOL = re.compile(r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")


class _KubeDumper(yaml.SafeDumper):
    """Quotes strings that a YAML 1.1 reader would take for booleans."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = '"' if _YAML11_BOOL.match(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_KubeDumper.add_representer(str, _str)


def to_yaml(doc: Any, many: bool = False) -> str:
    """`doc` (or each of `many` docs) as YAML that kubectl reads back as written (see _YAML11_BOOL)."""
    if many:
        return yaml.dump_all(doc, Dumper=_KubeDumper, sort_keys=False)
    return yaml.dump(doc, Dumper=_KubeDumper, sort_keys=False)
