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
    ("rv", "wakes"),
    [
        ("101", False),  # the watch brings back the cycle's own status write: nothing new
        ("100", True),  # an event of an older version (kopf's finalizer added before the write, say)
        ("102", True),  # a change after it (an annotation, spec.cancel, someone else's status write)
    ],
)
def test_only_a_runs_own_status_write_wakes_no_cycle(rv: str, wakes: bool) -> None:
    run = FakeRun()
    run.ctl.cycle(body("1", {}))  # writes the first status: resourceVersion 101
    assert run.status["phase"] == "Running" and run.ctl.written[("ns", "r")][0] == "101"

    async def woken() -> bool:
        event = asyncio.Event()
        run.ctl.wakers[("ns", "r")] = event
        run.ctl.run_changed(body(rv, run.status))
        return event.is_set()

    assert asyncio.run(woken()) is wakes


@pytest.mark.parametrize("seen", ["1", "100"])  # what the cycle read; a version in between (a finalizer added)
def test_a_cycle_reads_what_the_last_one_wrote_until_the_watch_brings_it(seen: str) -> None:
    run = FakeRun()
    run.ctl.cycle(body("1", {}))
    assert len(run.pods) == 1 and len(run.kube.status_patches) == 1 and len(run.events) == 1  # StepStarted
    run.kube.observed_pods = [PodObs(run.status["steps"]["a"]["podName"], "a", 1, "Running")]
    run.ctl.cycle(body(seen, {}))  # the watch has not brought the write back: the same decision, nothing new
    assert len(run.pods) == 1 and len(run.kube.status_patches) == 1 and len(run.events) == 1  # none twice
    assert run.ctl.current(body(seen, {}))["status"] == run.status
    assert run.ctl.current(body("101", {"phase": "Running"}))["status"] == {"phase": "Running"}  # the write itself
    assert run.ctl.current(body("105", {"phase": "Failed"}))["status"] == {"phase": "Failed"}  # newer: the watch's


@pytest.mark.parametrize(
    ("version", "than", "expected"),
    [("7", "7", True), ("8", "7", True), ("10", "9", True), ("6", "7", False), (None, "7", False), ("x", "y", False)],
)
def test_resource_versions_compare_as_the_api_servers_integers(version: str | None, than: str, expected: bool) -> None:
    from cairn_operator.kube import newer_or_same

    assert newer_or_same(version, than) is expected


def test_the_written_resource_version_is_read_without_decoding_the_run() -> None:
    from cairn_operator.kube import RESOURCE_VERSION

    data = b'{"apiVersion":"cairn.dev/v1alpha1","kind":"Run","metadata":{"name":"r","resourceVersion":"4711",'
    data += b'"managedFields":[{"resourceVersion":"1"}]},"status":{"steps":{}}}'
    found = RESOURCE_VERSION.search(data)
    assert found is not None and found.group(1) == b"4711"


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
