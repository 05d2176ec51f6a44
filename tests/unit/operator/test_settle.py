"""What follows a Run's end, as tables: the automatic retry a failed Run gets (or not), and that the
Settler creates it once and settles the Run, over a fake API server."""

from __future__ import annotations

from typing import Any

import pytest

from cairn_operator.models import RunSpec
from cairn_operator.settle import Settler, next_retry
from tests.unit.operator.fakes import Events, FakeKube

SPEC = RunSpec.model_validate({"jobRef": {"name": "j"}, "retryPolicy": {"maxRetries": 2, "strategy": "FromFailure"}})


def retry_of(parent: str, n: int) -> dict[str, Any]:
    return {"metadata": {"name": f"root-retry-{n}"}, "spec": {"parentRun": parent}}


@pytest.mark.parametrize(
    ("name", "labels", "done", "expected"),
    [
        ("root", {}, [], ("root-retry-1", "1", "root")),  # a root Run's first retry
        ("root-rx-1", {"cairn.dev/root-run": "root"}, [retry_of("root", 1)], ("root-retry-2", "2", "root-rx-1")),
        ("root", {}, [retry_of("root", 1)], None),  # this Run was retried already: a repeat adds nothing
        ("c2", {"cairn.dev/root-run": "root"}, [retry_of("root", 1), retry_of("c1", 2)], None),  # used up
    ],
)
def test_a_failed_run_gets_its_lineages_next_retry_until_they_are_used_up(
    name: str, labels: dict[str, str], done: list[dict[str, Any]], expected: tuple[str, str, str] | None
) -> None:
    retry = next_retry("ns", name, {"name": name, "labels": labels}, SPEC, done)
    if expected is None:
        assert retry is None
        return
    assert retry is not None
    meta = retry["metadata"]
    assert (meta["name"], meta["labels"]["cairn.dev/retry"], meta["labels"]["cairn.dev/parent-run"]) == expected
    assert meta["labels"]["cairn.dev/root-run"] == "root" and meta["namespace"] == "ns"
    assert retry["spec"]["parentRun"] == name and retry["spec"]["mode"] == "FromFailure"


def test_the_settler_retries_once_and_settles() -> None:
    kube = FakeKube()
    settler = Settler(kube, Events())  # type: ignore[arg-type]
    body = {
        "metadata": {"name": "root", "namespace": "ns"},
        "spec": {"jobRef": {"name": "j"}, "retryPolicy": {"maxRetries": 2}},
        "status": {"phase": "Failed", "jobSnapshot": {"ops": []}},
    }
    for _ in range(2):  # a repeat (a crash before `settled` was written) creates nothing twice
        settler.finish_up(body)
    assert [r["metadata"]["name"] for r in kube.reexecutions] == ["root-retry-1"]
    assert kube.runs["root"]["status"] == {"settled": True}
