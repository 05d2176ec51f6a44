"""The Dagster-style run and step statuses `execute_job` and the local run store report.

They are views: the states the executors decide on are `cairn.runstate.StepState` and `RunPhase`.
"""

from __future__ import annotations

import enum


class RunStatus(enum.Enum):
    QUEUED = "QUEUED"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELED = "CANCELED"


class StepStatus(enum.Enum):
    """What happened to a step in one run, as `step_statuses` reports it."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    SKIPPED = "SKIPPED"
    NOT_EXECUTED = "NOT_EXECUTED"
    REUSED = "REUSED"
