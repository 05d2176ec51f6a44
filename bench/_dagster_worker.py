"""The Dagster half of bench/local_vs_dagster.py; runs inside the Dagster venv, not Cairn's.

Usage: ``python _dagster_worker.py '<spec json>'`` where the spec is
``{"jobs": [["chain", 10], ["fan", 50], ...], "reps": 3}``. Prints one JSON object on stdout:
``{"dagster": version, "python": version, "runs": {"chain_10": [seconds, ...], ...}}``.

Each job runs with `execute_job` on a reconstructable job (built by `make_job` in this module, which
`build_reconstructable_job` points at), the in-process executor, the default filesystem IO manager and
a persistent SQLite instance in a temporary directory (telemetry off). The first run of each job is a
warm-up and is not reported.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster
from dagster import (
    DagsterInstance,
    JobDefinition,
    OpDefinition,
    build_reconstructable_job,
    execute_job,
    in_process_executor,
    job,
    op,
)

# Dagster's console logger prints every event at DEBUG; Cairn prints nothing. Events still go to the
# instance's event log (its persistence); only the terminal output is turned down.
RUN_CONFIG: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def source() -> int:
    return 0


def add_one(x: int) -> int:
    return x + 1


def _ops(n: int) -> tuple[OpDefinition, list[OpDefinition]]:
    first = op(name="op_0")(source)
    rest = [op(name=f"op_{i}")(add_one) for i in range(1, n)]
    return first, rest


def make_job(shape: str, n: int) -> JobDefinition:
    """chain: op_i reads op_{i-1}; fan: op_1..op_{n-1} each read op_0."""
    first, rest = _ops(n)
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


def main(spec: dict[str, Any]) -> dict[str, Any]:
    here = str(Path(__file__).resolve().parent)
    reps = int(spec["reps"])
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dagster-") as home:
        os.environ["DAGSTER_HOME"] = home
        Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        instance = DagsterInstance.local_temp(home)
        for shape, n in spec["jobs"]:
            recon = build_reconstructable_job(
                "_dagster_worker", "make_job", (shape, n), reconstructor_working_directory=here
            )
            times: list[float] = []
            for i in range(reps + 1):  # the first run warms up
                t0 = time.perf_counter()
                result = execute_job(recon, instance=instance, run_config=RUN_CONFIG)
                elapsed = time.perf_counter() - t0
                if not result.success:
                    raise SystemExit(f"dagster run of {shape}_{n} failed (run {result.run_id})")
                if i:
                    times.append(elapsed)
            runs[f"{shape}_{n}"] = times
        instance.dispose()
    return {"dagster": dagster.__version__, "python": platform.python_version(), "runs": runs}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
