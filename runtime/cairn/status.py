"""Run and step statuses, with the predicates the planner and executors share."""

from __future__ import annotations

import enum


class RunStatus(enum.Enum):
    QUEUED = "QUEUED"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELED = "CANCELED"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED)

    @property
    def can_resume_from_failure(self) -> bool:
        return self in (RunStatus.FAILURE, RunStatus.CANCELED)


class StepStatus(enum.Enum):
    """What happened to a step in one run, as `step_statuses` reports it."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    SKIPPED = "SKIPPED"
    NOT_EXECUTED = "NOT_EXECUTED"
    REUSED = "REUSED"


class StepState(enum.Enum):
    """What the run store records of a step; STARTED that never finished means interrupted."""

    PENDING = "PENDING"  # planned to run, not started
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    INTERRUPTED = "INTERRUPTED"  # killed or canceled while it ran
    SKIPPED = "SKIPPED"
    NOT_EXECUTED = "NOT_EXECUTED"
    REUSED = "REUSED"

    @property
    def produced_outputs(self) -> bool:
        return self in (StepState.SUCCESS, StepState.REUSED)

    @property
    def interrupted(self) -> bool:
        return self in (StepState.STARTED, StepState.INTERRUPTED)

    def public(self) -> StepStatus:
        return {
            StepState.SUCCESS: StepStatus.SUCCESS,
            StepState.FAILURE: StepStatus.FAILURE,
            StepState.INTERRUPTED: StepStatus.FAILURE,
            StepState.STARTED: StepStatus.FAILURE,
            StepState.SKIPPED: StepStatus.SKIPPED,
            StepState.REUSED: StepStatus.REUSED,
        }.get(self, StepStatus.NOT_EXECUTED)
