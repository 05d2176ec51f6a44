"""Step pods are hardened by default: they are admitted where the API server's PodSecurity admission
enforces `restricted`, run as the step ServiceAccount the operator makes, and mount no API token. A
refusal (admission or RBAC) is shown in the Run's status and once as a Warning Event `FailedCreate`,
with the API server's message, and tried again every cycle, so fixing its cause lets the Run go on.

The local node ignores securityContext (pods are host processes): admission is what is tested here."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.helpers import eventually
from tests.integration.test_operator import (
    G,
    V,
    apply,
    co,
    cycles_on_job_edits,
    get_run,
    ns,
    run_of,
    sample,
    wait_phase,
)

__all__ = ["ns"]  # the namespace fixture, shared with test_operator

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def restrict(core: Any, namespace: str, level: str = "restricted") -> None:
    core.patch_namespace(
        namespace, {"metadata": {"labels": {**RESTRICTED, "pod-security.kubernetes.io/enforce": level}}}
    )


def wait_refused(kube: Any, namespace: str, run: str, text: str) -> dict[str, Any]:
    def shown() -> dict[str, Any] | None:
        doc = get_run(kube, namespace, run)
        return doc if text in ((doc.get("status") or {}).get("message") or "") else None

    return eventually(shown, timeout=60, what=f"Run {run} to show {text!r}")


def failed_create_events(core: Any, namespace: str, run: str) -> list[str]:
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={run}").items
    return [e.message for e in events if (e.type, e.reason) == ("Warning", "FailedCreate")]


def assert_one_event(op: Any, kube: Any, core: Any, namespace: str, run: str, job: str, message: str) -> None:
    """The refusal is posted as one Warning Event (the API server's words; the status adds when it is
    tried again), though the operator tries again after a growing delay and on every change: three more
    cycles, each woken by an edit of the Run's Job, try again and post none."""
    eventually(lambda: failed_create_events(core, namespace, run), timeout=30, what="the FailedCreate Event")
    cycles_on_job_edits(op, kube, namespace, run, job, n=3)
    assert get_run(kube, namespace, run)["status"]["message"] == message  # refused again, said the same
    said = message.split(" (tried again after a growing delay")[0]
    assert message.endswith("(tried again after a growing delay, up to 60s, and after each change)")
    assert failed_create_events(core, namespace, run) == [said]


def test_the_seed_job_runs_in_a_restricted_namespace(cairn_operator: Any, kube: Any, core: Any, ns: str) -> None:
    restrict(core, ns)
    apply(kube, ns, sample("job-unreliable.yaml"))
    apply(kube, ns, sample("run-unreliable-succeeds.yaml"))
    run = wait_phase(kube, ns, "unreliable-succeeds", "Succeeded", "Failed")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    pods = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=unreliable-succeeds").items
    assert sorted(p.metadata.labels["cairn.dev/step"] for p in pods) == ["end", "start", "unreliable"]
    for p in pods:  # every step pod was admitted under `restricted`, hardened as the defaults say
        assert p.spec.service_account_name == "cairn-step"
        assert p.spec.automount_service_account_token is False
        assert not [v for v in p.spec.volumes or [] if v.name.startswith("kube-api-access")]  # no token mounted
        sc = p.spec.security_context
        assert (sc.run_as_non_root, sc.run_as_user, sc.run_as_group) == (True, 65532, 65532)
        assert sc.seccomp_profile.type == "RuntimeDefault"
        csc = p.spec.containers[0].security_context
        assert csc.allow_privilege_escalation is False and csc.capabilities.drop == ["ALL"]
        assert not csc.read_only_root_filesystem
    # The operator made the step ServiceAccount in the namespace: it mounts no token and grants nothing.
    sa = core.read_namespaced_service_account("cairn-step", ns)
    assert sa.automount_service_account_token is False
    assert sa.metadata.labels["app.kubernetes.io/managed-by"] == "cairn"
    bindings = client.RbacAuthorizationV1Api(kube).list_namespaced_role_binding(ns).items
    assert not [b for b in bindings if any(s.name == "cairn-step" for s in b.subjects or [])]


