"""`cairn manifest`: a Python job as a Job manifest the operator accepts, whose steps map back."""

from __future__ import annotations

from cairn.loader import load_job
from cairn.manifest import dns_name, job_manifest
from cairn.step import resolve_step
from cairn_operator.graph import build
from cairn_operator.models import JobSpec


def test_manifests_of_python_jobs_are_valid_jobs() -> None:
    for ref in ("cairn.examples.unreliable:unreliable_job", "tests.local.jobs:branches", "tests.local.jobs:reuse_op"):
        job = load_job(ref)
        doc = job_manifest(job, ref, image="img")
        spec = JobSpec.model_validate(doc["spec"])
        graph = build(spec)
        assert len(graph.order) == len(job.nodes)
        for op in spec.ops:
            assert resolve_step(job.nodes, op.name, job.name) in job.nodes


def test_branches_manifest_wiring() -> None:
    doc = job_manifest(load_job("tests.local.jobs:branches"), "tests.local.jobs:branches", image="img")
    ops = {o["name"]: o for o in doc["spec"]["ops"]}
    assert ops["split"]["outputs"] == ["a", "b"] and ops["split"]["optionalOutputs"] == ["b"]
    assert ops["use-b"]["inputs"] == {"b": "split.b"} and ops["after-b"]["inputs"] == {"x": "use-b"}
    assert doc["metadata"]["name"] == "branches" and doc["spec"]["python"]["job"] == "tests.local.jobs:branches"
    assert dns_name("twice_2") == "twice-2"
