"""One step's body: load its inputs, call its op, hand each output to storage as soon as it is produced.

Shared by the in-process executor (`cairn.execution`) and the pod entrypoint (`cairn.step`): neither
the run's state nor retries live here, only what one attempt of one step does: its resources initialised
(`cairn.resources`) and torn down after it, its inputs and outputs type-checked, outputs of a job IO manager
handed to it, and its hooks (`cairn.hooks`) run once its outcome is final. Also the concrete wiring of a step
(`concrete_deps`, over the planner's view of a job, `job_graph`) and how each output is stored (`outs_format`,
`instance_key`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cairn import dynamic
from cairn.context import OpExecutionContext
from cairn.definitions import (
    DynamicOutput,
    JobDefinition,
    Node,
    OpDefinition,
    Output,
    check_input_type,
    check_output_type,
)
from cairn.errors import CairnError, OutputContractError
from cairn.hooks import HookContext, HookDefinition, run_hooks, step_hooks, will_retry
from cairn.planner import JobGraph
from cairn.resources import (
    ManagedOutput,
    OutputContext,
    build_resources,
    check_required_resources,
    load_managed,
    managed_io_manager_key,
    op_resource_keys,
    op_resource_params,
)

if TYPE_CHECKING:
    from cairn.instance import Instance

Load = Callable[[str, str, str], Any]  # (input, upstream step, output) -> value
Store = Callable[[str, Any, str], None]  # (output, value, format)
Emit = Callable[[tuple[str, str, Mapping[str, Any]]], None]  # (kind, step, details), as cairn.active.Event


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


def run_step_body(
    job: JobDefinition,
    step: str,
    run_id: str,
    op_config: Any,
    load: Load,
    store: Store,
    deps: Mapping[str, tuple[str, str]] | None = None,
    *,
    resources: Any = None,
    resources_config: Mapping[str, Any] | None = None,
    retry_number: int | None = None,
    emit: Emit | None = None,
    run_tags: Mapping[str, str] | None = None,
    instance: Any = None,
) -> list[str]:
    """Run one step's op: load each input with `load(input, upstream step, output)`, call the op, and
    hand each output to `store(name, value, format)` as soon as it is produced. Returns the outputs
    produced; raises when the op fails or breaks its output contract.

    `deps` are the step's concrete inputs (`concrete_deps`; computed when omitted, which a collecting
    step cannot do): an instance ``op[key]`` loads e.g. ``("split", "items[key]")``, and a collect input
    ``xs`` is the list of its ``xs[k]`` inputs' values, in their order (the keys' emission order). Each
    ``DynamicOutput`` of dynamic output ``items`` is stored as ``items[key]``; once the op returned, the
    list of keys as output ``items`` (format json).

    Resources (`cairn.resources`): `resources` are the run's, already initialised (`run_resources`); without
    them the step initialises what it needs from ``job.resource_defs`` and `resources_config` (the run config's
    ``resources`` section) and tears them down when it ends, hooks included. An output handled by a job IO
    manager goes to its ``handle_output`` and `store` gets its `ManagedOutput` record (format json, as
    `outs_format` says); an input read from such an output is loaded by that IO manager. Hooks
    (`cairn.hooks`) run once the outcome is final: `retry_number` (0 for the first attempt; None: unknown,
    the attempt counts as the last and its failure hooks run) says whether a failure will be retried; `emit`
    is told each hook's outcome (``("hook_completed" | "hook_errored" | "hook_skipped", step, {"hook": name[,
    "error": text]})``)."""
    node = job.nodes[dynamic.node_of(step)]
    deps = concrete_deps(job, step) if deps is None else deps
    body = _StepBody(job, node, step, run_id, op_config, retry_number, emit, run_tags, instance)
    if resources is not None:
        return body.run(load, store, deps, resources)
    keys = body.resource_keys(deps)
    if not keys:
        return body.run(load, store, deps, None)
    _check_provided(job, keys)
    rdefs = getattr(job, "resource_defs", None) or {}
    with build_resources(rdefs, instance, resources_config or {}, required_keys=keys, run_id=run_id) as built:
        return body.run(load, store, deps, built)


def _check_provided(job: JobDefinition, keys: frozenset[str]) -> None:
    """Dagster's definition error for a resource the step needs and the job does not define."""
    if keys - set(getattr(job, "resource_defs", None) or {}):
        check_required_resources(job)


