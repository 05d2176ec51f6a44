"""kopf handlers: thin. Each live Run is reconciled on every watch event of itself and its pods (and
every second as the safety net); each live Reexecution on every watch event of itself, its parent and
its child (and every CAIRN_RX_RESYNC seconds as the safety net). Level-triggered: the same cycle after a
create, a restart or a missed event gives the same result. Decisions are made by the pure
`reconcile.reconcile` (Runs, on the runtime's `cairn.runstate` rules) and `rxdecide.decide`
(Reexecutions); this module gathers what they need, carries out their actions and writes the status
once per cycle, only when it changed.

Persist, then destroy: a cycle writes the Run's status before it deletes anything, and a pod is only
deleted once its result is in the status the cycle OBSERVED (`reconcile.collectable`). What follows a
Run's end (podGC, its parent's protection released, an automatic retry) is derived from its finished
status by `finish_up`, until `status.settled` says it is done: a crash between any two writes loses
nothing and does nothing twice.

Test hook (fault injection, for the crash-window tests only): `CAIRN_FAULT=POINT[,POINT...]` makes the
process exit at once (`os._exit(137)`, as a SIGKILL or an OOM kill would) the first time it reaches
POINT, optionally only for Runs in namespace `CAIRN_FAULT_NAMESPACE`. Points:
`exit-after:status-write` (after a cycle wrote a Run's status), `exit-before:pod-delete` (before a
podGC deletion), `exit-after:run-failed` (after the write that made a Run Failed, before its automatic
retry). Never set in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import datetime as dt
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from pydantic import ValidationError

from cairn.dynamic import node_of
from cairn.planner import Request, RunView, plan_checked
from cairn.runstate import RunPhase, StepState
from cairn.step import ContextTooLarge
from cairn_operator import kube
from cairn_operator.graph import InvalidJob, OpGraph, build, config_problem
from cairn_operator.models import GROUP, VERSION, JobSpec, ReexecutionSpec, RunSpec
from cairn_operator.reconcile import (
    LARGE_RUN_STEPS,
    CreatePod,
    DeletePod,
    Event,
    PodObs,
    RunInput,
    SaveLog,
    collectable,
    parse_result,
    reconcile,
    run_conditions,
    ts,
)
from cairn_operator.resources import (
    LABEL_JOB,
    LABEL_PARENT,
    LABEL_RETRY,
    LABEL_ROOT,
    LABEL_RUN,
    LABEL_RX,
    STEP_SERVICE_ACCOUNT,
    add_locations,
    needs_locations,
    pod_step,
    run_key,
    service_accounts_to_ensure,
    step_inputs,
    step_output_locations,
    step_pod,
    step_service_account,
    step_versions,
)
from cairn_operator.rxdecide import (
    FINISHED,
    PROTECT,
    CreateChild,
    Decision,
    Located,
    PlanFn,
    ProtectParent,
    RxObserved,
    child_name,
    decide,
    retry_spec,
    rx_active,
)

MAX_PODS = int(os.environ.get("CAIRN_MAX_PODS", "100"))
#: The ServiceAccount step pods run as when their podTemplate names none; made in each namespace on use.
STEP_ACCOUNT = os.environ.get("CAIRN_STEP_SERVICE_ACCOUNT") or STEP_SERVICE_ACCOUNT
#: The fault-injection test hook (see the module docstring).
FAULTS = frozenset(f.strip() for f in os.environ.get("CAIRN_FAULT", "").split(",") if f.strip())
FAULT_NAMESPACE = os.environ.get("CAIRN_FAULT_NAMESPACE") or None


log = logging.getLogger("cairn.operator")


def fault(point: str, namespace: str) -> None:
    """The test hook: exit now, with no cleanup at all, when CAIRN_FAULT names `point`."""
    if point in FAULTS and FAULT_NAMESPACE in (None, namespace):
        sys.stderr.write(f"cairn-operator: CAIRN_FAULT {point} in namespace {namespace}: exiting\n")
        sys.stderr.flush()
        os._exit(137)


@kopf.on.probe(id="runs")
def probe_runs(**_: Any) -> str:
    """What the liveness endpoint reports besides kopf's own checks."""
    return "ok"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    # kopf.event() calls at INFO and above are posted as Events (log messages are not: kopf's
    # posting.loggers is off, so a warning logged by a daemon reaches the operator's log only).
    settings.posting.level = 20
    settings.watching.server_timeout = 60
    settings.batching.batch_window = 0.001  # react to a pod's change at once (handoff latency)


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


def invalid(status: Mapping[str, Any], message: str, generation: int, reason: str = "InvalidJob") -> dict[str, Any]:
    """The status of a Run that cannot run as written (its Job graph, config or overrides): Failed,
    Stalled with `reason` (terminal)."""
    now = ts(dt.datetime.now(dt.UTC))
    return {
        **status,
        "phase": RunPhase.FAILED.value,
        "message": message,
        "observedGeneration": generation,
        "finishedAt": now,
        "conditions": run_conditions(RunPhase.FAILED, reason, message, generation, now, status.get("conditions")),
    }


def refused(status: Mapping[str, Any], message: str, generation: int) -> dict[str, Any]:
    """The status of a Run whose pod (or step ServiceAccount) the API server refused: its message shown,
    the rest unchanged (no step is marked started, the Job is not snapshotted, so fixing the Job, the
    namespace or the RBAC lets the next cycle go on). Not finished: every cycle tries again."""
    return pending(status, "FailedCreate", message, generation)


