"""`cairn reexecute --env STEP:NAME=VALUE` and `--same-steps` end to end on the local instance, and the
per-step environment of `ReexecutionOptions(step_env=...)` in process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cairn import Instance, ReexecutionOptions, execute_job, job, op
from cairn.errors import ReexecutionError
from tests.local.test_cli import EXAMPLE, cairn

SEED = f"{EXAMPLE}:unreliable_job"


def run_id_of(stdout: str) -> str:
    return stdout.split()[1].rstrip(":")


def steps(home: Path, run_id: str) -> dict[str, Any]:
    shown = cairn(home, "runs", "show", run_id, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    result: dict[str, Any] = json.loads(shown.stdout)["steps"]
    return result


def test_an_env_override_fixes_the_failed_step_from_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    failing = {"CAIRN_UNRELIABLE": "fail"}  # the whole process says fail; only the override says pass
    failed = cairn(home, "run", SEED, env=failing)
    assert failed.returncode == 1 and "FAIL  unreliable  Exception: blah" in failed.stdout
    parent = run_id_of(failed.stdout)

    still = cairn(home, "reexecute", parent, "--from-failure", env=failing)
    assert still.returncode == 1 and "FAIL  unreliable" in still.stdout  # without --env: the same failure

    fixed = cairn(home, "reexecute", parent, "--from-failure", "--env", "unreliable:CAIRN_UNRELIABLE=pass", env=failing)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "ok    unreliable" in fixed.stdout and "ok    end" in fixed.stdout
    child = run_id_of(fixed.stdout)
    got = steps(home, child)
    assert (got["start"]["status"], got["start"]["source_run"]) == ("REUSED", parent)
    assert got["unreliable"]["status"] == got["end"]["status"] == "SUCCESS"

    wrong = cairn(home, "reexecute", parent, "--from-failure", "--env", "nope:X=1")
    assert wrong.returncode == 2 and "step_env names unknown step(s): nope" in wrong.stderr
    bad = cairn(home, "reexecute", parent, "--env", "unreliable=pass")
    assert bad.returncode == 2 and "--env takes STEP:NAME=VALUE" in bad.stderr
    image = cairn(home, "reexecute", parent, "--image", "unreliable=img")
    assert image.returncode == 2 and "--image has no meaning in-process" in image.stderr


def test_same_steps_reruns_exactly_the_steps_the_parent_ran(tmp_path: Path) -> None:
    home = tmp_path / "home"
    root = run_id_of(cairn(home, "run", SEED, env={"CAIRN_UNRELIABLE": "fail"}).stdout)
    # The root ran start (ok) and unreliable (failed); end never ran: the same steps are start and unreliable.
    same = cairn(home, "reexecute", root, "--same-steps", env={"CAIRN_UNRELIABLE": "pass"})
    assert same.returncode == 0, same.stdout + same.stderr
    assert f"(re-execution of {root}): 2 step(s) to execute" in same.stdout
    got = steps(home, run_id_of(same.stdout))
    assert {s: v["status"] for s, v in got.items()} == {
        "start": "SUCCESS",
        "unreliable": "SUCCESS",
        "end": "NOT_EXECUTED",
    }

    # A from-failure child ran unreliable and end (start reused): its same steps are those two.
    child = run_id_of(cairn(home, "reexecute", root, "--from-failure", env={"CAIRN_UNRELIABLE": "pass"}).stdout)
    again = cairn(home, "reexecute", child, "--same-steps", env={"CAIRN_UNRELIABLE": "pass"})
    assert again.returncode == 0, again.stdout + again.stderr
    grandchild = run_id_of(again.stdout)
    got = steps(home, grandchild)
    assert {s: v["status"] for s, v in got.items()} == {"start": "REUSED", "unreliable": "SUCCESS", "end": "SUCCESS"}
    assert got["start"]["source_run"] == root
    tree = cairn(home, "runs", "tree", grandchild).stdout
    assert f"{grandchild}  SUCCESS  [1 reused, 2 success]  mode=selected" in tree


SEEN: list[tuple[str, str | None, str | None]] = []


@op
def first() -> int:
    SEEN.append(("first", os.environ.get("CAIRN_T_A"), os.environ.get("CAIRN_T_B")))
    return 1


@op
def second(x: int) -> int:
    SEEN.append(("second", os.environ.get("CAIRN_T_A"), os.environ.get("CAIRN_T_B")))
    if os.environ.get("CAIRN_T_FAIL") == "1":
        raise RuntimeError("told to fail")
    return x


@op
def third(x: int) -> int:
    SEEN.append(("third", os.environ.get("CAIRN_T_A"), os.environ.get("CAIRN_T_B")))
    return x


@job
def env_job() -> None:
    third(second(first()))


def test_step_env_is_set_while_its_step_runs_and_restored_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = Instance.local(tmp_path / "home")
    monkeypatch.setenv("CAIRN_T_B", "outer")
    monkeypatch.delenv("CAIRN_T_A", raising=False)
    parent = execute_job(env_job, instance=instance)
    SEEN.clear()
    env = {"second": {"CAIRN_T_A": "a", "CAIRN_T_B": "b", "CAIRN_T_FAIL": "1"}, "third": {"CAIRN_T_A": "c"}}
    failed = execute_job(
        env_job, instance=instance, reexecution_options=ReexecutionOptions(parent.run_id, step_env=env)
    )
    assert not failed.success and "told to fail" in failed.errors["second"]  # the op saw CAIRN_T_FAIL=1
    assert SEEN == [("first", None, "outer"), ("second", "a", "b")]
    # Restored after the failed step: unset ones removed, the earlier value back.
    assert ("CAIRN_T_A" not in os.environ, os.environ["CAIRN_T_B"], "CAIRN_T_FAIL" not in os.environ) == (
        True,
        "outer",
        True,
    )
    SEEN.clear()
    options = ReexecutionOptions(
        parent_run_id=parent.run_id, step_selection=["second*"], step_env={"third": {"CAIRN_T_A": "c"}}
    )
    done = execute_job(env_job, instance=instance, reexecution_options=options)
    assert done.success
    assert SEEN == [("second", None, "outer"), ("third", "c", "outer")]
    assert "CAIRN_T_A" not in os.environ


def test_options_stay_compatible_and_unknown_steps_are_refused(tmp_path: Path) -> None:
    instance = Instance.local(tmp_path / "home")
    parent = execute_job(env_job, instance=instance)
    plain = ReexecutionOptions(parent_run_id=parent.run_id, step_selection=["second*"])
    assert plain.step_env == {} and execute_job(env_job, instance=instance, reexecution_options=plain).success
    bad = ReexecutionOptions(parent.run_id, step_env={"fourth": {"X": "1"}})
    with pytest.raises(ReexecutionError, match="step_env names unknown step"):
        execute_job(env_job, instance=instance, reexecution_options=bad)
