"""The Helm chart's ClusterRole is enough for the operator: it runs a Run as that ServiceAccount."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.integration.test_operator import apply, ns, sample, wait_phase

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["ns"]  # the namespace fixture, shared with test_operator


def render(template: str, name: str, namespace: str) -> dict[str, Any]:
    """The chart's template with its few expressions filled in as Helm would for release `t`."""
    text = template.replace('{{ include "cairn.fullname" . }}', name)
    text = text.replace("{{ .Release.Namespace }}", namespace)
    text = re.sub(
        r"\n\s*\{\{- include \"cairn.labels\" \. \| nindent \d+ \}\}", "\n    app.kubernetes.io/name: cairn", text
    )
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def test_the_operator_works_with_only_the_charts_cluster_role(
    cairn_operator: Any, kube: Any, core: Any, ns: str, dev_cluster: Any, tmp_path: Path
) -> None:
    name = f"cairn-{ns}"
    rbac = client.RbacAuthorizationV1Api(kube)
    templates = ROOT / "charts" / "cairn" / "templates"
    core.create_namespaced_service_account(ns, render((templates / "serviceaccount.yaml").read_text(), name, ns))
    role = render((templates / "clusterrole.yaml").read_text(), name, ns)
    binding = render((templates / "clusterrolebinding.yaml").read_text(), name, ns)
    rbac.create_cluster_role(role)
    rbac.create_cluster_role_binding(binding)
    try:
        token = core.create_namespaced_service_account_token(
            name,
            ns,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)),
        ).status.token
        admin = yaml.safe_load(dev_cluster.kubeconfig.read_text())
        kc = tmp_path / "operator.kubeconfig"
        kc.write_text(
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
        cairn_operator.restart(kubeconfig=kc)
        apply(kube, ns, sample("job-unreliable.yaml"))
        apply(kube, ns, sample("run-unreliable-succeeds.yaml"))
        run = wait_phase(kube, ns, "unreliable-succeeds", "Succeeded", "Failed", timeout=120)
        assert run["status"]["phase"] == "Succeeded", run["status"]
        assert sorted(run["status"]["steps"]["end"]["logs"]) == ["1"]  # pods/log and the Secret were readable
        events = core.list_namespaced_event(ns, field_selector="involvedObject.name=unreliable-succeeds").items
        assert any(e.reason == "RunSucceeded" for e in events)
    finally:
        cairn_operator.restart()
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)
