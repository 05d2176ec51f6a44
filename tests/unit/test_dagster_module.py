"""cairn.dagster, the module a porting user imports in place of `dagster`: every name it has is one of Dagster's
public names and is the same object `cairn` exports; a name it lacks says so; Failure and the retry decision."""

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest

import cairn
import cairn.dagster as dg
from cairn.retries import Backoff, Failure, Jitter, RetryPolicy, RetryRequested, rule_for

#: Dagster 1.13.29's public names: the names `dagster/__init__.py` imports from its own modules (data, taken
#: from Dagster's source distribution; private and typing helper names left out).
_NAMES = """
AddDynamicPartitionsRequest AllPartitionMapping AnchorBasedFilePathMapping Any Array AssetAttributesModel
AssetCheckEvaluation AssetCheckExecutionContext AssetCheckKey AssetCheckResult AssetCheckSeverity AssetCheckSpec
AssetChecksDefinition AssetDep AssetExecutionContext AssetIn AssetJobKey AssetKey AssetMaterialization
AssetObservation AssetOrCheckKey AssetOut AssetPartitionStatus AssetRecordsFilter AssetSelection
AssetSensorDefinition AssetSpec AssetValueLoader AssetsDefinition AutoMaterializeAssetPartitionsFilter
AutoMaterializePolicy AutoMaterializeRule AutomationCondition AutomationConditionSensorDefinition AutomationContext
AutomationResult BackfillPolicy Backoff BetaWarning BindResourcesToJobs Bool BoolMetadataValue BoolSource
CodeLocationSelector CodeReferencesMetadataValue Component ComponentFormConfig ComponentLoadContext ComponentTree
ComponentTypeSpec Config ConfigArgumentWarning ConfigMapping ConfigSchema ConfigurableIOManager
ConfigurableIOManagerFactory ConfigurableLegacyIOManagerAdapter ConfigurableResource DagsterAssetMetadataValue
DagsterConfigMappingFunctionError DagsterError DagsterEvent DagsterEventLogInvalidForRun DagsterEventType
DagsterExecutionInterruptedError DagsterExecutionStepExecutionError DagsterExecutionStepNotFoundError
DagsterInstance DagsterInvalidConfigDefinitionError DagsterInvalidConfigError DagsterInvalidDefinitionError
DagsterInvalidInvocationError DagsterInvalidSubsetError DagsterInvariantViolationError DagsterJobMetadataValue
DagsterLibraryRegistry DagsterLogManager DagsterResourceFunctionError DagsterRun DagsterRunMetadataValue
DagsterRunNotFoundError DagsterRunStatus DagsterStepOutputNotFoundError DagsterSubprocessError DagsterType
DagsterTypeCheckDidNotPass DagsterTypeCheckError DagsterTypeLoader DagsterTypeLoaderContext
DagsterUnknownPartitionError DagsterUnknownResourceError DagsterUnmetExecutorRequirementsError
DagsterUserCodeExecutionError DailyPartitionsDefinition DataProvenance DataVersion DataVersionsByPartition
DefaultRunLauncher DefaultScheduleStatus DefaultSensorStatus Definitions DefinitionsComponent DefsFolderComponent
DeleteDynamicPartitionsRequest DependencyDefinition Dict DimensionPartitionMapping DynamicOut DynamicOutput
DynamicPartitionsDefinition Enum EnumValue EnvVar EvaluateAutomationConditionsResult EventLogEntry EventLogRecord
EventRecordsFilter EventRecordsResult ExecuteInProcessResult Executor ExecutorDefinition ExecutorRequirement
ExpectationResult Failure Field FileHandle FilePathMapping FilesystemIOManager Float FloatMetadataValue
FreshnessPolicy FunctionComponent GraphDefinition GraphIn GraphOut HookContext HookDefinition HookExecutionResult
HourlyPartitionsDefinition IAttachDifferentObjectToOpContext IOManager IOManagerDefinition IdentityPartitionMapping
In InMemoryIOManager InitExecutorContext InitLoggerContext InitResourceContext Injected InputContext InputManager
InputManagerDefinition InputMapping Int IntMetadataValue IntSource Jitter JobDefinition JobExecutionResult
JobSelector JsonLogFormatter JsonMetadataValue LastPartitionMapping LegacyFreshnessPolicy List
LocalFileCodeReference LocalFileHandle LoggerDefinition MAX_RUNTIME_SECONDS_TAG Map MarkdownMetadataValue
MaterializeResult MetadataEntry MetadataValue MigrateIOStorageResult Model MonthlyPartitionsDefinition
MultiAssetSensorDefinition MultiAssetSensorEvaluationContext MultiDependencyDefinition MultiPartitionKey
MultiPartitionMapping MultiPartitionsDefinition MultiToSingleDimensionPartitionMapping NodeInvocation Noneable
NotebookMetadataValue Nothing NullMetadataValue ObserveResult OpDefinition OpExecutionContext Optional Out Output
OutputContext OutputMapping PaginatedResults Partition PartitionKeyRange PartitionMapping PartitionedConfig
PartitionsDefinition PathMetadataValue PendingNodeInvocation Permissive PermissiveConfig PipesBlobStoreMessageReader
PipesClient PipesClientCompletedInvocation PipesCompositeMessageReader PipesContextInjector PipesEnvContextInjector
PipesExecutionResult PipesFileContextInjector PipesFileMessageReader PipesLaunchedData PipesLogReader
PipesMessageHandler PipesMessageReader PipesSession PipesSubprocessClient PipesTempFileContextInjector
PipesTempFileMessageReader PoolMetadataValue PreviewWarning PythonArtifactMetadataValue PythonObjectDagsterType
PythonScriptComponent QueuedRunCoordinator ReexecutionOptions RepositoryData RepositoryDefinition RepositorySelector
ResolutionContext Resolvable ResolvedAssetCheckSpec ResolvedAssetKey ResolvedAssetSpec Resolver ResourceDefinition
ResourceDependency ResourceParam RetryPolicy RetryRequested RunConfig RunFailureSensorContext RunRecord RunRequest
RunShardedEventsCursor RunStatusChangeRecordsFilter RunStatusSensorContext RunStatusSensorDefinition RunsFilter
ScaffoldRequest Scaffolder ScalarUnion ScheduleDefinition ScheduleEvaluationContext Selector SensorDefinition
SensorEvaluationContext SensorResult SensorReturnTypesUnion Set Shape SkipReason SourceAsset
SpecificPartitionsPartitionMapping SqlComponent StateBackedComponent StaticPartitionMapping
StaticPartitionsDefinition StepExecutionContext StepLauncher StepRunRef String StringSource SubmitRunContext
SupersessionWarning TableColumn TableColumnConstraints TableColumnDep TableColumnLineage
TableColumnLineageMetadataValue TableConstraints TableMetadataValue TableRecord TableSchema TableSchemaMetadataValue
TemplatedSqlComponent TextMetadataValue TimeWindow TimeWindowPartitionMapping TimeWindowPartitionsDefinition
TimestampMetadataValue Tuple TypeCheck TypeCheckContext UPathDefsStateStorage UPathIOManager UrlCodeReference
UrlMetadataValue UvRunComponent WeeklyPartitionsDefinition apply_freshness_policy asset asset_check asset_sensor
build_asset_check_context build_asset_context build_column_schema_change_checks build_component_defs
build_defs_for_component build_hook_context build_init_logger_context build_init_resource_context
build_input_context build_last_update_freshness_checks build_metadata_bounds_checks build_multi_asset_sensor_context
build_op_context build_output_context build_reconstructable_job build_resources build_run_status_sensor_context
build_schedule_context build_schedule_from_partitioned_job build_sensor_context build_sensor_for_freshness_checks
build_time_partition_freshness_checks check_dagster_type colored_console_logger component_defs component_instance
config_from_files config_from_pkg_resources config_from_yaml_strings config_mapping configured
create_repository_using_definitions_args custom_path_fs_io_manager dagster_type_loader daily_partitioned_config
default_loggers default_system_loggers define_asset_job definitions deserialize_value dynamic_partitioned_config
evaluate_automation_conditions execute_job executor external_instance_from_step_run_ref failure_hook
file_relative_path fs_io_manager get_all_components_defs_within_project get_component_defs_within_project
get_dagster_logger graph graph_asset graph_multi_asset hourly_partitioned_config in_process_executor input_manager
instance_for_test io_manager job json_console_logger link_code_references_to_git
load_asset_checks_from_current_module load_asset_checks_from_modules load_asset_checks_from_package_module
load_asset_checks_from_package_name load_assets_from_current_module load_assets_from_modules
load_assets_from_package_module load_assets_from_package_name load_definitions_from_current_module
load_definitions_from_module load_definitions_from_modules load_definitions_from_package_module
load_definitions_from_package_name load_defs load_from_defs_folder local_file_manager logger
make_email_on_run_failure_sensor make_python_type_usable_as_dagster_type make_values_resource map_asset_specs
materialize materialize_to_memory mem_io_manager migrate_io_storage monthly_partitioned_config multi_asset
multi_asset_check multi_asset_sensor multi_observable_source_asset multi_or_in_process_executor
multiple_process_executor_requirements multiprocess_executor observable_source_asset op open_pipes_session
partition_loading_context partitioned_config raise_execution_interrupts reconstructable repository resource
resources run_failure_sensor run_status_sensor run_step_from_ref scaffold_component scaffold_with schedule sensor
serialize_value static_partitioned_config step_context_to_step_run_ref step_run_ref_to_step_context success_hook
template_var usable_as_dagster_type validate_run_config weekly_partitioned_config with_resources
with_source_code_references
"""
DAGSTER_PUBLIC_NAMES = frozenset(_NAMES.split())

