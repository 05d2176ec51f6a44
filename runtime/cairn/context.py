"""The op context, as Dagster's `OpExecutionContext`: what an op whose first parameter is ``context`` (or
``_``, ``_context``, ``context_``) receives while its step runs: run id, op config, logger, resources,
tags, the retry number and the mapping key of a mapped step."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cairn import dynamic
from cairn.errors import DagsterUnknownResourceError


@dataclass(frozen=True)
class RunView:
    """What an op sees of its run (Dagster's ``context.run``): its id, job, tags and where it comes from."""

    run_id: str
    job_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None
    root_run_id: str | None = None
    run_config: Mapping[str, Any] = field(default_factory=dict)


class Resources:
    """The initialised resources of a step, as attributes (``context.resources.db``); an unknown name is
    Dagster's `DagsterUnknownResourceError`."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_values", MappingProxyType(dict(values or {})))

    def __getattr__(self, name: str) -> Any:
        values: Mapping[str, Any] = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        if name.startswith("__"):
            raise AttributeError(name)
        raise DagsterUnknownResourceError(
            f"Unknown resource `{name}`. Specify `{name}` as a required resource on the compute / config "
            f"function that accessed it (e.g. @op(required_resource_keys={{'{name}'}})); resources here: "
            f"{', '.join(sorted(values)) or 'none'}"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"resources are read-only (tried to set {name!r})")

    def __iter__(self) -> Any:
        return iter(object.__getattribute__(self, "_values").items())

    def __contains__(self, name: object) -> bool:
        return name in object.__getattribute__(self, "_values")

    def __repr__(self) -> str:
        return f"Resources({', '.join(object.__getattribute__(self, '_values'))})"


def as_resources(resources: Any) -> Any:
    """`resources` as the context's ``resources`` attribute: a mapping becomes `Resources`; an object
    (a namespace built by the step body) is kept; None is no resources."""
    if resources is None or isinstance(resources, Mapping):
        return Resources(resources)
    return resources


class OpExecutionContext:
    """What an op sees as its `context` parameter (Dagster's name; `OpContext` is the same class).

    `step` is the step key (``process[shard_1]`` for a mapped step); `tags` are the node's tags (the
    op's merged with the invocation's); `run_tags` the run's, which `has_tag`/`get_tag` read, as Dagster's."""

    def __init__(
        self,
        run_id: str,
        step: str,
        op_config: Any,
        log: logging.Logger,
        *,
        resources: Any = None,
        retry_number: int = 0,
        op_def: Any = None,
        job_name: str | None = None,
        run_tags: Mapping[str, str] | None = None,
        run: RunView | None = None,
    ) -> None:
        self.run_id = run_id
        self.step = step
        self.op_config = op_config
        self.log = log
        self.resources = as_resources(resources)
        self.retry_number = retry_number
        self.op_def = op_def
        self.run = run or RunView(run_id, job_name, dict(run_tags or {}))
        self.job_name = job_name if job_name is not None else self.run.job_name

    @property
    def dagster_run(self) -> RunView:
        """Dagster's other name for `run`."""
        return self.run

    @property
    def run_tags(self) -> Mapping[str, str]:
        return self.run.tags

    def has_tag(self, key: str) -> bool:
        """Whether the run has tag `key` (Dagster reads the run's tags here, not the op's)."""
        return key in self.run.tags

    def get_tag(self, key: str) -> str | None:
        return self.run.tags.get(key)

    @property
    def op_name(self) -> str:
        """The node's name (``process`` for the step ``process[shard_1]``)."""
        return dynamic.node_of(self.step)

    @property
    def node_name(self) -> str:
        return self.op_name

    @property
    def step_key(self) -> str:
        return self.step

    @property
    def mapping_key(self) -> str | None:
        """The mapping key of a mapped step (``shard_1`` for ``process[shard_1]``), else None."""
        return dynamic.split_step(self.step)[1]

    def get_mapping_key(self) -> str | None:
        """Dagster's name for `mapping_key`."""
        return self.mapping_key

    def describe_op(self) -> str:
        return f'op "{self.op_name}"'

    def __repr__(self) -> str:
        return f"<OpExecutionContext run={self.run_id} step={self.step}>"


#: Cairn's earlier name for the op context.
OpContext = OpExecutionContext
