"""What an in-process run starts from: its options checked, its plan made, its config and tags settled.

The first stage of `cairn.execution.execute_job` (plan -> active execution -> the loop -> one step's
body): `prepare` validates a re-execution against its parent, plans it (`cairn.planner`), computes the
step versions the run records and returns a `Launch`. Nothing is written to the run store here.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn.definitions import JobDefinition
from cairn.errors import ReexecutionError
from cairn.instance import Instance, RunRecord
from cairn.planner import Mode, Plan, Request, initial_plan, plan_checked
from cairn.runstate import RunPhase
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
        run = instance.get_run(run_id)
        if not RunPhase.of(run.status).can_resume_from_failure:
            raise ReexecutionError("Cannot reexecute from failure a run that is not failed or canceled")
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


def prepare(
    job: JobDefinition,
    instance: Instance,
    run_config: Mapping[str, Any] | None,
    options: ReexecutionOptions | None,
    tags: Mapping[str, str] | None,
) -> Launch:
    """A first run executes every step; a re-execution runs what its options select of its parent
    (whose run config it takes unless given one). Raises ReexecutionError, StepSelectionError, ConfigError."""
    run_tags = {**job.tags, **(tags or {})}
    if options is None:
        versions = job.step_versions(run_config)
        config = dict(run_config or {})
        job.validate_run_config(config)
        return Launch(str(uuid.uuid4()), config, run_tags, initial_plan(job_graph(job)), versions)
    parent = _parent(job, instance, options.parent_run_id)
    if run_config is None:
        run_config = parent.run_config
    versions = job.step_versions(run_config)  # what Stale compares, and what this run records
    the_plan = _plan(job, instance, parent, options, versions)
    assert options.mode is not None
    run_tags.update({TAG_PARENT: parent.run_id, TAG_ROOT: parent.root_run_id, TAG_MODE: options.mode.value})
    config = dict(run_config or {})
    job.validate_run_config(config)
    return Launch(str(uuid.uuid4()), config, run_tags, the_plan, versions, parent, options.mode.value, options.step_env)


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
    io = instance.io_manager
    the_plan = plan_checked(
        graph,
        parent.view(),
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
