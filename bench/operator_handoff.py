"""Operator benchmarks on a real local control plane (`cairn dev up` in a temporary directory).

Measures, and prints next to the targets:
1. handoff: over a 100-step chain, the time from a step's pod reaching Succeeded (as a watch sees it)
   to the next step's pod being created (its ADDED event), p50 and p99;
2. pod creation rate for a 500-step fan-out (the 499 fan pods are created as fast as the operator can;
   they target no node, so only creation is measured);
3. the operator's peak RSS (VmHWM) with 100 live Runs.
With --fan 1000 it is issue 12's 1,000-way fan-out: the creation rate, and the size of the Run object
once every step has a status (per-step detail is what grows it).

Run: .venv/bin/python bench/operator_handoff.py [--chain 100] [--fan 500] [--runs 100] [--baseline REV]
With --baseline REV (e.g. the commit before a change) the operator of that revision is measured first on the
same control plane, then this checkout's, and both are printed side by side with their ratio.
Needs the Kubernetes binaries (`cairn dev build`). Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
G, V = "cairn.dev", "v1alpha1"
NOWHERE = {"nodeSelector": {"cairn.dev/bench-nowhere": "true"}}


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def install_crds(kube: Any) -> None:
    from kubernetes import client

    ext = client.ApiextensionsV1Api(kube)
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        ext.create_custom_resource_definition(doc)
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        while not any(
            c.type == "Established" and c.status == "True"
            for c in (ext.read_custom_resource_definition(name).status.conditions or [])
        ):
            time.sleep(0.1)


class PodWatch:
    """Records, in this process's clock, when each pod was first ADDED and first seen Succeeded."""

    def __init__(self, kube: Any, namespace: str, selector: str) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(kube)
        self.ns, self.selector = namespace, selector
        self.added: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self.steps: dict[str, str] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        while not self.stop.is_set():
            try:
                self._stream(watch.Watch())
            except ApiException:  # e.g. 504 "too large resource version" right after a restart: watch again
                time.sleep(0.1)

    def _stream(self, w: Any) -> None:
        for ev in w.stream(
            self.core.list_namespaced_pod, self.ns, label_selector=self.selector, timeout_seconds=5, _request_timeout=10
        ):
            now = time.perf_counter()
            pod = ev["object"]
            name = pod.metadata.name
            annotated = (pod.metadata.annotations or {}).get("cairn.dev/step-key")  # a mapped op's op[key]
            self.steps[name] = annotated or pod.metadata.labels.get("cairn.dev/step", "")
            self.added.setdefault(name, now)
            if pod.status.phase == "Succeeded":
                self.succeeded.setdefault(name, now)
            if self.stop.is_set():
                w.stop()


def chain_job(n: int, name: str = "chain") -> dict[str, Any]:
    ops: list[dict[str, Any]] = [{"name": "s0", "command": ["sh", "-c", ': > "$CAIRN_OUTPUT_RESULT"']}]
    for i in range(1, n):
        ops.append(
            {"name": f"s{i}", "inputs": {"x": f"s{i - 1}"}, "command": ["sh", "-c", ': > "$CAIRN_OUTPUT_RESULT"']}
        )
    return job_doc(name, ops, maxParallel=10)


def fan_job(n: int, name: str = "fan") -> dict[str, Any]:
    ops: list[dict[str, Any]] = [{"name": "src", "command": ["sh", "-c", ': > "$CAIRN_OUTPUT_RESULT"']}]
    for i in range(1, n):
        ops.append({"name": f"f{i}", "inputs": {"x": "src"}, "command": ["true"], "podTemplate": NOWHERE})
    return job_doc(name, ops, maxParallel=1000)


def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{G}/{V}", "kind": kind, "metadata": {"name": name}, "spec": spec}


