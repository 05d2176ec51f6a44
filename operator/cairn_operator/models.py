"""The `cairn.dev/v1alpha1` resources as pydantic models: the single source of truth.

`crds/` is generated from these models (`python -m cairn_operator.crdgen`); CI fails when it drifts.
Field names are the manifests' (camelCase). Validation that a schema or CEL rule can express lives
here too (`json_schema_extra` carries `x-kubernetes-validations`), so the API server refuses bad
manifests at `kubectl apply`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator

from cairn.contract import API_VERSION as API_VERSION  # re-exported: defined in cairn.contract
from cairn.contract import GROUP as GROUP
from cairn.contract import VERSION as VERSION
from cairn.contract import RetryStrategy, RunPhase, RxMode, RxPhase, StepState
from cairn.s3io import DEFAULT_PREFIX

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
DNS1123_SUBDOMAIN = rf"^{_SUBDOMAIN}$"
OUTPUT_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
INPUT_REF = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[A-Za-z_][A-Za-z0-9_]*)?$"
#: A label (or annotation, node-selector, resource) key: an optional DNS-1123 subdomain prefix and `/`,
#: then a name of at most 63 characters (the prefix's own limit, 253, is checked besides).
QUALIFIED_NAME = rf"^({_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
QUALIFIED_NAME_MAX = 253 + 1 + 63
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
#: The core API's rule for env var names (no `=`, no newline, not starting with a digit).
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
#: The core API's quantity pattern without the leading `-`: requests and limits are never negative.
QUANTITY = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
#: `/`-separated segments, each starting with a letter, digit or `_`: no `.` or `..` segment, no
#: leading or doubled `/` (the storage prefix is the start of every object key).
STORAGE_PREFIX = r"^([A-Za-z0-9_][-A-Za-z0-9_.]*(/[A-Za-z0-9_][-A-Za-z0-9_.]*)*)?$"
#: A relative path without `.` or `..` segments (volume item paths, subPath).
_SEGMENT = r"([^./][^/]*|\.[^./][^/]*|\.\.[^/]+)"
RELATIVE_PATH = rf"^{_SEGMENT}(/{_SEGMENT})*$"
#: A ConfigMap or Secret key (core IsConfigMapKey): not `.`, not `..`, not starting with `..`.
CONFIG_KEY = r"^\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$"
#: metadata.name of a Job, Run or Reexecution: each is copied into label values (cairn.dev/job,
#: cairn.dev/run, cairn.dev/parent-run, cairn.dev/root-run, cairn.dev/reexecution), at most 63 characters.
MAX_NAME = 63
NAME_RULES = tuple(
    MappingProxyType(rule)
    for rule in [
        {
            "rule": f"self.metadata.name.size() <= {MAX_NAME}",
            "message": f"metadata.name must be at most {MAX_NAME} characters (it becomes a label value)",
        }
    ]
)
MAX_OPS = 1000
MAX_LABELS = 64
#: Bounds of lists and maps: the API server refuses CEL rules whose worst-case cost (rule cost times
#: how many times it may run: ops x volumes x items ...) exceeds its budget.
MAX_ITEMS = 32
MAX_VOLUMES = 16
MAX_NESTED = 8
MAX_ENV = 64


def _qualified_prefix(key: str) -> str:
    if "/" in key and len(key.split("/", 1)[0]) > 253:
        raise ValueError("the prefix of a qualified name must be at most 253 characters")
    return key


DnsLabel = Annotated[str, Field(max_length=63, pattern=DNS1123_LABEL)]
DnsSubdomain = Annotated[str, Field(max_length=253, pattern=DNS1123_SUBDOMAIN)]
#: The name of a Job, Run or Reexecution when it is referenced (and becomes a label value).
ObjectName = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=DNS1123_SUBDOMAIN)]
QualifiedName = Annotated[
    str, Field(max_length=QUALIFIED_NAME_MAX, pattern=QUALIFIED_NAME), AfterValidator(_qualified_prefix)
]
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]
Quantity = Annotated[str, Field(max_length=64, pattern=QUANTITY)] | Annotated[int, Field(ge=0)]
EnvName = Annotated[str, Field(min_length=1, max_length=1024, pattern=ENV_NAME)]
OutputName = Annotated[str, Field(max_length=63, pattern=OUTPUT_NAME)]
#: An input name: the op's parameter (Python form) or part of CAIRN_INPUT_<NAME> (command form).
InputName = Annotated[str, Field(max_length=63, pattern=r"^[A-Za-z_][-A-Za-z0-9_]*$")]
RelativePath = Annotated[str, Field(max_length=4096, pattern=RELATIVE_PATH)]
FileMode = Annotated[int, Field(ge=0, le=0o777)]


def labels_field(description: str | None = None) -> Any:
    """An optional map of labels (or a node selector): keys qualified names, values label values."""
    return Field(None, max_length=MAX_LABELS, description=description)


def rules(*pairs: tuple[str, str]) -> dict[str, Any]:
    """`x-kubernetes-validations` for a model's schema: (CEL rule, message) pairs."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in pairs]}


