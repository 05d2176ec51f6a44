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
"""

from __future__ import annotations

import collections
import copy
import functools
import hashlib
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, overload

from cairn import dynamic
from cairn.context import OpContext as OpContext  # re-exported: the op context lives in cairn.context
from cairn.context import OpExecutionContext
from cairn.errors import (
    ConfigError,
    DagsterInvalidInvocationError,
    DagsterInvariantViolationError,
    DefinitionError,
)
from cairn.errors import DagsterTypeCheckDidNotPass as DagsterTypeCheckDidNotPass  # re-exported
from cairn.io import FORMATS
from cairn.retries import RetryPolicy


class _NoValueSentinel:
    """Dagster's "argument not given" marker (``In(default_value=...)``, ``Out(dagster_type=...)``)."""

    def __repr__(self) -> str:
        return "NoValue"


NoValue: Any = _NoValueSentinel()

#: Dagster's rule for the names of ops, graphs, jobs, aliases and outputs.
NAME_PATTERN = r"^[A-Za-z0-9_]+$"
_NAME = re.compile(NAME_PATTERN)


def check_name(name: object, what: str = "name") -> str:
    """`name` if it is a valid Dagster name; DefinitionError with Dagster's wording otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise DefinitionError(
            f'"{name}" is not a valid name in Dagster. Names must be in regex {NAME_PATTERN}. '
            f"(Cairn: the {what} is part of step keys and storage paths: use letters, digits and underscores.)"
        )
    return name


def _param_error(param: str, expected: str, value: object) -> DefinitionError:
    """Dagster's wording for an argument of the wrong type."""
    return DefinitionError(
        f'Param "{param}" is not {expected}. Got {value!r} which is type {type(value)}. '
        f"(Cairn: {param} must be {expected}, got {value!r}.)"
    )


# --- Dagster types: the Python types Dagster checks values against -----------------------------------------


@dataclass(frozen=True)
class TypeSpec:
    """A resolved Dagster type: its display name (``Int``, ``[Int]``, ``Int?``) and how to check a value."""

    display_name: str
    kind: str  # "any", "scalar", "object", "list", "dict", "optional"
    py: Any = None
    inner: tuple[TypeSpec, ...] = ()


ANY_TYPE = TypeSpec("Any", "any")


class Nothing:
    """Dagster's `Nothing` type: an input of this type (``ins={"start": In(Nothing)}``) is an ordering-only
    dependency, not a parameter of the op function, and may be left unconnected; an output of this type
    carries no value."""

    def __init__(self) -> None:
        raise DagsterInvalidInvocationError("Nothing is a type marker: use it as In(Nothing) or Out(Nothing)")


NOTHING_TYPE = TypeSpec("Nothing", "nothing", Nothing)
_SCALARS: Mapping[Any, tuple[str, str]] = types.MappingProxyType(
    {int: ("Int", "a int"), float: ("Float", "a float"), str: ("String", "a string"), bool: ("Bool", "a bool")}
)


def resolve_type(t: Any) -> TypeSpec:
    """A dagster_type (a Python type, a typing generic, None or Any) as a `TypeSpec`; DefinitionError for a
    value that is not a type (Dagster's wording)."""
    if isinstance(t, TypeSpec):
        return t
    if t is None or t is NoValue or t is Any or t is object:
        return ANY_TYPE
    if t is Nothing:
        return NOTHING_TYPE
    if t in _SCALARS:
        return TypeSpec(_SCALARS[t][0], "scalar", t)
    origin, args = typing.get_origin(t), typing.get_args(t)
    if t is list or origin is list:
        inner = resolve_type(args[0]) if args else ANY_TYPE
        return TypeSpec(f"[{inner.display_name}]", "list", list, (inner,))
    if origin is dict and len(args) == 2:
        k, v = resolve_type(args[0]), resolve_type(args[1])
        return TypeSpec(f"Dict[{k.display_name},{v.display_name}]", "dict", dict, (k, v))
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            inner = resolve_type(rest[0])
            return TypeSpec(f"{inner.display_name}?", "optional", None, (inner,))
        return ANY_TYPE
    if origin is not None:
        return ANY_TYPE if not isinstance(origin, type) else TypeSpec(origin.__name__, "object", origin)
    if isinstance(t, type):
        return TypeSpec(t.__name__, "object", t)
    raise DefinitionError(
        f"Invalid type: dagster_type must be an instance of DagsterType or a Python type: got {t}. "
        f"(Cairn: a storage format is keyword-only: Out(format={t!r}).)"
    )


