"""The Run's decisions as a pure function: `reconcile(run, graph, pods, now) -> (actions, status)`.

Given what a Run's status says, the Job snapshot's graph and the step pods that exist, it decides the
pods to create or delete and the events to post, and computes the Run's next status. The handlers
carry the actions out and write the status once per cycle. Calling it again with the same inputs gives
the same result, which makes the operator level-triggered: a restart or a missed event changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cairn import machine
from cairn.dynamic import is_placeholder, node_of, status_keys
from cairn.machine import Announce, Moved, Planned, StepRow
from cairn.retries import ExponentialRetries
from cairn.runstate import Gate, RunPhase, StepState, gate
from cairn_operator.graph import OpGraph, output_location
from cairn_operator.models import Execution, Retries
from cairn_operator.resources import add_locations, needs_locations, pod_name, step_output_locations

#: The JSON protocol of the runtime's step entrypoint (cairn.step.PROTOCOL).
STEP_PROTOCOL = 1
#: A Run with more steps than this is *large*: its status keeps per output only what re-execution needs
#: (key, size, ETag), its storage location once (`status.storage`), so that a 1,000-way map with two
#: mapped ops stays under 1 MiB (the API server refuses objects of about 1.5 MiB). An output's SHA-256
#: stays in its pod's termination message while the pod exists.
LARGE_RUN_STEPS = 500
#: The most steps a Run may have (a map's keys included): about 430 bytes of status per step, so that the
#: Run object stays under 1 MiB; a dynamic step emitting more keys fails, saying so.
MAX_RUN_STEPS = 2100


@dataclass(frozen=True)
class PodObs:
    """What a step pod says of itself."""

    name: str
    step: str
    attempt: int
    phase: str  # Pending | Running | Succeeded | Failed | Unknown
    exit_code: int | None = None
    message: str | None = None
    reason: str | None = None
    started: str | None = None
    finished: str | None = None
    deleting: bool = False
    waiting_reason: str | None = None  # the first container's state.waiting (e.g. ErrImagePull)
    waiting_message: str | None = None
    image: str | None = None  # the first container's image
    node: str | None = None  # spec.nodeName
    #: When the node controller marked the running pod not ready because its node stopped answering
    #: (Ready False with no reason of the kubelet's, its container still running), else None.
    node_lost_since: str | None = None
    #: Seconds the pod tolerates a lost node (its NoExecute tolerations of not-ready/unreachable); None: for ever.
    node_lost_grace: float | None = None


@dataclass(frozen=True)
class CreatePod:
    step: str
    attempt: int


@dataclass(frozen=True)
class DeletePod:
    name: str
    why: str
    force: bool = False  # grace period 0: its node is lost, no kubelet will confirm a graceful delete


@dataclass(frozen=True)
class SaveLog:
    """Copy a finished pod's log to storage, so it outlives the pod."""

    pod: str
    step: str
    attempt: int


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    type: str = "Normal"


Action = CreatePod | DeletePod | SaveLog | Event


@dataclass
class RunInput:
    """What reconcile needs of the Run."""

    name: str
    generation: int
    status: Mapping[str, Any]
    max_parallel: int
    cancel: bool = False
    pod_gc: str = "Never"
    slots: int = 1_000_000  # operator-wide limit left for new pods
    execution: Execution | None = None  # a child Run's plan: what it executes, reuses, skips
    uid: str = ""
    versions: Mapping[str, str] = field(default_factory=dict)  # step -> its version in this Run (recorded)
    #: dynamic step -> {output: mapping keys}, read from storage for a dynamic step whose pod succeeded
    dynamic_keys: Mapping[str, Mapping[str, Sequence[str]]] = field(default_factory=dict)
    #: step -> why the API server refused (or the operator could not build) the pod of the attempt this
    #: cycle starts: observed when the pod was created, given to a second decision of the same cycle
    refused: Mapping[str, str] = field(default_factory=dict)
    #: where outputs are stored (the Job's bucket, None when unknown) and the Job's key prefix
    bucket: str | None = None
    prefix: str = ""

    def pod_name(self, step: str, attempt: int) -> str:
        return pod_name(self.name, self.uid, step, attempt)


