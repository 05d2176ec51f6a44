"""The step ServiceAccount is ensured once per namespace and process; a refusal is never remembered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kopf
import pytest
from kubernetes.client.rest import ApiException

from cairn_operator import handlers, kube


def pod(namespace: str, account: str = "cairn-step") -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": "p"}, "spec": {"serviceAccountName": account}}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    made: list[dict[str, Any]] = []

    def ensure(body: dict[str, Any]) -> bool:
        made.append(body)
        return True

    monkeypatch.setattr(kube, "ensure_service_account", ensure)
    monkeypatch.setattr(handlers, "STEP_ACCOUNT", "cairn-step")
    monkeypatch.setattr(handlers, "ACCOUNTS_READY", set())
    yield made


def test_one_call_per_namespace_not_per_cycle(calls: list[dict[str, Any]]) -> None:
    for _ in range(3):  # three cycles
        handlers.ensure_step_accounts([pod("a"), pod("a"), pod("b")])
    handlers.ensure_step_accounts([])
    assert [(c["metadata"]["namespace"], c["metadata"]["name"]) for c in calls] == [
        ("a", "cairn-step"),
        ("b", "cairn-step"),
    ]
    assert all(c["automountServiceAccountToken"] is False for c in calls)


def test_pods_with_their_own_account_need_none(calls: list[dict[str, Any]]) -> None:
    handlers.ensure_step_accounts([pod("a", "users-own")])
    assert calls == []


def refusal(status: int, message: str, what: str = "creating ServiceAccount a/cairn-step") -> kube.Refused:
    exc = ApiException(status=status, reason="Forbidden")
    exc.body = json.dumps({"kind": "Status", "message": message, "code": status})
    return kube.Refused(what, exc)


def test_a_refusal_propagates_and_is_tried_again_next_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "ACCOUNTS_READY", set())
    monkeypatch.setattr(handlers, "STEP_ACCOUNT", "cairn-step")
    attempts: list[str] = []

    def refuse(body: dict[str, Any]) -> bool:
        attempts.append(body["metadata"]["namespace"])
        raise refusal(403, 'serviceaccounts is forbidden: User "op" cannot create resource "serviceaccounts"')

    monkeypatch.setattr(kube, "ensure_service_account", refuse)
    for _ in range(2):
        with pytest.raises(kube.Refused, match="cannot create resource"):
            handlers.ensure_step_accounts([pod("a")])
    assert attempts == ["a", "a"]
    assert not handlers.ACCOUNTS_READY


def test_refusals_carry_the_api_servers_message_without_headers() -> None:
    err = refusal(403, 'pods "p" is forbidden: violates PodSecurity "restricted:latest": runAsUser=0')
    assert err.status == 403
    assert str(err) == (
        "creating ServiceAccount a/cairn-step refused by the API server (403 Forbidden): "
        'pods "p" is forbidden: violates PodSecurity "restricted:latest": runAsUser=0'
    )
    odd = ApiException(status=500, reason="Internal Server Error")
    odd.body = "not json"
    assert str(kube.Refused("creating pod p", odd)).endswith("(500 Internal Server Error): not json")


JOB = {
    "image": "img",
    "python": {"job": "pkg.mod:job"},
    "storage": {"secretRef": {"name": "cairn-s3"}},
    "ops": [{"name": "a"}, {"name": "b", "inputs": {"x": "a"}}],
}


class FakeRun:
    """A Run in a fake API server: sync_run's kube calls against it, pod creation refused `refusals` times."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, refusals: int) -> None:
        self.status: dict[str, Any] = {}
        self.events: list[tuple[str, str, str]] = []
        self.pods: list[dict[str, Any]] = []
        self.tries = 0
        self.refusals = refusals
        monkeypatch.setattr(handlers, "ACCOUNTS_READY", set())
        monkeypatch.setattr(handlers, "STEP_ACCOUNT", "cairn-step")
        monkeypatch.setattr(kube, "get_job", lambda ns, name: {"spec": JOB})
        monkeypatch.setattr(kube, "secret_exists", lambda ns, name: True)
        monkeypatch.setattr(kube, "label_run", lambda ns, name, labels: None)
        monkeypatch.setattr(kube, "list_step_pods", lambda ns, run, steps=None: [])
        monkeypatch.setattr(kube, "ensure_service_account", lambda body: True)
        monkeypatch.setattr(kube, "create_pod", self.create_pod)
        monkeypatch.setattr(kube, "patch_run_status", self.patch)
        monkeypatch.setattr(
            kopf, "event", lambda body, type, reason, message: self.events.append((type, reason, message))
        )

    def create_pod(self, body: dict[str, Any]) -> bool:
        self.tries += 1
        if self.tries <= self.refusals:
            pod = body["metadata"]["name"]
            raise refusal(403, f'pods "{pod}" is forbidden: violates PodSecurity', f"creating pod {pod}")
        self.pods.append(body)
        return True

    def patch(self, ns: str, name: str, patch: dict[str, Any]) -> None:
        def merge(target: dict[str, Any], p: dict[str, Any]) -> None:
            for k, v in p.items():
                if v is None:
                    target.pop(k, None)
                elif isinstance(v, dict) and isinstance(target.get(k), dict):
                    merge(target[k], v)
                else:
                    target[k] = v

        merge(self.status, patch)

    def cycle(self, **spec: Any) -> float:
        return handlers.sync_run(
            {
                "metadata": {"name": "r", "namespace": "ns", "uid": "u-1", "generation": 1},
                "spec": {"jobRef": {"name": "j"}, **spec},
                "status": json.loads(json.dumps(self.status)),
            }
        )


