"""Issue 12's scale checks of a dynamic map on a real local control plane (`cairn dev up` in a temporary
directory, the operator as a process, pods run by the stand-in node, outputs in SeaweedFS).

1. creation: a Job whose `split` emits N keys (1,000 by default) and whose `train` is mapped over them;
   `train`'s pods target no node, so only the operator's creation of the N mapped pods is timed (pods/s,
   target >= 100), and the size of the Run object once every step has a status (target < 1 MiB).
2. exact resume: the same map run for real (maxParallel 50), 10 shards failing; a Reexecution
   FromFailure must create exactly 10 + 1 pods (the failed shards and the collector `report`), with
   every other shard reused in place; the child's `report` sees all N shards.

Run: .venv/bin/python bench/fanout_map.py [--shards 1000] [--failed 10]
Needs the Kubernetes binaries (`cairn dev build`). Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from operator_handoff import (
    NOWHERE,
    BenchPlane,
    G,
    PodWatch,
    V,
    canceled_run_size,
    creation_rate,
    job_doc,
    resource,
    run,
    wait_phase,
)

SPLIT = (
    'mkdir -p "$CAIRN_OUTPUT_SHARDS"; i=0; '
    'while [ $i -lt {n} ]; do echo $i > "$CAIRN_OUTPUT_SHARDS/s$i"; i=$((i+1)); done'
)
# a shard fails when its number is a multiple of N / failed (and PASS is not set: the fix of the re-execution)
TRAIN = (
    'n=$(cat "$CAIRN_INPUT_SHARD"); if [ -z "$PASS" ] && [ $((n % {every})) -eq 0 ]; then exit 1; fi; '
    'cp "$CAIRN_INPUT_SHARD" "$CAIRN_OUTPUT_RESULT"'
)
REPORT = 'ls "$CAIRN_INPUT_SCORES" | wc -l > "$CAIRN_OUTPUT_RESULT"'


def map_job(name: str, n: int, every: int, nowhere: bool) -> dict[str, Any]:
    train: dict[str, Any] = {
        "name": "train",
        "inputs": {"shard": "split.shards"},
        "command": ["sh", "-c", TRAIN.format(every=every)],
    }
    if nowhere:
        train["podTemplate"] = NOWHERE
    split = {
        "name": "split",
        "outputs": ["shards"],
        "dynamicOutputs": ["shards"],
        "command": ["sh", "-c", SPLIT.format(n=n)],
    }
    report = {"name": "report", "collect": {"scores": "train"}, "command": ["sh", "-c", REPORT]}
    return job_doc(name, [split, train, report], maxParallel=1000 if nowhere else 50)


def creation(co: Any, kube: Any, n: int) -> None:
    watch = PodWatch(kube, "default", "cairn.dev/run=map-create")
    co.create_namespaced_custom_object(G, V, "default", "jobs", map_job("map-create", n, n + 1, nowhere=True))
    co.create_namespaced_custom_object(G, V, "default", "runs", run("map-create", "map-create"))
    deadline = time.monotonic() + 600
    while sum(1 for s in watch.steps.values() if s.startswith("train[")) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    watch.stop.set()
    times = [t for p, t in watch.added.items() if watch.steps[p].startswith("train[")]
    span, rate = creation_rate(times)
    print(
        f"\n1. a {n}-way map: {len(times)} mapped pods created in {span:.2f} s = {rate:.0f} pods/s   "
        f"target >= 100 pods/s   {'met' if rate >= 100 else 'NOT met'}",
        flush=True,
    )
    size, steps = canceled_run_size(co, "map-create")
    print(
        f"   the Run object with {steps} steps: {size / 1024:.0f} KiB ({size / steps:.0f} bytes per step)   "
        f"target < 1 MiB   {'met' if size < 2**20 else 'NOT met'}",
        flush=True,
    )


def resume(co: Any, kube: Any, n: int, failed: int) -> None:
    from kubernetes import client

    every = max(1, n // failed)
    co.create_namespaced_custom_object(G, V, "default", "jobs", map_job("map-run", n, every, nowhere=False))
    t0 = time.perf_counter()
    co.create_namespaced_custom_object(G, V, "default", "runs", run("map-1", "map-run"))
    parent = wait_phase(co, "map-1", ("Succeeded", "Failed"), timeout=60 + 3 * n)
    steps = parent["status"]["steps"]
    bad = sorted(s for s, st in steps.items() if st["phase"] == "Failed")
    print(
        f"\n2. the parent: {n}-way map run for real in {time.perf_counter() - t0:.0f} s, {parent['status']['phase']}, "
        f"{len(bad)} failed shards",
        flush=True,
    )
    fix = {"train": {"env": [{"name": "PASS", "value": "1"}]}}
    rx = resource("Reexecution", "map-retry", {"parentRun": "map-1", "mode": "FromFailure", "overrides": fix})
    t1 = time.perf_counter()
    co.create_namespaced_custom_object(G, V, "default", "reexecutions", rx)
    deadline = time.monotonic() + 600
    child = None
    while time.monotonic() < deadline:
        obj = co.get_namespaced_custom_object(G, V, "default", "reexecutions", "map-retry")
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Invalid"):
            child = obj["status"].get("childRun")
            break
        time.sleep(0.5)
    pods = client.CoreV1Api(kube).list_namespaced_pod("default", label_selector=f"cairn.dev/run={child}").items
    ran = sorted(
        (p.metadata.annotations or {}).get("cairn.dev/step-key") or p.metadata.labels["cairn.dev/step"] for p in pods
    )
    final = co.get_namespaced_custom_object(G, V, "default", "runs", child) if child else {}
    cst = (final.get("status") or {}).get("steps") or {}
    reused = sum(1 for st in cst.values() if st.get("phase") == "Reused")
    want = len(bad) + 1
    size = len(json.dumps(final, separators=(",", ":")).encode())
    print(
        f"   the child Run object ({len(cst)} steps, {reused} reused, its plan in spec.execution): {size / 1024:.0f} "
        f"KiB   target < 1 MiB   {'met' if size < 2**20 else 'NOT met'}",
        flush=True,
    )
    print(
        f"   from failure: child {child} {(final.get('status') or {}).get('phase')} "
        f"in {time.perf_counter() - t1:.1f} s; "
        f"{len(ran)} pods created (target exactly {len(bad)} failed + 1 collector = {want})   "
        f"{'met' if len(ran) == want and set(ran) == {*bad, 'report'} else 'NOT met'}; {reused} steps reused",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--failed", type=int, default=10)
    parser.add_argument("--skip-resume", action="store_true")
    args = parser.parse_args()
    with BenchPlane("cairn-bench-map-", {"CAIRN_MAX_PODS": "5000"}) as plane:
        plane.start_operator()
        time.sleep(2)
        print(f"Dynamic map on a local control plane (python {sys.version.split()[0]}, {os.cpu_count()} cores)")
        creation(plane.co, plane.kube, args.shards)
        if not args.skip_resume:
            resume(plane.co, plane.kube, args.shards, args.failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
