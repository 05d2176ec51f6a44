"""A run's event log as Dagster defines it: `DagsterEventType`, `DagsterEvent` and the data each event carries.

The in-process executor (`cairn.active`) records one `DagsterEvent` per thing that happens, in order:
``RUN_START``; per step ``STEP_START`` (``STEP_RESTARTED`` for a retry), ``LOADED_INPUT`` and ``STEP_INPUT``
per input, ``STEP_OUTPUT`` and ``HANDLED_OUTPUT`` per output, then ``STEP_SUCCESS``, ``STEP_FAILURE`` or
``STEP_UP_FOR_RETRY``; ``STEP_SKIPPED`` for a step whose input was not produced; ``RUN_SUCCESS``,
``RUN_FAILURE`` or ``RUN_CANCELED``. Messages are Dagster's. Dagster's engine events (resource init, log
capture, executor start) are not recorded: Cairn has no such phases in-process.

The run store keeps them (table ``events``): `pack` turns an event into a row of plain values and `unpack`
reads it back, with the same type, step key, data and message.
"""

from __future__ import annotations

import enum
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cairn import dynamic


class DagsterEventType(str, enum.Enum):  # noqa: UP042 (str() as Dagster's: DagsterEventType.X)
    """The types of events of a run, with Dagster's names and stored values (a run's own are PIPELINE_*)."""

    STEP_OUTPUT = "STEP_OUTPUT"
    STEP_INPUT = "STEP_INPUT"
    STEP_FAILURE = "STEP_FAILURE"
    STEP_START = "STEP_START"
    STEP_SUCCESS = "STEP_SUCCESS"
    STEP_SKIPPED = "STEP_SKIPPED"
    STEP_WORKER_STARTING = "STEP_WORKER_STARTING"
    STEP_WORKER_STARTED = "STEP_WORKER_STARTED"
    RESOURCE_INIT_STARTED = "RESOURCE_INIT_STARTED"
    RESOURCE_INIT_SUCCESS = "RESOURCE_INIT_SUCCESS"
    RESOURCE_INIT_FAILURE = "RESOURCE_INIT_FAILURE"
    STEP_UP_FOR_RETRY = "STEP_UP_FOR_RETRY"
    STEP_RESTARTED = "STEP_RESTARTED"
    ASSET_MATERIALIZATION = "ASSET_MATERIALIZATION"
    ASSET_MATERIALIZATION_PLANNED = "ASSET_MATERIALIZATION_PLANNED"
    ASSET_FAILED_TO_MATERIALIZE = "ASSET_FAILED_TO_MATERIALIZE"
    ASSET_OBSERVATION = "ASSET_OBSERVATION"
    STEP_EXPECTATION_RESULT = "STEP_EXPECTATION_RESULT"
    ASSET_CHECK_EVALUATION_PLANNED = "ASSET_CHECK_EVALUATION_PLANNED"
    ASSET_CHECK_EVALUATION = "ASSET_CHECK_EVALUATION"
    ASSET_HEALTH_CHANGED = "ASSET_HEALTH_CHANGED"
    ASSET_WIPED = "ASSET_WIPED"
    RUN_ENQUEUED = "PIPELINE_ENQUEUED"
    RUN_DEQUEUED = "PIPELINE_DEQUEUED"
    RUN_STARTING = "PIPELINE_STARTING"
    RUN_START = "PIPELINE_START"
    RUN_SUCCESS = "PIPELINE_SUCCESS"
    RUN_FAILURE = "PIPELINE_FAILURE"
    RUN_CANCELING = "PIPELINE_CANCELING"
    RUN_CANCELED = "PIPELINE_CANCELED"
    RUN_SUSPENDED = "RUN_SUSPENDED"
    RUN_RESUMED = "RUN_RESUMED"
    PIPELINE_ENQUEUED = "PIPELINE_ENQUEUED"
    PIPELINE_DEQUEUED = "PIPELINE_DEQUEUED"
    PIPELINE_STARTING = "PIPELINE_STARTING"
    PIPELINE_START = "PIPELINE_START"
    PIPELINE_SUCCESS = "PIPELINE_SUCCESS"
    PIPELINE_FAILURE = "PIPELINE_FAILURE"
    PIPELINE_CANCELING = "PIPELINE_CANCELING"
    PIPELINE_CANCELED = "PIPELINE_CANCELED"
    OBJECT_STORE_OPERATION = "OBJECT_STORE_OPERATION"
    ASSET_STORE_OPERATION = "ASSET_STORE_OPERATION"
    LOADED_INPUT = "LOADED_INPUT"
    HANDLED_OUTPUT = "HANDLED_OUTPUT"
    ENGINE_EVENT = "ENGINE_EVENT"
    HOOK_COMPLETED = "HOOK_COMPLETED"
    HOOK_ERRORED = "HOOK_ERRORED"
    HOOK_SKIPPED = "HOOK_SKIPPED"
    ALERT_START = "ALERT_START"
    ALERT_SUCCESS = "ALERT_SUCCESS"
    ALERT_FAILURE = "ALERT_FAILURE"
    LOGS_CAPTURED = "LOGS_CAPTURED"
    FRESHNESS_STATE_EVALUATION = "FRESHNESS_STATE_EVALUATION"
    FRESHNESS_STATE_CHANGE = "FRESHNESS_STATE_CHANGE"
    CODE_LOCATION_UPDATED = "CODE_LOCATION_UPDATED"


