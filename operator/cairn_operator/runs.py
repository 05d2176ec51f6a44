"""The Run controller: one reconcile cycle of a Run (observe, decide with the pure `reconcile`, act,
write the status once, only if it changed, then Events), handing a finished Run to the `Settler`
(`cairn_operator.settle`), and the state the cycles share (pod slots, backoff, caches, waiters), all
held here and injected by `__main__`.

Level-triggered: the same cycle after a create, a restart or a missed event gives the same result.
Only `reconcile` (and the pure decisions of `blocked`) set phases: what the API server or storage said
while the cycle acted (a refused pod, a saved log, the bucket) comes back to a decision as an observation.

Persist, then destroy: a cycle writes the Run's status before it deletes anything, and a pod is only
deleted once its result is in the status the cycle OBSERVED (`reconcile.collectable`).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cairn.contract import PodPhase
from cairn.dynamic import node_of
from cairn.runstate import RunPhase, StepState
from cairn.step import ContextTooLarge
from cairn_operator.blocked import invalid, merge_patch, pending, refused
from cairn_operator.graph import InvalidJob, OpGraph, build, config_problem
from cairn_operator.kube import Kube, Refused, newer_or_same
from cairn_operator.limits import Backoff, PodSlots, Reservation
from cairn_operator.lru import Lru
from cairn_operator.models import JobSpec, RunSpec
from cairn_operator.ports import Faults, Metrics, NoMetrics, Recorder
from cairn_operator.reconcile import (
    CreatePod,
    DeletePod,
    Event,
    PodObs,
    Result,
    RunInput,
    SaveLog,
    logs_to_save,
    parse_result,
    reconcile,
    record_logs,
)
from cairn_operator.resources import (
    LABEL_JOB,
    LABEL_ROOT,
    needs_locations,
    pod_step,
    run_key,
    service_accounts_to_ensure,
    step_inputs,
    step_pod,
    step_service_account,
    step_versions,
)
from cairn_operator.rxdecide import FINISHED
from cairn_operator.settle import Settler
from cairn_operator.storage import StorageFactory

log = logging.getLogger("cairn.operator")

#: Conflicts (409) in a row before a release of a parent's protection gives up, saying so.
RELEASE_TRIES = 5


class NotYet(Exception):
    """What a Run needs does not exist yet (its Job, its storage Secret): it waits, it does not fail."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Prepared:
    """A Run ready to reconcile: its spec, its Job snapshot (spec and graph), the status it observed."""

    run_spec: RunSpec
    job_spec: JobSpec
    graph: OpGraph
    status: dict[str, Any]


@dataclass
class Outcome:
    """What one cycle decided: the status to write, the Events after it, pods to delete, the next delay."""

    status: dict[str, Any]
    delay: float
    events: list[Event] = field(default_factory=list)
    deletes: list[DeletePod] = field(default_factory=list)