def pending(status: Mapping[str, Any], reason: str, message: str, generation: int) -> dict[str, Any]:
    """The status of a Run that cannot go on yet (its Job or Secret missing, a refused pod): its phase
    kept (Pending before it starts), Reconciling with `reason`; times kept, so a repeat writes nothing."""
    now = ts(dt.datetime.now(dt.UTC))
    phase = RunPhase(status.get("phase") or RunPhase.PENDING.value)
    return {
        **status,
        "phase": phase.value,
        "message": message,
        "observedGeneration": generation,
        "conditions": run_conditions(phase, reason, message, generation, now, status.get("conditions")),
    }


class NotYet(Exception):
    """What a Run needs does not exist yet (its Job, its storage Secret): it waits, it does not fail."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


#: (Run uid) -> the Job spec and graph of its recorded snapshot, which never changes once recorded: not
#: validated and built again every cycle (a few milliseconds of each hand-off for a 100-op Job).
_SNAPSHOTS: dict[str, tuple[JobSpec, OpGraph]] = {}
_SNAPSHOTS_MAX = 2048


_VERSIONS: dict[tuple[str, int], dict[str, str]] = {}


def run_versions(uid: str, generation: int, job_spec: JobSpec, run_spec: RunSpec) -> dict[str, str]:
    """`step_versions` of a Run, computed once per generation of its spec (config and overrides)."""
    key = (uid, generation)
    if key not in _VERSIONS:
        if len(_VERSIONS) >= _SNAPSHOTS_MAX:
            _VERSIONS.pop(next(iter(_VERSIONS)))
        _VERSIONS[key] = step_versions(job_spec, run_spec.config, run_spec.overrides)
    return _VERSIONS[key]


def load_snapshot(
    namespace: str, spec: RunSpec, status: Mapping[str, Any], uid: str = ""
) -> tuple[dict[str, Any], JobSpec, OpGraph]:
    """The Job spec this Run runs: copied into its status when it starts, so later Job edits never change it."""
    snapshot = status.get("jobSnapshot")
    cached = _SNAPSHOTS.get(uid) if uid and snapshot is not None else None
    if cached is not None and snapshot is not None:
        return snapshot, cached[0], cached[1]
    if snapshot is None and spec.execution is not None:
        snapshot = spec.execution.jobSnapshot  # a child Run runs its parent's snapshot, not today's Job
    if snapshot is None:
        job = kube.get_job(namespace, spec.jobRef.name)
        if job is None:
            raise NotYet(
                "JobNotFound",
                f"waiting for Job {spec.jobRef.name!r}: not found in namespace {namespace}; the Run starts "
                "when it is created (or fix spec.jobRef.name)",
            )
        snapshot = job["spec"]
    try:
        job_spec = JobSpec.model_validate(snapshot)
    except ValidationError as exc:
        raise InvalidJob(f"Job {spec.jobRef.name}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    graph = build(job_spec)
    if status.get("jobSnapshot") is None and not kube.secret_exists(namespace, job_spec.storage.secretRef.name):
        raise NotYet(
            "SecretNotFound",
            f"waiting for Secret {job_spec.storage.secretRef.name!r} (spec.storage.secretRef of Job "
            f"{spec.jobRef.name}): not found in namespace {namespace}; the Run starts when it is created "
            "with the S3 credentials",
        )
    if uid and status.get("jobSnapshot") is not None:
        if len(_SNAPSHOTS) >= _SNAPSHOTS_MAX:
            _SNAPSHOTS.pop(next(iter(_SNAPSHOTS)))
        _SNAPSHOTS[uid] = (job_spec, graph)
    return snapshot, job_spec, graph


def not_finished(status: Mapping[str, Any], **_: Any) -> bool:
    return (status or {}).get("phase") not in FINISHED


def not_settled(status: Mapping[str, Any], **_: Any) -> bool:
    """Live, or finished but its follow-ups (`finish_up`) not done yet: it needs its daemon."""
    return not_finished(status) or not (status or {}).get("settled")


#: Per live Run, the event that wakes its daemon: set by watch events of its pods and of itself.
WAKERS: dict[tuple[str, str], asyncio.Event] = {}
RESYNC = 1.0  # seconds between reconciles when nothing happens (the level-triggered safety net)
#: Seconds between checks of a Run waiting for its Job or Secret (a Job's watch event wakes it sooner).
WAIT_RESYNC = float(os.environ.get("CAIRN_WAIT_RESYNC", "5"))
#: (namespace, Job name) -> the Runs waiting for that Job to be created (or, refused, to be fixed).
WAITING_FOR_JOB: dict[tuple[str, str], set[str]] = {}


class PodSlots:
    """The operator-wide limit on unfinished step pods (CAIRN_MAX_PODS), shared by the cycle threads.

    A pod counts from the moment a cycle reserves its slot, before it is created, until the watch says
    it finished or went: `reserve` hands out free slots under a lock, `hold` names the ones a cycle
    uses and gives the rest back, `release` gives one back when its pod was not created, and `seen` is
    the watch's word on a pod (its reservation then counts as the pod itself). So the cycles, however
    many run at once, never together exceed the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._active: set[str] = set()  # namespace/name of pods the watch saw unfinished
        self._held: set[str] = set()  # namespace/name of pods reserved, not seen by the watch yet
        self._anonymous = 0  # reserved by a cycle that has not decided yet

    def used(self) -> int:
        with self._lock:
            return len(self._active | self._held) + self._anonymous

    def reserve(self, wanted: int) -> Reservation:
        """Up to `wanted` slots, taken now; `Reservation.hold` (or leaving its `with`) gives back the rest."""
        with self._lock:
            free = max(0, self.limit - len(self._active | self._held) - self._anonymous)
            granted = min(max(0, wanted), free)
            self._anonymous += granted
        return Reservation(self, granted)

    def _hold(self, granted: int, pods: list[str]) -> None:
        with self._lock:
            self._anonymous -= granted
            self._held.update(pods)

    def release(self, pod: str) -> None:
        """A held pod was not created (refused, failed) or existed already (the watch counts it)."""
        with self._lock:
            self._held.discard(pod)

    def seen(self, pod: str, active: bool) -> None:
        """The watch saw `pod`: unfinished (it counts) or finished/deleted (its slot is free)."""
        with self._lock:
            self._held.discard(pod)
            if active:
                self._active.add(pod)
            else:
                self._active.discard(pod)