@dataclass
class Result:
    actions: list[Action] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    graph: OpGraph | None = None  # the Run's steps as this cycle left them (mapped ops expanded per known key)


def ts(t: dt.datetime) -> str:
    """RFC 3339 in UTC, to the second (``2026-01-01T00:00:00Z``)."""
    return t.astimezone(dt.UTC).isoformat()[:19] + "Z"


def parse_ts(s: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(s) if s else None


def retry_rule(retries: Retries | None) -> ExponentialRetries:
    """An op's `retries` as the run machine's rule: `limit` retries, the delay after attempt n
    ``min(maxDurationSeconds, durationSeconds * factor**(n - 1))``."""
    r = retries or Retries()
    b = r.backoff
    return ExponentialRetries(r.limit, b.durationSeconds, b.factor, b.maxDurationSeconds)


def backoff_seconds(retries: Retries, attempt: int) -> float:
    """Delay before attempt `attempt + 1`, after `attempt` failed attempts."""
    return retry_rule(retries).delay(attempt, _no_jitter)


def _no_jitter() -> float:
    return 0.0


#: A step row's fields (`cairn.machine.StepRow`) and their keys in a Run's `status.steps[*]`.
_ROW_KEYS = (
    ("state", "phase"),
    ("attempt", "attempt"),
    ("reason", "reason"),
    ("message", "message"),
    ("next_attempt_at", "nextAttemptAt"),
    ("started_at", "startedAt"),
    ("finished_at", "finishedAt"),
    ("exit_code", "exitCode"),
)


_STATES: Mapping[str, StepState] = MappingProxyType({s.value: s for s in StepState})


def row_of(st: Mapping[str, Any]) -> StepRow:
    """A status row as the run machine's typed row."""
    return StepRow(
        _STATES.get(st["phase"]) or StepState(st["phase"]),
        int(st.get("attempt", 0)),
        st.get("reason"),
        st.get("message"),
        parse_ts(st.get("nextAttemptAt")),
        parse_ts(st.get("startedAt")),
        parse_ts(st.get("finishedAt")),
        st.get("exitCode"),
    )


def _wire(value: Any) -> Any:
    if isinstance(value, StepState):
        return value.value
    if isinstance(value, dt.datetime):
        return ts(value)
    return value


def _posted(told: Announce) -> Event:
    return Event(told.reason, told.message, told.type)


def apply(st: dict[str, Any], before: StepRow, moved: Moved, events: list[Action] | None = None) -> None:
    """A transition of the run machine into a status row, in place: only the fields it changed are
    written (a field it cleared is removed); its announcement becomes an Event when `events` is given
    (the operator posts those of starts and attempt results, not of gates or cancels)."""
    was, now = before.__dict__, moved.row.__dict__
    for name, key in _ROW_KEYS:
        value = now[name]
        if value != was[name]:
            if value is None:
                st.pop(key, None)
            else:
                st[key] = _wire(value)
    if events is not None and moved.event is not None:
        events.append(_posted(moved.event))


def parse_result(message: str | None) -> dict[str, Any] | None:
    """The step entrypoint's JSON result from a termination message, or None if it is not one."""
    if not message:
        return None
    try:
        doc = json.loads(message)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("protocol") != STEP_PROTOCOL:
        return None
    return doc


#: Waiting reasons of a container whose image the node does not have and cannot get (the kubelet's).
IMAGE_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "ImageInspectError",
        "RegistryUnavailable",
    }
)
#: Waiting reasons of a container the kubelet cannot create (a missing Secret key, runAsNonRoot and a root image).
CREATE_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
#: The step message's leading word (and the Event's reason) of a step whose container cannot start.
IMAGE_PULL_FAILED = "ImagePullFailed"
CREATE_FAILED = "CreateContainerFailed"
LOAD_HINT = (
    "cairn dev up --node=containerd imports the images of `cairn dev image build`; kind: kind load docker-image {image}"
)