@dataclass
class RunController:
    kube: Kube
    storage: StorageFactory
    recorder: Recorder
    slots: PodSlots
    creators: ThreadPoolExecutor
    settler: Settler  # what follows a Run's end
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    faults: Faults = field(default_factory=Faults.none)
    metrics: Metrics = field(default_factory=NoMetrics)
    step_account: str = "cairn-step"
    resync: float = 1.0
    wait_resync: float = 5.0
    refused_backoff: Backoff = field(default_factory=Backoff)
    snapshots: Lru = field(default_factory=lambda: Lru(2048))  # uid -> (JobSpec, OpGraph): never changes
    versions: Lru = field(default_factory=lambda: Lru(2048))  # (uid, generation) -> step versions
    accounts_ready: set[tuple[str, str]] = field(default_factory=set)  # step ServiceAccounts known to exist
    waiting_for_job: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (ns, Job) -> Runs
    wakers: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)  # live Run -> its daemon's wake
    #: (ns, name) -> (the resourceVersion of the last status write, the status written): until the watch
    #: brings that version, a cycle reads that status (no GET per cycle), and the watch event of that very
    #: write wakes no cycle
    written: dict[tuple[str, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ----- waking -----------------------------------------------------------------------------------
    def wake(self, namespace: str | None, run: str | None) -> None:
        event = self.wakers.get((namespace or "", run or ""))
        if event is not None:
            event.set()

    def wake_waiting_for_job(self, namespace: str, job: str) -> None:
        with self._lock:
            runs = self.waiting_for_job.pop((namespace, job), set())
        for run in runs:
            self.wake(namespace, run)

    def _wait_for_job(self, namespace: str, job: str, run: str) -> None:
        with self._lock:
            self.waiting_for_job.setdefault((namespace, job), set()).add(run)

    def run_changed(self, body: Mapping[str, Any]) -> None:
        """A watch event of a Run: its daemon runs a cycle now, unless the event is the status write of its
        last cycle coming back (nothing new to decide)."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        written = self.written.get(key)
        if written is None or written[0] != str(meta.get("resourceVersion")):
            self.wake(*key)

    def pod_seen(self, namespace: str | None, name: str, run: str | None, active: bool) -> None:
        """A step pod changed: count it, and reconcile its Run now rather than at the next resync."""
        self.slots.seen(f"{namespace}/{name}", active=active)
        self.wake(namespace, run)

    # ----- a cycle ------------------------------------------------------------------------------------
    def current(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The Run as this controller last left it: `body` (the watch's copy), with the status the last
        cycle wrote when the watch has not brought that write back yet."""
        meta = body.get("metadata") or {}
        written = self.written.get((meta.get("namespace") or "", meta.get("name") or ""))
        if written is not None and not newer_or_same(meta.get("resourceVersion"), written[0]):
            return {**body, "status": written[1]}  # its metadata and spec as the watch has them
        return body

    def cycle(self, body: Mapping[str, Any] | None) -> float | None:
        """One reconcile of a Run, in a worker thread: read what is, decide, act, write the status once (only
        if it changed), then delete and post Events. None once the Run is finished and settled (or gone),
        else the seconds until the next cycle unless something wakes it."""
        if body is None:
            return None
        body = self.current(body)
        meta, observed = body["metadata"], body.get("status") or {}
        namespace = meta["namespace"]
        try:
            if observed.get("phase") in FINISHED:
                if not observed.get("settled"):
                    self.settler.finish_up(body)
                return None
            outcome = self._decide_and_act(body)
            self._persist(body, outcome.status)
            self.faults("exit-after:status-write", namespace)
            failed = RunPhase.FAILED.value
            if outcome.status.get("phase") == failed and observed.get("phase") != failed:
                self.faults("exit-after:run-failed", namespace)
            for action in outcome.deletes:
                self.faults("exit-before:pod-delete", namespace)
                self.kube.delete_pod(namespace, action.name, force=action.force)
            self.post_events(body, outcome.events)
            if outcome.status.get("phase") in FINISHED:
                return 0.0  # what follows its end (`finish_up`) comes next, at once: its own write wakes no cycle
            return outcome.delay
        finally:
            self.metrics.run_cycle(namespace, meta["name"])

    def forget(self, namespace: str, name: str) -> None:
        """The Run's daemon ended: its per-Run state goes."""
        self.wakers.pop((namespace, name), None)
        self.written.pop((namespace, name), None)
        self.metrics.forget("Run", namespace, name)

    def _persist(self, body: Mapping[str, Any], status: dict[str, Any]) -> None:
        meta = body["metadata"]
        change = merge_patch(body.get("status") or {}, status)
        if not change:
            return
        version = self.kube.patch_run_status(meta["namespace"], meta["name"], change)
        self.metrics.status_write("Run")
        if version is not None:
            self.written[(meta["namespace"], meta["name"])] = (version, status)
        else:  # not known: the next cycle reads what the watch brings
            self.written.pop((meta["namespace"], meta["name"]), None)

    def _decide_and_act(self, body: Mapping[str, Any]) -> Outcome:
        """Observe, decide, create the new pods (several at once); when the API server refused a pod as
        invalid (or it could not be built), decide again with that observation (the step fails, saying
        why). A refusal an admin may fix drops this cycle's decisions and tries again after a growing delay."""
        meta = body["metadata"]
        # A deep copy: the status patch is computed as a diff against what the API server holds.
        status: dict[str, Any] = copy.deepcopy(dict(body.get("status") or {}))
        prepared = self._prepare(body, status, int(meta.get("generation") or 1))
        if isinstance(prepared, Outcome):
            return prepared
        run_spec = prepared.run_spec
        # Every step of a started Run has a row in its status (map instances too); before, every step is live.
        known = status.get("steps") or {}
        live = [s for s, st in known.items() if not StepState(st["phase"]).terminal] if known else prepared.graph.order
        pods = self._list_pods(meta["namespace"], meta["name"], run_spec, live, not known or len(live) == len(known))
        max_parallel = run_spec.maxParallel or prepared.job_spec.maxParallel
        # The operator-wide pod slots this cycle may use, taken atomically (other cycles run at once).
        with self.slots.reserve(min(len(live), max_parallel)) as slots:
            run = self._observe(body, prepared, pods, max_parallel, slots.granted)
            result = reconcile(run, prepared.graph, pods, self.clock())
            try:
                failed = self._create_pods(meta, prepared, result, slots)
            except Refused as exc:
                return self._refused(body, prepared, exc)
        self.refused_backoff.reset(f"{meta['namespace']}/{meta['name']}")
        if failed:
            run.refused = failed
            result = reconcile(run, prepared.graph, pods, self.clock())  # the same decisions, with those failed
        events = [a for a in result.actions if isinstance(a, Event)]
        saves = logs_to_save(pods, status.get("steps") or {})
        if saves:  # after the new pods: a log's copy is not on the path from one step to the next
            saved, errors = self.save_logs(meta["namespace"], meta["name"], meta["uid"], prepared.job_spec, saves)
            events += record_logs(result.status.get("steps") or {}, saved, errors)
        return Outcome(result.status, self.resync, events, [a for a in result.actions if isinstance(a, DeletePod)])

    # ----- observe ------------------------------------------------------------------------------------
    def _prepare(self, body: Mapping[str, Any], status: dict[str, Any], generation: int) -> Prepared | Outcome:
        """The Run's spec and Job snapshot; or the decision for a Run that waits (its Job or Secret not
        there yet: said once) or cannot run as written (terminal)."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        now = self.clock()
        try:
            run_spec = RunSpec.model_validate(dict(body.get("spec") or {}))
            snapshot, job_spec, graph = self.load_snapshot(namespace, run_spec, status, meta.get("uid") or "")
        except NotYet as exc:
            # Applied before its Job or Secret (e.g. by a GitOps tool, in any order): it waits, said once.
            if exc.reason == "JobNotFound":
                self._wait_for_job(namespace, run_spec.jobRef.name, name)
            said = status.get("message") == str(exc)
            events = [] if said else [Event(exc.reason, str(exc), "Warning")]
            return Outcome(pending(status, exc.reason, str(exc), generation, now), self.wait_resync, events)
        except (InvalidJob, ValidationError) as exc:
            message = str(exc)
            return Outcome(
                invalid(status, message, generation, now=now), self.resync, [_warning("InvalidJob", message)]
            )
        if status.get("jobSnapshot") is None:  # checked once, before the Run starts
            problem = config_problem(graph, run_spec.config, run_spec.overrides)
            if problem:
                reason, message = problem
                outcome = invalid(status, message, generation, reason, now)
                return Outcome(outcome, self.resync, [_warning(reason, message)])
            status["jobSnapshot"] = snapshot
            # A root Run labels itself as its lineage's root: `kubectl get crun -l cairn.dev/root-run=X` lists all.
            root = (meta.get("labels") or {}).get(LABEL_ROOT) or name
            self.kube.label_run(namespace, name, {LABEL_JOB: run_spec.jobRef.name, LABEL_ROOT: root})
        return Prepared(run_spec, job_spec, graph, status)

    def load_snapshot(
        self, namespace: str, spec: RunSpec, status: Mapping[str, Any], uid: str = ""
    ) -> tuple[dict[str, Any], JobSpec, OpGraph]:
        """The Job spec this Run runs: copied into its status when it starts, so later Job edits never
        change it (validated and built once per Run: a few milliseconds of each hand-off)."""
        snapshot = status.get("jobSnapshot")
        cached = self.snapshots.get(uid) if uid and snapshot is not None else None
        if cached is not None and snapshot is not None:
            return snapshot, cached[0], cached[1]
        if snapshot is None and spec.execution is not None:
            snapshot = spec.execution.jobSnapshot  # a child Run runs its parent's snapshot, not today's Job
        if snapshot is None:
            job = self.kube.get_job(namespace, spec.jobRef.name)
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
        secret = job_spec.storage.secretRef.name
        if status.get("jobSnapshot") is None and not self.kube.secret_exists(namespace, secret):
            raise NotYet(
                "SecretNotFound",
                f"waiting for Secret {secret!r} (spec.storage.secretRef of Job {spec.jobRef.name}): not found in "
                f"namespace {namespace}; the Run starts when it is created with the S3 credentials",
            )
        if uid and status.get("jobSnapshot") is not None:
            self.snapshots.put(uid, (job_spec, graph))
        return snapshot, job_spec, graph

    def _list_pods(
        self, namespace: str, name: str, run_spec: RunSpec, live: Sequence[str], everything: bool
    ) -> list[PodObs]:
        """Only the pods of the `live` steps (those in flight): a long Run's finished pods need not be read
        every cycle; all of them when every step is live or podGC has to see them."""
        gc = run_spec.podGC is not None and run_spec.podGC.strategy != "Never"
        live_ops = sorted({node_of(st) for st in live})  # pods are labelled by op (an instance's key is annotated)
        return self.kube.list_step_pods(namespace, name, None if gc or everything else live_ops)

    def _observe(
        self, body: Mapping[str, Any], prepared: Prepared, pods: list[PodObs], max_parallel: int, slots: int
    ) -> RunInput:
        """What `reconcile` decides on: the Run, its step versions (only read when a pod succeeded), the
        keys of dynamic steps that finished, the logs of finished attempts saved now, where outputs are."""
        meta = body["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        generation = int(meta.get("generation") or 1)
        run_spec, job_spec, status = prepared.run_spec, prepared.job_spec, prepared.status
        steps = status.get("steps") or {}
        succeeded = any(p.phase == PodPhase.SUCCEEDED for p in pods)
        run = RunInput(
            name=name,
            uid=uid,
            generation=generation,
            status=status,
            max_parallel=max_parallel,
            cancel=run_spec.cancel,
            pod_gc=(run_spec.podGC.strategy if run_spec.podGC else "Never"),
            slots=slots,
            execution=run_spec.execution,
            versions=self.run_versions(uid, generation, job_spec, run_spec) if succeeded else {},
            dynamic_keys=self.read_dynamic_keys(namespace, job_spec, prepared.graph, steps, pods),
            prefix=job_spec.storage.prefix,
        )
        if succeeded or not steps or needs_locations(steps):
            run.bucket = self.storage.bucket(namespace, job_spec)
        return run

    def run_versions(self, uid: str, generation: int, job_spec: JobSpec, run_spec: RunSpec) -> dict[str, str]:
        """`step_versions` of a Run, computed once per generation of its spec (config and overrides)."""
        key = (uid, generation)
        if key not in self.versions:
            self.versions.put(key, step_versions(job_spec, run_spec.config, run_spec.overrides))
        found: dict[str, str] = self.versions[key]
        return found

    def read_dynamic_keys(
        self, namespace: str, spec: JobSpec, graph: OpGraph, steps: Mapping[str, Any], pods: Sequence[PodObs]
    ) -> dict[str, dict[str, list[str]]]:
        """The mapping keys of each dynamic step whose pod succeeded and whose keys the status lacks: read
        from the key index its pod stored (the termination message is too small for a large fan-out). A
        step whose index cannot be read yet is left out: it stays running, saying so, and the next cycle
        reads again."""
        out: dict[str, dict[str, list[str]]] = {}
        for p in pods:
            op = graph.ops.get(node_of(p.step))
            st = steps.get(p.step) or {}
            if op is None or not op.dynamicOutputs or p.phase != PodPhase.SUCCEEDED or st.get("keys"):
                continue
            outputs = (parse_result(p.message) or {}).get("outputs") or {}
            try:
                io = self.storage.open(namespace, spec)
                out[p.step] = {
                    o: [str(k) for k in io.load(outputs[o]["key"], "json")] for o in op.dynamicOutputs if o in outputs
                }
            except Exception as exc:  # storage down: said in the step's message by reconcile, read again next cycle
                log.warning("cannot read the mapping keys of step %s of %s/%s: %s", p.step, namespace, p.name, exc)
        return out

    def save_logs(
        self, namespace: str, run: str, uid: str, spec: JobSpec, saves: Sequence[SaveLog]
    ) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """Copy finished pods' logs to <prefix>/<ns>/<run>/<step>/logs/attempt-N.log: (step -> {attempt: key})
        of those saved, and (step -> why not) of those that could not be (S3 unreachable, a key refused;
        said on the step, tried again next cycle, the pod kept by podGC meanwhile)."""
        saved: dict[str, dict[str, str]] = {}
        errors: dict[str, str] = {}
        for action in saves:
            key = f"{namespace}/{run_key(run, uid)}/{action.step}/logs/attempt-{action.attempt}.log"
            try:
                try:
                    data = self.kube.pod_log(namespace, action.pod)
                except Exception as exc:
                    if getattr(exc, "status", None) != 404:
                        raise
                    key = f"unavailable: pod {action.pod} was gone before its log was saved"
                else:
                    self.storage.open(namespace, spec).store(key, data, "bytes")
            except Exception as exc:
                why = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                errors[action.step] = (
                    f"attempt {action.attempt}: its log could not be saved to storage ({type(exc).__name__}: "
                    f"{why}); tried again every cycle, the pod is kept until it is saved"
                )
                continue
            saved.setdefault(action.step, {})[str(action.attempt)] = key
        return saved, errors

    # ----- act ---------------------------------------------------------------------------------------
    def _create_pods(
        self, meta: Mapping[str, Any], prepared: Prepared, result: Result, slots: Reservation
    ) -> dict[str, str]:
        """Create the pods `result` asks for; step -> why for each pod that cannot be (refused as invalid,
        422, or too large to build). Raises Refused for a refusal an admin may fix."""
        namespace, run_spec = meta["namespace"], prepared.run_spec
        graph = result.graph or prepared.graph
        steps = result.status.get("steps") or {}
        ops_config = (run_spec.config or {}).get("ops") or {}
        creates, failed = [], {}
        for a in result.actions:
            if isinstance(a, CreatePod):
                try:
                    creates.append(
                        step_pod(
                            run=meta["name"],
                            run_uid=meta["uid"],
                            namespace=namespace,
                            job_name=run_spec.jobRef.name,
                            spec=prepared.job_spec,
                            graph=graph,
                            step=a.step,
                            attempt=a.attempt,
                            inputs=step_inputs(graph, a.step, steps),
                            config=(ops_config.get(node_of(a.step)) or {}).get("config"),
                            override=(run_spec.overrides or {}).get(node_of(a.step)),
                            service_account=self.step_account,
                        )
                    )
                except ContextTooLarge as exc:
                    failed[a.step] = str(exc)
        keys = [f"{namespace}/{c['metadata']['name']}" for c in creates]
        slots.hold(keys)
        try:
            self.ensure_step_accounts(creates)
        except BaseException:
            for k in keys:
                self.slots.release(k)
            raise
        refusals = self._create_all(namespace, creates)
        waiting = [e for e in refusals.values() if not e.permanent]
        if waiting:
            raise waiting[0]
        failed.update(
            (step, f"{refusal}: fix the Job's op (or the Run's overrides), then re-execute")
            for step, refusal in refusals.items()
        )
        return failed

    def _create_all(self, namespace: str, pods: list[dict[str, Any]]) -> dict[str, Refused]:
        """Create pods (several at once: a fan-out creates hundreds); step -> the API server's refusal."""
        refusals: dict[str, Refused] = {}

        def create(pod: dict[str, Any]) -> None:
            key = f"{namespace}/{pod['metadata']['name']}"
            try:
                if self.kube.create_pod(pod):
                    self.metrics.pod_created(namespace)
                else:
                    self.slots.release(key)  # it existed: the watch counts it
            except Refused as exc:
                self.slots.release(key)
                self.metrics.api_refusal("Pod", str(exc.reason))
                refusals[pod_step(pod)] = exc
            except BaseException:
                self.slots.release(key)
                raise

        if len(pods) == 1:
            create(pods[0])
        elif pods:
            list(self.creators.map(create, pods))
        return refusals

    def _refused(self, body: Mapping[str, Any], prepared: Prepared, exc: Refused) -> Outcome:
        """RBAC, admission or a quota said no (what an admin can fix: a missing ServiceAccount, PodSecurity):
        shown in the Run's status and, once per distinct refusal, as a Warning Event; this cycle's decisions
        are dropped and the next cycle tries again after a growing delay (said in the message)."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        if "service account" in str(exc):  # "error looking up service account": deleted since it was made
            with self._lock:
                self.accounts_ready.discard((namespace, self.step_account))
        delay = self.refused_backoff.next(f"{namespace}/{name}")
        observed = dict(body.get("status") or {})
        if observed.get("jobSnapshot") is None:  # not started: an edit of its Job wakes it
            self._wait_for_job(namespace, prepared.run_spec.jobRef.name, name)
        cap = self.refused_backoff.cap
        message = f"{exc} (tried again after a growing delay, up to {cap:.0f}s, and after each change)"
        if observed.get("message") == message:
            return Outcome(observed, delay)
        generation = int(meta.get("generation") or 1)
        return Outcome(
            refused(observed, message, generation, self.clock()), delay, [_warning("FailedCreate", str(exc))]
        )

    def ensure_step_accounts(self, pods: list[dict[str, Any]]) -> None:
        """Before `pods` are created: the step ServiceAccount they run as exists in their namespace (created
        if missing). Remembered once it succeeds; a refusal (Refused) propagates like a refused pod."""
        with self._lock:
            for namespace, name in sorted(service_accounts_to_ensure(pods, self.step_account) - self.accounts_ready):
                self.kube.ensure_service_account(step_service_account(namespace, name))
                self.accounts_ready.add((namespace, name))

    def post_events(self, body: Mapping[str, Any], events: Sequence[Any]) -> None:
        """Post the Event actions of a decision as Events of `body`."""
        for e in events:
            if isinstance(e, Event):
                self.recorder.post(body, e.type, e.reason, e.message)


def _warning(reason: str, message: str) -> Event:
    return Event(reason, message, "Warning")
