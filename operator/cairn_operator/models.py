"""The `cairn.dev/v1alpha1` resources as pydantic models: the single source of truth.

`crds/` is generated from these models (`python -m cairn_operator.crdgen`); CI fails when it drifts.
Field names are the manifests' (camelCase). Validation that a schema or CEL rule can express lives
here too (`json_schema_extra` carries `x-kubernetes-validations`), so the API server refuses bad
manifests at `kubectl apply`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

GROUP = "cairn.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
OUTPUT_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
INPUT_REF = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[A-Za-z_][A-Za-z0-9_]*)?$"
MAX_OPS = 1000


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SecretRef(Model):
    name: str = Field(description="A Secret in the same namespace.", min_length=1, max_length=253)


class Storage(Model):
    """Where op outputs go: an S3-compatible bucket. Credentials come only from the Secret."""

    secretRef: SecretRef = Field(
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and optionally AWS_ENDPOINT_URL, "
        "AWS_REGION and CAIRN_S3_BUCKET (used when endpoint or bucket are not set here)."
    )
    endpoint: str | None = Field(None, description="S3 endpoint URL; default: the Secret's AWS_ENDPOINT_URL.")
    bucket: str | None = Field(None, description="Bucket; default: the Secret's CAIRN_S3_BUCKET.")
    prefix: str = Field("cairn", description="Key prefix: outputs are at <prefix>/<namespace>/<run>/<step>/<output>.")


SECCOMP_RULE = "self.type == 'Localhost' ? has(self.localhostProfile) : !has(self.localhostProfile)"
SECCOMP_MESSAGE = "localhostProfile is required with type Localhost and allowed only with it"


class SeccompProfile(Model):
    type: Literal["RuntimeDefault", "Localhost", "Unconfined"]
    localhostProfile: str | None = Field(None, description="Only with type Localhost: the profile's path on the node.")

    @model_validator(mode="after")
    def _localhost(self) -> SeccompProfile:
        if (self.type == "Localhost") != (self.localhostProfile is not None):
            raise ValueError(SECCOMP_MESSAGE)
        return self


class PodSecurityContext(Model):
    """The pod securityContext fields a step may set (a subset of the core PodSecurityContext). Each field
    set here replaces the operator's default for that field only; the others keep the defaults
    (runAsNonRoot, runAsUser and runAsGroup 65532, seccompProfile RuntimeDefault)."""

    runAsUser: int | None = Field(None, ge=0)
    runAsGroup: int | None = Field(None, ge=0)
    runAsNonRoot: bool | None = None
    fsGroup: int | None = Field(None, ge=0)
    seccompProfile: SeccompProfile | None = Field(
        None, json_schema_extra={"x-kubernetes-validations": [{"rule": SECCOMP_RULE, "message": SECCOMP_MESSAGE}]}
    )
    supplementalGroups: list[Annotated[int, Field(ge=0)]] | None = None


class PodTemplate(Model):
    """What a step's pod may override: scheduling, identity, security, volumes, metadata."""

    nodeSelector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = Field(
        None, json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    )
    serviceAccountName: str | None = None
    volumes: list[dict[str, Any]] | None = Field(
        None, json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    )
    volumeMounts: list[dict[str, Any]] | None = Field(
        None, json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    )
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    priorityClassName: str | None = None
    securityContext: PodSecurityContext | None = Field(
        None, description="Pod securityContext fields replacing the operator's defaults one by one."
    )


class Backoff(Model):
    durationSeconds: int = Field(5, ge=0, description="Delay before the first retry.")
    factor: float = Field(2.0, ge=1.0, description="Multiplier of the delay for each further retry.")
    maxDurationSeconds: int = Field(300, ge=0, description="Upper bound of the delay.")


class Retries(Model):
    limit: int = Field(0, ge=0, le=20, description="How many times a failed step is retried (new attempt pods).")
    backoff: Backoff = Field(default_factory=lambda: Backoff())


class Resources(Model):
    requests: dict[str, str | int] | None = None
    limits: dict[str, str | int] | None = Field(None, description="GPUs as e.g. nvidia.com/gpu: 1.")


