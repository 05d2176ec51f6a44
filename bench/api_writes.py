"""API writes per step transition, counted by the real kube-apiserver of a local control plane.

Starts a cluster (`cairn dev up` in a temporary directory, stand-in node), applies crds/*.yaml, starts
the operator (`python -m cairn_operator`) and reads the API server's `/metrics` (admin client cert of
the cluster's kubeconfig; counter `apiserver_request_total{verb, resource, subresource}`) before and
after each scenario. A write is a request with verb POST, PUT, PATCH, DELETE or APPLY, whatever its
response code (refused and conflicting writes cost the server too; the failed ones are shown).

(a) a 20-step chain Job run to success (op i: `sh -c 'echo x > $CAIRN_OUTPUT_RESULT'`, output `result`,
    input the previous op's). A *transition* is one step going Pending -> Running -> Succeeded, so a
    run of N executed steps has N transitions and writes per transition = writes / N. The window opens
    after the Job exists and closes once the Run is Succeeded and the writes have settled; the bench's
    own create of the Run (1 POST runs) is left out. Target: the Run's own writes (runs/status patches
    + runs patches) <= 3 per transition.
(b) an idle live Run (one op that sleeps 30 s): writes during 20 s while its pod runs, from 1 s after
    the operator recorded the step as started. Target: 0 on runs/status.

A watch on each Run also counts the requests that changed it (a merge patch that changes nothing is
still a write request to the server, and is counted as one; the watch tells them apart).
The counter has no client label: runs and runs/status are written by the operator only (the bench's
create excepted), pods by the operator (create, delete), the scheduler (pods/binding) and the node
(pods/status), events by the operator (kopf) and the scheduler; events are attributed by listing them.
Numbers are for the operator in the working tree when it runs. Nothing is asserted.

Run: .venv/bin/python bench/api_writes.py [--steps 20] [--idle 20]
Needs the Kubernetes binaries (`cairn dev build`). Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

# The handoff bench's helpers (CRD install, pod watch, Run manifest, wait): bench/ is not a package.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from operator_handoff import BenchPlane, G, PodWatch, V, job_doc, pct, run, wait_phase

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})
#: (resource, subresource) rows of the table, with who can write them in this cluster.
ROWS: list[tuple[str, str, str]] = [
    ("runs", "", "operator: labels, finalizers (cairn's and kopf's)"),
    ("runs", "status", "operator: status merge patches"),
    ("pods", "", "operator: create (and podGC delete)"),
    ("pods", "binding", "scheduler"),
    ("pods", "status", "node (cairn-local)"),
    ("events", "", "operator (kopf) + scheduler + node"),
    ("reexecutions", "", "operator (retryPolicy) / users"),
    ("reexecutions", "status", "operator"),
]
Key = tuple[str, str, str, bool]  # (verb, resource, subresource, failed)
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(kube: Any) -> Counter[Key]:
    """apiserver_request_total of the API server, summed over group, version, scope and component; a
    request is `failed` when its code is 4xx/5xx."""
    resp = kube.call_api(
        "/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True
    )
    text = resp.data.decode()
    out: Counter[Key] = Counter()
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m is None:
            continue
        labels = dict(_LABEL.findall(m["labels"]))
        failed = labels.get("code", "200")[:1] in ("4", "5")
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""), failed)
        out[key] += int(float(m["value"]))
    return out


def writes(before: Counter[Key], after: Counter[Key]) -> dict[tuple[str, str], tuple[int, int, Counter[str]]]:
    """(resource, subresource) -> (writes, failed writes, writes by verb) between two scrapes."""
    out: dict[tuple[str, str], tuple[int, int, Counter[str]]] = {}
    for key in set(before) | set(after):
        verb, resource, sub, failed = key
        n = after[key] - before[key]
        if verb not in WRITE_VERBS or n <= 0:
            continue
        total, bad, verbs = out.get((resource, sub), (0, 0, Counter()))
        verbs[verb] += n
        out[(resource, sub)] = (total + n, bad + (n if failed else 0), verbs)
    return out


def settle(kube: Any, quiet: float = 2.0, timeout: float = 30.0) -> Counter[Key]:
    """Scrape until no write on runs, runs/status or pods happened for `quiet` seconds."""
    last = scrape(kube)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = scrape(kube)
        moved = writes(last, now)
        if not any(k in moved for k in (("runs", ""), ("runs", "status"), ("pods", ""), ("pods", "status"))):
            return now
        last = now
    return last


class RunChanges:
    """Counts, from a watch, the changes of one Run that reached the API server's storage: status
    changes (a status PATCH that changes nothing is a request, not a change) and metadata changes."""

    def __init__(self, kube: Any, name: str) -> None:
        from kubernetes import client

        self.co = client.CustomObjectsApi(kube)
        self.name = name
        self.status_changes = 0
        self.meta_changes = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from kubernetes import watch

        last: dict[str, Any] | None = None
        version: str | None = None
        while not self.stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(
                    self.co.list_namespaced_custom_object,
                    G,
                    V,
                    "default",
                    "runs",
                    field_selector=f"metadata.name={self.name}",
                    resource_version=version,
                    timeout_seconds=5,
                    _request_timeout=10,
                ):
                    obj = ev["object"]
                    version = obj["metadata"]["resourceVersion"]
                    meta = {k: obj["metadata"].get(k) for k in ("labels", "annotations", "finalizers")}
                    if last is not None:
                        self.status_changes += obj.get("status") != last["status"]
                        self.meta_changes += meta != last["meta"]
                    last = {"status": obj.get("status"), "meta": meta}
                    if self.stop.is_set():
                        w.stop()
            except Exception:  # a watch that expired or broke (also at the end): watch again, or stop
                time.sleep(0.1)


def chain_job(name: str, n: int) -> dict[str, Any]:
    cmd = ["sh", "-c", 'echo x > "$CAIRN_OUTPUT_RESULT"']
    ops: list[dict[str, Any]] = [{"name": "s0", "command": cmd, "outputs": ["result"]}]
    for i in range(1, n):
        ops.append({"name": f"s{i}", "inputs": {"x": f"s{i - 1}.result"}, "command": cmd, "outputs": ["result"]})
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"image": "x", "storage": {"secretRef": {"name": "cairn-s3"}}, "ops": ops},
    }


def sleep_job(name: str, seconds: int) -> dict[str, Any]:
    cmd = ["sh", "-c", f'sleep {seconds}; echo x > "$CAIRN_OUTPUT_RESULT"']
    return job_doc(name, [{"name": "nap", "command": cmd, "outputs": ["result"]}])


def events_by_source(kube: Any, run_name: str) -> Counter[str]:
    """Events about the Run or its pods, by reporting component, counting repeats (count/series)."""
    from kubernetes import client

    out: Counter[str] = Counter()
    for ev in client.CoreV1Api(kube).list_namespaced_event("default").items:
        obj = ev.involved_object
        if obj is None or not (obj.name or "").startswith(run_name):
            continue
        source = ev.reporting_component or (ev.source.component if ev.source else None) or "?"
        repeats = ev.series.count if ev.series is not None and ev.series.count else ev.count or 1
        out[f"{source} on {obj.kind}"] += repeats
    return out


def table(
    title: str,
    delta: dict[tuple[str, str], tuple[int, int, Counter[str]]],
    per: float,
    own: int = 0,
    unit: str = "per transition",
) -> None:
    """Print the rows; `per` divides (transitions, or seconds with `unit`), `own` is the bench's POST runs
    to leave out."""
    print(f"\n{title}")
    print(f"   {'resource':<22}{'writes':>7}{unit:>16}   {'verbs':<26}writer")
    listed = 0
    for resource, sub, who in ROWS:
        n, bad, verbs = delta.get((resource, sub), (0, 0, Counter()))
        if (resource, sub) == ("runs", ""):
            n -= own
            verbs = verbs.copy()
            verbs["POST"] -= own
        listed += n
        shown = " ".join(f"{v}:{c}" for v, c in sorted(verbs.items()) if c > 0) or "-"
        if bad:
            shown += f" ({bad} failed)"
        name = resource + (f"/{sub}" if sub else "")
        print(f"   {name:<22}{n:>7}{n / per:>16.2f}   {shown:<26}{who}")
    print(f"   {'total (rows above)':<22}{listed:>7}{listed / per:>16.2f}")
    others = {k: v for k, v in delta.items() if k not in {(r, s) for r, s, _ in ROWS}}
    other_n = sum(v[0] for v in others.values())
    print(f"   {'total (all resources)':<22}{listed + other_n:>7}{(listed + other_n) / per:>16.2f}", end="")
    if others:
        print("   other: " + ", ".join(f"{r}{'/' + s if s else ''} {v[0]}" for (r, s), v in sorted(others.items())))
    else:
        print()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="steps of the chain (default: %(default)s)")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idling measured (default: %(default)s)")
    args = parser.parse_args()

    with BenchPlane("cairn-bench-writes-") as plane:
        kube, co = plane.kube, plane.co
        plane.start_operator()
        time.sleep(2)
        print(f"API writes per step transition on a local control plane (python {sys.version.split()[0]}); {plane.tmp}")
        results = chain(kube, co, args.steps)
        results += idle(kube, co, args.idle)
        print("\nsummary")
        for label, value, target, ok in results:
            print(f"   {label:<58}{value:>8}   target {target:<8}{verdict(ok)}")
    return 0


Result = tuple[str, str, str, bool]


def chain(kube: Any, co: Any, n: int) -> list[Result]:
    name = f"chain-{n}"
    co.create_namespaced_custom_object(G, V, "default", "jobs", chain_job(name, n))
    watch = PodWatch(kube, "default", f"cairn.dev/run={name}")
    changes = RunChanges(kube, name)
    before = settle(kube)
    t0 = time.perf_counter()
    co.create_namespaced_custom_object(G, V, "default", "runs", run(name, name))
    final = wait_phase(co, name, ("Succeeded", "Failed", "Canceled"), timeout=60 + 10 * n)
    took = time.perf_counter() - t0
    after = settle(kube)
    watch.stop.set()
    steps = final["status"].get("steps") or {}
    transitions = sum(1 for st in steps.values() if st.get("phase") == "Succeeded")
    delta = writes(before, after)
    table(
        f"(a) {n}-step chain: Run {final['status']['phase']} in {took:.1f} s, {transitions} transitions "
        "(steps Pending -> Running -> Succeeded)",
        delta,
        max(1, transitions),
        own=1,
    )
    changes.stop.set()
    status_requests = delta.get(("runs", "status"), (0, 0, Counter()))[0]
    print(
        f"   runs/status: {status_requests} PATCH requests, {changes.status_changes} changed the Run "
        f"({changes.status_changes / max(1, transitions):.2f} per transition; the other "
        f"{status_requests - changes.status_changes} changed nothing); runs: {changes.meta_changes} metadata changes"
    )
    for source, count in sorted(events_by_source(kube, name).items()):
        print(f"   events: {count:>3} from {source}")
    by_step = {watch.steps[p]: p for p in watch.added}
    handoffs = [
        (watch.added[b] - watch.succeeded[a]) * 1000
        for i in range(n - 1)
        if (a := by_step.get(f"s{i}")) in watch.succeeded and (b := by_step.get(f"s{i + 1}")) in watch.added
    ]
    if handoffs:
        print(
            f"   hand-off (pod Succeeded -> next pod ADDED) over {len(handoffs)}: p50 {pct(handoffs, 50):.1f} ms, "
            f"p99 {pct(handoffs, 99):.1f} ms (100-step chain: bench/operator_handoff.py)"
        )
    own = delta.get(("runs", "status"), (0, 0, Counter()))[0] + delta.get(("runs", ""), (0, 0, Counter()))[0] - 1
    per = own / max(1, transitions)
    return [
        ("(a) Run's own writes (runs/status + runs) per transition", f"{per:.2f}", "<= 3", per <= 3),
        (
            "(a) run succeeded with every step executed",
            f"{transitions}/{n}",
            f"{n}/{n}",
            final["status"]["phase"] == "Succeeded" and transitions == n,
        ),
    ]


def idle(kube: Any, co: Any, seconds: float) -> list[Result]:
    name = "idle"
    co.create_namespaced_custom_object(G, V, "default", "jobs", sleep_job(name, max(30, int(seconds) + 15)))
    changes = RunChanges(kube, name)
    time.sleep(0.5)  # the watch is established
    co.create_namespaced_custom_object(G, V, "default", "runs", run(name, name))
    deadline = time.monotonic() + 60
    while True:  # until the pod runs and the operator has recorded the step as started
        obj = co.get_namespaced_custom_object(G, V, "default", "runs", name)
        step = ((obj.get("status") or {}).get("steps") or {}).get("nap") or {}
        if step.get("phase") == "Running" and step.get("startedAt"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"Run {name} never had its step running: {obj.get('status')}")
        time.sleep(0.2)
    time.sleep(1.0)  # the writes of the step's start land (a live Run may never be quiet: not `settle`)
    before, changed0 = scrape(kube), changes.status_changes
    t0 = time.monotonic()
    time.sleep(seconds)
    after, changed = scrape(kube), changes.status_changes - changed0
    window = time.monotonic() - t0
    obj = co.get_namespaced_custom_object(G, V, "default", "runs", name)
    phase = (obj.get("status") or {}).get("phase")
    delta = writes(before, after)
    table(
        f"(b) idle live Run: {window:.1f} s while its one pod runs (Run {phase} at the end)",
        delta,
        window,
        unit="per second",
    )
    status_writes = delta.get(("runs", "status"), (0, 0, Counter()))[0]
    print(f"   runs/status: {status_writes} PATCH requests, {changed} changed the Run")
    changes.stop.set()
    wait_phase(co, name, ("Succeeded", "Failed", "Canceled"), timeout=60 + seconds)
    return [
        (f"(b) runs/status writes in {window:.0f} s of idling", str(status_writes), "0", status_writes == 0),
        ("(b) the Run stayed Running through the window", str(phase), "Running", phase == "Running"),
    ]


if __name__ == "__main__":
    sys.exit(main())
