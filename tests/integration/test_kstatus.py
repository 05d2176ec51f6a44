"""Our status contract read by the real kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus/status).

kstatus is what kpt, Flux, Config Sync and cli-utils' apply/wait use to tell whether an object is
InProgress, Current or Failed. The first tests feed it hand-written Runs and Reexecutions shaped as the
operator's contract says (README of deploy/argocd has the table); the last one reads live Runs from
the operator on the local control plane. kstatus is compiled from its Go module on demand and cached
(:mod:`cairn_dev.builds.kstatus`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cairn_dev.builds import kstatus as kstatusbuild
from cairn_operator.reconcile import condition
from tests.integration.test_operator import apply, get_run, ns, sample
from tests.status_objects import T0, run_obj, rx_obj

__all__ = ["ns"]  # the fixture, re-used from test_operator


@pytest.fixture(scope="session")
def kstatus_bin() -> Path:
    """The kstatus command, built from cli-utils on first use (about a minute cold) and cached afterwards."""
    return kstatusbuild.build(say=lambda _: None)


def kstatus(binary: Path, obj: dict[str, Any]) -> tuple[str, str]:
    [res] = kstatusbuild.compute(obj, binary=binary)
    return res.status, res.message


@pytest.mark.parametrize("phase", ["Pending", "Running"])
def test_a_pending_or_running_run_is_in_progress(kstatus_bin: Path, phase: str) -> None:
    assert kstatus(kstatus_bin, run_obj(phase, message="2/3 steps done")) == ("InProgress", "2/3 steps done")


def test_a_succeeded_run_is_current(kstatus_bin: Path) -> None:
    assert kstatus(kstatus_bin, run_obj("Succeeded")) == ("Current", "Resource is Ready")


@pytest.mark.parametrize(
    ("phase", "reason", "message"),
    [
        ("Failed", "Failed", "step unreliable failed: Exception: blah"),
        ("Canceled", "Canceled", "canceled by spec.cancel"),
        ("Failed", "InvalidJob", "Job 'no-such-job' not found (spec.jobRef.name)"),
    ],
)
def test_a_stalled_run_is_failed_with_its_message(kstatus_bin: Path, phase: str, reason: str, message: str) -> None:
    assert kstatus(kstatus_bin, run_obj(phase, message=message, reason=reason)) == ("Failed", message)


@pytest.mark.parametrize("phase", ["Pending", "Running", "Succeeded", "Failed", "Canceled"])
def test_an_unobserved_generation_is_in_progress_whatever_the_conditions(kstatus_bin: Path, phase: str) -> None:
    status, message = kstatus(kstatus_bin, run_obj(phase, generation=3, observed=2))
    assert status == "InProgress"
    assert "generation" in message.lower()


def test_several_objects_at_once_as_a_list(kstatus_bin: Path) -> None:
    objs = [run_obj("Running"), run_obj("Succeeded"), run_obj("Failed", message="x")]
    assert [r.status for r in kstatusbuild.compute(objs, binary=kstatus_bin)] == ["InProgress", "Current", "Failed"]
    listed = {"apiVersion": "v1", "kind": "List", "items": objs}
    assert [r.status for r in kstatusbuild.compute(listed, binary=kstatus_bin)] == ["InProgress", "Current", "Failed"]


def test_caveat_a_run_without_status_or_conditions_reads_current(kstatus_bin: Path) -> None:
    """kstatus cannot tell "not reconciled yet" from "done" when there is no status: a new Run reads Current
    until the operator writes Reconciling=True (Argo CD's check says Progressing; see deploy/argocd)."""
    assert kstatus(kstatus_bin, run_obj(None))[0] == "Current"
    assert kstatus(kstatus_bin, {**run_obj(None), "status": {"observedGeneration": 1, "conditions": []}})[0] == (
        "Current"
    )


def test_ready_false_alone_reads_in_progress(kstatus_bin: Path) -> None:
    """Without Reconciling/Stalled, kstatus falls back to Ready: False (or Unknown) is InProgress. So a
    finished-but-failed object must say Stalled=True, not just Ready=False."""
    obj = run_obj(None)
    obj["status"] = {"observedGeneration": 1, "conditions": [condition("Ready", "False", "Failed", "boom", T0, 1)]}
    assert kstatus(kstatus_bin, obj) == ("InProgress", "boom")


def test_a_run_being_deleted_is_terminating(kstatus_bin: Path) -> None:
    obj = run_obj("Running")
    obj["metadata"]["deletionTimestamp"] = T0
    assert kstatus(kstatus_bin, obj)[0] == "Terminating"


@pytest.mark.parametrize(
    ("phase", "want"),
    [
        ("Pending", "InProgress"),
        ("Running", "InProgress"),
        ("Planned", "Current"),
        ("Succeeded", "Current"),
        ("Failed", "Failed"),
        ("Invalid", "Failed"),
    ],
)
def test_reexecutions(kstatus_bin: Path, phase: str, want: str) -> None:
    msg = "Resource is Ready" if want == "Current" else f"rx {phase}"  # Current: kstatus's own words
    assert kstatus(kstatus_bin, rx_obj(phase, message=f"rx {phase}")) == (want, msg)
    assert kstatus(kstatus_bin, rx_obj(phase, generation=2, observed=1))[0] == "InProgress"


def test_live_runs_have_kstatus(cairn_operator: Any, kube: Any, ns: str, kstatus_bin: Path) -> None:
    """The seed samples on the real operator: InProgress while they run, then Current / Failed.

    Needs the operator's kstatus conditions (Reconciling/Ready/Stalled); with only Succeeded/Failed
    conditions kstatus reads every Run as Current."""
    apply(kube, ns, sample("job-unreliable.yaml"))
    apply(kube, ns, sample("run-unreliable-fails.yaml"))
    apply(kube, ns, sample("run-unreliable-succeeds.yaml"))
    names = ("unreliable-succeeds", "unreliable-fails")
    seen: list[tuple[str, str | None, str, str]] = []  # (run, phase, kstatus, message)
    final: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 120
    while len(final) < len(names):
        assert time.monotonic() < deadline, f"runs did not finish; seen={seen}"
        for name in names:
            if name in final:
                continue
            run = get_run(kube, ns, name)
            phase = (run.get("status") or {}).get("phase")
            status, message = kstatus(kstatus_bin, run)
            seen.append((name, phase, status, message))
            if phase in ("Succeeded", "Failed", "Canceled"):
                final[name] = run
        time.sleep(0.1)

    ok, bad = final["unreliable-succeeds"], final["unreliable-fails"]
    assert ok["status"]["phase"] == "Succeeded" and bad["status"]["phase"] == "Failed"
    assert kstatus(kstatus_bin, ok)[0] == "Current", ok["status"]
    status, message = kstatus(kstatus_bin, bad)
    assert status == "Failed", bad["status"]
    assert message, "the Stalled condition should say why the run failed"
    running = [s for s in seen if s[1] in ("Pending", "Running")]
    assert running, f"never saw a run Pending or Running: {seen}"
    assert all(s[2] == "InProgress" for s in running), [s for s in running if s[2] != "InProgress"]
    for run in (ok, bad):
        assert run["status"]["observedGeneration"] == run["metadata"]["generation"]

    # The Argo CD health checks of deploy/argocd agree on the live objects.
    from tests.unit.test_argocd_health import health

    assert health("Run", ok)["status"] == "Healthy"
    assert health("Run", bad) == {"status": "Degraded", "message": message}
