"""Authoring ops and jobs with Dagster's names, signatures and defaults, so that porting a job is changing imports.

``@op`` turns a function into an `OpDefinition`; ``@job`` (and ``@graph``, `cairn.graphs`) runs its body
once, at definition time, with ops *recording* their calls instead of running, which yields the job's
graph: nodes (one per op call, named ``op_2``, ``op_3`` when an op is used again, or by ``op.alias(name)``;
an op inside a graph ``outer`` is the node ``outer.op``, as Dagster names its step) and, for each node
input, the upstream node and output it reads. Each node is one step of a run.

Dynamic fan-out, as Dagster writes it: an op with a `DynamicOut` yields ``DynamicOutput(value,
mapping_key=...)``; in a job body its call returns a handle whose ``.map(fn)`` runs `fn` once at
definition time with a per-key value, so every op `fn` calls on it is *mapped* (one step ``op[key]`` per
key at run time), and whose ``.collect()`` gives a downstream op the list of all keys' values::

    @job
    def fanout():
        results = split().map(process)          # process[k] for each key k split emits
        scores = results.map(lambda r: score(r, model()))   # same dimension; model() is broadcast
        summarize(scores.collect())             # one step, reads [score[k] for k in keys]

One level of fan-out (see `cairn.dynamic`): a mapped op has no dynamic output, reads one dimension, and
an op outside the map reads a mapped op only through ``.collect()``.

Types: a Python type given as an `Out`'s or `In`'s ``dagster_type`` (or as the op function's annotation)
is checked when the step runs, with Dagster's `DagsterTypeCheckDidNotPass` and wording
(`check_output_type`, `check_input_type`).

Inputs, as Dagster's: ``In(Nothing)`` orders a step without a value (in `JobDefinition.deps`, as
``start``, ``start__1``... for a list, never loaded); a list of outputs is a fan-in (the step's inputs
``items__0``, ``items__1``..., gathered into the list ``items`` by the node's op); ``In(default_value=...)``
and a graph's `input_values` reach the op as values for unconnected inputs. Config, as Dagster's: a
`config_schema` (types, dicts, `Field`, `Array`, `Noneable`, `Shape`, `Permissive`, `Selector`, the
`*Source` scalars) or a ``config: SomeConfig`` parameter (`Config`); run config sections ``ops`` (nested
per graph: ``ops.outer.ops.inner.ops.op``), ``resources``, ``execution``, ``loggers``, checked with Dagster's
wording (`JobDefinition.validate_run_config`), the job's `config` as the run's default.

Parts live in their own modules, re-exported here: Dagster's types and their checks in `cairn.dagster_types`,
config in `cairn.config_types`, `JobDefinition` (and run config validation) and the executors in `cairn.jobs`.
"""

from __future__ import annotations

import collections
import copy
import functools
import hashlib
import inspect
import sys
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, overload

from cairn import dynamic

# re-exported: op config and run config live in cairn.config_types
from cairn.config_types import Array as Array
from cairn.config_types import BoolSource as BoolSource
from cairn.config_types import Config as Config
from cairn.config_types import ConfigType as ConfigType
from cairn.config_types import Field as Field
from cairn.config_types import IntSource as IntSource
from cairn.config_types import Noneable as Noneable
from cairn.config_types import Permissive as Permissive
from cairn.config_types import RunConfig as RunConfig
from cairn.config_types import Selector as Selector
from cairn.config_types import Shape as Shape
from cairn.config_types import StringSource as StringSource
from cairn.config_types import _Configured
from cairn.config_types import check_config as check_config
from cairn.config_types import config_schema_of as config_schema_of
from cairn.config_types import config_type_name as config_type_name
from cairn.config_types import merge_config as merge_config
from cairn.context import OpContext as OpContext  # re-exported: the op context lives in cairn.context
from cairn.context import OpExecutionContext
from cairn.dagster_types import _NAME, _param_error

# re-exported: Dagster's types, NoValue and the name check live in cairn.dagster_types
from cairn.dagster_types import ANY_TYPE as ANY_TYPE
from cairn.dagster_types import NAME_PATTERN as NAME_PATTERN
from cairn.dagster_types import NOTHING_TYPE as NOTHING_TYPE
from cairn.dagster_types import Nothing as Nothing
from cairn.dagster_types import NoValue as NoValue
from cairn.dagster_types import TypeSpec as TypeSpec
from cairn.dagster_types import _tags as _tags
from cairn.dagster_types import check_input_type as check_input_type
from cairn.dagster_types import check_name as check_name
from cairn.dagster_types import check_output_type as check_output_type
from cairn.dagster_types import resolve_type as resolve_type
from cairn.dagster_types import type_error as type_error
from cairn.errors import DagsterInvariantViolationError, DefinitionError
from cairn.errors import DagsterTypeCheckDidNotPass as DagsterTypeCheckDidNotPass  # re-exported
from cairn.io import FORMATS

# re-exported: JobDefinition and the executors live in cairn.jobs
from cairn.jobs import RUN_CONFIG_SECTIONS as RUN_CONFIG_SECTIONS
from cairn.jobs import ExecutorDefinition as ExecutorDefinition
from cairn.jobs import JobDefinition as JobDefinition
from cairn.jobs import _job_args
from cairn.jobs import in_process_executor as in_process_executor
from cairn.jobs import multi_or_in_process_executor as multi_or_in_process_executor
from cairn.jobs import multiprocess_executor as multiprocess_executor
from cairn.retries import RetryPolicy

# --- outputs, inputs, the values an op yields ----------------------------------------------------------------


@dataclass(frozen=True)
class Out:
    """An op output, Dagster's signature: ``Out(int)``, ``Out(is_required=False)``. `is_required=False` lets
    the op omit it (its consumers are then SKIPPED). Cairn's `format` (keyword-only) is how the value is
    stored: "pickle" (default), "json" or "bytes"."""

    dagster_type: Any = NoValue
    description: str | None = None
    is_required: bool = True
    io_manager_key: str | None = None
    metadata: Mapping[str, Any] | None = field(default=None, compare=False)
    code_version: str | None = None
    format: str = field(default="pickle", kw_only=True)

    def __post_init__(self) -> None:
        resolve_type(self.dagster_type)
        if self.format not in FORMATS:
            raise DefinitionError(f"Out(format={self.format!r}) is not one of {', '.join(FORMATS)}")
        if not isinstance(self.is_required, bool):
            raise _param_error("is_required", "a bool", self.is_required)
        if self.io_manager_key is not None and not isinstance(self.io_manager_key, str):
            raise _param_error("io_manager_key", "a str", self.io_manager_key)

    @property
    def is_dynamic(self) -> bool:
        return False