def exactly_one(fields: tuple[str, ...]) -> str:
    """The CEL rule: exactly one of `fields` is set (a sum, cheaper than a filtered list)."""
    return " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields) + " == 1"


class Model(BaseModel):
    """Unknown fields refused, as the API server refuses them with strict field validation. Booleans are
    StrictBool: "true" as a string is refused there too."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SecretRef(Model):
    name: DnsSubdomain = Field(description="A Secret in the same namespace.", min_length=1)


class Storage(Model):
    """Where op outputs go: an S3-compatible bucket. Credentials come only from the Secret."""

    secretRef: SecretRef = Field(
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and optionally AWS_ENDPOINT_URL, "
        "AWS_REGION and CAIRN_S3_BUCKET (used when endpoint or bucket are not set here)."
    )
    endpoint: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="S3 endpoint URL; default: the Secret's AWS_ENDPOINT_URL.",
    )
    bucket: str | None = Field(
        None,
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][-a-z0-9.]*[a-z0-9]$",
        description="Bucket; default: the Secret's CAIRN_S3_BUCKET.",
    )
    prefix: str = Field(
        DEFAULT_PREFIX,
        max_length=512,
        pattern=STORAGE_PREFIX,
        description="Key prefix: outputs are at <prefix>/<namespace>/<run>/<step>/<output>. `/`-separated "
        "segments, none `.` or `..`.",
    )


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
    runAsNonRoot: StrictBool | None = None
    fsGroup: int | None = Field(None, ge=0)
    seccompProfile: SeccompProfile | None = Field(
        None, json_schema_extra={"x-kubernetes-validations": [{"rule": SECCOMP_RULE, "message": SECCOMP_MESSAGE}]}
    )
    supplementalGroups: list[Annotated[int, Field(ge=0)]] | None = Field(None, max_length=MAX_ITEMS)


TOLERATION_KEY_EMPTY = "operator must be Exists when key is empty"
TOLERATION_EXISTS_VALUE = "value must be empty when operator is Exists"
TOLERATION_SECONDS = "effect must be NoExecute when tolerationSeconds is set"


class Toleration(Model):
    """A core Toleration, typed and checked as the API server checks a pod's."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
                TOLERATION_KEY_EMPTY,
            ),
            (
                "!(has(self.operator) && self.operator == 'Exists') || !has(self.value) || self.value == ''",
                TOLERATION_EXISTS_VALUE,
            ),
            ("!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')", TOLERATION_SECONDS),
        )
    )

    key: str | None = Field(None, max_length=QUALIFIED_NAME_MAX, pattern=rf"^$|{QUALIFIED_NAME}")
    operator: Literal["", "Exists", "Equal"] | None = None
    value: LabelValue | None = None
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None

    @model_validator(mode="after")
    def _core_rules(self) -> Toleration:
        if not self.key and self.operator != "Exists":
            raise ValueError(TOLERATION_KEY_EMPTY)
        if self.operator == "Exists" and self.value:
            raise ValueError(TOLERATION_EXISTS_VALUE)
        if self.tolerationSeconds is not None and self.effect != "NoExecute":
            raise ValueError(TOLERATION_SECONDS)
        if self.key:
            _qualified_prefix(self.key)
        return self


class KeyToPath(Model):
    key: str = Field(max_length=253, pattern=CONFIG_KEY)
    path: RelativePath
    mode: FileMode | None = None


class EmptyDirSource(Model):
    medium: Literal["", "Memory"] | None = None
    sizeLimit: Quantity | None = None


