"""Cairn: pipelines of ops with non-destructive re-execution, in-process or on Kubernetes.

The authoring and execution API has Dagster's names, so that porting a job is changing imports
(``import cairn.dagster as dagster`` in place of ``import dagster``: the module of Dagster's names only)::

    from cairn import In, Out, Output, execute_job, in_process_executor, job, op, reconstructable
    from cairn import DagsterInstance, ReexecutionOptions
    from cairn import DynamicOut, DynamicOutput   # fan-out: split().map(process).collect()
    from cairn import Backoff, Failure, Jitter, RetryPolicy, RetryRequested   # @op(retry_policy=RetryPolicy(...))
"""

from cairn.definitions import (
    DynamicOut,
    DynamicOutput,
    ExecutorDefinition,
    Field,
    In,
    JobDefinition,
    OpContext,
    OpDefinition,
    Out,
    Output,
    in_process_executor,
    job,
    op,
    reconstructable,
)
from cairn.errors import (
    CairnError,
    ConfigError,
    DagsterError,
    DagsterExecutionInterruptedError,
    DagsterExecutionStepExecutionError,
    DagsterExecutionStepNotFoundError,
    DagsterInvalidConfigError,
    DagsterInvalidDefinitionError,
    DagsterInvalidInvocationError,
    DagsterInvalidSubsetError,
    DagsterInvariantViolationError,
    DagsterResourceFunctionError,
    DagsterRunNotFoundError,
    DagsterUnknownResourceError,
    DagsterUserCodeExecutionError,
    DefinitionError,
    MissingOutputsError,
    ReexecutionError,
    RunNotFoundError,
    StepSelectionError,
)
from cairn.execution import Clock, ExecuteJobResult, ReexecutionOptions, StepExecutionError, execute_job
from cairn.instance import Instance, RunRecord, StepRecord
from cairn.planner import Mode
from cairn.retries import Backoff, Failure, Jitter, RetryPolicy, RetryRequested
from cairn.status import RunStatus, StepStatus

#: Dagster's name for the instance, so that `DagsterInstance.get()`-style code ports by import.
DagsterInstance = Instance

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "CairnError",
    "Clock",
    "ConfigError",
    "DagsterError",
    "DagsterExecutionInterruptedError",
    "DagsterExecutionStepExecutionError",
    "DagsterExecutionStepNotFoundError",
    "DagsterInstance",
    "DagsterInvalidConfigError",
    "DagsterInvalidDefinitionError",
    "DagsterInvalidInvocationError",
    "DagsterInvalidSubsetError",
    "DagsterInvariantViolationError",
    "DagsterResourceFunctionError",
    "DagsterRunNotFoundError",
    "DagsterUnknownResourceError",
    "DagsterUserCodeExecutionError",
    "DefinitionError",
    "DynamicOut",
    "DynamicOutput",
    "ExecuteJobResult",
    "ExecutorDefinition",
    "Failure",
    "Field",
    "In",
    "Instance",
    "Jitter",
    "JobDefinition",
    "MissingOutputsError",
    "Mode",
    "OpContext",
    "OpDefinition",
    "Out",
    "Output",
    "ReexecutionError",
    "ReexecutionOptions",
    "RetryPolicy",
    "RetryRequested",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "StepExecutionError",
    "StepRecord",
    "StepSelectionError",
    "StepStatus",
    "execute_job",
    "in_process_executor",
    "job",
    "op",
    "reconstructable",
]
