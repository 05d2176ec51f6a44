"""`cairn ui` draws a fan-out run per instance: `op[key]` boxes wired to the dynamic step and the collector,
on a local instance and from a Kubernetes Job spec with the keys a Run's status knows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cairn import Instance, execute_job, reconstructable
from cairn.examples.fanout import FAIL_ENV, fanout
from cairn.ui.kube import located
from cairn.ui.local import LocalSource
from cairn.ui.sources import upstream_of_ops

SHARDS = [f"process[shard_{i}]" for i in range(3)]


def test_a_local_fan_out_run_is_drawn_per_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAIL_ENV, "shard_1")
    result = execute_job(reconstructable(fanout), instance=Instance.local(tmp_path))
    run = LocalSource(tmp_path).get_run(result.run_id)
    assert run["graph"] == {"split": [], **{key: ["split"] for key in SHARDS}, "summarize": SHARDS}
    phases = {s["name"]: s["phase"] for s in run["steps"]}
    assert phases["process[shard_1]"] == "Failed" and phases["summarize"] == "NotExecuted"


def test_a_job_specs_graph_expands_with_the_keys_of_the_runs_status() -> None:
    ops: list[dict[str, Any]] = [
        {"name": "split", "dynamicOutputs": ["result"]},
        {"name": "process", "inputs": {"n": "split"}},
        {"name": "summarize", "collect": {"results": "process"}},
    ]
    assert upstream_of_ops(ops) == {"split": [], "process[*]": ["split"], "summarize": ["process[*]"]}
    keys = {"split": {"keys": {"result": ["shard_0", "shard_1", "shard_2"]}}}
    assert upstream_of_ops(ops, keys) == {"split": [], **{key: ["split"] for key in SHARDS}, "summarize": SHARDS}
    assert upstream_of_ops([{"name": "a"}, {"name": "b", "inputs": {"x": "a.out"}}]) == {"a": [], "b": ["a"]}


def test_a_large_runs_output_uri_is_made_from_its_storage() -> None:
    ref = {"key": "ns/r.1/s/result", "etag": "e"}
    assert located(ref, {"bucket": "b", "prefix": "cairn"})["uri"] == "s3://b/cairn/ns/r.1/s/result"
    assert "uri" not in located(ref, None)


@pytest.mark.parametrize("keys", [{}, {("split", "result"): ("a", "b")}, {("split", "result"): ()}])
def test_the_uis_graph_of_a_job_spec_is_the_operators(keys: dict[tuple[str, str], tuple[str, ...]]) -> None:
    """One job graph: the UI reads a Job spec's ops with the runtime's JobGraph, as the operator does."""
    from cairn_operator.graph import build
    from cairn_operator.models import JobSpec

    ops: list[dict[str, Any]] = [
        {"name": "split", "dynamicOutputs": ["result"], "command": ["x"]},
        {"name": "process", "inputs": {"n": "split"}, "outputs": ["result", "log"], "command": ["x"]},
        {"name": "report", "inputs": {"log": "process.log"}, "command": ["x"]},
        {"name": "summarize", "collect": {"results": "process"}, "command": ["x"]},
    ]
    spec = JobSpec.model_validate({"image": "i", "storage": {"secretRef": {"name": "s"}}, "ops": ops})
    operator = build(spec).job.concrete(keys)
    status = {"split": {"keys": {"result": list(keys[("split", "result")])}}} if keys else {}
    ui = upstream_of_ops(ops, status)
    assert set(ui) == set(operator.steps)
    assert ui == {s: list(dict.fromkeys(up for up, _ in operator.deps[s].values())) for s in ui}