class ConfigMapSource(Model):
    name: DnsSubdomain
    items: list[KeyToPath] | None = Field(None, max_length=MAX_NESTED)
    defaultMode: FileMode | None = None
    optional: StrictBool | None = None


class SecretSource(Model):
    secretName: DnsSubdomain
    items: list[KeyToPath] | None = Field(None, max_length=MAX_NESTED)
    defaultMode: FileMode | None = None
    optional: StrictBool | None = None


class PVCSource(Model):
    claimName: DnsSubdomain
    readOnly: StrictBool | None = None


class HostPathSource(Model):
    path: str = Field(min_length=1, max_length=4096, pattern=r"^/")
    type: (
        Literal["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"]
        | None
    ) = None


class NFSSource(Model):
    server: str = Field(min_length=1, max_length=253)
    path: str = Field(min_length=1, max_length=4096, pattern=r"^/")
    readOnly: StrictBool | None = None


class LocalObjectRef(Model):
    name: DnsSubdomain


class CSISource(Model):
    driver: DnsSubdomain
    readOnly: StrictBool | None = None
    fsType: str | None = Field(None, max_length=63)
    volumeAttributes: dict[str, str] | None = Field(None, max_length=MAX_ITEMS)
    nodePublishSecretRef: LocalObjectRef | None = None


class ObjectFieldSelector(Model):
    apiVersion: str | None = Field(None, max_length=63)
    fieldPath: str = Field(min_length=1, max_length=256)


class ResourceFieldSelector(Model):
    containerName: str | None = Field(None, max_length=63)
    resource: str = Field(min_length=1, max_length=63)
    divisor: Quantity | None = None


ONE_REF = "exactly one of fieldRef and resourceFieldRef is required"


class DownwardAPIFile(Model):
    model_config = ConfigDict(json_schema_extra=rules(("has(self.fieldRef) != has(self.resourceFieldRef)", ONE_REF)))

    path: RelativePath
    fieldRef: ObjectFieldSelector | None = None
    resourceFieldRef: ResourceFieldSelector | None = None
    mode: FileMode | None = None

    @model_validator(mode="after")
    def _one_ref(self) -> DownwardAPIFile:
        if (self.fieldRef is None) == (self.resourceFieldRef is None):
            raise ValueError(ONE_REF)
        return self


class DownwardAPISource(Model):
    items: list[DownwardAPIFile] | None = Field(None, max_length=MAX_NESTED)
    defaultMode: FileMode | None = None


class ProjectedSecret(Model):
    name: DnsSubdomain
    items: list[KeyToPath] | None = Field(None, max_length=MAX_NESTED)
    optional: StrictBool | None = None


class ServiceAccountTokenProjection(Model):
    audience: str | None = Field(None, max_length=253)
    expirationSeconds: int | None = Field(None, ge=600)
    path: RelativePath


PROJECTION_SOURCES = ("secret", "configMap", "serviceAccountToken")
ONE_PROJECTION = f"a projection needs exactly one of {', '.join(PROJECTION_SOURCES)}"


class VolumeProjection(Model):
    model_config = ConfigDict(json_schema_extra=rules((exactly_one(PROJECTION_SOURCES), ONE_PROJECTION)))

    secret: ProjectedSecret | None = None
    configMap: ProjectedSecret | None = None
    serviceAccountToken: ServiceAccountTokenProjection | None = None

    @model_validator(mode="after")
    def _one(self) -> VolumeProjection:
        if sum(getattr(self, s) is not None for s in PROJECTION_SOURCES) != 1:
            raise ValueError(ONE_PROJECTION)
        return self


class ProjectedSource(Model):
    sources: list[VolumeProjection] = Field(max_length=4)
    defaultMode: FileMode | None = None


class StorageQuantity(Model):
    storage: Quantity


class ClaimResources(Model):
    requests: StorageQuantity | None = None
    limits: StorageQuantity | None = None


class ClaimSpec(Model):
    """The fields of a PersistentVolumeClaim spec an ephemeral volume may set."""

    accessModes: list[Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]] = Field(
        min_length=1, max_length=4
    )
    storageClassName: DnsSubdomain | None = None
    volumeMode: Literal["Filesystem", "Block"] | None = None
    resources: ClaimResources | None = None