def type_error(spec: TypeSpec, value: Any) -> str | None:
    """Why `value` does not match `spec` (Dagster's description), or None when it does."""
    if spec.kind == "any":
        return None
    if spec.kind == "nothing":
        return None if value is None else f"Value must be None or unset, got a {type(value)}"
    if spec.kind == "optional":
        return None if value is None else type_error(spec.inner[0], value)
    if spec.kind == "scalar":
        if isinstance(value, spec.py):
            return None
        return f'Value "{value}" of python type "{type(value).__name__}" must be {_SCALARS[spec.py][1]}.'
    if spec.kind in ("list", "dict"):
        if not isinstance(value, spec.py):
            return f'Value "{value}" of python type "{type(value).__name__}" must be a {spec.py.__name__}.'
        items = value if spec.kind == "list" else [x for kv in value.items() for x in kv]
        specs = spec.inner * (len(items) if spec.kind == "list" else len(value))
        return next((e for s, v in zip(specs, items, strict=True) if (e := type_error(s, v)) is not None), None)
    if isinstance(value, spec.py):
        return None
    module = spec.py.__module__
    qual = spec.py.__qualname__ if module == "builtins" else f"{module}.{spec.py.__qualname__}"
    return (
        f"Value of type {type(value)} failed type check for Dagster type {spec.display_name}, expected value "
        f"to be of Python type {qual}."
    )


def _check_type_of(where: str, name: str, dagster_type: Any, value: Any) -> None:
    if dagster_type is NoValue or dagster_type is None or dagster_type is Any or type(value) is dagster_type:
        return  # the usual cases, decided without resolving the type
    spec = resolve_type(dagster_type)
    error = type_error(spec, value)
    if error is not None:
        raise DagsterTypeCheckDidNotPass(
            f'Type check failed for {where} "{name}" - expected type "{spec.display_name}". Description: {error}',
            dagster_type=spec,
        )


def check_output_type(op_name: str, output_name: str, dagster_type: Any, value: Any) -> None:
    """Check an output's value against its type as Dagster does when the step yields it (for a dynamic output,
    each key's value); raises `DagsterTypeCheckDidNotPass` with Dagster's message. `op_name` is for callers'
    context (Dagster's message names the output only)."""
    _check_type_of("step output", output_name, dagster_type, value)


def check_input_type(op_name: str, input_name: str, dagster_type: Any, value: Any) -> None:
    """Check a loaded input's value against its type, as Dagster does before calling the op."""
    _check_type_of("step input", input_name, dagster_type, value)


# --- outputs, inputs, the values an op yields, config fields ------------------------------------------------


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


@dataclass(frozen=True)
class Field:
    """A config field, Dagster's signature: ``Field(int, default_value=3, is_required=None, description=None)``.
    Required unless it has a default value (or `is_required=False`)."""

    config: Any = object
    default_value: Any = NoValue
    is_required: bool | None = None
    description: str | None = None
    is_secret: bool = False

    @property
    def type(self) -> Any:
        """Cairn's earlier name for `config`."""
        return self.config

    @property
    def required(self) -> bool:
        return self.is_required if self.is_required is not None else self.default_value is NoValue

    @property
    def default(self) -> Any:
        return None if self.default_value is NoValue else self.default_value


@dataclass(frozen=True)
class ExecutorDefinition:
    name: str


#: Dagster's executors by name; every job runs in process locally and one pod per step on a cluster.
in_process_executor = ExecutorDefinition("in_process")
multiprocess_executor = ExecutorDefinition("multiprocess")
multi_or_in_process_executor = ExecutorDefinition("multi_or_in_process")


# --- config: op config schemas and run config, checked with Dagster's wording -------------------------------


class _Invalid(Exception):
    """One config error (Dagster's message); turned into ConfigError by the job that checks."""


def _at(path: str) -> str:
    return "at the root" if path == "root" else f"at path {path}"


def _dotted(path: str) -> str:
    """``root:ops:a:config`` as Cairn has always named it: ``run_config ops.a.config``."""
    return "run_config " + ".".join(path.split(":")[1:]) if path != "root" else "run_config"


class ConfigType:
    """Dagster's config type objects (`Array`, `Noneable`, `Shape`, `Permissive`, `Selector`, the `*Source`
    scalars): each checks a value at a path, says whether a value is needed and prints its name."""

    required = True
    type_name = "Any"

    def check(self, path: str, value: Any) -> Any:
        return value


@dataclass(frozen=True)
class Array(ConfigType):
    """A list of values of one config type: ``Array(int)`` is ``[int]``."""

    inner_type: Any = object

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return f"[{config_type_name(self.inner_type)}]"

    def check(self, path: str, value: Any) -> Any:
        return check_config(path, [self.inner_type], value)


@dataclass(frozen=True)
class Noneable(ConfigType):
    """A config type that also takes None (and may be left out)."""

    inner_type: Any = object
    required = False

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return f"{config_type_name(self.inner_type)}?"

    def check(self, path: str, value: Any) -> Any:
        return None if value is None else check_config(path, self.inner_type, value)


