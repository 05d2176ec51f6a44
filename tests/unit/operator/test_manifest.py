"""`cairn manifest`: a Python job as a Job manifest the operator accepts, whose steps map back."""

from __future__ import annotations

import pytest

from cairn.dynamic import node_of
from cairn.execution import job_graph
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


def test_the_fanout_manifest_reads_back_in_yaml_1_1_as_written() -> None:
    """kubectl reads YAML 1.1, where a bare `n` is false: an input named n must be quoted."""
    import re

    import yaml

    from cairn.manifest import to_yaml

    text = to_yaml(job_manifest(load_job("cairn.examples.fanout:fanout"), "cairn.examples.fanout:fanout", image="i"))
    assert '"n": split' in text

    class Yaml11(yaml.SafeLoader):
        """PyYAML's loader with YAML 1.1's full boolean set (y/n/on/off ...), as go-yaml reads."""

    Yaml11.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N|yes|no|true|false|on|off)$"), list("yYnNtTfFoO")
    )

    def boolean(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
        assert isinstance(node, yaml.ScalarNode)
        return str(loader.construct_scalar(node)).lower() in ("y", "yes", "true", "on")

    Yaml11.add_constructor("tag:yaml.org,2002:bool", boolean)
    graph = build(JobSpec.model_validate(yaml.load(text, Loader=Yaml11)["spec"]))
    assert graph.deps["process"] == {"n": ("split", "result")} and graph.mapped == {"process": ("split", "result")}
    bare = yaml.load(text.replace('"n":', "n:"), Loader=Yaml11)["spec"]["ops"][1]["inputs"]
    assert bare == {False: "split"}  # what an unquoted manifest would give (this test's reader is YAML 1.1)


@pytest.mark.parametrize(
    "keys",
    [{}, {("split", "result"): ()}, {("split", "result"): ("shard_0",)}, {("split", "result"): ("b", "a", "c")}],
)
def test_a_manifests_graph_is_the_runtimes_job_graph_with_each_steps_op_spec(
    keys: dict[tuple[str, str], tuple[str, ...]],
) -> None:
    """One job graph: the operator's graph of a Python job's manifest is the graph the in-process executor
    plans with (steps, wiring, outputs, fan-out), static and concrete, and each step carries its op's spec."""
    ref = "cairn.examples.fanout:fanout"
    job = load_job(ref)
    spec = JobSpec.model_validate(job_manifest(job, ref, image="img")["spec"])
    static = build(spec)
    assert static.job_graph() == job_graph(job) and static.fans_out
    graph = static.concrete(keys)
    assert graph.job_graph() == job_graph(job).concrete(keys) and not graph.fans_out
    by_name = {o.name: o for o in spec.ops}
    assert {s: graph.ops[s] for s in graph.order} == {s: by_name[node_of(s)] for s in graph.order}