T = DagsterEventType
STEP_EVENTS = frozenset(
    {
        T.STEP_INPUT,
        T.STEP_START,
        T.STEP_OUTPUT,
        T.STEP_FAILURE,
        T.STEP_SUCCESS,
        T.STEP_SKIPPED,
        T.ASSET_MATERIALIZATION,
        T.ASSET_OBSERVATION,
        T.STEP_EXPECTATION_RESULT,
        T.ASSET_CHECK_EVALUATION,
        T.OBJECT_STORE_OPERATION,
        T.HANDLED_OUTPUT,
        T.LOADED_INPUT,
        T.STEP_RESTARTED,
        T.STEP_UP_FOR_RETRY,
    }
)
RUN_EVENTS = frozenset(
    {T.RUN_ENQUEUED, T.RUN_DEQUEUED, T.RUN_STARTING, T.RUN_START, T.RUN_SUCCESS, T.RUN_FAILURE}
    | {T.RUN_CANCELING, T.RUN_CANCELED, T.RUN_SUSPENDED, T.RUN_RESUMED}
)
HOOK_EVENTS = frozenset({T.HOOK_COMPLETED, T.HOOK_ERRORED, T.HOOK_SKIPPED})
FAILURE_EVENTS = frozenset({T.RUN_FAILURE, T.STEP_FAILURE, T.RUN_CANCELED})


class ErrorSource(enum.Enum):
    """Where a step's error came from (Dagster's names)."""

    USER_CODE_ERROR = "USER_CODE_ERROR"
    FRAMEWORK_ERROR = "FRAMEWORK_ERROR"
    INTERRUPT = "INTERRUPT"
    UNEXPECTED_ERROR = "UNEXPECTED_ERROR"


@dataclass(frozen=True)
class SerializableErrorInfo:
    """An exception as an event keeps it: ``"ValueError: nope\\n"``, its stack lines, class name and cause."""

    message: str
    stack: list[str]
    cls_name: str | None
    cause: SerializableErrorInfo | None = None
    context: SerializableErrorInfo | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> SerializableErrorInfo:
        cause = exc.__cause__
        return cls(
            message="".join(traceback.format_exception_only(type(exc), exc)),
            stack=traceback.format_tb(exc.__traceback__),
            cls_name=type(exc).__name__,
            cause=cls.from_exception(cause) if cause is not None and cause is not exc else None,
        )

    def to_string(self) -> str:
        text = self.message.rstrip("\n") + "\n\n" + "".join(self.stack)
        if self.cause is not None:
            text += "\nThe above exception was caused by the following exception:\n" + self.cause.to_string()
        return text


