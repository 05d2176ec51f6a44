"""`cairn k8s reexecute` with per-step overrides, --same-steps and --all-failed on the real control plane:
the CLI writes the Reexecution, the operator plans and runs the child, the CLI follows it."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from typing import Any

from tests.integration.test_operator import G, V, apply, co, ns, sample, wait_phase
from tests.integration.test_reexecution import failed_parent, rx_phase

__all__ = ["failed_parent", "ns"]

PASS = "unreliable:CAIRN_UNRELIABLE=pass"


def k8s_cli(env: dict[str, str], ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn.cli", "k8s", *args, "-n", ns],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def test_an_env_override_fixes_a_failed_run_and_same_steps_plans_what_ran(
    kube: Any, ns: str, failed_parent: dict[str, Any], dev_cluster: Any, dev_state: Any
) -> None:
    env = {**os.environ, **dev_cluster.env(dev_state)}
    unknown = k8s_cli(env, ns, "reexecute", "unreliable-fails", "--from-failure", "--env", "nope:X=1", "--name", "bad")
    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert "Invalid (UnknownSteps): overrides name unknown step(s): nope" in unknown.stdout

    fixed = k8s_cli(env, ns, "reexecute", "unreliable-fails", "--from-failure", "--env", PASS, "--name", "cli-fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "start                Reused" in fixed.stdout and "unreliable           Succeeded" in fixed.stdout
    done = rx_phase(kube, ns, "cli-fix", "Succeeded", "Failed")
    child = done["status"]["childRun"]
    assert f"run {child}: Succeeded" in fixed.stdout
    assert done["spec"]["overrides"] == {"unreliable": {"env": [{"name": "CAIRN_UNRELIABLE", "value": "pass"}]}}

    # The parent ran start (Succeeded) and unreliable (Failed); end never ran.
    same = k8s_cli(env, ns, "reexecute", "unreliable-fails", "--same-steps", "--dry-run", "--name", "cli-same")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "would run start  (selected)" in same.stdout and "would run unreliable  (selected)" in same.stdout
    assert "would run end" not in same.stdout
    left = co(kube).list_namespaced_custom_object(G, V, ns, "reexecutions")["items"]
    assert "cli-same" not in [r["metadata"]["name"] for r in left], "a dry run leaves no Reexecution behind"
    bad = k8s_cli(env, ns, "reexecute", "unreliable-fails", "--env", "unreliable=pass")
    assert bad.returncode == 2 and "--env takes STEP:NAME=VALUE" in bad.stderr


def test_all_failed_makes_one_reexecution_per_failed_run_and_none_twice(
    kube: Any, ns: str, failed_parent: dict[str, Any], dev_cluster: Any, dev_state: Any
) -> None:
    env = {**os.environ, **dev_cluster.env(dev_state)}
    base = sample("run-unreliable-fails.yaml")
    for name, outcome in (("b1-fails-1", "fail"), ("b1-fails-2", "fail"), ("b1-ok", "pass")):
        doc = copy.deepcopy(base)
        doc["metadata"] = {"name": name, "labels": {"batch": "b1"}}
        doc["spec"]["overrides"]["unreliable"]["env"][0]["value"] = outcome
        apply(kube, ns, doc)
    for name in ("b1-fails-1", "b1-fails-2", "b1-ok"):
        wait_phase(kube, ns, name, "Failed", "Succeeded")

    def reexecutions(dry: bool) -> list[dict[str, Any]]:
        items = co(kube).list_namespaced_custom_object(G, V, ns, "reexecutions")["items"]
        return [r for r in items if bool(r["spec"].get("dryRun")) == dry]

    plans = k8s_cli(env, ns, "reexecute", "--all-failed", "-l", "batch=b1", "--dry-run")
    assert plans.returncode == 0, plans.stdout + plans.stderr
    for name in ("b1-fails-1", "b1-fails-2"):
        assert f"{name}  Planned: dry run: 2 step(s) would run" in plans.stdout
    assert plans.stdout.count("would run unreliable  (failed)") == 2
    assert "b1-ok" not in plans.stdout and "unreliable-fails" not in plans.stdout  # succeeded; not selected
    assert reexecutions(dry=False) == [] and reexecutions(dry=True) == []  # the dry runs were deleted

    first = k8s_cli(env, ns, "reexecute", "--all-failed", "-l", "batch=b1", "--env", PASS)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 2 and all(line.endswith(" created") for line in lines), first.stdout
    assert [line.split()[0] for line in lines] == ["b1-fails-1", "b1-fails-2"]
    made = reexecutions(dry=False)
    assert sorted(r["spec"]["parentRun"] for r in made) == ["b1-fails-1", "b1-fails-2"]
    assert all(r["spec"]["mode"] == "FromFailure" and r["spec"]["labels"] == {"batch": "b1"} for r in made)

    again = k8s_cli(env, ns, "reexecute", "--all-failed", "-l", "batch=b1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("skipped: re-execution") == 2 and "created" not in again.stdout
    for r in made:
        assert rx_phase(kube, ns, r["metadata"]["name"], "Succeeded", "Failed")["status"]["phase"] == "Succeeded"
    # The children succeeded (they carry batch=b1 but are not failed): still nothing to do, nothing made twice.
    last = k8s_cli(env, ns, "reexecute", "--all-failed", "-l", "batch=b1")
    assert last.returncode == 0 and last.stdout.count("succeeded (child Run") == 2, last.stdout
    assert len(reexecutions(dry=False)) == 2
