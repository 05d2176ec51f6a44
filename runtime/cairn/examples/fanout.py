"""A fan-out example: `split` emits one value per shard, `process` runs once per shard (``process[shard_0]``,
``process[shard_1]``, ...), `summarize` collects their results, in key order.

``ops.split.config.shards`` (default 3) sets how many shards; CAIRN_FANOUT_FAIL=shard_1 (comma-separated
keys) makes those shards' `process` fail, for a deterministic failure to re-execute from::

    CAIRN_FANOUT_FAIL=shard_1 cairn run cairn.examples.fanout:fanout      # process[shard_1] fails
    cairn reexecute RUN_ID --from-failure                               # re-runs process[shard_1] + summarize

or ``python -m cairn.examples.fanout`` for the whole demo.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

from cairn import (
    DynamicOut,
    DynamicOutput,
    Field,
    Instance,
    ReexecutionOptions,
    execute_job,
    in_process_executor,
    job,
    op,
    reconstructable,
)

FAIL_ENV = "CAIRN_FANOUT_FAIL"


@op(out=DynamicOut(), config_schema={"shards": Field(int, default_value=3)})
def split(context: Any) -> Any:
    """One value per shard: shard i carries i + 1."""
    for i in range(context.op_config["shards"]):
        yield DynamicOutput(i + 1, mapping_key=f"shard_{i}")


@op
def process(context: Any, n: int) -> int:
    """Square a shard's value (fails for the keys listed in $CAIRN_FANOUT_FAIL)."""
    if context.mapping_key in os.environ.get(FAIL_ENV, "").split(","):
        raise Exception(f"shard {context.mapping_key} failed ({FAIL_ENV})")
    return n * n


@op
def summarize(results: list[int]) -> int:
    """The sum of every shard's result."""
    return sum(results)


@job(executor_def=in_process_executor)
def fanout() -> None:
    summarize(split().map(process).collect())


def demo() -> int:
    from cairn.cli_runs import Progress, render_tree

    instance = Instance.local(os.environ.get("CAIRN_HOME") or tempfile.mkdtemp(prefix="cairn-fanout-"))
    print(f"instance: {instance.root}\n\n1. Run fanout with shard_1 failing:")
    os.environ[FAIL_ENV] = "shard_1"
    first = execute_job(reconstructable(fanout), instance=instance, on_event=Progress())
    print("\n2. Fix it, re-execute from failure (only process[shard_1] and summarize run):")
    os.environ[FAIL_ENV] = ""
    options = ReexecutionOptions.from_failure(first.run_id, instance)
    with execute_job(
        reconstructable(fanout), instance=instance, reexecution_options=options, on_event=Progress()
    ) as result:  # outputs are read inside the result's `with` block, as in Dagster
        print(f"   -> {result.status.value}; summarize returned {result.output_for_node('summarize')}\n")
    print(render_tree(instance.get_run_group(first.run_id)))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(demo())
