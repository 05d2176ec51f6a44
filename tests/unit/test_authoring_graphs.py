"""Jobs and graphs as Dagster composes them: node names (``op_2``, aliases, ``outer.inner.op``), invocation
modifiers (alias, tag, hooks, retry policy) and their precedence, graph outputs, @job's arguments, run
config sections and Dagster's refusals (messages observed with Dagster 1.13)."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.definitions import DynamicOut, DynamicOutput, In, JobDefinition, Nothing, job, op, reconstructable
from cairn.errors import (
    ConfigError,
    DagsterInvalidConfigError,
    DagsterInvariantViolationError,
    DefinitionError,
)
from cairn.graphs import GraphOut, graph
from cairn.retries import RetryPolicy


@op
def one() -> int:
    return 1


@op
def add(x: int, y: int = 2) -> int:
    return x + y


@op(retry_policy=RetryPolicy(max_retries=2), tags={"a": "1"})
def flaky() -> int:
    return 1


@op(config_schema={"n": int})
def configured(context: Any) -> int:
    return int(context.op_config["n"])


@graph
def inner(x: Any) -> Any:
    return add(x)


@graph(out={"a": GraphOut(), "b": GraphOut()})
def outer() -> Any:
    v = one()
    return {"a": inner(v), "b": add.alias("plus")(v)}


@job
def nested() -> None:
    a, b = outer()
    add(a, b)


def test_nested_graph_nodes_are_named_as_dagster_names_their_steps() -> None:
    assert nested.step_keys == ["outer.one", "outer.inner.add", "outer.plus", "add"]
    assert nested.deps()["outer.inner.add"] == {"x": ("outer.one", "result")}
    assert nested.deps()["add"] == {"x": ("outer.inner.add", "result"), "y": ("outer.plus", "result")}
    assert nested.graph_output("outer", "a") == ("outer.inner.add", "result")
    assert nested.graph_output("outer.inner") == ("outer.inner.add", "result")
    assert nested.graph_output("add") is None


def test_reused_ops_and_aliases() -> None:
    @job
    def reuse() -> None:
        add(add(one()))
        one.alias("first")()

    assert reuse.step_keys == ["one", "add", "add_2", "first"]


@pytest.mark.parametrize(
    "body",
    [
        lambda: (add.alias("x")(one()), add.alias("x")(one())),
        lambda: (one.alias("one_2")(), one(), one()),
    ],
)
def test_same_node_twice_refused_with_dagsters_wording(body: Any) -> None:
    def twice() -> None:
        body()

    with pytest.raises(
        DefinitionError, match=r"^@job twice invoked the same node \((x|one_2)\) twice without aliasing"
    ):
        job(twice)


def test_invocation_modifiers_and_retry_precedence() -> None:
    hook = object()

    @job(op_retry_policy=RetryPolicy(max_retries=5))
    def modified() -> None:
        flaky.with_retry_policy(RetryPolicy(max_retries=7)).alias("flaky_alias")()
        flaky()
        one.tag({"t": "v"}).tag({"u": "w"})()
        add.with_hooks({hook})(one.alias("two")())

    # Dagster's precedence: the node's policy, then the op's, then the job's op_retry_policy
    got = [modified.retry_policy(s).max_retries for s in ("flaky_alias", "flaky", "one")]  # type: ignore[union-attr]
    assert got == [7, 2, 5]
    assert modified.nodes["flaky_alias"].tags == {"a": "1"}
    assert modified.nodes["one"].tags == {"t": "v", "u": "w"}
    assert modified.nodes["add"].hook_defs == frozenset({hook})
    assert modified.nodes["one"].hook_defs == frozenset()


def test_graph_hooks_reach_its_ops_and_retry_policy_does_not() -> None:
    hook = object()

    @job
    def hooked() -> None:
        inner.with_hooks({hook}).with_retry_policy(RetryPolicy(max_retries=9))(one())

    assert hooked.nodes["inner.add"].hook_defs == frozenset({hook})
    assert hooked.retry_policy("inner.add") is None  # as Dagster: a graph node's policy is not its ops'


def test_op_with_retry_policy_outside_a_body_runs_the_op() -> None:
    assert add.alias("other")(1) == 3
    assert add.with_retry_policy(RetryPolicy())(1, y=5) == 6


def test_graph_called_outside_a_body_refused() -> None:
    with pytest.raises(
        DagsterInvariantViolationError, match="Attempted to call graph 'inner' outside of a composition"
    ):
        inner(1)


def test_graph_output_refusals() -> None:
    def partial() -> Any:
        return {"a": one()}

    with pytest.raises(
        DefinitionError, match=r"@graph 'partial' has unmapped output 'b'\. Remove it or return a value"
    ):

        @job
        def uses() -> None:
            graph(out={"a": GraphOut(), "b": GraphOut()})(partial)()


def test_graph_tuple_outputs_in_declared_order_and_to_job() -> None:
    @graph(out={"first": GraphOut(), "second": GraphOut()})
    def pair() -> Any:
        return one(), add.alias("plus")(one())

    @graph
    def whole() -> None:
        a, b = pair()
        add(a, b)

    made = whole.to_job(name="whole_job", tags={"k": "v"})
    assert made.step_keys == ["pair.one", "pair.one_2", "pair.plus", "add"]
    assert (made.name, made.tags, made.graph_output("pair", "second")) == (
        "whole_job",
        {"k": "v"},
        ("pair.plus", "result"),
    )


def test_dynamic_outputs_through_graphs() -> None:
    @op(out=DynamicOut())
    def split() -> Any:
        yield DynamicOutput(1, "a")

    @graph
    def per_key(x: Any) -> Any:
        return add(x)

    @job
    def fan() -> None:
        add.alias("total")(split().map(per_key).collect())

    assert fan.mapped() == {"per_key.add": ("split", "result")}
    assert fan.collects() == {"total": {"x": ("per_key.add", "result")}}


def test_job_arguments_are_stored() -> None:
    from cairn.hooks import success_hook

    io = object()

    @success_hook
    def hook(context: Any) -> None:  # a real hook: with resource_defs given, the job checks its hooks' resources
        pass

    @job(
        name="stored",
        description="doc",
        resource_defs={"io_manager": io},
        config={"ops": {"configured": {"config": {"n": 3}}}},
        tags={"team": "ml"},
        hooks={hook},
        metadata={"m": 1},
        logger_defs={"console": object()},
        op_retry_policy=RetryPolicy(max_retries=1),
    )
    def body() -> None:
        configured()

    assert (body.name, body.description, body.resource_defs, body.hook_defs) == (
        "stored",
        "doc",
        {"io_manager": io},
        frozenset({hook}),
    )
    assert body.op_config(None, "configured") == {"n": 3}  # the job's config is the run's default
    assert body.op_config({"ops": {"configured": {"config": {"n": 4}}}}, "configured") == {"n": 4}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"op_retry_policy": {"max_retries": 1}}, 'Param "op_retry_policy" is not a RetryPolicy.'),
        ({"hooks": [1]}, "Param \"hook_defs\" is not one of ['frozenset', 'set']. Got [1]"),
        ({"name": "a b"}, '"a b" is not a valid name in Dagster.'),
        ({"partitions_def": object()}, "partitions_def: Cairn has no partitioned jobs"),
    ],
)
def test_job_arguments_refused(kwargs: dict[str, Any], message: str) -> None:
    def body() -> None:
        one()

    with pytest.raises(DefinitionError) as info:
        job(**kwargs)(body)
    assert str(info.value).startswith(message)


@job
def config_job() -> None:
    configured()
    inner.alias("g")(configured.alias("inner_cfg")())


@pytest.mark.parametrize(
    ("run_config", "error"),
    [
        ({"ops": {"configured": {"config": {"n": 1}}, "inner_cfg": {"config": {"n": 2}}}}, None),
        (
            {
                "ops": {"configured": {"config": {"n": 1}}, "inner_cfg": {"config": {"n": 2}}},
                "execution": {"config": {}},
            },
            None,
        ),
        (
            {
                "ops": {"configured": {"config": {"n": 1}}, "inner_cfg": {"config": {"n": 2}}},
                "loggers": {"console": {}},
            },
            None,
        ),
        ({"foo": 1}, 'Received unexpected config entry "foo" at the root.'),
        ({"ops": {"nope": {}}}, 'Received unexpected config entry "nope" at path root:ops.'),
        ({"ops": {"g.add": {}}}, 'Received unexpected config entry "g.add" at path root:ops.'),
        ({"ops": {"g": {"ops": {"zz": {}}}}}, 'Received unexpected config entry "zz" at path root:ops:g:ops.'),
        ({"ops": {"g": {"zz": {}}}}, 'Received unexpected config entry "zz" at path root:ops:g.'),
        ({"ops": {"g": 3}}, "Value at path root:ops:g must be dict."),
        ({"ops": 3}, "Value at path root:ops must be dict."),
        ({"execution": {"bogus": {}}}, 'Received unexpected config entry "bogus" at path root:execution.'),
        ({}, 'Missing required config entry "ops" at the root.'),
        ({"ops": {"inner_cfg": {"config": {"n": 2}}}}, 'Missing required config entry "configured" at path root:ops.'),
        (
            {"ops": {"configured": {"config": {"n": "x"}}, "inner_cfg": {"config": {"n": 2}}}},
            'Invalid scalar at path root:ops:configured:config:n. Value "x" of type "<class \'str\'>" is not valid for '
            'expected type "Int".',
        ),
        (
            {"ops": {"configured": {"config": {"n": 1, "m": 2}}, "inner_cfg": {"config": {"n": 2}}}},
            'Received unexpected config entry "m" at path root:ops:configured:config. Expected: "{ n: Int }".',
        ),
    ],
)
def test_run_config_checked_with_dagsters_wording(run_config: dict[str, Any], error: str | None) -> None:
    if error is None:
        config_job.validate_run_config(run_config)
        return
    with pytest.raises(DagsterInvalidConfigError) as info:
        config_job.validate_run_config(run_config)
    assert isinstance(info.value, ConfigError)
    assert str(info.value).startswith(f"Error in config for job config_job\n    Error 1: {error}")


def test_nested_op_config_is_read_from_its_graphs_section_and_flat_key() -> None:
    @graph(config={"ops": {"configured": {"config": {"n": 8}}}})
    def holder() -> None:
        configured()

    @job
    def with_defaults() -> None:
        holder()

    assert with_defaults.op_config(None, "holder.configured") == {"n": 8}
    nested_cfg = {"ops": {"holder": {"ops": {"configured": {"config": {"n": 9}}}}}}
    assert with_defaults.op_config(nested_cfg, "holder.configured") == {"n": 9}
    assert with_defaults.op_config({"ops": {"holder.configured": {"config": {"n": 10}}}}, "holder.configured") == {
        "n": 10
    }


def define_nested() -> JobDefinition:
    return nested


def test_reconstructable_takes_a_job_or_a_module_level_function() -> None:
    assert reconstructable(nested) is nested
    built = reconstructable(define_nested)
    assert built is nested
    assert built.module_ref == f"{__name__}:define_nested"


def test_reconstructable_refusals_with_dagsters_wording() -> None:
    def local() -> JobDefinition:
        return nested

    with pytest.raises(DagsterInvariantViolationError, match=r"^Reconstructable target can not be a lambda"):
        reconstructable(lambda: nested)
    with pytest.raises(
        DagsterInvariantViolationError,
        match=r'^Reconstructable target "local" has a different __qualname__ ".*<locals>\.local" indicating it is '
        r"not defined at module scope",
    ):
        reconstructable(local)


def test_nothing_inputs_order_steps_without_values() -> None:
    @op(ins={"start": In(Nothing)})
    def after(x: int) -> int:
        return x

    @job
    def ordered() -> None:
        after(one(), start=[one.alias("first")(), one.alias("second")()])
        after.alias("unconnected")(one.alias("third")())  # a Nothing input may stay unconnected

    assert after.positional_inputs == ["x"] and after.nothing_inputs == frozenset({"start"})
    assert ordered.deps()["after"] == {
        "x": ("one", "result"),
        "start": ("first", "result"),
        "start__1": ("second", "result"),
    }
    assert ordered.nodes["after"].inputs.keys() == {"x"}  # the step loads only x
    assert ordered.deps()["unconnected"] == {"x": ("third", "result")}


def test_nothing_input_that_is_a_parameter_refused() -> None:
    def uses(start: int) -> int:
        return start

    with pytest.raises(DefinitionError, match="input 'start' is In\\(Nothing\\), an ordering-only input"):
        op(ins={"start": In(Nothing)})(uses)


def test_job_with_hooks_adds_job_level_hooks() -> None:
    first, second = object(), object()
    hooked = nested.with_hooks({first})
    assert hooked.hook_defs == frozenset({first}) and nested.hook_defs == frozenset()
    assert hooked.with_hooks({second}).hook_defs == frozenset({first, second})


def test_configured_ops_carry_their_config() -> None:
    fixed = configured.configured({"n": 3}, name="fixed")
    mapped = configured.configured(lambda v: {"n": v * 2}, name="mapped", config_schema=int)

    @job(op_retry_policy=RetryPolicy(max_retries=3))
    def uses() -> None:
        fixed()
        mapped.with_retry_policy(RetryPolicy(max_retries=1))()

    assert (fixed.name, configured.name) == ("fixed", "configured")
    assert uses.op_config(None, "fixed") == {"n": 3}
    assert uses.op_config({"ops": {"mapped": {"config": 5}}}, "mapped") == {"n": 10}
    assert uses.retry_policy("mapped").max_retries == 1  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match='Missing required config entry "mapped" at path root:ops'):
        uses.validate_run_config({"ops": {}})


def test_fan_in_of_a_list_of_outputs() -> None:
    @op
    def total(items: list[int]) -> int:
        return sum(items)

    @job
    def fanned() -> None:
        total([one(), one.alias("two")()])
        total.alias("none_in")([])

    assert fanned.deps()["total"] == {"items__0": ("one", "result"), "items__1": ("two", "result")}
    assert fanned.nodes["total"].op.fn(items__0=1, items__1=5) == 6  # the parts gathered into the list
    assert fanned.nodes["none_in"].op.fn() == 0
    assert total.inputs == ["items"]  # the op itself is unchanged


def test_fan_in_of_mapped_outputs_refused() -> None:
    @op(out=DynamicOut())
    def split() -> Any:
        yield DynamicOutput(1, "a")

    def body() -> None:
        split().map(lambda v: add([add(v)]))

    with pytest.raises(DefinitionError, match=r"fans in add\.result, a mapped or dynamic output"):
        job(body)


@op(out=DynamicOut())
def dyn() -> Any:
    yield DynamicOutput(1, "a")


@op(out=DynamicOut())
def dyn_echo(x: Any) -> Any:
    yield DynamicOutput(x, "b")


def _fan_in_of_mapped() -> None:
    numbers: list[Any] = []
    dyn().map(numbers.append)
    add(numbers)


def _two_maps() -> None:
    dyn().map(lambda x: dyn().map(lambda y: add(x, y)))


def _collect_then_per_key() -> None:
    x = dyn()
    x.map(lambda y: add(x.collect(), y))


def _per_key_then_collect() -> None:
    x = dyn()
    x.map(lambda y: add(y, x.collect()))


@graph
def _dyn_in_graph(a: Any) -> None:
    dyn_echo(a).map(add)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (lambda: add(dyn()), "In @job refused, received the dynamic output result from op 'dyn' directly. "),
        (lambda: add(dyn().map(add)), "In @job refused, received the dynamic output result from op 'add' directly."),
        (
            _fan_in_of_mapped,
            "Currently, items in a fan-in dependency cannot be downstream of dynamic outputs. Problematic "
            'dependency on dynamic output "dyn:result".',
        ),
        (
            _two_maps,
            "op 'add' cannot be downstream of more than one dynamic output. It is downstream of both \"dyn_2:result\" "
            'and "dyn:result"',
        ),
        (
            _collect_then_per_key,
            "op 'add' cannot be both downstream of dynamic output dyn:result and collect over dynamic output "
            "dyn:result.",
        ),
        (
            _per_key_then_collect,
            "op 'add' cannot both collect over dynamic output dyn:result and be downstream of the dynamic output "
            "dyn:result.",
        ),
        (
            lambda: dyn().map(_dyn_in_graph),
            'graph \'_dyn_in_graph\' cannot be downstream of dynamic output "dyn:result" since input "a" maps to a '
            "node that is already downstream of another dynamic output.",
        ),
    ],
)
def test_dynamic_refusals_in_dagsters_words(body: Any, message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        job(name="refused")(body)
    assert str(info.value).startswith(message)


def test_a_collector_inside_the_map_it_collects_is_fine_without_a_per_key_input() -> None:
    @job
    def both() -> None:
        d = dyn()
        per_key = d.map(lambda x: add(add.alias("total")(d.map(add.alias("each")).collect()), x))
        add.alias("final")(per_key.collect())

    assert "total" not in both.mapped() and both.mapped()["add"] == ("dyn", "result")
    assert both.collects()["total"] == {"x": ("each", "result")}


@graph
def takes_x(x: Any) -> Any:
    return add(x)


def test_graph_inputs_take_input_values_in_to_job() -> None:
    made = takes_x.to_job(input_values={"x": 4})
    assert made.deps() == {"add": {}} and made.nodes["add"].op.fn() == 6
    assert made.with_input_values({"x": 10}).nodes["add"].op.fn() == 12
    made.validate_run_config(None)


def test_input_values_refusals() -> None:
    with pytest.raises(DefinitionError, match="Input value provided for key 'z', but job has no top-level input"):
        takes_x.to_job(input_values={"z": 1})

    def body() -> None:
        one()

    with pytest.raises(DefinitionError, match=r"^Error when constructing JobDefinition 'no_inputs': Input value"):
        job(name="no_inputs", input_values={"x": 5})(body)
    unset = takes_x.to_job()
    assert unset.missing_inputs == ["x"]
    with pytest.raises(ConfigError, match='Missing required config entry "inputs" at the root'):
        unset.validate_run_config(None)
