"""The in-process executor: `execute_job` runs a job, or re-executes part of an earlier run.

Steps run one after another in the job's order, in this process. Each input is loaded from the run
that produced it (this run, or the ancestor named by the planner); each output is stored through
the instance's IO manager and recorded only after the write completed. Ctrl-C or SIGTERM ends the
run CANCELED with its running step interrupted; both can be re-executed from failure.

Fan-out (`cairn.dynamic`): a run's steps are the concrete steps of its plan, each mapped op a
placeholder ``op[*]`` until its dynamic step has run. When a dynamic step succeeds, its mapping keys are
recorded (table ``mapping_keys``) and each placeholder row is replaced by one row per key, ``op[key]``
(none for zero keys); a collecting step then reads the list of its instances' values in key order. The
keys of a dynamic step the run reuses come from the plan (and are recorded for the run's children).
A dynamic output ``items`` is stored per key as output ``items[key]``, and its key index (a JSON list,
in emission order) as output ``items``.
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

from cairn import dynamic
from cairn.definitions import DynamicOutput, JobDefinition, OpContext, Output
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


def job_graph(job: JobDefinition) -> JobGraph:
    """The planner's view of a job: its static graph, with the fan-out fields (`JobGraph.concrete`)."""
    return JobGraph(
        steps=tuple(job.step_keys),
        deps=job.deps(),
        outputs={s: {o: out.is_required for o, out in outs.items()} for s, outs in job.outputs().items()},
        dynamic=job.dynamic_outputs(),
        mapped=job.mapped(),
        collects=job.collects(),
    )


def concrete_deps(job: JobDefinition, step: str, keys: dynamic.Keys | None = None) -> dict[str, tuple[str, str]]:
    """The concrete inputs of one step: input -> (upstream step, output). For an instance ``op[key]`` the
    per-key names (``("split", "items[key]")``, ``("train[key]", "result")``); a collect input ``xs``
    becomes ``xs[k]`` per key, which needs the collected dimension's keys in `keys`. CairnError for a
    step the job does not have (a mapped op without a key, a placeholder, a key on an op not mapped)."""
    node_name, key = dynamic.split_step(step)
    node = job.nodes.get(node_name)
    if node is None:
        raise CairnError(f"job {job.name} has no step {step!r}; its ops are {', '.join(job.nodes)}")
    if node.mapped is None and key is not None:
        raise CairnError(f"op {node_name} of job {job.name} is not mapped: its step is {node_name!r}, not {step!r}")
    if node.mapped is not None and key is None:
        raise CairnError(
            f"op {node_name} of job {job.name} is mapped over {node.mapped[0]}.{node.mapped[1]}: name one of its "
            f"steps, {node_name}[KEY]"
        )
    if key == dynamic.ANY:
        raise CairnError(f"step {step} is a placeholder (its keys are not known yet): it cannot run")
    known = dict(keys or {})
    if node.mapped is not None and key is not None:
        known[node.mapped] = (key,)
    deps = dict(job_graph(job).concrete(known).deps[step])
    unknown = sorted({dynamic.node_of(up) for up, _ in deps.values() if dynamic.is_placeholder(up)})
    if unknown:
        raise CairnError(
            f"step {step} collects mapped op(s) {', '.join(unknown)} whose keys are not known: pass them "
            f"(the step context's deps)"
        )
    return deps


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
        unknown = sorted(set(reexecution_options.step_env) - set(graph.steps) - set(the_plan.steps))
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
    keys: dict[tuple[str, str], tuple[str, ...]] = {dim: tuple(ks) for dim, ks in the_plan.keys.items()}
    concrete = graph.concrete(keys)
    steps = list(the_plan.steps or concrete.steps)
    # A dimension whose dynamic step runs again is re-mapped whole: its old instances are not this run's.
    remapped_ops = {op for dim in the_plan.remapped for op in graph.dimensions().get(dim, ())}
    inherited = {k: v for k, v in the_plan.inherited.items() if dynamic.node_of(k[0]) not in remapped_ops}
    rows: list[tuple[str, StepState, str | None, str | None, str | None]] = []
    for s in steps:
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
        inherited,
        parent.formats if parent else {},
        job_ref=job.module_ref,
        mode=reexecution_options.mode.value if reexecution_options and reexecution_options.mode else None,
        keys=keys,
        keys_source={dim: the_plan.reused_steps.get(dim[0], parent.run_id) for dim in keys} if parent else None,
    )
    emit(("run_start", "", {"run_id": run_id, "steps": list(to_run), "parent": parent.run_id if parent else None}))

    # What this run's steps may read: the parent's index, but never an output of a step this run re-runs
    # (a re-run step that does not emit an optional output it emitted before must not leave the old one).
    available: dict[tuple[str, str], OutputRef] = {k: v for k, v in inherited.items() if k[0] not in to_run}
    inherited_outputs: dict[str, list[str]] = {}
    for s, o in inherited:
        inherited_outputs.setdefault(s, []).append(o)
    states: dict[str, StepState] = {row[0]: row[1] for row in rows}
    reasons: dict[str, str | None] = {row[0]: row[2] for row in rows}
    errors: dict[str, str] = {}
    first_exc: BaseException | None = None
    canceled = False
    deps = concrete.deps

    with _cancel_on_sigterm():
        i = 0
        while i < len(steps):  # `steps` grows as dynamic steps emit their keys
            step = steps[i]
            i += 1
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
            node = dynamic.node_of(step)
            states[step] = StepState.RUNNING
            instance.step_started(run_id, step)
            emit(("step_start", step, {}))
            t0 = time.perf_counter()
            emitted: dict[str, list[str]] = {}
            try:
                with _environ({**(step_env.get(node) or {}), **(step_env.get(step) or {})}):
                    _run_step(job, step, run_id, run_config, instance, available, deps[step], emitted)
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
            for out in inherited_outputs.get(step, ()):  # what an ancestor emitted and this run did not: gone
                if (step, out) not in available:
                    instance.forget_output(run_id, step, out)
            if emitted:  # keys first: a step recorded as succeeded always has its keys
                for out, ks in emitted.items():
                    instance.record_keys(run_id, step, out, ks)
                    keys[(step, out)] = tuple(ks)
                    emit(("step_keys", step, {"output": out, "keys": list(ks)}))
                    _report_key_change(step, out, the_plan.remapped.get((step, out)), ks, emit)
                    steps = _expand(instance, run_id, steps, (step, out), ks, graph, states, reasons, emit)
                deps = graph.concrete(keys).deps
            states[step] = StepState.SUCCEEDED
            instance.step_finished(run_id, step, StepState.SUCCEEDED, version=versions[node])
            emit(("step_success", step, {"duration": time.perf_counter() - t0}))

    status = run_outcome(states.values(), canceled).public()
    instance.run_finished(run_id, status)
    emit(("run_end", "", {"run_id": run_id, "status": status.value}))
    executed_all = [s for s in steps if states[s].ran]
    result = ExecuteJobResult(
        run_id=run_id,
        status=status,
        step_statuses={s: states[s].public() for s in steps},
        executed_steps=executed_all,
        instance=instance,
        job=job,
        plan=the_plan,
        errors=errors,
    )
    if raise_on_error and first_exc is not None:
        failed = next(s for s in steps if states[s] is StepState.FAILED)
        raise StepExecutionError(f"step {failed} of run {run_id} failed: {first_exc}") from first_exc
    return result


