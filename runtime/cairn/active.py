"""A run in progress in this process: its step rows, which step is ready, and what each result does.

The second stage of `cairn.execution.execute_job` (plan -> active execution -> the loop -> one step's
body), as Dagster's `ActiveExecution`: it holds the run's rows (`cairn.machine.StepRow`), applies the
machine's transitions to them, writes each to the local run store and tells the caller's `on_event`.
Which step runs next (`next_step`): the first waiting step in job order whose upstream steps are done
and which is due; a step waiting for a retry lets the steps that do not depend on it run first, and
the loop waits for it only when nothing else can start.

Fan-out (`cairn.dynamic`): each mapped op is a placeholder ``op[*]`` until its dynamic step has run;
when it succeeds its keys are recorded and the placeholder's row replaced by one row per key
(`machine.expand`).

Events: every transition is also a Dagster event (`cairn.events`), in Dagster's order, kept for the run's
result (`EventLog.events`) and written to the run store in batches (one statement per `EventLog.BATCH`
events and one at the end of the run, not one per event).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cairn import dynamic, machine, retries
from cairn.definitions import JobDefinition
from cairn.events import (
    DagsterEvent,
    DagsterEventType,
    HookData,
    JobFailureData,
    StepRetryData,
    interrupted_failure,
    payload,
    step_failure,
    unpack,
)
from cairn.events import SerializableErrorInfo as ErrorInfo
from cairn.instance import Instance
from cairn.io import StoredOutput
from cairn.launch import Launch
from cairn.machine import Moved, Planned, StepRow
from cairn.planner import OutputRef
from cairn.retries import RetryRequested, RetryRule
from cairn.runstate import Gate, RunPhase, StepState, gate
from cairn.stepbody import job_graph

Event = tuple[str, str, Mapping[str, Any]]  # (kind, step or "", details)
Emit = Callable[[Event], None]
_log = logging.getLogger("cairn.execution")
T = DagsterEventType
_HOOK_EVENTS = MappingProxyType(
    {"hook_completed": T.HOOK_COMPLETED, "hook_errored": T.HOOK_ERRORED, "hook_skipped": T.HOOK_SKIPPED}
)
IO_MANAGER = "io_manager"  # the manager key Dagster names in LOADED_INPUT and HANDLED_OUTPUT


@dataclass(frozen=True)
class Clock:
    """How the executor tells the time, waits for a retry and draws jitter: injected by tests."""

    wall: Callable[[], float] = time.time  # seconds since the epoch
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random  # in [0, 1), for a retry policy's jitter

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.wall(), dt.UTC)


class EventLog:
    """A run's Dagster events in order, as the run store keeps them (`cairn.events.pack`'s form after a
    timestamp): written in batches (one row of the store per `BATCH` events, and the rest when the run ends)
    and made `DagsterEvent`s only when read (`events`), so that recording one costs a list append."""

    BATCH = 512

    def __init__(self, instance: Instance, run_id: str, job_name: str) -> None:
        self.instance, self.run_id, self.job_name = instance, run_id, job_name
        self.rows: list[list[Any]] = []  # [timestamp, event type value, step key, payload, logging tags]
        self._flushed = 0
        self._events: list[DagsterEvent] = []
        self._pid = os.getpid()

    def add(
        self, kind: DagsterEventType, step: str | None = None, body: Any = None, tags: Mapping[str, str] | None = None
    ) -> None:
        """Record an event whose data is given in its stored form (`cairn.events.payload`)."""
        self.rows.append([time.time(), kind.value, step, body, tags])
        if len(self.rows) - self._flushed >= self.BATCH:
            self.flush()

    def add_data(self, kind: DagsterEventType, step: str | None, data: Any) -> None:
        self.add(kind, step, payload(kind.value, data))

    def flush(self) -> None:
        if len(self.rows) > self._flushed:
            self.instance.record_events(self.run_id, self._flushed + 1, self.rows[self._flushed :])
            self._flushed = len(self.rows)

    @property
    def events(self) -> list[DagsterEvent]:
        for _, kind, step, body, tags in self.rows[len(self._events) :]:
            event = unpack(self.job_name, kind, step, body, tags)
            event.pid = self._pid
            self._events.append(event)
        return self._events


class ActiveExecution:
    """The machine over one in-process run's rows, recording every transition in the run store."""

    def __init__(self, instance: Instance, job: JobDefinition, launch: Launch, emit: Emit, clock: Clock) -> None:
        self.instance, self.job, self.launch, self.emit, self.clock = instance, job, launch, emit, clock
        self.run_id = launch.run_id
        plan = launch.plan
        self.graph = job_graph(job)
        self.keys: dict[tuple[str, str], tuple[str, ...]] = {dim: tuple(ks) for dim, ks in plan.keys.items()}
        concrete = self.graph.concrete(self.keys)
        self.order: list[str] = list(plan.steps or concrete.steps)
        self.input_values = launch.input_values  # inputs given in run config (an op selection's)
        self.deps = concrete.deps  # each step's inputs (its body reads them)
        self.waits_on = self._waits_on(self.deps)  # what each step waits for: its inputs not given in config
        self.to_run = dict(plan.to_run)
        self.planned = Planned(self.to_run, plan.reused_steps, plan.skipped)
        self.rows: dict[str, StepRow] = {s: machine.initial_row(s, self.planned) for s in self.order}
        # A dimension whose dynamic step runs again is re-mapped whole: its old instances are not this run's.
        remapped_ops = {op for dim in plan.remapped for op in self.graph.dimensions().get(dim, ())}
        self.inherited = {k: v for k, v in plan.inherited.items() if dynamic.node_of(k[0]) not in remapped_ops}
        # What this run's steps may read: the parent's index, but never an output of a step this run re-runs
        # (a re-run step that does not emit an optional output it emitted before must not leave the old one).
        self.available: dict[tuple[str, str], OutputRef] = {
            k: v for k, v in self.inherited.items() if k[0] not in self.to_run
        }
        self.inherited_outputs: dict[str, list[str]] = {}
        for s, o in self.inherited:
            self.inherited_outputs.setdefault(s, []).append(o)
        self.stored: dict[str, list[str]] = {}  # step -> the outputs its current attempt stored
        self.errors: dict[str, str] = {}
        self.first_error: BaseException | None = None
        self.canceled = False
        self.stop_on_error = False  # raise_on_error: the first failed step ends the run (Dagster in-process)
        self._cursor = 0  # every step before it is finished
        self.log = EventLog(instance, self.run_id, job.name)
        self._inputs: dict[str, list[str]] = {}  # step -> inputs loaded whose STEP_INPUT is not told yet
        self.failed_order: list[str] = []  # the steps that failed, in the order they failed

    def create(self) -> None:
        """The run's rows in the store; tell `run_start`."""
        parent, launch = self.launch.parent, self.launch
        rows = [(s, r.state, r.reason, self.planned.initial(s).source_run, self._kept(s)) for s, r in self.rows.items()]
        self.instance.create_run(
            self.run_id,
            self.job.name,
            parent.run_id if parent else None,
            parent.root_run_id if parent else self.run_id,
            launch.tags,
            launch.run_config,
            rows,
            self.inherited,
            parent.formats if parent else {},
            job_ref=self.job.module_ref,
            mode=launch.mode,
            keys=self.keys,
            keys_source=(
                {dim: launch.plan.reused_steps.get(dim[0], parent.run_id) for dim in self.keys} if parent else None
            ),
        )
        start = {"run_id": self.run_id, "steps": list(self.to_run), "parent": parent.run_id if parent else None}
        self.log.add(T.RUN_START)
        self.emit(("run_start", "", start))

    def _kept(self, step: str) -> str | None:
        """A step not executed keeps the version that produced what it reuses (its parent's record)."""
        parent = self.launch.parent
        if step in self.to_run or parent is None or step not in parent.steps:
            return None
        return parent.steps[step].version

    # ----- which step next ------------------------------------------------------------------------------
    def _waiting(self) -> Iterator[str]:
        while self._cursor < len(self.order) and not self.rows[self.order[self._cursor]].state.waiting:
            self._cursor += 1
        for step in self.order[self._cursor :]:
            if self.rows[step].state.waiting:
                yield step

    def next_step(self) -> tuple[str, float] | None:
        """The next step to start and the seconds to wait before it (0: now): the first waiting step in
        order that is ready and due, else the retrying step due first. Steps that can no longer run are
        settled on the way (NotExecuted, Skipped). None: nothing is left to start."""
        if self.canceled:
            return None
        if self.stop_on_error and self.first_error is not None:
            self._abandon("not executed: an earlier step failed and the run raises its error")
            return None
        now: dt.datetime | None = None  # read only when a retry is waiting (most steps never have one)
        later: tuple[dt.datetime, str] | None = None
        for step in self._waiting():
            decision = gate(self.waits_on[step], self._state, self._produced)
            if decision.state is not None:
                self._settle(step, machine.settle(step, self.rows[step], decision))
                continue
            if decision.gate is Gate.WAIT:
                continue
            due = self.rows[step].next_attempt_at
            if due is None:
                return step, 0.0
            now = now or self.clock.now()
            if due <= now:
                return step, 0.0
            if later is None or due < later[0]:
                later = (due, step)
        return None if later is None or now is None else (later[1], (later[0] - now).total_seconds())

    def _waits_on(
        self, deps: Mapping[str, Mapping[str, tuple[str, str]]]
    ) -> Mapping[str, Mapping[str, tuple[str, str]]]:
        if not self.input_values:
            return deps
        return {
            s: {i: ref for i, ref in d.items() if i not in self.input_values.get(dynamic.node_of(s), {})}
            for s, d in deps.items()
        }

    def input_given(self, step: str, inp: str) -> Any:
        """An input's value given in run config: no LOADED_INPUT (nothing is loaded), its STEP_INPUT later."""
        pending = self._inputs.setdefault(step, [])
        if inp not in pending:
            pending.append(inp)
        return self.input_values[dynamic.node_of(step)][inp]

    def _state(self, step: str) -> StepState:
        return self.rows[step].state

    def _produced(self, step: str, output: str) -> bool:
        return (step, output) in self.available

    def _settle(self, step: str, moved: Moved) -> None:
        self.rows[step] = moved.row
        self.instance.step_finished(self.run_id, step, moved.row.state, reason=moved.row.reason)
        kind = "step_not_executed" if moved.row.state is StepState.NOT_EXECUTED else "step_skipped"
        if moved.row.state is StepState.SKIPPED and not dynamic.is_placeholder(step):  # Dagster: no unresolved step
            self.log.add(T.STEP_SKIPPED, step)
        self.emit((kind, step, {"reason": moved.row.reason}))

    # ----- what each result does ------------------------------------------------------------------------
    def begin(self, step: str) -> int:
        """The step's next attempt starts; returns its number."""
        moved = machine.start(step, self.rows[step])
        self.rows[step] = moved.row
        self.instance.step_started(self.run_id, step)
        attempt = moved.row.attempt
        if attempt > 1:  # Dagster tells a retry's start as STEP_RESTARTED, not STEP_START
            self.log.add(T.STEP_RESTARTED, step, tags={"attempt": str(attempt)})
        else:
            self.log.add(T.STEP_START, step)
        self.emit(("step_start", step, {"attempt": attempt} if attempt > 1 else {}))
        return attempt

    def input_loaded(self, step: str, inp: str, up: str, out: str) -> None:
        """An input of the running attempt is loaded (a collected input: one of its parts)."""
        name = dynamic.node_of(inp)
        self.log.add(T.LOADED_INPUT, step, [name, IO_MANAGER, dynamic.dynamic_output(out)[0], up])
        pending = self._inputs.setdefault(step, [])
        if name not in pending:
            pending.append(name)

    def input_failed(self, step: str) -> None:
        """An input could not be loaded: the op is not called, so no input is told as received."""
        self._inputs.pop(step, None)

    def _inputs_received(self, step: str) -> None:
        for name in self._inputs.pop(step, ()):
            self.log.add(T.STEP_INPUT, step, name)

    def output_stored(self, step: str, output: str, stored: StoredOutput, fmt: str) -> None:
        """An output of the running attempt is written: from now on the run's index points at it."""
        self.instance.record_output(self.run_id, step, output, stored, fmt)
        self.available[(step, output)] = OutputRef(self.run_id, stored.key)
        self.stored.setdefault(step, []).append(output)
        name, key = dynamic.dynamic_output(output)
        if key is None and name in self.job.nodes[dynamic.node_of(step)].op.dynamic_outs:
            return  # a dynamic output's key index: Cairn's bookkeeping, not an output of the op
        self._inputs_received(step)
        self.log.add(T.STEP_OUTPUT, step, [step, name, key])
        self.log.add(T.HANDLED_OUTPUT, step, [name, IO_MANAGER])

    def succeeded(self, step: str, emitted: Mapping[str, Sequence[str]], duration: float) -> None:
        for out in self.inherited_outputs.get(step, ()):  # what an ancestor emitted and this run did not: gone
            if (step, out) not in self.available:
                self.instance.forget_output(self.run_id, step, out)
        if emitted:  # keys first: a step recorded as succeeded always has its keys
            for out, ks in emitted.items():
                self._keys_came(step, out, ks)
            self.deps = self.graph.concrete(self.keys).deps
            self.waits_on = self._waits_on(self.deps)
        moved = machine.succeed(step, self.rows[step], self.clock.now())
        self.rows[step] = moved.row
        version = self.launch.versions[dynamic.node_of(step)]
        self.instance.step_finished(self.run_id, step, StepState.SUCCEEDED, version=version)
        self._inputs_received(step)
        self.log.add(T.STEP_SUCCESS, step, duration * 1000.0)
        self.emit(("step_success", step, {"duration": duration}))

    def failed(self, step: str, exc: BaseException, duration: float) -> None:
        """The attempt raised: retried per the op's policy (or the op's RetryRequested), else Failed."""
        told = exc.__cause__ if isinstance(exc, RetryRequested) and exc.__cause__ is not None else exc
        error = f"{type(told).__name__}: {told}"
        now = self.clock.now()
        moved = machine.attempt_failed(step, self.rows[step], self._rule(step, exc), error, now, self.clock.rand)
        self.rows[step] = moved.row
        trace = "".join(traceback.format_exception(exc)).strip()
        self.instance.step_finished(self.run_id, step, moved.row.state, error=trace)
        self._inputs_received(step)
        if moved.row.state is StepState.RETRYING:
            self._discard_attempt(step)
            assert moved.row.next_attempt_at is not None
            delay = (moved.row.next_attempt_at - now).total_seconds()
            self.log.add_data(T.STEP_UP_FOR_RETRY, step, StepRetryData(ErrorInfo.from_exception(told), delay))
            info = {"error": error, "attempt": moved.row.attempt, "delay": delay, "duration": duration}
            self.emit(("step_retry", step, info))
            return
        self.errors[step] = trace
        self.first_error = self.first_error or exc
        self.failed_order.append(step)
        failure = step_failure(dynamic.node_of(step), exc, retries.Failure)
        self.log.add_data(T.STEP_FAILURE, step, failure)
        self.emit(("step_failure", step, {"error": error, "duration": duration}))

    def _rule(self, step: str, exc: BaseException) -> RetryRule | None:
        return retries.rule_for(exc, self.job.retry_policy(step))

    def _discard_attempt(self, step: str) -> None:
        """A failed attempt's outputs are not the step's: the next attempt stores its own."""
        for out in self.stored.pop(step, []):
            self.available.pop((step, out), None)
            self.instance.forget_output(self.run_id, step, out)

    def interrupted(self, step: str) -> None:
        """Ctrl-C or SIGTERM while the step ran: Interrupted, and the run is canceled."""
        moved = machine.interrupt(step, self.rows[step], "run canceled", self.clock.now())
        self.rows[step] = moved.row
        self.instance.step_finished(self.run_id, step, StepState.INTERRUPTED, error="interrupted: run canceled")
        self.failed_order.append(step)
        self.log.add_data(T.STEP_FAILURE, step, interrupted_failure())
        self.emit(("step_interrupted", step, {}))
        self.canceled = True

    def hooks_ran(self, step: str, told: Sequence[Event]) -> None:
        """The step's hooks ran (after its outcome, as Dagster orders them): HOOK_COMPLETED, HOOK_ERRORED or
        HOOK_SKIPPED each, as the step body told them."""
        for kind, _, details in told:
            event_type = _HOOK_EVENTS.get(kind)
            if event_type is not None:
                text = details.get("error")
                error = ErrorInfo(str(text), [], None) if text is not None else None
                self.log.add_data(event_type, step, HookData(str(details.get("hook", "")), error))
            self.emit((kind, step, details))

    def resources_failed(self, exc: BaseException) -> None:
        """The run's resources could not be initialised: no step runs, the run fails (RESOURCE_INIT_FAILURE)."""
        self.log.add(T.RESOURCE_INIT_FAILURE, None, None)
        self.first_error = self.first_error or exc
        self.errors["<resources>"] = "".join(traceback.format_exception(exc)).strip()
        self._abandon("resources failed to initialise")

    def _abandon(self, reason: str) -> None:
        """Every step not finished is Canceled (the run fails; a re-execution from failure runs them)."""
        now = self.clock.now()
        for step in [s for s in self.order if not self.rows[s].state.terminal]:
            moved = machine.cancel(step, self.rows[step], now)
            self.rows[step] = moved.row
            self.instance.step_finished(self.run_id, step, moved.row.state, reason=reason)

    def cancel_rest(self) -> None:
        """A canceled run starts no other step: each waiting one is Canceled (one still running, Interrupted)."""
        self.canceled = True
        now = self.clock.now()
        for step in [s for s in self.order if not self.rows[s].state.terminal]:
            moved = machine.cancel(step, self.rows[step], now)
            self.rows[step] = moved.row
            self.instance.step_finished(self.run_id, step, moved.row.state, reason="run canceled")

    def finish(self) -> RunPhase:
        """The run's phase from its rows, recorded; tell `run_end`."""
        phase = machine.run_result({s: self.rows[s].state for s in self.order}, "canceled" if self.canceled else None)
        status = phase.phase.public()
        self.instance.run_finished(self.run_id, status)
        self._run_ended(phase.phase)
        self.emit(("run_end", "", {"run_id": self.run_id, "status": status.value}))
        return phase.phase

    def _run_ended(self, phase: RunPhase) -> None:
        if phase is RunPhase.SUCCEEDED:
            self.log.add(T.RUN_SUCCESS)
        elif phase is RunPhase.CANCELED:
            self.log.add(T.RUN_CANCELED)
        else:
            failed = tuple(self.failed_order)
            reason = "STEP_FAILURE" if failed else None
            self.log.add_data(T.RUN_FAILURE, None, JobFailureData(None, reason, None, failed))
        self.log.flush()

    # ----- fan-out ----------------------------------------------------------------------------------------
    def _keys_came(self, step: str, output: str, ks: Sequence[str]) -> None:
        self.instance.record_keys(self.run_id, step, output, ks)
        self.keys[(step, output)] = tuple(ks)
        self.emit(("step_keys", step, {"output": output, "keys": list(ks)}))
        _report_key_change(step, output, self.launch.plan.remapped.get((step, output)), ks, self.emit)
        self._expand((step, output), ks)

    def _expand(self, dim: tuple[str, str], ks: Sequence[str]) -> None:
        """Replace each placeholder ``op[*]`` of an op mapped over `dim` by its instances ``op[k]`` (none
        for zero keys), in the order, the rows and the run store."""
        new: list[str] = []
        removed: list[str] = []
        added: list[tuple[str, StepState, str | None, str | None, str | None]] = []
        for s in self.order:
            node, key = dynamic.split_step(s)
            if key != dynamic.ANY or self.graph.mapped.get(node) != dim:
                new.append(s)
                continue
            rows, _ = machine.expand(s, ks, self.planned)
            del self.rows[s]
            removed.append(s)
            self.rows.update(rows)
            added.extend((inst, r.state, r.reason, None, None) for inst, r in rows.items())
            new.extend(rows)
            self.emit(("step_mapped", s, {"steps": list(rows)}))
        if removed:
            self.instance.replace_steps(self.run_id, removed, added, new)
        self.order = new


def _report_key_change(step: str, output: str, before: Sequence[str] | None, after: Sequence[str], emit: Emit) -> None:
    """A re-run dynamic step that emits another key set than its parent run: say what was added and removed
    (its maps run over the new keys only)."""
    if before is None or tuple(before) == tuple(after):
        return
    added = [k for k in after if k not in set(before)]
    removed = [k for k in before if k not in set(after)]
    _log.info(
        "mapping keys of %s.%s changed since the parent run: added %s, removed %s",
        step,
        output,
        ", ".join(added) or "none",
        ", ".join(removed) or "none",
    )
    emit(("keys_changed", step, {"output": output, "added": added, "removed": removed, "before": list(before)}))