def job_doc(name: str, ops: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """A bench Job: image `x` (the stand-in node ignores images), storage from the Secret cairn-s3."""
    return resource("Job", name, {"image": "x", "storage": {"secretRef": {"name": "cairn-s3"}}, **spec, "ops": ops})


def run(name: str, job: str) -> dict[str, Any]:
    return resource("Run", name, {"jobRef": {"name": job}})


def creation_rate(added: list[float]) -> tuple[float, float]:
    """(seconds from the first to the last, pods per second) of pods' ADDED times."""
    times = sorted(added)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return span, ((len(times) - 1) / span if span else 0.0)


def canceled_run_size(co: Any, name: str) -> tuple[int, int]:
    """Cancel the Run `name` and, once Canceled, its object's size in bytes (as JSON) and its number of steps."""
    co.patch_namespaced_custom_object(G, V, "default", "runs", name, {"spec": {"cancel": True}})
    done = wait_phase(co, name, ("Canceled",), timeout=300)
    return len(json.dumps(done, separators=(",", ":")).encode()), len(done["status"]["steps"])


def wait_phase(co: Any, name: str, phases: tuple[str, ...], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj: dict[str, Any] = co.get_namespaced_custom_object(G, V, "default", "runs", name)
        if (obj.get("status") or {}).get("phase") in phases:
            return obj
        time.sleep(0.2)
    raise TimeoutError(f"run {name} did not reach {phases} in {timeout}s")


def rss_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmHWM", "VmRSS")):
            k, v = line.split(":")
            out[k] = int(v.split()[0])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain", type=int, default=100)
    parser.add_argument("--fan", type=int, default=500)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure the operator of git revision REV (its operator/ and runtime/), first, on the same "
        "control plane, and print both side by side with their ratio",
    )
    parser.add_argument("--baseline-last", action="store_true", help="measure the baseline after this checkout")
    args = parser.parse_args()

    with BenchPlane("cairn-bench-op-", {"CAIRN_MAX_PODS": "5000"}) as plane:
        print(
            f"Operator benchmarks on a local control plane (python {sys.version.split()[0]}, "
            f"{__import__('os').cpu_count()} cores); cluster in {plane.tmp}"
        )
        sides: dict[str, dict[str, float]] = {}
        order: list[tuple[str, Path | None]] = [("this checkout", None)]
        if args.baseline:  # later sides meet a busier API server (etcd's history): --baseline-last swaps them
            base: tuple[str, Path | None] = (args.baseline, checkout(args.baseline, plane.tmp / "baseline"))
            order = [*order, base] if args.baseline_last else [base, *order]
        for i, (label, source) in enumerate(order):
            print(f"\n== {label} ==")
            sides[label] = measure(plane, args, f"s{i}", source)
        if args.baseline:
            side_by_side(args.baseline, sides)
    return 0


def measure(plane: BenchPlane, args: argparse.Namespace, tag: str, source: Path | None) -> dict[str, float]:
    """The three measurements with the operator of `source` (None: this checkout)."""
    kube, co = plane.kube, plane.co
    operator = plane.start_operator(source)
    time.sleep(2)
    out: dict[str, float] = {}
    if args.chain:  # 1. Handoff over a chain.
        out |= handoff(kube, co, args.chain, tag)
    if args.fan:  # 2. Pod creation rate for a fan-out.
        out |= fan_out(kube, co, args.fan, tag)
    if args.runs:  # 3. Peak RSS with many live Runs: a fresh operator, its peak that of this scenario alone.
        plane.stop_operator(operator)
        operator = plane.start_operator(source)
        out |= memory(co, args.runs, operator.pid, tag)
    clear(plane)  # while its operator runs: it lets go of their finalizers
    plane.stop_operator(operator)
    return out


def checkout(rev: str, into: Path) -> Path:
    """operator/ and runtime/ of git revision `rev`, extracted under `into`."""
    import subprocess

    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "operator", "runtime"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def clear(plane: BenchPlane) -> None:
    """Delete the Runs, Jobs and step pods of a side, so the next operator starts on an empty namespace (its
    operator still running: kopf's finalizers on the Runs are its to remove)."""
    from kubernetes import client

    core = client.CoreV1Api(plane.kube)
    for plural in ("runs", "jobs"):
        plane.co.delete_collection_namespaced_custom_object(G, V, "default", plural)
    core.delete_collection_namespaced_pod("default", label_selector="cairn.dev/run", grace_period_seconds=0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        left = plane.co.list_namespaced_custom_object(G, V, "default", "runs")["items"]
        if not left and not core.list_namespaced_pod("default", label_selector="cairn.dev/run").items:
            return
        time.sleep(0.5)
    raise TimeoutError("the baseline's objects were not deleted in 120 s")


def side_by_side(baseline: str, sides: dict[str, dict[str, float]]) -> None:
    old, new = sides[baseline], sides["this checkout"]
    print(f"\n{'':32} {baseline[:14]:>14} {'this checkout':>14} {'ratio':>7}")
    for key in new:
        a, b = old.get(key), new[key]
        ratio = f"{b / a:7.2f}" if a else "      -"
        print(f"{key:32} {a if a is not None else float('nan'):14.1f} {b:14.1f} {ratio}")


class BenchPlane:
    """A local control plane for a bench (`cairn dev up` in a temporary directory, the CRDs applied) and
    the operators it starts; everything is stopped on leaving the `with`, also after an error."""

    def __init__(self, prefix: str, env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix))
        self.extra_env = dict(env or {})
        self.operators: list[Any] = []

    def __enter__(self) -> BenchPlane:
        from kubernetes import client

        from cairn_dev.cluster import Cluster

        self.cluster = Cluster(self.tmp / "cluster")
        self.cluster.up(say=lambda m: None)
        try:
            self.kube = self.cluster.api()
            install_crds(self.kube)
            self.co = client.CustomObjectsApi(self.kube)
        except BaseException:
            self.cluster.down(say=lambda m: None)
            raise
        self.env = {
            "KUBECONFIG": str(self.cluster.kubeconfig),
            **self.extra_env,
            "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        }
        return self

    def start_operator(self, source: Path | None = None) -> Any:
        """This checkout's operator, or (`source`) the one whose operator/ and runtime/ are there."""
        from cairn_dev import procs

        env = dict(self.env)
        if source is not None:  # its packages before the installed (editable) ones
            env["PYTHONPATH"] = f"{source / 'operator'}:{source / 'runtime'}"
        rec = procs.start(
            "cairn-operator",
            [sys.executable, "-m", "cairn_operator", "--liveness", ""],
            self.tmp / "operator.log",
            env=env,
            cwd=source or ROOT,
        )
        self.operators.append(rec)
        return rec

    def stop_operator(self, rec: Any) -> None:
        from cairn_dev import procs

        procs.stop(rec, grace=10)
        self.operators.remove(rec)

    def __exit__(self, *_: object) -> None:
        for rec in list(self.operators):
            self.stop_operator(rec)
        self.cluster.down(say=lambda m: None)


def handoff(kube: Any, co: Any, n: int, tag: str = "1") -> dict[str, float]:
    watch = PodWatch(kube, "default", f"cairn.dev/run=chain-{tag}")
    co.create_namespaced_custom_object(G, V, "default", "jobs", chain_job(n, f"chain-{tag}"))
    t0 = time.perf_counter()
    co.create_namespaced_custom_object(G, V, "default", "runs", run(f"chain-{tag}", f"chain-{tag}"))
    final = wait_phase(co, f"chain-{tag}", ("Succeeded", "Failed"), timeout=60 + 5 * n)
    total = time.perf_counter() - t0
    watch.stop.set()
    by_step = {watch.steps[p]: p for p in watch.added}
    handoffs = []
    for i in range(n - 1):
        a, b = by_step.get(f"s{i}"), by_step.get(f"s{i + 1}")
        if a in watch.succeeded and b in watch.added:
            handoffs.append((watch.added[b] - watch.succeeded[a]) * 1000)
    p50, p99 = pct(handoffs, 50), pct(handoffs, 99)
    print(
        f"\n1. handoff over a {n}-step chain (run {final['status']['phase']} in {total:.1f} s, "
        f"{len(handoffs)} handoffs measured)"
    )
    print(f"   p50 {p50:7.1f} ms   target <= 50 ms   {'met' if p50 <= 50 else 'NOT met'}")
    print(f"   p99 {p99:7.1f} ms   target <= 250 ms  {'met' if p99 <= 250 else 'NOT met'}")
    print(f"   mean {statistics.mean(handoffs):.1f} ms, max {max(handoffs):.1f} ms", flush=True)
    return {"handoff p50 (ms)": p50, "handoff p99 (ms)": p99, "handoff mean (ms)": statistics.mean(handoffs)}


def fan_out(kube: Any, co: Any, n: int, tag: str = "1") -> dict[str, float]:
    watch = PodWatch(kube, "default", f"cairn.dev/run=fan-{tag}")
    co.create_namespaced_custom_object(G, V, "default", "jobs", fan_job(n, f"fan-{tag}"))
    co.create_namespaced_custom_object(G, V, "default", "runs", run(f"fan-{tag}", f"fan-{tag}"))
    deadline = time.monotonic() + 300
    while len(watch.added) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    watch.stop.set()
    fan_times = [t for p, t in watch.added.items() if watch.steps[p] != "src"]
    span, rate = creation_rate(fan_times)
    print(
        f"\n2. pod creation for a {n}-step fan-out: {len(fan_times)} fan pods in {span:.2f} s = {rate:.0f} "
        f"pods/s   target >= 100 pods/s   {'met' if rate >= 100 else 'NOT met'}",
        flush=True,
    )
    size, _ = canceled_run_size(co, f"fan-{tag}")
    print(
        f"   the Run object with {n} steps: {size / 1024:.0f} KiB ({size / n:.0f} bytes per step)   target < 1 MiB "
        f"(the API server refuses about 1.5 MiB)   {'met' if size < 2**20 else 'NOT met'}",
        flush=True,
    )
    return {"fan-out creation (pods/s)": rate, "fan-out Run object (KiB)": size / 1024}


def memory(co: Any, runs: int, pid: int, tag: str = "1") -> dict[str, float]:
    pending = job_doc(f"waits-{tag}", [{"name": "never", "command": ["true"], "podTemplate": NOWHERE}])
    co.create_namespaced_custom_object(G, V, "default", "jobs", pending)
    for i in range(runs):
        co.create_namespaced_custom_object(G, V, "default", "runs", run(f"live-{tag}-{i}", f"waits-{tag}"))
    deadline = time.monotonic() + 300
    live: list[Any] = []
    while time.monotonic() < deadline:
        items = co.list_namespaced_custom_object(G, V, "default", "runs")["items"]
        live = [
            r
            for r in items
            if r["metadata"]["name"].startswith(f"live-{tag}-") and (r.get("status") or {}).get("phase") == "Running"
        ]
        if len(live) >= runs:
            break
        time.sleep(0.5)
    time.sleep(5)  # several resync cycles of every Run
    mem = rss_kb(pid)
    print(
        f"\n3. operator memory with {len(live)} live Runs: RSS {mem['VmRSS'] / 1024:.0f} MB, "
        f"peak {mem['VmHWM'] / 1024:.0f} MB   target <= 150 MB   "
        f"{'met' if mem['VmHWM'] / 1024 <= 150 else 'NOT met'}",
        flush=True,
    )
    return {"RSS, live Runs (MB)": mem["VmRSS"] / 1024, "peak RSS (MB)": mem["VmHWM"] / 1024}


if __name__ == "__main__":
    sys.exit(main())