@dataclass(frozen=True)
class MetadataValue:
    """A metadata entry's value as Dagster normalizes it: the raw value is ``.value`` (Dagster's
    ``TextMetadataValue("data").value == "data"``)."""

    value: Any

    @property
    def text(self) -> str:
        return str(self.value)


def normalize_metadata(metadata: Mapping[str, Any] | None) -> dict[str, MetadataValue]:
    """Each value of `metadata` as a `MetadataValue` (one already is stays)."""
    return {k: v if isinstance(v, MetadataValue) else MetadataValue(v) for k, v in (metadata or {}).items()}


@dataclass(frozen=True)
class UserFailureData:
    """What a `Failure` raised by an op said: its label, description and metadata."""

    label: str
    description: str | None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepOutputHandle:
    """One output of one step (of one key of a dynamic output)."""

    step_key: str
    output_name: str = "result"
    mapping_key: str | None = None


@dataclass(frozen=True)
class StepOutputData:
    step_output_handle: StepOutputHandle
    type_check_data: Any = None
    version: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def output_name(self) -> str:
        return self.step_output_handle.output_name

    @property
    def mapping_key(self) -> str | None:
        return self.step_output_handle.mapping_key


@dataclass(frozen=True)
class StepInputData:
    input_name: str
    type_check_data: Any = None


@dataclass(frozen=True)
class LoadedInputData:
    input_name: str
    manager_key: str
    upstream_output_name: str | None = None
    upstream_step_key: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HandledOutputData:
    output_name: str
    manager_key: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepSuccessData:
    duration_ms: float


@dataclass(frozen=True)
class StepFailureData:
    error: SerializableErrorInfo | None
    user_failure_data: UserFailureData | None
    error_source: ErrorSource = ErrorSource.FRAMEWORK_ERROR

    @property
    def error_display_string(self) -> str:
        if self.error is None:
            return ""
        shown = (
            self.error.cause if self.error_source is ErrorSource.USER_CODE_ERROR and self.error.cause else self.error
        )
        return shown.to_string()


@dataclass(frozen=True)
class StepRetryData:
    error: SerializableErrorInfo | None
    seconds_to_wait: float | None = None


@dataclass(frozen=True)
class JobFailureData:
    error: SerializableErrorInfo | None
    failure_reason: str | None = None  # Dagster's RunFailureReason value: STEP_FAILURE, RUN_EXCEPTION
    first_step_failure_event: DagsterEvent | None = None
    failed_steps: tuple[str, ...] = ()  # the steps that failed, in the order they failed


@dataclass(frozen=True)
class HookData:
    """A hook's event: which hook (HOOK_COMPLETED, HOOK_SKIPPED; HOOK_ERRORED with its error)."""

    hook_name: str
    error: SerializableErrorInfo | None = None


@dataclass(frozen=True)
class NodeHandle:
    """A node's place in the job: its name and the graph node it is in (``outer.inner``)."""

    name: str
    parent: NodeHandle | None = None

    @classmethod
    def from_string(cls, path: str) -> NodeHandle:
        handle: NodeHandle | None = None
        for part in path.split("."):
            handle = cls(part, handle)
        assert handle is not None
        return handle

    @property
    def path(self) -> list[str]:
        return [*(self.parent.path if self.parent else []), self.name]

    def __str__(self) -> str:
        return ".".join(self.path)

    def is_or_descends_from(self, other: NodeHandle) -> bool:
        mine, theirs = self.path, other.path
        return mine[: len(theirs)] == theirs