@dataclass(frozen=True)
class Shape(ConfigType):
    """A mapping with these fields (what a plain dict schema is)."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None

    @property
    def required(self) -> bool:  # type: ignore[override]
        return _required(dict(self.fields))

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return config_type_name(dict(self.fields))

    def check(self, path: str, value: Any) -> Any:
        return check_config(path, dict(self.fields), value)


@dataclass(frozen=True)
class Permissive(ConfigType):
    """A mapping with these fields checked and any other keys kept as given."""

    fields: Mapping[str, Any] | None = None
    description: str | None = None

    @property
    def required(self) -> bool:  # type: ignore[override]
        return _required(dict(self.fields or {}))

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return config_type_name(dict(self.fields or {}))

    def check(self, path: str, value: Any) -> Any:
        value = {} if value is None else value
        if not isinstance(value, Mapping):
            raise _Invalid(f'Value {_at(path)} must be dict. Expected: "{self.type_name}".')
        known = dict(self.fields or {})
        checked = check_config(path, known, {k: v for k, v in value.items() if k in known})
        return {**{k: v for k, v in value.items() if k not in known}, **checked}


@dataclass(frozen=True)
class Selector(ConfigType):
    """A mapping with exactly one of these fields."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return config_type_name(dict(self.fields))

    def check(self, path: str, value: Any) -> Any:
        if not isinstance(value, Mapping) or len(value) != 1:
            raise _Invalid(
                f"Must specify exactly one key {_at(path)}; the selector's keys: {', '.join(sorted(self.fields))}."
            )
        ((key, inner),) = value.items()
        if key not in self.fields:
            raise _Invalid(f'Received unexpected config entry "{key}" {_at(path)}. Expected: "{self.type_name}".')
        return {key: check_config(f"{path}:{key}", self.fields[key], inner)}


@dataclass(frozen=True)
class _Source(ConfigType):
    """A scalar given as such or read from the environment: ``{"env": "NAME"}`` (Dagster's StringSource...)."""

    scalar: Any = str

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return f"{config_type_name(self.scalar)}Source"

    def check(self, path: str, value: Any) -> Any:
        if isinstance(value, Mapping) and set(value) == {"env"}:
            import os

            name = value["env"]
            if name not in os.environ:
                raise _Invalid(
                    f'You have attempted to fetch the environment variable "{name}" which is not set. In order for '
                    f"this execution to succeed it must be set in this environment."
                )
            raw = os.environ[name]
            return raw if self.scalar is str else _from_env(path, self.scalar, raw)
        return check_config(path, self.scalar, value)


@dataclass(frozen=True)
class _Configured(ConfigType):
    """The config of a configured op (``op.configured(config, name)``): the fixed config (or, with a
    `config_schema`, the given config mapped by the function), checked against the op's own schema."""

    original: Any = None
    config_or_fn: Any = None
    schema: Any = None

    @property
    def required(self) -> bool:  # type: ignore[override]
        return callable(self.config_or_fn) and _required(self.schema)

    def check(self, path: str, value: Any) -> Any:
        if callable(self.config_or_fn):
            fixed = self.config_or_fn(check_config(path, self.schema, value))
        else:
            fixed = self.config_or_fn
        return check_config(path, self.original, fixed)


def _from_env(path: str, scalar: Any, raw: str) -> Any:
    if scalar is bool:
        if raw.lower() not in ("true", "false", "1", "0"):
            raise _Invalid(f'Value "{raw}" {_at(path)} is not a valid boolean (true, false, 1 or 0).')
        return raw.lower() in ("true", "1")
    try:
        return int(raw)
    except ValueError:
        raise _Invalid(f'Value "{raw}" {_at(path)} is not a valid integer.') from None


StringSource = _Source(str)
IntSource = _Source(int)
BoolSource = _Source(bool)


def config_type_name(schema: Any) -> str:
    """How Dagster prints a config type in "Expected: ..." (``Int``, ``[Int]``, ``{ n: Int m?: String }``)."""
    if isinstance(schema, Field):
        return config_type_name(schema.config)
    if isinstance(schema, ConfigType):
        return schema.type_name
    if isinstance(schema, Mapping):
        parts = [f"{k}{'' if _required(v) else '?'}: {config_type_name(v)}" for k, v in sorted(schema.items())]
        return "{ " + " ".join(parts) + " }" if parts else "{ }"
    if isinstance(schema, list):
        return f"[{config_type_name(schema[0]) if schema else 'Any'}]"
    if schema is list:
        return "[Any]"
    if schema in _SCALARS:
        return _SCALARS[schema][0]
    return "Any"


def _required(schema: Any) -> bool:
    """Whether a config schema needs a value (a Field with a default, or a shape of optional fields, does not)."""
    if isinstance(schema, Field):
        return schema.required
    if isinstance(schema, ConfigType):
        return schema.required
    if isinstance(schema, Mapping):
        return any(_required(v) for v in schema.values())
    return schema is not None and schema is not Any and schema is not object


