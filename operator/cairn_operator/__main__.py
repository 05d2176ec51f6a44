"""`python -m cairn_operator [--namespace NS ... | --all-namespaces] [--liveness URL] [--metrics HOST:PORT]
[--verbose]`: run the operator (kopf) against the current kubeconfig. Its settings are parsed here, once,
from these flags and its environment, and its controllers are built here with what they hold."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime as dt
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import kopf

from cairn_operator.handlers import KopfRecorder, Threads, register
from cairn_operator.kube import Kube
from cairn_operator.limits import PodSlots
from cairn_operator.ports import Faults, Metrics, NoMetrics
from cairn_operator.reexecutions import ReexecutionController
from cairn_operator.runs import RunController
from cairn_operator.settings import Settings, SettingsError, from_environment
from cairn_operator.settle import Settler
from cairn_operator.storage import StorageFactory


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread its own malloc arena (up to 8 per core), and the operator runs one sync
    daemon thread per live Run: cap the arenas, or memory grows with Runs for no benefit."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX


def build_parser() -> argparse.ArgumentParser:
    """The operator's options (`cairn operator` maps its own onto these)."""
    parser = argparse.ArgumentParser(prog="python -m cairn_operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch only namespace NS (repeatable; default: all namespaces)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)")
    parser.add_argument(
        "--liveness",
        metavar="URL",
        default="http://127.0.0.1:8080/healthz",
        help="liveness endpoint URL (default: %(default)s; in a pod use http://0.0.0.0:8080/healthz; '' turns it off)",
    )
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        default="",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (port 0: a free one; default: off)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    return parser


def _exit_now(message: str) -> None:
    """The fault hook's exit: at once, with no cleanup at all (as a SIGKILL or an OOM kill would)."""
    sys.stderr.write(message)
    sys.stderr.flush()
    os._exit(137)


def build(settings: Settings, metrics: Metrics) -> tuple[kopf.OperatorRegistry, list[ThreadPoolExecutor]]:
    """The operator's registry with its handlers, delegating to controllers built from `settings`."""
    kube = Kube()
    storage = StorageFactory(kube, time.monotonic, ttl=settings.secret_ttl)
    recorder = KopfRecorder()
    cycles = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="cairn-sync")
    creators = ThreadPoolExecutor(max_workers=settings.creators, thread_name_prefix="cairn-create")
    clock = lambda: dt.datetime.now(dt.UTC)  # noqa: E731
    faults = Faults(settings.faults, settings.fault_namespace, _exit_now)
    settler = Settler(kube, recorder, faults, metrics)
    runs = RunController(
        kube=kube,
        storage=storage,
        recorder=recorder,
        slots=PodSlots(settings.max_pods),
        creators=creators,
        settler=settler,
        clock=clock,
        faults=faults,
        metrics=metrics,
        step_account=settings.step_account,
        resync=settings.resync,
        wait_resync=settings.wait_resync,
    )
    rxs = ReexecutionController(kube, storage, recorder, clock, metrics, settings.rx_resync)
    registry = kopf.OperatorRegistry()
    register(registry, runs, rxs, settler, Threads(cycles))
    return registry, [cycles, creators]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = from_environment(os.environ, args.metrics)
    except SettingsError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    limit_malloc_arenas()
    metrics: Metrics = NoMetrics()
    if settings.metrics is not None:
        from cairn_operator.metrics import Metrics as Prometheus

        served = Prometheus()
        port = served.serve(*settings.metrics)
        logging.getLogger("cairn.operator").info("metrics at http://%s:%d/metrics", settings.metrics[0], port)
        metrics = served
    registry, pools = build(settings, metrics)
    try:
        asyncio.run(
            kopf.operator(
                registry=registry,
                standalone=True,
                clusterwide=not args.namespace,
                namespaces=args.namespace,
                liveness_endpoint=args.liveness or None,
            )
        )
    finally:
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
