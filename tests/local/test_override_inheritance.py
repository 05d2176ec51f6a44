"""In process, the same inheritance rule as on the cluster: a child run inherits its parent's run config,
and none of its per-step overrides (`step_env`); it gets only its own `ReexecutionOptions.step_env`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cairn import Field, Instance, ReexecutionOptions, execute_job, job, op

seen: list[tuple[str, Any]] = []


@op(config_schema={"n": Field(int, default_value=0)})
def begin(context: Any) -> int:
    seen.append(("n", context.op_config["n"]))
    return int(context.op_config["n"])


@op
def flaky(x: int) -> int:
    seen.append(("flaky", os.environ.get("CAIRN_T_INHERIT")))
    if os.environ.get("CAIRN_T_INHERIT") == "fail":
        raise RuntimeError("told to fail")
    return x


@job
def inherit_job() -> None:
    flaky(begin())


CONFIG = {"ops": {"begin": {"config": {"n": 7}}}}
FAIL = {"flaky": {"CAIRN_T_INHERIT": "fail"}}
MARK = {"flaky": {"CAIRN_T_INHERIT": "mark"}}


@pytest.mark.parametrize(
    ("grandchild_env", "flaky_saw", "succeeds"),
    [
        ({}, None, True),  # the failing override of its parent is not inherited
        (MARK, "mark", True),  # only its own
        (FAIL, "fail", False),  # given again explicitly, it applies again
    ],
)
def test_a_child_gets_its_own_step_env_only_and_the_parents_run_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grandchild_env: Any, flaky_saw: str | None, succeeds: bool
) -> None:
    monkeypatch.delenv("CAIRN_T_INHERIT", raising=False)
    instance = Instance.local(tmp_path / "home")
    root = execute_job(inherit_job, instance=instance, run_config=CONFIG)
    assert root.success
    failed = execute_job(
        inherit_job,
        instance=instance,
        reexecution_options=ReexecutionOptions(root.run_id, ["begin*"], step_env=FAIL),
    )
    assert not failed.success and "told to fail" in failed.errors["flaky"]
    seen.clear()
    options = ReexecutionOptions.from_failure(failed.run_id, instance)
    options.step_env = grandchild_env
    grandchild = execute_job(inherit_job, instance=instance, reexecution_options=options)
    assert seen == [("flaky", flaky_saw)]  # begin is reused, flaky re-runs
    assert grandchild.success is succeeds
    assert instance.get_run(grandchild.run_id).run_config == CONFIG  # the run config is inherited
    rerun_begin = execute_job(
        inherit_job, instance=instance, reexecution_options=ReexecutionOptions(grandchild.run_id, ["begin"])
    )
    assert rerun_begin.success and ("n", 7) in seen  # and used by the ops that run