@dataclass(frozen=True)
class DynamicOut(Out):
    """A dynamic output (Dagster's signature, as `Out`): the op yields ``DynamicOutput(value, mapping_key=...)``
    any number of times (zero included), each key's value stored on its own in `format`; ops mapped over
    it run once per key. ``is_required=False`` lets the op emit no key at all (its mapped ops are skipped)."""

    @property
    def is_dynamic(self) -> bool:
        return True


@dataclass(frozen=True)
class In:
    """An op input's declaration (the input itself is the function's parameter): its type, checked when the
    step loads it, and a default value used when nothing is connected to it."""

    dagster_type: Any = NoValue
    description: str | None = None
    default_value: Any = NoValue
    metadata: Mapping[str, Any] | None = field(default=None, compare=False)
    asset_key: Any = None
    asset_partitions: Any = None
    input_manager_key: str | None = None

    def __post_init__(self) -> None:
        resolve_type(self.dagster_type)


@dataclass(frozen=True)
class Output:
    """A value an op yields for one of its outputs: ``yield Output(value, "a")``."""

    value: Any
    output_name: str = "result"
    metadata: Mapping[str, Any] | None = field(default=None, compare=False)
    data_version: Any = None
    tags: Mapping[str, str] | None = field(default=None, kw_only=True, compare=False)


@dataclass(frozen=True)
class DynamicOutput:
    """One key's value of a dynamic output: ``yield DynamicOutput(value, mapping_key="shard_1")``.

    Mapping keys are 1 to 100 letters, digits or underscores, unique per output (`cairn.dynamic.check_key`)."""

    value: Any
    mapping_key: str
    output_name: str = "result"
    metadata: Mapping[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.mapping_key, str) or not _NAME.match(self.mapping_key):
            raise dynamic.MappingKeyError(
                f'"{self.mapping_key}" is not a valid name in Dagster. Names must be in regex {NAME_PATTERN}. '
                f"(Cairn: DynamicOutput mapping_key {self.mapping_key!r} of output {self.output_name!r} is not valid: "
                f"a mapping key names the step op[key]; replace other characters, e.g. key.replace('-', '_').)"
            )
        if self.output_name is None:
            object.__setattr__(self, "output_name", "result")


def _config_param(fn: Callable[..., Any], hints: Mapping[str, Any]) -> type[Config] | None:
    """The `Config` class of an op function's ``config`` parameter (Dagster's Pythonic config), if any."""
    t = hints.get("config")
    return t if isinstance(t, type) and issubclass(t, Config) else None


def _defaulting(fn: Callable[..., Any], defaults: Mapping[str, Any]) -> Callable[..., Any]:
    """`fn` with `defaults` for the keyword arguments a call leaves out (``In(default_value=...)``)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **{**defaults, **kwargs})

    return run


def _with_config(fn: Callable[..., Any], cls: type[Config], passes_context: bool) -> Callable[..., Any]:
    """`fn` called with ``config=cls(**op_config)``, taking the context first (to read the op config)."""

    @functools.wraps(fn)
    def run(context: Any, *args: Any, **kwargs: Any) -> Any:
        given = context.op_config
        kwargs["config"] = given if isinstance(given, cls) else cls(**(given or {}))
        return fn(context, *args, **kwargs) if passes_context else fn(*args, **kwargs)

    return run


# --- ops -----------------------------------------------------------------------------------------------------

#: Dagster's names for an op function's context parameter (its first parameter).
CONTEXT_NAMES = frozenset({"context", "_", "_context", "context_"})
_GENERATOR_ORIGINS = (Iterator, Iterable, collections.abc.Generator, collections.abc.AsyncIterator)


def takes_context(params: Sequence[inspect.Parameter], hints: Mapping[str, Any]) -> bool:
    """Whether an op function's first parameter is its context: named as Dagster names it (``context``, ``_``,
    ``_context``, ``context_``) or annotated with the context type."""
    if not params:
        return False
    first = params[0]
    hint = hints.get(first.name)
    return first.name in CONTEXT_NAMES or (isinstance(hint, type) and issubclass(hint, OpExecutionContext))


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The function's resolved annotations; none when one cannot be resolved (a local forward reference)."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return {}


def _return_type(fn: Callable[..., Any], hints: Mapping[str, Any]) -> Any:
    """The type an op's single output takes from the return annotation (Dagster's inference), or NoValue:
    generator functions, ``Iterator[...]``, ``Output``/``DynamicOutput`` and ``None`` annotations give none."""
    t = hints.get("return", NoValue)
    if t is NoValue or t is None or type(None) is t or inspect.isgeneratorfunction(fn):
        return NoValue
    origin = typing.get_origin(t) or t
    if origin in _GENERATOR_ORIGINS or origin in (Output, DynamicOutput):
        return NoValue
    try:
        resolve_type(t)
    except DefinitionError:
        return NoValue
    return t


def _resource_params(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The parameters that are resources, not inputs (annotated with a `ConfigurableResource` class or
    ``ResourceParam[...]``, as Dagster reads them; `cairn.resources` decides)."""
    from cairn.resources import resource_params  # cairn.resources builds on the op context, not on ops

    return tuple(resource_params(fn))


def _resource_keys(keys: object) -> frozenset[str]:
    if keys is None:
        return frozenset()
    if isinstance(keys, str):
        return frozenset({keys})
    if not isinstance(keys, Iterable) or not all(isinstance(k, str) for k in keys):
        raise _param_error("required_resource_keys", "a set of str", keys)
    return frozenset(keys)


def _retry_policy(policy: object) -> RetryPolicy | None:
    if policy is not None and not isinstance(policy, RetryPolicy):
        raise _param_error("retry_policy", "a RetryPolicy", policy)
    return policy


