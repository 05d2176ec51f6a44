"""Op config and run config as Dagster writes them: config schemas (`Field`, `Array`, `Noneable`, `Shape`,
`Permissive`, `Selector`, the `*Source` scalars), `check_config` with Dagster's wording, `merge_config`, and
Pythonic config (`Config`, `RunConfig`); re-exported by `cairn.definitions`."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cairn.dagster_types import _SCALARS, NoValue
from cairn.errors import ConfigError, DagsterInvalidInvocationError

# --- config fields -------------------------------------------------------------------------------------------


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
