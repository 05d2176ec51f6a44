"""The operator killed exactly between two of its writes (the CAIRN_FAULT test hook makes it
`os._exit(137)` there), then started again normally: nothing is lost and nothing is done twice."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn_dev import procs
from tests.helpers import eventually
from tests.integration.test_operator import (
    G,
    V,
    apply,
    co,
    get_run,
    lineage_settled,
    ns,
    run_of,
    sample,
    slow_job_recording,
    wait_phase,
)

__all__ = ["ns"]


@pytest.fixture
def crash_at(cairn_operator: Any, dev_cluster: Any) -> Iterator[Callable[[str, str], Any]]:
    """`crash_at(point, namespace)`: the operator replaced by one that exits at `point` (for Runs of
    `namespace` only); `.wait()` on the result waits for that exit, `.restart()` starts it normally.
    Afterwards the normal operator runs again, whatever happened."""
    handle = cairn_operator

    class Faulty:
        def __init__(self, point: str, namespace: str) -> None:
            procs.stop(handle.record, grace=10)
            env = {
                **os.environ,
                "KUBECONFIG": str(dev_cluster.kubeconfig),
                "CAIRN_FAULT": point,
                "CAIRN_FAULT_NAMESPACE": namespace,
            }
            self.point = point
            self.mark = Path(handle.log_path).stat().st_size if Path(handle.log_path).exists() else 0
            handle.record = procs.start("cairn-operator", handle.record.argv, Path(handle.log_path), env=env)
            self.record = handle.record

        def wait(self) -> None:
            eventually(lambda: not self.record.alive(), timeout=120, interval=0.2, what=f"the crash at {self.point}")
            log = Path(handle.log_path).read_text(errors="replace")[self.mark :]
            assert f"CAIRN_FAULT {self.point}" in log, log[-3000:]

        def restart(self) -> None:
            handle.restart()

    made: list[Faulty] = []

    def make(point: str, namespace: str) -> Faulty:
        made.append(Faulty(point, namespace))
        return made[-1]

    yield make
    if made and handle.record is made[-1].record:
        handle.restart()


def calls(tmp_path: Path) -> list[str]:
    return sorted((tmp_path / "calls").read_text().split())


@pytest.mark.parametrize("point", ["exit-before:pod-delete", "exit-after:status-write"])
def test_a_crash_around_pod_gc_loses_no_result_and_runs_no_step_twice(
    point: str, crash_at: Any, kube: Any, core: Any, ns: str, tmp_path: Path
) -> None:
    apply(kube, ns, slow_job_recording(tmp_path, sleep=1))
    faulty = crash_at(point, ns)
    apply(kube, ns, run_of("slow", "gc1", podGC={"strategy": "OnStepSuccess"}))
    faulty.wait()
    at_crash = get_run(kube, ns, "gc1")["status"]
    if point == "exit-before:pod-delete":
        # Persist, then destroy: the pod about to go has its result and log in status already.
        pods = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=gc1").items
        assert pods, "the crash came before the first deletion: every pod is still there"
        for p in pods:
            if p.status.phase == "Succeeded":
                st = at_crash["steps"][p.metadata.labels["cairn.dev/step"]]
                assert st["phase"] == "Succeeded" and st["outputs"]["result"]["key"], st
                assert st["logs"]["1"], st
    faulty.restart()
    run = wait_phase(kube, ns, "gc1", "Succeeded", "Failed", timeout=120)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    for step in ("start", "slow", "end"):
        st = run["status"]["steps"][step]
        assert st["phase"] == "Succeeded" and st["attempt"] == 1, st
        assert st["outputs"]["result"]["key"] and sorted(st["logs"]) == ["1"], st
    assert calls(tmp_path) == ["end", "slow", "start"]  # each op ran exactly once
    eventually(
        lambda: not core.list_namespaced_pod(ns, label_selector="cairn.dev/run=gc1").items,
        timeout=60,
        what="podGC to delete every succeeded pod",
    )
    eventually(lambda: get_run(kube, ns, "gc1")["status"].get("settled"), timeout=30, what="the Run settled")


def retries_of(kube: Any, ns: str, root: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = co(kube).list_namespaced_custom_object(
        G, V, ns, "reexecutions", label_selector=f"cairn.dev/root-run={root}"
    )["items"]
    return items


def test_a_crash_right_after_writing_failed_still_retries_exactly_once(crash_at: Any, kube: Any, ns: str) -> None:
    apply(kube, ns, sample("job-unreliable.yaml"))
    run = sample("run-unreliable-fails.yaml")
    run["metadata"]["name"] = "fails-once"
    run["spec"]["retryPolicy"] = {"maxRetries": 1, "strategy": "FromFailure"}
    faulty = crash_at("exit-after:run-failed", ns)
    apply(kube, ns, run)
    faulty.wait()
    assert get_run(kube, ns, "fails-once")["status"]["phase"] == "Failed"
    assert retries_of(kube, ns, "fails-once") == []  # the crash came before the retry
    faulty.restart()
    items = eventually(lambda: retries_of(kube, ns, "fails-once"), timeout=60, what="the automatic retry")
    assert [r["metadata"]["name"] for r in items] == ["fails-once-retry-1"]
    assert items[0]["spec"]["parentRun"] == "fails-once"
    # Both Runs of the lineage settled (the retry's child too): each made its retry decision, none adds one.
    runs = eventually(lambda: lineage_settled(kube, ns, "fails-once", runs=2), timeout=120, what="both Runs settled")
    [retry] = retries_of(kube, ns, "fails-once")
    assert retry["metadata"]["name"] == "fails-once-retry-1"
    assert {r["metadata"]["name"] for r in runs} == {"fails-once", retry["status"]["childRun"]}
