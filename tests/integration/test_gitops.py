"""What GitOps tools (Argo CD, Flux) rely on: a Reexecution controls its child Run, so pruning it removes
that child only (never the parent), and their tracking labels are never copied onto a child."""

from __future__ import annotations

from typing import Any

from kubernetes.client.rest import ApiException

from tests.helpers import eventually
from tests.integration.test_operator import G, V, co, get_run, ns
from tests.integration.test_reexecution import PASS, create_rx, failed_parent, rx, rx_phase

__all__ = ["failed_parent", "ns"]

TRACKING = {
    "app.kubernetes.io/instance": "cairn-pipelines",
    "argocd.argoproj.io/instance": "cairn-pipelines",
    "kustomize.toolkit.fluxcd.io/name": "pipelines",
    "helm.toolkit.fluxcd.io/name": "pipelines",
}


def test_a_child_run_is_owned_by_its_reexecution_and_carries_no_tracking_labels(
    kube: Any, ns: str, failed_parent: dict[str, Any]
) -> None:
    doc = rx("fix-1", "unreliable-fails", overrides=PASS, labels={**TRACKING, "team": "data"})
    doc["metadata"]["labels"] = dict(TRACKING)
    doc["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id": "cairn-pipelines:cairn.dev/Reexecution:x"}
    create_rx(kube, ns, doc)
    done = rx_phase(kube, ns, "fix-1", "Succeeded", "Failed")
    assert done["status"]["phase"] == "Succeeded"
    child = get_run(kube, ns, done["status"]["childRun"])
    meta = child["metadata"]
    assert meta["labels"]["team"] == "data" and meta["labels"]["cairn.dev/reexecution"] == "fix-1"
    assert not set(meta["labels"]) & set(TRACKING)
    assert not any(k.startswith("argocd.argoproj.io/") for k in meta.get("annotations") or {})
    [owner] = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Reexecution",
        "fix-1",
        done["metadata"]["uid"],
        True,
    )

    # Pruned (deleted) by the GitOps tool: the garbage collector removes its child, never the parent.
    co(kube).delete_namespaced_custom_object(G, V, ns, "reexecutions", "fix-1")

    def child_gone() -> bool:
        try:
            get_run(kube, ns, meta["name"])
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    eventually(child_gone, timeout=60, what="the child Run to be garbage-collected")
    assert get_run(kube, ns, "unreliable-fails")["status"]["phase"] == "Failed"
