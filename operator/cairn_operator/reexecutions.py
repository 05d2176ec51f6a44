"""The Reexecution controller: one decision of a Reexecution (`rxdecide.decide`, pure) on what is observed
now, carried out: the child created, then the parent protected, then the status written once (only if it
changed), then Events. One cycle at a time per Reexecution; its collaborators injected by `__main__`."""

from __future__ import annotations

import copy
import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cairn.contract import RxMode
from cairn.planner import Request, RunView, plan_checked
from cairn_operator.blocked import merge_patch
from cairn_operator.graph import build
from cairn_operator.kube import Kube, Refused
from cairn_operator.models import JobSpec, ReexecutionSpec
from cairn_operator.ports import Metrics, NoMetrics, Recorder
from cairn_operator.reconcile import Event
from cairn_operator.resources import LABEL_PARENT
from cairn_operator.rxdecide import (
    FINISHED,
    CreateChild,
    Decision,
    Located,
    PlanFn,
    ProtectParent,
    RxObserved,
    child_create_failed,
    child_name,
    child_refused,
    decide,
    rx_active,
)
from cairn_operator.storage import StorageFactory


@dataclass
class ReexecutionController:
    kube: Kube
    storage: StorageFactory
    recorder: Recorder
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    metrics: Metrics = field(default_factory=NoMetrics)
    resync: float = 15.0  # seconds between checks when no event comes; the retry delay after a transient error
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)
    _locks_lock: threading.Lock = field(default_factory=threading.Lock)

    def cycle(self, namespace: str, name: str) -> None:
        """One decision, carried out. A refusal by the API server fails the Reexecution with the server's
        message; a transient error (5xx, a lost connection) is said in its status, and the next check tries
        again."""
        with self._locks_lock:
            lock = self._locks.setdefault((namespace, name), threading.Lock())
        with lock:
            body = self.kube.get_reexecution(namespace, name)
            if body is None or not rx_active(body.get("status"), body.get("spec")):
                with self._locks_lock:
                    self._locks.pop((namespace, name), None)
                return
            try:
                self._cycle(namespace, name, body)
            finally:
                self.metrics.rx_cycle(namespace, name)

    def _cycle(self, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        spec = dict(body.get("spec") or {})
        status = copy.deepcopy(dict(body.get("status") or {}))
        generation = int(meta.get("generation") or 1)
        decision = decide(self.observe(namespace, meta, spec, status, generation), self.located_plan(namespace))
        try:
            self.apply(namespace, decision)
        except Refused as exc:  # permanent: the request itself is wrong (admission, quota, RBAC)
            decision = child_refused(str(exc))
        except Exception as exc:  # transient (5xx, a lost connection): said, and the next check tries again
            decision = child_create_failed(
                f"{type(exc).__name__}: {str(exc)[:300]}", status.get("message"), self.resync
            )
        change = merge_patch(status, decision.status(status, generation, self.clock()))
        if change:
            self.kube.patch_reexecution_status(namespace, name, change)
            self.metrics.status_write("Reexecution")
        for action in decision.actions:
            if isinstance(action, Event):
                self.recorder.post(body, action.type, action.reason, action.message)

    def observe(
        self,
        namespace: str,
        meta: Mapping[str, Any],
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        generation: int,
    ) -> RxObserved:
        """What a Reexecution's decision needs: its parent, its child (by the child's fixed name) and, with
        concurrencyPolicy Forbid, the parent's other live children."""
        parent_name = str(spec.get("parentRun") or "")
        try:
            child = child_name(ReexecutionSpec.model_validate(dict(spec)), meta["uid"])
        except ValidationError:
            child = ""
        parent = self.kube.get_run(namespace, parent_name) if parent_name and "/" not in parent_name else None
        siblings: list[str] = []
        if spec.get("concurrencyPolicy") == "Forbid" and parent is not None:
            siblings = [
                r["metadata"]["name"]
                for r in self.kube.list_runs(namespace, f"{LABEL_PARENT}={parent_name}")
                if (r.get("status") or {}).get("phase") not in FINISHED and r["metadata"]["name"] != child
            ]
        job = None
        if spec.get("mode") == RxMode.STALE and parent is not None:  # compared with the Job as it is now
            job_name = ((parent.get("spec") or {}).get("jobRef") or {}).get("name")
            job = self.kube.get_job(namespace, job_name) if job_name else None
        return RxObserved(
            job=job,
            namespace=namespace,
            name=meta["name"],
            uid=meta["uid"],
            generation=generation,
            spec=spec,
            status=status,
            parent=parent,
            child=self.kube.get_run(namespace, child) if child else None,
            live_siblings=tuple(siblings),
        )

    def located_plan(self, namespace: str) -> PlanFn:
        """The planner with the parent's storage: every output a plan reuses must exist there."""

        def run(job_spec: JobSpec, view: RunView, request: Request, rerun_missing: bool) -> Located:
            io = self.storage.open(namespace, job_spec)
            p = plan_checked(
                build(job_spec).job_graph(),
                view,
                request,
                exists=io.exists,
                rerun_missing=rerun_missing,
                describe=io.describe,
            )
            return Located(p, io.bucket, io.prefix)

        return run

    def apply(self, namespace: str, decision: Decision) -> None:
        """Create the child, then protect the parent (a finalizer only once its child exists). A protection
        that fails (the parent changed: 409) is added by the next decision, which sees the child."""
        for action in decision.actions:
            if isinstance(action, CreateChild):
                self.kube.create_run(action.body)  # False: it exists (made by a cycle whose status write was lost)
            elif isinstance(action, ProtectParent):
                try:
                    self.kube.set_run_finalizers(
                        namespace, action.name, list(action.finalizers), action.resource_version
                    )
                except Exception as exc:
                    if getattr(exc, "status", None) not in (404, 409):
                        raise
