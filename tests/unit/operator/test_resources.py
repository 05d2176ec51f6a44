"""Pods the operator makes, and the CRDs generated from the models."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from cairn_operator import crdgen
from cairn_operator.graph import build
from cairn_operator.models import JobSpec, StepOverride
from cairn_operator.resources import (
    pod_name,
    run_key,
    service_accounts_to_ensure,
    step_inputs,
    step_pod,
    step_service_account,
)

DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    ("run", "step", "attempt"),
    [("r", "s", 1), ("a" * 80, "b" * 80, 12), ("Run_With.Dots", "op-1", 3), ("x" * 63, "y", 1)],
)
def test_pod_names_are_deterministic_dns_labels(run: str, step: str, attempt: int) -> None:
    name = pod_name(run, "uid-1", step, attempt)
    assert len(name) <= 63 and DNS.match(name), name
    assert name == pod_name(run, "uid-1", step, attempt)
    assert name != pod_name(run, "uid-2", step, attempt)  # a re-created Run gets new pods
    assert name != pod_name(run, "uid-1", step, attempt + 1)


def test_run_keys_never_collide_across_recreated_runs() -> None:
    assert run_key("demo", "0123456789abcdef") == "demo.01234567"
    assert run_key("demo", "0123456789abcdef") != run_key("demo", "fedcba9876543210")


SPEC = JobSpec.model_validate(
    {
        "image": "img:1",
        "python": {"job": "pkg.mod:job"},
        "storage": {"secretRef": {"name": "cairn-s3"}, "prefix": "p"},
        "podTemplate": {"nodeSelector": {"pool": "cpu"}, "labels": {"team": "ml", "cairn.dev/run": "spoof"}},
        "ops": [
            {"name": "start"},
            {
                "name": "train",
                "inputs": {"data": "start"},
                "timeoutSeconds": 60,
                "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "1Gi"}},
                "env": [{"name": "MODE", "value": "fast"}],
                "podTemplate": {"tolerations": [{"key": "gpu", "operator": "Exists"}], "serviceAccountName": "trainer"},
            },
            {"name": "shell", "image": "alpine", "command": ["sh", "-c"], "args": ["echo hi"]},
        ],
    }
)


def make(step: str, override: StepOverride | None = None) -> dict[str, Any]:
    graph = build(SPEC)
    status = {"start": {"outputs": {"result": {"key": "p/ns/r.uid00000/start/result"}}}}
    return step_pod(
        run="r",
        run_uid="uid00000-1111",
        namespace="ns",
        job_name="j",
        spec=SPEC,
        graph=graph,
        step=step,
        attempt=2,
        inputs=step_inputs(graph, step, status),
        config={"lr": 0.1},
        override=override,
    )


def test_a_python_step_pod() -> None:
    p = make("train")
    meta, spec = p["metadata"], p["spec"]
    assert meta["labels"] == {
        "cairn.dev/run": "r",
        "cairn.dev/step": "train",
        "cairn.dev/job": "j",
        "cairn.dev/attempt": "2",
        "app.kubernetes.io/managed-by": "cairn",
        "team": "ml",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "cairn.dev/v1alpha1",
            "kind": "Run",
            "name": "r",
            "uid": "uid00000-1111",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 60
    assert spec["nodeSelector"] == {"pool": "cpu"} and spec["serviceAccountName"] == "trainer"
    assert spec["tolerations"] == [
        {"key": "gpu", "operator": "Exists"},
        # a step on a node that stops answering is evicted after a minute and retried per its retries
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ]
    c = spec["containers"][0]
    assert c["image"] == "img:1" and c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["command"] == [
        "python",
        "-m",
        "cairn.step",
        "run",
        "--job",
        "pkg.mod:job",
        "--run-id",
        "r.uid00000",
        "--step",
        "train",
    ]
    env = {e["name"]: e for e in c["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "name": "AWS_SECRET_ACCESS_KEY",
        "valueFrom": {"secretKeyRef": {"name": "cairn-s3", "key": "AWS_SECRET_ACCESS_KEY", "optional": False}},
    }
    assert "value" not in env["AWS_ACCESS_KEY_ID"]  # credentials only as secretKeyRef
    ctx = yaml.safe_load(env["CAIRN_STEP_CONTEXT"]["value"])
    assert ctx == {
        "protocol": 1,
        "namespace": "ns",
        "storage": {"kind": "s3", "prefix": "p"},
        "inputs": {"start.result": {"key": "p/ns/r.uid00000/start/result", "names": ["data"]}},
        "config": {"lr": 0.1},
        "attempt": 2,  # the pod's attempt (its label says the same): hooks fire on the last attempt only
    }
    assert env["MODE"]["value"] == "fast"


def test_a_command_step_pod_runs_through_the_wrapper() -> None:
    c = make("shell")["spec"]["containers"][0]
    assert c["image"] == "alpine"
    assert c["command"][:4] == ["python", "-m", "cairn.step", "exec"]
    assert c["command"][-4:] == ["--", "sh", "-c", "echo hi"]


def test_overrides_replace_image_and_env() -> None:
    override = StepOverride.model_validate({"image": "img:2", "env": [{"name": "MODE", "value": "slow"}]})
    c = make("train", override=override)["spec"]["containers"][0]
    assert c["image"] == "img:2"
    assert [e["value"] for e in c["env"] if e["name"] == "MODE"] == ["slow"]


def test_the_crds_in_the_repository_match_the_models(tmp_path: Path) -> None:
    assert crdgen.main(["--check"]) == 0
    crdgen.main(["--dir", str(tmp_path)])
    (tmp_path / "cairn.dev_runs.yaml").write_text("drifted")
    assert crdgen.main(["--check", "--dir", str(tmp_path)]) == 1


def test_the_crds_are_structural() -> None:
    for doc in crdgen.all_crds().values():
        text = yaml.safe_dump(doc)
        assert "$ref" not in text and "anyOf" not in text and "title" not in text
        names = doc["spec"]["names"]
        assert names["categories"] == ["cairn"] and names["shortNames"][0] in ("cjob", "crun", "rx")


def pod_of(job_template: dict[str, Any] | None, op_template: dict[str, Any] | None, **kw: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"name": "a"}
    if op_template is not None:
        op["podTemplate"] = op_template
    doc: dict[str, Any] = {
        "image": "img:1",
        "python": {"job": "pkg.mod:job"},
        "storage": {"secretRef": {"name": "cairn-s3"}},
        "ops": [op],
    }
    if job_template is not None:
        doc["podTemplate"] = job_template
    spec = JobSpec.model_validate(doc)
    return step_pod(
        run="r",
        run_uid="u",
        namespace="ns",
        job_name="j",
        spec=spec,
        graph=build(spec),
        step="a",
        attempt=1,
        inputs={},
        config=None,
        **kw,
    )


DEFAULT_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.mark.parametrize(
    ("job_template", "op_template", "kw", "account", "security"),
    [
        pytest.param(None, None, {}, "cairn-step", DEFAULT_POD_SECURITY, id="defaults"),
        pytest.param(None, None, {"service_account": "runner"}, "runner", DEFAULT_POD_SECURITY, id="configured-sa"),
        pytest.param(
            {"serviceAccountName": "job-sa"}, None, {}, "job-sa", DEFAULT_POD_SECURITY, id="job-template-sa-wins"
        ),
        pytest.param(
            {"serviceAccountName": "job-sa"},
            {"serviceAccountName": "op-sa"},
            {"service_account": "runner"},
            "op-sa",
            DEFAULT_POD_SECURITY,
            id="op-template-sa-wins",
        ),
        pytest.param(
            {"securityContext": {"runAsUser": 1000}},
            None,
            {},
            "cairn-step",
            {**DEFAULT_POD_SECURITY, "runAsUser": 1000},
            id="one-field-replaced",
        ),
        pytest.param(
            {"securityContext": {"runAsUser": 1000, "fsGroup": 2000, "supplementalGroups": [3000]}},
            {"securityContext": {"runAsUser": 0, "runAsNonRoot": False}},
            {},
            "cairn-step",
            {
                **DEFAULT_POD_SECURITY,
                "runAsUser": 0,
                "runAsNonRoot": False,
                "fsGroup": 2000,
                "supplementalGroups": [3000],
            },
            id="op-over-job-over-defaults",
        ),
        pytest.param(
            None,
            {"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}},
            {},
            "cairn-step",
            {**DEFAULT_POD_SECURITY, "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
            id="seccomp-profile-replaced-whole",
        ),
        pytest.param(
            {"securityContext": {}}, {"labels": {"x": "y"}}, {}, "cairn-step", DEFAULT_POD_SECURITY, id="empty-context"
        ),
    ],
)
def test_step_pods_are_hardened_by_default(
    job_template: dict[str, Any] | None,
    op_template: dict[str, Any] | None,
    kw: dict[str, Any],
    account: str,
    security: dict[str, Any],
) -> None:
    spec = pod_of(job_template, op_template, **kw)["spec"]
    assert spec["serviceAccountName"] == account
    assert spec["automountServiceAccountToken"] is False  # always: no API token in any step pod
    assert spec["securityContext"] == security
    assert spec["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert "readOnlyRootFilesystem" not in spec["containers"][0]["securityContext"]  # ops write temp files


def test_pods_never_share_the_default_dicts() -> None:
    a = pod_of(None, None)
    a["spec"]["securityContext"]["seccompProfile"]["type"] = "Unconfined"
    a["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"].clear()
    b = pod_of(None, None)
    assert b["spec"]["securityContext"] == DEFAULT_POD_SECURITY
    assert b["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize(
    "context",
    [
        {"runAsUser": -1},
        {"seccompProfile": {"type": "Localhost"}},
        {"seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "p.json"}},
        {"seccompProfile": {"type": "Sometimes"}},
        {"supplementalGroups": [-5]},
        {"privileged": True},  # not a pod-level field: refused, not ignored
    ],
)
def test_bad_security_contexts_are_refused(context: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        pod_of({"securityContext": context}, None)


def test_the_step_service_account_and_where_it_is_needed() -> None:
    assert step_service_account("ns", "cairn-step") == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "cairn-step", "namespace": "ns", "labels": {"app.kubernetes.io/managed-by": "cairn"}},
        "automountServiceAccountToken": False,
    }
    pods = [
        {"metadata": {"namespace": "a"}, "spec": {"serviceAccountName": "cairn-step"}},
        {"metadata": {"namespace": "a"}, "spec": {"serviceAccountName": "cairn-step"}},
        {"metadata": {"namespace": "b"}, "spec": {"serviceAccountName": "users-own"}},
        {"metadata": {"namespace": "c"}, "spec": {"serviceAccountName": "cairn-step"}},
    ]
    assert service_accounts_to_ensure(pods, "cairn-step") == {("a", "cairn-step"), ("c", "cairn-step")}
    assert service_accounts_to_ensure([], "cairn-step") == set()


def test_typed_template_entries_become_the_core_apis_dicts() -> None:
    """Tolerations, volumes, mounts and env valueFrom are models now: the pod gets them as the core
    API's dicts, unset fields left out and set-but-empty ones kept (`emptyDir: {}`)."""
    job_template = {
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}],
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "settings", "items": [{"key": "a.json", "path": "conf/a.json"}]}},
        ],
    }
    op_template = {
        "tolerations": [{"operator": "Exists"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}}],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}, {"name": "cfg", "mountPath": "/etc/app"}],
    }
    pod = pod_of(job_template, op_template)
    spec = pod["spec"]
    assert spec["tolerations"] == [  # a toleration of every taint: no node-lost eviction is added
        {"key": "gpu", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
        {"operator": "Exists"},
    ]
    assert spec["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "settings", "items": [{"key": "a.json", "path": "conf/a.json"}]}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}},
    ]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "cfg", "mountPath": "/etc/app"},
    ]


