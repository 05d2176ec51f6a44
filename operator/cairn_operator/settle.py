"""What follows a Run's end, derived from its finished status alone: podGC of the pods whose results are
in the status, its parent's protection released (a child Run), its automatic retry (spec.retryPolicy);
then `status.settled`. A crash after the write that finished the Run loses none of it, and a repeat does
nothing twice (deterministic names; the protection re-checked from what is live)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cairn.contract import API_VERSION, REEXECUTION
from cairn.runstate import RunPhase
from cairn_operator.kube import Kube
from cairn_operator.models import RunSpec
from cairn_operator.ports import Faults, Metrics, NoMetrics, Recorder
from cairn_operator.reconcile import collectable
from cairn_operator.resources import LABEL_PARENT, LABEL_RETRY, LABEL_ROOT
from cairn_operator.rxdecide import FINISHED, PROTECT, retry_spec

#: Conflicts (409) in a row before a release of a parent's protection gives up, saying so.
RELEASE_TRIES = 5


class ReleaseConflict(Exception):
    """The parent changed under every try: the next check tries again (a Warning Event said so)."""


def next_retry(
    namespace: str, name: str, meta: Mapping[str, Any], spec: RunSpec, done: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """spec.retryPolicy of a failed Run: the Reexecution that retries it, like one a user would apply, until
    its root lineage has had maxRetries of them (`done`: the lineage's retries so far); None when this Run
    was retried already or the retries are used up. Its name is deterministic, so a repeat adds nothing."""
    assert spec.retryPolicy is not None
    root = (meta.get("labels") or {}).get(LABEL_ROOT) or name
    if any((r.get("spec") or {}).get("parentRun") == name for r in done):
        return None
    n = len(done) + 1
    if n > spec.retryPolicy.maxRetries:
        return None
    return {
        "apiVersion": API_VERSION,
        "kind": REEXECUTION.kind,
        "metadata": {
            "name": f"{root[:50].rstrip('-.')}-retry-{n}",
            "namespace": namespace,
            "labels": {LABEL_ROOT: root, LABEL_RETRY: str(n), LABEL_PARENT: name},
        },
        "spec": retry_spec(name, spec),  # with the Run's own overrides: a child inherits none
    }


@dataclass
class Settler:
    kube: Kube
    recorder: Recorder
    faults: Faults = field(default_factory=Faults.none)
    metrics: Metrics = field(default_factory=NoMetrics)

    def finish_up(self, body: Mapping[str, Any]) -> None:
        """podGC, the parent released, the automatic retry, then `status.settled`."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        status = dict(body.get("status") or {})
        try:
            run_spec: RunSpec | None = RunSpec.model_validate(dict(body.get("spec") or {}))
        except ValidationError:
            run_spec = None
        if run_spec is not None:
            strategy = run_spec.podGC.strategy if run_spec.podGC else "Never"
            pods = self.kube.list_step_pods(namespace, name) if strategy != "Never" else []
            for action in collectable(strategy, status, pods):
                self.faults("exit-before:pod-delete", namespace)
                self.kube.delete_pod(namespace, action.name)
            if run_spec.execution is not None:
                for parent in {(meta.get("labels") or {}).get(LABEL_PARENT)} - {None}:
                    self.release_parent(namespace, str(parent), leaving=name)
            policy = run_spec.retryPolicy
            failed = status.get("phase") == RunPhase.FAILED.value and status.get("jobSnapshot")
            if failed and policy and policy.maxRetries:
                self.retry_failed_run(namespace, name, meta, run_spec)
        self.kube.patch_run_status(namespace, name, {"settled": True})
        self.metrics.status_write("Run")

    def retry_failed_run(self, namespace: str, name: str, meta: Mapping[str, Any], spec: RunSpec) -> None:
        """The failed Run's automatic retry (`next_retry`), created unless it exists or none is due."""
        root = (meta.get("labels") or {}).get(LABEL_ROOT) or name
        done = self.kube.list_reexecutions(namespace, f"{LABEL_ROOT}={root},{LABEL_RETRY}")
        retry = next_retry(namespace, name, meta, spec, done)
        if retry is not None:
            self.kube.create_reexecution(retry)

    def live_children(self, namespace: str, parent: str, leaving: str | None = None) -> list[str]:
        """What may still read the parent's outputs: its child Runs not finished, not being deleted and not
        `leaving` (the child finishing or gone just now). A Reexecution protects its parent only once its
        child exists (`rxdecide`), so one that has not made its child (or failed to) never holds it."""
        return sorted(
            k["metadata"]["name"]
            for k in self.kube.list_runs(namespace, f"{LABEL_PARENT}={parent}")
            if (k.get("status") or {}).get("phase") not in FINISHED
            and not k["metadata"].get("deletionTimestamp")
            and k["metadata"]["name"] != leaving
        )

    def release_parent(self, namespace: str, parent: str, leaving: str | None = None) -> None:
        """The parent's protection goes once no live child remains: checked when a child finishes, when one
        disappears, on every event of the parent and periodically. The parent is read again on a conflict;
        after RELEASE_TRIES conflicts a Warning Event on the parent says so and ReleaseConflict is raised
        (the caller's next check tries again): it never gives up silently."""
        body: dict[str, Any] | None = None
        for _ in range(RELEASE_TRIES):
            body = self.kube.get_run(namespace, parent)
            if body is None or PROTECT not in (body["metadata"].get("finalizers") or []):
                return
            if self.live_children(namespace, parent, leaving):
                return
            rest = [f for f in body["metadata"]["finalizers"] if f != PROTECT]
            try:
                self.kube.set_run_finalizers(namespace, parent, rest, body["metadata"]["resourceVersion"])
                return
            except Exception as exc:
                if getattr(exc, "status", None) != 409:
                    raise
        message = (
            f"could not release finalizer {PROTECT} of Run {parent}: it changed under each of {RELEASE_TRIES} "
            "tries (409 Conflict); trying again at the next check"
        )
        assert body is not None
        self.recorder.post(body, "Warning", "FinalizerReleaseConflict", message)
        raise ReleaseConflict(message)
