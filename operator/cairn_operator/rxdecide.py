"""A Reexecution's decisions as a pure function: `decide(observed, plan) -> Decision`.

`observed` is what the handler read: the Reexecution, its parent Run and the Run named as its child
(each None when absent), and the parent's other live children when `concurrencyPolicy: Forbid`. The
decision is the Reexecution's next phase (with reason, message and extra status fields) and the actions
to carry out: create the child Run, protect the parent (a finalizer, added only once the child exists),
post an Event. Planning reads storage (the outputs to reuse must exist), so the handler passes it in as
`plan`; everything else is decided here, with no I/O, and the same observation always gives the same
decision: the handler may run it on every watch event of the Reexecution, of its parent and of its
child, after a restart or a missed event, and nothing is done twice (the child's name is fixed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from cairn.contract import ANNOTATION_MODE, API_VERSION, FINALIZER_CHILDREN, RUN, RunPhase, RxMode, RxPhase
from cairn.errors import CairnError, MissingOutputsError
from cairn.planner import Mode, Plan, Request, RunView
from cairn_operator.graph import InvalidJob, build, config_problem
from cairn_operator.models import Execution, JobSpec, ReexecutionSpec, RunSpec, StepOverride
from cairn_operator.reconcile import Event, rx_conditions, ts
from cairn_operator.replan import child_execution, parent_view
from cairn_operator.resources import (
    LABEL_PARENT,
    LABEL_ROOT,
    LABEL_RX,
    add_locations,
    owner_reference,
    step_versions,
    without_gitops,
)

#: The finalizer on a parent Run while a child reads its outputs.
PROTECT = FINALIZER_CHILDREN
#: Phases after which a Reexecution does nothing more (a dry run's Planned is one too).
RX_DONE = frozenset(p.value for p in RxPhase if p.done)
MODES: Mapping[RxMode, Mode] = MappingProxyType(
    {
        RxMode.ALL: Mode.ALL,
        RxMode.SELECTED: Mode.SELECTED,
        RxMode.FROM_SELECTED: Mode.FROM_SELECTED,
        RxMode.FROM_FAILURE: Mode.FROM_FAILURE,
        RxMode.STALE: Mode.STALE,
    }
)
FINISHED = frozenset(p.value for p in RunPhase if p.finished)


def rx_active(status: Mapping[str, Any] | None, spec: Mapping[str, Any] | None) -> bool:
    phase = (status or {}).get("phase")
    return phase not in RX_DONE and not (phase == RxPhase.PLANNED and (spec or {}).get("dryRun"))


def child_name(rx: ReexecutionSpec, rx_uid: str) -> str:
    """The child Run's name: fixed for a Reexecution, so no retry, restart or second replica ever makes
    a second child. At most 63 characters (it is also a label value)."""
    if rx.runName:
        return rx.runName
    digest = hashlib.sha256(rx_uid.encode()).hexdigest()[:5]
    return f"{rx.parentRun[: 63 - 9].rstrip('-.')}-rx-{digest}"


@dataclass(frozen=True)
class RxObserved:
    namespace: str
    name: str
    uid: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    parent: Mapping[str, Any] | None  # the parent Run, None if it does not exist
    child: Mapping[str, Any] | None  # the Run with the child's name, None if it does not exist
    live_siblings: Sequence[str] = ()  # the parent's other unfinished children (concurrencyPolicy Forbid)
    job: Mapping[str, Any] | None = None  # mode Stale: the parent's Job as it is now (None: not found)


@dataclass(frozen=True)
class Located:
    """A plan and where the parent's storage is (to name each reused output's full location)."""

    plan: Plan
    bucket: str | None
    prefix: str


#: (Job snapshot, parent view, request, rerun missing outputs) -> the checked plan; raises the planner's errors.
PlanFn = Callable[[JobSpec, RunView, Request, bool], Located]


@dataclass(frozen=True)
class CreateChild:
    body: dict[str, Any]


@dataclass(frozen=True)
class ProtectParent:
    """Add PROTECT to the parent's finalizers (optimistically, at the resourceVersion read)."""

    name: str
    finalizers: tuple[str, ...]
    resource_version: str


RxAction = CreateChild | ProtectParent | Event


@dataclass
class Decision:
    phase: str
    message: str
    reason: str | None = None  # the conditions' reason; the phase when None
    extra: dict[str, Any] = field(default_factory=dict)  # childRun, plan
    actions: list[RxAction] = field(default_factory=list)

    def status(self, old: Mapping[str, Any], generation: int, now: dt.datetime) -> dict[str, Any]:
        """The Reexecution's next status; condition times kept while their status stays."""
        return rx_status(old, self.phase, self.message, generation, now, self.reason, **self.extra)


