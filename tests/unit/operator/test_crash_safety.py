"""The handlers' crash-safety pieces without a cluster: the operator-wide pod slots under many threads,
a parent's protection released (and a give-up said, never silent), the fault-injection hook."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from cairn_operator.blocked import merge_patch
from cairn_operator.limits import PodSlots
from cairn_operator.ports import Faults
from cairn_operator.runs import RunController
from cairn_operator.rxdecide import PROTECT
from cairn_operator.settle import RELEASE_TRIES, ReleaseConflict
from tests.unit.operator.fakes import Events, FakeKube, controller


def test_the_pod_limit_holds_across_threads() -> None:
    """Sixteen cycle threads reserve, create (hold) and see pods finish at once: the count of pods
    reserved or unfinished never exceeds the limit, and every slot comes back."""
    slots = PodSlots(limit=7)
    high = [0]
    lock = threading.Lock()
    created: list[str] = []

    def note() -> None:
        used = slots.used()
        assert used <= slots.limit
        with lock:
            high[0] = max(high[0], used)

    def worker(n: int) -> None:
        rng = random.Random(n)
        for i in range(200):
            with slots.reserve(rng.randint(1, 4)) as r:
                note()
                pods = [f"ns/p-{n}-{i}-{k}" for k in range(rng.randint(0, r.granted))]
                r.hold(pods)
                note()
            for p in pods:
                if rng.random() < 0.2:
                    slots.release(p)  # its creation failed
                else:
                    slots.seen(p, active=True)
                    with lock:
                        created.append(p)
                note()
            time.sleep(0)
            with lock:
                done, created[:] = created[: len(created) // 2], created[len(created) // 2 :]
            for p in done:
                slots.seen(p, active=False)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 0 < high[0] <= slots.limit
    for p in created:
        slots.seen(p, active=False)
    assert slots.used() == 0


@pytest.mark.parametrize(
    ("active", "held", "wanted", "granted"),
    [
        (0, 0, 3, 3),
        (5, 0, 3, 2),
        (5, 2, 3, 0),
        (7, 0, 1, 0),
        (0, 0, 0, 0),
    ],
)
def test_reserve_gives_only_free_slots(active: int, held: int, wanted: int, granted: int) -> None:
    slots = PodSlots(limit=7)
    for i in range(active):
        slots.seen(f"a/{i}", active=True)
    with slots.reserve(held) as r:
        r.hold([f"h/{i}" for i in range(held)])
    with slots.reserve(wanted) as r:
        assert r.granted == granted
    assert slots.used() == active + held  # the unused reservation came back


def test_holding_more_pods_than_reserved_is_refused() -> None:
    slots = PodSlots(limit=2)
    with slots.reserve(1) as r, pytest.raises(ValueError):
        r.hold(["a/1", "a/2"])
    assert slots.used() == 0


def run(name: str, finalizers: list[str], phase: str | None = None, parent: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": "1",
            "finalizers": finalizers,
            "labels": {"cairn.dev/parent-run": parent} if parent else {},
        },
        "status": {"phase": phase} if phase else {},
    }


@pytest.fixture
def world() -> dict[str, Any]:
    fake = FakeKube()
    state: dict[str, Any] = {"runs": fake.runs, "writes": [], "events": [], "conflicts": 0, "kube": fake}
    recorder = Events()
    state["events"] = recorder.posted

    def set_finalizers(namespace: str, name: str, finalizers: list[str], rv: str) -> None:
        if state["conflicts"]:
            state["conflicts"] -= 1
            raise ApiException(status=409, reason="Conflict")
        state["writes"].append((name, finalizers))
        state["runs"][name]["metadata"]["finalizers"] = finalizers

    fake.set_run_finalizers = set_finalizers  # type: ignore[method-assign,assignment]
    state["ctl"] = controller(fake, recorder)
    return state


def release(world: dict[str, Any], parent: str, leaving: str | None = None) -> None:
    ctl: RunController = world["ctl"]
    world["kube"].reexecutions = world.get("rxs", [])
    ctl.settler.release_parent("ns", parent, leaving)


P = PROTECT


@pytest.mark.parametrize(
    ("children", "leaving", "released"),
    [
        ([], None, True),  # the only child was deleted: nothing live remains
        ([("c1", "Running")], None, False),
        ([("c1", "Running")], "c1", True),  # the child finishing (or going) now
        ([("c1", "Failed"), ("c2", "Succeeded")], None, True),
        ([("c1", "Failed"), ("c2", None)], None, False),  # a child not started yet is live
    ],
)
def test_a_parent_is_released_once_no_live_child_remains(
    world: dict[str, Any], children: list[tuple[str, str | None]], leaving: str | None, released: bool
) -> None:
    world["runs"]["p"] = run("p", ["other", P], "Failed")
    for name, phase in children:
        world["runs"][name] = run(name, [], phase, parent="p")
    release(world, "p", leaving)
    assert world["writes"] == ([("p", ["other"])] if released else [])


@pytest.mark.parametrize(
    "rx_status",
    [
        {},  # never made its child (its create failed, say): it does not hold the parent
        {"phase": "Running", "childRun": "c"},  # its child was made, and is gone
        {"phase": "Failed"},
    ],
)
def test_a_reexecution_without_a_live_child_never_holds_the_parent(
    world: dict[str, Any], rx_status: dict[str, Any]
) -> None:
    world["runs"]["p"] = run("p", [P], "Failed")
    world["rxs"] = [{"metadata": {"name": "rx"}, "spec": {"parentRun": "p"}, "status": rx_status}]
    release(world, "p")
    assert world["writes"] == [("p", [])]


def test_a_child_being_deleted_is_not_live(world: dict[str, Any]) -> None:
    world["runs"]["p"] = run("p", [P], "Failed")
    world["runs"]["c"] = run("c", [P], "Running", parent="p")
    world["runs"]["c"]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    release(world, "p")
    assert world["writes"] == [("p", [])]


def test_conflicts_are_retried_then_said_not_swallowed(world: dict[str, Any]) -> None:
    world["runs"]["p"] = run("p", [P], "Failed")
    world["conflicts"] = 2
    release(world, "p")
    assert world["writes"] == [("p", [])] and world["events"] == []
    world["runs"]["p"] = run("p", [P], "Failed")
    world["writes"], world["conflicts"] = [], RELEASE_TRIES
    with pytest.raises(ReleaseConflict):
        release(world, "p")
    assert world["writes"] == []
    assert [(e[0], e[1]) for e in world["events"]] == [("Warning", "FinalizerReleaseConflict")]


@pytest.mark.parametrize(
    ("faults", "scope", "point", "namespace", "exits"),
    [
        ({"exit-before:pod-delete"}, None, "exit-before:pod-delete", "a", True),
        ({"exit-before:pod-delete"}, "b", "exit-before:pod-delete", "a", False),
        ({"exit-before:pod-delete"}, "a", "exit-before:pod-delete", "a", True),
        ({"exit-after:run-failed"}, None, "exit-before:pod-delete", "a", False),
        (set(), None, "exit-after:status-write", "a", False),
    ],
)
def test_the_fault_hook_exits_only_where_asked(
    faults: set[str], scope: str | None, point: str, namespace: str, exits: bool
) -> None:
    exited: list[str] = []
    Faults(frozenset(faults), scope, exited.append)(point, namespace)
    assert len(exited) == (1 if exits else 0)
    assert all(point in m and namespace in m for m in exited)


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        # Unchanged, however deep: no patch at all (an empty patch is not sent: no write per idle cycle).
        ({"a": {"b": {"c": 1}}, "d": [1]}, {"a": {"b": {"c": 1}}, "d": [1]}, {}),
        ({"steps": {"s": {"phase": "Running"}}}, {"steps": {"s": {"phase": "Running"}}}, {}),
        # Only what changed, at its depth.
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}, {"a": {"c": 3}}),
        ({"a": {"b": 1}}, {"a": {"b": 1}, "e": 2}, {"e": 2}),
        # Removed keys are deleted with null, also inside a mapping.
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}, {"a": {"c": None}}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
        # A mapping that became empty deletes its keys; a value that became a mapping replaces it.
        ({"a": {"b": 1}}, {"a": {}}, {"a": {"b": None}}),
        ({"a": 1}, {"a": {"b": 1}}, {"a": {"b": 1}}),
    ],
)
def test_merge_patch_holds_only_changes(old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any]) -> None:
    assert merge_patch(old, new) == patch
