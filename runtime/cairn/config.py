"""Dagster's Pythonic config: ``class Greeting(Config): name: str; count: int = 2``, an op parameter named
``config`` annotated with it (``def greet(config: Greeting)``) that receives the op's run config as an
instance, and `RunConfig` (a run config of such objects: ``RunConfig(ops={"greet": Greeting(name="a")})``).

As Dagster's: fields are the class's annotations with their defaults; an instance is frozen (assignment
raises DagsterInvalidInvocationError with Dagster's wording); a field annotated with another Config
class is a nested section (a dict in run config); an ``Optional[...]`` field is not required. Unlike
Dagster's it is not a pydantic model (the step image carries no pydantic): a missing or mistyped field
raises `cairn.resources.ValidationError` (a ValueError) with pydantic's layout, and `model_dump()` is the
one pydantic method it has.

What the op decorator asks of this module (pure functions): `config_arg(fn)`, the op's config parameter
and the config schema it implies, and `ConfigArg.value(op_config)`, what the op receives.
"""

from __future__ import annotations

import copy
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from cairn.errors import DagsterInvalidDefinitionError, DagsterInvalidInvocationError
from cairn.resources import _NO_DEFAULT, ConfigField, ValidationError, _annotation_ok

#: Dagster's name of the op parameter that receives the op's config.
CONFIG_PARAM = "config"
_SCALARS = (str, int, float, bool)


def _optional_inner(annotation: Any) -> Any | None:
    """X for ``Optional[X]`` / ``X | None``, else None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0]
    return None


def _is_config_class(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Config)


def config_fields(cls: type) -> dict[str, tuple[Any, Any]]:
    """A Config class's fields, base classes' first: name -> (annotation, default or _NO_DEFAULT). An
    ``Optional`` field without a default defaults to None."""
    fields: dict[str, tuple[Any, Any]] = {}
    for klass in reversed(cls.__mro__):
        if not issubclass(klass, Config) or klass is Config:
            continue
        hints = typing.get_type_hints(klass)
        for name in inspect.get_annotations(klass):
            hint = hints.get(name, Any)
            if name.startswith("_") or hint is ClassVar or typing.get_origin(hint) is ClassVar:
                continue
            default = klass.__dict__.get(name, _NO_DEFAULT)
            if default is _NO_DEFAULT and _optional_inner(hint) is not None:
                default = None
            fields[name] = (hint, default)
    return fields


def _build(annotation: Any, value: Any) -> Any:
    """A field's value as the field holds it: a dict for a Config-annotated field becomes that Config."""
    target = _optional_inner(annotation) or annotation
    if _is_config_class(target) and isinstance(value, Mapping):
        return target(**value)
    return value


def _validated(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    fields = config_fields(cls)
    problems = [
        f"{k}\n  Extra inputs are not permitted [input_value={v!r}]" for k, v in data.items() if k not in fields
    ]
    values: dict[str, Any] = {}
    for name, (annotation, default) in fields.items():
        if name not in data and default is _NO_DEFAULT:
            problems.append(f"{name}\n  Field required")
            continue
        value = _build(annotation, data[name]) if name in data else copy.deepcopy(default)
        if not _annotation_ok(annotation, value):
            problems.append(
                f"{name}\n  Input should be {getattr(annotation, '__name__', annotation)} "
                f"[input_value={value!r}, input_type={type(value).__name__}]"
            )
        values[name] = value
    if problems:
        count = f"{len(problems)} validation error{'s' if len(problems) > 1 else ''}"
        raise ValidationError(f"{count} for {cls.__name__}\n" + "\n".join(problems))
    return values


class Config:
    """Dagster's base class of op config: subclass it with annotated fields (``name: str``, ``count: int =
    2``); build it with keyword arguments; it is frozen."""

    def __init__(self, **data: Any) -> None:
        for name, value in _validated(type(self), data).items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise DagsterInvalidInvocationError(
            f"'{type(self).__name__}' is a Pythonic config class and does not support item assignment, as it "
            "inherits from 'pydantic.BaseModel' with frozen=True."
        )

    def model_dump(self) -> dict[str, Any]:
        """The fields as a dict (nested Config as dicts): what run config says for this object."""
        return {name: _dumped(getattr(self, name)) for name in config_fields(type(self))}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, Config) and other.model_dump() == self.model_dump()

    def __hash__(self) -> int:
        return hash((type(self), repr(self)))

    def __str__(self) -> str:
        return " ".join(f"{k}={getattr(self, k)!r}" for k in config_fields(type(self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in config_fields(type(self)))})"