#: Names issue 17 asks the porting module for, as they land (each must resolve).
REQUIRED = (
    "op",
    "job",
    "In",
    "Out",
    "DynamicOut",
    "DynamicOutput",
    "Output",
    "Field",
    "RetryPolicy",
    "Backoff",
    "Jitter",
    "RetryRequested",
    "Failure",
    "ReexecutionOptions",
    "reconstructable",
    "execute_job",
    "in_process_executor",
    "DagsterInstance",
    "DagsterError",
    "DagsterInvalidDefinitionError",
    "DagsterInvalidConfigError",
    "DagsterInvariantViolationError",
    "DagsterExecutionStepNotFoundError",
    "DagsterInvalidSubsetError",
    "DagsterRunNotFoundError",
    "graph",
    "GraphIn",
    "GraphOut",
    "OpExecutionContext",
    "DagsterEventType",
    "DagsterEvent",
    "DagsterRunStatus",
    "instance_for_test",
    "JobExecutionResult",
    "ExecuteInProcessResult",
    "multiprocess_executor",
    "ConfigurableResource",
    "resource",
    "InitResourceContext",
    "build_init_resource_context",
    "fs_io_manager",
    "mem_io_manager",
    "IOManager",
    "io_manager",
    "success_hook",
    "failure_hook",
    "HookContext",
    "Config",
    "RunConfig",
    "build_op_context",
    "DagsterRun",
)


