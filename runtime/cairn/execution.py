"""The in-process executor: `execute_job` runs a job, or re-executes part of an earlier run.

Steps run one after another in the job's order, in this process. Each input is loaded from the run
that produced it (this run, or the ancestor named by the planner); each output is stored through
the instance's IO manager and recorded only after the write completed. Ctrl-C or SIGTERM ends the
run CANCELED with its running step interrupted; both can be re-executed from failure.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cairn.definitions import JobDefinition, OpContext, Output
from cairn.errors import CairnError, ReexecutionError
from cairn.instance import Instance, RunRecord
from cairn.planner import JobGraph, Mode, OutputRef, Plan, Request, initial_plan, plan_checked
from cairn.runstate import Gate, RunPhase, StepState, gate, initial_state, on_cancel, run_outcome
from cairn.status import RunStatus, StepStatus

TAG_PARENT = "cairn.dev/parent-run"
TAG_ROOT = "cairn.dev/root-run"
TAG_MODE = "cairn.dev/reexecution-mode"

Event = tuple[str, str, Mapping[str, Any]]  # (kind, step or "", details)


class StepExecutionError(CairnError):
    """An op raised; `raise_on_error=True` re-raises it as this, with the original as __cause__."""


class RunCanceled(BaseException):
    """Raised inside the running op when the run is canceled (SIGTERM)."""


@dataclass
class ReexecutionOptions:
    """Which run to re-execute and how.

    `step_selection` clauses choose the steps (Dagster's grammar: ``["unreliable*"]``); without it every
    step runs. `from_failure` re-runs failed, interrupted and never-started steps and their downstream.
    `rerun_missing=True` re-runs the producers of reused outputs that are gone from storage.
    `step_env` sets environment variables per step (``{"unreliable": {"CAIRN_UNRELIABLE": "pass"}}``):
    in `os.environ` while that step's op runs, restored after it (the in-process counterpart of a
    Reexecution's `overrides[step].env`; not recorded in the run, so not inherited by its children).
    """

    parent_run_id: str
    step_selection: Sequence[str] = ()
    mode: Mode | None = None
    rerun_missing: bool = False
    step_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.step_selection, str):
            self.step_selection = [self.step_selection]
        if self.mode is None:
            self.mode = Mode.SELECTED if self.step_selection else Mode.ALL
        if isinstance(self.mode, str):
            self.mode = Mode(self.mode)

    @classmethod
    def stale(cls, run_id: str, rerun_missing: bool = False) -> ReexecutionOptions:
        """Re-run the steps whose code version or config differs from the one that produced run `run_id`'s
        outputs (and what is downstream of them, and what it never produced); reuse the rest in place."""
        return cls(parent_run_id=run_id, mode=Mode.STALE, rerun_missing=rerun_missing)

    @classmethod
    def from_failure(cls, run_id: str, instance: Instance, rerun_missing: bool = False) -> ReexecutionOptions:
        run = instance.get_run(run_id)
        if not RunPhase.of(run.status).can_resume_from_failure:
            raise ReexecutionError("Cannot reexecute from failure a run that is not failed or canceled")
        return cls(parent_run_id=run_id, mode=Mode.FROM_FAILURE, rerun_missing=rerun_missing)

    def request(self) -> Request:
        assert self.mode is not None
        return Request(self.mode, tuple(self.step_selection))


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
        """The value of a step's output, loaded from whichever run produced it."""
        run = self.get_run()
        ref = run.outputs.get((node, output))
        if ref is None:
            raise CairnError(
                f"run {self.run_id} has no output {output!r} of step {node!r} "
                f"(step status {run.step_statuses.get(node, 'unknown')})"
            )
        return self.instance.io_manager.load(ref.key, run.formats.get((node, output), "pickle"))


def job_graph(job: JobDefinition) -> JobGraph:
    return JobGraph(
        steps=tuple(job.step_keys),
        deps=job.deps(),
        outputs={s: {o: out.is_required for o, out in outs.items()} for s, outs in job.outputs().items()},
    )


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
) -> ExecuteJobResult:
    """Run `job` (or re-execute part of an earlier run of it) in this process."""
    instance = instance or Instance.local()
    emit = on_event or (lambda _e: None)
    graph = job_graph(job)
    io = instance.io_manager
    run_tags = {**job.tags, **(tags or {})}
    parent: RunRecord | None = None
    if reexecution_options is not None:
        parent = instance.get_run(reexecution_options.parent_run_id)
        if parent.job_name != job.name:
            raise ReexecutionError(
                f"Run {parent.run_id} is a run of job {parent.job_name!r}, not {job.name!r}: re-execute it with "
                f"the job it ran"
            )
        if parent.status is RunStatus.STARTED:
            raise ReexecutionError(f"Run {parent.run_id} is still running; wait for it to finish")
        if run_config is None:
            run_config = parent.run_config
        versions = job.step_versions(run_config)  # what Stale compares, and what this run records
        the_plan = plan_checked(
            graph,
            parent.view(),
            dataclasses.replace(reexecution_options.request(), current=versions),
            exists=io.exists,
            rerun_missing=reexecution_options.rerun_missing,
            known_runs=instance.run_ids(),
            describe=io.describe,
        )
        unknown = sorted(set(reexecution_options.step_env) - set(graph.steps))
        if unknown:
            raise ReexecutionError(
                f"step_env names unknown step(s): {', '.join(unknown)}; the job's steps are {', '.join(graph.steps)}"
            )
        assert reexecution_options.mode is not None
        run_tags.update(
            {TAG_PARENT: parent.run_id, TAG_ROOT: parent.root_run_id, TAG_MODE: reexecution_options.mode.value}
        )
    else:
        the_plan = initial_plan(graph)
        versions = job.step_versions(run_config)
    run_config = dict(run_config or {})
    job.validate_run_config(run_config)

    step_env = reexecution_options.step_env if reexecution_options is not None else {}
    run_id = str(uuid.uuid4())
    to_run = dict(the_plan.to_run)
    planned = None if parent is None else to_run
    rows: list[tuple[str, StepState, str | None, str | None, str | None]] = []
    for s in graph.steps:
        init = initial_state(s, planned, the_plan.reused_steps, the_plan.skipped)
        # a step not executed keeps the version that produced what it reuses (its parent's record)
        kept = None if s in to_run or parent is None or s not in parent.steps else parent.steps[s].version
        rows.append((s, init.state, to_run.get(s, init.reason), init.source_run, kept))
    instance.create_run(
        run_id,
        job.name,
        parent.run_id if parent else None,
        parent.root_run_id if parent else run_id,
        run_tags,
        run_config,
        rows,
        the_plan.inherited,
        parent.formats if parent else {},
        job_ref=job.module_ref,
        mode=reexecution_options.mode.value if reexecution_options and reexecution_options.mode else None,
    )
    emit(("run_start", "", {"run_id": run_id, "steps": list(to_run), "parent": parent.run_id if parent else None}))

    # What this run's steps may read: the parent's index, but never an output of a step this run re-runs
    # (a re-run step that does not emit an optional output it emitted before must not leave the old one).
    available: dict[tuple[str, str], OutputRef] = {k: v for k, v in the_plan.inherited.items() if k[0] not in to_run}
    states: dict[str, StepState] = {row[0]: row[1] for row in rows}
    errors: dict[str, str] = {}
    first_exc: BaseException | None = None
    canceled = False
    deps = graph.deps
    outs_def = job.outputs()

    with _cancel_on_sigterm():
        for step in graph.steps:
            if not states[step].waiting:
                continue
            if canceled:
                states[step] = on_cancel(states[step])
                instance.step_finished(run_id, step, states[step], reason="run canceled")
                continue
            decision = gate(deps[step], states.__getitem__, lambda up, out: (up, out) in available)
            if decision.gate is not Gate.READY:  # upstream steps ran before: never WAIT in job order
                assert decision.state is not None, decision
                states[step] = decision.state
                instance.step_finished(run_id, step, decision.state, reason=decision.reason)
                kind = "step_not_executed" if decision.gate is Gate.BLOCKED else "step_skipped"
                emit((kind, step, {"reason": decision.reason}))
                continue
            states[step] = StepState.RUNNING
            instance.step_started(run_id, step)
            emit(("step_start", step, {}))
            t0 = time.perf_counter()
            try:
                with _environ(step_env.get(step) or {}):
                    _run_step(job, step, run_id, run_config, instance, available, outs_def[step])
            except (KeyboardInterrupt, RunCanceled):
                states[step] = on_cancel(states[step])
                instance.step_finished(run_id, step, states[step], error="interrupted: run canceled")
                emit(("step_interrupted", step, {}))
                canceled = True
                continue
            except (Exception, SystemExit) as exc:  # an op calling sys.exit() fails its step, not the run
                states[step] = StepState.FAILED
                err = "".join(traceback.format_exception(exc)).strip()
                errors[step] = err
                first_exc = first_exc or exc
                instance.step_finished(run_id, step, StepState.FAILED, error=err)
                emit(
                    (
                        "step_failure",
                        step,
                        {"error": f"{type(exc).__name__}: {exc}", "duration": time.perf_counter() - t0},
                    )
                )
                continue
            for out in outs_def[step]:  # an optional output an ancestor emitted and this run did not: gone
                if (step, out) in the_plan.inherited and (step, out) not in available:
                    instance.forget_output(run_id, step, out)
            states[step] = StepState.SUCCEEDED
            instance.step_finished(run_id, step, StepState.SUCCEEDED, version=versions[step])
            emit(("step_success", step, {"duration": time.perf_counter() - t0}))

    status = run_outcome(states.values(), canceled).public()
    instance.run_finished(run_id, status)
    emit(("run_end", "", {"run_id": run_id, "status": status.value}))
    executed_all = [s for s in graph.steps if states[s].ran]
    result = ExecuteJobResult(
        run_id=run_id,
        status=status,
        step_statuses={s: st.public() for s, st in states.items()},
        executed_steps=executed_all,
        instance=instance,
        job=job,
        plan=the_plan,
        errors=errors,
    )
    if raise_on_error and first_exc is not None:
        failed = next(s for s in graph.steps if states[s] is StepState.FAILED)
        raise StepExecutionError(f"step {failed} of run {run_id} failed: {first_exc}") from first_exc
    return result


