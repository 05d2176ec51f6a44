"""`cairn k8s reexecute --dry-run` leaves nothing behind: each dry-run Reexecution is deleted once its plan
is read, also after a timeout, an API error or Ctrl-C while waiting (a fake API, a fake clock)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from cairn.k8s import await_plans


class FakeApi:
    """Reexecutions whose status moves through `phases` (one per read); deletes recorded."""

    def __init__(self, phases: dict[str, list[str | None]], fail_on_get: BaseException | None = None) -> None:
        self.phases = {name: iter(seq) for name, seq in phases.items()}
        self.last: dict[str, str | None] = {}
        self.deleted: list[str] = []
        self.fail_on_get = fail_on_get

    def get_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> Any:
        assert (group, version, ns, plural) == ("cairn.dev", "v1alpha1", "ns", "reexecutions")
        if self.fail_on_get is not None:
            raise self.fail_on_get
        self.last[name] = next(self.phases[name], self.last.get(name))
        phase = self.last[name]
        return {"status": {"phase": phase, "message": f"{name} is {phase}"} if phase else {}}

    def delete_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> Any:
        self.deleted.append(name)
        if name == "gone":
            raise ApiException(status=404)
        return {}


def ticking(step: float = 1.0) -> Iterator[float]:
    t = 0.0
    while True:
        yield t
        t += step


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        ({"a": [None, "Pending", "Planned"]}, {"a": "Planned"}),
        ({"a": ["Invalid"], "b": [None, "Planned"]}, {"a": "Invalid", "b": "Planned"}),
        ({"a": ["Failed"]}, {"a": "Failed"}),  # e.g. MissingOutputs
        ({"gone": ["Planned"]}, {"gone": "Planned"}),  # already deleted by someone: fine
        ({"a": [None]}, {"a": "Pending"}),  # never planned: the timeout says so, and it is deleted all the same
    ],
)
def test_each_dry_run_is_read_then_deleted(phases: dict[str, list[str | None]], expected: dict[str, str]) -> None:
    api = FakeApi(phases)
    clock = ticking()
    got = await_plans(api, "ns", list(phases), timeout=10, clock=lambda: next(clock), pause=lambda s: None)
    assert {n: st["phase"] for n, st in got.items()} == expected
    assert api.deleted == list(phases)
    if expected == {"a": "Pending"}:
        assert got["a"]["message"] == "no plan after 10 s"


@pytest.mark.parametrize("error", [KeyboardInterrupt(), ApiException(status=500)])
def test_a_wait_that_fails_still_deletes_every_dry_run(error: BaseException) -> None:
    api = FakeApi({"a": ["Planned"], "b": ["Planned"]}, fail_on_get=error)
    with pytest.raises(type(error)):
        await_plans(api, "ns", ["a", "b"], clock=lambda: 0.0, pause=lambda s: None)
    assert api.deleted == ["a", "b"]


def test_another_delete_error_is_raised_after_trying_every_one() -> None:
    class Refusing(FakeApi):
        def delete_namespaced_custom_object(self, *args: str) -> Any:
            self.deleted.append(args[-1])
            raise ApiException(status=403)

    api = Refusing({"a": ["Planned"], "b": ["Planned"]})
    with pytest.raises(ApiException):
        await_plans(api, "ns", ["a", "b"], clock=lambda: 0.0, pause=lambda s: None)
    assert api.deleted == ["a", "b"]
