"""Generate the CRDs in `crds/` from the pydantic models; `--check` fails when the files drift.

pydantic's JSON schema is turned into a *structural* OpenAPI v3 schema as the API server wants it:
references inlined, optional fields as plain properties (no `anyOf` with null), free-form maps as
`x-kubernetes-preserve-unknown-fields`, int-or-string values as `x-kubernetes-int-or-string` (keeping
the string's pattern and the integer's minimum, which apply only to their own type). Constrained map
keys (pydantic's `patternProperties` and `propertyNames`), which a structural schema cannot state, become
a CEL rule on the map; a model's own rules (`json_schema_extra` in its config) stay on its schema
wherever it is used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import BaseModel

from cairn.contract import GROUP, JOB, LABEL_PARENT, REEXECUTION, RUN, VERSION, Resource
from cairn_operator import models

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
CHART_CRD_DIR = Path(__file__).resolve().parents[2] / "charts" / "cairn" / "crds"
DROP = frozenset({"title", "$defs", "discriminator"})
#: Kept from the variants of an int-or-string: each applies only to values of its own type.
INT_OR_STRING_KEEP = ("pattern", "maxLength", "minLength", "minimum", "maximum")
#: Further CEL checks of map keys by their pattern, beyond the pattern and length (`k` is the key).
KEY_EXTRA = MappingProxyType({models.QUALIFIED_NAME: "(!k.contains('/') || k.indexOf('/') <= 253)"})
#: What keys of a pattern are, in the API server's message.
KEY_NAMES = MappingProxyType(
    {
        models.QUALIFIED_NAME: "qualified names (an optional DNS-1123 subdomain prefix of at most 253 characters "
        "and '/', then at most 63 characters [-A-Za-z0-9_.], alphanumeric at both ends)",
        models.DNS1123_LABEL: "DNS-1123 labels (op names)",
    }
)


def key_rule(pattern: str | None, max_length: int | None) -> dict[str, str]:
    """The CEL rule checking every key of a map against `pattern` and `max_length`."""
    checks = []
    if max_length is not None:
        checks.append(f"k.size() <= {max_length}")
    if pattern is not None:
        if "'" in pattern:
            raise ValueError(f"key pattern {pattern!r} cannot be quoted in CEL")
        checks.append(f"k.matches(r'{pattern}')")
        if pattern in KEY_EXTRA:
            checks.append(KEY_EXTRA[pattern])
    if pattern is not None and pattern in KEY_NAMES:
        what = f"be {KEY_NAMES[pattern]}"
    else:
        what = f"match {pattern}" if pattern else ""
        if max_length is not None:
            what += f"{' and ' if what else ''}be at most {max_length} characters"
    return {"rule": f"self.all(k, {' && '.join(checks)})", "message": f"keys must {what}"}


def _map_keys(schema: dict[str, Any]) -> dict[str, Any]:
    """A map with constrained keys as a map of its values plus a CEL rule on the keys."""
    schema = dict(schema)
    patterns = schema.pop("patternProperties", None) or {}
    names = schema.pop("propertyNames", None) or {}
    if len(patterns) > 1:
        raise ValueError(f"cannot express several key patterns {sorted(patterns)} structurally")
    pattern = next(iter(patterns), None) or names.get("pattern")
    if patterns:
        schema["additionalProperties"] = patterns[pattern]
    rule = key_rule(pattern, names.get("maxLength"))
    schema["x-kubernetes-validations"] = [*schema.get("x-kubernetes-validations", []), rule]
    return schema


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """One pydantic JSON-schema node as a structural OpenAPI v3 node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "patternProperties" in schema or "propertyNames" in schema:
        return structural(_map_keys(schema), defs)
    if "anyOf" in schema:
        variants = [v for v in schema["anyOf"] if v.get("type") != "null"]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if len(variants) == 1:
            return structural({**variants[0], **rest}, defs)
        types = {v.get("type") for v in variants}
        if types == {"string", "integer"}:
            kept = {k: v for variant in variants for k, v in variant.items() if k in INT_OR_STRING_KEEP}
            return {"x-kubernetes-int-or-string": True, **kept, **_keep(rest)}
        raise ValueError(f"cannot express anyOf {variants} structurally")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in DROP:
            continue
        if key == "properties":
            out["properties"] = {k: structural(v, defs) for k, v in value.items()}
        elif key == "items":
            out["items"] = structural(value, defs)
        elif key == "additionalProperties":
            if value is False:
                continue  # structural schemas prune unknown fields; kubectl's strict validation refuses them
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            else:
                out["additionalProperties"] = structural(value, defs)
        elif key == "const":
            out["enum"] = [value]
        elif key == "default":
            if value is None or isinstance(value, dict | list):
                continue
            out["default"] = value
        else:
            out[key] = value
    if "x-kubernetes-preserve-unknown-fields" in out and out.get("type") is None:
        out["type"] = "object"
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "array" and "items" not in out:
        out["items"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _keep(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k in ("description", "x-kubernetes-validations")}


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(mode="validation")
    return structural(raw, raw.get("$defs", {}))


def crd(
    resource: Resource,
    spec: type[BaseModel],
    status: type[BaseModel] | None,
    columns: list[dict[str, Any]],
    spec_rules: list[dict[str, str]] | None = None,
    description: str = "",
    root_rules: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    spec_schema = model_schema(spec)
    if spec_rules:
        spec_schema["x-kubernetes-validations"] = spec_rules
    props: dict[str, Any] = {"spec": spec_schema}
    version: dict[str, Any] = {"name": VERSION, "served": True, "storage": True}
    if status is not None:
        props["status"] = model_schema(status)
        version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = columns
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            **props,
        },
    }
    if root_rules:
        root["x-kubernetes-validations"] = root_rules
    version["schema"] = {"openAPIV3Schema": root}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": resource.crd_name},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.kind,
                "plural": resource.plural,
                "singular": resource.kind.lower(),
                "shortNames": [resource.short],
                "categories": ["cairn"],
            },
            "versions": [version],
        },
    }


