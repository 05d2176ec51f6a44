"""Graphs, as Dagster writes them: ``@graph`` composes ops (and other graphs) like a job body, with inputs
and outputs of its own, and is used inside a job (or another graph) or made a job with ``to_job``.

A graph used in a job is not a step: its ops are, named as Dagster names their steps, ``outer.op`` (and
``outer.inner.op`` for a graph inside a graph); a graph's output is the inner op output it returns, so a
job reading ``outer()`` reads that op. The job keeps, per graph node, its outputs' origins
(`JobDefinition.graphs`, `JobDefinition.graph_output`) and its default config. ``graph.to_job()`` puts the
graph's ops at the top of the job (step ``op``, as Dagster's)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, overload

from cairn.definitions import (
    ExecutorDefinition,
    GraphNode,
    JobDefinition,
    NodeModifiers,
    OutputHandle,
    PendingNodeInvocation,
    _Builder,
    _tags,
    check_name,
    job,
)
from cairn.errors import DagsterInvariantViolationError, DefinitionError
from cairn.retries import RetryPolicy


@dataclass(frozen=True)
class GraphIn:
    """A graph input's declaration (the input itself is the graph function's parameter)."""

    description: str | None = None


@dataclass(frozen=True)
class GraphOut:
    """A graph output's declaration: ``@graph(out={"a": GraphOut(), "b": GraphOut()})``."""

    description: str | None = None


def _declared_outs(out: GraphOut | Mapping[str, GraphOut] | None) -> dict[str, GraphOut] | None:
    if out is None:
        return None
    if isinstance(out, GraphOut):
        return {"result": out}
    if not isinstance(out, Mapping) or not all(isinstance(o, GraphOut) for o in out.values()):
        raise DefinitionError(f"@graph out must be a GraphOut or a dict of GraphOut, got {out!r}")
    return {check_name(n, "output name"): o for n, o in out.items()}


