"""The Helm chart's RBAC is enough for the operator, in both install modes.

What the real `helm template` renders (ServiceAccounts, ClusterRole, Roles and their bindings; not
the Deployment: no image is built here) is created on the local control plane, and the operator runs a
Run as the chart's ServiceAccount: cluster-wide with the chart's ClusterRole, namespaced with its
Role in the watched namespace plus kopf's small ClusterRole. The pod of the chart's Deployment is
admitted by the API server's PodSecurity admission at `restricted`.
"""

from __future__ import annotations

import copy
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from cairn_dev import procs
from tests.helpers import eventually
from tests.integration.test_chart import helm, one, operator_container, template
from tests.integration.test_operator import apply, ns, sample, wait_phase

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["helm", "ns"]  # fixtures: helm from test_chart, the namespace with the S3 Secret from test_operator


@pytest.fixture
def release_ns(core: Any) -> Iterator[str]:
    """The namespace the chart is "installed" in (the operator's ServiceAccount), apart from the Runs'."""
    name = f"rel-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@contextmanager
def installed(kube: Any, docs: list[dict[str, Any]]) -> Iterator[None]:
    """The chart's ServiceAccounts and RBAC objects created as `helm install` would; the cluster-scoped
    ones deleted afterwards (the namespaced ones go with their namespaces)."""
    core, rbac = client.CoreV1Api(kube), client.RbacAuthorizationV1Api(kube)
    cluster_scoped: list[dict[str, Any]] = []
    try:
        for doc in docs:
            kind, namespace = doc["kind"], doc["metadata"].get("namespace")
            if kind == "ServiceAccount":
                core.create_namespaced_service_account(namespace, doc)
            elif kind == "Role":
                rbac.create_namespaced_role(namespace, doc)
            elif kind == "RoleBinding":
                rbac.create_namespaced_role_binding(namespace, doc)
            elif kind == "ClusterRole":
                rbac.create_cluster_role(doc)
                cluster_scoped.append(doc)
            elif kind == "ClusterRoleBinding":
                rbac.create_cluster_role_binding(doc)
                cluster_scoped.append(doc)
            else:
                assert kind == "Deployment", f"the chart renders an unexpected {kind}"
        yield
    finally:
        for doc in reversed(cluster_scoped):
            if doc["kind"] == "ClusterRoleBinding":
                rbac.delete_cluster_role_binding(doc["metadata"]["name"])
            else:
                rbac.delete_cluster_role(doc["metadata"]["name"])


def operator_kubeconfig(core: Any, dev_cluster: Any, docs: list[dict[str, Any]], path: Path) -> Path:
    """A kubeconfig with a token of the chart's operator ServiceAccount (the Deployment's)."""
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    account = one(docs, "ServiceAccount", pod["serviceAccountName"])["metadata"]
    token = core.create_namespaced_service_account_token(
        account["name"],
        account["namespace"],
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)),
    ).status.token
    admin = yaml.safe_load(dev_cluster.kubeconfig.read_text())
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": admin["clusters"],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [{"name": "op", "context": {"cluster": "cairn-dev", "user": "operator"}}],
                "current-context": "op",
            }
        )
    )
    return path


def run_the_sample(kube: Any, core: Any, ns: str) -> None:
    apply(kube, ns, sample("job-unreliable.yaml"))
    apply(kube, ns, sample("run-unreliable-succeeds.yaml"))
    run = wait_phase(kube, ns, "unreliable-succeeds", "Succeeded", "Failed", timeout=120)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert sorted(run["status"]["steps"]["end"]["logs"]) == ["1"]  # pods/log and the Secret were readable
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=unreliable-succeeds").items
    assert any(e.reason == "RunSucceeded" for e in events)


def assert_never_refused(log: str) -> None:
    """Nothing the operator did was forbidden, kopf's own observation included."""
    assert "Not enough permissions" not in log, log[-3000:]
    assert "forbidden" not in log.lower(), log[-3000:]


