"""What running a job returns, as Dagster defines it: `JobExecutionResult` (of `execute_job`; Cairn's older name
`ExecuteJobResult`) and `ExecuteInProcessResult` (of `execute_in_process`), with Dagster's events, run and
output API; and `execute_in_process(job, ...)`, the body of `JobDefinition.execute_in_process`.

Outputs are those THIS run produced, found from its ``STEP_OUTPUT`` events as Dagster finds them: a mapped
op or a dynamic output gives a dict of mapping key -> value for the keys this run executed; a step the run
reused from its parent (a re-execution) produced nothing here, so asking for its output is refused with
Dagster's error. `output_from_lineage` is Cairn's own reading of a run's whole output index (reused steps
included, loaded from the ancestor that produced them).

As in Dagster, `execute_job`'s result gives outputs only inside ``with execute_job(...) as result:``;
`execute_in_process`'s gives them at any time.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from cairn import dynamic
from cairn.errors import DagsterError, DagsterInvalidInvocationError, DagsterInvariantViolationError
from cairn.events import DagsterEvent, DagsterEventType, NodeHandle, StepFailureData
from cairn.status import RunStatus, StepStatus

if TYPE_CHECKING:
    from cairn.definitions import JobDefinition
    from cairn.instance import Instance, RunRecord
    from cairn.planner import Plan

DEFAULT_OUTPUT = "result"


class EventSource(Protocol):
    """Where a result's events come from (the run's `cairn.active.EventLog`)."""

    @property
    def events(self) -> list[DagsterEvent]: ...


OUTSIDE_WITH = (
    "In order to access output objects, the result of `execute_job` must be opened as a context manager: "
    "'with execute_job(...) as result:"
)


class ExecutionResult:
    """What a run did: its events, run record and outputs (Dagster's `ExecutionResult`), plus Cairn's view
    of its steps (`status`, `step_statuses`, `executed_steps`, `errors`, `plan`)."""

    def __init__(
        self,
        *,
        run_id: str,
        status: RunStatus,
        step_statuses: dict[str, StepStatus],
        executed_steps: list[str],
        instance: Instance,
        job: JobDefinition,
        plan: Plan,
        events: Sequence[DagsterEvent] | EventSource,
        errors: dict[str, str] | None = None,
        run_resources: Any = None,
    ) -> None:
        self._run_id, self.status, self.step_statuses = run_id, status, step_statuses
        self.executed_steps, self.instance, self.job, self.plan = executed_steps, instance, job, plan
        self._source = events
        self.errors = dict(errors or {})
        self._run_resources = run_resources  # the run's own resources (torn down), for execute_in_process

    # ----- the run ------------------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def job_def(self) -> JobDefinition:
        return self.job

    @functools.cached_property
    def dagster_run(self) -> RunRecord:
        """The run as the instance recorded it (read once: a finished run does not change)."""
        return self.instance.get_run(self._run_id)

    def get_run(self) -> RunRecord:
        return self.dagster_run

    @property
    def success(self) -> bool:
        return self.status is RunStatus.SUCCESS

    # ----- events -------------------------------------------------------------------------------------------
    @functools.cached_property
    def _events(self) -> list[DagsterEvent]:
        """The run's events, made from their stored form when first read (a run that is never asked costs none)."""
        source = self._source
        return list(source) if isinstance(source, Sequence) else list(source.events)

    @property
    def all_events(self) -> list[DagsterEvent]:
        return list(self._events)

    @property
    def all_node_events(self) -> list[DagsterEvent]:
        out: list[DagsterEvent] = []
        for node in _top_level_nodes(self.job):
            out += self.events_for_node(node)
        return out

    def filter_events(self, event_filter: Callable[[DagsterEvent], bool]) -> list[DagsterEvent]:
        return [e for e in self._events if event_filter(e)]

    def events_for_node(self, node_name: str) -> list[DagsterEvent]:
        """The step events of a node (of a graph node: of every node inside it; of a mapped op: every key's)."""
        handle = NodeHandle.from_string(node_name)
        return self.filter_events(
            lambda e: e.is_step_event and e.node_handle is not None and e.node_handle.is_or_descends_from(handle)
        )

    def is_node_success(self, node_str: str) -> bool:
        return any(e.is_step_success for e in self.events_for_node(node_str))

    def is_node_failed(self, node_str: str) -> bool:
        return any(e.is_step_failure for e in self.events_for_node(node_str))

    def is_node_skipped(self, node_str: str) -> bool:
        return any(e.is_step_skipped for e in self.events_for_node(node_str))

    def is_node_untouched(self, node_str: str) -> bool:
        return len(self.events_for_node(node_str)) == 0

    def get_step_success_events(self) -> list[DagsterEvent]:
        return self.filter_events(lambda e: e.is_step_success)

    def get_step_failure_events(self) -> list[DagsterEvent]:
        return self.filter_events(lambda e: e.is_step_failure)

    def get_step_skipped_events(self) -> list[DagsterEvent]:
        return self.filter_events(lambda e: e.is_step_skipped)

    def get_failed_step_keys(self) -> set[str]:
        failed = self.filter_events(lambda e: e.is_step_failure or e.is_resource_init_failure)
        return {e.step_key for e in failed if e.step_key}

    def _run_event(self, kind: DagsterEventType, name: str) -> DagsterEvent:
        found = self.filter_events(lambda e: e.event_type_value == kind.value)
        if not found:
            raise DagsterError(f"No event of type DagsterEventType.{name} found.")
        return found[0]

    def get_run_success_event(self) -> DagsterEvent:
        return self._run_event(DagsterEventType.RUN_SUCCESS, "PIPELINE_SUCCESS")

    def get_run_failure_event(self) -> DagsterEvent:
        return self._run_event(DagsterEventType.RUN_FAILURE, "PIPELINE_FAILURE")

    get_job_success_event = get_run_success_event
    get_job_failure_event = get_run_failure_event

    def _data_for_node(self, node_str: str, kind: DagsterEventType) -> list[Any]:
        return [e.event_specific_data for e in self.events_for_node(node_str) if e.event_type_value == kind.value]

    def asset_materializations_for_node(self, node_name: str) -> list[Any]:
        """Cairn's ops materialize no assets: always empty (Dagster's method, for tests that ask)."""
        return self._data_for_node(node_name, DagsterEventType.ASSET_MATERIALIZATION)

    def asset_observations_for_node(self, node_name: str) -> list[Any]:
        return self._data_for_node(node_name, DagsterEventType.ASSET_OBSERVATION)

    def expectation_results_for_node(self, node_str: str) -> list[Any]:
        return self._data_for_node(node_str, DagsterEventType.STEP_EXPECTATION_RESULT)

    def get_asset_materialization_events(self) -> list[DagsterEvent]:
        return self.filter_events(lambda e: e.is_step_materialization)

    def get_asset_observation_events(self) -> list[DagsterEvent]:
        return self.filter_events(lambda e: e.is_asset_observation)

    def compute_events_for_handle(self, handle: NodeHandle) -> list[DagsterEvent]:
        return self.events_for_node(str(handle))

    def retry_attempts_for_node(self, node_str: str) -> int:
        return sum(1 for e in self.events_for_node(node_str) if e.is_step_restarted)

    def failure_data_for_node(self, node_str: str) -> StepFailureData | None:
        return next((e.step_failure_data for e in self.events_for_node(node_str) if e.is_step_failure), None)

    # ----- outputs ------------------------------------------------------------------------------------------
    def output_for_node(self, node_str: str, output_name: str = DEFAULT_OUTPUT) -> Any:
        """The value of output `output_name` of node `node_str` in this run (a mapped op, a dynamic output:
        a dict of mapping key -> value, of the keys this run executed). Cairn also reads one instance of a
        mapped op by its step key, ``output_for_node("process[shard_1]")``."""
        node, output = self._resolve(node_str, output_name)
        return self._get_output(node, output)

    def output_value(self, output_name: str = DEFAULT_OUTPUT) -> Any:
        """A top-level output of the job (a job made from a graph with outputs)."""
        mappings: Mapping[str, tuple[str, str]] = getattr(self.job, "output_mappings", None) or {}
        if not mappings:
            raise DagsterInvariantViolationError(
                f"Attempted to retrieve top-level outputs for '{self.job.name}', which has no outputs."
            )
        if output_name not in mappings:
            raise DagsterInvariantViolationError(
                f"Could not find top-level output '{output_name}' in '{self.job.name}'."
            )
        node, output = mappings[output_name]
        return self._get_output(node, output)

    def _resolve(self, node_str: str, output_name: str) -> tuple[str, str]:
        """The op node and output a node's output comes from (a graph node's: through its output mapping)."""
        jd = self.job.nodes.get(dynamic.node_of(node_str))
        graphs: Mapping[str, Any] = getattr(self.job, "graphs", None) or {}
        if jd is None and node_str in graphs:
            outputs: Mapping[str, tuple[str, str]] = graphs[node_str].outputs
            if output_name not in outputs:
                raise DagsterInvariantViolationError(f"{node_str} has no output named {output_name}.")
            return outputs[output_name]
        if jd is None:
            raise DagsterInvariantViolationError(f"{self.job.name} has no op named {node_str}.")
        if output_name not in jd.op.outs:
            raise DagsterInvariantViolationError(f"{node_str} has no output named {output_name}.")
        return node_str, output_name

    def _get_output(self, node: str, output: str) -> Any:
        raise NotImplementedError

    def _outputs_of(self, node: str, output: str) -> tuple[bool, Any]:
        """(found, value) from this run's STEP_OUTPUT events of `node` (a step key: that step only)."""
        exact = node if "[" in node else None
        run = self.dagster_run
        found, single, per_key = False, None, {}
        for e in self._events:
            if not e.is_successful_output or e.step_key is None:
                continue
            data = e.step_output_data
            if data.output_name != output or (e.step_key != exact if exact else dynamic.node_of(e.step_key) != node):
                continue
            value = self._load(run, e.step_key, output, data.mapping_key)
            key = data.mapping_key or (None if exact else dynamic.split_step(e.step_key)[1])
            found = True
            if key is None:
                single = value
                continue
            per_key[key] = value
        return found, per_key or single

    def _load(self, run: RunRecord, step: str, output: str, mapping_key: str | None) -> Any:
        stored = f"{output}[{mapping_key}]" if mapping_key is not None else output
        ref = run.outputs.get((step, stored))
        if ref is None:  # stored by an attempt that failed later, and retried without it
            raise DagsterInvariantViolationError(f"run {run.run_id} has no stored output {stored!r} of step {step!r}")
        value = self.instance.io_manager.load(ref.key, run.formats.get((step, stored), "pickle"))
        return self._managed(run, value)

    def _managed(self, run: RunRecord, value: Any) -> Any:
        """A value a job IO manager handled is loaded by it (its resource initialised for the load, as Dagster
        re-initialises resources to read a result's outputs); any other value is the value."""
        from cairn.resources import resolve_stored

        return resolve_stored(
            self.job,
            value,
            run.run_config,
            self.instance,
            self._kept_resources(),
            run_id=run.run_id,
            input_name="dummy_input_name",
        )

    def _kept_resources(self) -> Any:
        """The run's own resources to read its outputs with (None: initialise them again, as Dagster does for
        `execute_job`'s result)."""
        return None

    def output_from_lineage(self, node: str, output_name: str = DEFAULT_OUTPUT) -> Any:
        """Cairn's own: the value in this run's output index, loaded from whichever run produced it (this
        run, or the ancestor a re-execution reuses it from). A dynamic output (``("split", "items")``) and a
        mapped op named without a key give a dict of every key of the run's lineage."""
        run = self.dagster_run
        jd = self.job.nodes.get(node)
        if jd is not None and output_name in jd.op.dynamic_outs:
            ks = _keys_or_raise(run, (node, output_name), f"{node}.{output_name}")
            return {k: self._lineage_load(run, node, f"{output_name}[{k}]") for k in ks}
        if jd is not None and jd.mapped is not None:
            ks = _keys_or_raise(run, jd.mapped, f"mapped op {node}")
            return {k: self._lineage_load(run, dynamic.step_key(node, k), output_name) for k in ks}
        return self._lineage_load(run, node, output_name)

    def _lineage_load(self, run: RunRecord, step: str, output: str) -> Any:
        ref = run.outputs.get((step, output))
        if ref is None:
            raise DagsterInvariantViolationError(
                f"run {run.run_id} has no output {output!r} of step {step!r} "
                f"(step status {run.step_statuses.get(step, 'unknown')})"
            )
        return self._managed(run, self.instance.io_manager.load(ref.key, run.formats.get((step, output), "pickle")))


def _keys_or_raise(run: RunRecord, dim: tuple[str, str], what: str) -> tuple[str, ...]:
    ks = run.keys.get(dim)
    if ks is None:
        raise DagsterInvariantViolationError(
            f"run {run.run_id} has no mapping keys of {what}: its dynamic step {dim[0]} did not emit keys"
        )
    return ks


def _top_level_nodes(job: JobDefinition) -> list[str]:
    return list(dict.fromkeys(name.split(".")[0] for name in job.nodes))


def _describe_node(job: JobDefinition, node: str) -> str:
    return f"op '{node}'" if node in job.nodes else f"graph '{node}'"


class JobExecutionResult(ExecutionResult):
    """The result of `execute_job` (Dagster's `JobExecutionResult`): events and run at any time; outputs only
    inside ``with execute_job(...) as result:``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._open = False

    def __enter__(self) -> JobExecutionResult:
        self._open = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._open = False

    def _get_output(self, node: str, output: str) -> Any:
        if not self._open:
            raise DagsterInvariantViolationError(OUTSIDE_WITH)
        found, value = self._outputs_of(node, output)
        if not found:
            raise DagsterInvariantViolationError(
                f"Did not find result {output} in {_describe_node(self.job, dynamic.node_of(node))}"
            )
        return value


#: Cairn's earlier name of `execute_job`'s result.
ExecuteJobResult = JobExecutionResult


class ExecuteInProcessResult(ExecutionResult):
    """The result of `execute_in_process` (Dagster's `ExecuteInProcessResult`): outputs at any time, read with
    the run's own resources (an in-memory IO manager's values too, as Dagster captures them)."""

    def _kept_resources(self) -> Any:
        return self._run_resources

    def _get_output(self, node: str, output: str) -> Any:
        found, value = self._outputs_of(node, output)
        if not found:
            raise DagsterInvariantViolationError(f"No outputs found for output '{output}' from node '{node}'.")
        return value


def execute_in_process(
    job: JobDefinition,
    run_config: Mapping[str, Any] | None = None,
    instance: Instance | None = None,
    partition_key: str | None = None,
    raise_on_error: bool = True,
    op_selection: Sequence[str] | None = None,
    asset_selection: Sequence[Any] | None = None,
    run_id: str | None = None,
    input_values: Mapping[str, object] | None = None,
    tags: Mapping[str, str] | None = None,
    resources: Mapping[str, object] | None = None,
) -> ExecuteInProcessResult:
    """Dagster's `JobDefinition.execute_in_process`: run `job` in this process, on `instance` (default: an
    ephemeral one, in memory), raising the first op error unless `raise_on_error=False`. `resources`
    replace the job's resources of the same keys; `partition_key` becomes the tag ``dagster/partition``."""
    from cairn.execution import run_job
    from cairn.instance import Instance

    if input_values:
        with_values = getattr(job, "with_input_values", None)  # a job made from a graph with inputs takes them
        if with_values is None:
            raise DagsterInvalidInvocationError(
                f"execute_in_process(input_values=...): job {job.name} has no top-level inputs; Cairn's jobs take "
                f"their values from ops (pass constants through config)"
            )
        job = with_values(input_values)
    run_tags = {**(tags or {}), **({"dagster/partition": partition_key} if partition_key is not None else {})}
    outcome = run_job(
        _with_resources(job, resources),
        instance or Instance.ephemeral(),
        run_config,
        run_tags,
        raise_on_error,
        op_selection,
        None,
        asset_selection,
        run_id=run_id,
    )
    return ExecuteInProcessResult(**outcome)


def _with_resources(job: JobDefinition, resources: Mapping[str, object] | None) -> JobDefinition:
    if not resources:
        return job
    replaced = copy.copy(job)
    replaced.resource_defs = {**(getattr(job, "resource_defs", None) or {}), **resources}
    return replaced
