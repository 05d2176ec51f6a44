"""Storage never blocks a Run's status: a log that cannot be saved is said on its step, tried again every
cycle, and its pod is kept until it is saved. A fake API server and a fake storage, no cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cairn_operator.reconcile import PodObs, collectable
from tests.unit.operator.fakes import FakeRun

RESULT = json.dumps({"protocol": 1, "status": "SUCCESS", "outputs": {"result": {"key": "ns/r/a/result", "size": 1}}})


class Storage:
    def __init__(self) -> None:
        self.down = True
        self.stored: dict[str, bytes] = {}

    def store(self, key: str, data: bytes, fmt: str) -> None:
        if self.down:
            raise ConnectionError("Could not connect to the endpoint URL: http://127.0.0.1:1/bucket")
        self.stored[key] = data


@pytest.fixture
def world() -> tuple[FakeRun, Storage]:
    store = Storage()
    run = FakeRun(refusals=0, storage=store)
    run.kube.pod_log = lambda ns, name: b"log of a\n"  # type: ignore[method-assign,assignment]
    return run, store


def test_a_failed_log_upload_is_said_on_the_step_and_retried(world: tuple[FakeRun, Storage]) -> None:
    run, store = world
    run.cycle()  # a starts
    name = run.status["steps"]["a"]["podName"]
    done = PodObs(name, "a", 1, "Succeeded", exit_code=0, message=RESULT, finished="2026-01-01T00:00:01Z")

    def pods(ns: str, r: str, steps: Any = None) -> list[PodObs]:  # a finished; b (once created) running
        made = [p["metadata"] for p in run.pods if p["metadata"]["name"] != name]
        return [done, *(PodObs(m["name"], m["labels"]["cairn.dev/step"], 1, "Running") for m in made)]

    run.kube.list_step_pods = pods  # type: ignore[method-assign,assignment]
    for _ in range(2):
        run.cycle()
    a = run.status["steps"]["a"]
    assert a["phase"] == "Succeeded" and a["outputs"]["result"]["key"] == "ns/r/a/result"  # the result is in
    assert "logs" not in a and "could not be saved to storage" in a["logError"]
    assert "ConnectionError" in a["logError"] and "attempt 1" in a["logError"]
    assert run.status["steps"]["b"]["phase"] == "Running"  # the Run goes on
    assert [e[1] for e in run.events].count("LogSaveFailed") == 1  # said once, not per cycle
    # podGC keeps the pod: its log is the only copy
    assert collectable("OnStepSuccess", run.status, [done]) == []
    store.down = False
    run.cycle()
    a = run.status["steps"]["a"]
    assert "logError" not in a and list(a["logs"]) == ["1"] and a["logs"]["1"].endswith("/a/logs/attempt-1.log")
    assert list(store.stored.values()) == [b"log of a\n"]
    assert [d.name for d in collectable("OnStepSuccess", run.status, [done])] == [name]