class DagsterEvent:
    """One event of a run: its type, job, step and the data of its kind (Dagster's `DagsterEvent`)."""

    __slots__ = ("event_specific_data", "event_type_value", "job_name", "logging_tags", "pid", "step_key")

    def __init__(
        self,
        event_type_value: str,
        job_name: str,
        step_key: str | None = None,
        event_specific_data: Any = None,
        pid: int | None = None,
        logging_tags: Mapping[str, str] | None = None,
    ) -> None:
        self.event_type_value = event_type_value
        self.job_name = job_name
        self.step_key = step_key
        self.event_specific_data = event_specific_data
        self.pid = pid
        self.logging_tags = logging_tags or {}

    def __repr__(self) -> str:
        return f"DagsterEvent({self.event_type_value}, step_key={self.step_key!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DagsterEvent):
            return NotImplemented
        return (self.event_type_value, self.job_name, self.step_key, self.event_specific_data) == (
            other.event_type_value,
            other.job_name,
            other.step_key,
            other.event_specific_data,
        )

    def __hash__(self) -> int:  # hashable as Dagster's (a NamedTuple); equal events hash equal
        return hash((self.event_type_value, self.job_name, self.step_key))

    @property
    def event_type(self) -> DagsterEventType:
        return DagsterEventType(self.event_type_value)

    @property
    def node_handle(self) -> NodeHandle | None:
        return NodeHandle.from_string(dynamic.node_of(self.step_key)) if self.step_key else None

    @property
    def node_name(self) -> str:
        handle = self.node_handle
        if handle is None:
            raise AttributeError(f"{self.event_type_value} event has no node")
        return handle.name

    @property
    def step_kind_value(self) -> str | None:
        return "COMPUTE" if self.step_key else None

    @property
    def message(self) -> str:
        return describe(self)

    def _is(self, kind: DagsterEventType) -> bool:
        return self.event_type_value == kind.value

    is_step_event = property(lambda self: self.event_type in STEP_EVENTS)
    is_hook_event = property(lambda self: self.event_type in HOOK_EVENTS)
    is_alert_event = property(lambda self: False)
    is_step_success = property(lambda self: self._is(T.STEP_SUCCESS))
    is_successful_output = property(lambda self: self._is(T.STEP_OUTPUT))
    is_step_start = property(lambda self: self._is(T.STEP_START))
    is_step_failure = property(lambda self: self._is(T.STEP_FAILURE))
    is_resource_init_failure = property(lambda self: self._is(T.RESOURCE_INIT_FAILURE))
    is_step_skipped = property(lambda self: self._is(T.STEP_SKIPPED))
    is_step_up_for_retry = property(lambda self: self._is(T.STEP_UP_FOR_RETRY))
    is_step_restarted = property(lambda self: self._is(T.STEP_RESTARTED))
    is_job_success = property(lambda self: self._is(T.RUN_SUCCESS))
    is_job_failure = property(lambda self: self._is(T.RUN_FAILURE))
    is_run_failure = property(lambda self: self._is(T.RUN_FAILURE))
    is_failure = property(lambda self: self.event_type in FAILURE_EVENTS)
    is_job_event = property(lambda self: self.event_type in RUN_EVENTS)
    is_engine_event = property(lambda self: self._is(T.ENGINE_EVENT))
    is_handled_output = property(lambda self: self._is(T.HANDLED_OUTPUT))
    is_loaded_input = property(lambda self: self._is(T.LOADED_INPUT))
    is_step_materialization = property(lambda self: self._is(T.ASSET_MATERIALIZATION))
    is_expectation_result = property(lambda self: self._is(T.STEP_EXPECTATION_RESULT))
    is_asset_observation = property(lambda self: self._is(T.ASSET_OBSERVATION))
    is_asset_materialization_planned = property(lambda self: self._is(T.ASSET_MATERIALIZATION_PLANNED))

    def _data(self, kind: DagsterEventType, method: str) -> Any:
        if not self._is(kind):
            raise AssertionError(f"{method} only callable when event_type is {kind.value}, called on {self.event_type}")
        return self.event_specific_data

    @property
    def step_output_data(self) -> StepOutputData:
        return self._data(T.STEP_OUTPUT, "step_output_data")  # type: ignore[no-any-return]

    @property
    def step_input_data(self) -> StepInputData:
        return self._data(T.STEP_INPUT, "step_input_data")  # type: ignore[no-any-return]

    @property
    def step_success_data(self) -> StepSuccessData:
        return self._data(T.STEP_SUCCESS, "step_success_data")  # type: ignore[no-any-return]

    @property
    def step_failure_data(self) -> StepFailureData:
        return self._data(T.STEP_FAILURE, "step_failure_data")  # type: ignore[no-any-return]

    @property
    def step_retry_data(self) -> StepRetryData:
        return self._data(T.STEP_UP_FOR_RETRY, "step_retry_data")  # type: ignore[no-any-return]