_log = logging.getLogger("cairn.execution")


def _report_key_change(
    step: str, output: str, before: Sequence[str] | None, after: Sequence[str], emit: Callable[[Event], None]
) -> None:
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


def _expand(
    instance: Instance,
    run_id: str,
    steps: list[str],
    dim: tuple[str, str],
    ks: Sequence[str],
    graph: JobGraph,
    states: dict[str, StepState],
    reasons: dict[str, str | None],
    emit: Callable[[Event], None],
) -> list[str]:
    """Replace each placeholder ``op[*]`` of an op mapped over `dim` by its instances ``op[k]`` (same
    state and reason; none for zero keys), in `steps`, `states`, `reasons` and the run store."""
    new: list[str] = []
    removed: list[str] = []
    added: list[tuple[str, StepState, str | None, str | None, str | None]] = []
    for s in steps:
        node, key = dynamic.split_step(s)
        if key != dynamic.ANY or graph.mapped.get(node) != dim:
            new.append(s)
            continue
        state, reason = states.pop(s), reasons.pop(s)
        removed.append(s)
        instances = [dynamic.step_key(node, k) for k in ks]
        for inst in instances:
            states[inst], reasons[inst] = state, reason
            added.append((inst, state, reason, None, None))
        new.extend(instances)
        emit(("step_mapped", s, {"steps": instances}))
    if removed:
        instance.replace_steps(run_id, removed, added, new)
    return new


def _run_step(
    job: JobDefinition,
    step: str,
    run_id: str,
    run_config: Mapping[str, Any],
    instance: Instance,
    available: dict[tuple[str, str], OutputRef],
    deps: Mapping[str, tuple[str, str]],
    emitted: dict[str, list[str]],
) -> None:
    """Run one step in this process; `emitted` receives the keys of each dynamic output it emitted."""
    io = instance.io_manager
    dynamic_outs = job.nodes[dynamic.node_of(step)].op.dynamic_outs

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
        if name in dynamic_outs:
            emitted[name] = list(value)

    run_step_body(job, step, run_id, job.op_config(run_config, step), load, store, deps)


