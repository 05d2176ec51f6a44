"""The Argo CD health checks of deploy/argocd (Lua, run with lupa) for every case of the status contract.

`health(kind, obj)` runs deploy/argocd/cairn.dev/<kind>/health.lua the way Argo CD does (the object as
the global `obj`, the returned table is the health) and works on real objects too, e.g. the output of
`kubectl get run NAME -o json`. Each kind's health_test.yaml (Argo CD's own test format for
resource_customizations) is checked here as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cairn_operator.reconcile import condition
from tests.status_objects import T0, run_obj, rx_obj

# Lua 5.1, as Argo CD's gopher-lua speaks it.
lupa = pytest.importorskip("lupa.lua51")

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ROOT / "deploy" / "argocd" / "cairn.dev"
HEALTH = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """Argo CD's health of `obj` (a Run or Reexecution as a dict): {"status": ..., "message": ...}."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute((CHECKS / kind / "health.lua").read_text())
    out = {str(k): str(v) for k, v in hs.items()}
    assert out.get("status") in HEALTH, out
    out.setdefault("message", "")
    return out


# --- Run ---------------------------------------------------------------------------------------


def test_a_run_without_status_is_progressing() -> None:
    assert health("Run", run_obj(None)) == {
        "status": "Progressing",
        "message": "Waiting for the operator to pick up the Run",
    }


@pytest.mark.parametrize("phase", ["Pending", "Running"])
def test_a_pending_or_running_run_is_progressing_with_the_reconciling_message(phase: str) -> None:
    assert health("Run", run_obj(phase, message="1/3 steps succeeded")) == {
        "status": "Progressing",
        "message": "1/3 steps succeeded",
    }
    assert health("Run", run_obj(phase)) == {"status": "Progressing", "message": phase}


def test_a_succeeded_run_is_healthy() -> None:
    assert health("Run", run_obj("Succeeded", message="3/3 steps succeeded")) == {
        "status": "Healthy",
        "message": "3/3 steps succeeded",
    }
    assert health("Run", run_obj("Succeeded"))["status"] == "Healthy"


@pytest.mark.parametrize(
    ("phase", "reason", "message"),
    [
        ("Failed", "Failed", "step unreliable failed: Exception: blah"),
        ("Failed", "InvalidJob", "Job 'no-such-job' not found (spec.jobRef.name)"),
        ("Canceled", "Canceled", "canceled (spec.cancel)"),
    ],
)
def test_a_stalled_run_is_degraded_with_the_stalled_message(phase: str, reason: str, message: str) -> None:
    """A canceled Run is Degraded too, as kstatus says Failed for it (see deploy/argocd/README.md)."""
    assert health("Run", run_obj(phase, message=message, reason=reason)) == {"status": "Degraded", "message": message}
    assert health("Run", run_obj(phase, reason=reason)) == {"status": "Degraded", "message": reason}


@pytest.mark.parametrize("phase", ["Pending", "Running", "Succeeded", "Failed", "Canceled"])
def test_an_unobserved_generation_is_progressing_whatever_the_conditions(phase: str) -> None:
    assert health("Run", run_obj(phase, generation=3, observed=2)) == {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 3",
    }


@pytest.mark.parametrize(
    ("phase", "want"),
    [
        (None, "Progressing"),
        ("Pending", "Progressing"),
        ("Running", "Progressing"),
        ("Succeeded", "Healthy"),
        ("Failed", "Degraded"),
        ("Canceled", "Degraded"),
    ],
)
def test_a_run_without_kstatus_conditions_is_read_from_its_phase(phase: str | None, want: str) -> None:
    """An operator older than the contract wrote only phase and Succeeded/Failed conditions."""
    obj = run_obj(None)
    obj["status"] = {
        "phase": phase,
        "message": "m",
        "conditions": [condition("Succeeded", "True" if phase == "Succeeded" else "False", "x", "", T0, 1)],
    }
    if phase is None:
        del obj["status"]["phase"]
    assert health("Run", obj) == {"status": want, "message": "m"}


# --- Reexecution -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "want"),
    [
        ("Pending", "Progressing"),  # waiting for the parent or planning
        ("Running", "Progressing"),  # the child run runs
        ("Planned", "Healthy"),  # a dry run, planned
        ("Succeeded", "Healthy"),  # the child run succeeded
        ("Failed", "Degraded"),  # the child run failed
        ("Invalid", "Degraded"),  # an invalid request
    ],
)
def test_reexecutions(phase: str, want: str) -> None:
    assert health("Reexecution", rx_obj(phase, message=f"rx {phase}")) == {"status": want, "message": f"rx {phase}"}
    assert health("Reexecution", rx_obj(phase))["status"] == want
    assert health("Reexecution", rx_obj(phase, generation=2, observed=1)) == {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 2",
    }
    no_conditions = rx_obj(phase, message="m")
    del no_conditions["status"]["conditions"]
    assert health("Reexecution", no_conditions) == {"status": want, "message": "m"}


def test_a_reexecution_without_status_is_progressing() -> None:
    assert health("Reexecution", rx_obj(None))["status"] == "Progressing"


# --- Argo CD's own test files ------------------------------------------------------------------


def _argo_cases() -> list[tuple[str, str, dict[str, str]]]:
    cases = []
    for spec in sorted(CHECKS.glob("*/health_test.yaml")):
        for t in yaml.safe_load(spec.read_text())["tests"]:
            cases.append((spec.parent.name, t["inputPath"], t["healthStatus"]))
    return cases


@pytest.mark.parametrize(("kind", "input_path", "want"), _argo_cases())
def test_argo_cd_health_test_yaml(kind: str, input_path: str, want: dict[str, str]) -> None:
    obj = yaml.safe_load((CHECKS / kind / input_path).read_text())
    assert obj["kind"] == kind
    got = health(kind, obj)
    assert got["status"] == want["status"]
    if "message" in want:
        assert got["message"] == want["message"]


def test_every_kind_has_argo_cd_test_cases() -> None:
    assert {k for k, _, _ in _argo_cases()} == {"Run", "Reexecution"}


def test_the_readme_snippet_is_the_health_checks_verbatim() -> None:
    text = (CHECKS.parent / "README.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    cm = yaml.safe_load(block)
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    assert cm["data"] == {
        f"resource.customizations.health.cairn.dev_{kind}": (CHECKS / kind / "health.lua").read_text()
        for kind in ("Run", "Reexecution")
    }