def _run_step(
    job: JobDefinition,
    step: str,
    run_id: str,
    run_config: Mapping[str, Any],
    instance: Instance,
    available: dict[tuple[str, str], OutputRef],
    outs: Mapping[str, Any],
) -> None:
    io = instance.io_manager

    def load(inp: str, up: str, out: str) -> Any:
        ref = available[(up, out)]
        try:
            return io.load(ref.key, outs_format(job, up, out))
        except CairnError as exc:
            raise CairnError(
                f"step {step}: cannot load input {inp!r} (output {out!r} of step {up!r} "
                f"from run {ref.run_id}, key {ref.key}): {exc}"
            ) from exc

    def store(name: str, value: Any, fmt: str) -> None:
        key = instance_key(instance, run_id, step, name)
        stored = io.store(key, value, fmt)
        instance.record_output(run_id, step, name, stored, fmt)
        available[(step, name)] = OutputRef(run_id, key)

    run_step_body(job, step, run_id, job.op_config(run_config, step), load, store)


def run_step_body(
    job: JobDefinition,
    step: str,
    run_id: str,
    op_config: Any,
    load: Callable[[str, str, str], Any],
    store: Callable[[str, Any, str], None],
) -> list[str]:
    """Run one step's op: load each input with `load(input, upstream step, output)`, call the op, and
    hand each output to `store(name, value, format)` as soon as it is produced. Returns the outputs
    produced; raises when the op fails or breaks its output contract. Shared by the in-process executor
    and the pod entrypoint (`cairn.step`)."""
    node = job.nodes[step]
    opdef = node.op
    outs = opdef.outs
    kwargs = {inp: load(inp, h.node, h.output) for inp, h in node.inputs.items()}
    args: list[Any] = []
    if opdef.takes_context:
        args.append(OpContext(run_id, step, op_config, logging.getLogger(f"cairn.{job.name}.{step}")))
    value = opdef.fn(*args, **kwargs)
    produced: list[str] = []

    def emit(name: str, v: Any) -> None:
        if name not in outs:
            raise CairnError(
                f"op {opdef.name} yielded output {name!r}, which it does not declare (declared: {', '.join(outs)})"
            )
        if name in produced:
            raise CairnError(f"op {opdef.name} yielded output {name!r} twice")
        store(name, v, outs[name].format)
        produced.append(name)

    if inspect.isgenerator(value):
        for item in value:
            if not isinstance(item, Output):
                raise CairnError(f"op {opdef.name} yielded {type(item).__name__}; yield Output(value, name) objects")
            emit(item.output_name, item.value)
    elif isinstance(value, Output):
        emit(value.output_name, value.value)
    elif len(outs) == 1:
        emit(next(iter(outs)), value)
    else:
        if not isinstance(value, tuple) or len(value) != len(outs):
            raise CairnError(
                f"op {opdef.name} has outputs {', '.join(outs)}: return a tuple of {len(outs)} values or yield "
                f"Output(value, name) for each"
            )
        for name, v in zip(outs, value, strict=True):
            emit(name, v)
    missing = [n for n, o in outs.items() if o.is_required and n not in produced]
    if missing:
        raise CairnError(f"op {opdef.name} did not produce required output(s) {', '.join(missing)}")
    return produced


def outs_format(job: JobDefinition, step: str, output: str) -> str:
    out = job.nodes[step].op.outs.get(output)
    return out.format if out is not None else "pickle"


def instance_key(instance: Instance, run_id: str, step: str, output: str) -> str:
    from cairn.io import output_key

    return output_key(run_id, step, output, namespace=instance.namespace)
