"""Authoring ops and jobs, with Dagster's names so that porting a job is changing imports.

``@op`` turns a function into an `OpDefinition`; ``@job`` runs its body once, at definition time, with
ops *recording* their calls instead of running, which yields the job's graph: nodes (one per op call,
aliased ``op_2``, ``op_3`` when an op is used again) and, for each node input, the upstream node and
output it reads. Each node is one step of a run.

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
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from cairn import dynamic
from cairn.errors import ConfigError, DefinitionError
from cairn.io import FORMATS
from cairn.retries import RetryPolicy


@dataclass(frozen=True)
class Out:
    """An op output. `is_required=False` lets the op omit it (its consumers are then SKIPPED).

    `format` is how the value is stored: "pickle" (default), "json" or "bytes"."""

    is_required: bool = True
    format: str = "pickle"
    description: str | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise DefinitionError(f"Out(format={self.format!r}) is not one of {', '.join(FORMATS)}")


class DynamicOut(Out):
    """A dynamic output: the op yields ``DynamicOutput(value, mapping_key=...)`` any number of times (zero
    included), each key's value stored on its own in `format`; ops mapped over it run once per key."""

    def __init__(self, format: str = "pickle", description: str | None = None) -> None:
        super().__init__(is_required=True, format=format, description=description)


@dataclass(frozen=True)
class DynamicOutput:
    """One key's value of a dynamic output: ``yield DynamicOutput(value, mapping_key="shard_1")``.

    Mapping keys are 1 to 100 letters, digits or underscores, unique per output (`cairn.dynamic.check_key`)."""

    value: Any
    mapping_key: str
    output_name: str = "result"


@dataclass(frozen=True)
class In:
    """An op input (declares metadata; inputs themselves come from the function's parameters)."""

    description: str | None = None


@dataclass(frozen=True)
class Output:
    """A value an op yields for one of its outputs: ``yield Output(value, "a")``."""

    value: Any
    output_name: str = "result"


@dataclass(frozen=True)
class Field:
    """A config field with a type, a default and whether it is required."""

    type: type = object
    default_value: Any = None
    is_required: bool | None = None
    description: str | None = None

    @property
    def required(self) -> bool:
        return self.is_required if self.is_required is not None else self.default_value is None


@dataclass(frozen=True)
class ExecutorDefinition:
    name: str


in_process_executor = ExecutorDefinition("in_process")


class OpContext:
    """What an op sees as its `context` parameter."""

    def __init__(self, run_id: str, step: str, op_config: Any, log: logging.Logger) -> None:
        self.run_id = run_id
        self.step = step
        self.op_config = op_config
        self.log = log

    @property
    def op_name(self) -> str:
        """The node's name (``process`` for the step ``process[shard_1]``)."""
        return dynamic.node_of(self.step)

    @property
    def mapping_key(self) -> str | None:
        """The mapping key of a mapped step (``shard_1`` for ``process[shard_1]``), else None."""
        return dynamic.split_step(self.step)[1]

    def get_mapping_key(self) -> str | None:
        """Dagster's name for `mapping_key`."""
        return self.mapping_key


def _check_config(op: str, schema: Any, value: Any) -> Any:
    """Validate `value` against an op's config_schema and fill defaults; ConfigError on mismatch."""
    where = f"run_config ops.{op}.config"
    if schema is None:
        return value
    if isinstance(schema, Field):
        schema = schema.type
    if isinstance(schema, dict):
        value = {} if value is None else value
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping with keys {sorted(schema)}, got {value!r}")
        unknown = sorted(set(value) - set(schema))
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(schema))}")
        out: dict[str, Any] = {}
        for key, spec in schema.items():
            fld = spec if isinstance(spec, Field) else Field(type=spec)
            if key in value:
                out[key] = _check_type(f"{where}.{key}", fld.type, value[key])
            elif fld.required:
                raise ConfigError(f"{where} is missing required key {key!r} ({_type_name(fld.type)})")
            else:
                out[key] = fld.default_value
        return out
    if value is None:
        raise ConfigError(f"{where} is required ({_type_name(schema)})")
    return _check_type(where, schema, value)


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", str(t))


def _check_type(where: str, t: Any, value: Any) -> Any:
    if t is object or t is Any:
        return value
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(t, type) and (not isinstance(value, t) or (t is int and isinstance(value, bool))):
        raise ConfigError(f"{where} must be {_type_name(t)}, got {type(value).__name__} {value!r}")
    return value