class _StepBody:
    """One attempt of one step with its resources: inputs, the op, outputs, hooks."""

    def __init__(
        self,
        job: JobDefinition,
        node: Node,
        step: str,
        run_id: str,
        op_config: Any,
        retry_number: int | None,
        emit: Emit | None,
        run_tags: Mapping[str, str] | None,
        instance: Any,
    ) -> None:
        self.job, self.node, self.op, self.step, self.run_id = job, node, node.op, step, run_id
        self.op_config, self.retry_number, self.emit, self.run_tags = op_config, retry_number, emit, run_tags
        self.instance = instance
        self.hooks = step_hooks(job, node)
        self.resources: Any = None

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"cairn.{self.job.name}.{self.step}")

    def resource_keys(self, deps: Mapping[str, tuple[str, str]]) -> frozenset[str]:
        """What the step needs initialised: its op's resources, its hooks', and the job IO managers of its
        outputs and of the upstream outputs it reads (none, the common case, costs nothing more)."""
        keys = set(op_resource_keys(self.op))
        for hook in self.hooks:
            keys |= hook.required_resource_keys
        if not getattr(self.job, "resource_defs", None):
            return frozenset(keys)
        managed = [managed_io_manager_key(self.job, self.node.name, out) for out in self.op.outs]
        managed += [self._managed(up, out) for up, out in deps.values()]
        return frozenset(keys | {k for k in managed if k is not None})

    def _managed(self, step: str, output: str) -> str | None:
        return managed_io_manager_key(self.job, dynamic.node_of(step), dynamic.dynamic_output(output)[0])

    def run(self, load: Load, store: Store, deps: Mapping[str, tuple[str, str]], resources: Any) -> list[str]:
        """Load, call, store; then the hooks of the final outcome."""
        self.resources = resources
        if getattr(self.job, "resource_defs", None):
            load, store = self._managed_load(load), self._managed_store(store)
        outputs = _Outputs(self.op, store, keep=bool(self.hooks))
        try:
            kwargs = _inputs(self.node, self.step, deps, self._typed(load))
            if params := op_resource_params(self.op):
                kwargs.update({name: getattr(resources, name) for name in params if name not in self.op.inputs})
            args = [self._context()] if self.op.takes_context else []
            outputs.take(self.op.fn(*args, **kwargs))
            produced = outputs.close()
        except Exception as exc:
            self._hooks(False, exc, outputs.values)  # what the op yielded before it failed (Dagster's)
            raise
        self._hooks(True, None, outputs.values)
        return produced

    def _context(self) -> OpExecutionContext:
        op_keys = op_resource_keys(self.op)
        values = {k: getattr(self.resources, k) for k in op_keys if self.resources is not None and k in self.resources}
        return OpExecutionContext(
            self.run_id,
            self.step,
            self.op_config,
            self.log,
            resources=values,
            retry_number=self.retry_number or 0,
            op_def=self.op,
            job_name=self.job.name,
            run_tags=self.run_tags,
        )

    def _typed(self, load: Load) -> Load:
        """`load`, each value checked against its input's type (Dagster's check before the op runs)."""
        types = {
            name: t
            for name, declared in (getattr(self.op, "ins", None) or {}).items()
            if name not in self.node.collects and _declared_type(t := getattr(declared, "dagster_type", None))
        }

        def typed(inp: str, up: str, out: str) -> Any:
            value = load(inp, up, out)
            if inp in types:
                check_input_type(self.op.name, inp, types[inp], value)
            return value

        return typed if types else load

    def _managed_store(self, store: Store) -> Store:
        """`store`, outputs of a job IO manager handed to it (Cairn's store keeps their `ManagedOutput`)."""

        def managed(name: str, value: Any, fmt: str) -> None:
            base, key = dynamic.dynamic_output(name)
            io_key = managed_io_manager_key(self.job, self.node.name, base)
            out = self.op.outs[base]
            nothing = getattr(getattr(out, "dagster_type", None), "__name__", None) == "Nothing"  # no value to hand
            if io_key is None or nothing or (base in self.op.dynamic_outs and key is None):
                store(name, value, fmt)
                return
            context = OutputContext(
                step_key=self.step,
                name=base,
                job_name=self.job.name,
                run_id=self.run_id,
                definition_metadata=getattr(out, "metadata", None),
                mapping_key=key,
                dagster_type=getattr(out, "dagster_type", None),
                log_manager=self.log,
                resources=self.resources,
                op_def=self.op,
            )
            getattr(self.resources, io_key).handle_output(context, value)
            store(name, ManagedOutput(io_key, self.run_id, self.step, base, key).as_json(), "json")

        return managed

    def _managed_load(self, load: Load) -> Load:
        """`load`, values of a job IO manager's outputs loaded by it, as the run that produced them."""

        def managed(inp: str, up: str, out: str) -> Any:
            value = load(inp, up, out)
            record = ManagedOutput.from_stored(value) if self._managed(up, out) is not None else None
            if record is None:
                return value
            name = dynamic.split_step(inp)[0]
            return load_managed(record, self.job, self.resources, name, op_def=self.op, instance=self.instance)

        return managed

    def _hooks(self, succeeded: bool, exc: BaseException | None, values: Mapping[str, Any]) -> None:
        """The hooks of this outcome (none when the failure will be retried), each outcome told to `emit`."""
        if not self.hooks:
            return
        retrying = exc is not None and will_retry(self.job.retry_policy(self.step), exc, self.retry_number)

        def context_for(hook: HookDefinition) -> HookContext:
            keys = hook.required_resource_keys
            return HookContext(
                hook_def=hook,
                op=self.node,
                step_key=self.step,
                run_id=self.run_id,
                job_name=self.job.name,
                resources={k: getattr(self.resources, k) for k in keys if self.resources is not None},
                op_config=self.op_config,
                op_exception=exc,
                op_output_values=values,
                instance=self.instance,
            )

        for result in run_hooks(self.hooks, succeeded, retrying, context_for):
            details: dict[str, Any] = {"hook": result.hook}
            if result.error is not None:
                details["error"] = f"{type(result.error).__name__}: {result.error}"
            if self.emit is not None:
                self.emit((result.outcome.value.lower(), self.step, details))