def rx_status(
    status: Mapping[str, Any],
    phase: str,
    message: str,
    generation: int,
    now: dt.datetime,
    reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        **status,
        "phase": str(phase),  # a plain string (RxPhase is one too)
        "message": message,
        "observedGeneration": generation,
        "conditions": rx_conditions(phase, reason or phase, message, generation, ts(now), status.get("conditions")),
        **extra,
    }


def ours(child: Mapping[str, Any], name: str, uid: str) -> bool:
    """Is this Run the child of the Reexecution `name` (uid)? Its owner reference says so (or, for a child
    made before owner references, the cairn.dev/reexecution label)."""
    meta = child.get("metadata") or {}
    refs = meta.get("ownerReferences") or []
    if refs:
        return any(r.get("uid") == uid for r in refs)
    return (meta.get("labels") or {}).get(LABEL_RX) == name


def decide(obs: RxObserved, plan: PlanFn) -> Decision:
    """The next phase and actions of a Reexecution."""
    try:
        rx = ReexecutionSpec.model_validate(dict(obs.spec))
    except ValidationError as exc:
        return Decision(RxPhase.INVALID, str(exc))
    child = child_name(rx, obs.uid)
    if rx.runName and rx.runName == rx.parentRun:
        return Decision(
            RxPhase.INVALID, f"spec.runName {rx.runName!r} is the parent Run's name: name the child differently"
        )
    if obs.child is not None:
        return _follow(obs, rx, child, obs.child)
    if obs.status.get("childRun") == child:  # it was made, and is gone: deleted (by a user, say)
        return Decision(RxPhase.FAILED, f"child Run {child} was deleted", "ChildRunDeleted")
    if "/" in rx.parentRun:
        return Decision(
            RxPhase.INVALID,
            f"spec.parentRun {rx.parentRun!r} names another namespace: a Reexecution may only name a Run in "
            "its own namespace",
        )
    parent = obs.parent
    if parent is None:  # applied before its parent (e.g. by a GitOps tool): it waits, said once
        msg = (
            f"waiting for the parent Run {rx.parentRun!r}: not found in namespace {obs.namespace}; the "
            "re-execution goes on when it is created (or fix spec.parentRun)"
        )
        said = [] if obs.status.get("message") == msg else [Event("ParentNotFound", msg, "Warning")]
        return Decision(RxPhase.PENDING, msg, "ParentNotFound", actions=list(said))
    pmeta = parent.get("metadata") or {}
    if pmeta.get("deletionTimestamp"):
        return Decision(
            RxPhase.FAILED,
            f"the parent Run {rx.parentRun} is being deleted: its outputs cannot be reused; re-create it (or "
            "re-execute another Run)",
            "ParentDeleted",
        )
    pstatus = parent.get("status") or {}
    if pstatus.get("phase") not in FINISHED:
        now = pstatus.get("phase") or RunPhase.PENDING.value
        return Decision(
            RxPhase.PENDING,
            f"waiting for the parent Run {rx.parentRun} to finish (it is {now})",
            "WaitingForParent",
        )
    if rx.concurrencyPolicy == "Forbid" and obs.live_siblings:
        live = ", ".join(sorted(obs.live_siblings))
        msg = f"concurrencyPolicy Forbid: waiting for {live} (another child of the parent)"
        return Decision(RxPhase.PENDING, msg, "ConcurrencyPolicy")
    if not pstatus.get("jobSnapshot"):  # it failed before it started (InvalidJob, UnknownSteps...)
        why = pstatus.get("message") or "no reason given"
        return Decision(
            RxPhase.INVALID,
            f"the parent Run {rx.parentRun} never started (it has no Job snapshot: {why}): there is nothing to "
            "re-execute; fix what it says and apply a new Run",
            "ParentNeverStarted",
        )
    snapshot = pstatus.get("jobSnapshot") or {}
    root = (pmeta.get("labels") or {}).get(LABEL_ROOT) or rx.parentRun
    whose = "the parent Run's Job snapshot"
    if rx.mode is RxMode.STALE:  # compared with the Job as it is now: the child runs today's Job
        job_name = ((parent.get("spec") or {}).get("jobRef") or {}).get("name") or "?"
        if obs.job is None:
            msg = (
                f"waiting for Job {job_name!r}: a Stale re-execution compares the parent's steps with the Job as "
                f"it is now, and it is not found in namespace {obs.namespace}"
            )
            said = [] if obs.status.get("message") == msg else [Event("JobNotFound", msg, "Warning")]
            return Decision(RxPhase.PENDING, msg, "JobNotFound", actions=list(said))
        snapshot, whose = dict(obs.job.get("spec") or {}), f"Job {job_name}"
    try:
        job_spec = JobSpec.model_validate(snapshot)
        graph = build(job_spec)
    except (InvalidJob, ValidationError) as exc:
        return Decision(RxPhase.INVALID, f"{whose}: {exc}")
    problem = config_problem(graph, rx.config, rx.overrides)
    if problem:
        return Decision(RxPhase.INVALID, problem[1], problem[0])
    current = (
        step_versions(job_spec, _child_config(rx, parent), _child_overrides(rx)) if rx.mode is RxMode.STALE else {}
    )
    try:
        located = plan(
            job_spec,
            parent_view(rx.parentRun, pstatus, root),
            Request(MODES[rx.mode], tuple(rx.stepSelection), current=current),
            rx.missingOutputs == "Rerun",
        )
    except MissingOutputsError as exc:
        return Decision(RxPhase.FAILED, str(exc), "MissingOutputs")
    except CairnError as exc:
        return Decision(RxPhase.INVALID, str(exc))
    except Exception as exc:  # the parent's storage cannot be read (unreachable, credentials refused)
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        msg = (
            f"cannot read the parent's storage to check the outputs to reuse ({type(exc).__name__}: {why}); "
            "tried again on the next check: fix the Job's storage or its Secret"
        )
        said = [] if obs.status.get("message") == msg else [Event("StorageUnavailable", msg, "Warning")]
        return Decision(RxPhase.PENDING, msg, "StorageUnavailable", actions=list(said))
    p = located.plan
    execution = child_execution(p, rx.parentRun, root, snapshot, pstatus)
    planned = plan_status(p, execution, located.bucket, located.prefix)
    if rx.dryRun:
        return Decision(RxPhase.PLANNED, f"dry run: {len(p.to_run)} step(s) would run", extra={"plan": planned})
    body = child_body(obs, rx, child, root, parent, execution)
    created = f"created Run {child}: {len(p.to_run)} step(s) to execute, {len(execution.reused)} reused"
    return Decision(
        RxPhase.RUNNING,
        f"child Run {child} created",
        extra={"childRun": child, "plan": planned},
        actions=[CreateChild(body), *_protect(parent), Event("ChildRunCreated", created)],
    )


