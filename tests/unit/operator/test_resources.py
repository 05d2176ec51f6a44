"""Pods the operator makes, and the CRDs generated from the models."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cairn_operator import crdgen
from cairn_operator.graph import build
from cairn_operator.models import JobSpec, StepOverride
from cairn_operator.resources import pod_name, run_key, step_inputs, step_pod

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
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
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