class Reservation:
    """Slots one cycle reserved: `granted` of them until it names the pods it creates."""

    def __init__(self, slots: PodSlots, granted: int) -> None:
        self.slots, self.granted, self._open = slots, granted, True

    def hold(self, pods: list[str]) -> None:
        """Keep the slots of `pods` (at most `granted`: the pods about to be created), give back the rest."""
        if len(pods) > self.granted:
            raise ValueError(f"{len(pods)} pods to create with {self.granted} slot(s) reserved")
        if self._open:
            self._open = False
            self.slots._hold(self.granted, pods)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *_: object) -> None:
        self.hold([])  # nothing created (or held already): every slot back


class Backoff:
    """Per-key growing delays (1, 2, 4 ... up to `cap` seconds) for a refusal that an admin may fix."""

    def __init__(self, cap: float = 60.0) -> None:
        self.cap = cap
        self._tries: dict[str, int] = {}
        self._lock = threading.Lock()

    def next(self, key: str) -> float:
        with self._lock:
            n = self._tries.get(key, 0)
            self._tries[key] = n + 1
        return float(min(self.cap, 2**n))

    def reset(self, key: str) -> None:
        with self._lock:
            self._tries.pop(key, None)


#: Delays between tries of a Run whose pods the API server refuses for a reason an admin can fix.
REFUSED_BACKOFF = Backoff()
#: Step pods not finished yet, cluster-wide, kept from the pod watch and the cycles' reservations.
SLOTS = PodSlots(MAX_PODS)
#: Reconcile cycles run here: a few threads serve any number of live Runs (whose daemons are coroutines).
CYCLES = ThreadPoolExecutor(max_workers=int(os.environ.get("CAIRN_WORKERS", "8")), thread_name_prefix="cairn-sync")
#: Creates the pods of one cycle concurrently (a fan-out creates hundreds at once).
CREATORS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cairn-create")


#: (namespace, name) of the step ServiceAccounts known to exist: each is checked once per process.
ACCOUNTS_READY: set[tuple[str, str]] = set()
_ACCOUNTS_LOCK = threading.Lock()


def ensure_step_accounts(pods: list[dict[str, Any]]) -> None:
    """Before `pods` are created: the step ServiceAccount they run as exists in their namespace (created
    if missing). Remembered once it succeeds; a refusal (kube.Refused) propagates like a refused pod."""
    with _ACCOUNTS_LOCK:
        for namespace, name in sorted(service_accounts_to_ensure(pods, STEP_ACCOUNT) - ACCOUNTS_READY):
            kube.ensure_service_account(step_service_account(namespace, name))
            ACCOUNTS_READY.add((namespace, name))


def _wake(namespace: str | None, run: str | None) -> None:
    event = WAKERS.get((namespace or "", run or ""))
    if event is not None:
        event.set()


@kopf.on.event("", "v1", "pods", labels={LABEL_RUN: kopf.PRESENT})
async def pod_changed(
    type: str | None, body: Mapping[str, Any], labels: Mapping[str, str], namespace: str | None, **_: Any
) -> None:
    """A step pod changed: count it, and reconcile its Run now rather than at the next resync."""
    phase = (body.get("status") or {}).get("phase")
    key = f"{namespace}/{body.get('metadata', {}).get('name', '')}"
    SLOTS.seen(key, active=not (type == "DELETED" or phase in ("Succeeded", "Failed")))
    _wake(namespace, labels.get(LABEL_RUN))


@kopf.on.event(GROUP, VERSION, "runs")
async def run_changed(
    type: str | None,
    name: str | None,
    namespace: str | None,
    body: Mapping[str, Any],
    **kw: Any,
) -> None:
    """A Run changed: wake its daemon, the Reexecutions waiting for it as their parent and the one that
    made it (a child's phase is its Reexecution's). A child Run gone (deleted mid-run, say) and any
    event of a protected parent (deleted since, or seen again at a start) re-check the parent's protection."""
    _wake(namespace, name)
    meta = body.get("metadata") or {}
    index: kopf.Index[Any, str] = kw["rx_by_parent"]
    waiting = set(index.get((namespace or "", name or ""), ()))
    maker = (meta.get("labels") or {}).get(LABEL_RX)
    await wake_reexecutions(namespace or "", waiting | ({maker} if maker else set()))
    parent = (meta.get("labels") or {}).get(LABEL_PARENT)
    checks: list[tuple[str, str | None]] = []
    if type == "DELETED" and parent:
        checks.append((parent, name))
    if type != "DELETED" and PROTECT in (meta.get("finalizers") or []):
        checks.append((name or "", None))
    loop = asyncio.get_running_loop()
    for run, leaving in checks:
        context = contextvars.copy_context()
        await loop.run_in_executor(CYCLES, context.run, release_parent, namespace or "", run, leaving)


@kopf.timer(GROUP, VERSION, "runs", interval=30.0, when=lambda meta, **_: PROTECT in (meta.get("finalizers") or []))
def protected_check(namespace: str | None, name: str, **_: Any) -> None:
    """The level-triggered safety net of a parent's protection: released once no live child remains."""
    release_parent(namespace or "", name)


