"""The graph of a Job's ops: validation that needs the whole graph, and a topological order.

A schema can refuse a bad op name; only the graph can tell an input naming an op that does not
exist, an output an op does not declare, or a cycle. Those make the Run fail with `InvalidJob` and a
message that says what to change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cairn.dynamic import check_graph, infer_mapped, node_of, split_step, value_key
from cairn.errors import DefinitionError
from cairn.planner import JobGraph, input_ref
from cairn_operator.models import JobSpec, OpSpec


class InvalidJob(ValueError):
    """The Job cannot run as written; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class OpGraph:
    """A Job's graph and its op specs. The graph is the runtime's `JobGraph` (steps in order, their wiring,
    fan-out, `concrete(keys)`: the planner and the in-process executor use the same one); beside it `ops`
    maps each step to its op's spec. With fan-out, `concrete(keys)` is the graph of a Run's steps (each
    mapped op once per key, `op[key]`; `op[*]` while its keys are unknown), each with its op's spec."""

    job: JobGraph
    ops: Mapping[str, OpSpec]  # step -> its op's spec (of a static graph: op -> spec)

    @property
    def order(self) -> tuple[str, ...]:
        """The steps, topological (stable in the Job's op order)."""
        return self.job.steps

    @property
    def deps(self) -> Mapping[str, Mapping[str, tuple[str, str]]]:
        """step -> input -> (upstream step, output)."""
        return self.job.deps

    @property
    def mapped(self) -> Mapping[str, tuple[str, str]]:
        """op -> the (dynamic op, output) it maps over."""
        return self.job.mapped

    @property
    def collects(self) -> Mapping[str, Mapping[str, tuple[str, str]]]:
        """op -> collect input -> (mapped op, output)."""
        return self.job.collects

    @property
    def fans_out(self) -> bool:
        return self.job.fans_out

    def job_graph(self) -> JobGraph:
        """The runtime planner's view of this graph (shared re-execution rules): the graph itself."""
        return self.job

    def concrete(self, keys: Mapping[tuple[str, str], Sequence[str]]) -> OpGraph:
        """The steps of a Run that knows `keys` ((dynamic op, output) -> keys): see `cairn.dynamic`."""
        if not self.fans_out:
            return self
        g = self.job.concrete(keys)
        return OpGraph(g, {s: self.ops[node_of(s)] for s in g.steps})


def build(spec: JobSpec) -> OpGraph:
    ops = {o.name: o for o in spec.ops}
    if len(ops) != len(spec.ops):
        dupes = sorted({o.name for o in spec.ops if sum(p.name == o.name for p in spec.ops) > 1})
        raise InvalidJob(f"op names must be unique within a Job: {', '.join(dupes)} appear more than once")
    names = ", ".join(ops)
    deps: dict[str, dict[str, tuple[str, str]]] = {}
    for o in spec.ops:
        unknown_optional = sorted(set(o.optionalOutputs) - set(o.outputs))
        if unknown_optional:
            raise InvalidJob(f"op {o.name}: optionalOutputs {unknown_optional} are not in its outputs {o.outputs}")
        deps[o.name] = {}
        for inp, ref in o.inputs.items():
            up, out = input_ref(ref)
            if up not in ops:
                raise InvalidJob(
                    f"op {o.name}: input {inp!r} reads {ref!r}, but the Job has no op {up!r} (its ops: {names}); "
                    f"fix spec.ops[{o.name}].inputs.{inp}"
                )
            if out not in ops[up].outputs:
                raise InvalidJob(
                    f"op {o.name}: input {inp!r} reads output {out!r} of op {up!r}, which declares only "
                    f"{', '.join(ops[up].outputs)}; fix the input or add {out!r} to {up}'s outputs"
                )
            if up == o.name:
                raise InvalidJob(f"op {o.name}: input {inp!r} reads its own output; an op cannot depend on itself")
            deps[o.name][inp] = (up, out)
        unknown_dynamic = sorted(set(o.dynamicOutputs) - set(o.outputs))
        if unknown_dynamic:
            raise InvalidJob(f"op {o.name}: dynamicOutputs {unknown_dynamic} are not in its outputs {o.outputs}")
        for inp, ref in o.collect.items():
            up, out = input_ref(ref)
            if up not in ops or out not in ops[up].outputs:
                raise InvalidJob(
                    f"op {o.name}: collect input {inp!r} reads {ref!r}, which is not an output of an op of the Job "
                    f"(its ops: {names}); fix spec.ops[{o.name}].collect.{inp}"
                )
            if inp in o.inputs:
                raise InvalidJob(f"op {o.name}: {inp!r} is both an input and a collect input; rename one")
    collects = {o.name: {inp: input_ref(ref) for inp, ref in o.collect.items()} for o in spec.ops if o.collect}
    dynamic = {o.name: tuple(o.dynamicOutputs) for o in spec.ops if o.dynamicOutputs}
    mapped = infer_mapped([o.name for o in spec.ops], deps, dynamic)  # reading a dynamic output maps an op
    try:
        check_graph(list(ops), deps, dynamic, mapped, collects, "the Job")
    except DefinitionError as exc:
        raise InvalidJob(str(exc)) from exc
    all_deps = {n: {**d, **{f"collect:{i}": ref for i, ref in collects.get(n, {}).items()}} for n, d in deps.items()}
    # Level by level (each op after all its upstreams, ties in the Job's op order): an op's level is the
    # length of its longest path from an op without inputs. Kahn's algorithm, linear in ops + inputs.
    index = {o.name: i for i, o in enumerate(spec.ops)}
    waiting = {n: len({up for up, _ in d.values()}) for n, d in all_deps.items()}
    downstream: dict[str, set[str]] = {n: set() for n in all_deps}
    for n, d in all_deps.items():
        for up, _ in d.values():
            downstream[up].add(n)
    level = dict.fromkeys(all_deps, 0)
    ready = [n for n, w in waiting.items() if w == 0]
    while ready:
        n = ready.pop()
        for nxt in downstream[n]:
            level[nxt] = max(level[nxt], level[n] + 1)
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    stuck = [o.name for o in spec.ops if waiting[o.name] > 0]
    if stuck:
        raise InvalidJob(
            f"the ops {', '.join(stuck)} form a dependency cycle (through their inputs); "
            "remove one of the inputs that closes the loop"
        )
    order = tuple(sorted(deps, key=lambda n: (level[n], index[n])))
    outputs = {n: {o: o not in op.optionalOutputs for o in op.outputs} for n, op in ops.items()}
    return OpGraph(JobGraph(order, deps, outputs, dynamic, mapped, collects), ops)