def _declared_type(dagster_type: Any) -> bool:
    """Whether an input declares a type to check (not None, Any, or the authoring module's "not given")."""
    return dagster_type is not None and dagster_type is not Any and type(dagster_type).__name__ != "_NoValueSentinel"


def _inputs(node: Node, step: str, deps: Mapping[str, tuple[str, str]], load: Load) -> dict[str, Any]:
    """The op's keyword arguments: each input loaded; each collect input the list of its parts' values."""
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
    return kwargs


class _Outputs:
    """What an op returned or yielded, checked against its declared outputs and stored as it comes."""

    def __init__(self, opdef: OpDefinition, store: Store, keep: bool = False) -> None:
        self.opdef = opdef
        self.keep = keep  # keep each output's value (for success hooks' op_output_values)
        self.values: dict[str, Any] = {}
        self.outs = opdef.outs
        self.dyn = opdef.dynamic_outs
        self.store = store
        self.produced: list[str] = []
        self.keys: dict[str, list[str]] = {name: [] for name in self.dyn}
        self.seen: dict[str, set[str]] = {name: set() for name in self.dyn}

    def take(self, value: Any) -> None:
        """Dispatch the op's return value: a generator, an Output, DynamicOutputs, a value or a tuple."""
        name, outs, dyn = self.opdef.name, self.outs, self.dyn
        if inspect.isgenerator(value):
            for item in value:
                self.item(item)
        elif isinstance(value, Output | DynamicOutput):
            self.item(value)
        elif dyn and len(outs) == 1:
            if not isinstance(value, list | tuple) or not all(isinstance(v, DynamicOutput) for v in value):
                raise OutputContractError(
                    f'Error with output for op "{name}": dynamic output {dyn[0]!r} expected a list of DynamicOutput '
                    f"objects, but instead received instead an object of type {type(value)}. (Cairn: yield "
                    f"DynamicOutput(value, mapping_key=...) for each key, or return a list of them; it returned "
                    f"{type(value).__name__})"
                )
            for item in value:
                self.dynamic(item)
        elif dyn:
            raise CairnError(
                f"op {name} has a dynamic output ({', '.join(dyn)}) among others: yield DynamicOutput(...) and "
                f"Output(...) objects"
            )
        elif len(outs) == 1:
            self.output(next(iter(outs)), value)
        else:
            if not isinstance(value, tuple) or len(value) != len(outs):
                raise CairnError(
                    f"op {name} has outputs {', '.join(outs)}: return a tuple of {len(outs)} values or yield "
                    f"Output(value, name) for each"
                )
            for out, v in zip(outs, value, strict=True):
                self.output(out, v)

    def close(self) -> list[str]:
        """Store each dynamic output's key index (its keys, in emission order); check required outputs."""
        for name in self.dyn:
            self.store(name, self.keys[name], "json")
            self.produced.append(name)
        missing = [n for n, o in self.outs.items() if o.is_required and n not in self.produced]
        if missing:
            raise CairnError(f"op {self.opdef.name} did not produce required output(s) {', '.join(missing)}")
        return self.produced

    def _declared(self, name: str, what: str) -> None:
        if name not in self.outs:
            raise CairnError(
                f"op {self.opdef.name} yielded {what} {name!r}, which it does not declare (declared: "
                f"{', '.join(self.outs)})"
            )

    def output(self, name: str, v: Any) -> None:
        self._declared(name, "output")
        if name in self.dyn:
            raise OutputContractError(
                f'Compute for op "{self.opdef.name}" for output "{name}" defined as dynamic must yield '
                f"DynamicOutput, got Output. (Cairn: emit its values as DynamicOutput(value, mapping_key=..., "
                f"output_name={name!r}).)"
            )
        if name in self.produced:
            raise CairnError(f"op {self.opdef.name} yielded output {name!r} twice")
        check_output_type(self.opdef.name, name, getattr(self.outs[name], "dagster_type", None), v)
        self.store(name, v, self.outs[name].format)
        self.produced.append(name)
        if self.keep:
            self.values[name] = v

    def dynamic(self, item: DynamicOutput) -> None:
        name = item.output_name
        self._declared(name, "a DynamicOutput for output")
        if name not in self.dyn:
            raise OutputContractError(
                f'Compute for op "{self.opdef.name}" yielded a DynamicOutput, but did not use '
                f"DynamicOutputDefinition. (Cairn: output {name!r} is not dynamic: declare it DynamicOut() or yield "
                f"Output(value, {name!r}).)"
            )
        key = dynamic.check_key(self.opdef.name, name, item.mapping_key, self.seen[name])
        check_output_type(self.opdef.name, name, getattr(self.outs[name], "dagster_type", None), item.value)
        self.store(f"{name}[{key}]", item.value, self.outs[name].format)
        self.keys[name].append(key)
        self.produced.append(f"{name}[{key}]")
        if self.keep:
            self.values.setdefault(name, {})[key] = item.value

    def item(self, item: Any) -> None:
        if isinstance(item, DynamicOutput):
            self.dynamic(item)
        elif isinstance(item, Output):
            self.output(item.output_name, item.value)
        else:
            raise CairnError(
                f"op {self.opdef.name} yielded {type(item).__name__}; yield Output(value, name) or "
                f"DynamicOutput(value, mapping_key) objects"
            )


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
    if managed_io_manager_key(job, node.name, name) is not None:
        return "json"  # the value is with a job IO manager; Cairn's store keeps its ManagedOutput record
    return out.format


def instance_key(instance: Instance, run_id: str, step: str, output: str) -> str:
    from cairn.io import output_key

    return output_key(run_id, step, output, namespace=instance.namespace)