@kopf.on.event(GROUP, VERSION, "jobs")
async def job_changed(name: str | None, namespace: str | None, **_: Any) -> None:
    """A Job appeared (or changed): the Runs waiting for it go on now rather than at their next check."""
    wake_waiting_for_job(namespace or "", name or "")


def wake_waiting_for_job(namespace: str, job: str) -> None:
    for run in WAITING_FOR_JOB.pop((namespace, job), set()):
        _wake(namespace, run)


def cycle(namespace: str, name: str) -> float | None:
    """One reconcile of a Run, in a worker thread; None once the Run is finished (or gone), else the
    seconds until the next one unless something wakes it."""
    body = kube.get_run(namespace, name)
    if body is None or not not_settled(body.get("status") or {}):
        return None
    if (body.get("status") or {}).get("phase") in FINISHED:
        finish_up(body)
        return None
    return sync_run(body)


@kopf.daemon(GROUP, VERSION, "runs", when=not_settled, cancellation_timeout=10.0)
async def run_daemon(**kw: Any) -> None:
    """One per live Run: reconcile on every change of the Run or its pods, and every RESYNC seconds."""
    name, namespace, stopped, logger = kw["name"], kw["namespace"], kw["stopped"], kw["logger"]
    key = (namespace, name)
    wake = WAKERS.setdefault(key, asyncio.Event())
    loop = asyncio.get_running_loop()
    try:
        while not stopped:
            wake.clear()
            try:
                # With the daemon's context: kopf.event() finds kopf's event queue through it.
                context = contextvars.copy_context()
                delay = await loop.run_in_executor(CYCLES, context.run, cycle, namespace, name)
                if delay is None:
                    return
            except Exception as exc:  # keep serving: the next cycle retries (level-triggered)
                logger.warning(f"reconcile of Run {namespace}/{name} failed, retrying: {exc}")
                await asyncio.sleep(1.0)
                delay = RESYNC
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
    finally:
        WAKERS.pop(key, None)


def sync_run(body: Mapping[str, Any]) -> float:
    """One reconcile cycle of a Run: read what is, decide, act, write the status once (only if it
    changed). Returns the seconds until the next cycle unless something wakes the Run."""
    meta, spec = body["metadata"], body.get("spec") or {}
    name, namespace = meta["name"], meta["namespace"]
    # A deep copy: the status patch is computed as a diff against what the API server holds.
    status: dict[str, Any] = copy.deepcopy(dict(body.get("status") or {}))
    generation = int(meta.get("generation") or 1)
    try:
        run_spec = RunSpec.model_validate(dict(spec))
        snapshot, job_spec, graph = load_snapshot(namespace, run_spec, status, meta.get("uid") or "")
    except NotYet as exc:
        # Applied before its Job or Secret (e.g. by a GitOps tool, in any order): it waits, said once.
        if exc.reason == "JobNotFound":
            WAITING_FOR_JOB.setdefault((namespace, run_spec.jobRef.name), set()).add(name)
        kube.patch_run_status(namespace, name, merge_patch(status, pending(status, exc.reason, str(exc), generation)))
        if status.get("message") != str(exc):
            kopf.event(
                kopf.Body(body),  # type: ignore[arg-type]
                type="Warning",
                reason=exc.reason,
                message=str(exc),
            )
        return WAIT_RESYNC
    except (InvalidJob, ValidationError) as exc:
        message = str(exc)
        kopf.event(
            kopf.Body(body),  # type: ignore[arg-type]
            type="Warning",
            reason="InvalidJob",
            message=message,
        )
        kube.patch_run_status(namespace, name, merge_patch(status, invalid(status, message, generation)))
        return RESYNC
    problem = config_problem(graph, run_spec.config, run_spec.overrides) if status.get("jobSnapshot") is None else None
    if problem:  # checked once, before the Run starts
        reason, message = problem
        kopf.event(kopf.Body(body), type="Warning", reason=reason, message=message)  # type: ignore[arg-type]
        kube.patch_run_status(namespace, name, merge_patch(status, invalid(status, message, generation, reason)))
        return RESYNC
    if status.get("jobSnapshot") is None:
        status["jobSnapshot"] = snapshot
        # A root Run labels itself as its lineage's root: `kubectl get crun -l cairn.dev/root-run=X` lists all.
        root = (meta.get("labels") or {}).get(LABEL_ROOT) or name
        kube.label_run(namespace, name, {LABEL_JOB: run_spec.jobRef.name, LABEL_ROOT: root})
    # Only the pods of steps still in flight: a long Run's finished pods need not be read every cycle
    # (all of them when podGC has to see them).
    # (every step of a started Run has a row in its status: reconcile writes one per step, map instances too)
    known = status.get("steps") or {}
    live = [st for st in known if not StepState(known[st]["phase"]).terminal] if known else list(graph.order)
    gc = run_spec.podGC is not None and run_spec.podGC.strategy != "Never"
    live_ops = sorted({node_of(st) for st in live})  # pods are labelled by op (an instance's key is annotated)
    everything = not known or len(live) == len(known)
    pods = kube.list_step_pods(namespace, name, None if gc or everything else live_ops)
    max_parallel = run_spec.maxParallel or job_spec.maxParallel
    # The operator-wide pod slots this cycle may use, taken atomically (other cycles run at once).
    with SLOTS.reserve(min(len(live), max_parallel)) as slots:
        return _sync(body, status, run_spec, job_spec, graph, pods, max_parallel, slots)


