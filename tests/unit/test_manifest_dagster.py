"""`cairn manifest` carries what Dagster's definitions say that a cluster can: retry policies as an op's
`retries` (Dagster's delays where the cluster's backoff can say them), tags as pod labels and annotations
(label-safe), and the config of the resources an op needs; the manifest is one the CRD's models accept."""

import json
import math
from typing import Any

import pytest

from cairn.definitions import In, Out, job, op
from cairn.manifest import (
    MAX_CLUSTER_RETRIES,
    OP_TAGS_ANNOTATION,
    RESOURCES_ENV,
    RUN_TAGS_ANNOTATION,
    job_manifest,
    pod_metadata,
    resources_config_of,
    retries_of,
)
from cairn.retries import Backoff, ExponentialRetries, Jitter, RetryPolicy, calculate_delay
from cairn_operator.models import JobSpec


def _rand() -> float:
    return 0.0


# --- retries: limit = max_retries; backoff so that delays 1, 2 and the last are Dagster's ----------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (None, None),
        (RetryPolicy(), {"limit": 1, "backoff": {"durationSeconds": 0, "factor": 1.0, "maxDurationSeconds": 0}}),
        (
            RetryPolicy(max_retries=3, delay=2),
            {"limit": 3, "backoff": {"durationSeconds": 2, "factor": 1.0, "maxDurationSeconds": 2}},
        ),
        (
            RetryPolicy(max_retries=3, delay=2, backoff=Backoff.LINEAR),
            {"limit": 3, "backoff": {"durationSeconds": 2, "factor": 2.0, "maxDurationSeconds": 6}},
        ),
        (
            RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL),
            {"limit": 3, "backoff": {"durationSeconds": 2, "factor": 3.0, "maxDurationSeconds": 14}},
        ),
        (  # fractions of a second: rounded up (never sooner than Dagster)
            RetryPolicy(max_retries=2, delay=0.2, backoff=Backoff.EXPONENTIAL),
            {"limit": 2, "backoff": {"durationSeconds": 1, "factor": 3.0, "maxDurationSeconds": 1}},
        ),
        (  # jitter is not carried
            RetryPolicy(max_retries=1, delay=5, jitter=Jitter.FULL),
            {"limit": 1, "backoff": {"durationSeconds": 5, "factor": 1.0, "maxDurationSeconds": 5}},
        ),
        (
            RetryPolicy(max_retries=0, delay=1),
            {"limit": 0, "backoff": {"durationSeconds": 1, "factor": 1.0, "maxDurationSeconds": 1}},
        ),
    ],
)
def test_retries_of(policy: RetryPolicy | None, expected: dict[str, Any] | None) -> None:
    assert retries_of(policy) == expected


@pytest.mark.parametrize("backoff", [None, Backoff.LINEAR, Backoff.EXPONENTIAL])
@pytest.mark.parametrize("max_retries", [1, 2, 3, 5])
@pytest.mark.parametrize("delay", [1, 3])
def test_cluster_delays_are_dagsters_first_second_and_last(
    backoff: Backoff | None, max_retries: int, delay: int
) -> None:
    retries = retries_of(RetryPolicy(max_retries=max_retries, delay=delay, backoff=backoff))
    assert retries is not None and retries["limit"] == max_retries
    b = retries["backoff"]
    cluster = ExponentialRetries(retries["limit"], b["durationSeconds"], b["factor"], b["maxDurationSeconds"])
    dagster = [calculate_delay(n, backoff, None, delay, _rand) for n in range(1, max_retries + 1)]
    ours = [cluster.delay(n, _rand) for n in range(1, max_retries + 1)]
    assert ours[0] == dagster[0] and ours[-1] == dagster[-1]
    if max_retries >= 2:
        assert ours[1] == dagster[1]
    if max_retries <= 3:
        assert ours == dagster
    assert all(o >= d for o, d in zip(ours[:3], dagster[:3], strict=False))


def test_more_retries_than_the_cluster_allows_is_refused() -> None:
    assert retries_of(RetryPolicy(max_retries=MAX_CLUSTER_RETRIES)) is not None
    with pytest.raises(ValueError, match=r"op flaky: RetryPolicy\(max_retries=21\).*lower max_retries"):
        retries_of(RetryPolicy(max_retries=MAX_CLUSTER_RETRIES + 1), "op flaky")


# --- tags: label-safe ones as labels, the others as annotations, all of them exactly in JSON --------------


