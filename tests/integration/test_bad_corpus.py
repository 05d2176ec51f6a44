"""The bad-input corpus (tests/bad/) on the real API server.

A `refused` case is created as `kubectl apply` creates it (fieldValidation=Strict) and must be refused
with the API server's message containing the expected text; nothing is left behind. An outcome case is
applied with the operator running (after its setup manifests) and must reach the expected phase, with a
condition whose reason and message are the expected ones (and, when the case says so, its steps' messages
and an Event's reason). A case marked `xfail` in cases.yaml is an operator bug: it must fail (strict).
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.bad.corpus import KINDS, Case, load_cases, load_doc
from tests.helpers import eventually
from tests.integration.test_operator import ns

__all__ = ["ns"]
G, V = "cairn.dev", "v1alpha1"
ROOT = Path(__file__).resolve().parents[2]
CASES = load_cases()
REFUSED = [pytest.param(c, id=c.id) for c in CASES if c.refused is not None]
OUTCOMES = [
    pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
    for c in CASES
    if c.refused is None
] or [pytest.param(None, id="none", marks=pytest.mark.skip(reason="tests/bad/cases.yaml has no outcome case yet"))]


@pytest.fixture(scope="module")
def crds(kube: Any) -> None:
    """The CRDs from crds/ installed (or replaced) and Established; no operator needed to refuse."""
    ext = client.ApiextensionsV1Api(kube)
    names = []
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        names.append(doc["metadata"]["name"])
        try:
            ext.create_custom_resource_definition(doc)
        except ApiException as exc:
            if exc.status != 409:
                raise
            doc["metadata"]["resourceVersion"] = ext.read_custom_resource_definition(
                doc["metadata"]["name"]
            ).metadata.resource_version
            ext.replace_custom_resource_definition(doc["metadata"]["name"], doc)
    for name in names:
        eventually(functools.partial(established, ext, name), timeout=30, what=f"CRD {name} Established")


def established(ext: Any, name: str) -> bool:
    """Whether the CRD `name` is Established (its resources can be created)."""
    conditions = ext.read_custom_resource_definition(name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="module")
def shared_namespace(core: Any, crds: None) -> Iterator[str]:
    """One namespace for all refused cases: a refused create leaves nothing in it."""
    name = f"t-bad-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def create(kube: Any, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Create `doc` as `kubectl apply` would: unknown fields refused (fieldValidation=Strict)."""
    created: dict[str, Any] = client.CustomObjectsApi(kube).create_namespaced_custom_object(
        G, V, namespace, KINDS[doc["kind"]], doc, field_validation="Strict"
    )
    return created


@pytest.mark.parametrize("case", REFUSED)
def test_refused_at_apply(case: Case, kube: Any, shared_namespace: str) -> None:
    expected = case.refused
    assert expected
    try:
        create(kube, shared_namespace, case.doc)
    except ApiException as exc:
        assert exc.status in (400, 422), exc.body
        message = json.loads(exc.body)["message"]
        assert expected in message, f"{case.file}: {expected!r} not in the API server's message {message!r}"
        return
    client.CustomObjectsApi(kube).delete_namespaced_custom_object(G, V, shared_namespace, case.plural, case.name)
    pytest.fail(f"{case.file} was accepted; expected a refusal containing {expected!r}")


def get(kube: Any, namespace: str, plural: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(kube).get_namespaced_custom_object(G, V, namespace, plural, name)
    return obj


def matches(obj: dict[str, Any], expect: dict[str, Any]) -> bool:
    """Whether `obj`'s status shows the expected phase, and a condition with the expected type, reason
    and message (the message may also be status.message)."""
    status = obj.get("status") or {}
    if status.get("phase") != expect["phase"]:
        return False
    conditions = [
        c
        for c in status.get("conditions") or []
        if c.get("type") == expect.get("condition", c.get("type"))
        and c.get("reason") == expect.get("reason", c.get("reason"))
    ]
    if ("reason" in expect or "condition" in expect) and not conditions:
        return False
    steps = status.get("steps") or {}
    if any(
        text not in str((steps.get(step) or {}).get("message") or "") for step, text in expect.get("steps", {}).items()
    ):
        return False
    if "message" in expect:
        texts = [str(c.get("message") or "") for c in conditions] + [str(status.get("message") or "")]
        return any(expect["message"] in t for t in texts)
    return True


def has_event(kube: Any, namespace: str, name: str, reason: str | None) -> bool:
    """Whether an Event about the object `name` has this reason (None: no Event expected)."""
    if reason is None:
        return True
    events = client.CoreV1Api(kube).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return any(e.reason == reason for e in events.items)


def wait_until(kube: Any, namespace: str, plural: str, name: str, expect: dict[str, Any], timeout: float) -> None:
    """Poll the object until `matches(obj, expect)`; fail with its last status."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = get(kube, namespace, plural, name)
        if matches(last, expect) and has_event(kube, namespace, name, expect.get("event")):
            return
        time.sleep(0.5)
    events = client.CoreV1Api(kube).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    said = sorted({str(e.reason) for e in events.items})
    pytest.fail(
        f"{plural}/{name}: expected {expect} within {timeout}s, last status {last.get('status')!r}, Events {said}"
    )


@pytest.mark.parametrize("case", OUTCOMES)
def test_outcome_with_the_operator(case: Case, cairn_operator: Any, kube: Any, ns: str) -> None:
    for setup in case.setup:
        doc = load_doc(setup.file)
        create(kube, ns, doc)
        if setup.phase:
            plural, name = KINDS[doc["kind"]], doc["metadata"]["name"]
            wait_until(kube, ns, plural, name, {"phase": setup.phase}, timeout=120)
    create(kube, ns, case.doc)
    wait_until(kube, ns, case.plural, case.name, case.expect, timeout=float(case.expect.get("timeout", 120)))