def _sync(
    body: Mapping[str, Any],
    status: dict[str, Any],
    run_spec: RunSpec,
    job_spec: JobSpec,
    graph: OpGraph,
    pods: list[PodObs],
    max_parallel: int,
    slots: Reservation,
) -> float:
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    generation = int(meta.get("generation") or 1)
    run = RunInput(
        name=name,
        uid=uid,
        generation=generation,
        status=status,
        max_parallel=max_parallel,
        cancel=run_spec.cancel,
        pod_gc=(run_spec.podGC.strategy if run_spec.podGC else "Never"),
        slots=slots.granted,
        execution=run_spec.execution,
        # read by reconcile only for a step whose pod succeeded: not computed on the other cycles
        versions=(
            run_versions(uid, generation, job_spec, run_spec) if any(p.phase == "Succeeded" for p in pods) else {}
        ),
    )
    run.dynamic_keys = read_dynamic_keys(namespace, job_spec, graph, status.get("steps") or {}, pods)
    result = reconcile(run, graph, pods, dt.datetime.now(dt.UTC))
    steps = result.status.get("steps") or {}
    graph = result.graph or graph
    # New pods first (they are what the next steps wait for), several at once; then the rest.
    creates = []
    unbuildable: dict[str, str] = {}  # step -> why its pod cannot be made (the same every time)
    for a in result.actions:
        if not isinstance(a, CreatePod):
            continue
        try:
            creates.append(
                step_pod(
                    run=name,
                    run_uid=uid,
                    namespace=namespace,
                    job_name=run_spec.jobRef.name,
                    spec=job_spec,
                    graph=graph,
                    step=a.step,
                    attempt=a.attempt,
                    inputs=step_inputs(graph, a.step, steps),
                    config=(((run_spec.config or {}).get("ops") or {}).get(node_of(a.step)) or {}).get("config"),
                    override=(run_spec.overrides or {}).get(node_of(a.step)),
                    service_account=STEP_ACCOUNT,
                )
            )
        except ContextTooLarge as exc:
            unbuildable[a.step] = str(exc)
    keys = [f"{namespace}/{c['metadata']['name']}" for c in creates]
    slots.hold(keys)

    refusals: dict[str, kube.Refused] = {}  # step -> the API server's refusal of its pod

    def create(pod: dict[str, Any]) -> None:
        key = f"{namespace}/{pod['metadata']['name']}"
        try:
            if not kube.create_pod(pod):
                SLOTS.release(key)  # it existed: the watch counts it
        except kube.Refused as exc:
            SLOTS.release(key)
            refusals[pod_step(pod)] = exc
        except BaseException:
            SLOTS.release(key)
            raise

    try:
        try:
            ensure_step_accounts(creates)
        except BaseException:
            for key in keys:
                SLOTS.release(key)
            raise
        if len(creates) == 1:
            create(creates[0])
        elif creates:
            list(CREATORS.map(create, creates))
        waiting = [e for e in refusals.values() if not e.permanent]
        if waiting:
            raise waiting[0]
    except kube.Refused as exc:
        # RBAC, admission or a quota said no (what an admin can fix: a missing ServiceAccount, PodSecurity):
        # shown in the Run's status and, once per distinct refusal, as a Warning Event; this cycle's
        # decisions are dropped and the next cycle tries again after a growing delay (said in the message).
        if "service account" in str(exc):  # "error looking up service account": deleted since it was made
            ACCOUNTS_READY.discard((namespace, STEP_ACCOUNT))
        delay = REFUSED_BACKOFF.next(f"{namespace}/{name}")
        if (body.get("status") or {}).get("jobSnapshot") is None:  # not started: an edit of its Job wakes it
            WAITING_FOR_JOB.setdefault((namespace, run_spec.jobRef.name), set()).add(name)
        old = dict(body.get("status") or {})
        message = f"{exc} (tried again after a growing delay, up to {REFUSED_BACKOFF.cap:.0f}s, and after each change)"
        if old.get("message") != message:
            kube.patch_run_status(namespace, name, merge_patch(old, refused(old, message, generation)))
            kopf.event(
                kopf.Body(body),  # type: ignore[arg-type]
                type="Warning",
                reason="FailedCreate",
                message=str(exc),
            )
        return delay
    REFUSED_BACKOFF.reset(f"{namespace}/{name}")
    invalid_pods = {
        step: f"{refusal}: fix the Job's op (or the Run's overrides), then re-execute"
        for step, refusal in refusals.items()
    }
    invalid_pods.update(unbuildable)
    for step, msg in invalid_pods.items():  # the pod itself is invalid: the same spec is refused every time
        st = steps[step]
        st.update(phase=StepState.FAILED.value, message=msg, finishedAt=ts(dt.datetime.now(dt.UTC)))
        st.pop("podName", None)
        result.actions = [
            a
            for a in result.actions
            if not (isinstance(a, Event) and a.reason == "StepStarted" and f"step {step} " in a.message)
        ]
        result.actions.append(Event("PodRefused", f"step {step}: {msg}", "Warning"))
    log_problems = []
    for action in result.actions:
        if isinstance(action, SaveLog):
            problem = save_log(namespace, name, uid, job_spec, action, steps)
            said = ((body.get("status") or {}).get("steps") or {}).get(action.step, {}).get("logError")
            if problem and problem != said:
                log_problems.append(Event("LogSaveFailed", f"step {action.step}: {problem}", "Warning"))
    if len(steps) > LARGE_RUN_STEPS:  # where outputs are, said once (see LARGE_RUN_STEPS)
        if not result.status.get("storage"):
            bucket = output_bucket(namespace, job_spec)
            if bucket:
                result.status["storage"] = {"bucket": bucket, "prefix": job_spec.storage.prefix}
    elif needs_locations(steps):
        add_locations(step_output_locations(steps), output_bucket(namespace, job_spec), job_spec.storage.prefix)
    # Persist, then destroy: the status first; deletions only after it is written (and podGC only
    # deletes pods whose result the status already held when this cycle read it).
    observed = dict(body.get("status") or {})
    kube.patch_run_status(namespace, name, merge_patch(observed, result.status))
    fault("exit-after:status-write", namespace)
    if result.status.get("phase") == RunPhase.FAILED.value and observed.get("phase") != RunPhase.FAILED.value:
        fault("exit-after:run-failed", namespace)
    for action in result.actions:
        if isinstance(action, DeletePod):
            fault("exit-before:pod-delete", namespace)
            kube.delete_pod(namespace, action.name, force=action.force)
    post_events(body, [*result.actions, *log_problems])
    return RESYNC