def test_the_operator_works_with_only_the_charts_cluster_role(
    cairn_operator: Any, kube: Any, core: Any, ns: str, release_ns: str, dev_cluster: Any, helm: Path, tmp_path: Path
) -> None:
    docs = template(helm, release=ns, namespace=release_ns)
    assert [d["kind"] for d in docs if "Role" in d["kind"]] == ["ClusterRole", "ClusterRoleBinding"]
    with installed(kube, docs):
        kc = operator_kubeconfig(core, dev_cluster, docs, tmp_path / "operator.kubeconfig")
        start = cairn_operator.log_path.stat().st_size if cairn_operator.log_path.exists() else 0
        cairn_operator.restart(kubeconfig=kc)
        try:
            run_the_sample(kube, core, ns)
            # The Runs' namespace is not the release's: the operator made the step ServiceAccount there.
            account = core.read_namespaced_service_account("cairn-step", ns)
            assert account.automount_service_account_token is False
            with cairn_operator.log_path.open() as f:
                f.seek(start)
                assert_never_refused(f.read())
        finally:
            cairn_operator.restart()


def test_the_operator_works_namespaced_with_only_the_charts_roles(
    cairn_operator: Any, kube: Any, core: Any, ns: str, release_ns: str, dev_cluster: Any, helm: Path, tmp_path: Path
) -> None:
    docs = template(helm, "--set-json", f'watchNamespaces=["{ns}"]', release=ns, namespace=release_ns)
    assert one(docs, "Role")["metadata"]["namespace"] == ns
    container = operator_container(docs)
    # The chart's own arguments and environment; only the liveness port is a free one on this machine.
    liveness = f"--liveness=http://127.0.0.1:{procs.free_port()}/healthz"
    args = [liveness if a.startswith("--liveness=") else a for a in container["args"]]
    assert args[1:] == [f"--namespace={ns}"]
    chart_env = {e["name"]: e["value"] for e in container["env"]}
    log = tmp_path / "operator-namespaced.log"
    with installed(kube, docs):
        kc = operator_kubeconfig(core, dev_cluster, docs, tmp_path / "operator.kubeconfig")
        cairn_operator.stop()
        rec = procs.start(
            "cairn-operator-namespaced",
            [sys.executable, "-m", "cairn_operator", *args],
            log,
            env={**os.environ, **chart_env, "KUBECONFIG": str(kc)},
            cwd=ROOT,
        )
        try:
            run_the_sample(kube, core, ns)
            assert core.read_namespaced_service_account("cairn-step", ns).automount_service_account_token is False
            assert_never_refused(log.read_text())
        finally:
            procs.stop(rec, grace=10)
            cairn_operator.restart()


RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def test_the_operator_pod_is_admitted_by_podsecurity_restricted(
    kube: Any, core: Any, namespace: str, helm: Path
) -> None:
    core.patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    docs = template(helm, namespace=namespace)
    template_ = one(docs, "Deployment")["spec"]["template"]
    core.create_namespaced_service_account(
        namespace, one(docs, "ServiceAccount", template_["spec"]["serviceAccountName"])
    )
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator", **template_["metadata"]},
        "spec": template_["spec"],
    }

    # The same pod with capabilities left in is refused: the admission runs and enforces `restricted`.
    weak = copy.deepcopy(pod)
    del weak["spec"]["containers"][0]["securityContext"]["capabilities"]

    def refused() -> str | None:
        try:
            core.create_namespaced_pod(namespace, weak, dry_run="All")
        except ApiException as exc:
            return str(exc.body) if exc.status == 403 else None
        return None

    body = eventually(refused, timeout=30, interval=0.5, what="PodSecurity to enforce restricted on the namespace")
    assert "violates PodSecurity" in body and "capabilities" in body, body
    try:
        core.create_namespaced_pod(namespace, pod, dry_run="All")
    except ApiException as exc:
        pytest.fail(f"the chart's operator pod is refused: {exc.body}")
    assert core.list_namespaced_pod(namespace).items == []