def test_a_refused_pod_is_shown_once_and_retried_after_a_growing_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "REFUSED_BACKOFF", handlers.Backoff(cap=60))
    run = FakeRun(monkeypatch, refusals=3)
    assert [run.cycle() for _ in range(3)] == [1.0, 2.0, 4.0]  # the daemon's next cycle, unless a change wakes it
    assert run.tries == 3 and run.pods == []
    message = run.status["message"]
    assert message.startswith("creating pod r-a-1-") and "is forbidden: violates PodSecurity (tried again" in message
    assert run.status["phase"] == "Pending" and "steps" not in run.status and "jobSnapshot" not in run.status
    assert {c["type"]: (c["status"], c["reason"]) for c in run.status["conditions"]} == {
        "Ready": ("False", "FailedCreate"),
        "Reconciling": ("True", "FailedCreate"),
        "Stalled": ("False", "FailedCreate"),
        "Succeeded": ("Unknown", "FailedCreate"),
    }
    assert run.events == [("Warning", "FailedCreate", message.split(" (tried again")[0])]  # once, not per cycle
    run.cycle()  # allowed now
    assert [p["metadata"]["labels"]["cairn.dev/step"] for p in run.pods] == ["a"]
    assert run.status["phase"] == "Running" and "message" not in run.status
    assert run.status["steps"]["a"]["phase"] == "Running" and run.status["jobSnapshot"] == JOB
    assert {c["reason"] for c in run.status["conditions"]} == {"Running"}


def test_a_refused_service_account_stops_the_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeRun(monkeypatch, refusals=0)
    calls: list[str] = []

    def refuse(body: dict[str, Any]) -> bool:
        calls.append(body["metadata"]["namespace"])
        raise refusal(403, 'serviceaccounts is forbidden: User "op" cannot create resource "serviceaccounts"')

    monkeypatch.setattr(kube, "ensure_service_account", refuse)
    for _ in range(2):
        run.cycle()
    assert calls == ["ns", "ns"] and run.tries == 0  # no pod is tried without its ServiceAccount
    assert "cannot create resource" in run.status["message"] and len(run.events) == 1


def test_an_invalid_pod_fails_its_step_at_once_with_the_servers_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """422: the pod itself is invalid (say an env var name the schema let through): the same request
    would be refused for ever, so the step fails with the API server's words and the Run ends."""
    run = FakeRun(monkeypatch, refusals=0)
    tries: list[str] = []

    def invalid(body: dict[str, Any]) -> bool:
        tries.append(body["metadata"]["name"])
        exc = ApiException(status=422, reason="Unprocessable Entity")
        exc.body = json.dumps({"message": 'Pod "p" is invalid: spec.containers[0].env[0].name: Invalid value: "1BAD"'})
        raise kube.Refused(f"creating pod {body['metadata']['name']}", exc)

    monkeypatch.setattr(kube, "create_pod", invalid)
    run.cycle()
    a = run.status["steps"]["a"]
    assert a["phase"] == "Failed" and "422 Unprocessable Entity" in a["message"] and '"1BAD"' in a["message"]
    assert "podName" not in a
    assert [e[1] for e in run.events] == ["PodRefused"]
    run.cycle()
    assert run.status["phase"] == "Failed" and run.status["steps"]["b"]["phase"] == "NotExecuted"
    assert len(tries) == 1  # never tried again
    assert {c["type"]: c["status"] for c in run.status["conditions"]}["Stalled"] == "True"
