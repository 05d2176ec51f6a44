"""What an in-process run starts from: its options checked, its plan made, its config and tags settled.

The first stage of `cairn.execution.execute_job` (plan -> active execution -> the loop -> one step's
body): `prepare` validates a re-execution against its parent, plans it (`cairn.planner`), computes the
step versions the run records and returns a `Launch`. Nothing is written to the run store here.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn import dynamic
from cairn.definitions import JobDefinition
from cairn.errors import ConfigError, DagsterRunAlreadyExists, ReexecutionError
from cairn.instance import Instance, RunRecord
from cairn.planner import JobGraph, Mode, Plan, Request, initial_plan, plan_checked
from cairn.selection import OP_SELECTION_TAG, Graph, select_ops
from cairn.status import RunStatus
from cairn.stepbody import job_graph

TAG_PARENT = "cairn.dev/parent-run"
TAG_ROOT = "cairn.dev/root-run"
TAG_MODE = "cairn.dev/reexecution-mode"


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
        """Dagster's: re-execute what run `run_id` did not finish. As in Dagster nothing is read here (`instance`
        is Dagster's argument): a parent that did not fail or was not canceled is refused when the re-execution
        is planned (DagsterInvariantViolationError "Cannot reexecute from failure a run that is not failed or
        canceled")."""
        return cls(parent_run_id=run_id, mode=Mode.FROM_FAILURE, rerun_missing=rerun_missing)

    def request(self) -> Request:
        assert self.mode is not None
        return Request(self.mode, tuple(self.step_selection))


@dataclass(frozen=True)
class Launch:
    """A run about to start: its id, validated config, tags, plan and the versions it records."""

    run_id: str
    run_config: dict[str, Any]
    tags: dict[str, str]
    plan: Plan
    versions: Mapping[str, str]  # node -> the code and config version its steps record
    parent: RunRecord | None = None
    mode: str | None = None
    step_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: node -> input -> value: inputs an op selection leaves unconnected, given in run config (``inputs``)
    input_values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def prepare(
    job: JobDefinition,
    instance: Instance,
    run_config: Mapping[str, Any] | None,
    options: ReexecutionOptions | None,
    tags: Mapping[str, str] | None,
    op_selection: Sequence[str] | None = None,
    run_id: str | None = None,
) -> Launch:
    """A first run executes every step (with `op_selection`, Dagster's op selection: the selected ops only,
    recorded in the run's tag ``cairn.dev/op-selection``); a re-execution runs what its options select of its
    parent (whose run config it takes unless given one; an op selection's run, within its ops). The run config
    recorded is the job's default config with the given one laid over it, as Dagster resolves it. `run_id`: the
    new run's id (default: a new UUID). Raises ReexecutionError, StepSelectionError, ConfigError,
    DagsterInvalidSubsetError."""
    job_run_tags = getattr(job, "run_tags", None)  # Dagster: a job's run_tags, else its tags, tag its runs
    run_tags = {**(job.tags if job_run_tags is None else job_run_tags), **(tags or {})}
    new_id = run_id or str(uuid.uuid4())
    if run_id is not None and instance.has_run(run_id):
        raise DagsterRunAlreadyExists(f"Attempting to add a run with run_id {run_id} that already exists")
    if options is None:
        return _fresh(job, new_id, run_config, run_tags, op_selection)
    parent = _parent(job, instance, options.parent_run_id)
    if run_config is None:
        run_config = parent.run_config
    versions = job.step_versions(run_config)  # what Stale compares, and what this run records
    the_plan = _plan(job, instance, parent, options, versions)
    assert options.mode is not None
    run_tags.update({TAG_PARENT: parent.run_id, TAG_ROOT: parent.root_run_id, TAG_MODE: options.mode.value})
    if OP_SELECTION_TAG in parent.tags:  # Dagster's child runs keep their parent's op selection
        run_tags[OP_SELECTION_TAG] = parent.tags[OP_SELECTION_TAG]
    config = _resolved(job, run_config)
    job.validate_run_config(config)
    return Launch(new_id, config, run_tags, the_plan, versions, parent, options.mode.value, options.step_env)


def _fresh(
    job: JobDefinition,
    run_id: str,
    run_config: Mapping[str, Any] | None,
    run_tags: dict[str, str],
    op_selection: Sequence[str] | None,
) -> Launch:
    job.validate_run_config(run_config)
    versions = job.step_versions(run_config)
    config = _resolved(job, run_config)
    graph = job_graph(job)
    if op_selection is None:
        return Launch(run_id, config, run_tags, initial_plan(graph), versions)
    the_plan, given = selected_plan(job.name, graph, op_selection, config)
    run_tags[OP_SELECTION_TAG] = json.dumps(list(op_selection))
    return Launch(run_id, config, run_tags, the_plan, versions, input_values=given)


def _resolved(job: JobDefinition, run_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run config a run records: the job's default config with `run_config` laid over it."""
    resolve = getattr(job, "resolved_run_config", None)
    return dict(resolve(run_config)) if resolve is not None else dict(run_config or {})


def selected_plan(
    job_name: str, graph: JobGraph, op_selection: Sequence[str], run_config: Mapping[str, Any]
) -> tuple[Plan, dict[str, dict[str, Any]]]:
    """A fresh run of the ops `op_selection` selects (Dagster's grammar, `cairn.selection.select_ops`); the
    others are not executed ("not selected"). An input of a selected op read from an op not selected takes its
    value from the run config, as Dagster's ``ops: {op: {inputs: {x: {value: 5}}}}`` (or ``{x: 5}``), else
    the run is refused with Dagster's config error. Returns the plan and those values (node -> input -> value)."""
    wiring = {node: {**graph.deps.get(node, {}), **graph.collects.get(node, {})} for node in graph.steps}
    chosen = {dynamic.node_of(s) for s in select_ops(Graph.of(graph.steps, wiring), op_selection)}
    given: dict[str, dict[str, Any]] = {}
    for node in graph.steps:
        reads = wiring[node] if node in chosen else {}
        for inp, (up, _) in reads.items():
            if dynamic.node_of(up) in chosen:
                continue
            configured = _op_entry(run_config, node).get("inputs") or {}
            if inp not in configured:
                raise ConfigError(f"Error in config for job {job_name}", [_missing_input(node, inp)])
            value = configured[inp]
            given.setdefault(node, {})[inp] = (
                value["value"] if isinstance(value, Mapping) and set(value) == {"value"} else value
            )
    steps = graph.concrete({}).steps
    to_run = tuple((s, "initial") for s in steps if dynamic.node_of(s) in chosen)
    not_run = tuple(s for s in steps if dynamic.node_of(s) not in chosen)
    return Plan(to_run, {}, {}, {}, not_run, steps=steps), given


def _op_entry(run_config: Mapping[str, Any], node: str) -> Mapping[str, Any]:
    """The run config's entry of a node (``outer.inner``: ``ops: {outer: {ops: {inner: ...}}}``)."""
    entry: Any = {"ops": run_config.get("ops") or {}}
    for part in node.split("."):
        entry = (entry.get("ops") or {}).get(part) if isinstance(entry, Mapping) else None
    return entry if isinstance(entry, Mapping) else {}


def _missing_input(node: str, inp: str) -> str:
    return (
        f'Error 1: Missing required config entry "ops" at the root. You must provide this value in your run config. '
        f"Example config for the missing entry: {{'ops': {{'{node}': {{'inputs': {{'{inp}': '<selector>'}}}}}}}} "
        f"(Cairn: input {inp!r} of {node} is read from an op not selected: select it too, op_selection="
        f"['*{node}'], or give the value in run config: ops.{node}.inputs.{inp}.value)"
    )


def _parent(job: JobDefinition, instance: Instance, run_id: str) -> RunRecord:
    parent = instance.get_run(run_id)
    if parent.job_name != job.name:
        raise ReexecutionError(
            f"Run {parent.run_id} is a run of job {parent.job_name!r}, not {job.name!r}: re-execute it with "
            f"the job it ran"
        )
    if parent.status is RunStatus.STARTED:
        raise ReexecutionError(f"Run {parent.run_id} is still running; wait for it to finish")
    return parent


def _plan(
    job: JobDefinition, instance: Instance, parent: RunRecord, options: ReexecutionOptions, versions: Mapping[str, str]
) -> Plan:
    graph = job_graph(job)
    chosen = parent.tags.get(OP_SELECTION_TAG)
    if chosen:  # a run of an op selection: its re-executions know only the selected ops, as Dagster
        graph = graph.subset({dynamic.node_of(s) for s in select_ops(graph.op_graph, json.loads(chosen))})
    io = instance.io_manager
    view = parent.view()
    if not view.not_selected:  # what the parent's own plan left out: from failure does not retry it (Dagster)
        from cairn.runstate import StepState

        out = StepState.NOT_EXECUTED
        outside = frozenset(s for s, r in parent.steps.items() if r.state is out and r.reason == "not selected")
        view = dataclasses.replace(view, not_selected=outside)
    the_plan = plan_checked(
        graph,
        view,
        dataclasses.replace(options.request(), current=dict(versions)),
        exists=io.exists,
        rerun_missing=options.rerun_missing,
        known_runs=instance.run_ids(),
        describe=io.describe,
    )
    unknown = sorted(set(options.step_env) - set(graph.steps) - set(the_plan.steps))
    if unknown:
        raise ReexecutionError(
            f"step_env names unknown step(s): {', '.join(unknown)}; the job's steps are {', '.join(graph.steps)}"
        )
    return the_plan
