"""The Run controller's own rules, over fakes: which watch events wake a cycle, which Run a cycle reads,
and that a finished attempt's log is copied after the next pods are created (off the hand-off's path)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cairn_operator.reconcile import PodObs
from tests.unit.operator.fakes import FakeRun

RESULT = json.dumps({"protocol": 1, "status": "SUCCESS", "outputs": {"result": {"key": "ns/r/a/result", "size": 1}}})


def body(rv: str, status: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    meta = {"name": "r", "namespace": "ns", "uid": "u-1", "generation": generation, "resourceVersion": rv}
    return {"metadata": meta, "spec": {"jobRef": {"name": "j"}}, "status": status}


@pytest.mark.parametrize(
    ("rv", "status", "generation", "wakes"),
    [
        ("2", "written", 1, False),  # the watch brings back the write itself: nothing new
        ("1", "written", 1, True),  # not a newer version (an event of what the cycle read)
        ("2", "other", 1, True),  # someone else changed the status since
        ("2", "written", 2, True),  # the spec changed (spec.cancel, say) with the same status
    ],
)
def test_only_a_runs_own_status_write_wakes_no_cycle(rv: str, status: str, generation: int, wakes: bool) -> None:
    run = FakeRun()
    run.ctl.cycle(body("1", {}))  # writes the first status, read at resourceVersion 1
    written = run.status
    assert written["phase"] == "Running"

    async def woken() -> bool:
        event = asyncio.Event()
        run.ctl.wakers[("ns", "r")] = event
        run.ctl.run_changed(body(rv, written if status == "written" else {**written, "phase": "Pending"}, generation))
        return event.is_set()

    assert asyncio.run(woken()) is wakes


def test_a_cycle_reads_what_the_last_one_wrote_until_the_watch_brings_it() -> None:
    run = FakeRun()
    run.ctl.cycle(body("1", {}))
    assert len(run.pods) == 1 and len(run.kube.status_patches) == 1
    run.kube.observed_pods = [PodObs(run.status["steps"]["a"]["podName"], "a", 1, "Running")]
    run.ctl.cycle(body("1", {}))  # the watch has not brought the write back: the same decision, nothing new
    assert len(run.pods) == 1 and len(run.kube.status_patches) == 1
    assert run.ctl.current(body("1", {}))["status"] == run.status
    assert run.ctl.current(body("2", {"phase": "Running"}))["status"] == {"phase": "Running"}  # newer: the watch's


def test_a_finished_attempts_log_is_saved_after_the_next_pod_is_created() -> None:
    calls: list[str] = []

    class Store:
        def store(self, key: str, data: bytes, fmt: str) -> None:
            calls.append(f"store {key}")

    run = FakeRun(storage=Store())
    run.cycle()
    name = run.status["steps"]["a"]["podName"]
    run.kube.observed_pods = [PodObs(name, "a", 1, "Succeeded", exit_code=0, message=RESULT)]
    create = run.kube.create_pod

    def create_pod(pod: dict[str, Any]) -> bool:
        calls.append(f"create {pod['metadata']['labels']['cairn.dev/step']}")
        return create(pod)

    run.kube.create_pod = create_pod  # type: ignore[method-assign,assignment]
    run.cycle()
    assert [c.split()[0] for c in calls] == ["create", "store"] and calls[0] == "create b", calls
    assert run.status["steps"]["a"]["logs"] == {"1": calls[1].removeprefix("store ")}
    assert run.status["steps"]["b"]["phase"] == "Running"
