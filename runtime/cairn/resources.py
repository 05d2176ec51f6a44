"""Resources and IO managers as Dagster defines them: `@resource`, `ResourceDefinition`, `ConfigurableResource`,
`InitResourceContext`, `build_resources`, `build_op_context`, `IOManager`, `@io_manager`, `fs_io_manager`,
`mem_io_manager`, their run config (``resources: {key: {config: {...}}}``) and the checks a job's resources must
pass.

A job's ``resource_defs`` map keys to resources: a `ResourceDefinition` (from ``@resource`` or ``@io_manager``),
a `ConfigurableResource` instance (its typed fields are its config), ``SomeResource.configure_at_launch()``
(config from the run config), or any other object (given to ops as it is). A step initialises the resources it
needs (its op's ``required_resource_keys`` and resource parameters, its hooks', its outputs' and inputs' IO
managers, and what those require in turn), in dependency order, and tears them down after the step.

Outputs whose IO manager is Cairn's own store (the default ``io_manager``, when the job does not define one)
are stored as before; an output whose ``io_manager_key`` names a job resource is handed to that IO manager's
``handle_output`` and Cairn's store keeps a small record of where it went (`ManagedOutput`), which is what
re-execution reuses: a child run's step loads it through the same IO manager with the parent run's id.
"""

from __future__ import annotations

import abc
import contextlib
import inspect
import logging
import os
import pickle
import tempfile
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar

from cairn.context import OpExecutionContext, Resources
from cairn.errors import (
    ConfigError,
    DagsterError,
    DagsterInvalidInvocationError,
    DagsterInvariantViolationError,
    DagsterResourceFunctionError,
    DefinitionError,
)

#: The key of the default IO manager; Cairn's own store when a job does not define it.
DEFAULT_IO_MANAGER_KEY = "io_manager"
EPHEMERAL_RUN_ID = "EPHEMERAL"

# ----- config, checked with Dagster's wording ---------------------------------------------------------------

_SCALARS: Mapping[type, str] = MappingProxyType({int: "Int", float: "Float", str: "String", bool: "Bool"})
_NO_DEFAULT = object()


@dataclass(frozen=True)
class ConfigField:
    """One config field of a resource: its type (a config schema), default and whether it must be given."""

    config_type: Any = None
    default_value: Any = _NO_DEFAULT
    is_required: bool | None = None

    @property
    def required(self) -> bool:
        if self.is_required is not None:
            return self.is_required
        return self.default_value is _NO_DEFAULT and schema_required(self.config_type)


def _field_parts(spec: Any) -> tuple[Any, bool, Any]:
    """(inner schema, required, default or _NO_DEFAULT) of a shape's entry: a Field (Cairn's, Dagster-like or
    `ConfigField`) or a bare schema (required when it has required parts)."""
    if hasattr(spec, "default_value") and any(hasattr(spec, a) for a in ("config_type", "type", "config")):
        inner = next((getattr(spec, a) for a in ("config_type", "type", "config") if hasattr(spec, a)), None)
        default = _NO_DEFAULT if _is_no_default(spec.default_value) else spec.default_value
        required = spec.required if hasattr(spec, "required") else getattr(spec, "is_required", None)
        if required is None:
            required = default is _NO_DEFAULT
        return inner, bool(required), default
    return spec, schema_required(spec), _NO_DEFAULT


def _is_no_default(value: Any) -> bool:
    """Whether a field's default_value means "none given" (ours, or the authoring module's NoValue)."""
    return value is _NO_DEFAULT or type(value).__name__ == "_NoValueSentinel"


def schema_required(schema: Any) -> bool:
    """Whether a value must be given for `schema`: a scalar or a shape with a required field (Dagster's rule)."""
    if isinstance(schema, Mapping):
        return any(_field_parts(s)[1] for s in schema.values())
    if hasattr(schema, "default_value"):
        return _field_parts(schema)[1]
    if _is_config_type(schema):
        return bool(schema.required)
    return isinstance(schema, type) and schema in _SCALARS


def _is_config_type(schema: Any) -> bool:
    """Whether `schema` is one of Dagster's config type objects (``Noneable``, ``Permissive``, ``StringSource``...,
    `cairn.config_types`), which check themselves."""
    from cairn.config_types import ConfigType

    return isinstance(schema, ConfigType)


def _check_config_type(schema: Any, value: Any, path: str) -> tuple[Any, list[str]]:
    from cairn import config_types

    try:
        return schema.check(path, value), []
    except config_types._Invalid as exc:
        return value, [str(exc)]


def schema_label(schema: Any) -> str:
    """How Dagster prints a config type: ``{ x: Int y?: String }``, ``Int``, ``[Int]``, ``Any``."""
    if isinstance(schema, Mapping):
        parts = []
        for name, spec in schema.items():
            inner, required, _ = _field_parts(spec)
            parts.append(f"{name}{'' if required else '?'}: {schema_label(inner)}")
        return "{ " + " ".join(parts) + " }" if parts else "{ }"
    if isinstance(schema, list) and len(schema) == 1:
        return f"[{schema_label(schema[0])}]"
    if hasattr(schema, "default_value"):
        return schema_label(_field_parts(schema)[0])
    if _is_config_type(schema):
        return str(schema.type_name)
    return _SCALARS.get(schema, "Any") if isinstance(schema, type) else "Any"


class EnvVar(str):
    """Dagster's ``EnvVar("NAME")``: a config value (a resource's field) read from the environment variable NAME
    when the run starts, not when the job is defined (so a secret is never part of the definition)."""

    @property
    def env_var_name(self) -> str:
        return str(self)

    def get_value(self, default: str | None = None) -> str | None:
        return os.environ.get(str(self), default)


def _resolved(value: Any, path: str) -> tuple[Any, list[str]]:
    """An `EnvVar` config value replaced by its variable's value (Dagster's error when it is not set)."""
    if not isinstance(value, EnvVar):
        return value, []
    got = value.get_value()
    if got is not None:
        return got, []
    return value, [
        f"Post processing at path {path} of original value {{'env': '{value}'}} failed:\nYou have attempted to "
        f'fetch the environment variable "{value}" which is not set. In order for this execution to succeed it must '
        f"be set in this environment."
    ]


def _where(path: str) -> str:
    return "the root" if path == "root" else f"path {path}"