# ----- Dagster's messages --------------------------------------------------------------------------------
def _run_failure_message(e: DagsterEvent) -> str:
    data = e.event_specific_data
    if isinstance(data, JobFailureData) and data.failed_steps:
        return f'Execution of run for "{e.job_name}" failed. Steps failed: {list(data.failed_steps)!r}.'
    return f'Execution of run for "{e.job_name}" failed. An exception was thrown during execution.'


def _output_message(e: DagsterEvent) -> str:
    d: StepOutputData = e.event_specific_data
    key = f' mapping key "{d.mapping_key}"' if d.mapping_key else ""
    return f'Yielded output "{d.output_name}"{key} of type "Any". (Type check passed).'


def _handled_message(e: DagsterEvent) -> str:
    d: HandledOutputData = e.event_specific_data
    return f'Handled output "{d.output_name}" using IO manager "{d.manager_key}"'


def _loaded_message(e: DagsterEvent) -> str:
    d: LoadedInputData = e.event_specific_data
    source = f', from output "{d.upstream_output_name}" of step "{d.upstream_step_key}"' if d.upstream_step_key else ""
    return f'Loaded input "{d.input_name}" using input manager "{d.manager_key}"{source}'


def _success_message(e: DagsterEvent) -> str:
    ms = e.event_specific_data.duration_ms
    took = f"{ms:.3g}ms" if ms < 1000 else f"{ms / 1000:.3g}s"
    return f'Finished execution of step "{e.step_key}" in {took}.'


def _node(e: DagsterEvent) -> str:
    return dynamic.node_of(e.step_key) if e.step_key else ""


def _restart_message(e: DagsterEvent) -> str:
    attempt = e.logging_tags.get("attempt", "?")
    return f'Started re-execution (attempt # {attempt}) of step "{e.step_key}".'


_MESSAGES: Mapping[str, Callable[[DagsterEvent], str]] = MappingProxyType(
    {
        T.RUN_START.value: lambda e: f'Started execution of run for "{e.job_name}".',
        T.RUN_SUCCESS.value: lambda e: f'Finished execution of run for "{e.job_name}".',
        T.RUN_FAILURE.value: _run_failure_message,
        T.RUN_CANCELED.value: lambda e: f'Execution of run for "{e.job_name}" canceled.',
        T.STEP_START.value: lambda e: f'Started execution of step "{e.step_key}".',
        T.STEP_RESTARTED.value: _restart_message,
        T.STEP_OUTPUT.value: _output_message,
        T.HANDLED_OUTPUT.value: _handled_message,
        T.LOADED_INPUT.value: _loaded_message,
        T.STEP_INPUT.value: lambda e: (
            f'Got input "{e.event_specific_data.input_name}" of type "Any". (Type check passed).'
        ),
        T.STEP_SUCCESS.value: _success_message,
        T.STEP_FAILURE.value: lambda e: f'Execution of step "{e.step_key}" failed.',
        T.STEP_UP_FOR_RETRY.value: lambda e: f'Execution of step "{e.step_key}" failed and has requested a retry.',
        T.STEP_SKIPPED.value: lambda e: f'Skipped execution of step "{e.step_key}".',
        T.HOOK_COMPLETED.value: lambda e: (
            f'Finished the execution of hook "{e.event_specific_data.hook_name}" triggered for "{_node(e)}".'
        ),
        T.HOOK_ERRORED.value: lambda e: (
            e.event_specific_data.error.message.strip()
            if e.event_specific_data.error is not None
            else f'Error occurred during the execution of hook "{e.event_specific_data.hook_name}".'
        ),
        T.HOOK_SKIPPED.value: lambda e: (
            f'Skipped the execution of hook "{e.event_specific_data.hook_name}". It did not meet its triggering '
            f'condition during the execution of "{_node(e)}".'
        ),
    }
)


