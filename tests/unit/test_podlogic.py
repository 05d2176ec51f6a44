"""The local node's decisions, environment and pod statuses, as tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cairn_dev import podlogic
from cairn_dev.podlogic import Action, ConfigError, LocalView, PodView, decide

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def pv(
    phase: str = "Pending",
    deleting: bool = False,
    deadline: int | None = None,
    started: dt.datetime | None = None,
    container_started: bool = False,
) -> PodView:
    return PodView(
        uid="u",
        phase=phase,
        deleting=deleting,
        active_deadline=deadline,
        start_time=started,
        container_started=container_started,
    )


NONE = LocalView(claimed=False, running=False, exited=False)
RUNNING = LocalView(claimed=True, running=True, exited=False)
EXITED = LocalView(claimed=True, running=False, exited=True)
LOST = LocalView(claimed=True, running=False, exited=False)


@pytest.mark.parametrize(
    ("pod", "local", "now", "want"),
    [
        (pv(), NONE, T0, Action.START),
        (pv("Running", container_started=True), NONE, T0, Action.REPORT_LOST),  # never run twice
        (pv(), RUNNING, T0, Action.REPORT_RUNNING),
        (pv("Running"), RUNNING, T0, Action.NOTHING),
        (pv("Running"), EXITED, T0, Action.REPORT_EXIT),
        (pv("Running"), LOST, T0, Action.REPORT_LOST),
        (pv("Succeeded"), EXITED, T0, Action.NOTHING),
        (pv("Failed"), NONE, T0, Action.NOTHING),
        (pv("Running", deleting=True), RUNNING, T0, Action.KILL_DELETED),
        (pv("Running", deleting=True), EXITED, T0, Action.FINALIZE_DELETE),
        (pv("Pending", deleting=True), NONE, T0, Action.FINALIZE_DELETE),
        (pv("Succeeded", deleting=True), EXITED, T0, Action.FINALIZE_DELETE),
        (pv("Running", deadline=5, started=T0), RUNNING, T0 + dt.timedelta(seconds=4), Action.NOTHING),
        (pv("Running", deadline=5, started=T0), RUNNING, T0 + dt.timedelta(seconds=5), Action.KILL_DEADLINE),
        (pv("Running", deadline=5, started=T0), EXITED, T0 + dt.timedelta(seconds=9), Action.REPORT_EXIT),
    ],
)
def test_decide(pod: PodView, local: LocalView, now: dt.datetime, want: Action) -> None:
    assert decide(pod, local, now) is want


def pod(**container: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p1",
            "namespace": "ns",
            "uid": "uid-1",
            "labels": {"app": "a"},
            "annotations": {"x/y": "z"},
        },
        "spec": {
            "nodeName": "cairn-local",
            "serviceAccountName": "default",
            "containers": [{"name": "main", "image": "img", **container}],
        },
        "status": {"phase": "Pending"},
    }


SECRETS = {("ns", "s3"): {"KEY": "secret-value", "OTHER": "o"}}
CONFIGMAPS = {("ns", "cfg"): {"mode": "fast"}}


def lookup(table: dict[tuple[str, str], dict[str, str]]) -> podlogic.Lookup:
    return lambda ns, name: table.get((ns, name))


def env_of(p: dict[str, Any]) -> dict[str, str]:
    return podlogic.resolve_env(p, p["spec"]["containers"][0], lookup(SECRETS), lookup(CONFIGMAPS))


def test_env_resolves_values_refs_and_expansion() -> None:
    p = pod(
        envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        env=[
            {"name": "A", "value": "1"},
            {"name": "B", "value": "$(A)-$(MISSING)-$$(A)"},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "KEY"}}},
            {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "AN", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['x/y']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
        ],
    )
    assert env_of(p) == {
        "CFG_mode": "fast",
        "A": "1",
        "B": "1-$(MISSING)-$(A)",
        "S": "secret-value",
        "C": "fast",
        "N": "p1",
        "NS": "ns",
        "L": "a",
        "AN": "z",
        "NODE": "cairn-local",
        "IP": "127.0.0.1",
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}],
            'secret "nope" not found',
        ),
        (
            [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "zz"}}}],
            "couldn't find key zz in Secret ns/s3",
        ),
        (
            [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}],
            'configmap "gone" not found',
        ),
        ([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}], "unsupported fieldRef"),
    ],
)
def test_env_errors_name_what_is_missing(env: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        env_of(pod(env=env))


def test_env_from_missing_secret_is_an_error_unless_optional() -> None:
    with pytest.raises(ConfigError, match='secret "x" not found'):
        env_of(pod(envFrom=[{"secretRef": {"name": "x"}}]))
    assert env_of(pod(envFrom=[{"secretRef": {"name": "x", "optional": True}}])) == {}


@pytest.mark.parametrize(
    ("file_text", "log_text", "policy", "code", "want"),
    [
        ("done", "log", "File", 0, "done"),
        ("", "a\nb\n", "File", 1, ""),
        ("", "a\nb\n", "FallbackToLogsOnError", 1, "a\nb"),
        ("", "a\nb\n", "FallbackToLogsOnError", 0, ""),
        ("x" * 5000, "", "File", 0, "x" * 4096),
        (
            "",
            "\n".join(str(i) for i in range(200)),
            "FallbackToLogsOnError",
            2,
            "\n".join(str(i) for i in range(120, 200)),
        ),
    ],
)
def test_termination_message(file_text: str, log_text: str, policy: str, code: int, want: str) -> None:
    assert podlogic.termination_message(file_text, log_text, policy, code) == want


def test_terminated_status_reports_exit_code_and_message() -> None:
    st = podlogic.terminated_status(pod(), 3, "boom", "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z")
    assert st["phase"] == "Failed"
    term = st["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["message"]) == (3, "Error", "boom")
    ok = podlogic.terminated_status(pod(), 0, "", "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z")
    assert ok["phase"] == "Succeeded"
    assert ok["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def test_deadline_makes_the_pod_failed_even_with_exit_zero() -> None:
    st = podlogic.terminated_status(
        pod(), 0, "", "t0", "t1", pod_reason=podlogic.DEADLINE_REASON, pod_message=podlogic.DEADLINE_MESSAGE
    )
    assert (st["phase"], st["reason"]) == ("Failed", "DeadlineExceeded")


def test_running_status_keeps_the_first_start_time() -> None:
    p = pod()
    p["status"]["startTime"] = "2026-01-01T00:00:00Z"
    st = podlogic.running_status(p, "2026-01-01T00:00:09Z")
    assert st["startTime"] == "2026-01-01T00:00:00Z"
    assert st["containerStatuses"][0]["state"] == {"running": {"startedAt": "2026-01-01T00:00:09Z"}}
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"


def test_pod_view_of_an_api_pod() -> None:
    p = pod()
    p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    p["spec"]["activeDeadlineSeconds"] = 7
    p["status"] = {
        "phase": "Running",
        "startTime": "2026-01-01T00:00:00Z",
        "containerStatuses": [{"state": {"running": {}}}],
    }
    v = PodView.of(p)
    assert v == PodView(
        uid="uid-1", phase="Running", deleting=True, active_deadline=7, start_time=T0, container_started=True
    )


@pytest.mark.parametrize(("lines", "want"), [(None, b"a\nb\nc"), (2, b"b\nc"), (0, b""), (10, b"a\nb\nc")])
def test_tail_bytes(lines: int | None, want: bytes) -> None:
    from cairn_dev.kubeletapi import tail_bytes

    assert tail_bytes(b"a\nb\nc", lines) == want
