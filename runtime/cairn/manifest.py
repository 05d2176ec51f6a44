"""`cairn manifest module:job`: the Kubernetes `Job` manifest (cairn.dev/v1alpha1) of a Python job.

Op names become DNS-1123 labels (``op_2`` -> ``op-2``); the step entrypoint maps them back.

Fan-out: an op's dynamic outputs are listed in ``dynamicOutputs``; a mapped op's inputs read the dynamic
output (``split.items``, or ``split`` for a dynamic ``result``) or a mapped op of the same dimension as
any input does (the operator maps an op whose input reads either); an input that collects a mapped op
goes to ``collect: {input: "proc"}`` (``proc.out`` for an output other than ``result``).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from cairn.contract import API_VERSION, JOB
from cairn.definitions import JobDefinition
from cairn.s3io import DEFAULT_PREFIX


def dns_name(name: str) -> str:
    """A node name as a DNS-1123 label: lower case, `_` and `.` as `-`, at most 63 characters."""
    out = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63].strip("-")
    return out or "op"


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
        ops.append(op)
    return {
        "apiVersion": API_VERSION,
        "kind": JOB.kind,
        "metadata": {"name": name or dns_name(job.name)},
        "spec": {
            "image": image,
            "python": {"job": ref},
            "storage": {"secretRef": {"name": secret}, "prefix": prefix},
            "ops": ops,
        },
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
