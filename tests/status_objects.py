"""Run and Reexecution objects with the status the operator writes, for tests of the tools that read it
(the kstatus library, the Argo CD health checks). The conditions come from the operator's own
`run_conditions` / `rx_conditions`, so these tests check what the operator really writes."""

from __future__ import annotations

from typing import Any

from cairn.runstate import RunPhase
from cairn_operator.reconcile import run_conditions, rx_conditions

G, V = "cairn.dev", "v1alpha1"
T0 = "2025-01-01T00:00:00Z"


def run_obj(
    phase: str | None, message: str = "", reason: str = "", generation: int = 1, observed: int = 1
) -> dict[str, Any]:
    """A Run in `phase` (None: no status yet); `reason` defaults to the phase (e.g. InvalidJob for Failed)."""
    obj: dict[str, Any] = {
        "apiVersion": f"{G}/{V}",
        "kind": "Run",
        "metadata": {"name": "r", "namespace": "n", "generation": generation},
        "spec": {"jobRef": {"name": "j"}},
    }
    if phase is not None:
        conds = run_conditions(RunPhase(phase), reason or phase, message, observed, T0)
        obj["status"] = {"phase": phase, "observedGeneration": observed, "conditions": conds, "message": message}
    return obj


def rx_obj(phase: str | None, message: str = "", generation: int = 1, observed: int = 1) -> dict[str, Any]:
    """A Reexecution in `phase` (Pending, Running, Planned, Succeeded, Failed, Invalid; None: no status)."""
    obj: dict[str, Any] = {
        "apiVersion": f"{G}/{V}",
        "kind": "Reexecution",
        "metadata": {"name": "rx", "namespace": "n", "generation": generation},
        "spec": {"parentRun": "r"},
    }
    if phase is not None:
        conds = rx_conditions(phase, phase, message, observed, T0)
        obj["status"] = {"phase": phase, "observedGeneration": observed, "conditions": conds, "message": message}
    return obj