def test_the_list_is_dagsters() -> None:
    # A few names everyone knows are in it, and nothing private: the data is what it says.
    assert {"op", "job", "graph", "asset", "RetryPolicy", "DagsterInstance", "execute_job"} <= DAGSTER_PUBLIC_NAMES
    assert not [n for n in DAGSTER_PUBLIC_NAMES if n.startswith("_")]
    assert len(DAGSTER_PUBLIC_NAMES) > 400


def test_every_name_is_one_of_dagsters_public_names() -> None:
    assert sorted(set(dg.__all__) - DAGSTER_PUBLIC_NAMES) == []


def test_the_module_binds_exactly_its_names() -> None:
    public = {n for n, v in vars(dg).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public == set(dg.__all__)
    assert len(dg.__all__) == len(set(dg.__all__))


@pytest.mark.parametrize("name", sorted(dg.__all__))
def test_each_name_resolves_and_is_cairns(name: str) -> None:
    value = getattr(dg, name)
    assert value is not None
    assert getattr(cairn, name) is value, f"cairn.{name} must be the object cairn.dagster.{name} is"
    assert name in cairn.__all__


@pytest.mark.parametrize("name", REQUIRED)
def test_names_the_issue_asks_for(name: str) -> None:
    assert name in dg.__all__
    assert name in DAGSTER_PUBLIC_NAMES


@pytest.mark.parametrize("name", ["asset", "define_asset_job", "Definitions", "sensor"])
def test_a_name_cairn_does_not_have_says_so(name: str) -> None:
    assert name in DAGSTER_PUBLIC_NAMES
    assert not hasattr(dg, name)
    with pytest.raises(AttributeError, match=rf"'{name}' is not one of them.*Porting from Dagster"):
        getattr(dg, name)
    with pytest.raises(ImportError):
        exec(f"from cairn.dagster import {name}", {})


def test_a_dunder_lookup_is_a_plain_attribute_error() -> None:
    dunder = "__wrapped__"
    with pytest.raises(AttributeError, match=r"^module 'cairn\.dagster' has no attribute '__wrapped__'$"):
        getattr(dg, dunder)


def test_import_dagster_is_one_line() -> None:
    module = importlib.import_module("cairn.dagster")
    assert module is dg
    assert dg.DagsterInstance is cairn.DagsterInstance


# --- Failure: Dagster's signature (description, metadata, allow_retries), positional order included ----


def test_failure_positional_order_and_defaults() -> None:
    f = Failure("no rows", {"table": "t"}, False)
    assert (f.description, f.metadata, f.allow_retries) == ("no rows", {"table": "t"}, False)
    assert str(f) == "no rows"
    bare = Failure()
    assert (bare.description, bare.metadata, bare.allow_retries) == (None, {}, True)
    assert Failure(allow_retries=None).allow_retries is True
    assert isinstance(f, Exception)


@pytest.mark.parametrize(
    "kwargs",
    [{"description": 3}, {"metadata": ["a"]}, {"metadata": {1: "a"}}, {"allow_retries": "no"}],
)
def test_failure_refuses_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="Failure"):
        Failure(**kwargs)  # type: ignore[arg-type]