def waiting_problem(pod: PodObs) -> tuple[str, str] | None:
    """(Event reason, step message) when the pod's container waits for something that will not come by
    itself (an image the node lacks, a container the kubelet cannot create); None while it is just
    starting. The message names the problem, the kubelet's words and the fix."""
    reason = pod.waiting_reason
    if reason not in IMAGE_REASONS and reason not in CREATE_REASONS:
        return None
    image = pod.image or "?"
    node = f"node {pod.node}" if pod.node else "its node"
    detail = f"{reason}: {(pod.waiting_message or '').strip()[:400]}".rstrip(": ")
    fix_image = "or fix the op's image (the Job's spec.image or ops[].image, or the Run's overrides)"
    if reason == "InvalidImageName":
        return (
            IMAGE_PULL_FAILED,
            f"{IMAGE_PULL_FAILED}: image {image} is not a valid image name ({detail}): {fix_image[3:]}",
        )
    if reason in IMAGE_REASONS:
        never = reason == "ErrImageNeverPull"  # imagePullPolicy Never: no registry is asked
        how, push = ("", "") if never else (" and could not be pulled", "push it to a registry the node can reach, ")
        hint = LOAD_HINT.format(image=image)
        return (
            IMAGE_PULL_FAILED,
            f"{IMAGE_PULL_FAILED}: image {image} is not on {node}{how} ({detail}): build or load it ({hint}), "
            f"{push}{fix_image}",
        )
    return (
        CREATE_FAILED,
        f"{CREATE_FAILED}: the kubelet cannot create the step's container on {node} ({detail}): fix what it "
        "names (e.g. a missing Secret or key, or runAsNonRoot with an image whose USER is root: set a "
        "numeric non-root USER in the image or runAsUser in the podTemplate)",
    )


def waiting_category(message: str | None) -> str | None:
    """IMAGE_PULL_FAILED or CREATE_FAILED when a step's message is one `waiting_problem` wrote."""
    head = (message or "").split(": ", 1)[0]
    return head if head in (IMAGE_PULL_FAILED, CREATE_FAILED) else None


def condition(
    type_: str, status: bool | str, reason: str, message: str, now: str, generation: int | None = None
) -> dict[str, Any]:
    """One condition as the Kubernetes API conventions have it; `status` True/False or "Unknown"."""
    c: dict[str, Any] = {
        "type": type_,
        "status": status if isinstance(status, str) else ("True" if status else "False"),
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    }
    if generation is not None:
        c["observedGeneration"] = generation
    return c


