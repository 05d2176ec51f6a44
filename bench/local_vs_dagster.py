"""Benchmark Cairn's in-process executor and its re-execution planner; compare the executor with Dagster.

What it measures:

1. Per-run wall time of ``execute_job`` for the same trivial jobs in Cairn and in Dagster, both in-process
   (in-process executor) with persistent stores: Cairn's ``Instance.local`` (SQLite run store in WAL mode,
   outputs as files) and Dagster's ``DagsterInstance.local_temp`` (SQLite run/event storage, default
   filesystem IO manager), each in a temporary directory. Jobs: ``chain`` (op_i reads op_{i-1} and adds
   1) and ``fan`` (op_0 feeds op_1..op_{N-1}), N in 10, 50, 200 ops, int payloads. Each job runs once as
   a warm-up, then the median of the timed runs is reported, with per-op overhead = run time / N. The
   target: Cairn's per-op overhead is at most 1/30 of Dagster's.
2. ``cairn.planner.plan`` on a 10,000-step layered DAG (100 layers of 100 steps, each step reading two
   steps of the layer before), median of 5 calls after a warm-up: from failure (a parent whose step in
   layer 50 failed) and for a ``step*`` selection (a successful parent: re-running a step and everything
   downstream of it needs the outputs of their other inputs, which a failed parent never produced);
   target 20 ms.

Dagster runs in its own virtualenv (``~/.cache/cairn/bench-dagster-venv``, or $CAIRN_BENCH_DAGSTER_VENV),
created with pip on first use, through ``bench/_dagster_worker.py``. Run from the repository root::

    .venv/bin/python bench/local_vs_dagster.py            # N in 10, 50, 200; 5 timed runs each
    .venv/bin/python bench/local_vs_dagster.py --quick    # N in 10, 50; 1 timed run each
    .venv/bin/python bench/local_vs_dagster.py --skip-dagster --profile   # Cairn only, plus a cProfile

Both instances live under the temporary directory ($TMPDIR, else /tmp); per-op cost is mostly file and
directory creation, so the filesystem and other I/O on the machine matter: ``TMPDIR=/dev/shm`` shows the
cost without a disk. The script prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cairn
from cairn import Instance, JobDefinition, OpDefinition, execute_job, in_process_executor, job, op
from cairn.io import output_key
from cairn.planner import JobGraph, Mode, OutputRef, Plan, Request, RunView, plan
from cairn.runstate import RunPhase, StepState

DAGSTER_SPEC = "dagster>=1.9,<1.14"
DEFAULT_VENV = Path.home() / ".cache" / "cairn" / "bench-dagster-venv"
WORKER = Path(__file__).resolve().parent / "_dagster_worker.py"
SHAPES = ("chain", "fan")
TARGET_RATIO = 30.0  # Cairn's per-op overhead at most 1/30 of Dagster's
PLANNER_TARGET_MS = 20.0

Spec = tuple[str, int]  # (shape, number of ops)


# ----- Cairn jobs ------------------------------------------------------------------------------------
def source() -> int:
    return 0


def add_one(x: int) -> int:
    return x + 1


def make_cairn_job(shape: str, n: int) -> JobDefinition:
    """chain: op_i reads op_{i-1}; fan: op_1..op_{n-1} each read op_0 (the same jobs as the Dagster worker's)."""
    first = op(name="op_0")(source)
    rest: list[OpDefinition] = [op(name=f"op_{i}")(add_one) for i in range(1, n)]
    body: Callable[[], None]
    if shape == "chain":

        def body() -> None:
            x = first()
            for o in rest:
                x = o(x)

    elif shape == "fan":

        def body() -> None:
            x = first()
            for o in rest:
                o(x)

    else:
        raise ValueError(f"unknown job shape {shape!r}")
    return job(name=f"{shape}_{n}", executor_def=in_process_executor)(body)


def run_cairn(specs: Sequence[Spec], reps: int) -> dict[str, list[float]]:
    """Seconds per timed run of each job (after one warm-up run), against a persistent local instance."""
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cairn-") as home:
        instance = Instance.local(home)
        for shape, n in specs:
            the_job = make_cairn_job(shape, n)
            times: list[float] = []
            for i in range(reps + 1):  # the first run warms up
                t0 = time.perf_counter()
                result = execute_job(the_job, instance=instance)
                elapsed = time.perf_counter() - t0
                if not result.success:
                    raise SystemExit(f"cairn run of {the_job.name} failed: {result.errors}")
                if i:
                    times.append(elapsed)
            runs[the_job.name] = times
        instance.close()
    return runs


def profile_cairn(n: int = 200, top: int = 20) -> None:
    """cProfile of one warm run of an n-op chain: where Cairn's per-op time goes."""
    with tempfile.TemporaryDirectory(prefix="bench-cairn-prof-") as home:
        instance = Instance.local(home)
        the_job = make_cairn_job("chain", n)
        execute_job(the_job, instance=instance)  # warm-up
        prof = cProfile.Profile()
        prof.enable()
        execute_job(the_job, instance=instance)
        prof.disable()
        instance.close()
    print(f"\ncProfile of one chain_{n} run (Cairn), top {top} by total time in the function itself:")
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(top)
    print(f"... and top {top} by cumulative time:")
    stats.sort_stats("cumulative").print_stats(top)


# ----- Dagster (in its own venv) ---------------------------------------------------------------------
def dagster_python() -> Path:
    """The Dagster venv's python, creating the venv and installing Dagster on first use."""
    venv = Path(os.environ.get("CAIRN_BENCH_DAGSTER_VENV", DEFAULT_VENV)).expanduser()
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import dagster"], capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} and installing {DAGSTER_SPEC} (once; takes about a minute)...", file=sys.stderr)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", DAGSTER_SPEC], check=True)
    return python