class NodeModifiers:
    """What an op and a graph share: Dagster's per-node modifiers, each a `PendingNodeInvocation` of it."""

    def alias(self, name: str) -> PendingNodeInvocation:
        """This op (graph) under another node name in a job body: ``add.alias("add_again")(x)``."""
        return PendingNodeInvocation(self).alias(name)

    def tag(self, tags: Mapping[str, str] | None) -> PendingNodeInvocation:
        """With more tags for one node: ``op.tag({"team": "data"})()``."""
        return PendingNodeInvocation(self).tag(tags)

    def with_hooks(self, hook_defs: AbstractSet[Any]) -> PendingNodeInvocation:
        """With hooks for one node (of a graph: for every op of that use of it): ``op.with_hooks({notify})()``."""
        return PendingNodeInvocation(self).with_hooks(hook_defs)

    def with_retry_policy(self, retry_policy: RetryPolicy) -> PendingNodeInvocation:
        """With a retry policy for one node (it wins over the op's and the job's; as in Dagster, a graph
        node's policy is not read for its ops)."""
        return PendingNodeInvocation(self).with_retry_policy(retry_policy)


class OpDefinition(NodeModifiers):
    """An op: a function with named inputs (its parameters) and named outputs. Dagster's constructor order;
    `@op` is how ops are usually declared."""

    def __init__(
        self,
        compute_fn: Callable[..., Any],
        name: str | None = None,
        ins: Mapping[str, In] | None = None,
        outs: Mapping[str, Out] | Out | None = None,
        description: str | None = None,
        config_schema: Any = None,
        required_resource_keys: AbstractSet[str] | None = None,
        tags: Mapping[str, Any] | None = None,
        version: str | None = None,
        retry_policy: RetryPolicy | None = None,
        code_version: str | None = None,
        pool: str | None = None,
    ) -> None:
        self.fn = compute_fn
        self.retry_policy = _retry_policy(retry_policy)  # how a failed step of this op is retried (`cairn.retries`)
        self.tags = _tags(tags)
        self.required_resource_keys = _resource_keys(required_resource_keys)
        self.name = check_name(name or getattr(compute_fn, "__name__", None), "op name")
        if version is not None and code_version is not None:
            raise DefinitionError('Do not use deprecated "version" now that you are using "code_version".')
        self.explicit_code_version = code_version or version
        self.pool = pool
        self.config_schema = config_schema
        self.description = description or inspect.getdoc(compute_fn)
        hints = _type_hints(compute_fn)
        params = list(inspect.signature(compute_fn).parameters.values())
        self.takes_context = takes_context(params, hints)
        self.resource_params = _resource_params(compute_fn)
        skip = {*self.resource_params, *(["config"] if self._pythonic_config(hints) else [])}
        inputs = [p for p in (params[1:] if self.takes_context else params) if p.name not in skip]
        self._set_inputs(inputs, dict(ins or {}), hints)
        self._set_outs(outs, hints)
        if self.config_class is not None:
            self.fn = _with_config(self.fn, self.config_class, self.takes_context)
            self.takes_context = True

    def _pythonic_config(self, hints: Mapping[str, Any]) -> bool:
        """A ``config: SomeConfig`` parameter makes the op's config schema that class's fields."""
        self.user_fn = self.fn
        self.config_class = _config_param(self.fn, hints)
        if self.config_class is None:
            return False
        if self.config_schema is not None:
            raise DefinitionError(
                f"@op '{self.name}' has a config parameter of type {self.config_class.__name__} and also "
                f"config_schema; give one of them"
            )
        self.config_schema = config_schema_of(self.config_class)
        return True

    def _set_inputs(self, params: list[inspect.Parameter], ins: dict[str, In], hints: Mapping[str, Any]) -> None:
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                kind = "positional vararg" if p.kind is p.VAR_POSITIONAL else "keyword vararg"
                stars = "*" if p.kind is p.VAR_POSITIONAL else "**"
                raise DefinitionError(
                    f"@op '{self.name}' decorated function has {kind} parameter '{stars}{p.name}'. @op decorated "
                    f"functions should only have keyword arguments that match input names and, if system information "
                    f"is required, a first positional parameter named 'context'."
                )
        self.inputs: list[str] = [p.name for p in params]
        #: ordering-only inputs (``In(Nothing)``): not parameters, never loaded, may stay unconnected
        self.nothing_inputs = frozenset(n for n, i in ins.items() if i.dagster_type is Nothing and n not in self.inputs)
        self.inputs += sorted(self.nothing_inputs)
        unknown = sorted(set(ins) - set(self.inputs))
        if unknown:
            raise DefinitionError(
                f"@op '{self.name}' decorated function does not have argument(s) '{', '.join(unknown)}'. "
                f"@op-decorated functions should have an argument for each of their Ins, except for Ins that "
                f"have the Nothing dagster_type. Alternatively, they can accept **kwargs."
            )
        for p in params:
            declared = ins.get(p.name, In())
            if declared.dagster_type is Nothing:
                raise DefinitionError(
                    f"@op '{self.name}': input '{p.name}' is In(Nothing), an ordering-only input, so it must not be "
                    f"a parameter of the function; remove the parameter"
                )
            if declared.dagster_type is NoValue and p.name in hints:
                declared = replace(declared, dagster_type=hints[p.name])
            if declared.default_value is NoValue and p.default is not p.empty:
                declared = replace(declared, default_value=p.default)
            ins[p.name] = declared
        self.ins: dict[str, In] = {n: ins[n] for n in self.inputs}  # Nothing inputs last
        self.input_defaults: dict[str, Any] = {
            n: i.default_value for n, i in self.ins.items() if i.default_value is not NoValue
        }
        declared_only = {
            p.name: self.input_defaults[p.name]
            for p in params
            if p.default is p.empty and p.name in self.input_defaults
        }
        if declared_only:  # In(default_value=...) on a parameter without one: the call gets it when unconnected
            self.fn = _defaulting(self.fn, declared_only)

    def _set_outs(self, outs: Mapping[str, Out] | Out | None, hints: Mapping[str, Any]) -> None:
        if isinstance(outs, Out):
            outs = {"result": outs}
        if outs is not None and not isinstance(outs, Mapping):
            raise _param_error("out", "an Out or a dict of Out", outs)
        given = dict(outs) if outs else {"result": Out()}
        for out_name, out in given.items():
            check_name(out_name, "output name")
            if not isinstance(out, Out):
                raise _param_error(f"out[{out_name!r}]", "an Out", out)
        if len(given) == 1:
            ((only, out),) = given.items()
            if out.dagster_type is NoValue and not out.is_dynamic:
                returned = _return_type(self.fn, hints)
                if returned is not NoValue:
                    given[only] = replace(out, dagster_type=returned)
        self.outs: dict[str, Out] = given
        self.dynamic_outs: tuple[str, ...] = tuple(n for n, o in self.outs.items() if o.is_dynamic)

    @property
    def compute_fn(self) -> Callable[..., Any]:
        return self.user_fn

    @property
    def positional_inputs(self) -> list[str]:
        """The inputs in the order a call in a job body passes them positionally."""
        return [i for i in self.inputs if i not in self.nothing_inputs]

    @property
    def version(self) -> str | None:
        return self.explicit_code_version

    def __repr__(self) -> str:
        return f"<op {self.name}>"

    @functools.cached_property
    def code_version(self) -> str:
        """The op's code version: `code_version=` when given, else a hash of its source (`src:` + 12 hex
        digits; of its bytecode when the source cannot be read). Re-executing with `Stale` re-runs the
        steps whose version (or config) differs from the one that produced the parent's outputs."""
        if self.explicit_code_version:
            return self.explicit_code_version
        try:
            text = inspect.getsource(self.user_fn).encode()
        except (OSError, TypeError):
            code = getattr(self.user_fn, "__code__", None)
            text = code.co_code + repr(code.co_consts).encode() if code is not None else self.name.encode()
        return "src:" + hashlib.sha256(text).hexdigest()[:12]

    def configured(
        self, config_or_config_fn: Any, name: str, config_schema: Any = None, description: str | None = None
    ) -> OpDefinition:
        """A copy of this op named `name` whose config is `config_or_config_fn` (Dagster's ``configured``);
        with `config_schema`, a function mapping the config given in a run (checked against it) to this op's."""
        made = copy.copy(self)
        made.name = check_name(name, "op name")
        made.config_schema = _Configured(self.config_schema, config_or_config_fn, config_schema)
        made.description = description or self.description
        return made

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = _Builder.current
        if builder is None:  # direct invocation, e.g. in a unit test of the op
            return self.user_fn(*args, **kwargs)
        return builder.invoke(PendingNodeInvocation(self), args, kwargs)