def _dumped(value: Any) -> Any:
    if isinstance(value, Config):
        return value.model_dump()
    if isinstance(value, list | tuple):
        return [_dumped(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _dumped(v) for k, v in value.items()}
    return value


def config_schema_of(annotation: Any) -> Any:
    """The config schema an annotation implies (the shape `cairn.resources.check_config` reads): a scalar
    type, ``[inner]`` for ``list[inner]``, a shape of fields for a Config class, None (anything) else."""
    inner = _optional_inner(annotation)
    if inner is not None:
        return ConfigField(config_schema_of(inner), default_value=None, is_required=False)
    if _is_config_class(annotation):
        return {
            name: ConfigField(config_schema_of(hint), default_value=_dumped(default))
            if default is not _NO_DEFAULT
            else ConfigField(config_schema_of(hint))
            for name, (hint, default) in config_fields(annotation).items()
        }
    if annotation in _SCALARS:
        return annotation
    if typing.get_origin(annotation) is list and len(typing.get_args(annotation)) == 1:
        return [config_schema_of(typing.get_args(annotation)[0])]
    return None


@dataclass(frozen=True)
class ConfigArg:
    """An op's config parameter: its annotation (a Config class, another type, or none) and default."""

    annotation: Any
    default: Any = _NO_DEFAULT

    @property
    def schema(self) -> Any:
        """The op's config schema, from the annotation (Dagster infers it there)."""
        schema = config_schema_of(self.annotation)
        if self.default is not _NO_DEFAULT and _is_config_class(self.annotation):
            return ConfigField(schema, default_value=_dumped(self.default))
        return schema

    def value(self, op_config: Any) -> Any:
        """What the op receives: a Config instance built from its (checked, defaults filled) config."""
        if _is_config_class(self.annotation):
            if isinstance(op_config, Config):
                return op_config
            return self.annotation(**dict(op_config or {}))
        return op_config


def config_arg(fn: Callable[..., Any], config_schema: Any = None) -> ConfigArg | None:
    """The op function's config parameter (Dagster: a parameter named ``config``), or None. Refuses a
    config parameter together with `config_schema`, with Dagster's wording."""
    params = inspect.signature(fn).parameters
    if CONFIG_PARAM not in params:
        return None
    if config_schema not in (None, {}):
        raise DagsterInvalidDefinitionError(
            "If the @op has a config arg, you cannot specify a config schema. (Cairn: the config parameter's "
            "annotation is the schema; remove config_schema or rename the parameter.)"
        )
    param = params[CONFIG_PARAM]
    try:
        annotation = typing.get_type_hints(fn).get(CONFIG_PARAM, param.annotation)
    except (NameError, TypeError):
        annotation = param.annotation
    annotation = None if annotation is inspect.Parameter.empty else annotation
    default = _NO_DEFAULT if param.default is inspect.Parameter.empty else param.default
    return ConfigArg(annotation, default)


def _without_none(value: Any) -> Any:
    """A dumped Config without its None fields, as Dagster's RunConfig writes it."""
    if isinstance(value, Mapping):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def _section(value: Any) -> Any:
    """One node's or resource's entry of a run config: ``{"config": ...}`` for a Config or resource object."""
    if isinstance(value, Config):
        return {"config": _without_none(value.model_dump())}
    config_dict = getattr(value, "_config_dict", None)
    if callable(config_dict):  # a ConfigurableResource
        return {"config": _without_none(_dumped(config_dict()))}
    return value


class RunConfig:
    """Dagster's run config as objects: ``RunConfig(ops={"greet": Greeting(name="a")}, resources={"db":
    Db(url=...)})``; `to_config_dict()` is the plain run config (``{"ops": {"greet": {"config": {...}}}}``)."""

    def __init__(
        self,
        ops: Mapping[str, Any] | None = None,
        resources: Mapping[str, Any] | None = None,
        loggers: Mapping[str, Any] | None = None,
        execution: Mapping[str, Any] | None = None,
    ) -> None:
        self.ops: dict[str, Any] = dict(ops or {})
        self.resources: dict[str, Any] = dict(resources or {})
        self.loggers: dict[str, Any] = dict(loggers or {})
        self.execution: dict[str, Any] = dict(execution or {})

    def to_config_dict(self) -> dict[str, Any]:
        return {
            "loggers": dict(self.loggers),
            "resources": {k: _section(v) for k, v in self.resources.items()},
            "ops": {k: _section(v) for k, v in self.ops.items()},
            "execution": dict(self.execution),
        }


def as_run_config(run_config: Any) -> Any:
    """A run config as a plain mapping: a `RunConfig` converted, anything else as given."""
    return run_config.to_config_dict() if isinstance(run_config, RunConfig) else run_config