def _follow(obs: RxObserved, rx: ReexecutionSpec, child: str, run: Mapping[str, Any]) -> Decision:
    """The child exists: report its phase; protect the parent while it runs (level-triggered: a protection
    that failed after the create is added by the next decision)."""
    if not ours(run, obs.name, obs.uid):
        return Decision(
            RxPhase.INVALID,
            f"spec.runName {child!r} names an existing Run that is not this Reexecution's child: choose a name "
            "no Run has (or leave spec.runName out for a generated one)",
            "RunNameTaken",
        )
    phase = (run.get("status") or {}).get("phase") or RunPhase.PENDING.value
    new = RxPhase.of_child(phase)
    actions: list[RxAction] = []
    live = phase not in FINISHED and not (run.get("metadata") or {}).get("deletionTimestamp")
    if live and obs.parent is not None and not (obs.parent.get("metadata") or {}).get("deletionTimestamp"):
        actions.extend(_protect(obs.parent))
    extra: dict[str, Any] = {"childRun": child}
    return Decision(new, f"child Run {child} is {phase}", phase, extra, actions)


def _protect(parent: Mapping[str, Any]) -> list[RxAction]:
    meta = parent.get("metadata") or {}
    finalizers = tuple(meta.get("finalizers") or ())
    if PROTECT in finalizers:
        return []
    return [ProtectParent(meta["name"], (*finalizers, PROTECT), meta.get("resourceVersion") or "")]


def _child_config(rx: ReexecutionSpec, parent: Mapping[str, Any]) -> Any:
    """The child's config: the Reexecution's, else the parent's."""
    return rx.config if rx.config is not None else (parent.get("spec") or {}).get("config")