@dataclass(frozen=True)
class PendingNodeInvocation:
    """An op (or graph) with what one of its nodes changes: an alias, tags, hooks, a retry policy (Dagster's
    ``op.alias(...)``, ``.tag(...)``, ``.with_hooks(...)``, ``.with_retry_policy(...)``, chainable). Called
    in a job or graph body it adds that node; called elsewhere it runs the op."""

    node_def: Any
    given_alias: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    hook_defs: frozenset[Any] = frozenset()
    retry_policy: RetryPolicy | None = None

    def alias(self, name: str) -> PendingNodeInvocation:
        return replace(self, given_alias=check_name(name, "alias"))

    def tag(self, tags: Mapping[str, str] | None) -> PendingNodeInvocation:
        return replace(self, tags={**self.tags, **_tags(tags)})

    def with_hooks(self, hook_defs: AbstractSet[Any]) -> PendingNodeInvocation:
        if not isinstance(hook_defs, AbstractSet):
            raise _param_error("hook_defs", "one of ['frozenset', 'set']", hook_defs)
        return replace(self, hook_defs=self.hook_defs | frozenset(hook_defs))

    def with_retry_policy(self, retry_policy: RetryPolicy) -> PendingNodeInvocation:
        if not isinstance(retry_policy, RetryPolicy):
            raise _param_error("retry_policy", "a RetryPolicy", retry_policy)
        return replace(self, retry_policy=retry_policy)

    @property
    def name(self) -> str:
        return self.given_alias or self.node_def.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = _Builder.current
        if builder is None:
            return self.node_def(*args, **kwargs)
        return builder.invoke(self, args, kwargs)


@overload
def op(compute_fn: Callable[..., Any]) -> OpDefinition: ...


@overload
def op(
    compute_fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    ins: Mapping[str, In] | None = None,
    out: Mapping[str, Out] | Out | None = None,
    config_schema: Any = None,
    required_resource_keys: AbstractSet[str] | None = None,
    tags: Mapping[str, Any] | None = None,
    version: str | None = None,
    retry_policy: RetryPolicy | None = None,
    code_version: str | None = None,
    pool: str | None = None,
) -> Callable[[Callable[..., Any]], OpDefinition]: ...


def op(
    compute_fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    ins: Mapping[str, In] | None = None,
    out: Mapping[str, Out] | Out | None = None,
    config_schema: Any = None,
    required_resource_keys: AbstractSet[str] | None = None,
    tags: Mapping[str, Any] | None = None,
    version: str | None = None,
    retry_policy: RetryPolicy | None = None,
    code_version: str | None = None,
    pool: str | None = None,
) -> OpDefinition | Callable[[Callable[..., Any]], OpDefinition]:
    """Declare an op, bare (``@op``) or with Dagster's options (``@op(name=..., out={...}, config_schema=...,
    tags={...}, required_resource_keys={"db"}, code_version="v2", retry_policy=RetryPolicy(max_retries=3))``)."""

    def wrap(f: Callable[..., Any]) -> OpDefinition:
        return OpDefinition(
            f,
            name=name,
            ins=ins,
            outs=out,
            description=description,
            config_schema=config_schema,
            required_resource_keys=required_resource_keys,
            tags=tags,
            version=version,
            retry_policy=retry_policy,
            code_version=code_version,
            pool=pool,
        )

    return wrap(compute_fn) if compute_fn is not None else wrap


# --- job bodies: handles, nodes and the builder that records calls -----------------------------------------

Dim = tuple[str, str]  # a fan-out dimension: (dynamic node, dynamic output)


@dataclass(frozen=True)
class OutputHandle:
    """The result of calling an op inside a job body: one output of one node.

    `dim` is set on a value that varies per mapping key: the per-key value `fn` receives in ``.map(fn)``,
    and the outputs of mapped ops."""

    node: str
    output: str
    dim: Dim | None = None


