"""The Dagster-style run and step statuses `execute_job` and the local run store report.

They are views: the states the executors decide on are `cairn.runstate.StepState` and `RunPhase`.
`RunStatus` has every member of Dagster's `DagsterRunStatus` (same names, values and order; it is
exported under that name too); a local run is only ever QUEUED, STARTED, SUCCESS, FAILURE or CANCELED.
"""

from __future__ import annotations

import enum


class RunStatus(enum.Enum):
    QUEUED = "QUEUED"
    NOT_STARTED = "NOT_STARTED"
    MANAGED = "MANAGED"
    STARTING = "STARTING"
    STARTED = "STARTED"
    SUSPENDED = "SUSPENDED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELING = "CANCELING"
    CANCELED = "CANCELED"


#: Dagster's name for the run status.
DagsterRunStatus = RunStatus

#: Statuses of a run that has finished (Dagster's FINISHED_STATUSES).
FINISHED_STATUSES = frozenset({RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED})


class StepStatus(enum.Enum):
    """What happened to a step in one run, as `step_statuses` reports it."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    SKIPPED = "SKIPPED"
    NOT_EXECUTED = "NOT_EXECUTED"
    REUSED = "REUSED"
