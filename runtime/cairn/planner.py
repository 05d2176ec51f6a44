"""The re-execution planner: a pure function from (job graph, parent run, request) to a plan.

Shared by the in-process executor and the operator. It decides which steps a child run executes (each
with a reason), where every other input is read from (the ancestor run that produced it, found in
the parent's output index, so nothing is copied), and which steps stay skipped.

Every run records an *output index*: for each (step, output) available to it, the run that produced
it and its storage key. A run's index is its parent's index overlaid with what it produced itself,
so looking an output up in the parent's index finds the nearest ancestor that produced it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn import dynamic as dyn
from cairn.errors import (
    DagsterInvalidSubsetError,
    DagsterInvariantViolationError,
    MissingOutputsError,
    ReexecutionError,
)
from cairn.runstate import RunPhase, StepState, from_failure_reason, stays_skipped
from cairn.selection import Graph, StepSubsetError, resolve_selection, unknown_steps

#: Dagster's key of a mapped op's unresolved step: ``op[?]`` is its instances for the keys its dynamic step
#: emits (the parent's, or, when the dynamic step runs again, the ones it emits then).
UNRESOLVED = "?"


class ReexecutionInvariantError(ReexecutionError, DagsterInvariantViolationError):
    """A re-execution Dagster refuses as an invariant violation (from failure of a run that did not fail, a
    mapped op's steps selected whose keys the parent never knew)."""


class NothingToRetryError(ReexecutionError, DagsterInvalidSubsetError):
    """From failure of a run where every step succeeded or stays skipped: Dagster's DagsterInvalidSubsetError."""


class Mode(enum.Enum):
    ALL = "all"
    SELECTED = "selected"
    FROM_SELECTED = "from_selected"
    FROM_FAILURE = "from_failure"
    STALE = "stale"


@dataclass(frozen=True)
class OutputRef:
    """Where an output lives: the run that produced it and its storage key."""

    run_id: str
    key: str


def input_ref(ref: str) -> tuple[str, str]:
    """A Job spec's input reference, `op` or `op.output`, as (op, output); an op's output is `result`
    unless named. The one reading of the grammar: the operator's Job graph and the UI's use it."""
    op, _, out = ref.partition(".")
    return op, out or "result"


@dataclass(frozen=True)
class JobGraph:
    """What the planner needs of a job: steps in order, input wiring, outputs (name -> required).

    A job with fan-out also says which outputs are dynamic, which ops are mapped over which dynamic
    output, and which inputs collect a mapped op; `concrete(keys)` is then the graph of its steps, each
    mapped op expanded per key (see `cairn.dynamic`). A concrete graph has no fan-out fields."""

    steps: tuple[str, ...]
    deps: Mapping[str, Mapping[str, tuple[str, str]]]  # step -> input -> (upstream step, output)
    outputs: Mapping[str, Mapping[str, bool]]
    dynamic: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # op -> its dynamic outputs
    mapped: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # op -> (dynamic op, output) it maps over
    collects: Mapping[str, Mapping[str, tuple[str, str]]] = field(
        default_factory=dict
    )  # op -> input -> (mapped op, output)

    @classmethod
    def of_ops(cls, ops: Sequence[Mapping[str, Any]]) -> JobGraph:
        """The graph of a Job spec's ops as written (`name`, `inputs`, `outputs`, `optionalOutputs`,
        `dynamicOutputs`, `collect`), in the spec's order, not validated (the operator validates a Job
        and orders its steps: `cairn_operator.graph.build`); for a reader of a Job that is known good."""
        deps = {o["name"]: {i: input_ref(str(r)) for i, r in (o.get("inputs") or {}).items()} for o in ops}
        outputs = {
            o["name"]: {out: out not in (o.get("optionalOutputs") or ()) for out in o.get("outputs") or ["result"]}
            for o in ops
        }
        dynamic = {o["name"]: tuple(o["dynamicOutputs"]) for o in ops if o.get("dynamicOutputs")}
        collects = {o["name"]: {i: input_ref(str(r)) for i, r in o["collect"].items()} for o in ops if o.get("collect")}
        mapped = dyn.infer_mapped(list(deps), deps, dynamic)
        return cls(tuple(deps), deps, outputs, dynamic, mapped, collects)

    @functools.cached_property
    def graph(self) -> Graph:
        return Graph.of(self.steps, self.deps)

    @functools.cached_property
    def op_graph(self) -> Graph:
        """The graph of the job's ops as an op selection walks it: a collector downstream of the op it
        collects (`graph` has only per-step inputs)."""
        wiring = {s: {**(self.deps.get(s) or {}), **(self.collects.get(s) or {})} for s in self.steps}
        return Graph.of(self.steps, wiring)

    @property
    def fans_out(self) -> bool:
        return bool(self.mapped or self.dynamic)

    def concrete(self, keys: dyn.Keys) -> JobGraph:
        """The steps of a run that knows `keys`: each mapped op once per key (a placeholder `op[*]` while
        its keys are unknown). A job without fan-out is its own concrete graph."""
        if not self.fans_out:
            return self
        steps, deps, outputs = dyn.expand(
            self.steps, self.deps, self.outputs, self.dynamic, self.mapped, self.collects, keys
        )
        return JobGraph(steps, deps, outputs)

    def subset(self, nodes: Collection[str]) -> JobGraph:
        """The job as a run with an op selection has it: only `nodes` (static step names), in order, with
        their wiring to each other (an input read from an op not selected comes from run config, as Dagster:
        `cairn.launch.selected_plan`; the planner does not see it)."""
        keep = tuple(s for s in self.steps if s in nodes)
        kept = set(keep)

        def wires(table: Mapping[str, Mapping[str, tuple[str, str]]]) -> dict[str, dict[str, tuple[str, str]]]:
            return {s: {i: r for i, r in table[s].items() if r[0] in kept} for s in keep if s in table}

        return JobGraph(
            keep,
            wires(self.deps),
            {s: self.outputs[s] for s in keep if s in self.outputs},
            {s: v for s, v in self.dynamic.items() if s in kept},
            {s: v for s, v in self.mapped.items() if s in kept and v[0] in kept},
            wires(self.collects),
        )

    def dimensions(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(dynamic op, output) -> the ops mapped over it."""
        dims: dict[tuple[str, str], tuple[str, ...]] = {}
        for op, dim in self.mapped.items():
            dims[dim] = (*dims.get(dim, ()), op)
        return dims


@dataclass(frozen=True)
class RunView:
    """What the planner needs of the parent run."""

    run_id: str
    status: RunPhase
    root_run_id: str
    steps: Mapping[str, StepState]
    outputs: Mapping[tuple[str, str], OutputRef]  # the run's output index
    #: step -> the version (code and config) that produced the step's outputs in this run's lineage
    versions: Mapping[str, str] = field(default_factory=dict)
    #: (dynamic step, output) -> the mapping keys it emitted in this run's lineage, in emission order
    keys: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    #: the steps outside the run's own plan (it re-executed a selection of its parent): from failure leaves
    #: them alone, as Dagster retries only within a run's step keys to execute
    not_selected: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Request:
    mode: Mode
    selection: tuple[str, ...] = ()
    force: frozenset[str] = frozenset()  # producers of missing outputs, added with reason missing-output
    current: Mapping[str, str] = field(default_factory=dict)  # Stale: each step's version now


@dataclass(frozen=True)
class Plan:
    to_run: tuple[tuple[str, str], ...]  # (step, reason), in execution order
    reused: Mapping[tuple[str, str], OutputRef]  # inputs read from ancestor runs
    reused_steps: Mapping[str, str]  # steps not executed whose outputs come from an ancestor -> that run
    skipped: Mapping[str, str]  # step -> why it stays skipped
    not_executed: tuple[str, ...]
    inherited: Mapping[tuple[str, str], OutputRef] = field(default_factory=dict)  # the parent's index
    #: Stale: step -> (the version that produced the parent's outputs, the version now)
    versions: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    #: the steps of the child, in order (mapped ops expanded where keys are known); () = the job's steps
    steps: tuple[str, ...] = ()
    #: the mapping keys the child starts with: those of the dynamic steps it reuses
    keys: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    #: dynamic (step, output) that runs again -> the keys the parent had: its maps are re-run whole, over
    #: the keys it emits now (placeholders `op[*]` in `to_run`), never mixed with the parent's instances
    remapped: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    @property
    def steps_to_run(self) -> list[str]:
        return [s for s, _ in self.to_run]

    def reason(self, step: str) -> str | None:
        return dict(self.to_run).get(step)


def initial_plan(job: JobGraph) -> Plan:
    """A first run executes every step (each mapped op as its placeholder until its keys are known)."""
    steps = job.concrete({}).steps
    return Plan(tuple((s, "initial") for s in steps), {}, {}, {}, (), steps=steps)


def plan(job: JobGraph, parent: RunView, request: Request, known_runs: Collection[str] | None = None) -> Plan:
    """Decide what a re-execution of `parent` runs. Raises StepSelectionError / ReexecutionError.

    With fan-out, the parent's steps are its mapped ops' instances (`op[key]`), each planned on its own:
    from failure re-runs exactly the failed or never-run instances and what depends on them. A dynamic
    step that runs again may emit other keys (`Plan.remapped`): nothing of the parent's map over it is
    mixed in. From failure (and All, Stale) then re-runs every op mapped over it whole (`op[*]`); a
    selection runs what it names, as Dagster (`plan_selected`).

    Linear in steps + edges: a 10,000-step plan takes milliseconds (bench/local_vs_dagster.py)."""
    if not job.fans_out:
        return _plan(job, parent, request, known_runs, {})
    parent_keys = {dim: tuple(ks) for dim, ks in parent.keys.items()}
    if request.mode in (Mode.SELECTED, Mode.FROM_SELECTED):
        return plan_selected(job, parent, request, known_runs, parent_keys)
    first = job.concrete(parent_keys)
    reasons = _reasons(first, parent, request)
    rerun = {dim: parent_keys.get(dim, ()) for dim in job.dimensions() if dim[0] in reasons}
    if not rerun:
        return _plan(first, parent, request, known_runs, parent_keys, reasons)
    kept = {dim: ks for dim, ks in parent_keys.items() if dim not in rerun}
    second = job.concrete(kept)
    remap: dict[str, str] = {}
    for dim in rerun:
        for op in job.dimensions()[dim]:
            instance = next((reasons[s] for s in first.steps if dyn.node_of(s) == op and s in reasons), None)
            remap[dyn.step_key(op, dyn.ANY)] = instance or f"map-rerun:{dim[0]}"
    reasons2 = {s: remap.get(s) or reasons[s] for s in second.steps if s in remap or s in reasons}
    _add_downstream(second.graph, [s for s in second.steps if s in remap], reasons2)  # a collector too
    return dataclasses.replace(_plan(second, parent, request, known_runs, kept, reasons2), remapped=rerun)


def selection_graph(job: JobGraph, keys: dyn.Keys) -> Graph:
    """The steps a step selection names in a re-execution of a run that knew `keys`, as Dagster's plan has
    them: the concrete steps (each mapped op's instances `op[k]`) and, for every mapped op, its unresolved
    step `op[?]`, wired as its placeholder (after the dynamic step and the `[?]` of the mapped ops it reads).
    A collector reads the instances (or, while the keys are unknown, the `[?]` it collects; Cairn: also when
    the parent emitted zero keys, so that `split*` re-runs it, where Dagster leaves it out)."""
    known = job.concrete(keys)
    unresolved = job.concrete({})
    placeholders = {dyn.node_of(s): s for s in unresolved.steps if dyn.is_placeholder(s)}
    instances: dict[str, list[str]] = {}
    for s in known.steps:
        if not dyn.is_placeholder(s):
            instances.setdefault(dyn.node_of(s), []).append(s)
    steps: list[str] = []
    deps: dict[str, dict[str, tuple[str, str]]] = {}
    for node in job.steps:
        if node in placeholders:
            steps.append(dyn.step_key(node, UNRESOLVED))
            deps[steps[-1]] = {i: (_unresolved(up), o) for i, (up, o) in unresolved.deps[placeholders[node]].items()}
        for s in instances.get(node, ()):
            steps.append(s)
            deps[s] = {i: (_unresolved(up), o) for i, (up, o) in known.deps[s].items()}
        for inp, (up, out) in (job.collects.get(node) or {}).items():  # zero keys: still downstream (Cairn's)
            if keys.get(job.mapped[up]) == ():
                deps[node][f"{inp}[{UNRESOLVED}]"] = (dyn.step_key(up, UNRESOLVED), out)
    return Graph.of(steps, deps)


def _unresolved(step: str) -> str:
    """A placeholder `op[*]` as Dagster names it in a selection, `op[?]`."""
    return dyn.step_key(dyn.node_of(step), UNRESOLVED) if dyn.is_placeholder(step) else step


def plan_selected(
    job: JobGraph,
    parent: RunView,
    request: Request,
    known_runs: Collection[str] | None,
    parent_keys: Mapping[tuple[str, str], tuple[str, ...]],
) -> Plan:
    """A selection over a job that fans out, as Dagster runs it: the steps it names, no more. `op[k]` is one
    instance; `op[?]` all the instances of the keys the dynamic step emits (the parent's, or if the dynamic
    step is selected too, the ones it emits now); selecting the dynamic step alone runs only it (its maps
    are not executed, and the parent's instances over it are not this run's: `Plan.remapped`)."""
    graph = selection_graph(job, parent_keys)
    chosen = resolve_selection(list(request.selection), graph)
    named = dict.fromkeys(chosen, "selected")
    if request.mode is Mode.FROM_SELECTED:
        _add_downstream(graph, chosen, named)
    selected_dims = {dim for dim in job.dimensions() if dim[0] in named}
    _check_selected(job, parent, named, selected_dims, parent_keys, graph)
    forced = {s: "missing-output" for s in request.force if s not in named}
    rerun = {dim: parent_keys.get(dim, ()) for dim in job.dimensions() if dim[0] in named or dim[0] in forced}
    kept = {dim: ks for dim, ks in parent_keys.items() if dim not in rerun}
    reasons: dict[str, str] = {}
    for s, why in {**named, **forced}.items():
        node, key = dyn.split_step(s)
        dim = job.mapped.get(node)
        if dim is None:
            reasons.setdefault(s, why)
        elif dim in rerun:  # over the keys the dynamic step emits now (an instance: only when forced)
            reasons.setdefault(dyn.step_key(node, dyn.ANY), why)
        elif key == UNRESOLVED:
            for k in parent_keys.get(dim, ()):
                reasons.setdefault(dyn.step_key(node, k), why)
        else:
            reasons.setdefault(s, why)
    if not reasons:
        raise StepSubsetError(
            f"No qualified steps to execute found for step_selection={list(request.selection)} (the selected "
            f"mapped ops have no instances: {', '.join(sorted({d[0] for d in job.dimensions()}))} emitted no keys "
            f"in run {parent.run_id})"
        )
    p = _plan(job.concrete(kept), parent, request, known_runs, kept, reasons)
    return dataclasses.replace(p, remapped=rerun) if rerun else p


def same_steps_selection(job: JobGraph, steps: Sequence[str]) -> list[str]:
    """A selection of exactly `steps` (a run's executed steps: "Same steps") that a re-execution accepts:
    where a dynamic step is among them, its maps' instances (keyed by what it emitted then) become their
    `op[?]` (what it emits now), once each, in place of the first."""
    rerun = {dim for dim in job.dimensions() if dim[0] in steps}
    out: list[str] = []
    for s in steps:
        node = dyn.node_of(s)
        if job.mapped.get(node) in rerun:
            s = dyn.step_key(node, UNRESOLVED)
        if s not in out:
            out.append(s)
    return out


def _check_selected(
    job: JobGraph,
    parent: RunView,
    named: Mapping[str, str],
    selected_dims: Collection[tuple[str, str]],
    parent_keys: Mapping[tuple[str, str], tuple[str, ...]],
    graph: Graph,
) -> None:
    """Dagster's refusals of a selection over dynamic steps: an instance `op[k]` of a map whose dynamic step
    is selected too (its keys are not known any more) unless `op[?]` is; a step over keys the parent never
    knew whose dynamic step is not selected. And Cairn's: a step that reads a map over keys emitted again
    (`op[?]` over its upstream map, a collector) while that map is not selected."""
    stale = [
        s
        for s in named
        if (dim := job.mapped.get(dyn.node_of(s))) in selected_dims
        and dyn.split_step(s)[1] != UNRESOLVED
        and dyn.step_key(dyn.node_of(s), UNRESOLVED) not in named
    ]
    if stale:
        raise unknown_steps("Can not build subset plan from", stale, graph)
    for s in named:
        node, key = dyn.split_step(s)
        for op, dim in _maps_read(job, node, key == UNRESOLVED):
            if dim not in selected_dims and dim not in parent_keys:
                raise ReexecutionInvariantError(
                    f'Unresolved ExecutionStep "{s}" is resolved by "{dim[0]}" which is not part of the current step '
                    f"selection or known state from parent run. (Run {parent.run_id} has no keys of "
                    f"{dim[0]}.{dim[1]}: select {dim[0]} too, e.g. step_selection=['{dim[0]}*'])"
                )
            if dim in selected_dims and op != node and dyn.step_key(op, UNRESOLVED) not in named:
                raise StepSubsetError(
                    f"Cannot execute step {s!r}: it reads {op}, whose steps follow the keys {dim[0]} (selected) "
                    f"emits now, but {op}[?] is not selected. Select it too, e.g. step_selection=['{dim[0]}*']"
                )


def _maps_read(job: JobGraph, node: str, unresolved: bool) -> list[tuple[str, tuple[str, str]]]:
    """(mapped op, its dimension) whose keys a step decides on: an unresolved step `op[?]` its own op and the
    maps it reads per key; a collector the maps it collects. An instance `op[k]` none (its key is known)."""
    found: list[tuple[str, tuple[str, str]]] = []
    if unresolved:
        found.append((node, job.mapped[node]))
        found += [(up, job.mapped[up]) for up, _ in (job.deps.get(node) or {}).values() if up in job.mapped]
    elif node not in job.mapped:
        found += [(up, job.mapped[up]) for up, _ in (job.collects.get(node) or {}).values() if up in job.mapped]
    return found


def _reasons(job: JobGraph, parent: RunView, request: Request) -> dict[str, str]:
    """Step -> why it runs, by mode (before skips and reuse are settled)."""
    steps = job.steps
    if request.mode is Mode.ALL:
        reasons = dict.fromkeys(steps, "all")
    elif request.mode in (Mode.SELECTED, Mode.FROM_SELECTED):
        graph = job.graph
        chosen = resolve_selection(list(request.selection), graph)
        reasons = dict.fromkeys(chosen, "selected")
        if request.mode is Mode.FROM_SELECTED:
            _add_downstream(graph, chosen, reasons)
    elif request.mode is Mode.STALE:
        reasons = _stale(job, parent, request.current)
    else:
        reasons = _from_failure(job, parent)
    for s in request.force:
        if s in job.graph.upstream:
            reasons.setdefault(s, "missing-output")
    return reasons


def _plan(
    job: JobGraph,
    parent: RunView,
    request: Request,
    known_runs: Collection[str] | None,
    keys: Mapping[tuple[str, str], tuple[str, ...]],
    reasons: dict[str, str] | None = None,
) -> Plan:
    """The plan over a concrete graph, given (or computing) each step's reason to run."""
    steps = job.steps
    if reasons is None:
        reasons = _reasons(job, parent, request)
    known = None if known_runs is None else (known_runs if isinstance(known_runs, set | frozenset) else set(known_runs))

    deps = job.deps
    p_outputs = parent.outputs
    p_steps = parent.steps
    to_run: list[tuple[str, str]] = []
    reused: dict[tuple[str, str], OutputRef] = {}
    skipped: dict[str, str] = {}
    for s in steps:
        reason = reasons.get(s)
        if reason is None:
            continue
        step_deps = deps.get(s) or {}
        # First settle whether the step is skipped, over all its inputs (so neither what it would reuse
        # nor an error depends on the order its inputs are declared in); only a step that runs reuses.
        skip_why = _skip_reason(job, parent, step_deps, reasons, skipped)
        if skip_why is None:
            for inp, (up, out) in step_deps.items():
                if up in reasons:
                    continue
                ref = p_outputs.get((up, out))
                if ref is not None:
                    if known is not None and ref.run_id not in known:
                        raise ReexecutionError(
                            f"Cannot execute step {s!r}: its input {inp!r} is output {out!r} of step {up!r}, stored "
                            f"by run {ref.run_id} at {ref.key}, but run {ref.run_id} is no longer in the run store. "
                            f"Re-execute {up!r} too, e.g. step_selection=['{up}*']"
                        )
                    reused[(up, out)] = ref
                    continue
                if _absent(job, parent, up, out, reasons, skipped):  # a part of a gathered input: read the others
                    continue
                up_state = p_steps.get(up, StepState.NOT_EXECUTED)
                raise ReexecutionError(
                    f"Cannot execute step {s!r}: its input {inp!r} reads output {out!r} of step {up!r}, which run "
                    f"{parent.run_id} did not produce (step {up} is {up_state.value}). Select {up!r} too, e.g. "
                    f"step_selection=['{up}*'], or re-execute from failure"
                )
        if skip_why:
            skipped[s] = skip_why
        else:
            to_run.append((s, reason))

    reused_steps: dict[str, str] = {}
    not_executed: list[str] = []
    outputs = job.outputs
    for s in steps:
        if s in reasons:
            continue
        state = p_steps.get(s, StepState.NOT_EXECUTED)
        if stays_skipped(state):
            skipped[s] = "skipped in the parent run"
            continue
        source = None
        for o in outputs.get(s, ()):
            ref = p_outputs.get((s, o))
            if ref is not None:
                source = ref.run_id
                break
        if source is not None:
            reused_steps[s] = source
        elif state.produced_outputs:  # ran, produced no (optional) output
            reused_steps[s] = parent.run_id
        else:
            not_executed.append(s)
    if not to_run:
        why = ", ".join(f"{k}: {v}" for k, v in skipped.items() if k in reasons)
        raise ReexecutionError(f"Nothing to execute: every selected step is skipped ({why})")
    versions = (
        {s: (parent.versions.get(s), _current(request.current, s)) for s in steps} if request.mode is Mode.STALE else {}
    )
    kept = {dim: ks for dim, ks in keys.items() if dim[0] not in reasons}
    return Plan(
        tuple(to_run), reused, reused_steps, skipped, tuple(not_executed), dict(p_outputs), versions, steps, kept
    )


def _current(current: Mapping[str, str], step: str) -> str | None:
    """A step's version now: its own, or (an instance `op[key]`) its op's."""
    return current.get(step) or current.get(dyn.node_of(step))


def _skip_reason(
    job: JobGraph,
    parent: RunView,
    step_deps: Mapping[str, tuple[str, str]],
    reasons: Mapping[str, str],
    skipped: Mapping[str, str],
) -> str | None:
    """Why a step to run stays skipped, or None: an input it cannot have (an upstream skipped in this plan,
    or not re-run and skipped in the parent, or not re-run and done without the optional output the step
    reads). An input gathered from several outputs (a collect's `xs[k]`, a fan-in's `xs__i`) is missing
    only when all of them are, as Dagster: the step then reads the ones there are."""
    groups: dict[str, list[str | None]] = {}
    for inp, (up, out) in step_deps.items():
        groups.setdefault(_gathered(inp), []).append(_absent(job, parent, up, out, reasons, skipped))
    for whys in groups.values():
        if all(whys):
            return whys[0]
    return None


def _gathered(inp: str) -> str:
    """The input an input part belongs to: ``xs[k]`` (a collect) and ``xs__i`` (a fan-in) are parts of xs."""
    if "[" in inp:
        return inp.partition("[")[0]
    if "__" in inp:
        head, _, tail = inp.rpartition("__")
        return head if tail.isdigit() else inp
    return inp


def _absent(
    job: JobGraph, parent: RunView, up: str, out: str, reasons: Mapping[str, str], skipped: Mapping[str, str]
) -> str | None:
    """Why output `out` of `up` will not be there for this run (skipped, or an optional output not
    produced), or None (produced by this run or an ancestor; or missing for a reason the plan refuses)."""
    if up in reasons:
        return f"upstream step {up} is skipped" if up in skipped else None
    if (up, out) in parent.outputs:
        return None
    up_state = parent.steps.get(up, StepState.NOT_EXECUTED)
    if stays_skipped(up_state):
        return f"upstream step {up} is skipped"
    if up_state.produced_outputs and not job.outputs.get(up, {}).get(out, True):
        return f"optional output {up}.{out} was not produced"
    return None


def _add_downstream(graph: Graph, seeds: Sequence[str], reasons: dict[str, str]) -> None:
    """Add everything downstream of seeds, each with reason downstream-of:<nearest seed>."""
    for seed in seeds:
        frontier = [seed]
        while frontier:
            nxt = []
            for s in frontier:
                for d in graph.downstream[s]:
                    if d not in reasons:
                        reasons[d] = f"downstream-of:{seed}"
                        nxt.append(d)
            frontier = nxt


def _from_failure(job: JobGraph, parent: RunView) -> dict[str, str]:
    """One pass in topological order: failed and interrupted steps, then what is downstream of them,
    then steps that never started (and their downstream); skipped steps stay skipped, and so do the steps
    the parent did not select (`RunView.not_selected`: neither retried nor downstream of a retried step)."""
    if not parent.status.can_resume_from_failure:
        raise ReexecutionInvariantError("Cannot reexecute from failure a run that is not failed or canceled")
    reasons: dict[str, str] = {}
    seed_of: dict[str, str] = {}  # step with a reason -> the step its reason comes from
    get_state = parent.steps.get
    get_deps = job.deps.get
    get_seed = seed_of.get
    not_executed = StepState.NOT_EXECUTED
    outside = parent.not_selected
    for s in job.steps:
        state = get_state(s, not_executed)
        if stays_skipped(state) or s in outside:
            continue
        why = from_failure_reason(state)
        if why == "failed" or why == "interrupted":
            reasons[s] = why
            seed_of[s] = s
            continue
        seed = None
        step_deps = get_deps(s)
        if step_deps:
            for up, _ in step_deps.values():
                seed = get_seed(up)
                if seed is not None:
                    break
        if seed is not None:
            reasons[s] = f"downstream-of:{seed}"
            seed_of[s] = seed
        elif why is not None:  # never started: not-executed
            reasons[s] = why
            seed_of[s] = s
    if not reasons:
        raise NothingToRetryError("No steps needed to be retried in the failed run.")
    return reasons


def _stale(job: JobGraph, parent: RunView, current: Mapping[str, str]) -> dict[str, str]:
    """Stale: the steps whose version (code or config) differs from the one that produced the parent's
    outputs ("stale: OLD -> NEW"), the steps of the parent that produced nothing (failed, interrupted, never
    run: as from failure) and everything downstream of either; what is up to date is reused in place."""
    if not current:
        raise ReexecutionError("A stale re-execution needs each step's current version (Request.current)")
    reasons: dict[str, str] = {}
    seed_of: dict[str, str] = {}
    for s in job.steps:
        state = parent.steps.get(s, StepState.NOT_EXECUTED)
        old, new = parent.versions.get(s), _current(current, s)
        seed = next((seed_of[up] for up, _ in (job.deps.get(s) or {}).values() if up in seed_of), None)
        if state.produced_outputs and old != new:
            reasons[s] = f"stale: {old or 'unrecorded'} -> {new}"
            seed_of[s] = s
        elif seed is not None:
            reasons[s] = f"downstream-of:{seed}"
            seed_of[s] = seed
        elif not state.produced_outputs and not stays_skipped(state):
            reasons[s] = from_failure_reason(state) or "not-executed"
            seed_of[s] = s
    if not reasons:
        raise ReexecutionError(
            f"Nothing is stale: every step of run {parent.run_id} was produced by the code and config it has now"
        )
    return reasons


def missing_outputs(p: Plan, exists: Callable[[str], bool]) -> list[tuple[str, str, str]]:
    """Reused outputs that are gone from storage: (step, output, key)."""
    return [(step, out, ref.key) for (step, out), ref in sorted(p.reused.items()) if not exists(ref.key)]


def plan_checked(
    job: JobGraph,
    parent: RunView,
    request: Request,
    exists: Callable[[str], bool],
    rerun_missing: bool = False,
    known_runs: Collection[str] | None = None,
    describe: Callable[[str], str] = str,
) -> Plan:
    """`plan`, then verify every reused output exists; re-run their producers or refuse."""
    force = set(request.force)
    while True:
        p = plan(job, parent, dataclasses.replace(request, force=frozenset(force)), known_runs)
        missing = missing_outputs(p, exists)
        if not missing:
            return p
        if not rerun_missing:
            listed = "; ".join(f"step {s} output {o} at {describe(k)}" for s, o, k in missing)
            raise MissingOutputsError(
                f"Cannot re-execute run {parent.run_id}: {len(missing)} output(s) it would reuse are missing from "
                f"storage: {listed}. Re-run their producers with rerun_missing=True "
                f"(ReexecutionOptions(..., rerun_missing=True), or --rerun-missing)",
                missing,
            )
        new = {s for s, _, _ in missing} - force
        if not new:  # cannot happen: forced producers run in the plan
            raise ReexecutionError(f"outputs still missing after re-running their producers: {missing}")
        force |= new
