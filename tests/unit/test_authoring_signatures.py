"""Dagster's authoring signatures in Cairn: positional order, defaults, refusals and their wording (the
expected messages are what Dagster 1.13 prints for the same call, observed with its own venv)."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest

from cairn.context import OpContext, OpExecutionContext, Resources
from cairn.definitions import (
    Array,
    BoolSource,
    Config,
    DagsterTypeCheckDidNotPass,
    DynamicOut,
    DynamicOutput,
    Field,
    In,
    IntSource,
    Noneable,
    NoValue,
    Out,
    Output,
    Permissive,
    RunConfig,
    Selector,
    Shape,
    StringSource,
    check_input_type,
    check_output_type,
    job,
    op,
    resolve_type,
)
from cairn.errors import ConfigError, DagsterInvalidDefinitionError, DagsterUnknownResourceError, DefinitionError
from cairn.retries import RetryPolicy


class Thing:
    pass


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (Out, ["dagster_type", "description", "is_required", "io_manager_key", "metadata", "code_version"]),
        (DynamicOut, ["dagster_type", "description", "is_required", "io_manager_key", "metadata", "code_version"]),
        (In, ["dagster_type", "description", "default_value", "metadata", "asset_key", "asset_partitions"]),
        (Output, ["value", "output_name", "metadata", "data_version"]),
        (DynamicOutput, ["value", "mapping_key", "output_name", "metadata"]),
        (Field, ["config", "default_value", "is_required", "description", "is_secret"]),
    ],
)
def test_positional_order_is_dagsters(cls: type, params: list[str]) -> None:
    positional = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    assert positional[: len(params)] == params


@pytest.mark.parametrize(
    ("made", "attr", "expected"),
    [
        (Out(int), "dagster_type", int),
        (Out(int), "is_required", True),
        (Out(), "dagster_type", NoValue),
        (Out(int, "doc", False), "is_required", False),
        (Out(format="json"), "format", "json"),
        (Out(), "format", "pickle"),
        (DynamicOut(int), "dagster_type", int),
        (DynamicOut(is_required=False), "is_required", False),
        (DynamicOut(), "is_dynamic", True),
        (Out(), "is_dynamic", False),
        (In(int, "doc", 3), "default_value", 3),
        (In(), "default_value", NoValue),
        (Output(1, "x"), "output_name", "x"),
        (Output(1), "output_name", "result"),
        (DynamicOutput(1, "k", "o"), "output_name", "o"),
        (DynamicOutput(1, "k"), "output_name", "result"),
        (Field(int), "required", True),
        (Field(int, default_value=0), "required", False),
        (Field(int, 3), "default", 3),
        (Field(int, is_required=False), "required", False),
    ],
)
def test_defaults_and_positional_values(made: Any, attr: str, expected: Any) -> None:
    assert getattr(made, attr) == expected


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Out("json"),
            "Invalid type: dagster_type must be an instance of DagsterType or a Python type: got json.",
        ),
        (lambda: DynamicOut("json"), "Invalid type: dagster_type must be an instance"),
        (lambda: Out(format="yaml"), "Out(format='yaml') is not one of pickle, json, bytes"),
        (
            lambda: DynamicOutput(1, "a-b"),
            '"a-b" is not a valid name in Dagster. Names must be in regex ^[A-Za-z0-9_]+$.',
        ),
    ],
)
def test_output_declarations_refused(build: Any, message: str) -> None:
    with pytest.raises(DagsterInvalidDefinitionError) as info:
        build()
    assert str(info.value).startswith(message)


def _f() -> int:
    return 1


def _op(**kwargs: Any) -> Any:
    return op(**kwargs)(_f)


@pytest.mark.parametrize(
    ("kwargs", "attr", "expected"),
    [
        ({"tags": {"a": 1, "b": {"x": 1}, "c": "s"}}, "tags", {"a": "1", "b": '{"x": 1}', "c": "s"}),
        ({}, "tags", {}),
        ({"required_resource_keys": {"db", "s3"}}, "required_resource_keys", frozenset({"db", "s3"})),
        ({}, "required_resource_keys", frozenset()),
        ({"version": "v1"}, "code_version", "v1"),
        ({"code_version": "v2"}, "code_version", "v2"),
        ({"pool": "p"}, "pool", "p"),
        ({"retry_policy": RetryPolicy(max_retries=2)}, "retry_policy", RetryPolicy(max_retries=2)),
        ({"name": "renamed"}, "name", "renamed"),
        ({"description": "doc"}, "description", "doc"),
        ({"config_schema": {"n": int}}, "config_schema", {"n": int}),
    ],
)
def test_op_keyword_arguments_are_stored(kwargs: dict[str, Any], attr: str, expected: Any) -> None:
    assert getattr(_op(**kwargs), attr) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "a b"}, '"a b" is not a valid name in Dagster. Names must be in regex ^[A-Za-z0-9_]+$.'),
        ({"tags": "x"}, "Param \"tags\" is not one of ['Mapping']. Got 'x' which is type <class 'str'>."),
        ({"retry_policy": 3}, "Param \"retry_policy\" is not a RetryPolicy. Got 3 which is type <class 'int'>."),
        (
            {"version": "a", "code_version": "b"},
            'Do not use deprecated "version" now that you are using "code_version".',
        ),
        ({"out": {"a b": Out()}}, '"a b" is not a valid name in Dagster.'),
    ],
)
def test_op_arguments_refused_with_dagsters_wording(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        _op(**kwargs)
    assert str(info.value).startswith(message)


def _ctx_underscore(_: Any, x: int) -> int:
    return x


def _ctx_named(context: Any, x: int) -> int:
    return x


def _ctx_leading(_context: Any, x: int) -> int:
    return x


def _ctx_trailing(context_: Any, x: int) -> int:
    return x


def _ctx_typed(c: OpExecutionContext, x: int) -> int:
    return x


def _ctx_none(ctx: Any, x: int) -> int:
    return x


def _no_params() -> int:
    return 1


@pytest.mark.parametrize(
    ("fn", "takes", "inputs"),
    [
        (_ctx_underscore, True, ["x"]),
        (_ctx_named, True, ["x"]),
        (_ctx_leading, True, ["x"]),
        (_ctx_trailing, True, ["x"]),
        (_ctx_typed, True, ["x"]),
        (_ctx_none, False, ["ctx", "x"]),  # Dagster: `ctx` is an input
        (_no_params, False, []),
    ],
)
def test_context_parameter_as_dagster_names_it(fn: Any, takes: bool, inputs: list[str]) -> None:
    defn = op(fn)
    assert (defn.takes_context, defn.inputs) == (takes, inputs)


def test_varargs_and_unknown_ins_refused_with_dagsters_wording() -> None:
    def star(*a: Any) -> None:
        return None

    with pytest.raises(DefinitionError, match="@op 'star' decorated function has positional vararg parameter '\\*a'"):
        op(star)

    def one(x: int) -> int:
        return x

    with pytest.raises(DefinitionError, match="@op 'one' decorated function does not have argument\\(s\\) 'zz'"):
        op(ins={"zz": In()})(one)


def test_annotations_give_types_as_in_dagster() -> None:
    def typed(x: int, y: list[str]) -> str:
        return ""

    def gen() -> typing.Iterator[Output]:
        yield Output(1)

    defn = op(typed)
    assert (defn.ins["x"].dagster_type, defn.ins["y"].dagster_type) == (int, list[str])
    assert defn.outs["result"].dagster_type is str
    assert op(gen).outs["result"].dagster_type is NoValue  # a generator's annotation is not its output's type
    assert op(ins={"x": In(float)})(typed).ins["x"].dagster_type is float  # In wins over the annotation


def test_in_default_value_is_an_input_default() -> None:
    def one(x: int, y: int = 2) -> int:
        return x + y

    defn = op(ins={"x": In(default_value=5)})(one)
    assert defn.input_defaults == {"x": 5, "y": 2}
    assert (defn.fn(), defn.fn(x=1), defn.fn(y=0)) == (7, 3, 5)  # a step that does not pass x gets 5


@pytest.mark.parametrize(
    ("dagster_type", "value", "message"),
    [
        (int, "x", 'expected type "Int". Description: Value "x" of python type "str" must be a int.'),
        (int, True, None),  # Dagster's Int accepts a bool
        (float, 1, 'expected type "Float". Description: Value "1" of python type "int" must be a float.'),
        (str, 1, 'expected type "String". Description: Value "1" of python type "int" must be a string.'),
        (bool, 1, 'expected type "Bool". Description: Value "1" of python type "int" must be a bool.'),
        (
            Thing,
            "x",
            "expected type \"Thing\". Description: Value of type <class 'str'> failed type check for Dagster type "
            f"Thing, expected value to be of Python type {__name__}.Thing.",
        ),
        (list, "x", 'expected type "[Any]". Description: Value "x" of python type "str" must be a list.'),
        (list[int], [1, "a"], 'expected type "[Int]". Description: Value "a" of python type "str" must be a int.'),
        (typing.Optional[int], None, None),  # noqa: UP045 - the typing spelling is what Dagster users write
        (int | None, "x", 'expected type "Int?". Description: Value "x" of python type "str" must be a int.'),
        (dict[str, int], {"a": "b"}, 'expected type "Dict[String,Int]". Description: Value "b" of python'),
        (
            set,
            [1],
            "expected type \"set\". Description: Value of type <class 'list'> failed type check for Dagster type "
            "set, expected value to be of Python type set.",
        ),
        (typing.Any, object(), None),
        (None, 1, None),
        (NoValue, 1, None),
    ],
)
def test_output_type_checks_as_dagster(dagster_type: Any, value: Any, message: str | None) -> None:
    if message is None:
        check_output_type("op", "result", dagster_type, value)
        return
    with pytest.raises(DagsterTypeCheckDidNotPass) as info:
        check_output_type("op", "result", dagster_type, value)
    assert str(info.value).startswith(f'Type check failed for step output "result" - {message}')


def test_input_type_check_names_the_input() -> None:
    with pytest.raises(DagsterTypeCheckDidNotPass, match='Type check failed for step input "x" - expected type "Int"'):
        check_input_type("op", "x", int, "s")


@pytest.mark.parametrize(
    ("dagster_type", "name"),
    [(int, "Int"), (list, "[Any]"), (list[int], "[Int]"), (int | None, "Int?"), (Thing, "Thing"), (None, "Any")],
)
def test_type_display_names(dagster_type: Any, name: str) -> None:
    assert resolve_type(dagster_type).display_name == name


def test_op_context_reads_what_dagster_reads() -> None:
    import logging

    ctx = OpExecutionContext(
        "run1",
        "process[k1]",
        {"n": 1},
        logging.getLogger("t"),
        resources={"db": "conn"},
        retry_number=2,
        job_name="j",
        run_tags={"team": "ml"},
    )
    assert (ctx.op_name, ctx.get_mapping_key(), ctx.retry_number, ctx.job_name) == ("process", "k1", 2, "j")
    assert ctx.resources.db == "conn"
    assert (ctx.has_tag("team"), ctx.get_tag("team"), ctx.has_tag("x"), ctx.run.run_id) == (True, "ml", False, "run1")
    with pytest.raises(DagsterUnknownResourceError, match="Unknown resource `s3`"):
        _ = ctx.resources.s3
    assert OpContext is OpExecutionContext
    plain = OpContext("run1", "a", None, logging.getLogger("t"))
    assert (plain.retry_number, isinstance(plain.resources, Resources), plain.mapping_key) == (0, True, None)


class Inner(Config):
    k: str = "x"


class Greeting(Config):
    name: str
    times: int = 2
    inner: Inner = Inner()


def _greet(config: Greeting) -> str:
    return config.name * config.times + config.inner.k


def test_pythonic_config_parameter_is_the_ops_config() -> None:
    defn = op(_greet)
    assert (defn.inputs, defn.config_class) == ([], Greeting)
    assert set(defn.config_schema) == {"name", "times", "inner"}
    assert defn(config=Greeting(name="z")) == "zzx"  # direct invocation passes the config object


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"name": "a"}, {"name": "a", "times": 2, "inner": {"k": "x"}}),
        ({"name": "a", "inner": {"k": "y"}}, {"name": "a", "times": 2, "inner": {"k": "y"}}),
        ({"name": 3}, 'Invalid scalar at path root:name. Value "3" of type "<class \'int\'>" is not valid'),
        ({}, 'Missing required config entry "name" at the root.'),
        ({"name": "a", "other": 1}, 'Received unexpected config entry "other" at the root.'),
    ],
)
def test_config_classes_check_their_fields(values: dict[str, Any], expected: Any) -> None:
    if isinstance(expected, str):
        with pytest.raises(ConfigError) as info:
            Greeting(**values)
        assert expected in str(info.value)
        return
    assert Greeting(**values).to_config_dict() == expected


def test_run_config_takes_config_objects() -> None:
    made = RunConfig(ops={"greet": Greeting(name="a")}, execution={"config": {}})
    assert made == {
        "ops": {"greet": {"config": {"name": "a", "times": 2, "inner": {"k": "x"}}}},
        "execution": {"config": {}},
    }


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        (Array(int), [1, 2], [1, 2]),
        (Array(int), [1, "a"], 'Invalid scalar at path {config}[1]. Value "a"'),
        (Array(int), 3, "Value at path {config} must be list."),
        ({"n": Noneable(int)}, {}, {"n": None}),
        ({"n": Noneable(int)}, {"n": None}, {"n": None}),
        ({"n": Noneable(int)}, {"n": "x"}, 'Invalid scalar at path {config}:n. Value "x"'),
        (Shape({"a": int}), {"a": 1}, {"a": 1}),
        (Shape({"a": int}), {"a": 1, "b": 2}, 'Received unexpected config entry "b" at path {config}.'),
        (Permissive({"a": int}), {"a": 1, "b": 2}, {"a": 1, "b": 2}),
        (Permissive({"a": int}), {"a": "x"}, 'Invalid scalar at path {config}:a. Value "x"'),
        (Selector({"a": int, "b": str}), {"b": "x"}, {"b": "x"}),
        (Selector({"a": int, "b": str}), {"a": 1, "b": "x"}, "Must specify exactly one key at path {config}"),
        (StringSource, "plain", "plain"),
        (StringSource, {"env": "CAIRN_TEST_AUTHORING_SET"}, "from env"),
        (IntSource, {"env": "CAIRN_TEST_AUTHORING_INT"}, 42),
        (BoolSource, {"env": "CAIRN_TEST_AUTHORING_BOOL"}, True),
        (
            StringSource,
            {"env": "CAIRN_TEST_AUTHORING_UNSET"},
            'fetch the environment variable "CAIRN_TEST_AUTHORING_UNSET"',
        ),
        ({"n": Field(int, default_value=3)}, {}, {"n": 3}),
        ({"n": Field({"m": int})}, {"n": {"m": 1}}, {"n": {"m": 1}}),
    ],
)
def test_dagster_config_types(schema: Any, value: Any, expected: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_TEST_AUTHORING_SET", "from env")
    monkeypatch.setenv("CAIRN_TEST_AUTHORING_INT", "42")
    monkeypatch.setenv("CAIRN_TEST_AUTHORING_BOOL", "true")
    monkeypatch.delenv("CAIRN_TEST_AUTHORING_UNSET", raising=False)

    @op(config_schema=schema)
    def configured_op(context: Any) -> None:
        return None

    @job
    def config_types() -> None:
        configured_op()

    run_config = {"ops": {"configured_op": {"config": value}}}
    if isinstance(expected, str) and expected not in ("plain", "from env"):
        with pytest.raises(ConfigError) as info:
            config_types.op_config(run_config, "configured_op")
        assert expected.format(config="root:ops:configured_op:config") in str(info.value)
        return
    assert config_types.op_config(run_config, "configured_op") == expected