class ClaimTemplate(Model):
    """A generic ephemeral volume's claim: its spec only (no metadata)."""

    spec: ClaimSpec


class EphemeralSource(Model):
    volumeClaimTemplate: ClaimTemplate


VOLUME_SOURCES = (
    "emptyDir",
    "configMap",
    "secret",
    "persistentVolumeClaim",
    "hostPath",
    "nfs",
    "csi",
    "downwardAPI",
    "projected",
    "ephemeral",
)
ONE_SOURCE = f"a volume needs exactly one source, one of: {', '.join(VOLUME_SOURCES)}"


class Volume(Model):
    """A pod volume: a DNS-1123 label name and exactly one source, from the subset Cairn accepts
    (VOLUME_SOURCES), each typed as in the core API."""

    model_config = ConfigDict(json_schema_extra=rules((exactly_one(VOLUME_SOURCES), ONE_SOURCE)))

    name: DnsLabel
    emptyDir: EmptyDirSource | None = None
    configMap: ConfigMapSource | None = None
    secret: SecretSource | None = None
    persistentVolumeClaim: PVCSource | None = None
    hostPath: HostPathSource | None = None
    nfs: NFSSource | None = None
    csi: CSISource | None = None
    downwardAPI: DownwardAPISource | None = None
    projected: ProjectedSource | None = None
    ephemeral: EphemeralSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Volume:
        if sum(getattr(self, s) is not None for s in VOLUME_SOURCES) != 1:
            raise ValueError(ONE_SOURCE)
        return self


SUBPATH_BOTH = "subPath and subPathExpr are mutually exclusive"


class VolumeMount(Model):
    model_config = ConfigDict(json_schema_extra=rules(("!has(self.subPath) || !has(self.subPathExpr)", SUBPATH_BOTH)))

    name: DnsLabel
    mountPath: str = Field(min_length=1, max_length=4096, pattern=r"^[^:]+$")
    readOnly: StrictBool | None = None
    subPath: RelativePath | None = None
    subPathExpr: str | None = Field(None, max_length=4096)
    mountPropagation: Literal["None", "HostToContainer", "Bidirectional"] | None = None
    recursiveReadOnly: Literal["Disabled", "IfPossible", "Enabled"] | None = None

    @model_validator(mode="after")
    def _subpath(self) -> VolumeMount:
        if self.subPath is not None and self.subPathExpr is not None:
            raise ValueError(SUBPATH_BOTH)
        return self


class PodTemplate(Model):
    """What a step's pod may override: scheduling, identity, security, volumes, metadata. Typed as the
    core API's fields, so a pod the operator makes from it is not refused (labels, tolerations, volumes)."""

    nodeSelector: dict[QualifiedName, LabelValue] | None = labels_field()
    tolerations: list[Toleration] | None = Field(None, max_length=MAX_ITEMS)
    serviceAccountName: DnsSubdomain | None = None
    volumes: list[Volume] | None = Field(None, max_length=MAX_VOLUMES)
    volumeMounts: list[VolumeMount] | None = Field(None, max_length=MAX_ITEMS)
    labels: dict[QualifiedName, LabelValue] | None = labels_field()
    annotations: dict[QualifiedName, str] | None = labels_field()
    priorityClassName: DnsSubdomain | None = None
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
    """Requests and limits: resource names are qualified names, quantities as in the core API but never
    negative (an integer, or a string such as `500m`, `1Gi`, `1e3`)."""

    requests: dict[QualifiedName, Quantity] | None = Field(None, max_length=32)
    limits: dict[QualifiedName, Quantity] | None = Field(
        None, max_length=32, description="GPUs as e.g. nvidia.com/gpu: 1."
    )


class KeySelector(Model):
    name: DnsSubdomain
    key: str = Field(max_length=253, pattern=CONFIG_KEY)
    optional: StrictBool | None = None


ONE_VALUE_FROM = "valueFrom needs exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef"
VALUE_AND_FROM = "value and valueFrom are mutually exclusive"
VALUE_FROM_SOURCES = ("secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef")