def check_config(path: str, schema: Any, value: Any) -> Any:
    """`value` checked against a config schema at `path` (``root:ops:my_op:config``), defaults filled in;
    `_Invalid` with Dagster's message on the first error."""
    if isinstance(schema, Field):
        if value is None and not schema.required:
            return schema.default
        schema = schema.config
    if schema is None or schema is Any or schema is object:
        return value
    if isinstance(schema, ConfigType):
        return schema.check(path, value)
    if isinstance(schema, Mapping):
        return _check_shape(path, schema, {} if value is None else value)
    if isinstance(schema, list) or schema is list:
        if not isinstance(value, list):
            raise _Invalid(f'Value {_at(path)} must be list. Expected: "{config_type_name(schema)}".')
        item = schema[0] if isinstance(schema, list) and schema else None
        return [check_config(f"{path}[{i}]", item, v) for i, v in enumerate(value)]
    if schema is dict:
        if not isinstance(value, dict):
            raise _Invalid(f'Value {_at(path)} must be dict. Expected: "{{ }}".')
        return value
    return _check_scalar(path, schema, value)


def _check_shape(path: str, schema: Mapping[str, Any], value: Any) -> dict[str, Any]:
    expected = config_type_name(schema)
    if not isinstance(value, Mapping):
        raise _Invalid(f'Value {_at(path)} must be dict. Expected: "{expected}".')
    unknown = sorted(set(value) - set(schema))
    if unknown:
        raise _Invalid(
            f'Received unexpected config entry "{unknown[0]}" {_at(path)}. Expected: "{expected}". '
            f"(Cairn: {_dotted(path)} has unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(schema))}.)"
        )
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        if key in value:
            out[key] = check_config(f"{path}:{key}", spec, value[key])
        elif _required(spec):
            raise _Invalid(
                f'Missing required config entry "{key}" {_at(path)}. You must provide this value in your run '
                f"config. (Cairn: {key} is {config_type_name(spec)}.)"
            )
        else:
            nested = isinstance(spec, Mapping | Shape | Permissive)
            out[key] = check_config(f"{path}:{key}", spec, None) if nested else _default(spec)
    return out


def _default(spec: Any) -> Any:
    return spec.default if isinstance(spec, Field) else None


def _check_scalar(path: str, t: Any, value: Any) -> Any:
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(t, type) and (not isinstance(value, t) or (t in (int, float) and isinstance(value, bool))):
        raise _Invalid(
            f'Invalid scalar {_at(path)}. Value "{value}" of type "{type(value)}" is not valid for expected type '
            f'"{config_type_name(t)}". (Cairn: {_dotted(path)} must be {t.__name__}, got {type(value).__name__} '
            f"{value!r}.)"
        )
    return value