def test_a_pod_refused_by_admission_is_shown_on_the_run_and_retried(
    cairn_operator: Any, kube: Any, core: Any, ns: str
) -> None:
    restrict(core, ns)
    job = sample("job-unreliable.yaml")
    job["metadata"]["name"] = "as-root"
    job["spec"]["podTemplate"] = {"securityContext": {"runAsUser": 0}}
    apply(kube, ns, job)
    apply(
        kube,
        ns,
        run_of(
            "as-root", "root-run", overrides={"unreliable": {"env": [{"name": "CAIRN_UNRELIABLE", "value": "pass"}]}}
        ),
    )
    apply(kube, ns, sample("job-unreliable.yaml"))  # a good Run next to it goes on
    apply(kube, ns, sample("run-unreliable-succeeds.yaml"))

    refused = 'violates PodSecurity "restricted:latest": runAsUser=0 (pod must not set runAsUser=0)'
    run = wait_refused(kube, ns, "root-run", refused)
    message = run["status"]["message"]
    assert (
        message.startswith("creating pod root-run-start-1-")
        and " refused by the API server (403 Forbidden): " in message
    )
    assert run["status"]["phase"] == "Pending" and "steps" not in run["status"]  # no step was started
    assert {c["type"]: (c["status"], c["reason"], c["message"]) for c in run["status"]["conditions"]} == {
        "Ready": ("False", "FailedCreate", message),
        "Reconciling": ("True", "FailedCreate", message),  # retried every cycle: not stalled
        "Stalled": ("False", "FailedCreate", message),
        "Succeeded": ("Unknown", "FailedCreate", message),
    }
    assert core.list_namespaced_pod(ns, label_selector="cairn.dev/run=root-run").items == []
    good = wait_phase(kube, ns, "unreliable-succeeds", "Succeeded", "Failed")
    assert good["status"]["phase"] == "Succeeded", good["status"]
    assert_one_event(cairn_operator, kube, core, ns, "root-run", "as-root", message)

    # The Job was not snapshotted while refused: fixing it lets the same Run go on, no re-apply.
    co(kube).patch_namespaced_custom_object(G, V, ns, "jobs", "as-root", {"spec": {"podTemplate": None}})
    run = wait_phase(kube, ns, "root-run", "Succeeded", "Failed")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["message"] == "all 3 steps done"
    assert "podTemplate" not in run["status"]["jobSnapshot"]
    pod = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=root-run,cairn.dev/step=start").items[0]
    assert pod.spec.security_context.run_as_user == 65532


#: What the operator needs (as the Helm chart grants it), but `serviceaccounts` only readable.
OPERATOR_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["cairn.dev"],
        "resources": ["jobs", "runs", "reexecutions"],
        "verbs": ["get", "list", "watch", "patch", "update", "create"],
    },
    {
        "apiGroups": ["cairn.dev"],
        "resources": ["runs/status", "reexecutions/status"],
        "verbs": ["get", "patch", "update"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": [""], "resources": ["pods/log", "secrets"], "verbs": ["get"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]},
]


def test_a_refused_service_account_is_shown_on_the_run_until_rbac_allows_it(
    cairn_operator: Any, kube: Any, core: Any, ns: str, dev_cluster: Any, tmp_path: Path
) -> None:
    name = f"cairn-op-{ns}"
    rbac = client.RbacAuthorizationV1Api(kube)
    core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": OPERATOR_RULES})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        }
    )
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
                    "contexts": [
                        {"name": "op", "context": {"cluster": admin["clusters"][0]["name"], "user": "operator"}}
                    ],
                    "current-context": "op",
                }
            )
        )
        cairn_operator.restart(kubeconfig=kc)
        apply(kube, ns, sample("job-unreliable.yaml"))
        apply(kube, ns, sample("run-unreliable-succeeds.yaml"))
        refused = (
            f"creating ServiceAccount {ns}/cairn-step refused by the API server (403 Forbidden): "
            f'serviceaccounts is forbidden: User "system:serviceaccount:{ns}:{name}" cannot create resource'
        )
        run = wait_refused(kube, ns, "unreliable-succeeds", refused)
        assert run["status"]["phase"] == "Pending"
        assert_one_event(cairn_operator, kube, core, ns, "unreliable-succeeds", "unreliable", run["status"]["message"])
        assert core.list_namespaced_pod(ns, label_selector="cairn.dev/run=unreliable-succeeds").items == []
        # Granting `create` is all it takes: the next cycle makes the ServiceAccount and the pods.
        rules = copy.deepcopy(OPERATOR_RULES)
        rules[-1]["verbs"] = ["get", "create"]
        rbac.patch_cluster_role(name, {"rules": rules})
        run = wait_phase(kube, ns, "unreliable-succeeds", "Succeeded", "Failed", timeout=120)
        assert run["status"]["phase"] == "Succeeded", run["status"]
        assert core.read_namespaced_service_account("cairn-step", ns).automount_service_account_token is False
    finally:
        cairn_operator.restart()
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)