def post_events(body: Mapping[str, Any], actions: Sequence[Any]) -> None:
    """Post the Event actions of a decision as Events of `body` (kopf's queue, at its posting level)."""
    for action in actions:
        if isinstance(action, Event):
            kopf.event(
                kopf.Body(body),  # type: ignore[arg-type]
                type=action.type,
                reason=action.reason,
                message=action.message,
            )


def finish_up(body: Mapping[str, Any]) -> None:
    """What follows a Run's end, derived from its finished status alone (so a crash after the write that
    finished it loses none of it, and a repeat does nothing twice): podGC of the pods whose results are
    in the status, its parent's protection released (a child Run), its automatic retry (spec.retryPolicy,
    a deterministic Reexecution name). Then `status.settled`, and the Run's daemon ends."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    status = dict(body.get("status") or {})
    try:
        run_spec = RunSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError:
        run_spec = None
    if run_spec is not None:
        strategy = run_spec.podGC.strategy if run_spec.podGC else "Never"
        for action in collectable(
            strategy, status, kube.list_step_pods(namespace, name) if strategy != "Never" else []
        ):
            fault("exit-before:pod-delete", namespace)
            kube.delete_pod(namespace, action.name)
        if run_spec.execution is not None:
            for parent in {(meta.get("labels") or {}).get(LABEL_PARENT)} - {None}:
                release_parent(namespace, str(parent), leaving=name)
        policy = run_spec.retryPolicy
        if status.get("phase") == RunPhase.FAILED.value and status.get("jobSnapshot") and policy and policy.maxRetries:
            retry_failed_run(namespace, name, meta, run_spec)
    kube.patch_run_status(namespace, name, {"settled": True})


_STORAGE: dict[tuple[str, str, str, str], Any] = {}


def storage(namespace: str, spec: JobSpec) -> Any:
    """The runtime's S3 IO manager for a Job's storage, with the credentials of its Secret (cached per
    Secret version: building a boto3 client is slow)."""
    from cairn.s3io import S3IOManager, make_client

    version, data = kube.read_secret_versioned(namespace, spec.storage.secretRef.name)
    cache_key = (namespace, spec.storage.secretRef.name, version, spec.model_dump_json(include={"storage"}))
    if cache_key in _STORAGE:
        return _STORAGE[cache_key]
    endpoint = spec.storage.endpoint or data.get("AWS_ENDPOINT_URL") or None
    bucket = storage_bucket(spec, data)
    if not bucket:
        raise InvalidJob(
            f"no bucket: set spec.storage.bucket or CAIRN_S3_BUCKET in Secret {spec.storage.secretRef.name}"
        )
    client = make_client(
        endpoint,
        aws_access_key_id=data.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=data.get("AWS_SECRET_ACCESS_KEY"),
        region_name=data.get("AWS_REGION") or "us-east-1",
    )
    manager = S3IOManager(bucket=bucket, prefix=spec.storage.prefix, endpoint_url=endpoint, client=client)
    _STORAGE[cache_key] = manager
    return manager


def read_dynamic_keys(
    namespace: str, spec: JobSpec, graph: OpGraph, steps: Mapping[str, Any], pods: Sequence[PodObs]
) -> dict[str, dict[str, list[str]]]:
    """The mapping keys of each dynamic step whose pod succeeded and whose keys the status lacks: read from
    the key index its pod stored (the termination message is too small for a large fan-out). A step
    whose index cannot be read yet is left out: it stays running, saying so, and the next cycle reads again."""
    out: dict[str, dict[str, list[str]]] = {}
    for p in pods:
        op = graph.ops.get(node_of(p.step))
        st = steps.get(p.step) or {}
        if op is None or not op.dynamicOutputs or p.phase != "Succeeded" or st.get("keys"):
            continue
        result = parse_result(p.message) or {}
        outputs = result.get("outputs") or {}
        try:
            keys = {
                o: [str(k) for k in storage(namespace, spec).load(outputs[o]["key"], "json")]
                for o in op.dynamicOutputs
                if o in outputs
            }
        except Exception as exc:  # storage down: said in the step's message by reconcile, read again next cycle
            log.warning("cannot read the mapping keys of step %s of %s/%s: %s", p.step, namespace, p.name, exc)
            continue
        out[p.step] = keys
    return out


def output_bucket(namespace: str, spec: JobSpec) -> str | None:
    """The bucket of a Job's outputs, for their `uri` in the status: spec.storage.bucket, else the
    storage Secret's CAIRN_S3_BUCKET; None when neither says (or the Secret cannot be read)."""
    if spec.storage.bucket:
        return spec.storage.bucket
    try:
        _, data = kube.read_secret_versioned(namespace, spec.storage.secretRef.name)
    except Exception:  # the uri is informative: its absence never fails a cycle
        return None
    return storage_bucket(spec, data)