# --- which rule retries an attempt that raised (Dagster's order of decisions) --------------------------

POLICY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.LINEAR)


def _boom() -> Exception:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "policy", "retries", "delay_after_2"),
    [
        (ValueError("x"), POLICY, 3, 4.0),  # any error: the policy (LINEAR: 2 * 2)
        (ValueError("x"), None, None, None),  # no policy: not retried
        (Failure("x"), POLICY, 3, 4.0),  # a Failure respects the policy by default
        (Failure("x", allow_retries=False), POLICY, None, None),  # ... unless it bypasses it
        (Failure("x", allow_retries=False), None, None, None),
        (RetryRequested(max_retries=5, seconds_to_wait=1.5), None, 5, 1.5),  # the op asks: its own numbers
        (RetryRequested(max_retries=5, seconds_to_wait=1.5), POLICY, 5, 1.5),  # the policy does not apply
        (RetryRequested(), POLICY, 1, 0.0),
        (dg.DagsterInvariantViolationError("x"), POLICY, None, None),  # Dagster's own errors: not retried
        (KeyboardInterrupt(), POLICY, None, None),  # an interrupt cancels the run (Cairn; see README)
    ],
)
def test_rule_for(
    exc: BaseException, policy: RetryPolicy | None, retries: int | None, delay_after_2: float | None
) -> None:
    rule = rule_for(exc, policy)
    if retries is None:
        assert rule is None
        return
    assert rule is not None
    assert rule.max_retries == retries
    assert rule.delay(2, lambda: 0.5) == delay_after_2


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        (RetryPolicy(), [0, 0, 0]),
        (RetryPolicy(delay=1), [1, 1, 1]),
        (RetryPolicy(delay=1, backoff=Backoff.LINEAR), [1, 2, 3]),
        (RetryPolicy(delay=1, backoff=Backoff.EXPONENTIAL), [1, 3, 7]),
        (RetryPolicy(delay=0.5, backoff=Backoff.EXPONENTIAL), [0.5, 1.5, 3.5]),
    ],
)
def test_calculate_delay_as_dagster_calls_it(policy: RetryPolicy, delays: list[float]) -> None:
    assert [policy.calculate_delay(n) for n in (1, 2, 3)] == delays  # Dagster's signature: the attempt only


@pytest.mark.parametrize(
    ("policy", "attempt", "low", "high"),
    [
        (RetryPolicy(delay=1, backoff=Backoff.LINEAR, jitter=Jitter.FULL), 3, 0, 3),
        (RetryPolicy(delay=1, backoff=Backoff.EXPONENTIAL, jitter=Jitter.FULL), 3, 0, 7),
        (RetryPolicy(delay=1, backoff=Backoff.LINEAR, jitter=Jitter.PLUS_MINUS), 3, 2, 4),
        (RetryPolicy(delay=1, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS), 3, 6, 8),
    ],
)
def test_calculate_delay_jitter_without_rand(policy: RetryPolicy, attempt: int, low: float, high: float) -> None:
    drawn = {policy.calculate_delay(attempt) for _ in range(50)}
    assert all(low <= d <= high for d in drawn) and len(drawn) > 1