def check_config(schema: Any, value: Any, path: str = "root") -> tuple[Any, list[str]]:
    """`value` checked against a config schema, defaults filled in, `EnvVar` values read from the environment:
    (value, Dagster's error lines)."""
    if hasattr(schema, "default_value") and not isinstance(schema, Mapping):
        inner, _, default = _field_parts(schema)
        if value is None and default is not _NO_DEFAULT:
            return _resolved(default, path)
        return check_config(inner, value, path)
    value, env_errors = _resolved(value, path)
    if env_errors:
        return value, env_errors
    if _is_config_type(schema):
        return _check_config_type(schema, value, path)
    if isinstance(schema, Mapping):
        return _check_shape(schema, value, path)
    if isinstance(schema, list) and len(schema) == 1:
        if not isinstance(value, list):
            return value, [f'Value at path {path} must be list. Expected: "{schema_label(schema)}".']
        checked = [check_config(schema[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
        return [v for v, _ in checked], [e for _, errs in checked for e in errs]
    if isinstance(schema, type) and schema in _SCALARS:
        ok = isinstance(value, schema) and not (schema is not bool and isinstance(value, bool))
        ok = ok or (schema is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            return value, [
                f'Invalid scalar at path {path}. Value "{value}" of type "{type(value)}" is not valid for expected '
                f'type "{_SCALARS[schema]}".'
            ]
    return value, []


def _check_shape(schema: Mapping[str, Any], value: Any, path: str) -> tuple[Any, list[str]]:
    value = {} if value is None else value
    if not isinstance(value, Mapping):
        return value, [f'Value at {_where(path)} must be dict. Expected: "{schema_label(schema)}".']
    errors = [
        f'Received unexpected config entry "{k}" at {_where(path)}. Expected: "{schema_label(schema)}".'
        for k in value
        if k not in schema
    ]
    out: dict[str, Any] = {}
    for name, spec in schema.items():
        inner, required, default = _field_parts(spec)
        if name in value:
            out[name], errs = check_config(inner, value[name], f"{path}:{name}")
            errors.extend(errs)
        elif required:
            errors.append(
                f'Missing required config entry "{name}" at {_where(path)}. You must provide this value in your '
                f"run config."
            )
        elif default is not _NO_DEFAULT:
            out[name], errs = _resolved(default, f"{path}:{name}")
            errors.extend(errs)
        elif _is_shape(inner):  # an optional section: its own defaults (and their errors)
            out[name], errs = check_config(inner, None, f"{path}:{name}")
            errors.extend(errs)
        elif _is_config_type(inner):  # e.g. Noneable: what it makes of no value, if anything
            absent, errs = _check_config_type(inner, None, f"{path}:{name}")
            if not errs:
                out[name] = absent
    return out, errors


def _is_shape(schema: Any) -> bool:
    if isinstance(schema, Mapping):
        return True
    return hasattr(schema, "default_value") and _is_shape(_field_parts(schema)[0])


def numbered(errors: Sequence[str]) -> list[str]:
    """Dagster's layout of config errors under their preamble: ``    Error 1: ...``."""
    return [f"    Error {i}: {e}" for i, e in enumerate(errors, 1)]


# ----- resource definitions -------------------------------------------------------------------------------


def _log(key: str | None) -> logging.Logger:
    return logging.getLogger(f"cairn.resources.{key}" if key else "cairn.resources")


def _namespace(values: Mapping[str, Any]) -> Resources:
    """Initialised resources as attributes (the op context's `Resources`, Dagster's ``context.resources``)."""
    return Resources(values)


def _as_namespace(resources: Any) -> Any:
    """A context's ``resources``: a mapping (or None) as attributes; a namespace as it is."""
    if resources is None or isinstance(resources, Mapping):
        return _namespace(dict(resources or {}))
    return resources


class InitResourceContext:
    """What a resource function receives: its config, the resources it requires, its run and a logger."""

    def __init__(
        self,
        resource_config: Any,
        resources: Any,
        resource_def: ResourceDefinition | None = None,
        all_resource_defs: Mapping[str, Any] | None = None,
        instance: Any = None,
        dagster_run: Any = None,
        log_manager: logging.Logger | None = None,
        *,
        run_id: str | None = None,
        key: str | None = None,
    ) -> None:
        self.resource_config = resource_config
        self.resources = _as_namespace(resources)
        self.resource_def = resource_def
        self.all_resource_defs = dict(all_resource_defs or {})
        self.instance = instance
        self.dagster_run = dagster_run
        self.log_manager = log_manager or _log(key)
        self.run_id = run_id if run_id is not None else getattr(dagster_run, "run_id", None)
        self._key = key

    @property
    def log(self) -> logging.Logger:
        return self.log_manager

    @property
    def run(self) -> Any:
        return self.dagster_run

    def replace_config(self, config: Any) -> InitResourceContext:
        return InitResourceContext(
            config,
            self.resources,
            self.resource_def,
            self.all_resource_defs,
            self.instance,
            self.dagster_run,
            self.log_manager,
            run_id=self.run_id,
            key=self._key,
        )


def build_init_resource_context(
    config: Mapping[str, Any] | None = None, resources: Mapping[str, Any] | None = None, instance: Any = None
) -> InitResourceContext:
    """A context for calling a resource function directly in a test: ``my_resource(build_init_resource_context(
    config={...}))``."""
    return InitResourceContext(config, initialised_for_test(resources, instance), instance=instance)


def initialised_for_test(resources: Mapping[str, Any] | None, instance: Any = None) -> Resources:
    """A test context's ``resources``: values as they are, resource definitions (and Pythonic resources)
    initialised, as Dagster's ``build_*_context`` functions take either. Nothing is torn down: a test that needs
    teardown uses `build_resources` (or ``with build_op_context(...)``)."""
    values = dict(resources or {})
    if not any(isinstance(v, ResourceDefinition | ConfigurableResource | PartialResource) for v in values.values()):
        return _namespace(values)
    stack = contextlib.ExitStack()
    return typing.cast(Resources, stack.enter_context(build_resources(values, instance)))


def _takes_context(fn: Callable[..., Any]) -> bool:
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return bool(params)


@contextlib.contextmanager
def _opened(result: Any, key: str | None) -> Iterator[Any]:
    """A resource function's result as its value for the block: a generator's one yield (its code after the
    yield is the teardown), a ``@contextmanager``'s value, or the result itself (Dagster's three forms). A
    teardown that raises is logged, not raised (Dagster reports it and goes on)."""
    if not (inspect.isgenerator(result) or isinstance(result, contextlib.ContextDecorator)):
        yield result
        return
    steps = _generator_steps(result)
    try:
        value = next(steps)
    except StopIteration:
        raise DagsterInvariantViolationError(f"Resource generator {key} must yield one item.") from None
    try:
        yield value
    finally:
        try:
            next(steps, None)
        except Exception:
            _log(key).exception("teardown of resource %s raised", key)


def _generator_steps(result: Any) -> Iterator[Any]:
    """A generator's or a context manager's value, then its teardown, as one generator."""
    if inspect.isgenerator(result):
        yield from result
        return
    with result as value:
        yield value


class ResourceDefinition:
    """A resource: a function of its `InitResourceContext` (or of nothing) returning the resource, or yielding
    it (the code after the yield runs at teardown)."""

    def __init__(
        self,
        resource_fn: Callable[..., Any],
        config_schema: Any = None,
        description: str | None = None,
        required_resource_keys: typing.AbstractSet[str] | None = None,
        version: str | None = None,
    ) -> None:
        if not callable(resource_fn):
            raise DefinitionError(f"ResourceDefinition: resource_fn must be callable, got {resource_fn!r}")
        self.resource_fn = resource_fn
        self.config_schema = config_schema
        self.description = description
        self.required_resource_keys = frozenset(required_resource_keys or ())
        self.version = version

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self.resource_fn, '__name__', '')}>"

    @staticmethod
    def hardcoded_resource(value: Any, description: str | None = None) -> ResourceDefinition:
        """A resource that is `value`."""
        return ResourceDefinition(lambda _init_context: value, description=description)

    @staticmethod
    def none_resource(description: str | None = None) -> ResourceDefinition:
        return ResourceDefinition.hardcoded_resource(None, description)

    @staticmethod
    def mock_resource(description: str | None = None) -> ResourceDefinition:
        """A resource that is a new `unittest.mock.MagicMock`."""
        from unittest import mock

        return ResourceDefinition(lambda _init_context: mock.MagicMock(), description=description)

    @staticmethod
    def string_resource(description: str | None = None) -> ResourceDefinition:
        """A resource that is its config, a string."""
        return ResourceDefinition(lambda ctx: ctx.resource_config, config_schema=str, description=description)

    def configured(
        self, config_or_config_fn: Any, config_schema: Any = None, description: str | None = None
    ) -> ResourceDefinition:
        """This resource with its config given (a value, or a function of the new `config_schema`'s config)."""
        parent = self

        def resource_fn(context: InitResourceContext) -> Any:
            given = (
                config_or_config_fn(context.resource_config) if callable(config_or_config_fn) else config_or_config_fn
            )
            value, errors = check_config(parent.config_schema, given, "root:config")
            if errors:
                key = f" {context._key}" if context._key else ""
                raise ConfigError(f"Error in config for resource{key}", numbered(errors), given)
            return parent.open_value(context.replace_config(value))

        return type(self)(
            resource_fn, config_schema, description or self.description, self.required_resource_keys, self.version
        )

    def open_value(self, context: InitResourceContext) -> Any:
        """What calling the resource function with `context` returns (a value, a generator, a context manager)."""
        return self.resource_fn(context) if _takes_context(self.resource_fn) else self.resource_fn()

    def open(self, context: InitResourceContext) -> contextlib.AbstractContextManager[Any]:
        """The resource for a block: initialised, torn down after it."""
        return _opened(self.open_value(context), getattr(context, "_key", None))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the resource function directly (a test): with a context from `build_init_resource_context`."""
        if not _takes_context(self.resource_fn):
            return self.resource_fn(*args, **kwargs)
        context = args[0] if args else kwargs.get("context", kwargs.get("init_context"))
        if context is None:
            context = build_init_resource_context()
        checked, errors = check_config(self.config_schema, context.resource_config)
        if errors:
            raise ConfigError("Error in config for resource", numbered(errors), context.resource_config)
        return self.resource_fn(context.replace_config(checked))


class IOManagerDefinition(ResourceDefinition):
    """A resource whose value is an `IOManager`."""

    def __init__(
        self,
        resource_fn: Callable[..., Any],
        config_schema: Any = None,
        description: str | None = None,
        required_resource_keys: typing.AbstractSet[str] | None = None,
        version: str | None = None,
        input_config_schema: Any = None,
        output_config_schema: Any = None,
    ) -> None:
        super().__init__(resource_fn, config_schema, description, required_resource_keys, version)
        self.input_config_schema = input_config_schema
        self.output_config_schema = output_config_schema

    @staticmethod
    def hardcoded_io_manager(value: IOManager, description: str | None = None) -> IOManagerDefinition:
        return IOManagerDefinition(lambda _init_context: value, description=description)


def _is_decorated_fn(arg: Any) -> bool:
    """Whether a decorator's first argument is the function itself (bare ``@resource``), not a config schema."""
    return inspect.isfunction(arg) or inspect.ismethod(arg)


@typing.overload
def resource(config_schema: Callable[..., Any]) -> ResourceDefinition: ...


@typing.overload
def resource(
    config_schema: Any = None,
    description: str | None = None,
    required_resource_keys: typing.AbstractSet[str] | None = None,
    version: str | None = None,
) -> Callable[[Callable[..., Any]], ResourceDefinition]: ...


def resource(
    config_schema: Any = None,
    description: str | None = None,
    required_resource_keys: typing.AbstractSet[str] | None = None,
    version: str | None = None,
) -> ResourceDefinition | Callable[[Callable[..., Any]], ResourceDefinition]:
    """Declare a resource: ``@resource`` or ``@resource(config_schema={"url": str})`` on a function of its
    `InitResourceContext` (``context.resource_config``, ``context.resources``) returning or yielding it."""
    if _is_decorated_fn(config_schema):
        return ResourceDefinition(config_schema, description=inspect.getdoc(config_schema))

    def wrap(fn: Callable[..., Any]) -> ResourceDefinition:
        doc = description or inspect.getdoc(fn)
        return ResourceDefinition(fn, config_schema, doc, required_resource_keys, version)

    return wrap


@typing.overload
def io_manager(config_schema: Callable[..., Any]) -> IOManagerDefinition: ...


@typing.overload
def io_manager(
    config_schema: Any = None,
    description: str | None = None,
    output_config_schema: Any = None,
    input_config_schema: Any = None,
    required_resource_keys: typing.AbstractSet[str] | None = None,
    version: str | None = None,
) -> Callable[[Callable[..., Any]], IOManagerDefinition]: ...


def io_manager(
    config_schema: Any = None,
    description: str | None = None,
    output_config_schema: Any = None,
    input_config_schema: Any = None,
    required_resource_keys: typing.AbstractSet[str] | None = None,
    version: str | None = None,
) -> IOManagerDefinition | Callable[[Callable[..., Any]], IOManagerDefinition]:
    """Declare an IO manager: a resource function returning an `IOManager`."""
    if _is_decorated_fn(config_schema):
        return IOManagerDefinition(config_schema, description=inspect.getdoc(config_schema))

    def wrap(fn: Callable[..., Any]) -> IOManagerDefinition:
        doc = description or inspect.getdoc(fn)
        return IOManagerDefinition(
            fn, config_schema, doc, required_resource_keys, version, input_config_schema, output_config_schema
        )

    return wrap


# ----- Pythonic resources -----------------------------------------------------------------------------------


class ValidationError(ValueError):
    """A `ConfigurableResource` built with fields missing or of the wrong type (Dagster: pydantic's error)."""


def _annotation_ok(annotation: Any, value: Any) -> bool:
    """Whether `value` fits a field's annotation (plain types, Optional/Union, generics by their origin)."""
    if annotation is Any or isinstance(annotation, str | typing.TypeVar):
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _annotation_ok(typing.get_args(annotation)[0], value)
    if origin in (typing.Union, types.UnionType):
        return any(_annotation_ok(a, value) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin is not None:
        return not isinstance(origin, type) or isinstance(value, origin)
    if annotation is type(None) or annotation is None:
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return not isinstance(annotation, type) or isinstance(value, annotation)


def _config_type(annotation: Any) -> Any:
    """A field annotation as a config schema (a scalar, else Any)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is not None and len(args) == 1 and type(None) in typing.get_args(annotation):
        return _config_type(args[0])
    return annotation if isinstance(annotation, type) and annotation in _SCALARS else None


def _fields_of(cls: type) -> dict[str, tuple[Any, Any]]:
    """A resource class's fields: name -> (annotation, default or _NO_DEFAULT), base classes' first."""
    fields: dict[str, tuple[Any, Any]] = {}
    for klass in reversed(cls.__mro__):
        if klass in (ConfigurableResource, object) or not issubclass(klass, ConfigurableResource):
            continue
        own = inspect.get_annotations(klass)
        try:
            hints = typing.get_type_hints(klass)
        except Exception:  # an annotation that does not resolve here: checked by name only
            hints = dict(own)
        for name in own:
            hint = hints.get(name, Any)
            if name.startswith("_") or typing.get_origin(hint) is ClassVar or hint is ClassVar:
                continue
            fields[name] = (hint, klass.__dict__.get(name, _NO_DEFAULT))
    return fields


def _validated(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    fields = _fields_of(cls)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, (annotation, default) in fields.items():
        if name not in data and default is _NO_DEFAULT:
            problems.append(f"{name}\n  Field required")
            continue
        value = data.get(name, default)
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


class ConfigurableResource:
    """Dagster's Pythonic resource: a class whose annotated fields are its config (``class Db(ConfigurableResource):
    url: str; timeout: int = 5``), built with keyword arguments and frozen. Given to a job as an instance
    (``resource_defs={"db": Db(url=...)}``; run config may still set its fields) or as
    ``Db.configure_at_launch()`` (fields from run config); ops get it by ``required_resource_keys`` or a
    parameter annotated with its class. `setup_for_execution` / `teardown_after_execution` run around the step
    (or override `yield_for_execution`). Not a pydantic model (Cairn's step image has no pydantic): wrong or
    missing fields raise `ValidationError`, a ValueError."""

    def __init__(self, **data: Any) -> None:
        for name, value in _validated(type(self), data).items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_resource_context", None)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):  # private state (pydantic's PrivateAttr in Dagster): the resource's own to set
            object.__setattr__(self, name, value)
            return
        raise DagsterInvalidInvocationError(
            f"'{type(self).__name__}' is a Pythonic resource and does not support item assignment, as it is frozen. "
            f"If trying to maintain state on this resource, consider building a separate, stateful client class, and "
            f"provide a method on the resource to construct and return the stateful client."
        )

    def _config_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _fields_of(type(self))}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._config_dict().items())})"

    def __str__(self) -> str:
        return " ".join(f"{k}={v!r}" for k, v in self._config_dict().items())

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, ConfigurableResource)
            and (other._config_dict() == self._config_dict())
        )

    def __hash__(self) -> int:
        return hash((type(self), tuple(repr(v) for v in self._config_dict().values())))

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Called before the step's op runs (the resource's config is ``context.resource_config``)."""

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Called after the step, whatever its outcome."""

    def create_resource(self, context: InitResourceContext) -> Any:
        """What ops receive: the resource itself."""
        return self

    @contextlib.contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[Any]:
        self.setup_for_execution(context)
        try:
            yield self.create_resource(context)
        finally:
            self.teardown_after_execution(context)

    def get_resource_context(self) -> InitResourceContext:
        context = object.__getattribute__(self, "_resource_context")
        if context is None:
            raise DagsterInvariantViolationError(
                "Attempted to get context before resource was initialized: the resource's context exists while "
                "a step uses it"
            )
        return typing.cast(InitResourceContext, context)

    @classmethod
    def configure_at_launch(cls, **kwargs: Any) -> PartialResource:
        """This resource with its fields (but those given here) read from the run config at launch."""
        return PartialResource(cls, dict(kwargs))

    @classmethod
    def from_resource_context(cls, context: InitResourceContext) -> Any:
        """The resource built from a context's config and set up (Dagster's direct use, e.g. in a test); one
        with a teardown needs `from_resource_context_cm`."""
        if cls.teardown_after_execution is not ConfigurableResource.teardown_after_execution:
            raise DagsterInvariantViolationError(
                f"{cls.__name__} has a teardown_after_execution method: use from_resource_context_cm(context) in a "
                f"with block, so that it is torn down"
            )
        with contextlib.ExitStack() as stack:
            return _enter_pythonic(stack, cls(**(context.resource_config or {})), context)

    @classmethod
    @contextlib.contextmanager
    def from_resource_context_cm(cls, context: InitResourceContext) -> Iterator[Any]:
        """The resource built from a context's config, set up for the block and torn down after it."""
        with contextlib.ExitStack() as stack:
            yield _enter_pythonic(stack, cls(**(context.resource_config or {})), context)

    def get_resource_definition(self) -> ResourceDefinition:
        return _pythonic_def(type(self), self._config_dict())


@dataclass(frozen=True)
class PartialResource:
    """``SomeResource.configure_at_launch(**some_fields)``: a resource whose other fields come from run config."""

    resource_cls: type[ConfigurableResource]
    data: Mapping[str, Any]

    def get_resource_definition(self) -> ResourceDefinition:
        return _pythonic_def(self.resource_cls, dict(self.data))


def _pythonic_def(cls: type[ConfigurableResource], given: Mapping[str, Any]) -> ResourceDefinition:
    """A Pythonic resource class (with the fields given so far) as a definition: its fields are its config
    schema, the given ones as defaults; run config overrides them."""
    schema = {}
    for name, (annotation, default) in _fields_of(cls).items():
        default = given.get(name, default)
        schema[name] = ConfigField(_config_type(annotation), default, None if default is _NO_DEFAULT else False)

    def resource_fn(context: InitResourceContext) -> Iterator[Any]:
        config = {**given, **{k: v for k, v in (context.resource_config or {}).items() if v is not _NO_DEFAULT}}
        with contextlib.ExitStack() as stack:
            yield _enter_pythonic(stack, cls(**config), context)

    io = issubclass(cls, IOManager) or issubclass(cls, ConfigurableIOManagerFactory)
    return (IOManagerDefinition if io else ResourceDefinition)(resource_fn, schema, inspect.getdoc(cls))


def _enter_pythonic(stack: contextlib.ExitStack, instance: ConfigurableResource, context: InitResourceContext) -> Any:
    """Set up a Pythonic resource for the block, the resources among its fields first (Dagster's nested
    resources: ``S3(credentials=Credentials(...))``); torn down in reverse order by `stack`."""
    for name, value in instance._config_dict().items():
        if isinstance(value, ConfigurableResource):
            ready = _enter_pythonic(stack, value, context.replace_config(value._config_dict()))
            if ready is not value:
                object.__setattr__(instance, name, ready)
    object.__setattr__(instance, "_resource_context", context)
    context.resource_config = instance._config_dict()
    return stack.enter_context(instance.yield_for_execution(context))


RESOURCE_PARAM = "resource_param"
_T = typing.TypeVar("_T")
#: ``def my_op(client: ResourceParam[Client])``: the parameter is the job resource of the same name.
ResourceParam = Annotated[_T, RESOURCE_PARAM]


def resource_params(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The parameters of an op's function that are resources, not inputs: annotated with a
    `ConfigurableResource` (or `ConfigurableIOManager`) class, or ``ResourceParam[...]``."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # one annotation does not resolve: each of the others on its own
        hints = {name: _one_hint(fn, p.annotation) for name, p in inspect.signature(fn).parameters.items()}
    names = []
    for name in inspect.signature(fn).parameters:
        hint = hints.get(name)
        marked = typing.get_origin(hint) is Annotated and RESOURCE_PARAM in typing.get_args(hint)[1:]
        if marked or (isinstance(hint, type) and issubclass(hint, ConfigurableResource)):
            names.append(name)
    return tuple(names)


def _one_hint(fn: Callable[..., Any], annotation: Any) -> Any:
    """A parameter's annotation resolved in its function's module (None when it cannot be)."""
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, getattr(fn, "__globals__", {}))
    except Exception:
        return None


# ----- IO managers ---------------------------------------------------------------------------------------


class OutputContext:
    """What `IOManager.handle_output` receives: which output of which step of which run."""

    def __init__(
        self,
        step_key: str | None = None,
        name: str | None = None,
        job_name: str | None = None,
        run_id: str | None = None,
        definition_metadata: Mapping[str, Any] | None = None,
        mapping_key: str | None = None,
        config: Any = None,
        dagster_type: Any = None,
        log_manager: logging.Logger | None = None,
        version: str | None = None,
        resource_config: Mapping[str, Any] | None = None,
        resources: Any = None,
        step_context: Any = None,
        op_def: Any = None,
        asset_key: Any = None,
        warn_on_step_context_use: bool = False,
        partition_key: str | None = None,
        output_metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.step_key, self.name, self.job_name = step_key, name, job_name
        self._run_id = run_id
        self.definition_metadata = dict(definition_metadata or {})
        self.mapping_key, self.config, self.dagster_type, self.version = mapping_key, config, dagster_type, version
        self.log = log_manager or _log(None)
        self.resource_config = resource_config
        self.resources = _as_namespace(resources)
        self.step_context, self.op_def, self.asset_key = step_context, op_def, asset_key
        self.partition_key = partition_key
        self.output_metadata: dict[str, Any] = dict(output_metadata or {})

    @property
    def run_id(self) -> str:
        return self._run_id or f"__{EPHEMERAL_RUN_ID}_RUN_ID"

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.definition_metadata

    @property
    def has_asset_key(self) -> bool:
        return self.asset_key is not None

    @property
    def has_partition_key(self) -> bool:
        return self.partition_key is not None

    def add_output_metadata(self, metadata: Mapping[str, Any]) -> None:
        self.output_metadata.update(metadata)

    def get_identifier(self) -> list[str]:
        """``[run_id, step_key, name]`` (and the mapping key of one key of a dynamic output)."""
        ident = [self.run_id, str(self.step_key), str(self.name)]
        return [*ident, self.mapping_key] if self.mapping_key is not None else ident

    def get_run_scoped_output_identifier(self) -> list[str]:
        return self.get_identifier()


class InputContext:
    """What `IOManager.load_input` receives: the input and the upstream output (`upstream_output`) it reads."""

    def __init__(
        self,
        *,
        name: str | None = None,
        job_name: str | None = None,
        op_def: Any = None,
        config: Any = None,
        definition_metadata: Mapping[str, Any] | None = None,
        upstream_output: OutputContext | None = None,
        dagster_type: Any = None,
        log_manager: logging.Logger | None = None,
        resource_config: Mapping[str, Any] | None = None,
        resources: Any = None,
        step_context: Any = None,
        asset_key: Any = None,
        partition_key: str | None = None,
        instance: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.name, self.job_name, self.op_def, self.config = name, job_name, op_def, config
        self.definition_metadata = dict(definition_metadata or metadata or {})
        self.upstream_output, self.dagster_type = upstream_output, dagster_type
        self.log = log_manager or _log(None)
        self.resource_config = resource_config
        self.resources = _as_namespace(resources)
        self.step_context, self.asset_key, self.partition_key, self.instance = (
            step_context,
            asset_key,
            partition_key,
            instance,
        )

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.definition_metadata

    @property
    def has_input_name(self) -> bool:
        return self.name is not None

    @property
    def has_asset_key(self) -> bool:
        return self.asset_key is not None

    @property
    def has_partition_key(self) -> bool:
        return self.partition_key is not None

    def get_identifier(self) -> list[str]:
        if self.upstream_output is None:
            raise DagsterInvariantViolationError(
                "InputContext.upstream_output not defined. Cannot compute an identifier"
            )
        return self.upstream_output.get_identifier()


def build_output_context(
    step_key: str | None = None,
    name: str | None = None,
    definition_metadata: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    mapping_key: str | None = None,
    config: Any = None,
    dagster_type: Any = None,
    version: str | None = None,
    resource_config: Mapping[str, Any] | None = None,
    resources: Mapping[str, Any] | None = None,
    op_def: Any = None,
    asset_key: Any = None,
    partition_key: str | None = None,
) -> OutputContext:
    """An `OutputContext` for testing an IO manager's `handle_output` directly."""
    return OutputContext(
        step_key=step_key,
        name=name,
        run_id=run_id,
        definition_metadata=definition_metadata,
        mapping_key=mapping_key,
        config=config,
        dagster_type=dagster_type,
        version=version,
        resource_config=resource_config,
        resources=dict(resources or {}),
        op_def=op_def,
        asset_key=asset_key,
        partition_key=partition_key,
    )


def build_input_context(
    name: str | None = None,
    config: Any = None,
    definition_metadata: Mapping[str, Any] | None = None,
    upstream_output: OutputContext | None = None,
    dagster_type: Any = None,
    resource_config: Mapping[str, Any] | None = None,
    resources: Mapping[str, Any] | None = None,
    op_def: Any = None,
    step_context: Any = None,
    asset_key: Any = None,
    partition_key: str | None = None,
    instance: Any = None,
) -> InputContext:
    """An `InputContext` for testing an IO manager's `load_input` directly."""
    return InputContext(
        name=name,
        config=config,
        definition_metadata=definition_metadata,
        upstream_output=upstream_output,
        dagster_type=dagster_type,
        resource_config=resource_config,
        resources=dict(resources or {}),
        op_def=op_def,
        step_context=step_context,
        asset_key=asset_key,
        partition_key=partition_key,
        instance=instance,
    )


class IOManager(abc.ABC):
    """Stores an op's output (`handle_output`) and loads it for a downstream input (`load_input`)."""

    @abc.abstractmethod
    def handle_output(self, context: OutputContext, obj: Any) -> None: ...

    @abc.abstractmethod
    def load_input(self, context: InputContext) -> Any: ...


class InMemoryIOManager(IOManager):
    """Outputs kept in this object, by ``(run_id, step_key, name[, mapping_key])``: lost with the run."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, ...], Any] = {}

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self.values[tuple(context.get_identifier())] = obj

    def load_input(self, context: InputContext) -> Any:
        return self.values[tuple(context.get_identifier())]


class PickledObjectFilesystemIOManager(IOManager):
    """Outputs pickled to files at ``<base_dir>/<run_id>/<step_key>/<name>[/<mapping_key>]`` (Dagster's layout)."""

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        self.base_dir = str(base_dir)

    def _path(self, context: OutputContext) -> Path:
        return Path(self.base_dir, *context.get_identifier())

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_input(self, context: InputContext) -> Any:
        if context.upstream_output is None:
            raise DagsterInvariantViolationError(f"input {context.name} has no upstream output to load")
        with self._path(context.upstream_output).open("rb") as f:
            return pickle.load(f)


def default_base_dir(instance: Any = None) -> Path:
    """Where `fs_io_manager` writes without ``base_dir``: the instance's ``fs_io_manager`` directory
    (``$CAIRN_HOME/fs_io_manager``, else ``./.cairn/fs_io_manager``)."""
    root = getattr(instance, "root", None)
    if root is None:
        from cairn.instance import settings_from_env

        root = settings_from_env(os.environ).home
    return Path(root) / "fs_io_manager"


def _fs_io_manager(init_context: InitResourceContext) -> PickledObjectFilesystemIOManager:
    base_dir = (init_context.resource_config or {}).get("base_dir")
    return PickledObjectFilesystemIOManager(base_dir or default_base_dir(init_context.instance))


#: Dagster's filesystem IO manager (config ``base_dir``).
fs_io_manager = IOManagerDefinition(
    _fs_io_manager,
    config_schema={"base_dir": ConfigField(str, is_required=False)},
    description="Built-in filesystem IO manager that stores and retrieves values using pickling.",
)

#: Dagster's in-memory IO manager: values live as long as the run's resources (one run in this process).
mem_io_manager = IOManagerDefinition(
    lambda _init_context: InMemoryIOManager(),
    description="Built-in IO manager that stores and retrieves values in memory.",
)


class ConfigurableIOManagerFactory(ConfigurableResource):
    """A Pythonic resource whose `create_io_manager` builds the IO manager the steps use."""

    def create_io_manager(self, context: InitResourceContext) -> IOManager:
        raise NotImplementedError(f"{type(self).__name__} must define create_io_manager(context)")

    def create_resource(self, context: InitResourceContext) -> Any:
        return self.create_io_manager(context)


class ConfigurableIOManager(ConfigurableResource, IOManager):
    """A Pythonic resource that is itself an IO manager (define `handle_output` and `load_input`)."""

    def __hash__(self) -> int:
        return ConfigurableResource.__hash__(self)


class FilesystemIOManager(ConfigurableIOManager):
    """Dagster's Pythonic filesystem IO manager (``FilesystemIOManager(base_dir=...)``)."""

    base_dir: str | None = None

    def _delegate(self) -> PickledObjectFilesystemIOManager:
        context = object.__getattribute__(self, "_resource_context")
        return PickledObjectFilesystemIOManager(self.base_dir or default_base_dir(getattr(context, "instance", None)))

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self._delegate().handle_output(context, obj)

    def load_input(self, context: InputContext) -> Any:
        return self._delegate().load_input(context)


class InMemoryIOManagerResource(ConfigurableIOManagerFactory):
    def create_io_manager(self, context: InitResourceContext) -> IOManager:
        return InMemoryIOManager()


# ----- a job's resources ----------------------------------------------------------------------------------


def as_resource_def(value: Any) -> ResourceDefinition:
    """A job's ``resource_defs`` value as a definition: a definition as it is, a Pythonic resource (instance or
    ``configure_at_launch()``) by its fields, an IO manager object as a hardcoded IO manager, anything else as
    a hardcoded resource (Dagster wraps plain objects the same way)."""
    if isinstance(value, ResourceDefinition):
        return value
    if isinstance(value, ConfigurableResource | PartialResource):
        return value.get_resource_definition()
    if isinstance(value, IOManager):
        return IOManagerDefinition.hardcoded_io_manager(value)
    return ResourceDefinition.hardcoded_resource(value)


def _defs(resource_defs: Mapping[str, Any]) -> dict[str, ResourceDefinition]:
    return {key: as_resource_def(value) for key, value in resource_defs.items()}


def check_resources_config(
    resource_defs: Mapping[str, Any], resources_config: Any, job_name: str | None = None
) -> dict[str, Any]:
    """The run config's ``resources`` section checked against the job's resources: each key's config, with
    defaults filled in. `DagsterInvalidConfigError` (`cairn.errors.ConfigError`) with Dagster's wording for an
    unknown key, a missing required config, a value of the wrong type."""
    defs = _defs(resource_defs)
    shape: dict[str, Any] = {}
    if DEFAULT_IO_MANAGER_KEY not in defs:  # Cairn's own store: no config of its own
        shape[DEFAULT_IO_MANAGER_KEY] = ConfigField({"config": ConfigField(None, is_required=False)}, is_required=False)
    for key, d in defs.items():
        inner = ConfigField(d.config_schema, is_required=schema_required(d.config_schema))
        shape[key] = ConfigField({"config": inner}, is_required=schema_required(d.config_schema))
    value, errors = check_config(shape, resources_config, "root:resources")
    if errors:
        preamble = f"Error in config for job {job_name}" if job_name else "Error in config for resources"
        raise ConfigError(preamble, numbered(errors), resources_config)
    return {key: (value.get(key) or {}).get("config") for key in defs}


def init_order(resource_defs: Mapping[str, Any], required_keys: typing.AbstractSet[str] | None = None) -> list[str]:
    """The keys to initialise for `required_keys` (all when None) and what they require in turn, each after the
    resources it requires. `DagsterInvariantViolationError` for a required resource that is not defined (Dagster's
    wording) or a cycle."""
    defs = _defs(resource_defs)
    wanted = list(defs) if required_keys is None else sorted(required_keys)
    order: list[str] = []
    visiting: list[str] = []

    def visit(key: str, by: str | None) -> None:
        if key in order:
            return
        if key not in defs:
            if by is None:
                defined = ", ".join(defs) or "none"
                raise DagsterInvariantViolationError(
                    f"Resource with key '{key}' required, but not provided; resources defined: {defined}"
                )
            raise DagsterInvariantViolationError(
                f"Resource with key '{key}' required by resource with key '{by}', but not provided."
            )
        if key in visiting:
            cycle = " -> ".join([*visiting[visiting.index(key) :], key])
            raise DagsterInvariantViolationError(f"Resource key '{key}' transitively depends on itself: {cycle}")
        visiting.append(key)
        for dep in sorted(defs[key].required_resource_keys):
            visit(dep, key)
        visiting.pop()
        order.append(key)

    for key in wanted:
        visit(key, None)
    return order


@contextlib.contextmanager
def build_resources(
    resources: Mapping[str, Any],
    instance: Any = None,
    resource_config: Mapping[str, Any] | None = None,
    dagster_run: Any = None,
    log_manager: logging.Logger | None = None,
    *,
    required_keys: typing.AbstractSet[str] | None = None,
    run_id: str | None = None,
) -> Iterator[Any]:
    """The resources `resources` define, initialised for the block (in dependency order) and torn down after it,
    as attributes (``with build_resources({"db": db}) as r: r.db``). `resource_config`: the run config's
    ``resources`` section. Cairn's keyword `required_keys` initialises only those (and what they require).
    A resource function that raises: `DagsterResourceFunctionError` ("Error executing resource_fn on
    ResourceDefinition KEY"), the error as its cause, the resources already initialised torn down."""
    defs = _defs(resources)
    order = init_order(defs, required_keys)
    if required_keys is not None:  # only what is initialised here is checked (the run config was checked whole)
        defs = {k: defs[k] for k in order}
        resource_config = {k: v for k, v in (resource_config or {}).items() if k in defs}
    config = check_resources_config(defs, resource_config or {})
    run_id = run_id if run_id is not None else getattr(dagster_run, "run_id", None)
    with contextlib.ExitStack() as stack:
        values: dict[str, Any] = {}
        for key in order:
            d = defs[key]
            context = InitResourceContext(
                config[key],
                {dep: values[dep] for dep in d.required_resource_keys},
                d,
                defs,
                instance,
                dagster_run,
                log_manager,
                run_id=run_id,
                key=key,
            )
            values[key] = _enter(stack, key, d, context)
        yield _namespace(values)


def _enter(stack: contextlib.ExitStack, key: str, d: ResourceDefinition, context: InitResourceContext) -> Any:
    try:
        return stack.enter_context(d.open(context))
    except DagsterError:  # Cairn's or Dagster's own refusal (config, a generator yielding nothing): as it is
        raise
    except Exception as exc:
        raise DagsterResourceFunctionError(f"Error executing resource_fn on ResourceDefinition {key}") from exc


def _provided_message(kind: str, key: str, by: str, keys: Sequence[str]) -> str:
    return (
        f"{kind} with key '{key}' required by {by} was not provided. Please provide a "
        f"{'IOManagerDefinition' if kind == 'io manager' else 'ResourceDefinition'} to key '{key}', or change the "
        f"required key to one of the following keys which points to an "
        f"{'IOManagerDefinition' if kind == 'io manager' else 'ResourceDefinition'}: {list(keys)}"
    )


def _job_parts(job: Any) -> tuple[str, dict[str, Any], list[tuple[str, Any]], frozenset[Any]]:
    """(name, resource_defs, [(node name, node)], job hooks) of a job, read so that a job without them works."""
    return (
        str(getattr(job, "name", "job")),
        dict(getattr(job, "resource_defs", None) or {}),
        list(getattr(job, "nodes", {}).items()),
        frozenset(getattr(job, "hook_defs", None) or ()),
    )


def output_io_manager_key(out: Any) -> str:
    return getattr(out, "io_manager_key", None) or DEFAULT_IO_MANAGER_KEY


def op_resource_keys(opdef: Any) -> frozenset[str]:
    """The resources an op's body needs: its ``required_resource_keys`` and its resource parameters."""
    keys = frozenset(getattr(opdef, "required_resource_keys", None) or ())
    return keys | frozenset(op_resource_params(opdef))


def op_resource_params(opdef: Any) -> tuple[str, ...]:
    """An op's resource parameters: as the op recorded them (``OpDefinition.resource_params``), else read from
    its function."""
    recorded = getattr(opdef, "resource_params", None)
    if recorded is not None:
        return tuple(recorded)
    fn = getattr(opdef, "fn", None)
    return resource_params(fn) if fn is not None else ()


def check_required_resources(job: Any) -> None:
    """Every resource a job's ops, hooks, outputs and resources require is defined: else Dagster's
    `DagsterInvalidDefinitionError` ("resource with key 'db' required by op 'load' was not provided. ...") or,
    for a resource required by a resource, `DagsterInvariantViolationError`. Cairn's own store answers for the
    default ``io_manager``."""
    name, rdefs, nodes, job_hooks = _job_parts(job)
    keys = [DEFAULT_IO_MANAGER_KEY, *(k for k in rdefs if k != DEFAULT_IO_MANAGER_KEY)]
    io_keys = [
        k for k in keys if k == DEFAULT_IO_MANAGER_KEY or isinstance(as_resource_def(rdefs[k]), IOManagerDefinition)
    ]
    for node_name, node in nodes:
        opdef = node.op
        for key in sorted(op_resource_keys(opdef) - set(keys)):
            raise DefinitionError(_provided_message("resource", key, f"op '{opdef.name}'", keys))
        for out_name, out in opdef.outs.items():
            key = output_io_manager_key(out)
            if key not in keys:
                raise DefinitionError(
                    _provided_message("io manager", key, f"output '{out_name}' of op '{opdef.name}''", io_keys)
                )
        for hook in sorted(frozenset(getattr(node, "hook_defs", None) or ()), key=lambda h: h.name):
            for key in sorted(frozenset(hook.required_resource_keys) - set(keys)):
                raise DefinitionError(
                    _provided_message("resource", key, f"hook '{hook.name}' attached to op '{node_name}'", keys)
                )
    for hook in sorted(job_hooks, key=lambda h: h.name):
        for key in sorted(frozenset(hook.required_resource_keys) - set(keys)):
            raise DefinitionError(
                _provided_message("resource", key, f"hook '{hook.name}' attached to job '{name}'", keys)
            )
    init_order(rdefs)


def check_reexecution_io(job: Any) -> None:
    """A job whose outputs go to an in-memory IO manager cannot be re-executed (its parent's outputs are gone):
    Dagster's `DagsterInvariantViolationError`, raised before anything runs."""
    _, rdefs, nodes, _ = _job_parts(job)
    for _node_name, node in nodes:
        for out in node.op.outs.values():
            if _in_memory(rdefs.get(output_io_manager_key(out))):
                raise DagsterInvariantViolationError(
                    "Cannot perform reexecution with in-memory io managers.\nTo enable reexecution, you can set a "
                    "persistent io manager, such as the fs_io_manager, in the resource_defs argument on your job: "
                    'resource_defs={"io_manager": fs_io_manager}'
                )


def _in_memory(value: Any) -> bool:
    return value is mem_io_manager or isinstance(value, InMemoryIOManager | InMemoryIOManagerResource)


def check_persistent_io(job: Any, node_name: str | None = None) -> None:
    """Steps in separate processes (pods) cannot hand outputs to each other through an in-memory IO manager:
    Dagster's refusal for its multiprocess executors (`DagsterInvariantViolationError` here), for the outputs of
    `node_name` (all nodes when None)."""
    _, rdefs, nodes, _ = _job_parts(job)
    for name, node in nodes:
        if node_name is not None and name != node_name:
            continue
        if any(_in_memory(rdefs.get(output_io_manager_key(out))) for out in node.op.outs.values()):
            raise DagsterInvariantViolationError(
                "You have attempted to use an executor that uses multiple processes, but your job includes op "
                "outputs that will not be stored somewhere where other processes can retrieve them. Please use a "
                "persistent IO manager for these outputs. E.g. with\n"
                '   the_graph.to_job(resource_defs={"io_manager": fs_io_manager})'
            )


@dataclass(frozen=True)
class ManagedOutput:
    """What Cairn's store keeps of an output a user IO manager handled: which IO manager, and the identity the
    IO manager was given (so that a later run, a re-execution, loads it with the producing run's id)."""

    io_manager_key: str
    run_id: str
    step_key: str
    name: str
    mapping_key: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"cairn_io_manager": self.io_manager_key, **{k: getattr(self, k) for k in _MANAGED_FIELDS}}

    @staticmethod
    def from_stored(value: Any) -> ManagedOutput | None:
        """The record a stored value is, if it is one (read back as JSON)."""
        if isinstance(value, Mapping) and "cairn_io_manager" in value:
            mapping_key = value.get("mapping_key")
            return ManagedOutput(
                str(value["cairn_io_manager"]),
                str(value["run_id"]),
                str(value["step_key"]),
                str(value["name"]),
                None if mapping_key is None else str(mapping_key),
            )
        return None


_MANAGED_FIELDS = ("run_id", "step_key", "name", "mapping_key")


def managed_io_manager_key(job: Any, node_name: str, output: str) -> str | None:
    """The job resource that handles output `output` of node `node_name` (its Out's ``io_manager_key``), or None
    when Cairn's own store does: the default ``io_manager`` that the job does not define."""
    node = getattr(job, "nodes", {}).get(node_name)
    out = node.op.outs.get(output) if node is not None else None
    if out is None:
        return None
    key = output_io_manager_key(out)
    if key == DEFAULT_IO_MANAGER_KEY and DEFAULT_IO_MANAGER_KEY not in (getattr(job, "resource_defs", None) or {}):
        return None
    return key


def job_resource_keys(job: Any) -> frozenset[str]:
    """Every resource a run of `job` may use: its ops', hooks' and IO managers' (what a run-wide
    `build_resources` initialises)."""
    _, _, nodes, job_hooks = _job_parts(job)
    keys: set[str] = set()
    for hook in job_hooks:
        keys |= hook.required_resource_keys
    for node_name, node in nodes:
        keys |= op_resource_keys(node.op)
        for hook in getattr(node, "hook_defs", None) or ():
            keys |= hook.required_resource_keys
        keys |= {k for o in node.op.outs if (k := managed_io_manager_key(job, node_name, o)) is not None}
    return frozenset(keys)


def run_resources(
    job: Any, run_config: Mapping[str, Any] | None = None, instance: Any = None, run_id: str | None = None
) -> contextlib.AbstractContextManager[Any]:
    """The resources of a whole run of `job` (what its steps may use), for an executor that keeps them for the
    run, as Dagster's in-process executor does (`mem_io_manager` then keeps outputs from step to step). A
    resource the job does not define: `check_required_resources`'s error, before anything is initialised."""
    rdefs = getattr(job, "resource_defs", None) or {}
    keys = job_resource_keys(job)
    if keys - set(rdefs):
        check_required_resources(job)
    return build_resources(
        rdefs, instance, (run_config or {}).get("resources") or {}, required_keys=keys, run_id=run_id
    )


def load_managed(record: ManagedOutput, job: Any, resources: Any, input_name: str | None = None, **context: Any) -> Any:
    """The value of an output a job IO manager handled, loaded by it (``resources`` holds it initialised) as
    the input `input_name` of a downstream step would, with the producing run's id in `upstream_output`."""
    node = getattr(job, "nodes", {}).get(record.step_key.split("[", 1)[0])
    upstream = OutputContext(
        step_key=record.step_key,
        name=record.name,
        job_name=getattr(job, "name", None),
        run_id=record.run_id,
        mapping_key=record.mapping_key,
        op_def=node.op if node is not None else None,
        log_manager=context.get("log_manager"),
    )
    input_context = InputContext(
        name=input_name,
        job_name=getattr(job, "name", None),
        upstream_output=upstream,
        resources=resources,
        **context,
    )
    return getattr(resources, record.io_manager_key).load_input(input_context)


def resolve_stored(
    job: Any,
    value: Any,
    run_config: Mapping[str, Any] | None = None,
    instance: Any = None,
    resources: Any = None,
    *,
    run_id: str | None = None,
    input_name: str | None = None,
) -> Any:
    """A value read from Cairn's store as its user sees it: a `ManagedOutput` record loaded through its IO
    manager (`resources` when the run's are still open, else that IO manager initialised for the call, with
    the run config's ``resources`` section, for run `run_id`) as the input `input_name`; any other value as
    it is. For a result's ``output_for_node``."""
    record = ManagedOutput.from_stored(value)
    if record is None:
        return value
    if resources is not None and record.io_manager_key in resources:
        return load_managed(record, job, resources, input_name, instance=instance)
    config = (run_config or {}).get("resources") or {}
    rdefs = getattr(job, "resource_defs", None) or {}
    with build_resources(rdefs, instance, config, required_keys={record.io_manager_key}, run_id=run_id) as built:
        return load_managed(record, job, built, input_name, instance=instance)


class DirectOpExecutionContext(OpExecutionContext):
    """The op context `build_op_context` builds for calling an op directly in a test (run id ``EPHEMERAL``);
    as a context manager (``with build_op_context(...) as context:``) its resources are torn down at the end."""

    def __init__(
        self,
        resources: Any,
        op_config: Any,
        mapping_key: str | None,
        run_tags: Mapping[str, str] | None,
        instance: Any,
        stack: contextlib.ExitStack,
    ) -> None:
        super().__init__(EPHEMERAL_RUN_ID, "", op_config, _log("op"), resources=resources, run_tags=run_tags)
        self.instance = instance
        self._mapping_key = mapping_key
        self._stack = stack

    @property
    def mapping_key(self) -> str | None:
        return self._mapping_key

    def __enter__(self) -> DirectOpExecutionContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def build_op_context(
    resources: Mapping[str, Any] | None = None,
    op_config: Any = None,
    resources_config: Mapping[str, Any] | None = None,
    instance: Any = None,
    config: Any = None,
    partition_key: str | None = None,
    partition_key_range: Any = None,
    mapping_key: str | None = None,
    run_tags: Mapping[str, str] | None = None,
    event_loop: Any = None,
) -> DirectOpExecutionContext:
    """An op context for calling an op directly in a test: ``my_op(build_op_context(resources={"db": db},
    op_config={...}))``. `resources` may hold resource definitions (initialised now, with `resources_config`)
    or plain values; used as a context manager, the resources are torn down at its end."""
    if op_config is not None and config is not None:
        raise DagsterInvalidInvocationError(
            "Attempted to invoke ``build_op_context`` with both ``op_config``, and its legacy version, ``config``. "
            "Please provide one or the other."
        )
    stack = contextlib.ExitStack()
    built = stack.enter_context(build_resources(resources or {}, instance, resources_config or {}))
    return DirectOpExecutionContext(
        built, op_config if op_config is not None else config, mapping_key, run_tags, instance, stack
    )