def storage_bucket(spec: JobSpec, secret: Mapping[str, str]) -> str | None:
    """A Job's bucket: spec.storage.bucket, else its storage Secret's CAIRN_S3_BUCKET (None: neither)."""
    return spec.storage.bucket or secret.get("CAIRN_S3_BUCKET") or None


def save_log(namespace: str, run: str, uid: str, spec: JobSpec, action: SaveLog, steps: dict[str, Any]) -> str | None:
    """Copy a finished pod's log to <prefix>/<ns>/<run>/<step>/logs/attempt-N.log and record the key.

    Storage never blocks the Run's status: when the copy fails (S3 unreachable, a key refused), the step's
    `logError` says so and the log's key stays unrecorded, so the next cycle tries again (and podGC keeps
    the pod, whose log is the only copy, meanwhile). Returns that message, or None when the log was saved."""
    key = f"{namespace}/{run_key(run, uid)}/{action.step}/logs/attempt-{action.attempt}.log"
    st = steps.setdefault(action.step, {})
    try:
        try:
            data = kube.pod_log(namespace, action.pod)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise
            key = f"unavailable: pod {action.pod} was gone before its log was saved"
        else:
            storage(namespace, spec).store(key, data, "bytes")
    except Exception as exc:
        why = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        st["logError"] = (
            f"attempt {action.attempt}: its log could not be saved to storage ({type(exc).__name__}: {why}); "
            "tried again every cycle, the pod is kept until it is saved"
        )
        return str(st["logError"])
    st.pop("logError", None)
    st["logs"] = {**(st.get("logs") or {}), str(action.attempt): key}
    return None


#: Conflicts (409) in a row before a release of a parent's protection gives up, saying so.
RELEASE_TRIES = 5


class ReleaseConflict(Exception):
    """The parent changed under every try: the next check tries again (a Warning Event said so)."""


def live_children(namespace: str, parent: str, leaving: str | None = None) -> list[str]:
    """What may still read the parent's outputs: its child Runs not finished, not being deleted and not
    `leaving` (the child finishing or gone just now). A Reexecution protects its parent only once its
    child exists (`rxdecide`), so one that has not made its child (or failed to) never holds it."""
    return sorted(
        k["metadata"]["name"]
        for k in kube.list_runs(namespace, f"{LABEL_PARENT}={parent}")
        if (k.get("status") or {}).get("phase") not in FINISHED
        and not k["metadata"].get("deletionTimestamp")
        and k["metadata"]["name"] != leaving
    )


def release_parent(namespace: str, parent: str, leaving: str | None = None) -> None:
    """The parent's protection goes once no live child remains: checked when a child finishes, when one
    disappears, on every event of the parent and periodically. The parent is read again on a conflict;
    after RELEASE_TRIES conflicts a Warning Event on the parent says so and ReleaseConflict is raised
    (the caller's next check tries again): it never gives up silently."""
    body: dict[str, Any] | None = None
    for _ in range(RELEASE_TRIES):
        body = kube.get_run(namespace, parent)
        if body is None or PROTECT not in (body["metadata"].get("finalizers") or []):
            return
        if live_children(namespace, parent, leaving):
            return
        rest = [f for f in body["metadata"]["finalizers"] if f != PROTECT]
        try:
            kube.set_run_finalizers(namespace, parent, rest, body["metadata"]["resourceVersion"])
            return
        except Exception as exc:
            if getattr(exc, "status", None) != 409:
                raise
    message = (
        f"could not release finalizer {PROTECT} of Run {parent}: it changed under each of {RELEASE_TRIES} "
        "tries (409 Conflict); trying again at the next check"
    )
    assert body is not None
    kopf.event(kopf.Body(body), type="Warning", reason="FinalizerReleaseConflict", message=message)  # type: ignore[arg-type]
    raise ReleaseConflict(message)


def retry_failed_run(namespace: str, name: str, meta: Mapping[str, Any], spec: RunSpec) -> None:
    """spec.retryPolicy: a failed Run gets a Reexecution, like one a user would apply, until its root
    lineage has had maxRetries of them. Names are deterministic, so a repeated cycle adds nothing."""
    assert spec.retryPolicy is not None
    root = (meta.get("labels") or {}).get(LABEL_ROOT) or name
    done = kube.list_reexecutions(namespace, f"{LABEL_ROOT}={root},{LABEL_RETRY}")
    if any((r["spec"] or {}).get("parentRun") == name for r in done):
        return  # this Run was retried already
    n = len(done) + 1
    if n > spec.retryPolicy.maxRetries:
        return
    kube.create_reexecution(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Reexecution",
            "metadata": {
                "name": f"{root[:50].rstrip('-.')}-retry-{n}",
                "namespace": namespace,
                "labels": {LABEL_ROOT: root, LABEL_RETRY: str(n), LABEL_PARENT: name},
            },
            "spec": retry_spec(name, spec),
        }
    )


# ----- Reexecution ------------------------------------------------------------------------------------
#: Seconds between checks of a live Reexecution when no watch event comes (the level-triggered safety net;
#: events of the Reexecution, its parent and its child wake it at once), and the retry delay after a
#: transient API error.
RX_RESYNC = float(os.environ.get("CAIRN_RX_RESYNC", "15"))
_RX_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_RX_LOCKS_LOCK = threading.Lock()


@kopf.index(GROUP, VERSION, "reexecutions")
def rx_by_parent(namespace: str | None, name: str, spec: Mapping[str, Any], **_: Any) -> dict[Any, str]:
    """(namespace, parent Run) -> the Reexecutions naming it: a parent's watch events wake them."""
    return {(namespace or "", (spec or {}).get("parentRun") or ""): name}


