"""Resources and IO managers as Dagster defines them (`cairn.resources`): config checked with Dagster's wording,
initialisation order and teardown, `ConfigurableResource`, the definition checks a job's resources must pass,
and the IO managers. The expected messages are Dagster 1.13's, observed with it (a fact about Dagster; our
messages start with them)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.config_types import Noneable, Permissive
from cairn.definitions import Field, Out, job, op
from cairn.errors import (
    DagsterInvalidConfigError,
    DagsterInvalidDefinitionError,
    DagsterInvalidInvocationError,
    DagsterInvariantViolationError,
    DagsterResourceFunctionError,
    DagsterUnknownResourceError,
)
from cairn.resources import (
    ConfigField,
    ConfigurableResource,
    EnvVar,
    FilesystemIOManager,
    InMemoryIOManager,
    IOManager,
    IOManagerDefinition,
    ManagedOutput,
    PickledObjectFilesystemIOManager,
    ResourceDefinition,
    ResourceParam,
    ValidationError,
    as_resource_def,
    build_init_resource_context,
    build_input_context,
    build_op_context,
    build_output_context,
    build_resources,
    check_config,
    check_reexecution_io,
    check_required_resources,
    check_resources_config,
    fs_io_manager,
    init_order,
    io_manager,
    job_resource_keys,
    managed_io_manager_key,
    mem_io_manager,
    resolve_stored,
    resource,
    resource_params,
    schema_label,
)

# ----- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "label"),
    [
        (int, "Int"),
        (str, "String"),
        ({"x": int}, "{ x: Int }"),
        ({"x": int, "y": Field(str, default_value="a")}, "{ x: Int y?: String }"),
        ({"x": ConfigField(int, is_required=False)}, "{ x?: Int }"),
        ([int], "[Int]"),
        (None, "Any"),
    ],
)
def test_schema_label_is_dagsters(schema: Any, label: str) -> None:
    assert schema_label(schema) == label


@pytest.mark.parametrize(
    ("schema", "value", "expected", "errors"),
    [
        ({"x": int}, {"x": 1}, {"x": 1}, []),
        ({"x": int, "y": Field(int, default_value=3)}, {"x": 1}, {"x": 1, "y": 3}, []),
        (
            {"x": int},
            {"x": "a"},
            None,
            [
                'Invalid scalar at path root:x. Value "a" of type "<class \'str\'>" is not valid for expected '
                'type "Int".'
            ],
        ),
        (
            {"x": int},
            {"x": 1, "y": 2},
            None,
            ['Received unexpected config entry "y" at the root. Expected: "{ x: Int }".'],
        ),
        (
            {"x": int},
            {},
            None,
            ['Missing required config entry "x" at the root. You must provide this value in your run config.'],
        ),
        ({"x": bool}, {"x": 1}, None, ["Invalid scalar at path root:x."]),
        ({"x": float}, {"x": 1}, {"x": 1}, []),
        ([int], [1, "b"], None, ["Invalid scalar at path root[1]."]),
        (None, {"anything": object}, {"anything": object}, []),
        ({"x": Noneable(int)}, {}, {"x": None}, []),
        ({"x": Noneable(int)}, {"x": "a"}, None, ["Invalid scalar at path root:x."]),
        ({"p": Permissive({"a": int})}, {"p": {"a": 1, "b": 2}}, {"p": {"a": 1, "b": 2}}, []),
    ],
)
def test_check_config(schema: Any, value: Any, expected: Any, errors: list[str]) -> None:
    got, errs = check_config(schema, value)
    assert len(errs) == len(errors)
    for err, start in zip(errs, errors, strict=True):
        assert err.startswith(start)
    if not errors:
        assert got == expected


@resource(config_schema={"x": int})
def r_x(init_context: Any) -> Any:
    return init_context.resource_config["x"]


@pytest.mark.parametrize(
    ("config", "errors"),
    [
        (
            {"r": {"config": {"x": "a"}}},
            [
                'Invalid scalar at path root:resources:r:config:x. Value "a" of type "<class \'str\'>" is not valid '
                'for expected type "Int".'
            ],
        ),
        (
            {"r": {"config": {"x": 1, "y": 2}}},
            ['Received unexpected config entry "y" at path root:resources:r:config. Expected: "{ x: Int }".'],
        ),
        (
            {"q": {"config": {"x": 1}}},
            [
                'Received unexpected config entry "q" at path root:resources. Expected: "{ io_manager?: { config?: '
                'Any } r: { config: { x: Int } } }".',
                'Missing required config entry "r" at path root:resources. You must provide this value in your run '
                "config.",
            ],
        ),
        (
            {"r": {"x": 1}},
            [
                'Received unexpected config entry "x" at path root:resources:r. Expected: "{ config: { x: Int } }".',
                'Missing required config entry "config" at path root:resources:r. You must provide this value in '
                "your run config.",
            ],
        ),
    ],
)
def test_resources_config_refusals_have_dagsters_wording(config: Any, errors: list[str]) -> None:
    with pytest.raises(DagsterInvalidConfigError) as info:
        check_resources_config({"r": r_x}, config, "jr")
    assert str(info.value).splitlines()[0] == "Error in config for job jr"
    assert [e.split(": ", 1)[1] for e in info.value.errors] == errors
    assert str(info.value).splitlines()[1].startswith("    Error 1: ")


def test_resources_config_fills_defaults_and_accepts_the_default_io_manager() -> None:
    @resource(config_schema={"x": Field(int, default_value=4)})
    def with_default(init_context: Any) -> Any:
        return init_context.resource_config

    got = check_resources_config({"d": with_default, "plain": 3}, {"io_manager": {"config": {"any": 1}}})
    assert got == {"d": {"x": 4}, "plain": None}


# ----- initialisation ------------------------------------------------------------------------------------


def test_build_resources_inits_in_dependency_order_and_tears_generators_down() -> None:
    log: list[str] = []

    @resource(config_schema={"v": int})
    def base(c: Any) -> Iterator[int]:
        log.append("base up")
        yield c.resource_config["v"]
        log.append("base down")

    @resource(required_resource_keys={"base"})
    def dep(c: Any) -> int:
        log.append("dep up")
        return int(c.resources.base) * 10

    @resource
    def zero() -> str:
        return "z"

    defs = {"dep": dep, "base": base, "zero": zero, "plain": 3}
    with build_resources(defs, resource_config={"base": {"config": {"v": 2}}}) as r:
        assert (r.base, r.dep, r.zero, r.plain) == (2, 20, "z", 3)
        assert log == ["base up", "dep up"]
    assert log[-1] == "base down"
    with build_resources(defs, resource_config={"base": {"config": {"v": 1}}}, required_keys={"dep"}) as r:
        assert "zero" not in r and r.dep == 10
        with pytest.raises(DagsterUnknownResourceError, match="Unknown resource `zero`"):
            r.zero  # noqa: B018


def test_init_order_refusals() -> None:
    @resource(required_resource_keys={"base"})
    def dep(c: Any) -> int:
        return 1

    with pytest.raises(DagsterInvariantViolationError) as info:
        init_order({"dep": dep})
    assert str(info.value) == "Resource with key 'base' required by resource with key 'dep', but not provided."

    @resource(required_resource_keys={"a"})
    def b(c: Any) -> int:
        return 1

    @resource(required_resource_keys={"b"})
    def a(c: Any) -> int:
        return 1

    with pytest.raises(DagsterInvariantViolationError, match="depends on itself"):
        init_order({"a": a, "b": b})
    assert init_order({"b": b, "a": a, "z": 1}, {"z"}) == ["z"]


def test_a_failing_resource_is_dagsters_resource_function_error_and_the_others_are_torn_down() -> None:
    log: list[str] = []

    @resource
    def first(_: Any) -> Iterator[int]:
        yield 1
        log.append("first down")

    @resource(required_resource_keys={"first"})
    def boom(_: Any) -> int:
        raise ValueError("nope")

    with pytest.raises(DagsterResourceFunctionError) as info, build_resources({"first": first, "r": boom}):
        pass
    assert str(info.value) == "Error executing resource_fn on ResourceDefinition r"
    assert isinstance(info.value.__cause__, ValueError)
    assert log == ["first down"]


def test_resource_definition_statics_and_direct_invocation() -> None:
    with build_resources(
        {
            "h": ResourceDefinition.hardcoded_resource(7),
            "n": ResourceDefinition.none_resource(),
            "m": ResourceDefinition.mock_resource(),
            "s": ResourceDefinition.string_resource(),
            "c": r_x.configured({"x": 9}),
        },
        resource_config={"s": {"config": "hi"}},
    ) as r:
        assert (r.h, r.n, r.s, r.c) == (7, None, "hi", 9)
        assert r.m.anything() is not None
    assert r_x(build_init_resource_context(config={"x": 5})) == 5
    assert build_init_resource_context(resources={"h": ResourceDefinition.hardcoded_resource(8)}).resources.h == 8
    with pytest.raises(DagsterInvalidConfigError, match="Error in config for resource"):
        r_x(build_init_resource_context())
    with (
        pytest.raises(DagsterInvalidConfigError) as info,
        build_resources({"c": r_x.configured({"x": "no"})}),
    ):
        pass
    assert str(info.value) == (
        'Error in config for resource c\n    Error 1: Invalid scalar at path root:config:x. Value "no" of type '
        '"<class \'str\'>" is not valid for expected type "Int".'
    )


# ----- Pythonic resources ----------------------------------------------------------------------------------


class Db(ConfigurableResource):
    url: str
    timeout: int = 5
    tag: str | None = None

    def setup_for_execution(self, context: Any) -> None:
        LOG.append(("setup", self.url, dict(context.resource_config)))

    def teardown_after_execution(self, context: Any) -> None:
        LOG.append(("teardown", self.url))


LOG: list[Any] = []


def test_configurable_resource_fields_validation_and_frozen() -> None:
    db = Db(url="a")
    assert (db.url, db.timeout, db.tag) == ("a", 5, None)
    assert db == Db(url="a") and db != Db(url="b") and hash(db) == hash(Db(url="a"))
    assert Db(url="a", unknown=1) == db  # extra fields are ignored, as pydantic's default does
    with pytest.raises(ValidationError, match="2 validation errors for Db") as info:
        Db(timeout="x")
    assert "url\n  Field required" in str(info.value)
    with pytest.raises(DagsterInvalidInvocationError) as frozen:
        db.url = "b"
    assert str(frozen.value).startswith("'Db' is a Pythonic resource and does not support item assignment")


def test_configurable_resource_lifecycle_and_run_config() -> None:
    LOG.clear()
    with build_resources({"db": Db(url="a")}) as r:
        assert r.db == Db(url="a")
        assert r.db.get_resource_context().resource_config == {"url": "a", "timeout": 5, "tag": None}
    assert LOG == [("setup", "a", {"url": "a", "timeout": 5, "tag": None}), ("teardown", "a")]
    with build_resources({"db": Db(url="a")}, resource_config={"db": {"config": {"timeout": 9}}}) as r:
        assert (r.db.url, r.db.timeout) == ("a", 9)
    with build_resources({"db": Db.configure_at_launch()}, resource_config={"db": {"config": {"url": "u"}}}) as r:
        assert r.db.url == "u"
    with (
        pytest.raises(DagsterInvalidConfigError, match='Missing required config entry "db"'),
        build_resources({"db": Db.configure_at_launch()}),
    ):
        pass
    bad = {"db": {"config": {"url": 1}}}
    with (
        pytest.raises(DagsterInvalidConfigError, match="Invalid scalar at path root:resources:db:config:url"),
        build_resources({"db": Db.configure_at_launch()}, resource_config=bad),
    ):
        pass


def test_resource_params_are_the_parameters_annotated_with_a_resource() -> None:
    def fn(context: Any, db: Db, client: ResourceParam[dict[str, int]], x: int) -> None:
        return None

    assert resource_params(fn) == ("db", "client")

    def partly_local(db: Db, other: LocalOnly) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    assert resource_params(partly_local) == ("db",)


# ----- job checks ------------------------------------------------------------------------------------------


@op(required_resource_keys={"foo"})
def needs_foo(context: Any) -> Any:
    return context.resources.foo


@op(out=Out(io_manager_key="mine"))
def to_mine() -> int:
    return 1


def test_an_op_requiring_a_resource_the_job_lacks_is_refused_with_dagsters_message() -> None:
    with pytest.raises(DagsterInvalidDefinitionError) as info:

        @job(resource_defs={"bar": ResourceDefinition.hardcoded_resource(1)})
        def j() -> None:
            needs_foo()

        check_required_resources(j)
    assert str(info.value).startswith(
        "resource with key 'foo' required by op 'needs_foo' was not provided. Please provide a ResourceDefinition "
        "to key 'foo', or change the required key to one of the following keys which points to an "
        "ResourceDefinition: ['io_manager', 'bar']"
    )


def test_an_output_io_manager_the_job_lacks_is_refused_with_dagsters_message() -> None:
    with pytest.raises(DagsterInvalidDefinitionError) as info:

        @job
        def j() -> None:
            to_mine()

        check_required_resources(j)
    assert str(info.value).startswith(
        "io manager with key 'mine' required by output 'result' of op 'to_mine'' was not provided. Please provide "
        "a IOManagerDefinition to key 'mine', or change the required key to one of the following keys which points "
        "to an IOManagerDefinition: ['io_manager']"
    )


def test_a_hook_requiring_a_resource_the_job_lacks_is_refused_with_dagsters_message() -> None:
    from cairn.hooks import success_hook

    @success_hook(required_resource_keys={"missing"})
    def h(context: Any) -> None:
        return None

    @op
    def plain() -> int:
        return 1

    with pytest.raises(DagsterInvalidDefinitionError) as info:

        @job(hooks={h}, resource_defs={"foo": ResourceDefinition.hardcoded_resource(2)})
        def j2() -> None:
            plain()

        check_required_resources(j2)
    assert str(info.value).startswith(
        "resource with key 'missing' required by hook 'h' attached to job 'j2' was not provided. Please provide a "
        "ResourceDefinition to key 'missing', or change the required key to one of the following keys which points "
        "to an ResourceDefinition: ['io_manager', 'foo']"
    )


def test_a_node_hook_requiring_a_resource_the_job_lacks_is_refused_with_dagsters_message() -> None:
    from cairn.hooks import success_hook

    @success_hook(required_resource_keys={"b"})
    def a_hook(context: Any) -> None:
        return None

    @op
    def a_op() -> None:
        return None

    with pytest.raises(DagsterInvalidDefinitionError) as info:

        @job(resource_defs={"a": ResourceDefinition.hardcoded_resource(1)})
        def j() -> None:
            a_op.alias("other").with_hooks({a_hook})()

        check_required_resources(j)
    assert str(info.value) == (
        "resource with key 'b' required by hook 'a_hook' attached to op 'other' was not provided. Please provide a "
        "ResourceDefinition to key 'b', or change the required key to one of the following keys which points to an "
        "ResourceDefinition: ['io_manager', 'a']"
    )


def test_jobs_with_their_resources_pass_and_name_what_they_use() -> None:
    @job(resource_defs={"foo": 1, "mine": mem_io_manager, "unused": 2})
    def j() -> None:
        needs_foo()
        to_mine()

    check_required_resources(j)
    assert job_resource_keys(j) == {"foo", "mine"}
    assert managed_io_manager_key(j, "to_mine", "result") == "mine"
    assert managed_io_manager_key(j, "needs_foo", "result") is None  # Cairn's own store


def test_reexecution_with_an_in_memory_io_manager_is_refused_with_dagsters_message() -> None:
    @job(resource_defs={"io_manager": mem_io_manager, "foo": 1})
    def j() -> None:
        needs_foo()

    @job(resource_defs={"io_manager": fs_io_manager, "foo": 1})
    def k() -> None:
        needs_foo()

    with pytest.raises(DagsterInvariantViolationError) as info:
        check_reexecution_io(j)
    assert str(info.value) == (
        "Cannot perform reexecution with in-memory io managers.\nTo enable reexecution, you can set a persistent io "
        'manager, such as the fs_io_manager, in the resource_defs argument on your job: resource_defs={"io_manager": '
        "fs_io_manager}"
    )
    check_reexecution_io(k)


# ----- IO managers ----------------------------------------------------------------------------------------


def test_in_memory_io_manager_keys_values_by_run_step_and_output() -> None:
    m = InMemoryIOManager()
    m.handle_output(build_output_context(step_key="s", name="result", run_id="r1"), 5)
    m.handle_output(build_output_context(step_key="d", name="result", run_id="r1", mapping_key="k"), 6)
    assert m.values == {("r1", "s", "result"): 5, ("r1", "d", "result", "k"): 6}
    up = build_output_context(step_key="s", name="result", run_id="r1")
    assert m.load_input(build_input_context(upstream_output=up)) == 5
    with pytest.raises(KeyError):
        m.load_input(
            build_input_context(upstream_output=build_output_context(step_key="s", name="result", run_id="r2"))
        )
    assert build_output_context(step_key="s", name="result").get_identifier() == ["__EPHEMERAL_RUN_ID", "s", "result"]


@pytest.mark.parametrize(
    ("step", "mapping_key", "path"),
    [("a", None, "R/a/result"), ("sp", "p", "R/sp/result/p"), ("c[p]", None, "R/c[p]/result")],
)
def test_filesystem_io_manager_has_dagsters_layout(
    tmp_path: Path, step: str, mapping_key: str | None, path: str
) -> None:
    fs = PickledObjectFilesystemIOManager(tmp_path)
    ctx = build_output_context(step_key=step, name="result", run_id="R", mapping_key=mapping_key)
    fs.handle_output(ctx, {"v": step})
    assert pickle.loads((tmp_path / path).read_bytes()) == {"v": step}
    assert fs.load_input(build_input_context(upstream_output=ctx)) == {"v": step}


def test_fs_io_manager_resources(tmp_path: Path) -> None:
    with build_resources(
        {"a": fs_io_manager, "b": FilesystemIOManager(base_dir=str(tmp_path / "b"))},
        resource_config={"a": {"config": {"base_dir": str(tmp_path / "a")}}},
    ) as r:
        ctx = build_output_context(step_key="s", name="result", run_id="R")
        r.a.handle_output(ctx, 1)
        r.b.handle_output(ctx, 2)
    assert pickle.loads((tmp_path / "a/R/s/result").read_bytes()) == 1
    assert pickle.loads((tmp_path / "b/R/s/result").read_bytes()) == 2


def test_io_manager_decorator_and_definitions() -> None:
    class Mine(IOManager):
        def handle_output(self, context: Any, obj: Any) -> None:
            return None

        def load_input(self, context: Any) -> Any:
            return context.upstream_output.name

    @io_manager(config_schema={"p": str})
    def mine(init_context: Any) -> Mine:
        return Mine()

    assert isinstance(mine, IOManagerDefinition) and mine.config_schema == {"p": str}
    bare = io_manager(_bare_io)
    assert isinstance(bare, IOManagerDefinition)
    assert isinstance(as_resource_def(Mine()), IOManagerDefinition)
    with build_resources({"m": mine}, resource_config={"m": {"config": {"p": "x"}}}) as r:
        assert isinstance(r.m, Mine)


def _bare_io(_: Any) -> IOManager:
    return InMemoryIOManager()


def test_managed_output_records_round_trip_and_resolve() -> None:
    rec = ManagedOutput("mem", "run1", "s", "result", None)
    assert ManagedOutput.from_stored(rec.as_json()) == rec
    assert ManagedOutput.from_stored({"x": 1}) is None and ManagedOutput.from_stored(3) is None
    m = InMemoryIOManager()
    m.handle_output(build_output_context(step_key="s", name="result", run_id="run1"), 42)

    @job(resource_defs={"mem": m, "foo": 1})
    def j() -> None:
        needs_foo()

    assert resolve_stored(j, rec.as_json()) == 42
    assert resolve_stored(j, [1, 2]) == [1, 2]


def test_build_op_context_initialises_resources_for_a_direct_call() -> None:
    log: list[str] = []

    @resource
    def gen(_: Any) -> Iterator[int]:
        log.append("up")
        yield 1
        log.append("down")

    with build_op_context(resources={"g": gen, "v": 2}, op_config={"a": 1}, mapping_key="k", run_tags={"t": "v"}) as c:
        assert (c.resources.g, c.resources.v, c.op_config, c.run_id) == (1, 2, {"a": 1}, "EPHEMERAL")
        assert (c.get_mapping_key(), c.has_tag("t"), c.retry_number, log) == ("k", True, 0, ["up"])
        assert needs_foo(build_op_context(resources={"foo": 3})) == 3
    assert log == ["up", "down"]
    with pytest.raises(DagsterInvalidInvocationError) as info:
        build_op_context(op_config={}, config={})
    assert str(info.value) == (
        "Attempted to invoke ``build_op_context`` with both ``op_config``, and its legacy version, ``config``. "
        "Please provide one or the other."
    )
    with pytest.raises(DagsterUnknownResourceError, match="Unknown resource `nothing`"):
        build_op_context().resources.nothing  # noqa: B018


def test_context_manager_resources_and_teardown_errors() -> None:
    import contextlib

    log: list[str] = []

    @resource
    @contextlib.contextmanager
    def managed(_: Any) -> Iterator[str]:
        log.append("enter")
        yield "cm"
        log.append("exit")

    @resource
    def bad_teardown(_: Any) -> Iterator[int]:
        yield 1
        raise RuntimeError("teardown broke")

    @resource
    def empty(_: Any) -> Iterator[int]:
        yield from ()

    with build_resources({"m": managed, "b": bad_teardown}) as r:
        assert (r.m, r.b, log) == ("cm", 1, ["enter"])
    assert log == ["enter", "exit"]
    with (
        pytest.raises(DagsterInvariantViolationError, match="Resource generator e must yield one item"),
        build_resources({"e": empty}),
    ):
        pass


class Credentials(ConfigurableResource):
    key: str

    def setup_for_execution(self, context: Any) -> None:
        self._token = f"token-{self.key}"  # private state may be set, as with pydantic's PrivateAttr
        NESTED.append(("credentials up", self.key))

    def teardown_after_execution(self, context: Any) -> None:
        NESTED.append(("credentials down", self.key))


class Store3(ConfigurableResource):
    credentials: Credentials

    def setup_for_execution(self, context: Any) -> None:
        NESTED.append(("store up", self.credentials._token))


class Plain(ConfigurableResource):
    key: str

    def setup_for_execution(self, context: Any) -> None:
        NESTED.append(("plain up", self.key))


NESTED: list[Any] = []


def test_nested_pythonic_resources_are_set_up_first_and_torn_down_last() -> None:
    NESTED.clear()
    with build_resources({"s3": Store3(credentials=Credentials(key="k"))}) as r:
        assert r.s3.credentials._token == "token-k"
        assert NESTED == [("credentials up", "k"), ("store up", "token-k")]
    assert NESTED[-1] == ("credentials down", "k")


def test_from_resource_context_sets_up_and_the_cm_form_tears_down() -> None:
    NESTED.clear()
    assert Plain.from_resource_context(build_init_resource_context(config={"key": "a"})).key == "a"
    with pytest.raises(DagsterInvariantViolationError, match="use from_resource_context_cm"):
        Credentials.from_resource_context(build_init_resource_context(config={"key": "b"}))
    with Credentials.from_resource_context_cm(build_init_resource_context(config={"key": "c"})) as creds:
        assert creds._token == "token-c"
    assert NESTED == [("plain up", "a"), ("credentials up", "c"), ("credentials down", "c")]


class Token(ConfigurableResource):
    token: str


def test_env_var_fields_are_read_when_the_resources_are_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAIRN_TEST_TOKEN", raising=False)
    defs = {"t": Token(token=EnvVar("CAIRN_TEST_TOKEN"))}
    with pytest.raises(DagsterInvalidConfigError) as info:
        check_resources_config(defs, {}, "j")
    assert info.value.errors[0].split(": ", 1)[1] == (
        "Post processing at path root:resources:t:config:token of original value {'env': 'CAIRN_TEST_TOKEN'} failed:"
        '\nYou have attempted to fetch the environment variable "CAIRN_TEST_TOKEN" which is not set. In order for '
        "this execution to succeed it must be set in this environment."
    )
    monkeypatch.setenv("CAIRN_TEST_TOKEN", "abc")
    with build_resources(defs) as r:
        assert r.t.token == "abc" and type(r.t.token) is str
    assert EnvVar("CAIRN_TEST_TOKEN").get_value() == "abc" and EnvVar("CAIRN_NOPE_X").get_value("d") == "d"


def test_a_job_given_resources_refuses_a_missing_one_when_defined() -> None:
    # Dagster 1.13: with resource_defs given, @job refuses an op's missing resource at once; without, it waits.
    from cairn.dagster import DagsterInvalidDefinitionError, ResourceDefinition, job, op

    @op(required_resource_keys={"db"})
    def load(context: Any) -> int:
        return 1

    @job
    def later() -> None:
        load()

    assert later.name == "later"
    with pytest.raises(DagsterInvalidDefinitionError, match="resource with key 'db' required by op 'load' was not"):

        @job(resource_defs={"other": ResourceDefinition.hardcoded_resource(1)})
        def now() -> None:
            load()
