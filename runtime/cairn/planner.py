"""The re-execution planner: a pure function from (job graph, parent run, request) to a plan.

Shared by the in-process executor and the operator. It decides which steps a child run executes (each
with a reason), where every other input is read from (the ancestor run that produced it, found in
the parent's output index, so nothing is copied), and which steps stay skipped.

Every run records an *output index*: for each (step, output) available to it, the run that produced
it and its storage key. A run's index is its parent's index overlaid with what it produced itself,
so looking an output up in the parent's index finds the nearest ancestor that produced it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from cairn.errors import MissingOutputsError, ReexecutionError
from cairn.selection import Graph, resolve_selection
from cairn.status import RunStatus, StepState


class Mode(enum.Enum):
    ALL = "all"
    SELECTED = "selected"
    FROM_SELECTED = "from_selected"
    FROM_FAILURE = "from_failure"


@dataclass(frozen=True)
class OutputRef:
    """Where an output lives: the run that produced it and its storage key."""

    run_id: str
    key: str


@dataclass(frozen=True)
class JobGraph:
    """What the planner needs of a job: steps in order, input wiring, outputs (name -> required)."""

    steps: tuple[str, ...]
    deps: Mapping[str, Mapping[str, tuple[str, str]]]  # step -> input -> (upstream step, output)
    outputs: Mapping[str, Mapping[str, bool]]

    @property
    def graph(self) -> Graph:
        return Graph.of(self.steps, self.deps)


@dataclass(frozen=True)
class RunView:
    """What the planner needs of the parent run."""

    run_id: str
    status: RunStatus
    root_run_id: str
    steps: Mapping[str, StepState]
    outputs: Mapping[tuple[str, str], OutputRef]  # the run's output index


@dataclass(frozen=True)
class Request:
    mode: Mode
    selection: tuple[str, ...] = ()
    force: frozenset[str] = frozenset()  # producers of missing outputs, added with reason missing-output


@dataclass(frozen=True)
class Plan:
    to_run: tuple[tuple[str, str], ...]  # (step, reason), in execution order
    reused: Mapping[tuple[str, str], OutputRef]  # inputs read from ancestor runs
    reused_steps: Mapping[str, str]  # steps not executed whose outputs come from an ancestor -> that run
    skipped: Mapping[str, str]  # step -> why it stays skipped
    not_executed: tuple[str, ...]
    inherited: Mapping[tuple[str, str], OutputRef] = field(default_factory=dict)  # the parent's index

    @property
    def steps_to_run(self) -> list[str]:
        return [s for s, _ in self.to_run]

    def reason(self, step: str) -> str | None:
        return dict(self.to_run).get(step)


def initial_plan(job: JobGraph) -> Plan:
    """A first run executes every step."""
    return Plan(tuple((s, "initial") for s in job.steps), {}, {}, {}, ())


def plan(job: JobGraph, parent: RunView, request: Request, known_runs: Collection[str] | None = None) -> Plan:
    """Decide what a re-execution of `parent` runs. Raises StepSelectionError / ReexecutionError."""
    graph = job.graph
    reasons: dict[str, str] = {}
    if request.mode is Mode.ALL:
        reasons = {s: "all" for s in job.steps}
    elif request.mode in (Mode.SELECTED, Mode.FROM_SELECTED):
        chosen = resolve_selection(list(request.selection), graph)
        reasons = {s: "selected" for s in chosen}
        if request.mode is Mode.FROM_SELECTED:
            _add_downstream(graph, chosen, reasons)
    else:
        reasons = _from_failure(job, graph, parent)
    for s in job.steps:
        if s in request.force and s not in reasons:
            reasons[s] = "missing-output"

    to_run: list[tuple[str, str]] = []
    reused: dict[tuple[str, str], OutputRef] = {}
    skipped: dict[str, str] = {}
    for s in job.steps:
        if s not in reasons:
            continue
        skip_why = None
        for inp, (up, out) in job.deps.get(s, {}).items():
            if up in skipped:
                skip_why = f"upstream step {up} is skipped"
                break
            if up in reasons:
                continue
            ref = parent.outputs.get((up, out))
            if ref is not None:
                if known_runs is not None and ref.run_id not in known_runs:
                    raise ReexecutionError(
                        f"Cannot execute step {s!r}: its input {inp!r} is output {out!r} of step {up!r}, stored by "
                        f"run {ref.run_id} at {ref.key}, but run {ref.run_id} is no longer in the run store. "
                        f"Re-execute {up!r} too, e.g. step_selection=['{up}*']"
                    )
                reused[(up, out)] = ref
                continue
            up_state = parent.steps.get(up, StepState.NOT_EXECUTED)
            if up_state.produced_outputs and not job.outputs.get(up, {}).get(out, True):
                skip_why = f"optional output {up}.{out} was not produced"
                break
            raise ReexecutionError(
                f"Cannot execute step {s!r}: its input {inp!r} reads output {out!r} of step {up!r}, which run "
                f"{parent.run_id} did not produce (step {up} is {up_state.value}). Select {up!r} too, e.g. "
                f"step_selection=['{up}*'], or re-execute from failure"
            )
        if skip_why:
            skipped[s] = skip_why
        else:
            to_run.append((s, reasons[s]))

    reused_steps: dict[str, str] = {}
    not_executed: list[str] = []
    for s in job.steps:
        if s in reasons:
            continue
        state = parent.steps.get(s, StepState.NOT_EXECUTED)
        if state is StepState.SKIPPED:
            skipped[s] = "skipped in the parent run"
            continue
        refs = [parent.outputs[(s, o)] for o in job.outputs.get(s, {}) if (s, o) in parent.outputs]
        if refs:
            reused_steps[s] = refs[0].run_id
        elif state.produced_outputs:  # it ran and produced no (optional) output
            reused_steps[s] = parent.run_id
        else:
            not_executed.append(s)
    if not to_run:
        raise ReexecutionError(
            f"Nothing to execute: every selected step is skipped ({', '.join(f'{k}: {v}' for k, v in skipped.items())})"
        )
    return Plan(tuple(to_run), reused, reused_steps, skipped, tuple(not_executed), dict(parent.outputs))


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


def _from_failure(job: JobGraph, graph: Graph, parent: RunView) -> dict[str, str]:
    if not parent.status.can_resume_from_failure:
        raise ReexecutionError("Cannot reexecute from failure a run that is not failed or canceled")
    reasons: dict[str, str] = {}
    for s in job.steps:
        state = parent.steps.get(s, StepState.NOT_EXECUTED)
        if state is StepState.FAILURE:
            reasons[s] = "failed"
        elif state.interrupted:
            reasons[s] = "interrupted"
    seeds = [s for s in job.steps if s in reasons]
    _add_downstream(graph, seeds, reasons)
    for s in job.steps:
        if s not in reasons and parent.steps.get(s, StepState.NOT_EXECUTED) in (
            StepState.NOT_EXECUTED,
            StepState.PENDING,
        ):
            reasons[s] = "not-executed"
            _add_downstream(graph, [s], reasons)
    for s in job.steps:
        if s in reasons and parent.steps.get(s) is StepState.SKIPPED:
            del reasons[s]  # skipped steps stay skipped
    if not reasons:
        raise ReexecutionError("No steps needed to be retried in the failed run.")
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
        p = plan(job, parent, Request(request.mode, request.selection, frozenset(force)), known_runs)
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
