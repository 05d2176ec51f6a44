"""The CRD schema and the pydantic models refuse the same bad input (issue 10): quantities, env names,
labels, tolerations, volumes, name lengths and path traversal. The API server's side is checked on a real
cluster by tests/integration/test_bad_corpus.py; here the models and the generated schema."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from cairn_operator import crdgen, models
from cairn_operator.models import JobSpec, ReexecutionSpec, RunSpec
from tests.bad.corpus import KINDS, Case, load_cases, manifest_files

ROOT = Path(__file__).resolve().parents[3]
CASES = load_cases()
SPECS: dict[str, type[BaseModel]] = {"Job": JobSpec, "Run": RunSpec, "Reexecution": ReexecutionSpec}
JOB: dict[str, Any] = {
    "image": "img:1",
    "python": {"job": "pkg.mod:job"},
    "storage": {"secretRef": {"name": "cairn-s3"}},
    "ops": [{"name": "a"}],
}


def job(op: dict[str, Any] | None = None, template: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A valid Job spec with `op` merged into its one op and `template` as its podTemplate."""
    doc: dict[str, Any] = {**JOB, "ops": [{"name": "a", **(op or {})}], **spec}
    if template is not None:
        doc["podTemplate"] = template
    return doc


def test_the_corpus_covers_every_kind_and_every_manifest_is_indexed_once() -> None:
    indexed = [c.file for c in CASES]
    assert len(indexed) == len(set(indexed)), "a manifest is indexed twice"
    setups = {s.file for c in CASES for s in c.setup}
    assert manifest_files() == set(indexed) | setups, "tests/bad/ and tests/bad/cases.yaml disagree"
    assert len(CASES) >= 45
    per_kind = {kind: sum(c.kind == kind for c in CASES) for kind in KINDS}
    assert min(per_kind.values()) >= 10, per_kind
    for c in CASES:
        assert (ROOT / "tests" / "bad" / c.file).read_text().startswith("# "), f"{c.file}: no header comment"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES if c.refused is not None])
def test_the_models_refuse_every_spec_the_api_server_refuses(case: Case) -> None:
    spec_model = SPECS[case.kind]
    if case.spec_valid:  # refused for its name: the spec itself is fine, the name too long for a label
        spec_model.model_validate(case.doc["spec"])
        assert len(case.name) > models.MAX_NAME
        return
    with pytest.raises(ValidationError):
        spec_model.model_validate(case.doc["spec"])


@pytest.mark.parametrize("quantity", ["1", "500m", "1.5", ".5", "+1", "1Gi", "128Mi", "2k", "1e3", "1E-3", 0, 4])
def test_quantities_as_the_core_api_writes_them_are_accepted(quantity: str | int) -> None:
    JobSpec.model_validate(job({"resources": {"requests": {"cpu": quantity}, "limits": {"nvidia.com/gpu": quantity}}}))


@pytest.mark.parametrize("quantity", ["lots", "-1", "-1Gi", -1, "1GB", "1 Gi", "", "1Gi\n", "0x10", "1.2.3"])
def test_bad_or_negative_quantities_are_refused(quantity: str | int) -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate(job({"resources": {"limits": {"memory": quantity}}}))


@pytest.mark.parametrize("name", ["A", "_A", "a.b-c", "PATH", "-x", "X1"])
def test_env_names_of_the_core_rule_are_accepted(name: str) -> None:
    JobSpec.model_validate(job({"env": [{"name": name, "value": "v"}]}))
    RunSpec.model_validate({"jobRef": {"name": "j"}, "overrides": {"a": {"env": [{"name": name, "value": "v"}]}}})


@pytest.mark.parametrize("name", ["1BAD", "A=B", "A\nB", "A\n", "", "A B", "é"])
def test_env_names_against_the_core_rule_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate(job({"env": [{"name": name, "value": "v"}]}))
    with pytest.raises(ValidationError):
        ReexecutionSpec.model_validate({"parentRun": "p", "overrides": {"a": {"env": [{"name": name}]}}})


@pytest.mark.parametrize(
    ("key", "value"),
    [("team", "ml"), ("example.com/team", "ml"), ("a.b/c_d.e-f", "x.y_z-1"), ("k", ""), ("x" * 63, "v" * 63)],
)
def test_labels_of_the_core_rules_are_accepted(key: str, value: str) -> None:
    JobSpec.model_validate(job(template={"labels": {key: value}, "nodeSelector": {key: value}}))
    ReexecutionSpec.model_validate({"parentRun": "p", "labels": {key: value}})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("bad key", "v"),
        ("a/b/c", "v"),
        ("Example.com/x", "v"),
        ("x" * 64, "v"),
        ("a" * 254 + "/b", "v"),  # the prefix is at most 253 characters
        ("-x", "v"),
        ("team", "v" * 64),
        ("team", "a b"),
        ("team", "ends-"),
        ("team", "x\n"),
    ],
)
def test_labels_against_the_core_rules_are_refused(key: str, value: str) -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate(job(template={"labels": {key: value}}))
    with pytest.raises(ValidationError):
        ReexecutionSpec.model_validate({"parentRun": "p", "labels": {key: value}})


