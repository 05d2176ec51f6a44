"""Pure status decisions for a Run that cannot be reconciled now: waiting for its Job or Secret, its pods
refused by the API server (both tried again), or invalid as written (terminal); and the JSON merge patch
from the status a cycle observed to the one it decided."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from cairn.runstate import RunPhase
from cairn_operator.reconcile import run_conditions, ts


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch from old to new: keys that disappeared are set to None (deleted)."""
    out: dict[str, Any] = {}
    for k, v in new.items():
        if isinstance(v, Mapping) and isinstance(old.get(k), Mapping):
            if sub := merge_patch(old[k], v):  # an unchanged mapping adds nothing (an empty patch is no write)
                out[k] = sub
        elif old.get(k) != v:
            out[k] = v
    for k in old:
        if k not in new:
            out[k] = None
    return out


def invalid(
    status: Mapping[str, Any], message: str, generation: int, reason: str = "InvalidJob", now: dt.datetime | None = None
) -> dict[str, Any]:
    """The status of a Run that cannot run as written (its Job graph, config or overrides): Failed,
    Stalled with `reason` (terminal)."""
    at = ts(now or dt.datetime.now(dt.UTC))
    return {
        **status,
        "phase": RunPhase.FAILED.value,
        "message": message,
        "observedGeneration": generation,
        "finishedAt": at,
        "conditions": run_conditions(RunPhase.FAILED, reason, message, generation, at, status.get("conditions")),
    }


def refused(status: Mapping[str, Any], message: str, generation: int, now: dt.datetime | None = None) -> dict[str, Any]:
    """The status of a Run whose pod (or step ServiceAccount) the API server refused: its message shown,
    the rest unchanged (no step is marked started, the Job is not snapshotted, so fixing the Job, the
    namespace or the RBAC lets the next cycle go on). Not finished: every cycle tries again."""
    return pending(status, "FailedCreate", message, generation, now)


def pending(
    status: Mapping[str, Any], reason: str, message: str, generation: int, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The status of a Run that cannot go on yet (its Job or Secret missing, a refused pod): its phase
    kept (Pending before it starts), Reconciling with `reason`; times kept, so a repeat writes nothing."""
    at = ts(now or dt.datetime.now(dt.UTC))
    phase = RunPhase(status.get("phase") or RunPhase.PENDING.value)
    return {
        **status,
        "phase": phase.value,
        "message": message,
        "observedGeneration": generation,
        "conditions": run_conditions(phase, reason, message, generation, at, status.get("conditions")),
    }
