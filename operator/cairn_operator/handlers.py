"""kopf's handlers of the operator, registered on a registry by `register`: each only delegates to the
Run controller (`runs`) or the Reexecution controller (`reexecutions`) it is given.

Each live Run is reconciled by its daemon on every watch event of itself and its pods (and every second
as the safety net); each live Reexecution on every watch event of itself, its parent and its child (and
every `rx_resync` seconds as the safety net). Cycles run in a pool of worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from cairn.contract import PodPhase
from cairn_operator.models import GROUP, VERSION
from cairn_operator.reexecutions import ReexecutionController
from cairn_operator.resources import LABEL_PARENT, LABEL_RUN, LABEL_RX
from cairn_operator.runs import RunController
from cairn_operator.rxdecide import FINISHED, PROTECT, rx_active
from cairn_operator.settle import Settler


class KopfRecorder:
    """Events through kopf's queue (posted at kopf's posting level, as the object's Events)."""

    def post(self, body: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        kopf.event(kopf.Body(body), type=type, reason=reason, message=message)  # type: ignore[arg-type]


def not_finished(status: Mapping[str, Any], **_: Any) -> bool:
    return (status or {}).get("phase") not in FINISHED


def not_settled(status: Mapping[str, Any], **_: Any) -> bool:
    """Live, or finished but its follow-ups (`finish_up`) not done yet: it needs its daemon."""
    return not_finished(status) or not (status or {}).get("settled")


def configure(settings: kopf.OperatorSettings) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    # kopf.event() calls at INFO and above are posted as Events (log messages are not: kopf's
    # posting.loggers is off, so a warning logged by a daemon reaches the operator's log only).
    settings.posting.level = 20
    settings.watching.server_timeout = 60
    settings.batching.batch_window = 0.001  # react to a pod's change at once (handoff latency)


class Threads:
    """Runs a controller's call in the cycle pool with the caller's context (kopf.event() finds kopf's
    event queue through it)."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self.pool, context.run, fn, *args)


def register(
    registry: kopf.OperatorRegistry,
    runs: RunController,
    rxs: ReexecutionController,
    settler: Settler,
    threads: Threads,
) -> None:
    """Every handler of the operator, on `registry`."""
    _register_runs(registry, runs, rxs, settler, threads)
    _register_reexecutions(registry, rxs, threads)


def _register_runs(
    registry: kopf.OperatorRegistry,
    runs: RunController,
    rxs: ReexecutionController,
    settler: Settler,
    threads: Threads,
) -> None:
    @kopf.on.startup(id="configure", registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    @kopf.on.login(id="login", registry=registry)
    def login(**kw: Any) -> Any:
        """Credentials as the kubernetes client finds them (in-cluster, else the kubeconfig): kopf adds its
        own login handlers to its default registry only."""
        return kopf.login_via_client(**kw)

    @kopf.on.probe(id="runs", registry=registry)
    def probe_runs(**_: Any) -> str:
        return "ok"

    @kopf.on.event("", "v1", "pods", id="pod_changed", labels={LABEL_RUN: kopf.PRESENT}, registry=registry)
    async def pod_changed(type: str | None, body: Mapping[str, Any], namespace: str | None, **_: Any) -> None:
        meta = body.get("metadata") or {}
        phase = (body.get("status") or {}).get("phase")
        active = not (type == "DELETED" or phase in (PodPhase.SUCCEEDED, PodPhase.FAILED))
        runs.pod_seen(namespace, meta.get("name", ""), (meta.get("labels") or {}).get(LABEL_RUN), active)

    @kopf.on.event(GROUP, VERSION, "runs", id="run_changed", registry=registry)
    async def run_changed(
        type: str | None, name: str | None, namespace: str | None, body: Mapping[str, Any], **kw: Any
    ) -> None:
        """Wake the Run's daemon, the Reexecutions waiting for it as their parent and the one that made it;
        a child Run gone and any event of a protected parent re-check the parent's protection."""
        runs.run_changed(body)
        meta = body.get("metadata") or {}
        labels = meta.get("labels") or {}
        waiting = set(kw["rx_by_parent"].get((namespace or "", name or ""), ()))
        maker = labels.get(LABEL_RX)
        for rx in sorted(waiting | ({maker} if maker else set())):
            await threads.run(rxs.cycle, namespace or "", rx)
        if type == "DELETED" and labels.get(LABEL_PARENT):
            await threads.run(settler.release_parent, namespace or "", labels[LABEL_PARENT], name)
        if type != "DELETED" and PROTECT in (meta.get("finalizers") or []):
            await threads.run(settler.release_parent, namespace or "", name or "", None)

    @kopf.timer(
        GROUP, VERSION, "runs", id="protected_check", interval=30.0, registry=registry,
        when=lambda meta, **_: PROTECT in (meta.get("finalizers") or []),
    )  # fmt: skip
    def protected_check(namespace: str | None, name: str, **_: Any) -> None:
        settler.release_parent(namespace or "", name)

    @kopf.on.event(GROUP, VERSION, "jobs", id="job_changed", registry=registry)
    async def job_changed(name: str | None, namespace: str | None, **_: Any) -> None:
        runs.wake_waiting_for_job(namespace or "", name or "")

    @kopf.daemon(
        GROUP, VERSION, "runs", id="run_daemon", when=not_settled, cancellation_timeout=10.0, registry=registry
    )
    async def run_daemon(**kw: Any) -> None:
        """One per live Run: a cycle on every change of the Run or its pods, and every `resync` seconds. Each
        cycle reads the Run as the watch last brought it (no GET)."""
        body, namespace, name, stopped, logger = kw["body"], kw["namespace"], kw["name"], kw["stopped"], kw["logger"]
        wake = runs.wakers.setdefault((namespace, name), asyncio.Event())
        try:
            while not stopped:
                wake.clear()
                try:
                    delay = await threads.run(runs.cycle, dict(body))
                    if delay is None:
                        return
                except Exception as exc:  # keep serving: the next cycle retries (level-triggered)
                    logger.warning(f"reconcile of Run {namespace}/{name} failed, retrying: {exc}")
                    await asyncio.sleep(1.0)
                    delay = runs.resync
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)
        finally:
            runs.forget(namespace, name)


def _register_reexecutions(registry: kopf.OperatorRegistry, rxs: ReexecutionController, threads: Threads) -> None:
    @kopf.index(GROUP, VERSION, "reexecutions", id="rx_by_parent", registry=registry)
    def rx_by_parent(namespace: str | None, name: str, spec: Mapping[str, Any], **_: Any) -> dict[Any, str]:
        """(namespace, parent Run) -> the Reexecutions naming it: a parent's watch events wake them."""
        return {(namespace or "", (spec or {}).get("parentRun") or ""): name}

    @kopf.on.event(GROUP, VERSION, "reexecutions", id="rx_changed", registry=registry)
    async def rx_changed(
        type: str | None, name: str | None, namespace: str | None, body: Mapping[str, Any], **_: Any
    ) -> None:
        """Applied or changed (its own status writes included: the decision then repeats, writes nothing)."""
        if type != "DELETED" and name and rx_active(body.get("status"), body.get("spec")):
            await threads.run(rxs.cycle, namespace or "", name)

    @kopf.timer(
        GROUP, VERSION, "reexecutions", id="rx_resync", interval=rxs.resync, registry=registry,
        when=lambda status, spec, **_: rx_active(status, spec),
    )  # fmt: skip
    def rx_resync(namespace: str | None, name: str, **_: Any) -> None:
        rxs.cycle(namespace or "", name)