class EnvVarSource(Model):
    model_config = ConfigDict(json_schema_extra=rules((exactly_one(VALUE_FROM_SOURCES), ONE_VALUE_FROM)))

    secretKeyRef: KeySelector | None = None
    configMapKeyRef: KeySelector | None = None
    fieldRef: ObjectFieldSelector | None = None
    resourceFieldRef: ResourceFieldSelector | None = None

    @model_validator(mode="after")
    def _one(self) -> EnvVarSource:
        if sum(getattr(self, s) is not None for s in VALUE_FROM_SOURCES) != 1:
            raise ValueError(ONE_VALUE_FROM)
        return self


class EnvVar(Model):
    """An env var as in the core API: the name follows the core rule (ENV_NAME)."""

    model_config = ConfigDict(
        json_schema_extra=rules(("!has(self.valueFrom) || !has(self.value) || self.value == ''", VALUE_AND_FROM))
    )

    name: EnvName
    value: str | None = None
    valueFrom: EnvVarSource | None = None

    @model_validator(mode="after")
    def _exclusive(self) -> EnvVar:
        if self.valueFrom is not None and self.value:
            raise ValueError(VALUE_AND_FROM)
        return self


class OpSpec(Model):
    """One op: one pod per attempt."""

    name: str = Field(pattern=DNS1123_LABEL, max_length=63, description="DNS-1123 label, unique in the Job.")
    inputs: dict[InputName, Annotated[str, Field(max_length=127, pattern=INPUT_REF)]] = Field(
        default_factory=dict,
        max_length=MAX_ITEMS,
        description="Input name -> the op (its `result` output) or op.output that feeds it.",
    )
    outputs: list[OutputName] = Field(
        default_factory=lambda: ["result"], max_length=MAX_ITEMS, description="Output names (identifiers)."
    )
    optionalOutputs: list[OutputName] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Outputs the op may omit."
    )
    dynamicOutputs: list[OutputName] = Field(
        default_factory=list,
        max_length=MAX_ITEMS,
        description="Outputs that fan out (Dagster's DynamicOut): one value per mapping key, decided at run time. "
        "An op whose input reads one (or reads an op mapped over it) is mapped: one pod per key, step `op[key]`.",
    )
    collect: dict[InputName, Annotated[str, Field(max_length=127, pattern=INPUT_REF)]] = Field(
        default_factory=dict,
        max_length=MAX_ITEMS,
        description="Input name -> a mapped op (or op.output): the input is the list of all its keys' values "
        "(Dagster's .collect()), in key order.",
    )
    image: str | None = Field(None, description="Image; default: the Job's.")
    codeVersion: str | None = Field(
        None,
        max_length=128,
        pattern=r"^[-+.:_/=@A-Za-z0-9]+$",
        description="The op's code version (`cairn manifest` writes the op's code_version, or a hash of its "
        "source). A Stale re-execution re-runs the ops whose version (this, the image, the command, the "
        "config) differs from the one that produced the parent's outputs.",
    )
    command: list[str] | None = Field(
        None,
        description="Command form: any program, run through `python -m cairn.step exec --`. Without it, "
        "the op runs the Job's `python` entrypoint.",
    )
    args: list[str] | None = None
    env: list[EnvVar] | None = Field(None, max_length=MAX_ENV)
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


JOB_RULES = tuple(
    MappingProxyType(rule)
    for rule in [
        {
            "rule": "self.ops.all(o, has(o.command) || has(self.python))",
            "message": (
                "an op without `command` runs the Job's python entrypoint: set spec.python.job or the op's command"
            ),
        },
        {
            "rule": "self.ops.all(o, has(o.image) || has(self.image))",
            "message": "every op needs an image: set spec.image or the op's image",
        },
    ]
)


class PodGC(Model):
    strategy: Literal["Never", "OnStepSuccess", "OnRunSuccess"] = Field(
        "Never", description="When finished pods are deleted; failed pods are kept for debugging."
    )


class RetryPolicy(Model):
    maxRetries: int = Field(0, ge=0, le=100, description="Automatic re-executions per root lineage.")
    strategy: RetryStrategy = RetryStrategy.FROM_FAILURE


class JobRef(Model):
    name: ObjectName = Field(description="A Job in the same namespace.")


class StepOverride(Model):
    """Per-step changes for one Run (and for the child Runs of re-executions)."""

    image: str | None = None
    env: list[EnvVar] | None = Field(
        None, max_length=MAX_ENV, description="Added to (and replacing same-named) env of the op."
    )


class OutputRefModel(Model):
    key: str
    etag: str | None = None