def test_rule_for_jitter_draws_from_rand() -> None:
    policy = RetryPolicy(max_retries=1, delay=1.0, jitter=Jitter.FULL)
    rule = rule_for(_boom(), policy)
    assert rule is not None
    assert rule.delay(1, lambda: 0.25) == 0.25


# --- bench/dagster_public_tests.py: Dagster's tests with only their imports changed ---------------------


def _harness() -> types.ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "dagster_public_tests.py"
    spec = importlib.util.spec_from_file_location("dagster_public_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("dagster_public_tests", module)
    spec.loader.exec_module(module)
    return module


H = _harness()
CAIRN_TARGET = H.Target("cairn", "python", "cairn.dagster", frozenset({"op", "job", "DagsterInstance"}), frozenset())
PUBLIC = frozenset({"op", "job", "DagsterInstance", "asset", "instance_for_test"})


@pytest.mark.parametrize(
    ("source", "imports", "skipped", "failed"),
    [
        ("import dagster as dg\n\ndef test_a():\n    dg.op\n", ["import cairn.dagster as dg"], {}, {}),
        ("from dagster import op, job\n", ["from cairn.dagster import (op, job)"], {}, {}),
        (  # an internal module's public name: the public import
            "from dagster._core.instance import DagsterInstance\n",
            ["from cairn.dagster import (DagsterInstance)"],
            {},
            {},
        ),
        (  # an internal name: the tests that read it are skipped
            "from dagster._core.execution.api import create_execution_plan\n\n"
            "def test_a():\n    create_execution_plan()\n\ndef test_b():\n    pass\n",
            [],
            {"test_a": "uses internals: dagster._core.execution.api.create_execution_plan"},
            {},
        ),
        (  # a public name Cairn lacks: the tests that need it fail with the name
            "import dagster as dg\n\n@dg.asset\ndef thing():\n    pass\n\ndef test_a():\n    thing()\n",
            ["import cairn.dagster as dg"],
            {},
            {"test_a": "harness: needs dagster.asset, which cairn does not have"},
        ),
        (  # through a helper, and through an attribute of the module
            "import dagster as dg\n\ndef helper():\n    return dg._check\n\ndef test_a():\n    helper()\n",
            ["import cairn.dagster as dg"],
            {"test_a": "uses internals: dagster._check"},
            {},
        ),
        (
            "import objgraph\n\ndef test_a():\n    objgraph.count()\n",
            [],
            {"test_a": "missing test dependency: objgraph"},
            {},
        ),
    ],
)
def test_the_harness_changes_only_imports(
    source: str, imports: list[str], skipped: dict[str, str], failed: dict[str, str]
) -> None:
    out = H.rewrite(source, CAIRN_TARGET, PUBLIC)
    compile(out.source, "rewritten", "exec")
    lines = out.source.splitlines()
    for line in imports:
        assert line in lines
    assert not [ln for ln in lines if ln.startswith(("import dagster", "from dagster"))]
    assert out.skipped == skipped
    assert out.failed == failed
    kept = [ln for ln in source.splitlines() if ln and not ln.startswith(("import ", "from "))]
    if not skipped and not failed:
        assert all(ln in lines for ln in kept)  # the tests themselves are untouched


def test_the_harness_reads_junit_reports() -> None:
    xml = (
        '<testsuites><testsuite><testcase classname="f" name="test_ok"/>'
        '<testcase classname="f" name="test_bad"><failure message="AssertionError: 1 != 2&#10;more"/></testcase>'
        '<testcase classname="f" name="test_skip"><skipped message="uses internals: dagster._x"/></testcase>'
        "</testsuite></testsuites>"
    )
    outcomes = H.parse_junit(xml, "a.py")
    assert [(o.test, o.status, o.message) for o in outcomes] == [
        ("a.py::test_ok", "passed", ""),
        ("a.py::test_bad", "failed", "AssertionError: 1 != 2"),
        ("a.py::test_skip", "skipped", "uses internals: dagster._x"),
    ]
    assert H.counts(outcomes) == {
        "tried": 3,
        "passed": 1,
        "failed": 1,
        "skipped-internals": 1,
        "skipped-missing-dep": 0,
        "skipped-other": 0,
    }
