"""Cairn's contract: every name that crosses a boundary between the CLI, the UI, the operator, the step
entrypoint and the cluster, defined once.

- The API: group, version, and each kind's plural and short name (`Resource`).
- Label, annotation and finalizer keys (`LABEL_*`, `ANNOTATION_*`, `FINALIZER_*`), all under `GROUP`.
- The step result protocol: the JSON the step entrypoint (`cairn.step`) writes to its termination
  message and the operator parses (`STEP_PROTOCOL`, `ResultStatus`, `RESULT_FIELDS`).
- The phase vocabularies: a step's `StepState` and a Run's `RunPhase` (defined with their rules in the
  pure state machine `cairn.runstate`, re-exported here), a Reexecution's `RxPhase` and `RxMode`, a Run's
  automatic `RetryStrategy`, and Kubernetes' own `PodPhase`.

The CRDs' enums are generated from these (`cairn_operator.crdgen`), and tests/unit/test_contract.py
checks that no other module spells them again and that every other vocabulary (UI, CLI, step
entrypoint, CRD files, chart) agrees with them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cairn.runstate import RunPhase, StepState

__all__ = [
    "ANNOTATION_MODE",
    "ANNOTATION_STEP",
    "API_VERSION",
    "FINALIZER_CHILDREN",
    "GROUP",
    "JOB",
    "KEY_PREFIX",
    "LABEL_ATTEMPT",
    "LABEL_JOB",
    "LABEL_PARENT",
    "LABEL_RETRY",
    "LABEL_ROOT",
    "LABEL_RUN",
    "LABEL_RX",
    "LABEL_STEP",
    "OUTPUT_FIELDS",
    "REEXECUTION",
    "RESOURCES",
    "RESULT_FIELDS",
    "RUN",
    "STEP_PROTOCOL",
    "TAG_CREATED_BY",
    "VERSION",
    "PodPhase",
    "Resource",
    "ResultStatus",
    "RetryStrategy",
    "RunPhase",
    "RxMode",
    "RxPhase",
    "StepState",
    "key",
]

GROUP = "cairn.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class Resource:
    """One of Cairn's kinds: its kind, plural (the API path) and short name (`kubectl get crun`)."""

    kind: str
    plural: str
    short: str

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


JOB = Resource("Job", "jobs", "cjob")
RUN = Resource("Run", "runs", "crun")
REEXECUTION = Resource("Reexecution", "reexecutions", "rx")
RESOURCES = (JOB, RUN, REEXECUTION)

#: Every label, annotation and finalizer key of Cairn starts with this.
KEY_PREFIX = f"{GROUP}/"


def key(name: str) -> str:
    """A label, annotation or finalizer key of Cairn's: `cairn.dev/<name>`."""
    return KEY_PREFIX + name


#: Labels of step pods (run, step: the op, job, attempt) and of Runs (job, and a re-execution's lineage:
#: parent-run, root-run, the reexecution that made it, the retry number of an automatic retry). Their
#: values are names of at most 63 characters (the CRDs refuse longer names), never truncated.
LABEL_RUN = key("run")
LABEL_STEP = key("step")
LABEL_JOB = key("job")
LABEL_ATTEMPT = key("attempt")
LABEL_PARENT = key("parent-run")
LABEL_ROOT = key("root-run")
LABEL_RX = key("reexecution")
LABEL_RETRY = key("retry")
#: The step of a pod when it is an instance of a mapped op, `op[key]` (not a label value: the
#: `cairn.dev/step` label holds the op, so `-l cairn.dev/step=op` lists the pods of all its keys).
ANNOTATION_STEP = key("step-key")
#: A re-execution's mode (an RxMode value) on its child Run; the local run store keeps it as a tag.
ANNOTATION_MODE = key("reexecution-mode")
#: The tag of a local run saying what created it (the UI: "cairn-ui").
TAG_CREATED_BY = key("created-by")
#: The finalizer on a parent Run while a child reads its outputs.
FINALIZER_CHILDREN = key("children")

#: Version of the step context and result JSON (`cairn.step`); bump on incompatible changes.
STEP_PROTOCOL = 1


class ResultStatus(enum.StrEnum):
    """The `status` of a step result."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


#: The fields of a step result (the termination message): protocol, run_id, step, status, outputs
#: ({name: OUTPUT_FIELDS}), dynamic ({output: {count}}), duration_s, error ({type, message, traceback}) and
#: invocation_error (true when the entrypoint was called wrongly: exit status 2).
RESULT_FIELDS = frozenset(
    {"protocol", "run_id", "step", "status", "outputs", "dynamic", "duration_s", "error", "invocation_error"}
)
OUTPUT_FIELDS = frozenset({"key", "size", "sha256", "etag", "format"})


class RxPhase(enum.StrEnum):
    """A Reexecution's `status.phase`."""

    PENDING = "Pending"  # waiting: for its parent to finish or exist, a sibling (Forbid), storage
    PLANNED = "Planned"  # a dry run's plan is in status.plan; nothing more happens
    RUNNING = "Running"  # its child Run exists and has not finished
    SUCCEEDED = "Succeeded"  # its child Run succeeded
    FAILED = "Failed"  # its child Run failed or was canceled or deleted, or the plan cannot be made
    INVALID = "Invalid"  # the request cannot be carried out as written

    @property
    def done(self) -> bool:
        """Nothing more happens (a dry run's Planned is done too, which `rx_active` says)."""
        return self in (RxPhase.SUCCEEDED, RxPhase.FAILED, RxPhase.INVALID)

    @classmethod
    def of_child(cls, run_phase: str | None) -> RxPhase:
        """A Reexecution's phase while following its child Run in `run_phase` (a RunPhase value)."""
        return _RX_OF_CHILD.get(run_phase or "", cls.RUNNING)


_RX_OF_CHILD = {
    RunPhase.SUCCEEDED.value: RxPhase.SUCCEEDED,
    RunPhase.FAILED.value: RxPhase.FAILED,
    RunPhase.CANCELED.value: RxPhase.FAILED,
}


class RxMode(enum.StrEnum):
    """A Reexecution's `spec.mode` (Dagster's re-execution options)."""

    ALL = "All"
    SELECTED = "Selected"
    FROM_SELECTED = "FromSelected"
    FROM_FAILURE = "FromFailure"
    STALE = "Stale"


class RetryStrategy(enum.StrEnum):
    """A Run's `spec.retryPolicy.strategy`: how a failed Run is re-executed automatically."""

    FROM_FAILURE = RxMode.FROM_FAILURE.value
    ALL_STEPS = "AllSteps"

    @property
    def mode(self) -> RxMode:
        return RxMode.FROM_FAILURE if self is RetryStrategy.FROM_FAILURE else RxMode.ALL


class PodPhase(enum.StrEnum):
    """Kubernetes' `status.phase` of a pod (its vocabulary, not Cairn's: named here so no module spells it)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"

    @property
    def finished(self) -> bool:
        return self is PodPhase.SUCCEEDED or self is PodPhase.FAILED