def run_step_body(
    job: JobDefinition,
    step: str,
    run_id: str,
    op_config: Any,
    load: Callable[[str, str, str], Any],
    store: Callable[[str, Any, str], None],
    deps: Mapping[str, tuple[str, str]] | None = None,
) -> list[str]:
    """Run one step's op: load each input with `load(input, upstream step, output)`, call the op, and
    hand each output to `store(name, value, format)` as soon as it is produced. Returns the outputs
    produced; raises when the op fails or breaks its output contract. Shared by the in-process executor
    and the pod entrypoint (`cairn.step`).

    `deps` are the step's concrete inputs (`concrete_deps`; computed when omitted, which a collecting
    step cannot do): an instance ``op[key]`` loads e.g. ``("split", "items[key]")``, and a collect input
    ``xs`` is the list of its ``xs[k]`` inputs' values, in their order (the keys' emission order). Each
    ``DynamicOutput`` of dynamic output ``items`` is stored as ``items[key]``; once the op returned, the
    list of keys as output ``items`` (format json)."""
    node = job.nodes[dynamic.node_of(step)]
    opdef = node.op
    outs = opdef.outs
    if deps is None:
        deps = concrete_deps(job, step)
    kwargs: dict[str, Any] = {}
    for inp in node.inputs:
        if inp not in deps:
            raise CairnError(f"step {step}: no location for its input {inp!r}")
        up, out = deps[inp]
        kwargs[inp] = load(inp, up, out)
    for inp in node.collects:
        parts = [(name, ref) for name, ref in deps.items() if dynamic.split_step(name)[0] == inp and name != inp]
        if any(dynamic.is_placeholder(name) for name, _ in parts):
            raise CairnError(f"step {step}: the keys its input {inp!r} collects are not known yet")
        kwargs[inp] = [load(name, up, out) for name, (up, out) in parts]
    args: list[Any] = []
    if opdef.takes_context:
        args.append(OpContext(run_id, step, op_config, logging.getLogger(f"cairn.{job.name}.{step}")))
    value = opdef.fn(*args, **kwargs)
    produced: list[str] = []
    dyn = opdef.dynamic_outs
    keys: dict[str, list[str]] = {name: [] for name in dyn}
    seen: dict[str, set[str]] = {name: set() for name in dyn}

    def declared(name: str, what: str) -> None:
        if name not in outs:
            raise CairnError(
                f"op {opdef.name} yielded {what} {name!r}, which it does not declare (declared: {', '.join(outs)})"
            )

    def emit(name: str, v: Any) -> None:
        declared(name, "output")
        if name in dyn:
            raise CairnError(
                f"op {opdef.name}: output {name!r} is dynamic (DynamicOut): emit its values as "
                f"DynamicOutput(value, mapping_key=..., output_name={name!r})"
            )
        if name in produced:
            raise CairnError(f"op {opdef.name} yielded output {name!r} twice")
        store(name, v, outs[name].format)
        produced.append(name)

    def emit_dynamic(item: DynamicOutput) -> None:
        name = item.output_name
        declared(name, "a DynamicOutput for output")
        if name not in dyn:
            raise CairnError(
                f"op {opdef.name} yielded a DynamicOutput for output {name!r}, which is not dynamic: declare it "
                f"DynamicOut() or yield Output(value, {name!r})"
            )
        key = dynamic.check_key(opdef.name, name, item.mapping_key, seen[name])
        store(f"{name}[{key}]", item.value, outs[name].format)
        keys[name].append(key)
        produced.append(f"{name}[{key}]")

    def emit_item(item: Any) -> None:
        if isinstance(item, DynamicOutput):
            emit_dynamic(item)
        elif isinstance(item, Output):
            emit(item.output_name, item.value)
        else:
            raise CairnError(
                f"op {opdef.name} yielded {type(item).__name__}; yield Output(value, name) or "
                f"DynamicOutput(value, mapping_key) objects"
            )

    if inspect.isgenerator(value):
        for item in value:
            emit_item(item)
    elif isinstance(value, Output | DynamicOutput):
        emit_item(value)
    elif dyn and len(outs) == 1:
        if not isinstance(value, list | tuple) or not all(isinstance(v, DynamicOutput) for v in value):
            raise CairnError(
                f"op {opdef.name} has the dynamic output {dyn[0]!r}: yield DynamicOutput(value, mapping_key=...) "
                f"for each key, or return a list of them; it returned {type(value).__name__}"
            )
        for item in value:
            emit_dynamic(item)
    elif dyn:
        raise CairnError(
            f"op {opdef.name} has a dynamic output ({', '.join(dyn)}) among others: yield DynamicOutput(...) and "
            f"Output(...) objects"
        )
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
    for name in dyn:  # the key index: the list of keys, in emission order
        store(name, keys[name], "json")
        produced.append(name)
    missing = [n for n, o in outs.items() if o.is_required and n not in produced]
    if missing:
        raise CairnError(f"op {opdef.name} did not produce required output(s) {', '.join(missing)}")
    return produced


def outs_format(job: JobDefinition, step: str, output: str) -> str:
    """How output `output` of `step` is stored: its `Out`'s format; a dynamic output's per-key value
    ``items[key]`` in its `DynamicOut`'s, its key index ``items`` in json."""
    node = job.nodes.get(dynamic.node_of(step))
    name, key = dynamic.dynamic_output(output)
    out = node.op.outs.get(name) if node is not None else None
    if out is None or node is None:
        return "pickle"
    if name in node.op.dynamic_outs and key is None:
        return "json"
    return out.format


def instance_key(instance: Instance, run_id: str, step: str, output: str) -> str:
    from cairn.io import output_key

    return output_key(run_id, step, output, namespace=instance.namespace)
