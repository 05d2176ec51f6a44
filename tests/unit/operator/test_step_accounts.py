"""The step ServiceAccount is ensured once per namespace and process; a refusal is never remembered."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from cairn_operator import kube
from cairn_operator.runs import RunController
from tests.unit.operator.fakes import JOB, Events, FakeKube, FakeRun, controller, refusal

__all__ = ["JOB", "FakeRun"]


def pod(namespace: str, account: str = "cairn-step") -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": "p"}, "spec": {"serviceAccountName": account}}


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube()


@pytest.fixture
def ctl(fake: FakeKube) -> RunController:
    return controller(fake, Events())


def test_one_call_per_namespace_not_per_cycle(fake: FakeKube, ctl: RunController) -> None:
    for _ in range(3):  # three cycles
        ctl.ensure_step_accounts([pod("a"), pod("a"), pod("b")])
    ctl.ensure_step_accounts([])
    assert [(c["metadata"]["namespace"], c["metadata"]["name"]) for c in fake.accounts] == [
        ("a", "cairn-step"),
        ("b", "cairn-step"),
    ]
    assert all(c["automountServiceAccountToken"] is False for c in fake.accounts)


def test_pods_with_their_own_account_need_none(fake: FakeKube, ctl: RunController) -> None:
    ctl.ensure_step_accounts([pod("a", "users-own")])
    assert fake.accounts == []


def test_a_refusal_propagates_and_is_tried_again_next_cycle(fake: FakeKube, ctl: RunController) -> None:
    attempts: list[str] = []

    def refuse(body: dict[str, Any]) -> bool:
        attempts.append(body["metadata"]["namespace"])
        raise refusal(403, 'serviceaccounts is forbidden: User "op" cannot create resource "serviceaccounts"')

    fake.ensure_service_account = refuse  # type: ignore[method-assign]
    for _ in range(2):
        with pytest.raises(kube.Refused, match="cannot create resource"):
            ctl.ensure_step_accounts([pod("a")])
    assert attempts == ["a", "a"]
    assert not ctl.accounts_ready


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


def test_a_refused_pod_is_shown_once_and_retried_after_a_growing_delay() -> None:
    run = FakeRun(refusals=3)
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


def test_a_refused_service_account_stops_the_pods() -> None:
    run = FakeRun(refusals=0)
    calls: list[str] = []

    def refuse(body: dict[str, Any]) -> bool:
        calls.append(body["metadata"]["namespace"])
        raise refusal(403, 'serviceaccounts is forbidden: User "op" cannot create resource "serviceaccounts"')

    run.kube.ensure_service_account = refuse  # type: ignore[method-assign]
    for _ in range(2):
        run.cycle()
    assert calls == ["ns", "ns"] and run.tries == 0  # no pod is tried without its ServiceAccount
    assert "cannot create resource" in run.status["message"] and len(run.events) == 1


def test_an_invalid_pod_fails_its_step_at_once_with_the_servers_message() -> None:
    """422: the pod itself is invalid (say an env var name the schema let through): the same request
    would be refused for ever, so the step fails with the API server's words and the Run ends."""
    run = FakeRun(refusals=0)
    tries: list[str] = []

    def invalid(body: dict[str, Any]) -> bool:
        tries.append(body["metadata"]["name"])
        exc = ApiException(status=422, reason="Unprocessable Entity")
        exc.body = json.dumps({"message": 'Pod "p" is invalid: spec.containers[0].env[0].name: Invalid value: "1BAD"'})
        raise kube.Refused(f"creating pod {body['metadata']['name']}", exc)

    run.kube.create_pod = invalid  # type: ignore[method-assign]
    run.cycle()
    a = run.status["steps"]["a"]
    assert a["phase"] == "Failed" and "422 Unprocessable Entity" in a["message"] and '"1BAD"' in a["message"]
    assert "podName" not in a
    # the refusal is an observation of a second decision in the same cycle: b blocked, the Run ends at once
    assert [e[1] for e in run.events] == ["PodRefused", "RunFailed"]
    assert run.status["phase"] == "Failed" and run.status["steps"]["b"]["phase"] == "NotExecuted"
    run.cycle()
    assert len(tries) == 1  # never tried again
    assert {c["type"]: c["status"] for c in run.status["conditions"]}["Stalled"] == "True"