class GraphDefinition(NodeModifiers):
    """A graph: a function whose body calls ops and graphs; its parameters are its inputs."""

    def __init__(
        self,
        compose_fn: Callable[..., Any],
        name: str | None = None,
        description: str | None = None,
        ins: Mapping[str, GraphIn] | None = None,
        out: GraphOut | Mapping[str, GraphOut] | None = None,
        tags: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.fn = compose_fn
        self.name = check_name(name or getattr(compose_fn, "__name__", None), "graph name")
        self.description = description or inspect.getdoc(compose_fn)
        params = list(inspect.signature(compose_fn).parameters.values())
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            raise DefinitionError(f"@graph '{self.name}': *args/**kwargs inputs are not supported; name each input")
        self.inputs: list[str] = [p.name for p in params]
        self.ins = dict(ins or {})
        unknown = sorted(set(self.ins) - set(self.inputs))
        if unknown:
            raise DefinitionError(
                f"@graph '{self.name}' decorated function does not have argument(s) '{', '.join(unknown)}'."
            )
        self.outs = _declared_outs(out)
        self.tags = _tags(tags)
        if config is not None and not isinstance(config, Mapping):
            raise DefinitionError(
                f"@graph '{self.name}': config must be the graph's default run config ({{'ops': {{...}}}}); "
                f"Cairn does not read a ConfigMapping"
            )
        self.config = dict(config) if config is not None else None

    def __repr__(self) -> str:
        return f"<graph {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = _Builder.current
        if builder is None:
            raise DagsterInvariantViolationError(
                f"Attempted to call graph '{self.name}' outside of a composition function. Invoking graphs is "
                f"only valid in a function decorated with @job or @graph."
            )
        return builder.invoke(PendingNodeInvocation(self), args, kwargs)

    def compose(
        self, builder: _Builder, inv: PendingNodeInvocation, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Add this graph's ops to `builder` as the nodes ``<name>.<op>``; returns its outputs' handles."""
        name = builder.node_name(self.name, inv.given_alias)
        given = builder.bind(f'graph invocation "{name}"', self.inputs, args, kwargs)
        missing = [i for i in self.inputs if i not in given]
        if missing:
            raise DefinitionError(
                f"{builder.where}: input {missing[0]!r} of graph {name} is not connected; pass the output of an "
                f"upstream op, e.g. {self.name}({missing[0]}=upstream())"
            )
        node = GraphNode(name, self, tags={**self.tags, **inv.tags}, config=self.config)
        builder.graphs[name] = node
        builder.scope.append(name)
        builder.hooks.append(inv.hook_defs)
        builder.graph_inputs.append((name, {h: i for i, h in given.items() if isinstance(h, OutputHandle)}))
        try:
            returned = self.fn(**given)
        finally:
            builder.scope.pop()
            builder.hooks.pop()
            builder.graph_inputs.pop()
        outputs = self.outputs_of(returned)
        node.outputs = {o: (h.node, h.output) for o, h in outputs.items()}
        return builder.results(name, list(outputs.values()), list(outputs))

    def outputs_of(self, returned: Any) -> dict[str, OutputHandle]:
        """The graph's outputs from what its body returned: a handle (its one output), a dict by output
        name, or a tuple in the declared order; refusals with Dagster's wording."""
        if self.outs is None:
            if returned is None:
                return {}
            if isinstance(returned, OutputHandle):
                return {"result": returned}
            raise DefinitionError(
                f"@graph '{self.name}' returned {type(returned).__name__}: a graph with several outputs declares "
                f"them, e.g. @graph(out={{'a': GraphOut(), 'b': GraphOut()}}) and returns {{'a': ..., 'b': ...}}"
            )
        names = list(self.outs)
        if isinstance(returned, OutputHandle) and len(names) == 1:
            mapping: Mapping[str, Any] = {names[0]: returned}
        elif isinstance(returned, Mapping):
            mapping = returned
        elif isinstance(returned, tuple) and len(returned) == len(names):
            mapping = dict(zip(names, returned, strict=True))
        else:
            mapping = {}
        for out_name in names:
            if out_name not in mapping:
                raise DefinitionError(
                    f"@graph '{self.name}' has unmapped output '{out_name}'. Remove it or return a value from the "
                    f"appropriate op/graph invocation."
                )
            if not isinstance(mapping[out_name], OutputHandle):
                raise DefinitionError(
                    f"@graph '{self.name}': output '{out_name}' must be an op's or graph's output, got "
                    f"{type(mapping[out_name]).__name__}"
                )
        return {n: mapping[n] for n in names}

    def to_job(
        self,
        name: str | None = None,
        description: str | None = None,
        resource_defs: Mapping[str, object] | None = None,
        config: Mapping[str, Any] | None = None,
        tags: Mapping[str, object] | None = None,
        metadata: Mapping[str, Any] | None = None,
        logger_defs: Mapping[str, Any] | None = None,
        executor_def: ExecutorDefinition | None = None,
        hooks: AbstractSet[Any] | None = None,
        op_retry_policy: RetryPolicy | None = None,
        op_selection: Sequence[str] | None = None,
        partitions_def: Any = None,
        asset_layer: Any = None,
        input_values: Mapping[str, object] | None = None,
        run_tags: Mapping[str, object] | None = None,
        owners: Sequence[str] | None = None,
    ) -> JobDefinition:
        """A job of this graph's ops (at the top level: step ``op``, not ``graph.op``), with @job's arguments;
        the graph's tags are the job's unless `tags` is given; the graph's inputs take `input_values`."""
        if op_selection is not None:
            raise DefinitionError(
                "to_job(op_selection=...): select ops when running instead: execute_job(job, op_selection=[...])"
            )
        build = job(
            name=name or self.name,
            description=description or self.description,
            resource_defs=resource_defs,
            config=config if config is not None else self.config,
            tags=_tags(tags) if tags is not None else self.tags,
            metadata=metadata,
            logger_defs=logger_defs,
            executor_def=executor_def,
            hooks=hooks,
            op_retry_policy=op_retry_policy,
            partitions_def=partitions_def,
            input_values=input_values,
            run_tags=_tags(run_tags) if run_tags is not None else None,
            owners=owners,
        )
        jd = build(self.fn)
        jd.module_ref = None  # the graph's function is not a job: loaders need the job's own reference
        return jd

    def execute_in_process(self, *args: Any, **kwargs: Any) -> Any:
        """Dagster's `GraphDefinition.execute_in_process`: this graph as a job, run in this process."""
        return self.to_job().execute_in_process(*args, **kwargs)


@overload
def graph(compose_fn: Callable[..., Any]) -> GraphDefinition: ...


@overload
def graph(
    compose_fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    ins: Mapping[str, GraphIn] | None = None,
    out: GraphOut | Mapping[str, GraphOut] | None = None,
    tags: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], GraphDefinition]: ...


def graph(
    compose_fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    ins: Mapping[str, GraphIn] | None = None,
    out: GraphOut | Mapping[str, GraphOut] | None = None,
    tags: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> GraphDefinition | Callable[[Callable[..., Any]], GraphDefinition]:
    """Declare a graph (Dagster's ``@graph``): its body calls ops and graphs; its parameters are inputs it
    passes on; it returns its output (or a dict of them, declared with `out`)."""

    def wrap(f: Callable[..., Any]) -> GraphDefinition:
        return GraphDefinition(f, name=name, description=description, ins=ins, out=out, tags=tags, config=config)

    return wrap(compose_fn) if compose_fn is not None else wrap
