"""The README runs as written: its `sh` blocks, in order, in one new bash (`-euo pipefail`, no profile),
with the system's default PATH, from the repository's root; then its `sh teardown` block in a shell of its
own, also when a block failed (see tests/readme_blocks.py for the convention).

What the shell gets from here: HOME (the caches under ~/.cache/cairn are reused), the system's default
PATH (plus the directory of `go`, a prerequisite the README names), and two documented variables that keep
it apart from the rest of the machine: CAIRN_DEV_DIR (its cluster's directory; ports are picked free) and
CAIRN_HOME (the local runs). Real containers: the quickstart starts a containerd node and installs the
chart, so this runs where no other cluster of these tests is up (test modules run one at a time, each
bringing its cluster down at its end; this one uses none of the shared fixtures).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.readme_blocks import README, runnable, script

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(5400)]

ROOT = README.parent
#: What a login shell of a new user has on a Debian system, before any profile adds to it.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def fresh_env(tmp: Path) -> dict[str, str]:
    """The environment of a new terminal: no virtualenv, no KUBECONFIG, the system's PATH."""
    go = shutil.which("go")
    path = SYSTEM_PATH + (f":{Path(go).parent}" if go and str(Path(go).parent) not in SYSTEM_PATH else "")
    return {
        "HOME": os.environ["HOME"],
        "PATH": path,
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "CAIRN_DEV_DIR": str(tmp / "dev"),
        "CAIRN_HOME": str(tmp / "home"),
    }


def bash(text: str, env: dict[str, str], log: Path, timeout: float) -> int:
    """Run `text` in a new bash from the repository's root, its output (both streams) appended to `log`."""
    with log.open("a") as out:
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-euo", "pipefail", "-c", text],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    return done.returncode


def tail(log: Path, lines: int = 80) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def cluster_objects(dev_dir: Path) -> dict[str, Any]:
    """What the quickstart left on its cluster: the Reexecutions and the Runs (read before the teardown)."""
    from kubernetes import client

    from cairn_dev.cluster import Cluster

    api = client.CustomObjectsApi(Cluster(dev_dir).api())
    rxs = api.list_namespaced_custom_object("cairn.dev", "v1alpha1", "default", "reexecutions")["items"]
    runs = api.list_namespaced_custom_object("cairn.dev", "v1alpha1", "default", "runs")["items"]
    return {"rx": {r["metadata"]["name"]: r for r in rxs}, "runs": {r["metadata"]["name"]: r for r in runs}}


def test_the_readme_runs_as_written(tmp_path: Path) -> None:
    body, teardown = runnable(README.read_text())
    assert body and teardown, "the README has runnable blocks and a teardown"
    env = fresh_env(tmp_path)
    log = tmp_path / "readme.log"
    code = None
    seen: dict[str, Any] = {}
    try:
        code = bash(script(body), env, log, timeout=3600)
        if code == 0:
            seen = cluster_objects(Path(env["CAIRN_DEV_DIR"]))
    finally:
        with log.open("a") as out:
            out.write("\n>>> teardown\n")
        down = bash(script(teardown), env, log, timeout=600)
    assert code == 0, f"a README block failed (exit {code}); the last lines of its output:\n{tail(log)}"
    assert down == 0, f"the README's teardown failed (exit {down}):\n{tail(log)}"
    assert not any(r["spec"].get("dryRun") for r in seen["rx"].values()), "a dry run left a Reexecution behind"
    child = seen["runs"][seen["rx"]["fix-unreliable"]["status"]["childRun"]]
    assert child["status"]["steps"]["start"]["phase"] == "Reused", child["status"]["steps"]
    fan = [
        r
        for r in seen["runs"].values()
        if (r["metadata"].get("labels") or {}).get("cairn.dev/parent-run") == "fanout-fails"
    ]
    assert len(fan) == 1 and fan[0]["status"]["phase"] == "Succeeded" and "overrides" not in fan[0]["spec"]
    ran = sorted(s for s, st in fan[0]["status"]["steps"].items() if st["phase"] != "Reused")
    assert ran == ["process[shard_1]", "summarize"], ran