async def wake_reexecutions(namespace: str, names: set[str]) -> None:
    loop = asyncio.get_running_loop()
    for name in sorted(names):
        context = contextvars.copy_context()
        await loop.run_in_executor(CYCLES, context.run, rx_cycle, namespace, name)


@kopf.on.event(GROUP, VERSION, "reexecutions")
async def rx_changed(
    type: str | None, name: str | None, namespace: str | None, body: Mapping[str, Any], **_: Any
) -> None:
    """A Reexecution was applied or changed (its own status writes included: the decision then repeats
    and writes nothing)."""
    if type != "DELETED" and name and rx_active(body.get("status"), body.get("spec")):
        await wake_reexecutions(namespace or "", {name})


@kopf.timer(GROUP, VERSION, "reexecutions", interval=RX_RESYNC, when=lambda status, spec, **_: rx_active(status, spec))
def rx_resync(namespace: str | None, name: str, **_: Any) -> None:
    rx_cycle(namespace or "", name)


def rx_cycle(namespace: str, name: str) -> None:
    """One decision of a Reexecution (`rxdecide.decide`) on what is observed now, carried out: the child
    created, then the parent protected, then the status written once (only if it changed), then Events.
    One at a time per Reexecution. A refusal by the API server fails it with the server's message; a
    transient error (5xx, a lost connection) is said in its status, and the next check tries again."""
    with _RX_LOCKS_LOCK:
        lock = _RX_LOCKS.setdefault((namespace, name), threading.Lock())
    with lock:
        body = kube.get_reexecution(namespace, name)
        if body is None or not rx_active(body.get("status"), body.get("spec")):
            return
        meta = body["metadata"]
        spec = dict(body.get("spec") or {})
        status = copy.deepcopy(dict(body.get("status") or {}))
        generation = int(meta.get("generation") or 1)
        obs = observe_rx(namespace, meta, spec, status, generation)
        decision = decide(obs, located_plan(namespace))
        try:
            apply_rx(namespace, decision)
        except kube.Refused as exc:  # permanent: the request itself is wrong (admission, quota, RBAC)
            msg = f"{exc}: fix what it names, then apply a new Reexecution"
            decision = Decision(
                "Failed", msg, "ChildCreateRefused", actions=[Event("ChildCreateRefused", msg, "Warning")]
            )
        except Exception as exc:  # transient (5xx, a lost connection): said, and the next check tries again
            why = f"{type(exc).__name__}: {str(exc)[:300]}"
            msg = f"could not create the child Run: {why}; retrying within {RX_RESYNC:.0f}s"
            said = status.get("message") == msg
            decision = Decision("Pending", msg, "Retrying", actions=[] if said else [Event("Retrying", msg, "Warning")])
        change = merge_patch(status, decision.status(status, generation, dt.datetime.now(dt.UTC)))
        if change:
            kube.patch_reexecution_status(namespace, name, change)
        post_events(body, decision.actions)


def observe_rx(
    namespace: str, meta: Mapping[str, Any], spec: Mapping[str, Any], status: Mapping[str, Any], generation: int
) -> RxObserved:
    """What a Reexecution's decision needs: its parent, its child (by the child's fixed name) and, with
    concurrencyPolicy Forbid, the parent's other live children."""
    parent_name = str(spec.get("parentRun") or "")
    try:
        child = child_name(ReexecutionSpec.model_validate(dict(spec)), meta["uid"])
    except ValidationError:
        child = ""
    parent = kube.get_run(namespace, parent_name) if parent_name and "/" not in parent_name else None
    siblings: list[str] = []
    if spec.get("concurrencyPolicy") == "Forbid" and parent is not None:
        siblings = [
            r["metadata"]["name"]
            for r in kube.list_runs(namespace, f"{LABEL_PARENT}={parent_name}")
            if (r.get("status") or {}).get("phase") not in FINISHED and r["metadata"]["name"] != child
        ]
    job = None
    if spec.get("mode") == "Stale" and parent is not None:  # compared with the Job as it is now
        job_name = ((parent.get("spec") or {}).get("jobRef") or {}).get("name")
        job = kube.get_job(namespace, job_name) if job_name else None
    return RxObserved(
        job=job,
        namespace=namespace,
        name=meta["name"],
        uid=meta["uid"],
        generation=generation,
        spec=spec,
        status=status,
        parent=parent,
        child=kube.get_run(namespace, child) if child else None,
        live_siblings=tuple(siblings),
    )


def located_plan(namespace: str) -> PlanFn:
    """The planner with the parent's storage: every output a plan reuses must exist there."""

    def run(job_spec: JobSpec, view: RunView, request: Request, rerun_missing: bool) -> Located:
        io = storage(namespace, job_spec)
        p = plan_checked(
            build(job_spec).job_graph(),
            view,
            request,
            exists=io.exists,
            rerun_missing=rerun_missing,
            describe=io.describe,
        )
        return Located(p, io.bucket, io.prefix)

    return run


def apply_rx(namespace: str, decision: Decision) -> None:
    """Create the child, then protect the parent (a finalizer only once its child exists). A protection
    that fails (the parent changed: 409) is added by the next decision, which sees the child."""
    for action in decision.actions:
        if isinstance(action, CreateChild):
            kube.create_run(action.body)  # False: it exists (made by a cycle whose status write was lost)
        elif isinstance(action, ProtectParent):
            try:
                kube.set_run_finalizers(namespace, action.name, list(action.finalizers), action.resource_version)
            except Exception as exc:
                if getattr(exc, "status", None) not in (404, 409):
                    raise