def run_dagster(python: Path, specs: Sequence[Spec], reps: int) -> dict[str, Any]:
    """Run the worker in the Dagster venv; its JSON report: versions and seconds per timed run of each job."""
    spec = json.dumps({"jobs": [list(s) for s in specs], "reps": reps})
    proc = subprocess.run([python, WORKER, spec], capture_output=True, text=True, cwd=WORKER.parent)
    if proc.returncode != 0:
        raise SystemExit(f"the Dagster worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ----- planner -------------------------------------------------------------------------------------
def layered_graph(layers: int, width: int) -> JobGraph:
    """Step s{l}_{j} reads s{l-1}_{j} and s{l-1}_{(j+1) % width}."""
    steps: list[str] = []
    deps: dict[str, dict[str, tuple[str, str]]] = {}
    for layer in range(layers):
        for j in range(width):
            s = f"s{layer:03d}_{j:03d}"
            steps.append(s)
            if layer == 0:
                deps[s] = {}
            else:
                a, b = f"s{layer - 1:03d}_{j:03d}", f"s{layer - 1:03d}_{(j + 1) % width:03d}"
                deps[s] = {"a": (a, "result"), "b": (b, "result")}
    return JobGraph(tuple(steps), deps, {s: {"result": True} for s in steps})


def parent_view(graph: JobGraph, failed: str | None) -> RunView:
    """A parent run: steps before `failed` (in execution order) SUCCESS with outputs in the index, `failed`
    FAILURE, the rest NOT_EXECUTED; with failed=None, a successful run of every step."""
    run_id = "parent-run"
    states: dict[str, StepState] = {}
    outputs: dict[tuple[str, str], OutputRef] = {}
    state = StepState.SUCCEEDED
    for s in graph.steps:
        if s == failed:
            states[s] = StepState.FAILED
            state = StepState.NOT_EXECUTED
            continue
        states[s] = state
        if state is StepState.SUCCEEDED:
            outputs[(s, "result")] = OutputRef(run_id, output_key(run_id, s, "result"))
    status = RunPhase.FAILED if failed else RunPhase.SUCCEEDED
    return RunView(run_id, status, run_id, states, outputs)


def time_plan(graph: JobGraph, parent: RunView, request: Request, reps: int = 5) -> tuple[float, Plan]:
    """Median milliseconds of `plan` over `reps` calls, after one warm-up call."""
    known = {parent.run_id}
    result = plan(graph, parent, request, known)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        result = plan(graph, parent, request, known)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def planner_bench(layers: int = 100, width: int = 100) -> None:
    graph = layered_graph(layers, width)
    mid = f"s{layers // 2:03d}_{width // 2:03d}"
    cases = [
        (f"from failure ({mid} failed)", parent_view(graph, mid), Request(Mode.FROM_FAILURE)),
        (f'selected "{mid}*" (successful parent)', parent_view(graph, None), Request(Mode.SELECTED, (f"{mid}*",))),
    ]
    print(f"\nPlanner: plan() on a {len(graph.steps):,}-step DAG ({layers} layers x {width}, 2 inputs per step)")
    print(f"{'request':<44} {'steps to run':>12} {'reused inputs':>13} {'ms (median of 5)':>17}  target")
    for label, parent, request in cases:
        ms, p = time_plan(graph, parent, request)
        verdict = f"<= {PLANNER_TARGET_MS:.0f} ms: {'met' if ms <= PLANNER_TARGET_MS else 'NOT met'}"
        print(f"{label:<44} {len(p.to_run):>12,} {len(p.reused):>13,} {ms:>17.1f}  {verdict}")


# ----- report ------------------------------------------------------------------------------------
def filesystem(path: str) -> str:
    """The type of the filesystem `path` is on, from /proc/mounts (longest matching mount point)."""
    best, fstype = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return fstype
    real = os.path.realpath(path)
    for line in mounts:
        fields = line.split()
        mount = fields[1]
        if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
            best, fstype = mount, fields[2]
    return fstype


def executor_table(
    specs: Sequence[Spec], cairn_runs: dict[str, list[float]], dagster_runs: dict[str, list[float]]
) -> None:
    print("\nExecutor: execute_job wall time, median of the timed runs; per-op = run time / N")
    print(f"target: Cairn's per-op overhead at most 1/{TARGET_RATIO:.0f} of Dagster's")
    header = (
        f"{'job':<6} {'N':>4} {'cairn ms/run':>13} {'dagster ms/run':>15} {'cairn µs/op':>12} "
        f"{'dagster µs/op':>14} {'dagster/cairn':>14}  target"
    )
    print(header)
    print("-" * len(header))
    for shape, n in specs:
        name = f"{shape}_{n}"
        c_ms = statistics.median(cairn_runs[name]) * 1000
        c_us = c_ms * 1000 / n
        if name in dagster_runs:
            d_ms = statistics.median(dagster_runs[name]) * 1000
            d_us = d_ms * 1000 / n
            ratio = d_us / c_us
            verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
            d_cols = f"{d_ms:>15.1f} {c_us:>12.0f} {d_us:>14.0f} {ratio:>13.1f}x  {verdict}"
        else:
            d_cols = f"{'-':>15} {c_us:>12.0f} {'-':>14} {'-':>14}"
        print(f"{shape:<6} {n:>4} {c_ms:>13.1f} {d_cols}")
    # Marginal cost per op, without the fixed per-run cost: slope between the smallest and largest N.
    sizes = sorted({n for _, n in specs})
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        print(f"\nmarginal per-op cost (slope between N={lo} and N={hi}), fixed per-run cost (intercept):")
        for shape in SHAPES:
            for side, runs in (("cairn", cairn_runs), ("dagster", dagster_runs)):
                a, b = runs.get(f"{shape}_{lo}"), runs.get(f"{shape}_{hi}")
                if a and b:
                    ta, tb = statistics.median(a), statistics.median(b)
                    slope = (tb - ta) / (hi - lo)
                    print(f"  {shape:<6} {side:<8} {slope * 1e6:>9.0f} µs/op   {(ta - slope * lo) * 1000:>8.1f} ms/run")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="N in 10 and 50 only, 1 timed run each")
    parser.add_argument("--reps", type=int, help="timed runs per job (default 5, or 1 with --quick)")
    parser.add_argument("--skip-dagster", action="store_true", help="Cairn only (no Dagster venv needed)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one 200-op Cairn chain run")
    args = parser.parse_args(argv)
    sizes = (10, 50) if args.quick else (10, 50, 200)
    reps = args.reps or (1 if args.quick else 5)
    specs = [(shape, n) for shape in SHAPES for n in sizes]

    print("Cairn local executor vs Dagster, and the Cairn planner")
    print(f"python {platform.python_version()}, cairn {cairn.__version__}, nproc {len(os.sched_getaffinity(0))}")
    tmp = tempfile.gettempdir()
    print(f"instances under {tmp} ({filesystem(tmp)})")
    print(f"jobs: {', '.join(f'{s}_{n}' for s, n in specs)}; 1 warm-up + {reps} timed run(s) each")

    # Cairn first, so that the writeback of Dagster's far larger writes does not land on Cairn's runs.
    t0 = time.perf_counter()
    cairn_runs = run_cairn(specs, reps)
    print(f"cairn: all runs took {time.perf_counter() - t0:.1f} s")
    dagster_runs: dict[str, list[float]] = {}
    if not args.skip_dagster:
        python = dagster_python()
        t0 = time.perf_counter()
        dagster = run_dagster(python, specs, reps)
        dagster_runs = dagster["runs"]
        print(
            f"dagster {dagster['dagster']} (python {dagster['python']}, venv {python.parent.parent}): "
            f"all runs took {time.perf_counter() - t0:.1f} s"
        )
    executor_table(specs, cairn_runs, dagster_runs)
    planner_bench()
    if args.profile:
        profile_cairn()


if __name__ == "__main__":
    main()
