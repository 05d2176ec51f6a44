"""The in-process executor: `execute_job` runs a job, or re-executes part of an earlier run.

Split as Dagster splits it: the plan (`cairn.launch.prepare`), the active execution over the run's step
rows (`cairn.active.ActiveExecution`, driving the run machine `cairn.machine`), the loop here (start
the next ready step, wait for a retry when nothing else can start) and one step's body
(`cairn.stepbody.run_step_body`). Steps run one at a time in this process. Each input is loaded from the
run that produced it (this run, or the ancestor named by the planner); each output is stored through the
instance's IO manager and recorded only after the write completed. A failed step is retried per its
op's `RetryPolicy` (or the job's `op_retry_policy`, or a `RetryRequested` its op raised), each attempt
recorded. Ctrl-C or SIGTERM ends the run CANCELED with its running step interrupted; both can be
re-executed from failure.

Fan-out (`cairn.dynamic`): a run's steps are the concrete steps of its plan, each mapped op a
placeholder ``op[*]`` until its dynamic step has run. When a dynamic step succeeds, its mapping keys are
recorded (table ``mapping_keys``) and each placeholder row is replaced by one row per key, ``op[key]``
(none for zero keys); a collecting step then reads the list of its instances' values in key order. The
keys of a dynamic step the run reuses come from the plan (and are recorded for the run's children).
A dynamic output ``items`` is stored per key as output ``items[key]``, and its key index (a JSON list,
in emission order) as output ``items``.

Dagster's API: `execute_job(job, instance, run_config, tags, raise_on_error, op_selection,
reexecution_options, asset_selection)` in Dagster's order (Cairn's `on_event` and `clock` keyword-only) returns
a `cairn.results.JobExecutionResult` (a context manager; its events are `cairn.events`); the job's default
config (`@job(config=...)`) is used when no run_config is given; `raise_on_error=True` raises the op's own
error, as Dagster's in-process executor does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from cairn import dynamic
from cairn.active import ActiveExecution, Clock, Event
from cairn.definitions import JobDefinition
from cairn.errors import CairnError, DagsterInvariantViolationError, DagsterResourceFunctionError
from cairn.instance import Instance
from cairn.launch import TAG_MODE, TAG_PARENT, TAG_ROOT, ReexecutionOptions, prepare
from cairn.resources import check_reexecution_io, check_required_resources, run_resources
from cairn.results import ExecuteJobResult, JobExecutionResult
from cairn.stepbody import concrete_deps, instance_key, job_graph, outs_format, run_step_body

__all__ = [
    "TAG_MODE",
    "TAG_PARENT",
    "TAG_ROOT",
    "Clock",
    "Event",
    "ExecuteJobResult",
    "JobExecutionResult",
    "ReexecutionOptions",
    "RunCanceled",
    "StepExecutionError",
    "concrete_deps",
    "execute_job",
    "instance_key",
    "job_graph",
    "outs_format",
    "run_step_body",
]


class StepExecutionError(CairnError):
    """Cairn's earlier error of `raise_on_error=True`; now, as in Dagster, the op's own error is raised."""


class RunCanceled(BaseException):
    """Raised inside the running op when the run is canceled (SIGTERM)."""


@contextmanager
def _cancel_on_sigterm() -> Iterator[None]:
    """SIGTERM raises RunCanceled in the main thread (Ctrl-C raises KeyboardInterrupt already)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise RunCanceled(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    """`env` set in `os.environ` for the block; each variable's earlier value (or absence) restored after."""
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute_job(
    job: JobDefinition,
    instance: Instance | None = None,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    raise_on_error: bool = False,
    op_selection: Sequence[str] | None = None,
    reexecution_options: ReexecutionOptions | None = None,
    asset_selection: Sequence[Any] | None = None,
    *,
    on_event: Callable[[Event], None] | None = None,
    clock: Clock | None = None,
) -> JobExecutionResult:
    """Run `job` (or re-execute part of an earlier run of it) in this process, Dagster's arguments in Dagster's
    order; `instance` defaults to the local one (`Instance.local()`). `op_selection` runs only the selected
    ops of a fresh run. Cairn's own: `on_event` is told each progress event (kind, step, details); `clock`
    is how the run tells the time, waits before a retry and draws a retry's jitter (tests pass a fake one)."""
    outcome = run_job(
        job,
        instance or Instance.local(),
        run_config,
        tags,
        raise_on_error,
        op_selection,
        reexecution_options,
        asset_selection,
        on_event=on_event,
        clock=clock,
    )
    return JobExecutionResult(**outcome)


def run_job(
    job: JobDefinition,
    instance: Instance,
    run_config: Mapping[str, Any] | None,
    tags: Mapping[str, str] | None,
    raise_on_error: bool,
    op_selection: Sequence[str] | None,
    reexecution_options: ReexecutionOptions | None,
    asset_selection: Sequence[Any] | None,
    *,
    on_event: Callable[[Event], None] | None = None,
    clock: Clock | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The run itself, shared by `execute_job` and `execute_in_process`: what their results are made of."""
    if asset_selection:
        raise DagsterInvariantViolationError("asset_selection: Cairn's jobs have no assets; select ops instead")
    if reexecution_options is not None and op_selection is not None:
        raise DagsterInvariantViolationError("re-execution and op selection cannot be used together at this time.")
    check_required_resources(job)  # before the run exists, as Dagster refuses it
    if reexecution_options is not None:
        check_reexecution_io(job)
    launch = prepare(job, instance, run_config, reexecution_options, tags, op_selection=op_selection, run_id=run_id)
    active = ActiveExecution(instance, job, launch, on_event or (lambda _e: None), clock or Clock())
    active.stop_on_error = raise_on_error
    active.create()
    with _cancel_on_sigterm():
        resources = _run_with_resources(active, launch.step_env)
    status = active.finish().public()
    if raise_on_error and active.first_error is not None:
        raise active.first_error  # as Dagster's in-process executor: the op's own error, no other step run
    order = active.order
    return {
        "run_id": active.run_id,
        "status": status,
        "step_statuses": {s: active.rows[s].state.public() for s in order},
        "executed_steps": [s for s in order if active.rows[s].state.ran],
        "instance": instance,
        "job": job,
        "plan": launch.plan,
        "events": active.log,  # made events when the result is first asked for them
        "run_resources": resources,
        "errors": active.errors,
    }


def _run_with_resources(active: ActiveExecution, step_env: Mapping[str, Mapping[str, str]]) -> Any:
    """The loop with the job's resources initialised once for the run, as Dagster's in-process executor does
    (a resource that fails to initialise fails the run before any step starts). Returns the run's resources,
    torn down (an in-memory IO manager still holds what the run stored: `execute_in_process` reads it)."""
    job, config = active.job, active.launch.run_config
    if not getattr(job, "resource_defs", None):
        _drive(active, _InProcessBody(active, step_env, None, config))
        return None
    try:
        with run_resources(job, config, active.instance, active.run_id) as resources:
            _drive(active, _InProcessBody(active, step_env, resources, config))
    except DagsterResourceFunctionError as exc:
        active.resources_failed(exc)
        return None
    return resources


def _drive(active: ActiveExecution, body: _InProcessBody) -> None:
    """The loop: start the next ready step (after waiting for its retry's due time when nothing else can
    start) until none is left; a run canceled (Ctrl-C, SIGTERM) starts no other step."""
    try:
        while (nxt := active.next_step()) is not None:
            step, wait = nxt
            if wait > 0:
                active.clock.sleep(wait)
            _attempt(active, body, step)
    except (KeyboardInterrupt, RunCanceled):  # between steps, e.g. while waiting for a retry
        active.canceled = True
    if active.canceled:
        active.cancel_rest()


def _attempt(active: ActiveExecution, body: _InProcessBody, step: str) -> None:
    """One attempt of one step: what it does is the active execution's to record."""
    active.begin(step)
    t0 = time.perf_counter()
    try:
        emitted = body(step)
    except (KeyboardInterrupt, RunCanceled):
        active.interrupted(step)
        return
    except (Exception, SystemExit) as exc:  # an op calling sys.exit() fails its step, not the run
        active.failed(step, exc, time.perf_counter() - t0)
        active.hooks_ran(step, body.take_hook_events())
        return
    active.succeeded(step, emitted, time.perf_counter() - t0)
    active.hooks_ran(step, body.take_hook_events())


class _InProcessBody:
    """One step's body in this process: inputs loaded from the run's index, outputs stored through the
    instance's IO manager, the step's env overrides set while its op runs."""

    def __init__(
        self,
        active: ActiveExecution,
        step_env: Mapping[str, Mapping[str, str]],
        resources: Any,
        run_config: Mapping[str, Any],
    ) -> None:
        self.active = active
        self.step_env = step_env
        self.resources = resources
        self.resources_config = run_config.get("resources") or {}
        self.hook_events: list[Event] = []  # told by the step body; recorded after the step's own outcome

    def take_hook_events(self) -> list[Event]:
        told, self.hook_events = self.hook_events, []
        return told

    def __call__(self, step: str) -> dict[str, list[str]]:
        """Run the step's op; returns the keys of each dynamic output it emitted."""
        active, job = self.active, self.active.job
        emitted: dict[str, list[str]] = {}
        env = {**(self.step_env.get(dynamic.node_of(step)) or {}), **(self.step_env.get(step) or {})}
        with _environ(env) if env else contextlib.nullcontext():
            config = job.op_config(active.launch.run_config, step)
            run_step_body(
                job,
                step,
                active.run_id,
                config,
                self._loader(step),
                self._storer(step, emitted),
                active.deps[step],
                resources=self.resources,
                resources_config=self.resources_config,
                retry_number=active.rows[step].attempt - 1,
                emit=self.hook_events.append,
                run_tags=active.launch.tags,
                instance=active.instance,
            )
        return emitted

    def _loader(self, step: str) -> Callable[[str, str, str], Any]:
        """How the step loads an input: from the run's index (this run's or an ancestor's output), or the
        value its run config gives (an input an op selection leaves unconnected)."""
        active, job = self.active, self.active.job
        io = active.instance.io_manager
        given = active.input_values.get(dynamic.node_of(step), {})

        def load(inp: str, up: str, out: str) -> Any:
            if inp in given:
                return active.input_given(step, inp)
            ref = active.available[(up, out)]
            try:
                value = io.load(ref.key, outs_format(job, up, out))
            except CairnError as exc:
                active.input_failed(step)
                raise CairnError(
                    f"step {step}: cannot load input {inp!r} (output {out!r} of step {up!r} "
                    f"from run {ref.run_id}, key {ref.key}): {exc}"
                ) from exc
            active.input_loaded(step, inp, up, out)
            return value

        return load

    def _storer(self, step: str, emitted: dict[str, list[str]]) -> Callable[[str, Any, str], None]:
        """How the step stores an output: through the instance's IO manager, recorded once written; the keys
        of a dynamic output go to `emitted`."""
        active = self.active
        io = active.instance.io_manager
        dynamic_outs = active.job.nodes[dynamic.node_of(step)].op.dynamic_outs

        def store(name: str, value: Any, fmt: str) -> None:
            stored = io.store(instance_key(active.instance, active.run_id, step, name), value, fmt)
            active.output_stored(step, name, stored, fmt)
            if name in dynamic_outs:
                emitted[name] = list(value)

        return store
