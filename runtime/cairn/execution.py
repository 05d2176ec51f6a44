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
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cairn import dynamic
from cairn.active import ActiveExecution, Clock, Event
from cairn.definitions import JobDefinition
from cairn.errors import CairnError
from cairn.instance import Instance, RunRecord
from cairn.launch import TAG_MODE, TAG_PARENT, TAG_ROOT, ReexecutionOptions, prepare
from cairn.planner import Plan
from cairn.runstate import StepState
from cairn.status import RunStatus, StepStatus
from cairn.stepbody import concrete_deps, instance_key, job_graph, outs_format, run_step_body

__all__ = [
    "TAG_MODE",
    "TAG_PARENT",
    "TAG_ROOT",
    "Clock",
    "Event",
    "ExecuteJobResult",
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
    """An op raised; `raise_on_error=True` re-raises it as this, with the original as __cause__."""


class RunCanceled(BaseException):
    """Raised inside the running op when the run is canceled (SIGTERM)."""


@dataclass
class ExecuteJobResult:
    run_id: str
    status: RunStatus
    step_statuses: dict[str, StepStatus]
    executed_steps: list[str]
    instance: Instance
    job: JobDefinition
    plan: Plan
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.status is RunStatus.SUCCESS

    def get_run(self) -> RunRecord:
        return self.instance.get_run(self.run_id)

    def output_for_node(self, node: str, output: str = "result") -> Any:
        """The value of a step's output, loaded from whichever run produced it.

        As in Dagster, a dynamic output (``output_for_node("split", "items")``) and a mapped op named
        without a key (``output_for_node("process")``) give a dict of mapping key -> value, in key
        order; one instance (``output_for_node("process[shard_1]")``) gives its value."""
        run = self.get_run()
        jd = self.job.nodes.get(node)
        if jd is not None and output in jd.op.dynamic_outs:
            ks = run.keys.get((node, output))
            if ks is None:
                raise CairnError(
                    f"run {self.run_id} has no mapping keys of {node}.{output} (step status "
                    f"{run.step_statuses.get(node, 'unknown')})"
                )
            return {k: self._load(run, node, f"{output}[{k}]") for k in ks}
        if jd is not None and jd.mapped is not None:
            ks = run.keys.get(jd.mapped)
            if ks is None:
                raise CairnError(
                    f"run {self.run_id} has no instances of mapped op {node}: its dynamic step "
                    f"{jd.mapped[0]} did not emit keys"
                )
            return {k: self._load(run, dynamic.step_key(node, k), output) for k in ks}
        return self._load(run, node, output)

    def _load(self, run: RunRecord, step: str, output: str) -> Any:
        ref = run.outputs.get((step, output))
        if ref is None:
            raise CairnError(
                f"run {self.run_id} has no output {output!r} of step {step!r} "
                f"(step status {run.step_statuses.get(step, 'unknown')})"
            )
        return self.instance.io_manager.load(ref.key, run.formats.get((step, output), "pickle"))


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
    reexecution_options: ReexecutionOptions | None = None,
    raise_on_error: bool = False,
    tags: Mapping[str, str] | None = None,
    on_event: Callable[[Event], None] | None = None,
    clock: Clock | None = None,
) -> ExecuteJobResult:
    """Run `job` (or re-execute part of an earlier run of it) in this process. `clock`: how the run
    tells the time, waits before a retry and draws a retry's jitter (tests pass a fake one)."""
    instance = instance or Instance.local()
    launch = prepare(job, instance, run_config, reexecution_options, tags)
    active = ActiveExecution(instance, job, launch, on_event or (lambda _e: None), clock or Clock())
    active.create()
    body = _InProcessBody(active, launch.step_env)
    with _cancel_on_sigterm():
        _drive(active, body)
    phase = active.finish()
    order = active.order
    result = ExecuteJobResult(
        run_id=active.run_id,
        status=phase.public(),
        step_statuses={s: active.rows[s].state.public() for s in order},
        executed_steps=[s for s in order if active.rows[s].state.ran],
        instance=instance,
        job=job,
        plan=launch.plan,
        errors=active.errors,
    )
    if raise_on_error and active.first_error is not None:
        failed = next(s for s in order if active.rows[s].state is StepState.FAILED)
        raise StepExecutionError(
            f"step {failed} of run {active.run_id} failed: {active.first_error}"
        ) from active.first_error
    return result


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
        return
    active.succeeded(step, emitted, time.perf_counter() - t0)


class _InProcessBody:
    """One step's body in this process: inputs loaded from the run's index, outputs stored through the
    instance's IO manager, the step's env overrides set while its op runs."""

    def __init__(self, active: ActiveExecution, step_env: Mapping[str, Mapping[str, str]]) -> None:
        self.active = active
        self.step_env = step_env

    def __call__(self, step: str) -> dict[str, list[str]]:
        """Run the step's op; returns the keys of each dynamic output it emitted."""
        active, job = self.active, self.active.job
        io = active.instance.io_manager
        dynamic_outs = job.nodes[dynamic.node_of(step)].op.dynamic_outs
        emitted: dict[str, list[str]] = {}

        def load(inp: str, up: str, out: str) -> Any:
            ref = active.available[(up, out)]
            try:
                return io.load(ref.key, outs_format(job, up, out))
            except CairnError as exc:
                raise CairnError(
                    f"step {step}: cannot load input {inp!r} (output {out!r} of step {up!r} "
                    f"from run {ref.run_id}, key {ref.key}): {exc}"
                ) from exc

        def store(name: str, value: Any, fmt: str) -> None:
            stored = io.store(instance_key(active.instance, active.run_id, step, name), value, fmt)
            active.output_stored(step, name, stored, fmt)
            if name in dynamic_outs:
                emitted[name] = list(value)

        env = {**(self.step_env.get(dynamic.node_of(step)) or {}), **(self.step_env.get(step) or {})}
        with _environ(env) if env else contextlib.nullcontext():
            config = job.op_config(active.launch.run_config, step)
            run_step_body(job, step, active.run_id, config, load, store, active.deps[step])
        return emitted
