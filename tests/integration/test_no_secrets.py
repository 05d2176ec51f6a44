"""No storage credential in any status, Event, log line or error message (issue 10, item 9).

On the real control plane, Jobs whose storage Secret holds distinctive credentials run: one Run fails
(its op raises), one succeeds when re-executed from failure (a Reexecution), one Job's Secret holds
wrong credentials (its steps cannot store their outputs), and one Secret is rotated to wrong
credentials before a Reexecution (the operator cannot check the outputs it would reuse). Then every
place the operator and the steps write to is scanned for the Secrets' values, verbatim and base64
encoded: every Job/Run/Reexecution (metadata, spec, status), every Event of the namespace, the
operator's log, each step pod's log and termination message, and the step logs saved in storage.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

import yaml
from kubernetes import client

from tests.helpers import eventually
from tests.integration.test_operator import G, V, apply, co, sample, wait_phase
from tests.integration.test_reexecution import FAIL, PASS, create_rx, rx, rx_phase

CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def forms(value: str) -> set[str]:
    """The ways a value may leak: as is, and base64 encoded (as a Secret's data carries it)."""
    raw = value.encode()
    return {value, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}


def leaks(places: Mapping[str, str], values: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(place, which value, the line it is on) for every secret value found in a place's text."""
    found = []
    for place, text in places.items():
        for name, value in values.items():
            for form in forms(value):
                at = text.find(form)
                if at >= 0:
                    start, end = text.rfind("\n", 0, at) + 1, text.find("\n", at)
                    found.append((place, name, text[start : end if end >= 0 else len(text)][:400]))
    return found


def test_the_scanner_finds_a_planted_value() -> None:
    """The scan can fail: a value planted in a status, an Event or a log line is found, also base64."""
    key = "wrong-secret-" + secrets.token_hex(8)
    places = {
        "run status": yaml.safe_dump({"status": {"message": f"S3 refused: key {key} is invalid"}}),
        "event": "clean",
        "pod log": "line 1\nline 2 " + base64.b64encode(key.encode()).decode() + "\nline 3",
    }
    found = leaks(places, {"AWS_SECRET_ACCESS_KEY": key})
    assert [(p, n) for p, n, _ in found] == [
        ("run status", "AWS_SECRET_ACCESS_KEY"),
        ("pod log", "AWS_SECRET_ACCESS_KEY"),
    ]
    assert found[1][2] == "line 2 " + base64.b64encode(key.encode()).decode()
    assert leaks({"clean": "nothing here"}, {"k": key}) == []


def secret_values(core: Any, ns: str, name: str) -> dict[str, str]:
    data = core.read_namespaced_secret(name, ns).data or {}
    return {f"{name}/{k}": base64.b64decode(v).decode() for k, v in data.items() if k in CREDENTIAL_KEYS}


def put_secret(core: Any, ns: str, name: str, data: Mapping[str, str], replace: bool = False) -> None:
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=dict(data))
    if replace:
        core.replace_namespaced_secret(name, ns, body)
    else:
        core.create_namespaced_secret(ns, body)


def job_with_secret(name: str, secret: str) -> dict[str, Any]:
    doc = sample("job-unreliable.yaml")
    doc["metadata"]["name"] = name
    doc["spec"]["storage"]["secretRef"]["name"] = secret
    return doc


def run_doc(name: str, job: str, overrides: dict[str, Any]) -> dict[str, Any]:
    spec = {"jobRef": {"name": job}, "overrides": overrides}
    return {"apiVersion": f"{G}/{V}", "kind": "Run", "metadata": {"name": name}, "spec": spec}


def everything(kube: Any, core: Any, ns: str, s3: Any, operator_log: str) -> Iterator[tuple[str, str]]:
    """Every text the operator and the steps produced for namespace `ns`, with where it is."""
    api = co(kube)
    for plural in ("jobs", "runs", "reexecutions"):
        for obj in api.list_namespaced_custom_object(G, V, ns, plural)["items"]:
            yield f"{plural}/{obj['metadata']['name']}", yaml.safe_dump(obj)
    for ev in core.list_namespaced_event(ns).items:
        yield f"event {ev.metadata.name} ({ev.reason})", json.dumps(kube.sanitize_for_serialization(ev))
    for pod in core.list_namespaced_pod(ns).items:
        name = pod.metadata.name
        yield f"pod {name} object", json.dumps(kube.sanitize_for_serialization(pod.status))
        for cs in pod.status.container_statuses or []:
            for state in (cs.state, cs.last_state):
                if state and state.terminated and state.terminated.message:
                    yield f"pod {name} termination message", state.terminated.message
        yield f"pod {name} log", core.read_namespaced_pod_log(name, ns)
    listed = s3.list_objects_v2(Bucket=s3.bucket, Prefix=f"cairn/{ns}/")
    for obj in listed.get("Contents", []):
        if obj["Key"].endswith(".log"):
            yield f"s3 {obj['Key']}", s3.get_object(Bucket=s3.bucket, Key=obj["Key"])["Body"].read().decode()
    yield "operator log", operator_log


def test_no_credential_in_any_status_event_or_log(
    cairn_operator: Any, kube: Any, core: Any, namespace: str, s3: Any
) -> None:
    ns = namespace
    cluster = {
        k: base64.b64decode(v).decode() for k, v in core.read_namespaced_secret("cairn-s3", "default").data.items()
    }
    good = {**cluster, "AWS_SESSION_TOKEN": "cairn-session-" + secrets.token_hex(12)}  # unused: must not show either
    wrong = {
        **cluster,
        "AWS_ACCESS_KEY_ID": "CAIRNWRONGID" + secrets.token_hex(6).upper(),
        "AWS_SECRET_ACCESS_KEY": "wrong-secret-" + secrets.token_urlsafe(18),
        "AWS_SESSION_TOKEN": "wrong-session-" + secrets.token_hex(12),
    }
    rotated = {**cluster, "AWS_SECRET_ACCESS_KEY": "rotated-wrong-" + secrets.token_urlsafe(18)}
    put_secret(core, ns, "cairn-s3", good)
    put_secret(core, ns, "s3-wrong", wrong)
    put_secret(core, ns, "s3-rotated", good)
    values = {
        **secret_values(core, ns, "cairn-s3"),
        **secret_values(core, ns, "s3-wrong"),
        "s3-rotated/AWS_SECRET_ACCESS_KEY": rotated["AWS_SECRET_ACCESS_KEY"],
    }
    assert len(values) == 7 and all(len(v) >= 16 for v in values.values()), sorted(values)

    apply(kube, ns, job_with_secret("unreliable", "cairn-s3"))
    apply(kube, ns, job_with_secret("wrong", "s3-wrong"))
    apply(kube, ns, job_with_secret("rotated", "s3-rotated"))
    apply(kube, ns, run_doc("fails", "unreliable", FAIL))
    apply(kube, ns, run_doc("wrong-creds", "wrong", PASS))
    apply(kube, ns, run_doc("rot-fails", "rotated", FAIL))

    fails = wait_phase(kube, ns, "fails", "Succeeded", "Failed", timeout=180)
    assert fails["status"]["phase"] == "Failed"
    assert fails["status"]["steps"]["unreliable"]["message"] == "Exception: blah"
    create_rx(kube, ns, rx("retry", "fails", overrides=PASS))
    retry = rx_phase(kube, ns, "retry", "Succeeded", "Failed", timeout=180)
    assert retry["status"]["phase"] == "Succeeded", retry["status"]

    bad = wait_phase(kube, ns, "wrong-creds", "Succeeded", "Failed", timeout=180)
    assert bad["status"]["phase"] == "Failed", bad["status"]  # its first step cannot store its output

    rot = wait_phase(kube, ns, "rot-fails", "Succeeded", "Failed", timeout=180)
    assert rot["status"]["phase"] == "Failed"
    put_secret(core, ns, "s3-rotated", rotated, replace=True)
    create_rx(kube, ns, rx("rot-retry", "rot-fails", overrides=PASS))

    def refused() -> bool:
        """The operator tried to check the output it would reuse with the wrong key, and said so in the
        Reexecution's status (reason StorageUnavailable, with S3's words): the status is scanned below."""
        obj = co(kube).get_namespaced_custom_object(G, V, ns, "reexecutions", "rot-retry")
        status = obj.get("status") or {}
        if status.get("phase") == "Succeeded":
            raise AssertionError(f"reused an output its storage credentials cannot read: {status}")
        return status.get("phase") == "Pending" and "cannot read the parent's storage" in (status.get("message") or "")

    eventually(refused, timeout=120, interval=1, what="the operator to refuse rot-retry's storage check")

    operator_log = cairn_operator.log_path.read_text(errors="replace")
    places = dict(everything(kube, core, ns, s3, operator_log))
    # The scan covered what it says: the failures' messages and the step logs are among the texts.
    assert any(p.startswith("pod ") and p.endswith(" log") for p in places)
    assert any(p.startswith("event ") for p in places) and "reexecutions/rot-retry" in places
    assert any(p.startswith("s3 ") for p in places), "no step log saved in storage was scanned"
    assert "Exception: blah" in places["runs/fails"]
    found = leaks(places, values)
    assert not found, "credentials leaked:\n" + "\n".join(f"{p}: {n}: {line}" for p, n, line in found)