@dataclass(frozen=True)
class InputValue:
    """A job's top-level input given a value (``graph.to_job(input_values={"x": 4})``): an op input it reaches
    takes that value, as an unconnected input takes its default."""

    value: Any


def _map(dim: Dim, value: OutputHandle, fn: Callable[[Any], Any], where: str) -> Any:
    """Call `fn` with `value` as the job body's fan-out over `dim`: ops it calls on `value` are mapped."""
    builder = _Builder.current
    if builder is None:
        raise DefinitionError(f"{where}.map(...) is only valid inside a @job body")
    builder.maps.append(dim)
    try:
        result = fn(value)
    finally:
        builder.maps.pop()
    return result


@dataclass(frozen=True)
class DynamicOutputHandle(OutputHandle):
    """A dynamic output in a job body: ``.map(fn)`` fans out over its keys."""

    def map(self, fn: Callable[[Any], Any]) -> Any:
        """Run `fn` on each key's value (at definition time, once: every op it calls is mapped); returns
        what `fn` returns (the mapped ops' handles, with ``.map`` and ``.collect``)."""
        dim = (self.node, self.output)
        return _map(dim, OutputHandle(self.node, self.output, dim), fn, f"{self.node}.{self.output}")

    def collect(self) -> CollectHandle:
        """The dynamic output's values as a list: an op reading it is refused (Cairn collects mapped ops'
        outputs), with Dagster's refusal first where Dagster refuses too."""
        return CollectHandle(self.node, self.output, (self.node, self.output))


@dataclass(frozen=True)
class MappedHandle(OutputHandle):
    """An output of a mapped op (one value per key): ``.map(fn)`` chains in the same dimension,
    ``.collect()`` gives the list of all keys' values."""

    def map(self, fn: Callable[[Any], Any]) -> Any:
        assert self.dim is not None
        return _map(self.dim, self, fn, f"{self.node}.{self.output}")

    def collect(self) -> CollectHandle:
        assert self.dim is not None
        return CollectHandle(self.node, self.output, self.dim)


@dataclass(frozen=True)
class CollectHandle(OutputHandle):
    """``mapped.collect()``: an input reading it gets a list of the mapped op's values, in key order."""


@dataclass
class Node:
    """One use of an op in a job: a step (a mapped node: one step per mapping key). `name` is the step key's
    node part: ``op``, ``op_2``, an alias, or ``graph.op`` inside a graph."""

    name: str
    op: OpDefinition
    inputs: dict[str, OutputHandle] = field(default_factory=dict)
    #: the dimension (dynamic node, output) this node is mapped over, if any
    mapped: Dim | None = None
    #: inputs that collect a mapped node's output: input -> that output
    collects: dict[str, OutputHandle] = field(default_factory=dict)
    #: the op's tags merged with the invocation's (``op.tag({...})()``)
    tags: dict[str, str] = field(default_factory=dict)
    #: hooks of this node (``op.with_hooks({...})()``, and those of the graphs around it); the job's apart
    hook_defs: frozenset[Any] = frozenset()
    #: this node's retry policy (``op.with_retry_policy(...)()``), which wins over the op's and the job's
    retry_policy: RetryPolicy | None = None
    #: ordering-only inputs (``In(Nothing)``) -> the output they wait for; in `JobDefinition.deps`, not loaded
    after: dict[str, OutputHandle] = field(default_factory=dict)


