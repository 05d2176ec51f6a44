"""Fan-out on the real control plane: a Job whose `split` emits one value per shard, `process` mapped over
them (one pod per key), `summarize` collecting; a shard fails, and a Reexecution from failure runs exactly
that shard's pod and the collector, reading every other shard's output where the parent stored it."""

from __future__ import annotations

import pickle
from typing import Any

from cairn.s3io import object_key
from tests.integration.test_operator import apply, get_run, job_of, ns, run_of, wait_phase
from tests.integration.test_reexecution import create_rx, rx, rx_phase

__all__ = ["ns"]

SHARDS = [f"shard_{i}" for i in range(4)]
FAIL = {"process": {"env": [{"name": "CAIRN_FANOUT_FAIL", "value": "shard_1"}]}}
FIXED = {"process": {"env": [{"name": "CAIRN_FANOUT_FAIL", "value": ""}]}}


def fanout_job() -> dict[str, Any]:
    ops: list[dict[str, Any]] = [
        {"name": "split", "dynamicOutputs": ["result"]},
        {"name": "process", "inputs": {"n": "split"}},
        {"name": "summarize", "collect": {"results": "process"}},
    ]
    return job_of("fanout", "cairn.examples.fanout:fanout", ops, image="localhost/cairn-step:0.1.0", maxParallel=3)


def test_a_failed_shard_is_reexecuted_alone_and_the_collector_sees_every_shard(
    cairn_operator: Any, kube: Any, core: Any, ns: str, s3: Any
) -> None:
    apply(kube, ns, fanout_job())
    apply(kube, ns, run_of("fanout", "fan-1", config={"ops": {"split": {"config": {"shards": 4}}}}, overrides=FAIL))
    parent = wait_phase(kube, ns, "fan-1", "Failed", "Succeeded", timeout=180)
    steps = parent["status"]["steps"]
    assert parent["status"]["phase"] == "Failed", steps
    assert steps["split"]["keys"] == {"result": SHARDS}
    assert {s: st["phase"] for s, st in steps.items() if s.startswith("process")} == {
        f"process[{k}]": ("Failed" if k == "shard_1" else "Succeeded") for k in SHARDS
    }
    assert steps["summarize"]["phase"] == "NotExecuted"
    pods = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=fan-1,cairn.dev/step=process").items
    assert sorted(p.metadata.annotations["cairn.dev/step-key"] for p in pods) == [f"process[{k}]" for k in SHARDS]

    # a dry run names instances; an unknown key is refused with the keys there are
    create_rx(kube, ns, rx("fan-plan", "fan-1", mode="Selected", stepSelection=["process[shard_2]"], dryRun=True))
    planned = rx_phase(kube, ns, "fan-plan", "Planned")
    assert planned["status"]["plan"]["steps"] == [{"name": "process[shard_2]", "reason": "selected"}]
    # the collector needs every shard: selecting it with a failed shard's output missing is refused, saying which
    create_rx(kube, ns, rx("fan-all", "fan-1", mode="Selected", stepSelection=["process[shard_2]*"], dryRun=True))
    invalid = rx_phase(kube, ns, "fan-all", "Invalid")
    assert "input 'results[shard_1]' reads output 'result' of step 'process[shard_1]'" in invalid["status"]["message"]
    create_rx(kube, ns, rx("fan-typo", "fan-1", mode="Selected", stepSelection=["process[shard_9]"]))
    refused = rx_phase(kube, ns, "fan-typo", "Invalid")
    assert "process[shard_9] (process has keys shard_0, shard_1, shard_2, shard_3)" in refused["status"]["message"]

    # the parent's overrides are not inherited: a plain from-failure runs process without CAIRN_FANOUT_FAIL
    create_rx(kube, ns, rx("fan-retry", "fan-1"))
    done = rx_phase(kube, ns, "fan-retry", "Succeeded", "Failed", timeout=180)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["plan"]["steps"] == [
        {"name": "process[shard_1]", "reason": "failed"},
        {"name": "summarize", "reason": "downstream-of:process[shard_1]"},
    ]
    child = get_run(kube, ns, done["status"]["childRun"])
    assert "overrides" not in child["spec"] and child["spec"]["config"] == get_run(kube, ns, "fan-1")["spec"]["config"]
    child_pods = core.list_namespaced_pod(ns, label_selector=f"cairn.dev/run={child['metadata']['name']}").items
    ran = sorted(
        (p.metadata.annotations or {}).get("cairn.dev/step-key") or p.metadata.labels["cairn.dev/step"]
        for p in child_pods
    )
    assert ran == ["process[shard_1]", "summarize"], "exactly the failed shard and the collector"
    cs = child["status"]["steps"]
    assert cs["process[shard_0]"]["phase"] == "Reused" and cs["process[shard_0]"]["sourceRun"] == "fan-1"
    assert cs["process[shard_0]"]["outputs"]["result"]["key"] == steps["process[shard_0]"]["outputs"]["result"]["key"]
    key = cs["summarize"]["outputs"]["result"]["key"]
    body = s3.get_object(Bucket=s3.bucket, Key=object_key("cairn", key))["Body"].read()
    assert pickle.loads(body) == 1 + 4 + 9 + 16
    assert get_run(kube, ns, "fan-1")["status"] == parent["status"]  # the parent is never modified

    # re-running the dynamic step (now 3 shards): the plan says its map is re-run whole, over the new keys
    create_rx(
        kube, ns, rx("fan-remap", "fan-1", mode="FromSelected", stepSelection=["split"], overrides=FIXED,
                     config={"ops": {"split": {"config": {"shards": 3}}}}),
    )  # fmt: skip
    remap = rx_phase(kube, ns, "fan-remap", "Succeeded", "Failed", timeout=180)
    assert remap["status"]["phase"] == "Succeeded", remap["status"]
    assert remap["status"]["plan"]["remapped"] == {"split.result": SHARDS}
    assert [s["name"] for s in remap["status"]["plan"]["steps"]] == ["split", "process[*]", "summarize"]
    again = get_run(kube, ns, remap["status"]["childRun"])["status"]["steps"]
    assert sorted(s for s in again if s.startswith("process")) == [f"process[shard_{i}]" for i in range(3)]
    assert all(again[f"process[shard_{i}]"]["phase"] == "Succeeded" for i in range(3))