def keep_transitions(new: list[dict[str, Any]], old: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """`new` with each condition's lastTransitionTime taken from `old` while its status stays the same:
    the time says when the status last changed, not when the operator last looked."""
    before = {o.get("type"): o for o in old or ()}
    out = []
    for c in new:
        o = before.get(c["type"])
        if o is not None and o.get("status") == c["status"] and o.get("lastTransitionTime"):
            c = {**c, "lastTransitionTime": o["lastTransitionTime"]}
        out.append(c)
    return out


#: The condition types of a Run and a Reexecution (kstatus' Ready/Reconciling/Stalled; a Run adds Succeeded).
READY, RECONCILING, STALLED, SUCCEEDED = "Ready", "Reconciling", "Stalled", "Succeeded"


def run_conditions(
    phase: RunPhase,
    reason: str,
    message: str,
    generation: int,
    now: str,
    old: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """A Run's conditions in `phase` (kstatus): in progress (Pending, Running, waiting for its Job or
    Secret) it is Reconciling, Succeeded Unknown; succeeded it is Ready; failed, canceled or invalid it is
    Stalled. `reason` and `message` say why (the phase, a waiting reason, InvalidJob...)."""
    if phase is RunPhase.SUCCEEDED:
        ready, reconciling, stalled, succeeded = "True", "False", "False", "True"
    elif phase.finished:
        ready, reconciling, stalled, succeeded = "False", "False", "True", "False"
    else:
        ready, reconciling, stalled, succeeded = "False", "True", "False", "Unknown"
    new = [
        condition(READY, ready, reason, message, now, generation),
        condition(RECONCILING, reconciling, reason, message, now, generation),
        condition(STALLED, stalled, reason, message, now, generation),
        condition(SUCCEEDED, succeeded, reason, message, now, generation),
    ]
    return keep_transitions(new, old)


#: Reexecution phases: those that are done well, and those that cannot go on by themselves.
RX_READY = frozenset({"Planned", "Succeeded"})
RX_STALLED = frozenset({"Failed", "Invalid"})


def rx_conditions(
    phase: str,
    reason: str,
    message: str,
    generation: int,
    now: str,
    old: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """A Reexecution's conditions (kstatus): Ready once planned (dry run) or its child Run succeeded;
    Stalled when the request is invalid or the child failed; Reconciling while it waits or its child runs."""
    ready, stalled = phase in RX_READY, phase in RX_STALLED
    new = [
        condition(READY, ready, reason, message, now, generation),
        condition(RECONCILING, not (ready or stalled), reason, message, now, generation),
        condition(STALLED, stalled, reason, message, now, generation),
    ]
    return keep_transitions(new, old)


def reconcile(run: RunInput, graph: OpGraph, pods: Sequence[PodObs], now: dt.datetime) -> Result:
    """One reconcile cycle of a Run whose Job snapshot is `graph`: observe the pods of current attempts,
    then cancel, or settle what can no longer run and start what is ready within the limits. Every step
    transition is the run machine's (`cairn.machine`), applied to the status rows it touches."""
    prev = dict(run.status)
    static = graph
    steps: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (prev.get("steps") or {}).items()}
    graph = _expand(static, steps, run.execution)
    res = Result(status=prev, graph=graph)
    if prev.get("phase") and RunPhase(prev["phase"]).finished:
        _gc(run, graph, pods, prev.get("steps") or {}, res)
        return res
    by_step: dict[str, PodObs] = {}
    for p in pods:
        cur = by_step.get(p.step)
        if cur is None or p.attempt > cur.attempt:
            by_step[p.step] = p
    cycle = _Cycle(run, static, graph, steps, now, res.actions)
    keys_came = False
    for s in graph.order:  # 1. Observe the pods of current attempts.
        keys_came = cycle.observe(s, by_step.get(s)) or keys_came
    if keys_came:  # each placeholder `op[*]` of their maps becomes one step per key
        graph = _expand(static, steps, run.execution)
        res.graph = cycle.graph = graph
    if run.cancel:  # 2. Cancel.
        cycle.cancel(by_step)
        return _finish(run, graph, steps, res, ts(now), canceled=True)
    cycle.schedule()  # 3. Downstream of failures, skipped inputs, retries due, and new pods within the limits.
    return _finish(run, graph, steps, res, ts(now), canceled=False, pods=pods)


@dataclass
class _Cycle:
    """One cycle's decisions over the status rows (`steps`, edited in place); actions go to `events`."""

    run: RunInput
    static: OpGraph
    graph: OpGraph
    steps: dict[str, dict[str, Any]]
    now: dt.datetime
    events: list[Action]

    def observe(self, s: str, pod: PodObs | None) -> bool:
        """What the current attempt's pod says; True when a dynamic step's mapping keys came in."""
        st = self.steps[s]
        phase = StepState(st["phase"])
        attempt = int(st.get("attempt", 0))
        if phase.waiting and pod is not None and pod.attempt == attempt + 1:
            # Created in a cycle whose status write was lost (e.g. an operator restart): adopt it.
            before = row_of(st)
            apply(st, before, machine.adopt(before, pod.attempt))
            phase, attempt = StepState.RUNNING, pod.attempt
        if phase is not StepState.RUNNING:
            return False
        if self._attempt_over(s, st, pod):
            return False
        assert pod is not None
        st["podName"] = pod.name
        if pod.started and not st.get("startedAt"):
            st["startedAt"] = pod.started
        if pod.phase in ("Pending", "Running"):
            _observe_waiting(s, st, pod, self.events)
        elif pod.phase == "Succeeded":
            return self._succeeded(s, st, pod)
        elif pod.phase == "Failed":
            self._failed(s, st, pod)
        return False

    def _attempt_over(self, s: str, st: dict[str, Any], pod: PodObs | None) -> bool:
        """A running attempt whose pod is gone, on a lost node, or deleted from outside: over, retried per
        the op's retries (Interrupted when they are exhausted)."""
        run, now = self.run, self.now
        if pod is None or pod.attempt != int(st.get("attempt", 0)):
            gone = "the step's pod was deleted while it ran (or its node lost it)"
            _attempt_failed(self.graph, s, st, gone, None, now, self.events, interrupted=True)
            return True
        lost = parse_ts(pod.node_lost_since)
        if (
            lost is not None
            and pod.node_lost_grace is not None
            and not pod.deleting
            and pod.phase == "Running"
            and (now - lost).total_seconds() >= pod.node_lost_grace
            and not run.cancel
        ):
            # Its node stopped answering and Kubernetes does not evict (a single-node zone never does):
            # the attempt is over, its pod is force-deleted after the status says so, the step retried.
            why = (
                f"the node {pod.node or '?'} of the step's pod {pod.name} stopped answering at {pod.node_lost_since} "
                f"(the pod tolerates a lost node {pod.node_lost_grace:.0f}s)"
            )
            _attempt_failed(self.graph, s, st, why, None, now, self.events, interrupted=True)
            self.events.append(DeletePod(pod.name, "its node is lost", force=True))
            return True
        if pod.deleting and pod.phase in ("Pending", "Running") and not run.cancel:
            # Deleted from outside while it runs: evicted from a node that stopped answering (it may never
            # confirm the deletion), drained, or deleted by hand. The attempt is over: retried per policy.
            why = f"the step's pod {pod.name} was deleted or evicted while it ran (its node may be lost)"
            _attempt_failed(self.graph, s, st, why, None, now, self.events, interrupted=True)
            return True
        return False

    def _succeeded(self, s: str, st: dict[str, Any], pod: PodObs) -> bool:
        """The pod exited 0: the step succeeded with the outputs its result names (a dynamic step once its
        keys are read); True when mapping keys came in."""
        result = parse_result(pod.message)
        if result is None or result.get("status") != "SUCCESS":
            why = (
                f"the step exited 0 but wrote no valid result to its termination message: {(pod.message or '')[:200]!r}"
            )
            _attempt_failed(self.graph, s, st, why, pod.exit_code, self.now, self.events)
            return False
        keys_came = False
        if self.graph.ops[s].dynamicOutputs:
            keys = self._keys(s, st, pod, result)
            if keys is None:
                return False
            st["keys"] = {o: list(ks) for o, ks in keys.items()}
            keys_came = True
        if self.run.versions.get(node_of(s)):
            st["version"] = self.run.versions[node_of(s)]
        large = len(self.graph.order) > LARGE_RUN_STEPS
        st["outputs"] = {
            k: {"key": v["key"], "size": v.get("size"), "etag": v.get("etag")}
            | ({} if large else {"sha256": v.get("sha256")})
            for k, v in (result.get("outputs") or {}).items()
        }
        before = row_of(st)
        apply(st, before, machine.succeed(s, before, self.now, parse_ts(pod.finished)), self.events)
        return keys_came

    def _keys(
        self, s: str, st: dict[str, Any], pod: PodObs, result: Mapping[str, Any]
    ) -> Mapping[str, Sequence[str]] | None:
        """A dynamic step's mapping keys, once read from storage; None while they are not, or when they
        would make the Run too large (the step then fails TooManySteps)."""
        keys = self.run.dynamic_keys.get(s)
        outputs = result.get("outputs") or {}
        if keys is None or any(o in outputs and o not in keys for o in self.graph.ops[s].dynamicOutputs):
            st["message"] = "reading the mapping keys of its dynamic outputs from storage"
            return None  # the handler reads them (its key index) before the next cycle
        known = {**status_keys(self.steps), **{(s, o): tuple(ks) for o, ks in keys.items()}}
        total = len(self.static.concrete(known).order)
        if total <= MAX_RUN_STEPS:
            return keys
        why = (
            f"TooManySteps: it emitted {sum(len(k) for k in keys.values())} mapping keys, which would make "
            f"this Run {total} steps, more than the {MAX_RUN_STEPS} a Run's status holds (the API server "
            "refuses objects of about 1.5 MiB): emit fewer keys (e.g. one per group of shards) or split "
            "the work over several Runs"
        )
        before = row_of(st)
        apply(st, before, machine.fail(s, before, why, self.now, parse_ts(pod.finished)), self.events)
        return None

    def _failed(self, s: str, st: dict[str, Any], pod: PodObs) -> None:
        """The pod failed: the attempt failed with its result's error, a timeout, or the pod's message."""
        result = parse_result(pod.message)
        if result and result.get("error"):
            msg = f"{result['error'].get('type')}: {result['error'].get('message')}"
        elif pod.reason == "DeadlineExceeded":
            msg = f"timed out (timeoutSeconds, pod reason {pod.reason})"
            problem = waiting_problem(pod)
            stuck = st.get("message") if waiting_category(st.get("message")) else problem and problem[1]
            if stuck:
                msg += f" before its container could start: {stuck}"
        else:
            msg = (pod.message or pod.reason or "failed")[-500:]
        ended = pod.finished or ts(self.now)
        _attempt_failed(self.graph, s, st, msg, pod.exit_code, self.now, self.events, finished=ended)

    def cancel(self, by_step: Mapping[str, PodObs]) -> None:
        """spec.cancel: running steps' pods deleted and Interrupted, waiting steps Canceled."""
        for s in self.graph.order:
            st = self.steps[s]
            phase = StepState(st["phase"])
            if phase is StepState.RUNNING and by_step.get(s) is not None:
                self.events.append(DeletePod(by_step[s].name, "run canceled"))
            if not phase.terminal:
                before = row_of(st)
                apply(st, before, machine.cancel(s, before, self.now))

    def schedule(self) -> None:
        """Each waiting step: settled when it can no longer run, started when ready, due and within the
        Run's maxParallel and the operator's slots (failed at once when its pod was refused)."""
        steps, run = self.steps, self.run
        running = sum(1 for s in self.graph.order if StepState(steps[s]["phase"]) is StepState.RUNNING)
        budget = max(0, min(run.max_parallel - running, run.slots))
        for s in self.graph.order:
            st = steps[s]
            phase = StepState(st["phase"])
            if not phase.waiting:
                continue
            decision = gate(
                self.graph.deps[s],
                lambda up: StepState(steps[up]["phase"]),
                lambda up, out: output_location(steps[up], out) is not None,
            )
            if decision.state is not None:  # blocked by a failed upstream, or an input not produced
                before = row_of(st)
                apply(st, before, machine.settle(s, before, decision))
                continue
            if decision.gate is Gate.WAIT:
                continue
            if phase is StepState.RETRYING:
                due = parse_ts(st.get("nextAttemptAt"))
                if due is not None and due > self.now:
                    continue
            if budget <= 0:
                continue
            budget -= 1
            self._start(s, st)

    def _start(self, s: str, st: dict[str, Any]) -> None:
        before = row_of(st)
        started = machine.start(s, before)
        attempt = started.row.attempt
        if s in self.run.refused:  # its pod is invalid (the same spec is refused every time): the step fails
            refused = machine.fail(s, started.row, self.run.refused[s], self.now, reason="PodRefused")
            apply(st, before, refused, self.events)
            return
        apply(st, before, started)
        st["podName"] = self.run.pod_name(s, attempt)
        self.events.append(CreatePod(s, attempt))
        if started.event is not None:
            self.events.append(_posted(started.event))


def logs_to_save(pods: Sequence[PodObs], steps: Mapping[str, Any]) -> list[SaveLog]:
    """The finished attempts whose log the status does not record yet: saved to storage before the
    decision (their keys, or why not, are observations of `reconcile`), before any pod is collected."""
    out = []
    for p in pods:
        logs = (steps.get(p.step) or {}).get("logs") or {}
        if p.phase in ("Succeeded", "Failed") and str(p.attempt) not in logs:
            out.append(SaveLog(p.name, p.step, p.attempt))
    return out


def record_logs(
    steps: dict[str, dict[str, Any]], saved: Mapping[str, Mapping[str, str]], errors: Mapping[str, str]
) -> list[Event]:
    """The logs of finished attempts saved this cycle (step -> {attempt: key}) into the decided status'
    steps, in place; a log that could not be saved (step -> why) is said on its step (`logError`, tried
    again next cycle; podGC keeps the pod meanwhile) and, once per distinct problem, as a Warning Event.
    The logs are saved after the cycle's new pods are created (off the hand-off's path)."""
    events = []
    for s, keys in saved.items():
        if s in steps:
            steps[s].pop("logError", None)
            steps[s]["logs"] = {**(steps[s].get("logs") or {}), **keys}
    for s, problem in errors.items():
        if s in steps and steps[s].get("logError") != problem:
            steps[s]["logError"] = problem
            events.append(Event("LogSaveFailed", f"step {s}: {problem}", "Warning"))
    return events


def _expand(static: OpGraph, steps: dict[str, dict[str, Any]], execution: Execution | None) -> OpGraph:
    """The Run's steps with the mapping keys its status knows; rows added for new steps (an instance
    takes its placeholder's planned reason) and placeholders whose keys came in removed, in place."""
    plan: Planned | None = None
    while True:  # a new row may bring keys (a child's reused dynamic step): expand over them too
        keys = status_keys(steps)
        graph = static.concrete(keys)
        for s in graph.order:
            if s not in steps:
                plan = plan or planned(execution)
                steps[s] = initial_step(s, execution, plan)
        if status_keys(steps) == keys:
            break
    order = set(graph.order)
    for s in [s for s in steps if is_placeholder(s) and s not in order]:
        del steps[s]
    return graph


def planned(execution: Execution | None) -> Planned:
    """What a Run's plan says of its steps: a plain Run runs everything; a child Run its `execution`."""
    if execution is None:
        return Planned()
    return Planned(
        {p.name: p.reason for p in execution.steps},
        {s: r.sourceRun for s, r in execution.reused.items()},
        execution.skipped,
    )


def initial_step(step: str, execution: Execution | None, plan: Planned | None = None) -> dict[str, Any]:
    """A step's first status (`cairn.machine.Planned.initial`): everything runs in a plain Run; a child Run
    runs only its planned steps (an instance of a map planned whole as its placeholder), and its reused
    steps point at the outputs of the runs that produced them (nothing is copied)."""
    init = (plan or planned(execution)).initial(step)
    st: dict[str, Any] = {"phase": init.state.value, "attempt": 0}
    if init.reason is not None:
        st["reason"] = init.reason
    if init.source_run is not None and execution is not None:
        st["sourceRun"] = init.source_run
        st["outputs"] = {o: {"key": ref.key, "etag": ref.etag} for o, ref in execution.reused[step].outputs.items()}
        if execution.reused[step].version:
            st["version"] = execution.reused[step].version
        if execution.reused[step].keys:
            st["keys"] = {o: list(ks) for o, ks in (execution.reused[step].keys or {}).items()}
    return st


def _observe_waiting(s: str, st: dict[str, Any], pod: PodObs, events: list[Action]) -> None:
    """A running attempt's pod not started yet: a container that cannot start is named in the step's
    message, with one Warning Event per pod and kind of problem (the message is the record of what was
    said: the same observation next cycle changes nothing); a container that runs, or is just being
    created, clears it. The step keeps waiting: the image may be loaded later (timeoutSeconds, as
    activeDeadlineSeconds, is what ends such a pod)."""
    prev = st.get("message")
    had = waiting_category(prev)
    problem = waiting_problem(pod)
    if problem is None:
        if had:
            st.pop("message", None)
        return
    category, message = problem
    if pod.waiting_reason == "ImagePullBackOff" and had == category:
        return  # the pull's own error, shown already, says more than "Back-off pulling image"
    st["message"] = message
    if had != category:
        events.append(Event(category, f"step {s} (pod {pod.name}): {message}", "Warning"))


def _attempt_failed(
    graph: OpGraph,
    s: str,
    st: dict[str, Any],
    message: str,
    exit_code: int | None,
    now: dt.datetime,
    events: list[Action],
    interrupted: bool = False,
    finished: str | None = None,
) -> None:
    """An attempt ended badly: retried after its backoff while the op's retries allow, else the step is
    Failed (Interrupted when the attempt was stopped from outside: its pod deleted, its node gone)."""
    before = row_of(st)
    rule = retry_rule(graph.ops[s].retries)
    ended = parse_ts(finished)
    apply(
        st,
        before,
        machine.attempt_failed(s, before, rule, message, now, _no_jitter, exit_code, ended, interrupted),
        events,
    )


def _finish(
    run: RunInput,
    graph: OpGraph,
    steps: dict[str, dict[str, Any]],
    res: Result,
    now_s: str,
    canceled: bool,
    pods: Sequence[PodObs] = (),
) -> Result:
    outcome = machine.run_result(
        [(s, StepState(steps[s]["phase"])) for s in graph.order], "canceled by spec.cancel" if canceled else None
    )
    status = dict(res.status)
    status.update(steps=steps, progress=outcome.progress, failedSteps=outcome.failed, observedGeneration=run.generation)
    status.setdefault("startedAt", now_s)
    _locate_outputs(run, status, steps)
    phase = outcome.phase
    status["phase"] = phase.value
    old_conditions = status.get("conditions") or []
    if outcome.message is not None and outcome.event is not None:  # finished
        status["finishedAt"] = now_s
        status["message"] = outcome.message
        status["conditions"] = run_conditions(
            phase, phase.value, outcome.message, run.generation, now_s, old_conditions
        )
        res.actions.append(_posted(outcome.event))
    else:
        stuck = [
            s
            for s in graph.order
            if StepState(steps[s]["phase"]) is StepState.RUNNING and waiting_category(steps[s].get("message"))
        ]
        if stuck:  # said until its container starts (or the step ends)
            first = steps[stuck[0]]["message"]
            more = f" (also stuck: {', '.join(stuck[1:])})" if len(stuck) > 1 else ""
            status["message"] = f"step {stuck[0]} cannot start{more}: {first}"
            waiting = (str(waiting_category(first)), status["message"])
        else:
            status.pop("message", None)  # e.g. a refused pod shown by an earlier cycle: over now
            waiting = (phase.value, f"{outcome.progress} steps done")
        status["conditions"] = run_conditions(phase, *waiting, run.generation, now_s, old_conditions)
    res.status = status
    _gc(run, graph, pods, steps, res)
    return res


def _locate_outputs(run: RunInput, status: dict[str, Any], steps: dict[str, dict[str, Any]]) -> None:
    """Where outputs are, for people and the UI: each output's `uri` (a large Run says its bucket and
    prefix once, in `status.storage`, instead: see LARGE_RUN_STEPS). Unknown bucket: nothing said."""
    if not run.bucket:
        return
    if len(steps) > LARGE_RUN_STEPS:
        if not status.get("storage"):
            status["storage"] = {"bucket": run.bucket, "prefix": run.prefix}
    elif needs_locations(steps):
        add_locations(step_output_locations(steps), run.bucket, run.prefix)


def _gc(run: RunInput, graph: OpGraph, pods: Sequence[PodObs], steps: Mapping[str, Any], res: Result) -> None:
    """Finished pods to delete per spec.podGC: see `collectable` (decided on the observed status only)."""
    res.actions.extend(collectable(run.pod_gc, run.status, pods))


def collectable(pod_gc: str, observed: Mapping[str, Any], pods: Sequence[PodObs]) -> list[DeletePod]:
    """Persist, then destroy: the succeeded pods spec.podGC lets go, decided on the Run's status as it was
    OBSERVED at the start of the cycle (never the status this cycle is about to write). A pod goes only
    once its step's result (phase Succeeded for that very attempt, its outputs) and its log's key are in
    that status, so a crash between any two writes loses nothing: the pod is read again next cycle.
    OnRunSuccess also waits for the observed Run to be Succeeded. Failed pods are kept for debugging."""
    if pod_gc == "Never" or (pod_gc == "OnRunSuccess" and observed.get("phase") != RunPhase.SUCCEEDED.value):
        return []
    if pod_gc not in ("OnStepSuccess", "OnRunSuccess"):
        return []
    steps = observed.get("steps") or {}
    out = []
    for p in pods:
        st = steps.get(p.step) or {}
        if p.deleting or p.phase != "Succeeded":
            continue
        persisted = (
            st.get("phase") == StepState.SUCCEEDED.value
            and int(st.get("attempt") or 0) == p.attempt
            and "outputs" in st
            and str(p.attempt) in (st.get("logs") or {})
        )
        if persisted:
            out.append(DeletePod(p.name, f"podGC {pod_gc}"))
    return out