class OpDefinition:
    """An op: a function with named inputs (its parameters) and named outputs."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        out: Mapping[str, Out] | Out | None = None,
        config_schema: Any = None,
        ins: Mapping[str, In] | None = None,
        description: str | None = None,
        code_version: str | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.explicit_code_version = code_version
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise DefinitionError(f"op {self.name}: retry_policy must be a RetryPolicy, got {retry_policy!r}")
        self.retry_policy = retry_policy  # how a failed step of this op is retried (`cairn.retries`)
        if isinstance(out, Out):
            out = {"result": out}
        self.outs: dict[str, Out] = dict(out) if out else {"result": Out()}
        self.config_schema = config_schema
        self.description = description or inspect.getdoc(fn)
        params = list(inspect.signature(fn).parameters.values())
        self.takes_context = bool(params) and params[0].name in ("context", "ctx", "_context")
        if self.takes_context:
            params = params[1:]
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise DefinitionError(f"op {self.name}: *args/**kwargs inputs are not supported ({p})")
        self.dynamic_outs: tuple[str, ...] = tuple(n for n, o in self.outs.items() if isinstance(o, DynamicOut))
        self.inputs: list[str] = [p.name for p in params]
        self.input_defaults: dict[str, Any] = {p.name: p.default for p in params if p.default is not p.empty}
        self.ins = dict(ins or {})
        unknown = sorted(set(self.ins) - set(self.inputs))
        if unknown:
            raise DefinitionError(f"op {self.name}: ins names {unknown} that are not parameters of {fn.__name__}")

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
            text = inspect.getsource(self.fn).encode()
        except (OSError, TypeError):
            code = getattr(self.fn, "__code__", None)
            text = code.co_code + repr(code.co_consts).encode() if code is not None else self.name.encode()
        return "src:" + hashlib.sha256(text).hexdigest()[:12]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = _Builder.current
        if builder is None:  # direct invocation, e.g. in a unit test of the op
            return self.fn(*args, **kwargs)
        return builder.add(self, args, kwargs)


@overload
def op(fn: Callable[..., Any]) -> OpDefinition: ...


@overload
def op(
    fn: None = None,
    *,
    name: str | None = None,
    out: Mapping[str, Out] | Out | None = None,
    config_schema: Any = None,
    ins: Mapping[str, In] | None = None,
    description: str | None = None,
    code_version: str | None = None,
    retry_policy: RetryPolicy | None = None,
) -> Callable[[Callable[..., Any]], OpDefinition]: ...


def op(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    out: Mapping[str, Out] | Out | None = None,
    config_schema: Any = None,
    ins: Mapping[str, In] | None = None,
    description: str | None = None,
    code_version: str | None = None,
    retry_policy: RetryPolicy | None = None,
) -> OpDefinition | Callable[[Callable[..., Any]], OpDefinition]:
    """Declare an op, bare (``@op``) or with options (``@op(name=..., out={...}, config_schema=...,
    code_version="v2", retry_policy=RetryPolicy(max_retries=3, delay=1))``)."""

    def wrap(f: Callable[..., Any]) -> OpDefinition:
        return OpDefinition(
            f,
            name=name,
            out=out,
            config_schema=config_schema,
            ins=ins,
            description=description,
            code_version=code_version,
            retry_policy=retry_policy,
        )

    return wrap(fn) if fn is not None else wrap


Dim = tuple[str, str]  # a fan-out dimension: (dynamic node, dynamic output)


@dataclass(frozen=True)
class OutputHandle:
    """The result of calling an op inside a job body: one output of one node.

    `dim` is set on a value that varies per mapping key: the per-key value `fn` receives in ``.map(fn)``,
    and the outputs of mapped ops."""

    node: str
    output: str
    dim: Dim | None = None


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
        raise DefinitionError(
            f"{self.node}.{self.output}.collect(): collect a mapped op's output, e.g. "
            f"{self.node}().map(process).collect() (a list of process's values, one per key)"
        )


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
    """One use of an op in a job: a step (a mapped node: one step per mapping key)."""

    name: str
    op: OpDefinition
    inputs: dict[str, OutputHandle] = field(default_factory=dict)
    #: the dimension (dynamic node, output) this node is mapped over, if any
    mapped: Dim | None = None
    #: inputs that collect a mapped node's output: input -> that output
    collects: dict[str, OutputHandle] = field(default_factory=dict)


class _Builder:
    current: _Builder | None = None

    def __init__(self, job_name: str) -> None:
        self.job_name = job_name
        self.nodes: dict[str, Node] = {}
        self.uses: dict[str, int] = {}
        self.maps: list[Dim] = []  # the fan-outs whose `fn` is running now, innermost last

    def add(self, opdef: OpDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        n = self.uses.get(opdef.name, 0) + 1
        self.uses[opdef.name] = n
        name = opdef.name if n == 1 else f"{opdef.name}_{n}"
        if len(args) > len(opdef.inputs):
            raise DefinitionError(
                f"job {self.job_name}: op {opdef.name} takes {len(opdef.inputs)} input(s) "
                f"({', '.join(opdef.inputs) or 'none'}) but was given {len(args)}"
            )
        given: dict[str, Any] = dict(zip(opdef.inputs, args, strict=False))
        for k, v in kwargs.items():
            if k not in opdef.inputs:
                raise DefinitionError(f"job {self.job_name}: op {opdef.name} has no input {k!r}")
            if k in given:
                raise DefinitionError(f"job {self.job_name}: op {opdef.name} got input {k!r} twice")
            given[k] = v
        node = Node(name, opdef)
        for inp in opdef.inputs:
            if inp not in given:
                if inp in opdef.input_defaults:
                    continue
                raise DefinitionError(
                    f"job {self.job_name}: input {inp!r} of op {opdef.name} is not connected; pass the output "
                    f"of an upstream op, e.g. {opdef.name}({inp}=upstream())"
                )
            value = given[inp]
            if isinstance(value, tuple) and value and all(isinstance(v, OutputHandle) for v in value):
                raise DefinitionError(
                    f"job {self.job_name}: input {inp!r} of {opdef.name} was given all outputs of "
                    f"{value[0].node}; unpack them first: a, b = {value[0].node}()"
                )
            if not isinstance(value, OutputHandle):
                raise DefinitionError(
                    f"job {self.job_name}: input {inp!r} of op {opdef.name} must be an op's output, got "
                    f"{type(value).__name__}; constants go in config (config_schema) instead"
                )
            if isinstance(value, CollectHandle):
                if value.dim in self.maps:
                    raise DefinitionError(
                        f"job {self.job_name}: input {inp!r} of op {opdef.name} collects {value.node} inside the "
                        f"map over {value.dim[0]}.{value.dim[1]} that {value.node} belongs to; collect outside it"
                    )
                node.collects[inp] = OutputHandle(value.node, value.output)
            else:
                node.inputs[inp] = value
        node.mapped = self._dimension(name, opdef, node)
        self.nodes[name] = node
        handles = tuple(self._handle(node, o) for o in opdef.outs)
        return handles[0] if len(handles) == 1 else handles

    def _dimension(self, name: str, opdef: OpDefinition, node: Node) -> Dim | None:
        """The dimension a node is mapped over: that of its per-key inputs, which must be the map being
        built now; refusals for a second dimension, a mapped read without collect, nested fan-out."""
        dims = {h.dim: inp for inp, h in node.inputs.items() if h.dim is not None}
        if len(dims) > 1:
            listed = " and ".join(f"{d[0]}.{d[1]} (input {inp!r})" for d, inp in dims.items())
            raise DefinitionError(
                f"job {self.job_name}: op {opdef.name} reads two fan-out dimensions, {listed}; an op is mapped "
                f"over one dimension: collect one of them first"
            )
        if not dims:
            return None
        ((dim, inp),) = dims.items()
        if not self.maps or self.maps[-1] != dim:
            h = node.inputs[inp]
            raise DefinitionError(
                f"job {self.job_name}: input {inp!r} of op {name} reads mapped op {h.node} (one step per key of "
                f"{dim[0]}.{dim[1]}) without collecting it; use .collect() (a list of all keys' values), or call "
                f"{opdef.name} inside .map(...)"
            )
        if opdef.dynamic_outs:
            raise DefinitionError(
                f"job {self.job_name}: op {name} is mapped over {dim[0]}.{dim[1]} and also has a dynamic output; "
                f"fan-out is one level deep: collect first, then fan out again"
            )
        return dim

    @staticmethod
    def _handle(node: Node, output: str) -> OutputHandle:
        if node.mapped is not None:
            return MappedHandle(node.name, output, node.mapped)
        if output in node.op.dynamic_outs:
            return DynamicOutputHandle(node.name, output)
        return OutputHandle(node.name, output)


class JobDefinition:
    """A job: its nodes in a topological order and, per node, where each input comes from."""

    def __init__(
        self,
        name: str,
        nodes: Mapping[str, Node],
        executor_def: ExecutorDefinition | None = None,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        op_retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.name = name
        self.nodes = dict(nodes)
        if op_retry_policy is not None and not isinstance(op_retry_policy, RetryPolicy):
            raise DefinitionError(f"job {name}: op_retry_policy must be a RetryPolicy, got {op_retry_policy!r}")
        self.op_retry_policy = op_retry_policy  # for its ops without a retry_policy of their own
        self.executor_def = executor_def or in_process_executor
        self.tags = dict(tags or {})
        self.description = description
        self.module_ref: str | None = None  # module:attr when known (set by reconstructable or the loader)
        if not self.nodes:
            raise DefinitionError(f"job {name} has no ops; call at least one op in its body")
        dynamic.check_graph(
            self.step_keys, self.deps(), self.dynamic_outputs(), self.mapped(), self.collects(), f"job {name}"
        )

    def __repr__(self) -> str:
        return f"<job {self.name}: {', '.join(self.nodes)}>"

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
        """How a failed step is retried: its op's retry_policy, else the job's op_retry_policy (Dagster's rule)."""
        return self.nodes[dynamic.node_of(step)].op.retry_policy or self.op_retry_policy

    @property
    def step_keys(self) -> list[str]:
        return list(self.nodes)  # calls are recorded in dependency order

    def deps(self) -> dict[str, dict[str, tuple[str, str]]]:
        """step -> {input: (upstream step, output)}: the static wiring, without collect inputs."""
        return {n: {i: (h.node, h.output) for i, h in node.inputs.items()} for n, node in self.nodes.items()}

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

    def op_config(self, run_config: Mapping[str, Any] | None, step: str) -> Any:
        """A step's validated config: ``ops.<node>.config`` (every instance of a mapped op shares it)."""
        step = dynamic.node_of(step)
        ops = (run_config or {}).get("ops") or {}
        entry = ops.get(step) or {}
        if not isinstance(entry, Mapping):
            raise ConfigError(f"run_config ops.{step} must be a mapping like {{'config': {{...}}}}")
        return _check_config(step, self.nodes[step].op.config_schema, entry.get("config"))

    def validate_run_config(self, run_config: Mapping[str, Any] | None) -> None:
        """Check run_config as a whole before anything runs."""
        run_config = run_config or {}
        unknown_top = sorted(set(run_config) - {"ops"})
        if unknown_top:
            raise ConfigError(f"run_config has unknown key(s) {unknown_top}; only 'ops' is supported")
        ops = run_config.get("ops") or {}
        unknown = sorted(set(ops) - set(self.nodes))
        if unknown:
            raise ConfigError(
                f"run_config names op(s) not in job {self.name}: {', '.join(unknown)}; "
                f"its ops are {', '.join(self.nodes)}"
            )
        for step in self.nodes:
            self.op_config(run_config, step)


@overload
def job(fn: Callable[[], Any]) -> JobDefinition: ...


@overload
def job(
    fn: None = None,
    *,
    name: str | None = None,
    executor_def: ExecutorDefinition | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    op_retry_policy: RetryPolicy | None = None,
) -> Callable[[Callable[[], Any]], JobDefinition]: ...


def job(
    fn: Callable[[], Any] | None = None,
    *,
    name: str | None = None,
    executor_def: ExecutorDefinition | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    op_retry_policy: RetryPolicy | None = None,
) -> JobDefinition | Callable[[Callable[[], Any]], JobDefinition]:
    """Declare a job by composing ops: its body calls ops, passing outputs to inputs. `op_retry_policy`:
    how its ops without a retry_policy of their own are retried."""

    def wrap(f: Callable[[], Any]) -> JobDefinition:
        job_name = name or f.__name__
        builder = _Builder(job_name)
        previous, _Builder.current = _Builder.current, builder
        try:
            f()
        finally:
            _Builder.current = previous
        jd = JobDefinition(
            job_name, builder.nodes, executor_def, tags, description or inspect.getdoc(f), op_retry_policy
        )
        jd.module_ref = _where_defined(f)
        return jd

    return wrap(fn) if fn is not None else wrap


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


def reconstructable(target: JobDefinition) -> JobDefinition:
    """Accepted for Dagster compatibility: records where the job is defined and returns it."""
    if not isinstance(target, JobDefinition):
        raise DefinitionError(f"reconstructable() takes a job, got {type(target).__name__}")
    return target