def _child_overrides(rx: ReexecutionSpec) -> dict[str, StepOverride]:
    """The child's overrides: the Reexecution's only. A Run's overrides (per-step env, image) are not
    inherited by its children, as a local re-execution's `step_env` is not (the run config is, see
    `_child_config`, as in Dagster): a Run that failed because of an override is re-executed without it."""
    return dict(rx.overrides or {})


def retry_spec(run: str, spec: RunSpec) -> dict[str, Any]:
    """The spec of the Reexecution a Run's `retryPolicy` creates, as a user would write it: from failure
    (or every step) with the failed Run's own overrides, since a child inherits none. A retry runs its
    steps as the failed Run ran them."""
    assert spec.retryPolicy is not None
    mode = spec.retryPolicy.strategy.mode.value
    out: dict[str, Any] = {"parentRun": run, "mode": mode}
    if spec.overrides:
        out["overrides"] = {k: v.model_dump(exclude_none=True) for k, v in spec.overrides.items()}
    return out


#: Reused outputs past which a Reexecution's plan lists each by key alone, without bucket and uri (a
#: 1,000-way map's plan stays well under the API server's object size limit).
LARGE_PLAN_OUTPUTS = 500


def plan_status(p: Plan, execution: Execution, bucket: str | None = None, prefix: str = "") -> dict[str, Any]:
    reused = [
        {"step": step, "output": o, "sourceRun": r.sourceRun, "key": ref.key, "etag": ref.etag}
        for step, r in execution.reused.items()
        for o, ref in r.outputs.items()
    ]
    if len(reused) <= LARGE_PLAN_OUTPUTS:  # a large plan says where its outputs are only by key (status size)
        add_locations(reused, bucket, prefix)
    out: dict[str, Any] = {
        "steps": [{"name": s, "reason": r} for s, r in p.to_run],
        "reused": reused,
        "skipped": dict(p.skipped),
    }
    if p.versions:
        out["versions"] = {s: {"old": old, "new": new} for s, (old, new) in p.versions.items()}
    if p.remapped:  # a dynamic step runs again: its maps run whole over the keys it emits then
        out["remapped"] = {f"{step}.{output}": list(keys) for (step, output), keys in p.remapped.items()}
    return out


def child_body(
    obs: RxObserved,
    rx: ReexecutionSpec,
    child: str,
    root: str,
    parent: Mapping[str, Any],
    execution: Execution,
) -> dict[str, Any]:
    """The child Run: owned by its Reexecution (pruning the Reexecution removes only it), linked to its
    parent and root by labels, never carrying a GitOps tool's tracking labels."""
    pspec = parent.get("spec") or {}
    overrides = {k: v.model_dump(exclude_none=True) for k, v in _child_overrides(rx).items()}
    spec = {
        "jobRef": pspec.get("jobRef"),
        "config": _child_config(rx, parent),
        "overrides": overrides or None,
        "maxParallel": pspec.get("maxParallel"),
        "podGC": pspec.get("podGC"),
        "retryPolicy": pspec.get("retryPolicy"),
        "execution": execution.model_dump(exclude_none=True),
    }
    return {
        "apiVersion": API_VERSION,
        "kind": RUN.kind,
        "metadata": {
            "name": child,
            "namespace": obs.namespace,
            "labels": {**without_gitops(rx.labels), LABEL_PARENT: rx.parentRun, LABEL_ROOT: root, LABEL_RX: obs.name},
            "annotations": {ANNOTATION_MODE: rx.mode.value},
            "ownerReferences": [owner_reference("Reexecution", obs.name, obs.uid)],
        },
        "spec": {k: v for k, v in spec.items() if v is not None},
    }


#: The condition reason of a Reexecution whose child could not be created for a passing reason.
RETRYING = "Retrying"


def child_refused(refusal: str) -> Decision:
    """The API server refused the child Run (admission, quota, RBAC): permanent for this request, so the
    Reexecution fails, saying what to fix."""
    msg = f"{refusal}: fix what it names, then apply a new Reexecution"
    return Decision(RxPhase.FAILED, msg, "ChildCreateRefused", actions=[Event("ChildCreateRefused", msg, "Warning")])


def child_create_failed(why: str, said: str | None, resync: float) -> Decision:
    """The child Run could not be created for a passing reason (5xx, a lost connection): said (an Event
    only when the message is new: `said` is the status' message), and the next check tries again."""
    msg = f"could not create the child Run: {why}; retrying within {resync:.0f}s"
    events = [] if said == msg else [Event(RETRYING, msg, "Warning")]
    return Decision(RxPhase.PENDING, msg, RETRYING, actions=list(events))
