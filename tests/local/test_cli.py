"""`cairn run`, `cairn reexecute` and `cairn runs ...` as a user types them, and the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "unreliable.py"


def cairn(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn.cli", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def test_run_fail_reexecute_from_failure_and_show_the_tree(tmp_path: Path) -> None:
    home = tmp_path / "home"
    failed = cairn(home, "run", f"{EXAMPLE}:unreliable_job", env={"CAIRN_UNRELIABLE": "fail"})
    assert failed.returncode == 1
    assert "FAIL  unreliable  Exception: blah" in failed.stdout
    run_id = failed.stdout.split()[1].rstrip(":")
    assert f"cairn reexecute {run_id} --from-failure" in failed.stderr

    # From another directory: the run records where its job is defined.
    again = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "reexecute", run_id, "--from-failure", "--home", str(home)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "CAIRN_UNRELIABLE": "pass"},
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert f"(re-execution of {run_id}): 2 step(s) to execute" in again.stdout
    child = again.stdout.split()[1]

    tree = cairn(home, "runs", "tree", child)
    assert tree.returncode == 0
    lines = tree.stdout.splitlines()
    assert lines[1].startswith(f"{run_id}  FAILURE")
    assert lines[2].startswith(f"`-- {child}  SUCCESS  [1 reused, 2 success]  mode=from_failure")

    shown = json.loads(cairn(home, "runs", "show", child, "-o", "json").stdout)
    assert shown["parent_run_id"] == run_id and shown["steps"]["start"]["status"] == "REUSED"
    assert shown["steps"]["start"]["source_run"] == run_id
    assert shown["steps"]["unreliable"]["reason"] == "failed"
    listed = cairn(home, "runs", "list").stdout
    assert run_id in listed and child in listed


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok = cairn(home, "run", f"{EXAMPLE}:unreliable_job", env={"CAIRN_UNRELIABLE": "pass"})
    run_id = ok.stdout.split()[1].rstrip(":")
    res = cairn(home, "reexecute", run_id, "--from-failure")
    assert res.returncode == 2
    assert "Cannot reexecute from failure a run that is not failed or canceled" in res.stderr
    res = cairn(home, "reexecute", run_id, "--select", "nope")
    assert "Step selection refers to unknown step: nope" in res.stderr
    res = cairn(home, "run", f"{EXAMPLE}:missing_job")
    assert res.returncode == 2 and "has no attribute 'missing_job'; jobs defined there: unreliable_job" in res.stderr
    res = cairn(home, "runs", "show", "0000")
    assert res.returncode == 2 and "Run 0000 not found" in res.stderr


def test_the_demo_runs_fails_reexecutes_and_prints_the_lineage(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CAIRN_HOME": str(tmp_path / "demo")},
    )
    assert out.returncode == 0, out.stderr
    assert "-> FAILURE: Exception: blah" in out.stdout
    assert "steps executed: unreliable, end" in out.stdout
    assert "mode=from_failure" in out.stdout and "mode=selected" in out.stdout