@dataclass
class GraphNode:
    """One use of a graph in a job: its ops are the nodes ``name.op``; `outputs` maps each graph output to
    the inner node output it is (``{"result": ("outer.inner.add", "result")}``)."""

    name: str
    graph: Any
    outputs: dict[str, tuple[str, str]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: the graph's default config (`@graph(config={...})`), its section of the run config's ops
    config: Mapping[str, Any] | None = None


def _gathering(fn: Callable[..., Any], sizes: Mapping[str, int]) -> Callable[..., Any]:
    """`fn` called with each fanned-in input's parts ``<input>__<i>`` gathered into the list ``<input>``."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        for inp, n in sizes.items():
            kwargs[inp] = [kwargs.pop(f"{inp}__{i}") for i in range(n)]
        return fn(*args, **kwargs)

    return run


class _Builder:
    """Records a job or graph body's calls as nodes. `scope` is the graph nodes the current call is inside."""

    current: _Builder | None = None

    def __init__(self, job_name: str, kind: str = "job") -> None:
        self.job_name = job_name
        self.kind = kind
        self.nodes: dict[str, Node] = {}
        self.graphs: dict[str, GraphNode] = {}
        self.uses: dict[str, int] = {}
        self.maps: list[Dim] = []  # the fan-outs whose `fn` is running now, innermost last
        self.scope: list[str] = []  # enclosing graph nodes (full names), innermost last
        self.hooks: list[frozenset[Any]] = []  # hooks of the enclosing graph nodes
        #: the enclosing graph nodes' inputs: (graph node, {handle given: input name}), outermost first
        self.graph_inputs: list[tuple[str, dict[OutputHandle, str]]] = []

    @property
    def where(self) -> str:
        return f"@{self.kind} {self.job_name}"

    def node_name(self, base: str, alias: str | None) -> str:
        """The full name of a new node: ``base``, ``base_2``... or the alias, inside the current scope."""
        prefix = f"{self.scope[-1]}." if self.scope else ""
        if alias is not None:
            name = prefix + alias
        else:
            n = self.uses.get(prefix + base, 0) + 1
            self.uses[prefix + base] = n
            name = prefix + (base if n == 1 else f"{base}_{n}")
        if name in self.nodes or name in self.graphs:
            raise DefinitionError(
                f"{self.where} invoked the same node ({name.rsplit('.', 1)[-1]}) twice without aliasing. "
                f"(Cairn: give one of them another name, e.g. {base}.alias('{base}_again')().)"
            )
        return name

    def invoke(self, inv: PendingNodeInvocation, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if isinstance(inv.node_def, OpDefinition):
            return self.add(inv.node_def, args, kwargs, inv)
        return inv.node_def.compose(self, inv, args, kwargs)

    def bind(
        self,
        what: str,
        inputs: Sequence[str],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        positional: Sequence[str] | None = None,
        many: AbstractSet[str] = frozenset(),
    ) -> dict[str, Any]:
        """The values given to a node's inputs, by position (`positional`, default all) then by name; inputs in
        `many` (ordering-only ones) may take a list of outputs."""
        positional = inputs if positional is None else positional
        if len(args) > len(positional):
            raise DefinitionError(
                f"{self.where}: {what} takes {len(positional)} positional input(s) ({', '.join(positional) or 'none'}) "
                f"but was given {len(args)}"
            )
        given: dict[str, Any] = dict(zip(positional, args, strict=False))
        for k, v in kwargs.items():
            if k not in inputs:
                raise DefinitionError(f"{self.where}: {what} has no input {k!r}; its inputs: {', '.join(inputs)}")
            if k in given:
                raise DefinitionError(f"{self.where}: {what} got input {k!r} twice")
            given[k] = v
        for inp, value in given.items():
            listed = isinstance(value, list) or (inp in many and isinstance(value, tuple))
            for one in value if listed else [value]:
                self._check_input(what, inputs, inp, one)
        return given

    def _check_input(self, what: str, inputs: Sequence[str], inp: str, value: Any) -> None:
        if isinstance(value, InputValue):
            return
        if isinstance(value, tuple) and value and all(isinstance(v, OutputHandle) for v in value):
            raise DefinitionError(
                f"{self.where}: input {inp!r} of {what} was given all outputs of {value[0].node}; unpack them "
                f"first: a, b = {value[0].node.rsplit('.', 1)[-1]}()"
            )
        if not isinstance(value, OutputHandle):
            position = f" (at position {inputs.index(inp)})" if inp in inputs else ""
            raise DefinitionError(
                f'In {self.where}, received invalid type {type(value)} for input "{inp}"{position} in {what}. '
                f"Must pass the output from previous node invocations or inputs to the composition function as "
                f"inputs when invoking nodes during composition. (Cairn: an input must be an op's output, got "
                f"{type(value).__name__}; constants go in config, config_schema.)"
            )

    def add(
        self, opdef: OpDefinition, args: tuple[Any, ...], kwargs: dict[str, Any], inv: PendingNodeInvocation
    ) -> Any:
        name = self.node_name(opdef.name, inv.given_alias)
        given = self.bind(
            f'op invocation "{name}"', opdef.inputs, args, kwargs, opdef.positional_inputs, opdef.nothing_inputs
        )
        fan = {inp: v for inp, v in given.items() if isinstance(v, list) and inp not in opdef.nothing_inputs}
        if fan:  # Dagster's fan-in, op([a(), b()]): the input is the list of those outputs' values
            opdef = self._fan_in(name, opdef, fan, given)
        constants = {inp: given.pop(inp).value for inp in list(given) if isinstance(given[inp], InputValue)}
        if constants:  # a job's input values: the op is called with them (the inputs stay unconnected)
            opdef = copy.copy(opdef)
            opdef.fn = _defaulting(opdef.fn, constants)
            opdef.input_defaults = {**opdef.input_defaults, **{k: v for k, v in constants.items() if v is not NoValue}}
        hooks = frozenset().union(inv.hook_defs, *self.hooks)
        node = Node(name, opdef, tags={**opdef.tags, **inv.tags}, hook_defs=hooks, retry_policy=inv.retry_policy)
        for inp in opdef.inputs:
            if inp not in given:
                if inp in opdef.input_defaults or inp in opdef.nothing_inputs or inp in constants:
                    continue
                raise DefinitionError(
                    f"{self.where}: input {inp!r} of op {name} is not connected; pass the output of an upstream "
                    f"op, e.g. {opdef.name}({inp}=upstream()), or give it a default (In(default_value=...))"
                )
            value = given[inp]
            if inp in opdef.nothing_inputs:  # ordering only: in deps(), never loaded by the step
                for i, h in enumerate(value if isinstance(value, list | tuple) else [value]):
                    node.after[inp if i == 0 else f"{inp}__{i}"] = OutputHandle(h.node, h.output)
            elif isinstance(value, CollectHandle):
                self._check_collect(name, opdef, given, inp, value)
                node.collects[inp] = OutputHandle(value.node, value.output)
            elif isinstance(value, DynamicOutputHandle):
                raise DefinitionError(
                    f"In {self.where}, received the dynamic output {value.output} from op "
                    f"'{value.node.rsplit('.', 1)[-1]}' directly. Dynamic output must be unpacked by invoking map or "
                    f"collect. (Cairn: input {inp!r} of op {name} reads the dynamic output {value.node}.{value.output} "
                    f"directly; map over it instead: {value.node.rsplit('.', 1)[-1]}().map({opdef.name}))"
                )
            else:
                node.inputs[inp] = value
        node.mapped = self._dimension(name, opdef, node)
        self.nodes[name] = node
        return self.results(name, [self._handle(node, o) for o in opdef.outs])

    def _check_collect(
        self, name: str, opdef: OpDefinition, given: Mapping[str, Any], inp: str, value: CollectHandle
    ) -> None:
        """Refusals of a collect input: inside the map it collects (Dagster's wording, which depends on whether
        a per-key input comes first), or of a dynamic output itself (Cairn collects mapped ops' outputs)."""
        assert value.dim is not None
        where = f"{value.dim[0]}:{value.dim[1]}"
        per_key = [
            i
            for i, v in given.items()
            if isinstance(v, OutputHandle) and not isinstance(v, CollectHandle) and v.dim == value.dim
        ]
        if value.dim in self.maps and per_key:  # without a per-key input the collector is not mapped: fine
            before = opdef.inputs[: opdef.inputs.index(inp)] if inp in opdef.inputs else []
            collect_first = not any(
                isinstance(given.get(i), OutputHandle) and getattr(given[i], "dim", None) == value.dim for i in before
            )
            local = name.rsplit(".", 1)[-1]
            dagster = (
                f"op '{local}' cannot be both downstream of dynamic output {where} and collect over dynamic output "
                f"{where}."
                if collect_first
                else f"op '{local}' cannot both collect over dynamic output {where} and be downstream of the dynamic "
                f"output {where}."
            )
            raise DefinitionError(
                f"{dagster} (Cairn: input {inp!r} of op {name} collects {value.node} inside the map over "
                f"{value.dim[0]}.{value.dim[1]} that {value.node} belongs to; collect outside it)"
            )
        if value.node == value.dim[0]:
            raise DefinitionError(
                f"{self.where}: input {inp!r} of op {name} collects the dynamic output {value.node}.{value.output} "
                f"itself, which Cairn does not do yet: collect a mapped op's output, e.g. "
                f"{value.node.rsplit('.', 1)[-1]}().map(process).collect() (a list of process's values, one per key)"
            )

    def _fan_in(
        self, name: str, opdef: OpDefinition, fan: Mapping[str, list[Any]], given: dict[str, Any]
    ) -> OpDefinition:
        """The op of a node whose inputs take lists of outputs: each list's parts are the inputs
        ``<input>__<i>`` (in `given`, replacing the list), gathered back into the list when the step runs."""
        for inp, values in fan.items():
            for h in values:
                if isinstance(h, CollectHandle | DynamicOutputHandle) or h.dim is not None:
                    dim = h.dim or (h.node, h.output)
                    raise DefinitionError(
                        f"Currently, items in a fan-in dependency cannot be downstream of dynamic outputs. "
                        f'Problematic dependency on dynamic output "{dim[0]}:{dim[1]}". (Cairn: input {inp!r} of op '
                        f"{name} fans in {h.node}.{h.output}, a mapped or dynamic output; fan in plain outputs, or "
                        f"collect it: {h.node.rsplit('.', 1)[-1]}(...).collect())"
                    )
            del given[inp]
            given.update({f"{inp}__{i}": h for i, h in enumerate(values)})
        sizes = {inp: len(values) for inp, values in fan.items()}
        made = copy.copy(opdef)
        made.inputs = [
            p for inp in opdef.inputs for p in ([f"{inp}__{i}" for i in range(sizes[inp])] if inp in sizes else [inp])
        ]
        made.fn = _gathering(opdef.fn, sizes)
        return made

    @staticmethod
    def results(name: str, handles: Sequence[OutputHandle], names: Sequence[str] | None = None) -> Any:
        """What a call returns: its one output's handle, or a named tuple of them (``a, b = op()``, ``op().a``)."""
        if len(handles) == 1:
            return handles[0]
        if not handles:
            return None
        fields = list(names) if names is not None else [h.output for h in handles]
        make: Any = collections.namedtuple
        return make(f"{name.replace('.', '_')}_outputs", fields, rename=True)(*handles)

    def _dimension(self, name: str, opdef: OpDefinition, node: Node) -> Dim | None:
        """The dimension a node is mapped over: that of its per-key inputs, which must be the map being
        built now; refusals for a second dimension, a mapped read without collect, nested fan-out (Dagster's
        wording first: Dagster refuses the same jobs, but for a dynamic output of a mapped op, which Cairn
        refuses at once: fan-out is one level deep)."""
        dims = {h.dim: inp for inp, h in node.inputs.items() if h.dim is not None}
        local = name.rsplit(".", 1)[-1]
        if len(dims) > 1:
            listed = " and ".join(f"{d[0]}.{d[1]} (input {inp!r})" for d, inp in dims.items())
            inner_first = sorted(dims, key=lambda d: -self.maps.index(d) if d in self.maps else 0)
            raise DefinitionError(
                self._downstream_of_two(local, node, inner_first)
                + f" (Cairn: op {name} reads two fan-out dimensions, {listed}; an op is mapped over one "
                f"dimension: collect one of them first)"
            )
        if not dims:
            return None
        ((dim, inp),) = dims.items()
        if not self.maps or self.maps[-1] != dim:
            h = node.inputs[inp]
            raise DefinitionError(
                f"In {self.where}, received the dynamic output {h.output} from op '{h.node.rsplit('.', 1)[-1]}' "
                f"directly. Dynamic output must be unpacked by invoking map or collect. (Cairn: input {inp!r} of op "
                f"{name} reads mapped op {h.node} (one step per key of {dim[0]}.{dim[1]}) without collecting it; use "
                f".collect() (a list of all keys' values), or call {opdef.name} inside .map(...))"
            )
        if opdef.dynamic_outs:
            raise DefinitionError(
                self._downstream_of_two(local, node, [dim])
                + f" (Cairn: op {name} is mapped over {dim[0]}.{dim[1]} and also has a dynamic output; fan-out is "
                f"one level deep: collect first, then fan out again)"
            )
        return dim

    def _downstream_of_two(self, local: str, node: Node, dims: Sequence[Dim]) -> str:
        """Dagster's refusal of a node downstream of two dynamic outputs; its graph form when the outer one
        reaches the node through a graph's input."""
        outer = dims[-1]
        for h in node.inputs.values():
            via = self._graph_input(h) if h.dim == outer else None
            if via is not None:
                return (
                    f"graph '{via[0].rsplit('.', 1)[-1]}' cannot be downstream of dynamic output \"{outer[0]}:"
                    f'{outer[1]}" since input "{via[1]}" maps to a node that is already downstream of another '
                    f"dynamic output. Nodes cannot be downstream of more than one dynamic output"
                )
        named = " and ".join(f'"{d[0]}:{d[1]}"' for d in dims)
        if len(dims) == 1:
            return (
                f"op '{local}' is downstream of dynamic output {named} and has a dynamic output of its own: in Cairn, "
                f"ops mapped over it would be downstream of more than one dynamic output, and nodes cannot be "
                f"downstream of more than one dynamic output"
            )
        return f"op '{local}' cannot be downstream of more than one dynamic output. It is downstream of both {named}"

    def _graph_input(self, handle: OutputHandle) -> tuple[str, str] | None:
        """(graph node, input) of the outermost graph being composed that received `handle` as an input."""
        for graph_name, inputs in self.graph_inputs:
            if handle in inputs:
                return graph_name, inputs[handle]
        return None

    @staticmethod
    def _handle(node: Node, output: str) -> OutputHandle:
        if node.mapped is not None:
            return MappedHandle(node.name, output, node.mapped)
        if output in node.op.dynamic_outs:
            return DynamicOutputHandle(node.name, output)
        return OutputHandle(node.name, output)

    def record(self, body: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a job or graph body with this builder current; returns what the body returns."""
        previous, _Builder.current = _Builder.current, self
        try:
            return body(*args, **kwargs)
        finally:
            _Builder.current = previous


@overload
def job(compose_fn: Callable[[], Any]) -> JobDefinition: ...


@overload
def job(
    compose_fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    resource_defs: Mapping[str, object] | None = None,
    config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    run_tags: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    logger_defs: Mapping[str, Any] | None = None,
    executor_def: ExecutorDefinition | None = None,
    hooks: AbstractSet[Any] | None = None,
    op_retry_policy: RetryPolicy | None = None,
    partitions_def: Any = None,
    input_values: Mapping[str, object] | None = None,
    owners: Sequence[str] | None = None,
) -> Callable[[Callable[[], Any]], JobDefinition]: ...


def job(
    compose_fn: Callable[[], Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    resource_defs: Mapping[str, object] | None = None,
    config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    run_tags: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    logger_defs: Mapping[str, Any] | None = None,
    executor_def: ExecutorDefinition | None = None,
    hooks: AbstractSet[Any] | None = None,
    op_retry_policy: RetryPolicy | None = None,
    partitions_def: Any = None,
    input_values: Mapping[str, object] | None = None,
    owners: Sequence[str] | None = None,
) -> JobDefinition | Callable[[Callable[[], Any]], JobDefinition]:
    """Declare a job by composing ops (and graphs): its body calls them, passing outputs to inputs. Dagster's
    arguments: `resource_defs` (resources by key), `config` (the default run config), `tags`, `hooks` (for
    every op), `op_retry_policy` (for ops without a retry_policy of their own), `executor_def`...;
    `logger_defs` and `owners` are accepted and not used; `partitions_def` is refused (no partitions)."""
    if partitions_def is not None:
        raise DefinitionError("partitions_def: Cairn has no partitioned jobs; remove it (or run one job per partition)")

    def wrap(f: Callable[..., Any]) -> JobDefinition:
        job_name = name or f.__name__
        _job_args(job_name, op_retry_policy, hooks, resource_defs, config)
        builder = _Builder(check_name(job_name, "job name"))
        inputs = _top_level_inputs(job_name, f, input_values or {})
        builder.record(f, **inputs)
        jd = JobDefinition(
            job_name,
            builder.nodes,
            executor_def,
            tags,
            description or inspect.getdoc(f),
            op_retry_policy,
            resource_defs=resource_defs,
            hook_defs=hooks,
            config=config,
            metadata=metadata,
            logger_defs=logger_defs,
            run_tags=run_tags,
            graphs=builder.graphs,
            input_values=input_values,
        )
        jd.module_ref = _where_defined(f)
        jd.remake = functools.partial(_remade, f, arguments)
        jd.missing_inputs = [k for k, v in inputs.items() if v.value is NoValue]
        return jd

    arguments: dict[str, Any] = {
        "name": name,
        "description": description,
        "resource_defs": resource_defs,
        "config": config,
        "tags": tags,
        "run_tags": run_tags,
        "metadata": metadata,
        "logger_defs": logger_defs,
        "executor_def": executor_def,
        "hooks": hooks,
        "op_retry_policy": op_retry_policy,
        "input_values": input_values,
        "owners": owners,
    }
    return wrap(compose_fn) if compose_fn is not None else wrap


def _remade(f: Callable[..., Any], arguments: Mapping[str, Any], **changes: Any) -> JobDefinition:
    """The job `job(**arguments)` builds from `f`, with some arguments changed (`JobDefinition.with_input_values`)."""
    made = job(**{**arguments, **changes})(f)
    assert isinstance(made, JobDefinition)
    return made


def _top_level_inputs(job_name: str, f: Callable[..., Any], values: Mapping[str, Any]) -> dict[str, InputValue]:
    """The body's parameters (a graph's inputs, in ``to_job``) given their `input_values` (NoValue for one
    not given: the job refuses to run until it has it); Dagster's refusal of a value for no input."""
    params = list(inspect.signature(f).parameters)
    for key in values:
        if key not in params:
            raise DefinitionError(
                f"Error when constructing JobDefinition '{job_name}': Input value provided for key '{key}', but job "
                f"has no top-level input with that name."
            )
    return {p: InputValue(values.get(p, NoValue)) for p in params}


def _where_defined(f: Callable[..., Any]) -> str | None:
    """`module:attr` (or `/path/file.py:attr` for a script run as __main__) of a job declared at module
    level, so runs record where their job is and can be re-executed (and drawn by `cairn ui --local`)
    without naming it again; None for a job declared inside a function."""
    if "<locals>" in getattr(f, "__qualname__", "<locals>"):
        return None
    module = getattr(f, "__module__", None)
    if module == "__main__":
        path = getattr(sys.modules.get("__main__"), "__file__", None)
        return f"{Path(path).resolve()}:{f.__name__}" if path else None
    return f"{module}:{f.__name__}" if module else None


_RECON_HINT = "Use a function or decorated function defined at module scope instead, or use build_reconstructable_job."


def reconstructable(target: JobDefinition | Callable[[], JobDefinition]) -> JobDefinition:
    """Dagster's ``reconstructable``: a job, or a module-level function that returns one (Dagster's usual
    ``reconstructable(define_job)``). Returns the job (built by calling the function once), recording where
    it comes from (`module_ref`, ``module:define_job`` for a function) so other processes can load it."""
    if isinstance(target, JobDefinition):
        return target
    if not callable(target) or isinstance(target, OpDefinition | PendingNodeInvocation):
        raise DagsterInvariantViolationError(
            f"Reconstructable target should be a function or definition produced by a decorated function, got "
            f"{type(target)}. (Cairn: pass a @job or a module-level function that returns one.)"
        )
    fn_name = getattr(target, "__name__", "")
    if fn_name == "<lambda>":
        raise DagsterInvariantViolationError(f"Reconstructable target can not be a lambda. {_RECON_HINT}")
    qualname = getattr(target, "__qualname__", fn_name)
    if qualname != fn_name:
        raise DagsterInvariantViolationError(
            f'Reconstructable target "{fn_name}" has a different __qualname__ "{qualname}" indicating it is not '
            f"defined at module scope. {_RECON_HINT}"
        )
    built = target()
    if not isinstance(built, JobDefinition):
        raise DagsterInvariantViolationError(
            f"Reconstructable target {fn_name} returned {type(built).__name__}, not a job. (Cairn: the function "
            f"must return a @job, e.g. def define_job(): return my_job.)"
        )
    built.module_ref = _where_defined(target)
    return built