def test_env_value_from_and_quantities_reach_the_container_unchanged() -> None:
    spec = JobSpec.model_validate(
        {
            "image": "img:1",
            "python": {"job": "pkg.mod:job"},
            "storage": {"secretRef": {"name": "cairn-s3"}},
            "ops": [
                {
                    "name": "a",
                    "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "resources": {"requests": {"cpu": "500m", "memory": 1048576}, "limits": {"memory": "1Gi"}},
                }
            ],
        }
    )
    pod = step_pod(
        run="r",
        run_uid="u",
        namespace="ns",
        job_name="j",
        spec=spec,
        graph=build(spec),
        step="a",
        attempt=1,
        inputs={},
        config=None,
    )
    c = pod["spec"]["containers"][0]
    assert {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in c["env"]
    assert c["resources"] == {"requests": {"cpu": "500m", "memory": 1048576}, "limits": {"memory": "1Gi"}}


@pytest.mark.parametrize(
    ("given", "added"),
    [
        ([], ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]),
        ([{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}], ["node.kubernetes.io/not-ready"]),
        ([{"operator": "Exists"}], []),
        ([{"key": "gpu", "operator": "Exists"}], ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]),
    ],
)
def test_node_lost_tolerations_are_added_unless_the_template_says(
    given: list[dict[str, Any]], added: list[str]
) -> None:
    from cairn_operator.resources import with_node_lost_tolerations

    out = with_node_lost_tolerations(given)
    assert out[: len(given)] == given
    assert [t["key"] for t in out[len(given) :]] == added
    assert all(t["tolerationSeconds"] == 60 and t["effect"] == "NoExecute" for t in out[len(given) :])