class ReusedStep(Model):
    sourceRun: str = Field(description="The run that produced these outputs.")
    outputs: dict[str, OutputRefModel] = Field(default_factory=dict)
    version: str | None = Field(None, description="The step version that produced them (for Stale re-execution).")
    keys: dict[str, list[str]] | None = Field(
        None, description="A dynamic step: output -> the mapping keys it emitted (its maps' steps in this Run)."
    )


class PlannedStep(Model):
    name: str
    reason: str = Field(
        description="selected, failed, interrupted, not-executed, downstream-of:X, missing-output, all, "
        "stale: OLD -> NEW"
    )


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
    cancel: StrictBool = Field(False, description="true: delete running pods and end the Run Canceled.")
    podGC: PodGC | None = None
    retryPolicy: RetryPolicy | None = None
    overrides: dict[DnsLabel, StepOverride] | None = Field(
        None, max_length=MAX_OPS, description="Per-op image/env changes for this Run."
    )
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
    phase: StepState = Field(description="The step's cairn.runstate.StepState.")
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
    version: str | None = Field(
        None, description="The step version (code, image, command, config) that produced its outputs."
    )
    logError: str | None = Field(
        None, description="Why the last attempt's log could not be saved to storage yet (tried again every cycle)."
    )
    keys: dict[str, list[str]] | None = Field(
        None, description="A dynamic step: output -> the mapping keys it emitted (a step op[key] per key of its maps)."
    )


class RunStorageStatus(Model):
    bucket: str
    prefix: str = ""


class RunStatusModel(Model):
    phase: RunPhase | None = None
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
    storage: RunStorageStatus | None = Field(
        None,
        description="A large Run (more than 500 steps): where its outputs are, once for all of them "
        "(an output's uri is s3://<bucket>/<prefix>/<key>), instead of a bucket and uri per output.",
    )
    conditions: list[Condition] | None = CONDITIONS
    settled: bool | None = Field(
        None,
        description="True once a finished Run's follow-ups are done: podGC, its parent's protection "
        "released, its automatic retry created.",
    )


class ReexecutionSpec(Model):
    """A request to re-execute part of a finished Run as a new, linked child Run."""

    parentRun: ObjectName = Field(description="A Run in the same namespace.")
    mode: RxMode = RxMode.FROM_FAILURE
    stepSelection: list[str] = Field(
        default_factory=list,
        description="Clauses: op, *op, op*, +op, op+ ...; a mapped op's instance op[key], or all of them op[*].",
    )
    config: dict[str, Any] | None = Field(
        None,
        description="Per-op config for the child; default: the parent's.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    overrides: dict[DnsLabel, StepOverride] | None = Field(
        None, max_length=MAX_OPS, description="Per-op image/env changes for the child."
    )
    dryRun: StrictBool = Field(False, description="Plan only: status.plan, no child Run.")
    missingOutputs: Literal["Fail", "Rerun"] = Field(
        "Fail", description="A reused output gone from storage: fail, or re-run its producer."
    )
    concurrencyPolicy: Literal["Allow", "Forbid"] = Field(
        "Allow", description="Forbid: wait while another child of the same parent runs."
    )
    runName: str | None = Field(None, pattern=DNS1123_LABEL, max_length=63, description="The child Run's name.")
    labels: dict[QualifiedName, LabelValue] | None = labels_field("Extra labels of the child Run.")


class StepVersions(Model):
    old: str | None = None
    new: str | None = None


class PlanStatus(Model):
    steps: list[PlannedStep] | None = None
    reused: list[dict[str, Any]] | None = Field(
        None, json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    )
    skipped: dict[str, str] | None = None
    versions: dict[str, StepVersions] | None = Field(
        None, description="Stale: per step, the version that produced the parent's outputs and the version now."
    )
    remapped: dict[str, list[str]] | None = Field(
        None,
        description="Dynamic outputs (step.output) whose step runs again, with the keys the parent had: the ops "
        "mapped over them run whole (op[*]) over the keys emitted now, none of the parent's instances is reused.",
    )


class ReexecutionStatusModel(Model):
    phase: RxPhase | None = None
    childRun: str | None = None
    plan: PlanStatus | None = None
    message: str | None = None
    observedGeneration: int | None = None
    conditions: list[Condition] | None = CONDITIONS