def merge_config(base: Mapping[str, Any] | None, over: Mapping[str, Any] | None) -> dict[str, Any]:
    """`over` laid on `base`, mappings merged key by key (how a job's default `config` meets a run's)."""
    out = dict(base or {})
    for key, value in (over or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = value
    return out


# --- Pythonic config: a class whose annotated fields are an op's config (Dagster's ``Config``) --------------


def _field_schema(t: Any, default: Any) -> Any:
    """The config schema of one annotated field: a nested `Config` is its shape, ``list[X]`` is ``[X]``,
    ``X | None`` is optional; other annotations are not checked."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if isinstance(default, Config):
        default = default.to_config_dict()
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = _field_schema(rest[0], NoValue) if len(rest) == 1 else object
        return Field(inner, default_value=None if default is NoValue else default, is_required=False)
    if isinstance(t, type) and issubclass(t, Config):
        schema: Any = config_schema_of(t)
    elif t is list or origin is list:
        schema = [_field_schema(args[0], NoValue)] if args else list
    elif t in _SCALARS or t is dict:
        schema = t
    else:
        schema = object
    return schema if default is NoValue else Field(schema, default_value=default)


def config_schema_of(cls: type) -> dict[str, Any]:
    """A `Config` class's fields as a config schema (``{"n": int, "m": Field(str, default_value="x")}``)."""
    hints = {k: v for k, v in typing.get_type_hints(cls).items() if typing.get_origin(v) is not typing.ClassVar}
    return {
        name: _field_schema(t, getattr(cls, name, NoValue)) for name, t in hints.items() if not name.startswith("_")
    }


class Config:
    """Dagster's Pythonic config: ``class Greeting(Config): name: str; times: int = 1``; an op taking a
    parameter ``config: Greeting`` gets it built from its run config (``ops.<op>.config``), checked against
    the fields (Dagster's config errors). Instances are read-only."""

    def __init__(self, **values: Any) -> None:
        schema = config_schema_of(type(self))
        try:
            checked = check_config("root", schema, values)
        except _Invalid as exc:
            raise ConfigError(f"Error in config for {type(self).__name__}", [f"    Error 1: {exc}"], values) from None
        hints = typing.get_type_hints(type(self))
        for name, value in checked.items():
            t = hints.get(name)
            if isinstance(t, type) and issubclass(t, Config) and isinstance(value, Mapping):
                value = t(**value)
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise DagsterInvalidInvocationError(f"'{type(self).__name__}' is a frozen config; it cannot set {name!r}")

    def to_config_dict(self) -> dict[str, Any]:
        """The values as run config (nested configs as mappings)."""
        return {k: v.to_config_dict() if isinstance(v, Config) else v for k, v in vars(self).items()}

    def model_dump(self) -> dict[str, Any]:
        return self.to_config_dict()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash((type(self), json.dumps(self.to_config_dict(), sort_keys=True, default=str)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class RunConfig(dict[str, Any]):
    """Dagster's ``RunConfig(ops=..., resources=..., loggers=..., execution=...)``: run config whose op entries
    may be `Config` instances; it is the run config mapping itself (``{"ops": {name: {"config": {...}}}}``)."""

    def __init__(
        self,
        ops: Mapping[str, Any] | None = None,
        resources: Mapping[str, Any] | None = None,
        loggers: Mapping[str, Any] | None = None,
        execution: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if ops:
            self["ops"] = {k: {"config": v.to_config_dict()} if isinstance(v, Config) else v for k, v in ops.items()}
        if resources:
            self["resources"] = {k: _resource_entry(v) for k, v in resources.items()}
        if loggers:
            self["loggers"] = dict(loggers)
        if execution:
            self["execution"] = dict(execution)

    def to_config_dict(self) -> dict[str, Any]:
        return dict(self)


def _resource_entry(value: Any) -> Any:
    """A resource's run config entry: a `Config`-like object's values under ``config``, a mapping as given."""
    dump = getattr(value, "to_config_dict", None) or getattr(value, "model_dump", None)
    return {"config": dump()} if callable(dump) and not isinstance(value, Mapping) else value


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


def _tags(tags: object) -> dict[str, str]:
    """Dagster's op tags: a mapping; values that are not strings are stored as JSON."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise _param_error("tags", "one of ['Mapping']", tags)
    return {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in tags.items()}


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


class OpDefinition:
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

    def alias(self, name: str) -> PendingNodeInvocation:
        """This op under another node name in a job body: ``add.alias("add_again")(x)``."""
        return PendingNodeInvocation(self).alias(name)

    def tag(self, tags: Mapping[str, str] | None) -> PendingNodeInvocation:
        """This op with more tags for one node: ``op.tag({"team": "data"})()``."""
        return PendingNodeInvocation(self).tag(tags)

    def with_hooks(self, hook_defs: AbstractSet[Any]) -> PendingNodeInvocation:
        """This op with hooks for one node: ``op.with_hooks({notify})()``."""
        return PendingNodeInvocation(self).with_hooks(hook_defs)

    def with_retry_policy(self, retry_policy: RetryPolicy) -> PendingNodeInvocation:
        """This op with a retry policy for one node (it wins over the op's and the job's)."""
        return PendingNodeInvocation(self).with_retry_policy(retry_policy)

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


# --- jobs ----------------------------------------------------------------------------------------------------

#: Run config's top-level sections, as Dagster names them.
RUN_CONFIG_SECTIONS = ("execution", "loggers", "ops", "resources")
_EXECUTION_KEYS = frozenset({"config", "in_process", "multiprocess"})
_DEFAULT_RESOURCES = frozenset({"io_manager"})


def _job_args(name: str, op_retry_policy: object, hooks: object, resource_defs: object, config: object) -> None:
    """Refusals of @job's arguments, with Dagster's wording."""
    if op_retry_policy is not None and not isinstance(op_retry_policy, RetryPolicy):
        raise _param_error("op_retry_policy", "a RetryPolicy", op_retry_policy)
    if hooks is not None and not isinstance(hooks, AbstractSet):
        raise _param_error("hook_defs", "one of ['frozenset', 'set']", hooks)
    if resource_defs is not None and not isinstance(resource_defs, Mapping):
        raise _param_error("resource_defs", "a Mapping", resource_defs)
    if config is not None and not isinstance(config, Mapping):
        raise DefinitionError(
            f"job {name}: config must be a run config mapping ({{'ops': {{...}}}}); got {type(config).__name__} "
            f"(Cairn does not read ConfigMapping or PartitionedConfig)"
        )


class JobDefinition:
    """A job: its nodes in a topological order and, per node, where each input comes from; with what
    Dagster's `@job` gives it (resources, hooks, default run config, tags, retry policy for its ops)."""

    def __init__(
        self,
        name: str,
        nodes: Mapping[str, Node],
        executor_def: ExecutorDefinition | None = None,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        op_retry_policy: RetryPolicy | None = None,
        *,
        resource_defs: Mapping[str, Any] | None = None,
        hook_defs: AbstractSet[Any] | None = None,
        config: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        logger_defs: Mapping[str, Any] | None = None,
        input_values: Mapping[str, Any] | None = None,
        run_tags: Mapping[str, str] | None = None,
        graphs: Mapping[str, GraphNode] | None = None,
    ) -> None:
        _job_args(name, op_retry_policy, hook_defs, resource_defs, config)
        self.name = check_name(name, "job name")
        self.nodes = dict(nodes)
        self.op_retry_policy = op_retry_policy  # for its ops without a retry_policy of their own
        self.executor_def = executor_def or in_process_executor
        self.tags = _tags(tags)
        self.run_tags = _tags(run_tags) if run_tags is not None else None
        self.description = description
        self.resource_defs: dict[str, Any] = dict(resource_defs or {})
        self.hook_defs: frozenset[Any] = frozenset(hook_defs or ())
        self.config: dict[str, Any] | None = dict(config) if config is not None else None
        self.metadata = dict(metadata or {})
        self.logger_defs = dict(logger_defs or {})
        self.input_values = dict(input_values or {})
        #: top-level inputs (a graph's, in ``to_job``) without a value: runs are refused until they have one
        self.missing_inputs: list[str] = []
        self.graphs: dict[str, GraphNode] = dict(graphs or {})
        self.default_config = merge_config(_graph_defaults(self.graphs), self.config)
        self.module_ref: str | None = None  # module:attr when known (set by reconstructable or the loader)
        self.remake: Callable[..., JobDefinition] | None = None  # the same job with other @job arguments
        if not self.nodes:
            raise DefinitionError(f"job {name} has no ops; call at least one op in its body")
        dynamic.check_graph(
            self.step_keys, self.deps(), self.dynamic_outputs(), self.mapped(), self.collects(), f"job {name}"
        )

    def __repr__(self) -> str:
        return f"<job {self.name}: {', '.join(self.nodes)}>"

    def with_hooks(self, hook_defs: AbstractSet[Any]) -> JobDefinition:
        """A copy of this job with more job-level hooks (Dagster's `JobDefinition.with_hooks`)."""
        if not isinstance(hook_defs, AbstractSet):
            raise _param_error("hook_defs", "one of ['frozenset', 'set']", hook_defs)
        made = copy.copy(self)
        made.hook_defs = self.hook_defs | frozenset(hook_defs)
        return made

    def with_input_values(self, input_values: Mapping[str, Any]) -> JobDefinition:
        """This job with its top-level inputs given these values (what ``execute_in_process(input_values=...)``
        runs): a job made by ``graph.to_job`` takes its graph's inputs; a @job has none."""
        if not input_values:
            return self
        if self.remake is None:
            raise DefinitionError(f"job {self.name} cannot be rebuilt with input values (it was not made by @job)")
        made = self.remake(input_values={**self.input_values, **input_values})
        made.module_ref = self.module_ref
        return made

    def get_definition(self) -> JobDefinition:
        """Dagster's `ReconstructableJob.get_definition()`: the job itself (`reconstructable` returns the job)."""
        return self

    def execute_in_process(self, *args: Any, **kwargs: Any) -> Any:
        """Run the job in this process, as Dagster's `JobDefinition.execute_in_process` (`cairn.results`)."""
        import importlib

        return importlib.import_module("cairn.results").execute_in_process(self, *args, **kwargs)

    def step_versions(self, run_config: Mapping[str, Any] | None) -> dict[str, str]:
        """Each step's version in a run with `run_config`: its op's code version and a hash of its config
        (``src:1a2b3c4d5e6f+cfg:9f8e7d6c``); what `Stale` re-execution compares. Keyed by node: a mapped
        op's instances ``op[key]`` have their op's version."""
        out = {}
        for step, node in self.nodes.items():
            cfg = json.dumps(self.op_config(run_config or {}, step), sort_keys=True, default=str)
            out[step] = f"{node.op.code_version}+cfg:{hashlib.sha256(cfg.encode()).hexdigest()[:8]}"
        return out

    def retry_policy(self, step: str) -> RetryPolicy | None:
        """How a failed step is retried, Dagster's precedence: the node's (``op.with_retry_policy(...)()``),
        else its op's retry_policy, else the job's op_retry_policy."""
        node = self.nodes[dynamic.node_of(step)]
        return node.retry_policy or node.op.retry_policy or self.op_retry_policy

    @property
    def step_keys(self) -> list[str]:
        return list(self.nodes)  # calls are recorded in dependency order

    def deps(self) -> dict[str, dict[str, tuple[str, str]]]:
        """step -> {input: (upstream step, output)}: the static wiring, without collect inputs; with the
        ordering-only (``In(Nothing)``) inputs, which the step does not load."""
        return {
            n: {i: (h.node, h.output) for i, h in (*node.inputs.items(), *node.after.items())}
            for n, node in self.nodes.items()
        }

    def dynamic_outputs(self) -> dict[str, tuple[str, ...]]:
        """node -> its dynamic outputs (nodes with none are left out)."""
        return {n: node.op.dynamic_outs for n, node in self.nodes.items() if node.op.dynamic_outs}

    def mapped(self) -> dict[str, tuple[str, str]]:
        """mapped node -> (dynamic node, dynamic output) it is mapped over."""
        return {n: node.mapped for n, node in self.nodes.items() if node.mapped is not None}

    def collects(self) -> dict[str, dict[str, tuple[str, str]]]:
        """node -> {input: (mapped node, output)} for its inputs that collect a mapped node."""
        return {
            n: {i: (h.node, h.output) for i, h in node.collects.items()}
            for n, node in self.nodes.items()
            if node.collects
        }

    @property
    def fans_out(self) -> bool:
        return any(node.op.dynamic_outs or node.mapped for node in self.nodes.values())

    def outputs(self) -> dict[str, dict[str, Out]]:
        return {n: dict(node.op.outs) for n, node in self.nodes.items()}

    def iter_ops(self) -> Iterator[tuple[str, OpDefinition]]:
        for n, node in self.nodes.items():
            yield n, node.op

    def graph_output(self, node: str, output: str = "result") -> tuple[str, str] | None:
        """The (node, output) a graph node's output is (``("outer", "a")`` -> ``("outer.inner.add", "result")``),
        following graphs inside graphs; None for a node that is not a graph."""
        graph = self.graphs.get(node)
        if graph is None:
            return None
        return graph.outputs.get(output)

    def resolved_run_config(self, run_config: Mapping[str, Any] | None) -> dict[str, Any]:
        """The run config a run uses: the job's default `config` (and its graphs' defaults) with `run_config`
        laid over it, as Dagster fills a run's config from the job's."""
        if not self.default_config:
            return dict(run_config or {})
        return merge_config(self.default_config, run_config)

    def op_config(self, run_config: Mapping[str, Any] | None, step: str) -> Any:
        """A step's validated config: ``ops.<node>.config``, for a node inside graphs
        ``ops.<graph>.ops.<node>.config`` (the flat ``ops."<graph>.<node>".config`` is read too, which is how a
        step's pod gets it); every instance of a mapped op shares it."""
        node = dynamic.node_of(step)
        cfg = self.resolved_run_config(run_config)
        parts = node.split(".")
        given = (run_config or {}).get("ops")
        if len(parts) > 1 and isinstance(given, Mapping) and node in given:  # the flat key wins: a pod's config
            entry, where = given[node], f"root:ops:{node}"
        else:
            entry, where = _node_entry(cfg.get("ops"), parts)
        try:
            if entry is not None and not isinstance(entry, Mapping):
                raise _Invalid(
                    f'Value at path {where} must be dict. Expected: "{{ config?: ... }}". (Cairn: run_config '
                    f"{_dotted(where)} must be a mapping like {{'config': {{...}}}}.)"
                )
            schema = self.nodes[node].op.config_schema
            value = entry.get("config") if entry is not None else None
            if value is None and _required(schema):
                raise _Invalid(_missing_config(cfg, parts))
            return check_config(f"{where}:config", schema, value)
        except _Invalid as exc:
            raise ConfigError(f"Error in config for job {self.name}", [f"    Error 1: {exc}"], run_config) from None

    def validate_run_config(self, run_config: Mapping[str, Any] | None) -> None:
        """Check run_config as a whole before anything runs: Dagster's sections (`ops`, `resources`,
        `execution`, `loggers`); `execution` names an executor or gives `config` and is not read by the
        in-process executor; `loggers` is accepted and not read."""
        try:
            if run_config is not None and not isinstance(run_config, Mapping):
                raise _Invalid(f'Value at the root must be dict. Expected: "{self._expected_root()}".')
            cfg = self.resolved_run_config(run_config)
            unknown = sorted(set(cfg) - set(RUN_CONFIG_SECTIONS))
            if unknown:
                raise _Invalid(
                    f'Received unexpected config entry "{unknown[0]}" at the root. '
                    f'Expected: "{self._expected_root()}". '
                    f"(Cairn: run_config has unknown key(s) {unknown}; its sections are "
                    f"{', '.join(RUN_CONFIG_SECTIONS)}.)"
                )
            if self.missing_inputs:
                raise _Invalid(
                    f'Missing required config entry "inputs" at the root. You must provide this value in your run '
                    f"config. (Cairn: job {self.name}'s top-level input(s) {', '.join(self.missing_inputs)} have no "
                    f"value: give input_values={{...}} to to_job or execute_in_process; Cairn reads no inputs run "
                    f"config.)"
                )
            _check_section(cfg, "execution", _EXECUTION_KEYS)
            _check_section(cfg, "loggers", None)
            self._check_ops(cfg.get("ops"), "root:ops", "")
        except _Invalid as exc:
            raise ConfigError(f"Error in config for job {self.name}", [f"    Error 1: {exc}"], run_config) from None
        self._check_resources(self.resolved_run_config(run_config).get("resources"))
        for step in self.nodes:
            self.op_config(run_config, step)

    def _expected_root(self) -> str:
        return "{ execution?: { config?: Any } loggers?: { } ops?: { ... } resources?: { ... } }"

    def _children(self, prefix: str) -> dict[str, bool]:
        """The nodes directly inside graph node `prefix` ("" for the job): name -> whether it is a graph."""
        out: dict[str, bool] = {}
        for full in [*self.nodes, *self.graphs]:
            if full.startswith(prefix) and "." not in full[len(prefix) :]:
                out[full[len(prefix) :]] = full in self.graphs
        return out

    def _check_ops(self, ops: Any, path: str, prefix: str) -> None:
        """The ops section (or a graph's ``ops``): each key one of the nodes there, each entry a mapping with
        ``config`` (and ``inputs``) for an op, ``ops`` (and ``config``) for a graph."""
        if ops is None:
            return
        children = self._children(prefix)
        expected = "{ " + " ".join(f"{c}?: {{ ... }}" for c in sorted(children)) + " }"
        if not isinstance(ops, Mapping):
            raise _Invalid(f'Value at path {path} must be dict. Expected: "{expected}".')
        unknown = sorted(set(ops) - set(children))
        if unknown:
            raise _Invalid(
                f'Received unexpected config entry "{unknown[0]}" at path {path}. Expected: "{expected}". '
                f"(Cairn: run_config names op(s) not in job {self.name}: {', '.join(unknown)}; its "
                f"{'ops' if not prefix else 'nodes in ' + prefix[:-1]} are {', '.join(children)}.)"
            )
        for child, entry in ops.items():
            where = f"{path}:{child}"
            allowed = {"ops", "config"} if children[child] else {"config", "inputs", "outputs"}
            if not isinstance(entry, Mapping):
                shape = " ".join(a + "?: ..." for a in sorted(allowed))
                raise _Invalid(
                    f'Value at path {where} must be dict. Expected: "{{ {shape} }}". '
                    f"(Cairn: run_config {_dotted(where)} must be a mapping like {{'config': {{...}}}}.)"
                )
            extra = sorted(set(entry) - allowed)
            if extra:
                raise _Invalid(
                    f'Received unexpected config entry "{extra[0]}" at path {where}. '
                    f'Expected: "{{ {" ".join(a + "?: ..." for a in sorted(allowed))} }}".'
                )
            if children[child]:
                self._check_ops(entry.get("ops"), f"{where}:ops", f"{prefix}{child}.")

    def _check_resources(self, resources: Any) -> None:
        """The resources section, checked by `cairn.resources.check_resources_config` (resources' own config
        schemas); without that module, only that each name is a resource of this job."""
        try:
            import importlib

            check = importlib.import_module("cairn.resources").check_resources_config
        except (ImportError, AttributeError):
            check = None
        if check is not None:
            check(self.resource_defs, resources or {}, self.name)
            return
        known = set(self.resource_defs) | _DEFAULT_RESOURCES
        if resources is not None and not isinstance(resources, Mapping):
            raise ConfigError(f"Error in config for job {self.name}", ["Value at path root:resources must be dict."])
        unknown = sorted(set(resources or {}) - known)
        if unknown:
            raise ConfigError(
                f"Error in config for job {self.name}",
                [
                    f'    Error 1: Received unexpected config entry "{unknown[0]}" at path root:resources. Expected: '
                    f'"{{ {" ".join(k + "?: { config?: Any }" for k in sorted(known))} }}".'
                ],
            )


def _check_section(cfg: Mapping[str, Any], section: str, allowed: AbstractSet[str] | None) -> None:
    value = cfg.get(section)
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise _Invalid(f"Value at path root:{section} must be dict.")
    extra = sorted(set(value) - allowed) if allowed is not None else []
    if extra:
        raise _Invalid(
            f'Received unexpected config entry "{extra[0]}" at path root:{section}. Expected: '
            f'"{{ {" ".join(k + "?: { config?: Any }" for k in sorted(allowed or ()))} }}".'
        )


def _node_entry(ops: Any, parts: Sequence[str]) -> tuple[Any, str]:
    """The run config entry of the node at `parts` (``["outer", "inner", "add"]`` reads
    ``ops.outer.ops.inner.ops.add``) and its path; None when absent."""
    where = "root:ops"
    entry: Any = None
    for i, part in enumerate(parts):
        if not isinstance(ops, Mapping) or part not in ops:
            return None, f"{where}:{':ops:'.join(parts[i:])}"
        entry, where = ops[part], f"{where}:{part}"
        if i < len(parts) - 1:
            ops = entry.get("ops") if isinstance(entry, Mapping) else None
            where = f"{where}:ops"
    return entry, where


def _missing_config(cfg: Mapping[str, Any], parts: Sequence[str]) -> str:
    """Dagster's message for a required op config that is absent: it names the outermost missing entry."""
    end = " You must provide this value in your run config."
    if not isinstance(cfg.get("ops"), Mapping):
        return f'Missing required config entry "ops" at the root.{end}'
    ops, where = cfg["ops"], "root:ops"
    for part in parts:
        if not isinstance(ops, Mapping) or part not in ops:
            return f'Missing required config entry "{part}" at path {where}.{end}'
        entry, where = ops[part], f"{where}:{part}"
        ops = entry.get("ops") if isinstance(entry, Mapping) else None
        where = f"{where}:ops" if part != parts[-1] else where
    return f'Missing required config entry "config" at path {where}.{end}'


def _graph_defaults(graphs: Mapping[str, GraphNode]) -> dict[str, Any]:
    """The default config of the graphs in a job (``@graph(config={...})``) placed at their run config path."""
    out: dict[str, Any] = {}
    for name, graph in sorted(graphs.items(), key=lambda kv: -kv[0].count(".")):
        if graph.config:
            section: dict[str, Any] = dict(graph.config)
            for part in reversed(name.split(".")):
                section = {"ops": {part: section}}
            out = merge_config(section, out)
    return out


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