def describe(event: DagsterEvent) -> str:
    """The event's message, as Dagster words it."""
    make = _MESSAGES.get(event.event_type_value)
    return make(event) if make is not None else f"{event.event_type_value} for step {event.step_key}"


# ----- the records a run store returns -----------------------------------------------------------------
@dataclass(frozen=True)
class EventLogEntry:
    """One entry of a run's event log (Dagster's `EventLogEntry`)."""

    error_info: SerializableErrorInfo | None
    level: int
    user_message: str
    run_id: str
    timestamp: float
    step_key: str | None = None
    job_name: str | None = None
    dagster_event: DagsterEvent | None = None

    @property
    def is_dagster_event(self) -> bool:
        return self.dagster_event is not None

    @property
    def dagster_event_type(self) -> DagsterEventType | None:
        return self.dagster_event.event_type if self.dagster_event else None

    @property
    def message(self) -> str:
        return self.user_message

    def get_dagster_event(self) -> DagsterEvent:
        if self.dagster_event is None:
            raise AssertionError("Not a dagster event, check is_dagster_event before calling get_dagster_event")
        return self.dagster_event


@dataclass(frozen=True)
class EventLogRecord:
    storage_id: int
    event_log_entry: EventLogEntry


@dataclass(frozen=True)
class EventRecordsResult:
    """What `get_records_for_run` returns: the records, the cursor after the last, whether more follow."""

    records: Sequence[EventLogRecord]
    cursor: str
    has_more: bool


def log_entry(run_id: str, ts: float, event: DagsterEvent) -> EventLogEntry:
    level = 40 if event.event_type in FAILURE_EVENTS else 10  # logging.ERROR / logging.DEBUG, as Dagster
    return EventLogEntry(None, level, event.message, run_id, ts, event.step_key, event.job_name, event)


# ----- storage: an event as a row of plain values, and back ------------------------------------------------
def _error_json(e: SerializableErrorInfo | None) -> Any:
    if e is None:
        return None
    return [e.message, e.stack, e.cls_name, _error_json(e.cause)]


def _error_of(v: Any) -> SerializableErrorInfo | None:
    if v is None:
        return None
    return SerializableErrorInfo(v[0], list(v[1]), v[2], _error_of(v[3]))


def _failure_json(d: StepFailureData) -> Any:
    user = d.user_failure_data
    user_v = [user.label, user.description, _plain({k: _raw(v) for k, v in user.metadata.items()})] if user else None
    return [_error_json(d.error), user_v, d.error_source.value]


def _failure_of(v: Any) -> StepFailureData:
    user = UserFailureData(v[1][0], v[1][1], normalize_metadata(v[1][2])) if v[1] else None
    return StepFailureData(_error_of(v[0]), user, ErrorSource(v[2]))


def _raw(value: Any) -> Any:
    return value.value if isinstance(value, MetadataValue) else value


def _plain(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str | int | float | bool) or v is None else repr(v) for k, v in metadata.items()}


