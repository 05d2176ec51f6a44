"""Dagster's types for op inputs and outputs (`TypeSpec`, `Nothing`, `resolve_type`, the checks a step runs on
values: `check_output_type`, `check_input_type`) and the argument checks every definition shares (`NoValue`,
`check_name`, tags); re-exported by `cairn.definitions`."""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cairn.errors import DagsterInvalidInvocationError, DagsterTypeCheckDidNotPass, DefinitionError


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


def _tags(tags: object) -> dict[str, str]:
    """Dagster's op tags: a mapping; values that are not strings are stored as JSON."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise _param_error("tags", "one of ['Mapping']", tags)
    return {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in tags.items()}


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