@pytest.mark.parametrize(
    ("tags", "labels", "annotations"),
    [
        ({}, None, None),
        ({"team": "data"}, {"p/team": "data"}, {}),
        ({"team": "data eng"}, {}, {"p/team": "data eng"}),  # a space: no label value
        ({"owner": "x" * 64}, {}, {"p/owner": "x" * 64}),  # longer than a label value
        ({"dagster/priority": "3"}, {}, {}),  # a `/` in the key: no label name, only in the JSON
        ({"-bad": "v", "ok.key_1": "v-1"}, {"p/ok.key_1": "v-1"}, {}),
        ({"empty": ""}, {"p/empty": ""}, {}),
    ],
)
def test_pod_metadata(tags: dict[str, str], labels: dict[str, str] | None, annotations: dict[str, str] | None) -> None:
    meta = pod_metadata(tags, "p/", "cairn.dev/tags")
    if labels is None:
        assert meta == {}
        return
    assert meta.get("labels", {}) == labels
    assert json.loads(meta["annotations"].pop("cairn.dev/tags")) == tags
    assert meta["annotations"] == annotations


def test_pod_metadata_stays_within_the_crds_bounds() -> None:
    tags = {f"k{i:03}": "v" for i in range(100)}
    meta = pod_metadata(tags, "p/", "a/json")
    assert len(meta["labels"]) == 63 and len(meta["annotations"]) <= 64
    assert json.loads(meta["annotations"]["a/json"]) == tags


# --- a job's manifest: the pieces in place, and the CRD's models accept it -------------------------------

POLICY = RetryPolicy(max_retries=2, delay=1, backoff=Backoff.LINEAR)


@op(tags={"team": "data", "note": "two words"}, retry_policy=POLICY, required_resource_keys={"db"})
def extract() -> int:
    return 1


@op(out=Out(io_manager_key="files"))
def transform(x: int) -> int:
    return x + 1


@op(ins={"x": In(int)})
def load(x: int) -> None:
    pass


@job(
    tags={"owner": "ana"},
    op_retry_policy=RetryPolicy(max_retries=1),
    resource_defs={"db": object(), "files": object(), "other": object()},
    config={
        "resources": {
            "db": {"config": {"url": "sqlite://"}},
            "files": {"config": {"base_dir": "/data"}},
            "other": {"config": {"x": 1}},
        }
    },
)
def etl() -> None:
    load(transform(extract()))


def _ops(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in doc["spec"]["ops"]}


def test_the_manifest_carries_retries_tags_and_resources_config() -> None:
    doc = job_manifest(etl, "m:etl", image="img")
    ops = _ops(doc)
    assert ops["extract"]["retries"] == retries_of(POLICY)
    assert ops["transform"]["retries"] == retries_of(RetryPolicy(max_retries=1))  # the job's op_retry_policy
    assert ops["extract"]["podTemplate"]["labels"] == {"tag.cairn.dev/team": "data"}
    notes = ops["extract"]["podTemplate"]["annotations"]
    assert notes["tag.cairn.dev/note"] == "two words"
    assert json.loads(notes[OP_TAGS_ANNOTATION]) == {"team": "data", "note": "two words"}
    assert "podTemplate" not in ops["load"]
    assert doc["spec"]["podTemplate"]["labels"] == {"run-tag.cairn.dev/owner": "ana"}
    assert json.loads(doc["spec"]["podTemplate"]["annotations"][RUN_TAGS_ANNOTATION]) == {"owner": "ana"}
    env = {o: {e["name"]: e["value"] for e in ops[o].get("env", [])} for o in ops}
    assert json.loads(env["extract"][RESOURCES_ENV]) == {"db": {"config": {"url": "sqlite://"}}}
    assert json.loads(env["transform"][RESOURCES_ENV]) == {"files": {"config": {"base_dir": "/data"}}}
    assert RESOURCES_ENV not in env["load"]  # the default io_manager has no config here
    JobSpec.model_validate(doc["spec"])


def test_node_tags_and_retry_policy_win() -> None:
    other = RetryPolicy(max_retries=4, delay=2)

    @job
    def tagged() -> None:
        extract.tag({"team": "ml"}).with_retry_policy(other)()

    ops = _ops(job_manifest(tagged, "m:tagged", image="img"))
    assert ops["extract"]["podTemplate"]["labels"] == {"tag.cairn.dev/team": "ml"}
    assert ops["extract"]["retries"]["limit"] == 4
    assert ops["extract"]["retries"]["backoff"]["maxDurationSeconds"] == math.ceil(2)


@pytest.mark.parametrize("run_config", [None, {}, {"resources": {}}, {"ops": {}}])
def test_resources_config_of_without_resources(run_config: dict[str, Any] | None) -> None:
    assert resources_config_of(etl.nodes["extract"], run_config) == {}


def test_a_job_without_dagster_extras_keeps_its_manifest() -> None:
    @op
    def one() -> int:
        return 1

    @job
    def plain() -> None:
        one()

    doc = job_manifest(plain, "m:plain", image="img")
    assert doc["spec"]["ops"] == [{"name": "one", "codeVersion": one.code_version}]
    assert "podTemplate" not in doc["spec"]
