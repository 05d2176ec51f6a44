"""One step's body: load its inputs, call its op, hand each output to storage as soon as it is produced.

Shared by the in-process executor (`cairn.execution`) and the pod entrypoint (`cairn.step`): neither
the run's state nor retries live here, only what one attempt of one step does. Also the concrete
wiring of a step (`concrete_deps`, over the planner's view of a job, `job_graph`) and how each output
is stored (`outs_format`, `instance_key`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cairn import dynamic
from cairn.definitions import DynamicOutput, JobDefinition, Node, OpContext, OpDefinition, Output
from cairn.errors import CairnError
from cairn.planner import JobGraph

if TYPE_CHECKING:
    from cairn.instance import Instance

Load = Callable[[str, str, str], Any]  # (input, upstream step, output) -> value
Store = Callable[[str, Any, str], None]  # (output, value, format)


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
) -> list[str]:
    """Run one step's op: load each input with `load(input, upstream step, output)`, call the op, and
    hand each output to `store(name, value, format)` as soon as it is produced. Returns the outputs
    produced; raises when the op fails or breaks its output contract.

    `deps` are the step's concrete inputs (`concrete_deps`; computed when omitted, which a collecting
    step cannot do): an instance ``op[key]`` loads e.g. ``("split", "items[key]")``, and a collect input
    ``xs`` is the list of its ``xs[k]`` inputs' values, in their order (the keys' emission order). Each
    ``DynamicOutput`` of dynamic output ``items`` is stored as ``items[key]``; once the op returned, the
    list of keys as output ``items`` (format json)."""
    node = job.nodes[dynamic.node_of(step)]
    opdef = node.op
    kwargs = _inputs(node, step, concrete_deps(job, step) if deps is None else deps, load)
    args: list[Any] = []
    if opdef.takes_context:
        args.append(OpContext(run_id, step, op_config, logging.getLogger(f"cairn.{job.name}.{step}")))
    outputs = _Outputs(opdef, store)
    outputs.take(opdef.fn(*args, **kwargs))
    return outputs.close()


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

    def __init__(self, opdef: OpDefinition, store: Store) -> None:
        self.opdef = opdef
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
                raise CairnError(
                    f"op {name} has the dynamic output {dyn[0]!r}: yield DynamicOutput(value, mapping_key=...) "
                    f"for each key, or return a list of them; it returned {type(value).__name__}"
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
            raise CairnError(
                f"op {self.opdef.name}: output {name!r} is dynamic (DynamicOut): emit its values as "
                f"DynamicOutput(value, mapping_key=..., output_name={name!r})"
            )
        if name in self.produced:
            raise CairnError(f"op {self.opdef.name} yielded output {name!r} twice")
        self.store(name, v, self.outs[name].format)
        self.produced.append(name)

    def dynamic(self, item: DynamicOutput) -> None:
        name = item.output_name
        self._declared(name, "a DynamicOutput for output")
        if name not in self.dyn:
            raise CairnError(
                f"op {self.opdef.name} yielded a DynamicOutput for output {name!r}, which is not dynamic: declare "
                f"it DynamicOut() or yield Output(value, {name!r})"
            )
        key = dynamic.check_key(self.opdef.name, name, item.mapping_key, self.seen[name])
        self.store(f"{name}[{key}]", item.value, self.outs[name].format)
        self.keys[name].append(key)
        self.produced.append(f"{name}[{key}]")

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
    return out.format


def instance_key(instance: Instance, run_id: str, step: str, output: str) -> str:
    from cairn.io import output_key

    return output_key(run_id, step, output, namespace=instance.namespace)
