"""The seed example: Dagster's `unreliable_job`, ported by changing imports.

`unreliable` fails half of the time. For a deterministic demo, set CAIRN_UNRELIABLE=fail (always
fails) or CAIRN_UNRELIABLE=pass (never fails); CAIRN_UNRELIABLE_SEED=N seeds the random draw.

Run the demo (execute, see it fail, re-execute from failure, print the lineage)::

    python examples/unreliable.py   (or: python -m cairn.examples.unreliable)
"""

from __future__ import annotations

import os
import random
import sys
import tempfile

from cairn import Instance, ReexecutionOptions, execute_job, in_process_executor, job, op, reconstructable

_rng = random.Random(int(os.environ["CAIRN_UNRELIABLE_SEED"]) if "CAIRN_UNRELIABLE_SEED" in os.environ else None)


def some_random_result() -> float:
    forced = os.environ.get("CAIRN_UNRELIABLE", "")
    if forced == "fail":
        return 0.0
    if forced == "pass":
        return 1.0
    return _rng.random()


@op
def start():
    return 1


@op
def unreliable(num: int) -> int:
    failure_rate = 0.5
    if some_random_result() < failure_rate:
        raise Exception("blah")

    return num


@op
def end(_num: int):
    pass


@job(executor_def=in_process_executor)
def unreliable_job():
    end(unreliable(start()))


def demo() -> int:
    from cairn.cli_runs import Progress, render_tree, this_cairn

    home = os.environ.get("CAIRN_HOME") or tempfile.mkdtemp(prefix="cairn-demo-")
    instance = Instance.local(home)
    print(f"instance: {instance.root}\n")

    print("1. Run unreliable_job with `unreliable` forced to fail:")
    os.environ["CAIRN_UNRELIABLE"] = "fail"
    initial_result = execute_job(reconstructable(unreliable_job), instance=instance, on_event=Progress())
    print(f"   -> {initial_result.status.value}: {initial_result.errors['unreliable'].splitlines()[-1]}\n")

    print("2. Fix it, then re-execute from failure (`start` is reused, not re-run):")
    os.environ["CAIRN_UNRELIABLE"] = "pass"
    options = ReexecutionOptions.from_failure(initial_result.run_id, instance)
    with execute_job(
        reconstructable(unreliable_job), instance=instance, reexecution_options=options, on_event=Progress()
    ) as result:  # outputs are read inside the result's `with` block, as in Dagster
        print(
            f"   -> {result.status.value}; steps executed: {', '.join(result.executed_steps)}; "
            f"unreliable returned {result.output_for_node('unreliable')}\n"
        )

    print('3. Dagster\'s own example: ReexecutionOptions(parent_run_id=..., step_selection=["unreliable*"]):')
    options = ReexecutionOptions(parent_run_id=initial_result.run_id, step_selection=["unreliable*"])
    again = execute_job(
        reconstructable(unreliable_job), instance=instance, reexecution_options=options, on_event=Progress()
    )
    print(f"   -> {again.status.value}\n")

    print("4. The lineage (the parent run is unchanged, still FAILURE):")
    print(render_tree(instance.get_run_group(initial_result.run_id)))
    print(f"\nInspect it: {this_cairn()} runs tree {initial_result.run_id} --home {instance.root}")
    return 0 if result.success and again.success else 1


if __name__ == "__main__":
    sys.exit(demo())
