"""`JobDefinition`: a job's nodes, their wiring and what Dagster's `@job` gives it, with run config checked
section by section (`validate_run_config`, `op_config`); Dagster's executors. Re-exported by `cairn.definitions`,
where `@job` builds it."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cairn import dynamic
from cairn.config_types import _dotted, _Invalid, _required, check_config, merge_config
from cairn.dagster_types import _param_error, _tags, check_name
from cairn.errors import ConfigError, DefinitionError
from cairn.retries import RetryPolicy

if TYPE_CHECKING:  # types only: cairn.definitions imports this module
    from cairn.definitions import GraphNode, Node, OpDefinition, Out

# --- executors -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutorDefinition:
    name: str


#: Dagster's executors by name; every job runs in process locally and one pod per step on a cluster.
in_process_executor = ExecutorDefinition("in_process")
multiprocess_executor = ExecutorDefinition("multiprocess")
multi_or_in_process_executor = ExecutorDefinition("multi_or_in_process")


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
        if resource_defs is not None:  # as Dagster: with resources given, a missing one is refused now
            from cairn.resources import check_required_resources  # resources builds on jobs

            check_required_resources(self)

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