class EnvVar(Model):
    name: str = Field(min_length=1)
    value: str | None = None
    valueFrom: dict[str, Any] | None = Field(None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


class OpSpec(Model):
    """One op: one pod per attempt."""

    name: str = Field(pattern=DNS1123_LABEL, max_length=63, description="DNS-1123 label, unique in the Job.")
    inputs: dict[str, str] = Field(
        default_factory=dict,
        description="Input name -> the op (its `result` output) or op.output that feeds it.",
        json_schema_extra={"additionalProperties": {"type": "string", "pattern": INPUT_REF}},
    )
    outputs: list[str] = Field(
        default_factory=lambda: ["result"],
        description="Output names.",
        json_schema_extra={"items": {"type": "string", "pattern": OUTPUT_NAME}},
    )
    optionalOutputs: list[str] = Field(default_factory=list, description="Outputs the op may omit.")
    image: str | None = Field(None, description="Image; default: the Job's.")
    command: list[str] | None = Field(
        None,
        description="Command form: any program, run through `python -m cairn.step exec --`. Without it, "
        "the op runs the Job's `python` entrypoint.",
    )
    args: list[str] | None = None
    env: list[EnvVar] | None = None
    resources: Resources | None = None
    retries: Retries | None = None
    timeoutSeconds: int | None = Field(None, ge=1, description="Becomes the pod's activeDeadlineSeconds.")
    podTemplate: PodTemplate | None = None


class PythonEntrypoint(Model):
    job: str = Field(
        pattern=r"^[^:\s]+:[A-Za-z_][A-Za-z0-9_]*$",
        description="module:job of the Cairn job whose ops run as `python -m cairn.step run`.",
    )


class JobSpec(Model):
    image: str | None = Field(None, description="Default image of the ops.")
    python: PythonEntrypoint | None = None
    storage: Storage
    podTemplate: PodTemplate | None = None
    maxParallel: int = Field(4, ge=1, le=1000, description="Pods of one Run at once.")
    ops: list[OpSpec] = Field(
        min_length=1,
        max_length=MAX_OPS,
        description="The ops; names are unique (a list-map keyed by name, enforced by the API server).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


JOB_RULES = [
    {
        "rule": "self.ops.all(o, has(o.command) || has(self.python))",
        "message": "an op without `command` runs the Job's python entrypoint: set spec.python.job or the op's command",
    },
    {
        "rule": "self.ops.all(o, has(o.image) || has(self.image))",
        "message": "every op needs an image: set spec.image or the op's image",
    },
]


class PodGC(Model):
    strategy: Literal["Never", "OnStepSuccess", "OnRunSuccess"] = Field(
        "Never", description="When finished pods are deleted; failed pods are kept for debugging."
    )


class RetryPolicy(Model):
    maxRetries: int = Field(0, ge=0, le=100, description="Automatic re-executions per root lineage.")
    strategy: Literal["FromFailure", "AllSteps"] = "FromFailure"


class JobRef(Model):
    name: str = Field(min_length=1, max_length=253)


class StepOverride(Model):
    """Per-step changes for one Run (and for the child Runs of re-executions)."""

    image: str | None = None
    env: list[EnvVar] | None = Field(None, description="Added to (and replacing same-named) env of the op.")


class OutputRefModel(Model):
    key: str
    etag: str | None = None


class ReusedStep(Model):
    sourceRun: str = Field(description="The run that produced these outputs.")
    outputs: dict[str, OutputRefModel] = Field(default_factory=dict)


class PlannedStep(Model):
    name: str
    reason: str = Field(description="selected, failed, interrupted, not-executed, downstream-of:X, missing-output, all")


class Execution(Model):
    """What a child Run (a re-execution) executes; written by the Reexecution controller."""

    parentRun: str
    rootRun: str
    jobSnapshot: dict[str, Any] = Field(
        description="The parent's Job snapshot (plus overrides): a child never reads the Job again.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    steps: list[PlannedStep] = Field(min_length=1, description="The steps this Run executes, in order.")
    reused: dict[str, ReusedStep] = Field(default_factory=dict, description="Steps whose outputs are reused.")
    skipped: dict[str, str] = Field(default_factory=dict, description="Steps that stay skipped, with why.")


class RunSpec(Model):
    jobRef: JobRef
    config: dict[str, Any] | None = Field(
        None,
        description="Per-op config: {ops: {op: {config: ...}}}.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    maxParallel: int | None = Field(None, ge=1, le=1000)
    cancel: bool = Field(False, description="true: delete running pods and end the Run Canceled.")
    podGC: PodGC | None = None
    retryPolicy: RetryPolicy | None = None
    overrides: dict[str, StepOverride] | None = Field(None, description="Per-op image/env changes for this Run.")
    execution: Execution | None = Field(None, description="Set on child Runs of re-executions only.")


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    lastTransitionTime: str | None = None
    observedGeneration: int | None = Field(None, description="metadata.generation the condition was set for.")


#: conditions as a list-map keyed by type (the API conventions'; server-side apply merges per type).
CONDITIONS = Field(
    None,
    description="Ready, Reconciling, Stalled (kstatus) and, on a Run, Succeeded.",
    json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
)


class OutputStatus(Model):
    key: str
    size: int | None = None
    etag: str | None = Field(None, description="The object's ETag in S3 (checked before a re-execution reuses it).")
    sha256: str | None = None
    bucket: str | None = Field(None, description="The bucket holding the object (left out when unknown).")
    uri: str | None = Field(
        None, description="s3://<bucket>/<prefix>/<key>: the full object location (`key` is relative to the prefix)."
    )


class StepStatusModel(Model):
    phase: Literal[
        "Pending", "Running", "Retrying", "Succeeded", "Failed", "Skipped", "NotExecuted", "Reused", "Canceled"
    ]
    attempt: int = 0
    podName: str | None = None
    startedAt: str | None = None
    finishedAt: str | None = None
    exitCode: int | None = None
    message: str | None = None
    reason: str | None = None
    sourceRun: str | None = None
    nextAttemptAt: str | None = None
    outputs: dict[str, OutputStatus] | None = None
    logs: dict[str, str] | None = Field(None, description="attempt -> storage key of that attempt's log.")


class RunStatusModel(Model):
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Canceled"] | None = None
    observedGeneration: int | None = None
    startedAt: str | None = None
    finishedAt: str | None = None
    progress: str | None = Field(None, description="done/total steps, for the printer column.")
    failedSteps: int | None = None
    message: str | None = None
    jobSnapshot: dict[str, Any] | None = Field(
        None,
        description="The Job's spec when the Run started.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    steps: dict[str, StepStatusModel] | None = None
    conditions: list[Condition] | None = CONDITIONS
    settled: bool | None = Field(
        None,
        description="True once a finished Run's follow-ups are done: podGC, its parent's protection "
        "released, its automatic retry created.",
    )


class ReexecutionSpec(Model):
    """A request to re-execute part of a finished Run as a new, linked child Run."""

    parentRun: str = Field(min_length=1, max_length=253, description="A Run in the same namespace.")
    mode: Literal["All", "Selected", "FromSelected", "FromFailure"] = "FromFailure"
    stepSelection: list[str] = Field(default_factory=list, description="Clauses: op, *op, op*, +op, op+ ...")
    config: dict[str, Any] | None = Field(
        None,
        description="Per-op config for the child; default: the parent's.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    overrides: dict[str, StepOverride] | None = Field(None, description="Per-op image/env changes for the child.")
    dryRun: bool = Field(False, description="Plan only: status.plan, no child Run.")
    missingOutputs: Literal["Fail", "Rerun"] = Field(
        "Fail", description="A reused output gone from storage: fail, or re-run its producer."
    )
    concurrencyPolicy: Literal["Allow", "Forbid"] = Field(
        "Allow", description="Forbid: wait while another child of the same parent runs."
    )
    runName: str | None = Field(None, pattern=DNS1123_LABEL, max_length=63, description="The child Run's name.")
    labels: dict[str, str] | None = Field(None, description="Extra labels of the child Run.")


class PlanStatus(Model):
    steps: list[PlannedStep] | None = None
    reused: list[dict[str, Any]] | None = Field(
        None, json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    )
    skipped: dict[str, str] | None = None


class ReexecutionStatusModel(Model):
    phase: Literal["Pending", "Planned", "Running", "Succeeded", "Failed", "Invalid"] | None = None
    childRun: str | None = None
    plan: PlanStatus | None = None
    message: str | None = None
    observedGeneration: int | None = None
    conditions: list[Condition] | None = CONDITIONS
