"""Dagster's event types, run statuses, event data and messages as `cairn.events` and `cairn.status` define them.

The expected values are Dagster 1.13's, observed with Dagster itself (names, stored values, member order and
the messages its in-process executor logs)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cairn.errors import ConfigError
from cairn.events import (
    DagsterEvent,
    DagsterEventType,
    ErrorSource,
    HandledOutputData,
    JobFailureData,
    LoadedInputData,
    MetadataValue,
    NodeHandle,
    SerializableErrorInfo,
    StepFailureData,
    StepInputData,
    StepOutputData,
    StepOutputHandle,
    StepRetryData,
    StepSuccessData,
    UserFailureData,
    describe,
    interrupted_failure,
    pack,
    step_failure,
    unpack,
)
from cairn.status import DagsterRunStatus, RunStatus

T = DagsterEventType


@pytest.mark.parametrize(
    ("member", "value"),
    [
        (T.RUN_START, "PIPELINE_START"),
        (T.RUN_SUCCESS, "PIPELINE_SUCCESS"),
        (T.RUN_FAILURE, "PIPELINE_FAILURE"),
        (T.RUN_CANCELED, "PIPELINE_CANCELED"),
        (T.PIPELINE_SUCCESS, "PIPELINE_SUCCESS"),
        (T.STEP_START, "STEP_START"),
        (T.STEP_OUTPUT, "STEP_OUTPUT"),
        (T.HANDLED_OUTPUT, "HANDLED_OUTPUT"),
        (T.LOADED_INPUT, "LOADED_INPUT"),
        (T.STEP_INPUT, "STEP_INPUT"),
        (T.STEP_SUCCESS, "STEP_SUCCESS"),
        (T.STEP_FAILURE, "STEP_FAILURE"),
        (T.STEP_SKIPPED, "STEP_SKIPPED"),
        (T.STEP_UP_FOR_RETRY, "STEP_UP_FOR_RETRY"),
        (T.STEP_RESTARTED, "STEP_RESTARTED"),
        (T.RESOURCE_INIT_FAILURE, "RESOURCE_INIT_FAILURE"),
        (T.HOOK_COMPLETED, "HOOK_COMPLETED"),
        (T.HOOK_ERRORED, "HOOK_ERRORED"),
        (T.HOOK_SKIPPED, "HOOK_SKIPPED"),
    ],
)
def test_event_types_have_dagsters_values(member: DagsterEventType, value: str) -> None:
    assert member.value == value and member == value  # a str enum, as Dagster's
    assert DagsterEventType(value) is member or member.name.startswith("PIPELINE_")


def test_pipeline_names_are_aliases_of_the_run_names() -> None:
    assert DagsterEventType["PIPELINE_START"] is T.RUN_START and DagsterEventType["PIPELINE_FAILURE"] is T.RUN_FAILURE


def test_run_status_has_dagsters_members_in_order() -> None:
    assert DagsterRunStatus is RunStatus
    assert [(m.name, m.value) for m in RunStatus] == [
        (n, n)
        for n in (
            "QUEUED",
            "NOT_STARTED",
            "MANAGED",
            "STARTING",
            "STARTED",
            "SUSPENDED",
            "SUCCESS",
            "FAILURE",
            "CANCELING",
            "CANCELED",
        )
    ]


def _event(kind: DagsterEventType, step: str | None = None, data: Any = None, **tags: str) -> DagsterEvent:
    return DagsterEvent(kind.value, "j", step, data, 1, tags or None)


ERROR = SerializableErrorInfo("ValueError: nope\n", ["  File x\n"], "ValueError")

#: (event, Dagster's message)
MESSAGES = [
    (_event(T.RUN_START), 'Started execution of run for "j".'),
    (_event(T.RUN_SUCCESS), 'Finished execution of run for "j".'),
    (
        _event(T.RUN_FAILURE, None, JobFailureData(None, "STEP_FAILURE", None, ("bad",))),
        "Execution of run for \"j\" failed. Steps failed: ['bad'].",
    ),
    (
        _event(T.RUN_FAILURE, None, JobFailureData(None)),
        'Execution of run for "j" failed. An exception was thrown during execution.',
    ),
    (_event(T.STEP_START, "a"), 'Started execution of step "a".'),
    (_event(T.STEP_RESTARTED, "rr", attempt="2"), 'Started re-execution (attempt # 2) of step "rr".'),
    (
        _event(T.STEP_OUTPUT, "a", StepOutputData(StepOutputHandle("a"))),
        'Yielded output "result" of type "Any". (Type check passed).',
    ),
    (
        _event(T.STEP_OUTPUT, "split", StepOutputData(StepOutputHandle("split", "result", "k1"))),
        'Yielded output "result" mapping key "k1" of type "Any". (Type check passed).',
    ),
    (
        _event(T.HANDLED_OUTPUT, "a", HandledOutputData("result", "io_manager")),
        'Handled output "result" using IO manager "io_manager"',
    ),
    (
        _event(T.LOADED_INPUT, "add", LoadedInputData("x", "io_manager", "result", "a")),
        'Loaded input "x" using input manager "io_manager", from output "result" of step "a"',
    ),
    (_event(T.STEP_INPUT, "add", StepInputData("x")), 'Got input "x" of type "Any". (Type check passed).'),
    (_event(T.STEP_SUCCESS, "a", StepSuccessData(19.0)), 'Finished execution of step "a" in 19ms.'),
    (_event(T.STEP_SUCCESS, "a", StepSuccessData(7.96)), 'Finished execution of step "a" in 7.96ms.'),
    (_event(T.STEP_SUCCESS, "a", StepSuccessData(1850.0)), 'Finished execution of step "a" in 1.85s.'),
    (_event(T.STEP_FAILURE, "bad", StepFailureData(ERROR, None)), 'Execution of step "bad" failed.'),
    (
        _event(T.STEP_UP_FOR_RETRY, "rr", StepRetryData(ERROR, 0)),
        'Execution of step "rr" failed and has requested a retry.',
    ),
    (_event(T.STEP_SKIPPED, "use"), 'Skipped execution of step "use".'),
]


@pytest.mark.parametrize(("event", "message"), MESSAGES, ids=[m for _, m in MESSAGES])
def test_messages_are_dagsters(event: DagsterEvent, message: str) -> None:
    assert describe(event) == event.message == message


@pytest.mark.parametrize(("event", "message"), MESSAGES, ids=[m for _, m in MESSAGES])
def test_an_event_reads_back_from_its_stored_row(event: DagsterEvent, message: str) -> None:
    back = unpack("j", *json.loads(json.dumps(pack(event))))  # as the run store keeps it: JSON
    assert back == event
    assert (back.event_type, back.step_key, back.message) == (event.event_type, event.step_key, message)


def test_failure_data_round_trip_keeps_the_error_chain_and_user_data() -> None:
    data = StepFailureData(
        SerializableErrorInfo("Wrapper\n", [], "W", ERROR),
        UserFailureData("intentional-failure", "no", {"n": MetadataValue(1)}),
    )
    back = unpack("j", *json.loads(json.dumps(pack(_event(T.STEP_FAILURE, "s", data))))).step_failure_data
    assert back == data and back.error is not None and back.error.cause == ERROR


@pytest.mark.parametrize(
    ("kind", "flag"),
    [
        (T.STEP_SUCCESS, "is_step_success"),
        (T.STEP_FAILURE, "is_step_failure"),
        (T.STEP_SKIPPED, "is_step_skipped"),
        (T.STEP_START, "is_step_start"),
        (T.STEP_UP_FOR_RETRY, "is_step_up_for_retry"),
        (T.STEP_RESTARTED, "is_step_restarted"),
        (T.STEP_OUTPUT, "is_successful_output"),
        (T.HANDLED_OUTPUT, "is_handled_output"),
        (T.LOADED_INPUT, "is_loaded_input"),
        (T.RUN_SUCCESS, "is_job_success"),
        (T.RUN_FAILURE, "is_run_failure"),
    ],
)
def test_each_flag_is_true_for_its_type_only(kind: DagsterEventType, flag: str) -> None:
    for other in (T.STEP_SUCCESS, T.STEP_FAILURE, T.RUN_START, kind):
        assert getattr(_event(other, "s"), flag) is (other is kind)


@pytest.mark.parametrize(
    ("kind", "step", "is_step_event", "is_job_event", "is_failure"),
    [
        (T.STEP_START, "a", True, False, False),
        (T.STEP_FAILURE, "a", True, False, True),
        (T.RUN_FAILURE, None, False, True, True),
        (T.RUN_START, None, False, True, False),
        (T.HOOK_ERRORED, "a", False, False, False),
    ],
)
def test_event_kinds(
    kind: DagsterEventType, step: str | None, is_step_event: bool, is_job_event: bool, is_failure: bool
) -> None:
    e = _event(kind, step)
    assert (e.is_step_event, e.is_job_event, e.is_failure) == (is_step_event, is_job_event, is_failure)


def test_typed_data_accessors_refuse_another_type_as_dagster() -> None:
    with pytest.raises(AssertionError, match="step_output_data only callable when event_type is STEP_OUTPUT"):
        _ = _event(T.STEP_START, "a").step_output_data


@pytest.mark.parametrize(
    ("step", "node", "path"),
    [("a", "a", ["a"]), ("proc[k1]", "proc", ["proc"]), ("outer.inner", "inner", ["outer", "inner"])],
)
def test_node_handle_of_a_step(step: str, node: str, path: list[str]) -> None:
    handle = _event(T.STEP_START, step).node_handle
    assert handle is not None and handle.name == node and handle.path == path
    assert handle.is_or_descends_from(NodeHandle.from_string(path[0]))
    assert not handle.is_or_descends_from(NodeHandle.from_string("other"))


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_an_op_error_is_wrapped_as_dagster_wraps_it() -> None:
    data = step_failure("bad", _raised(ValueError("nope")))
    assert data.error_source is ErrorSource.USER_CODE_ERROR and data.user_failure_data is None
    assert data.error is not None and data.error.cls_name == "DagsterExecutionStepExecutionError"
    assert data.error.message.endswith('Error occurred while executing op "bad":\n')
    assert data.error.cause is not None and (data.error.cause.cls_name, data.error.cause.message) == (
        "ValueError",
        "ValueError: nope\n",
    )
    assert "ValueError: nope" in data.error_display_string


class _Failure(Exception):
    def __init__(self, description: str, metadata: dict[str, Any]) -> None:
        super().__init__(description)
        self.description, self.metadata = description, metadata


@pytest.mark.parametrize(
    ("exc", "failure_cls", "source", "user"),
    [
        (ConfigError("bad config"), None, ErrorSource.FRAMEWORK_ERROR, None),
        (
            _Failure("no more", {"n": 1}),
            _Failure,
            ErrorSource.USER_CODE_ERROR,
            UserFailureData("intentional-failure", "no more", {"n": MetadataValue(1)}),
        ),
        (RuntimeError("x"), _Failure, ErrorSource.USER_CODE_ERROR, None),
    ],
)
def test_failure_sources(
    exc: BaseException, failure_cls: type[BaseException] | None, source: ErrorSource, user: UserFailureData | None
) -> None:
    data = step_failure("op", _raised(exc), failure_cls)
    assert (data.error_source, data.user_failure_data) == (source, user)


def test_an_interrupted_step_fails_as_an_interrupt() -> None:
    data = interrupted_failure()
    assert data.error_source is ErrorSource.INTERRUPT and data.error is not None
    assert data.error.cls_name == "DagsterExecutionInterruptedError"


def test_a_store_with_the_row_per_event_table_of_an_unreleased_build_opens(tmp_path: Any) -> None:
    import sqlite3

    from cairn.runstore import open_db

    path = tmp_path / "runs.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE events (run_id TEXT, seq INTEGER, ts REAL, event_type TEXT, PRIMARY KEY (run_id, seq))")
    old.execute("INSERT INTO events VALUES ('r', 1, 0.0, 'PIPELINE_START')")
    old.commit()
    old.close()
    conn = open_db(path)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
    assert columns == ["run_id", "first_seq", "batch"]
    conn.close()