def unknown_steps(graph: OpGraph, config: Any, overrides: Mapping[str, Any] | None) -> str | None:
    """A message naming `config` and `overrides` entries for steps the Job does not have, or None (call
    `config_shape_problem` first: this reads `config` as well shaped)."""
    ops = set(graph.order)
    wrong_config = sorted(set((config or {}).get("ops") or {}) - ops)
    wrong_overrides = sorted(set(overrides or {}) - ops)
    parts = []
    if wrong_config:
        parts.append(f"config.ops names unknown step(s): {', '.join(wrong_config)}")
    if wrong_overrides:
        parts.append(f"overrides name unknown step(s): {', '.join(wrong_overrides)}")
    if not parts:
        return None
    return f"{'; '.join(parts)} (the Job's steps: {', '.join(graph.order)}); fix or remove them"


def config_problem(graph: OpGraph, config: Any, overrides: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(reason, message) when a Run's (or Reexecution's) `config` or `overrides` cannot be used with this
    Job: `InvalidConfig` for a config of the wrong shape, `UnknownSteps` for entries naming steps the Job
    lacks; None when both are fine."""
    shape = config_shape_problem(config)
    if shape:
        return "InvalidConfig", shape
    wrong = unknown_steps(graph, config, overrides)
    return ("UnknownSteps", wrong) if wrong else None


def config_shape_problem(config: Any) -> str | None:
    """What is wrong with the shape of a run config, or None: it is `{ops: {<step>: {config: <any>}}}`."""
    if config is None:
        return None
    example = "write it as config: {ops: {<step>: {config: {...}}}}"
    if not isinstance(config, Mapping):
        return f"config must be a mapping, not {type(config).__name__}: {example}"
    ops = config.get("ops")
    if ops is None:
        return None
    if not isinstance(ops, Mapping):
        return f"config.ops must map each step to its config, not be a {type(ops).__name__}: {example}"
    for step, entry in ops.items():
        if entry is not None and not isinstance(entry, Mapping):
            return f"config.ops.{step} must be a mapping with a `config` key, not a {type(entry).__name__}: {example}"
    return None


def output_location(step_status: Mapping[str, Any], output: str) -> Mapping[str, Any] | None:
    """Where a step's output is, per its status: `outputs[output]`; for the value of one mapping key of a
    dynamic output (``items[k]``), the key index's location with ``[k]`` appended (where the step stored it),
    once the key is among the step's recorded `keys`."""
    outputs = step_status.get("outputs") or {}
    if output in outputs:
        return dict(outputs[output])
    name, key = split_step(output)
    if key is None or name not in outputs or key not in ((step_status.get("keys") or {}).get(name) or ()):
        return None
    return {"key": value_key(outputs[name]["key"], key)}