@pytest.mark.parametrize(
    "toleration",
    [
        {"key": "k", "operator": "Exists"},
        {"operator": "Exists"},
        {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
        {"key": "k", "value": "v"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
    ],
)
def test_core_tolerations_are_accepted(toleration: dict[str, Any]) -> None:
    JobSpec.model_validate(job(template={"tolerations": [toleration]}))


@pytest.mark.parametrize(
    "volume",
    [
        {"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        {"name": "v", "configMap": {"name": "c", "defaultMode": 0o644, "items": [{"key": ".a", "path": "a/..b"}]}},
        {"name": "v", "secret": {"secretName": "s", "optional": True}},
        {"name": "v", "persistentVolumeClaim": {"claimName": "c"}},
        {"name": "v", "hostPath": {"path": "/var/log", "type": "Directory"}},
        {"name": "v", "nfs": {"server": "nfs.local", "path": "/exports"}},
        {"name": "v", "csi": {"driver": "secrets-store.csi.k8s.io", "volumeAttributes": {"a": "b"}}},
        {"name": "v", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "audience": "s3"}}]}},
        {
            "name": "v",
            "ephemeral": {
                "volumeClaimTemplate": {
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
                }
            },
        },
    ],
)
def test_every_supported_volume_source_is_accepted(volume: dict[str, Any]) -> None:
    JobSpec.model_validate(job(template={"volumes": [volume]}))


@pytest.mark.parametrize(
    "volume",
    [
        {"name": "v", "downwardAPI": {"items": [{"path": "x"}]}},  # neither fieldRef nor resourceFieldRef
        {"name": "v", "projected": {"sources": [{}]}},
        {"name": "v", "configMap": {"name": "c", "items": [{"key": "..k", "path": "p"}]}},
        {"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "/abs"}]}},
        {"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "a/./b"}]}},
        {"name": "v", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": []}}}},
    ],
)
def test_malformed_volume_sources_are_refused(volume: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate(job(template={"volumes": [volume]}))


@pytest.mark.parametrize("prefix", ["cairn", "", "team-a/cairn", "a..b/c", "_x/y.z"])
def test_storage_prefixes_without_traversal_are_accepted(prefix: str) -> None:
    JobSpec.model_validate(job(storage={"secretRef": {"name": "s"}, "prefix": prefix}))


@pytest.mark.parametrize("prefix", ["..", "../x", "a/../b", "a/..", "./a", "/a", "a/", "a//b", ".hidden", "a\n"])
def test_storage_prefixes_that_try_traversal_are_refused(prefix: str) -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate(job(storage={"secretRef": {"name": "s"}, "prefix": prefix}))


def test_samples_are_still_valid_and_their_names_fit_label_values() -> None:
    for path in sorted((ROOT / "crds" / "samples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            SPECS[doc["kind"]].model_validate(doc["spec"])
            assert len(doc["metadata"]["name"]) <= models.MAX_NAME, path


def nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every schema node of a CRD's openAPIV3Schema, depth first."""
    if isinstance(schema, dict):
        yield schema
        for key in ("properties",):
            for child in (schema.get(key) or {}).values():
                yield from nodes(child)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                yield from nodes(schema[key])


def schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, doc in crdgen.all_crds().items():
        yield name, doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_every_crd_refuses_names_longer_than_a_label_value() -> None:
    for name, root in schemas():
        assert root["x-kubernetes-validations"] == [dict(r) for r in models.NAME_RULES], name
        assert "self.metadata.name.size() <= 63" in root["x-kubernetes-validations"][0]["rule"]


def test_quantities_are_int_or_string_with_the_non_negative_quantity_pattern() -> None:
    found = 0
    for _, root in schemas():
        for node in nodes(root):
            if node.get("x-kubernetes-int-or-string"):
                found += 1
                assert node["pattern"] == models.QUANTITY and node["minimum"] == 0, node
                assert "type" not in node
    assert found >= 5  # requests, limits, sizeLimit, divisor, ephemeral storage
    assert re.fullmatch(models.QUANTITY[1:-1], "-1") is None


def test_constrained_map_keys_become_cel_rules_on_bounded_maps() -> None:
    keyed = 0
    for name, root in schemas():
        for node in nodes(root):
            assert "patternProperties" not in node and "propertyNames" not in node, name
            rules = [r["rule"] for r in node.get("x-kubernetes-validations", []) if r["rule"].startswith("self.all(k")]
            if rules:
                keyed += 1
                assert "maxProperties" in node, (name, rules)  # a CEL rule's cost must be bounded
    assert keyed >= 10


def test_key_rules_quote_the_pattern_and_name_it_in_the_message() -> None:
    rule = crdgen.key_rule(models.QUALIFIED_NAME, models.QUALIFIED_NAME_MAX)
    assert rule["rule"] == (
        f"self.all(k, k.size() <= 317 && k.matches(r'{models.QUALIFIED_NAME}') "
        "&& (!k.contains('/') || k.indexOf('/') <= 253))"
    )
    assert rule["message"].startswith("keys must be qualified names")
    assert crdgen.key_rule("^[a-z]+$", 5)["message"] == "keys must match ^[a-z]+$ and be at most 5 characters"
    with pytest.raises(ValueError, match="cannot be quoted"):
        crdgen.key_rule("^'$", None)