AGE = MappingProxyType({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})


def label_path(key: str) -> str:
    """The JSONPath of a label of an object (the dots of its key escaped)."""
    return ".metadata.labels." + key.replace(".", "\\.")


def file_name(resource: Resource) -> str:
    return f"{GROUP}_{resource.plural}.yaml"


def all_crds() -> dict[str, dict[str, Any]]:
    return {
        file_name(JOB): crd(
            JOB,
            models.JobSpec,
            None,
            [{"name": "Image", "type": "string", "jsonPath": ".spec.image"}, dict(AGE)],
            [dict(r) for r in models.JOB_RULES],
            "A Cairn pipeline: ops, their wiring, images and storage.",
            [dict(r) for r in models.NAME_RULES],
        ),
        file_name(RUN): crd(
            RUN,
            models.RunSpec,
            models.RunStatusModel,
            [
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Steps", "type": "string", "jsonPath": ".status.progress"},
                {"name": "Failed", "type": "integer", "jsonPath": ".status.failedSteps"},
                {"name": "Parent", "type": "string", "jsonPath": label_path(LABEL_PARENT)},
                dict(AGE),
            ],
            None,
            "One execution of a Job: one pod per op, outputs in S3.",
            [dict(r) for r in models.NAME_RULES],
        ),
        file_name(REEXECUTION): crd(
            REEXECUTION,
            models.ReexecutionSpec,
            models.ReexecutionStatusModel,
            [
                {"name": "Parent", "type": "string", "jsonPath": ".spec.parentRun"},
                {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Child", "type": "string", "jsonPath": ".status.childRun"},
                dict(AGE),
            ],
            None,
            "Re-execute part of a finished Run as a linked child Run; the parent is never modified.",
            [dict(r) for r in models.NAME_RULES],
        ),
    }


def render(doc: dict[str, Any]) -> str:
    return (
        "# Generated by `python -m cairn_operator.crdgen` from cairn_operator.models: do not edit.\n"
        + yaml.safe_dump(doc, sort_keys=False, width=120)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cairn_operator.crdgen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when crds/ differs from the models")
    parser.add_argument(
        "--dir",
        type=Path,
        action="append",
        default=None,
        help="where to write (default: crds/ and the Helm chart's crds/)",
    )
    args = parser.parse_args(argv)
    drift = []
    for name, doc in all_crds().items():
        text = render(doc)
        for d in args.dir or [CRD_DIR, CHART_CRD_DIR]:
            path = d / name
            if args.check:
                if not path.exists() or path.read_text() != text:
                    drift.append(str(path))
            else:
                path.write_text(text)
                print(f"wrote {path}")
    if drift:
        print(
            f"crds/ drifted from the models: {', '.join(drift)}; run `python -m cairn_operator.crdgen` and commit",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
