"""Dagster's public names for what Cairn has: a porting user writes ``import cairn.dagster as dagster`` (or
``as dg``, or ``from cairn.dagster import op, job, ...``) in place of ``import dagster``.

Every name here is one of Dagster 1.13's public names (``dagster/__init__.py``), bound to Cairn's
implementation of the same thing with Dagster's signature, defaults, behaviour and error classes
(tests/unit/test_dagster_module.py checks the list against Dagster's). Cairn's own names (``Instance``,
``Mode``, ``CairnError``...) are in ``cairn``, not here. A Dagster name Cairn does not have raises
AttributeError saying so; the README's "Porting from Dagster" lists what is ported and every deliberate
difference.
"""

import typing as _typing

from cairn.context import (
    OpExecutionContext,
)
from cairn.definitions import (
    Array,
    BoolSource,
    Config,
    DagsterTypeCheckDidNotPass,
    DynamicOut,
    DynamicOutput,
    ExecutorDefinition,
    Field,
    In,
    IntSource,
    JobDefinition,
    Noneable,
    Nothing,
    OpDefinition,
    Out,
    Output,
    PendingNodeInvocation,
    Permissive,
    RunConfig,
    Selector,
    Shape,
    StringSource,
    in_process_executor,
    job,
    multi_or_in_process_executor,
    multiprocess_executor,
    op,
    reconstructable,
)
from cairn.errors import (
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
)
from cairn.events import (
    DagsterEvent,
    DagsterEventType,
    EventLogEntry,
    EventLogRecord,
    EventRecordsResult,
    MetadataValue,
)
from cairn.execution import (
    ReexecutionOptions,
    execute_job,
)
from cairn.graphs import (
    GraphDefinition,
    GraphIn,
    GraphOut,
    graph,
)
from cairn.hooks import (
    HookContext,
    HookDefinition,
    build_hook_context,
    failure_hook,
    success_hook,
)
from cairn.instance import (
    DagsterInstance,
    DagsterRun,
    RunsFilter,
    instance_for_test,
)
from cairn.resources import (
    ConfigurableIOManager,
    ConfigurableIOManagerFactory,
    ConfigurableResource,
    EnvVar,
    FilesystemIOManager,
    InitResourceContext,
    InMemoryIOManager,
    InputContext,
    IOManager,
    IOManagerDefinition,
    OutputContext,
    ResourceDefinition,
    ResourceParam,
    build_init_resource_context,
    build_input_context,
    build_op_context,
    build_output_context,
    build_resources,
    fs_io_manager,
    io_manager,
    mem_io_manager,
    resource,
)
from cairn.results import (
    ExecuteInProcessResult,
    JobExecutionResult,
)
from cairn.retries import (
    Backoff,
    Failure,
    Jitter,
    RetryPolicy,
    RetryRequested,
)
from cairn.status import (
    DagsterRunStatus,
)

__all__ = [
    "Array",
    "Backoff",
    "BoolSource",
    "Config",
    "ConfigurableIOManager",
    "ConfigurableIOManagerFactory",
    "ConfigurableResource",
    "DagsterError",
    "DagsterEvent",
    "DagsterEventType",
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
    "DagsterRun",
    "DagsterRunNotFoundError",
    "DagsterRunStatus",
    "DagsterTypeCheckDidNotPass",
    "DagsterUnknownResourceError",
    "DagsterUserCodeExecutionError",
    "DynamicOut",
    "DynamicOutput",
    "EnvVar",
    "EventLogEntry",
    "EventLogRecord",
    "EventRecordsResult",
    "ExecuteInProcessResult",
    "ExecutorDefinition",
    "Failure",
    "Field",
    "FilesystemIOManager",
    "GraphDefinition",
    "GraphIn",
    "GraphOut",
    "HookContext",
    "HookDefinition",
    "IOManager",
    "IOManagerDefinition",
    "In",
    "InMemoryIOManager",
    "InitResourceContext",
    "InputContext",
    "IntSource",
    "Jitter",
    "JobDefinition",
    "JobExecutionResult",
    "MetadataValue",
    "Noneable",
    "Nothing",
    "OpDefinition",
    "OpExecutionContext",
    "Out",
    "Output",
    "OutputContext",
    "PendingNodeInvocation",
    "Permissive",
    "ReexecutionOptions",
    "ResourceDefinition",
    "ResourceParam",
    "RetryPolicy",
    "RetryRequested",
    "RunConfig",
    "RunsFilter",
    "Selector",
    "Shape",
    "StringSource",
    "build_hook_context",
    "build_init_resource_context",
    "build_input_context",
    "build_op_context",
    "build_output_context",
    "build_resources",
    "execute_job",
    "failure_hook",
    "fs_io_manager",
    "graph",
    "in_process_executor",
    "instance_for_test",
    "io_manager",
    "job",
    "mem_io_manager",
    "multi_or_in_process_executor",
    "multiprocess_executor",
    "op",
    "reconstructable",
    "resource",
    "success_hook",
]

#: What Cairn ports of Dagster, for the message of a name it does not have.
_PORTED = "ops, graphs, jobs, their config, resources, IO managers, hooks, retries, execution and re-execution"


def _not_ported(name: str) -> _typing.NoReturn:
    """A Dagster name Cairn does not have: say so (``dagster.asset`` -> AttributeError with the reason)."""
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    raise AttributeError(
        f"module {__name__!r} has no attribute {name!r}: Cairn has Dagster's public names for {_PORTED}; "
        f"{name!r} is not one of them (the README's 'Porting from Dagster' lists the names and the differences)"
    )


if not _typing.TYPE_CHECKING:  # a type checker keeps reporting names this module does not have
    __getattr__ = _not_ported