# Per event type: data -> a JSON value, and back (a type missing here carries no data).
_PACK: Mapping[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = MappingProxyType(
    {
        T.STEP_OUTPUT.value: (
            lambda d: [d.step_output_handle.step_key, d.output_name, d.mapping_key],
            lambda v: StepOutputData(StepOutputHandle(v[0], v[1], v[2])),
        ),
        T.STEP_INPUT.value: (lambda d: d.input_name, lambda v: StepInputData(v)),
        T.LOADED_INPUT.value: (
            lambda d: [d.input_name, d.manager_key, d.upstream_output_name, d.upstream_step_key],
            lambda v: LoadedInputData(v[0], v[1], v[2], v[3]),
        ),
        T.HANDLED_OUTPUT.value: (lambda d: [d.output_name, d.manager_key], lambda v: HandledOutputData(v[0], v[1])),
        T.STEP_SUCCESS.value: (lambda d: d.duration_ms, lambda v: StepSuccessData(float(v))),
        T.STEP_FAILURE.value: (_failure_json, _failure_of),
        T.STEP_UP_FOR_RETRY.value: (
            lambda d: [_error_json(d.error), d.seconds_to_wait],
            lambda v: StepRetryData(_error_of(v[0]), v[1]),
        ),
        T.RUN_FAILURE.value: (
            lambda d: [_error_json(d.error), d.failure_reason, list(d.failed_steps)],
            lambda v: JobFailureData(_error_of(v[0]), v[1], None, tuple(v[2])),
        ),
        T.HOOK_COMPLETED.value: (lambda d: [d.hook_name], lambda v: HookData(v[0])),
        T.HOOK_SKIPPED.value: (lambda d: [d.hook_name], lambda v: HookData(v[0])),
        T.HOOK_ERRORED.value: (
            lambda d: [d.hook_name, _error_json(d.error)],
            lambda v: HookData(v[0], _error_of(v[1])),
        ),
    }
)

#: An event as stored: type, step key, its data as a JSON value (`payload`), its logging tags (or None).
Packed = tuple[str, str | None, Any, Mapping[str, str] | None]


def payload(event_type: str, data: Any) -> Any:
    """An event's data as the JSON value the run store keeps (None: no data)."""
    codec = _PACK.get(event_type)
    return codec[0](data) if codec is not None and data is not None else None


def pack(event: DagsterEvent) -> Packed:
    return (
        event.event_type_value,
        event.step_key,
        payload(event.event_type_value, event.event_specific_data),
        event.logging_tags or None,
    )


def unpack(
    job_name: str, event_type: str, step_key: str | None, body: Any, tags: Mapping[str, str] | None
) -> DagsterEvent:
    """The event a stored (type, step key, payload, tags) is."""
    codec = _PACK.get(event_type)
    data = codec[1](body) if codec is not None and body is not None else None
    return DagsterEvent(event_type, job_name, step_key, data, None, tags)


# ----- what a failed attempt says ------------------------------------------------------------------------
def step_failure(node: str, exc: BaseException, failure_cls: type[BaseException] | None = None) -> StepFailureData:
    """A failed step's data as Dagster records it: an error the op raised is wrapped in
    DagsterExecutionStepExecutionError (its cause the op's error), a `Failure` adds its user data; an error
    of Cairn's own (a broken output contract, a missing input) is a framework error, as raised."""
    from cairn.errors import DagsterError

    user = None
    if failure_cls is not None and isinstance(exc, failure_cls):
        metadata = getattr(exc, "metadata", None) or {}
        user = UserFailureData("intentional-failure", getattr(exc, "description", None), normalize_metadata(metadata))
    if isinstance(exc, DagsterError) and user is None:
        return StepFailureData(SerializableErrorInfo.from_exception(exc), None, ErrorSource.FRAMEWORK_ERROR)
    wrapper = SerializableErrorInfo(
        f'cairn.errors.DagsterExecutionStepExecutionError: Error occurred while executing op "{node}":\n',
        [],
        "DagsterExecutionStepExecutionError",
        SerializableErrorInfo.from_exception(exc),
    )
    return StepFailureData(wrapper, user, ErrorSource.USER_CODE_ERROR)


def interrupted_failure() -> StepFailureData:
    """A step stopped by Ctrl-C or SIGTERM while it ran."""
    error = SerializableErrorInfo(
        "DagsterExecutionInterruptedError: Execution was interrupted unexpectedly.\n",
        [],
        "DagsterExecutionInterruptedError",
    )
    return StepFailureData(error, None, ErrorSource.INTERRUPT)
