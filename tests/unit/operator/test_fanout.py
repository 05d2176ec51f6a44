"""Fan-out on the cluster, without one: a Job with a dynamic output, its mapped ops and a collector, driven
through `reconcile` cycle by cycle; the pods of mapped steps; and re-execution plans of such Runs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from cairn.planner import Mode, Request
from cairn_operator.graph import InvalidJob, build
from cairn_operator.models import JobSpec
from cairn_operator.reconcile import CreatePod, PodObs, RunInput, reconcile
from cairn_operator.replan import child_execution, parent_view, plan_child
from cairn_operator.resources import ANNOTATION_STEP, LABEL_STEP, pod_name, pod_step, step_inputs, step_pod
from tests.unit.operator.test_reconcile import T0, fail_msg

OPS: list[dict[str, Any]] = [
    {"name": "split", "outputs": ["shards"], "dynamicOutputs": ["shards"]},
    {"name": "train", "inputs": {"shard": "split.shards"}},
    {"name": "score", "inputs": {"model": "train"}},
    {"name": "report", "collect": {"scores": "score"}},
]


def spec(ops: list[dict[str, Any]] | None = None) -> JobSpec:
    return JobSpec.model_validate(
        {"image": "img", "python": {"job": "m:j"}, "storage": {"secretRef": {"name": "s"}}, "ops": ops or OPS}
    )


def ok(step: str, *outs: str) -> str:
    return json.dumps(
        {"protocol": 1, "status": "SUCCESS", "outputs": {o: {"key": f"ns/r/{step}/{o}"} for o in outs or ("result",)}}
    )


def obs(step: str, phase: str, msg: str | None = None) -> PodObs:
    return PodObs(name=f"p-{step}", step=step, attempt=1, phase=phase, message=msg, exit_code=0)


def cycle(status: dict[str, Any], pods: list[PodObs], keys: dict[str, Any] | None = None, par: int = 10) -> Any:
    run = RunInput(name="r", uid="u", generation=1, status=status, max_parallel=par, dynamic_keys=keys or {})
    return reconcile(run, build(spec()), pods, T0)


def created(res: Any) -> list[str]:
    return [a.step for a in res.actions if isinstance(a, CreatePod)]


def test_the_graph_knows_what_is_mapped_and_collected() -> None:
    g = build(spec())
    assert g.mapped == {"train": ("split", "shards"), "score": ("split", "shards")}
    assert g.collects == {"report": {"scores": ("score", "result")}}
    assert g.order == ("split", "train", "score", "report")
    assert g.concrete({}).order == ("split", "train[*]", "score[*]", "report")


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        (
            [{"name": "split", "dynamicOutputs": ["items"]}],
            r"dynamicOutputs \['items'\] are not in its outputs",
        ),
        (
            [*OPS[:2], {**OPS[0], "name": "split2"}, {"name": "both", "inputs": {"a": "train", "b": "split2.shards"}}],
            r"input 'b' of op both reads the dynamic output split2.shards",
        ),
        (
            [*OPS[:3], {"name": "report", "collect": {"s": "nope"}}],
            r"collect input 's' reads 'nope', which is not an output",
        ),
        ([OPS[0], {"name": "report", "collect": {"s": "split.shards"}}], "collects op split, which is not mapped"),
    ],
)
def test_fan_out_that_cannot_run_is_refused(ops: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(InvalidJob, match=message):
        build(spec(ops))


def test_a_run_fans_out_one_pod_per_key_within_max_parallel_and_collects() -> None:
    first = cycle({}, [])
    assert created(first) == ["split"]
    assert list(first.status["steps"]) == ["split", "train[*]", "score[*]", "report"]

    pods = [obs("split", "Succeeded", ok("split", "shards"))]
    waiting = cycle(first.status, pods)  # the keys are not read yet: split stays running, saying so
    assert waiting.status["steps"]["split"]["phase"] == "Running" and created(waiting) == []
    assert "mapping keys" in waiting.status["steps"]["split"]["message"]

    fanned = cycle(first.status, pods, keys={"split": {"shards": ["a", "b", "c"]}}, par=2)
    steps = fanned.status["steps"]
    assert steps["split"]["keys"] == {"shards": ["a", "b", "c"]}
    assert "train[*]" not in steps and "score[*]" not in steps
    assert [s for s in steps if s.startswith(("train", "score"))] == [
        *(f"train[{k}]" for k in "abc"),
        *(f"score[{k}]" for k in "abc"),
    ]
    assert created(fanned) == ["train[a]", "train[b]"], "maxParallel 2"

    status = fanned.status
    pods += [obs("train[a]", "Succeeded", ok("train[a]")), obs("train[b]", "Failed", fail_msg("boom"))]
    nxt = cycle(status, pods, par=2)
    assert created(nxt) == ["train[c]", "score[a]"]
    pods += [obs("train[c]", "Succeeded", ok("train[c]")), obs("score[a]", "Succeeded", ok("score[a]"))]
    pods += [obs("score[c]", "Succeeded", ok("score[c]"))]
    last = cycle(cycle(nxt.status, pods, par=2).status, pods, par=2)
    phases = {s: st["phase"] for s, st in last.status["steps"].items()}
    assert phases["train[b]"] == "Failed" and phases["score[b]"] == "NotExecuted"
    assert phases["report"] == "NotExecuted" and last.status["phase"] == "Failed"


def test_a_mapped_step_pod_reads_its_keys_value_and_is_named_for_any_key() -> None:
    graph = build(spec()).concrete({("split", "shards"): ["shard_0", "x" * 100]})
    steps: dict[str, Any] = {
        "split": {
            "phase": "Succeeded",
            "outputs": {"shards": {"key": "ns/r/split/shards"}},
            "keys": {"shards": ["shard_0", "x" * 100]},
        }
    }
    long_step = f"train[{'x' * 100}]"
    for step in ("train[shard_0]", long_step):
        inputs = step_inputs(graph, step, steps)
        key = step[len("train[") : -1]
        assert inputs == {f"split.shards[{key}]": {"key": f"ns/r/split/shards[{key}]", "names": ["shard"]}}
        pod = step_pod(
            run="r", run_uid="u", namespace="ns", job_name="j", spec=spec(), graph=graph, step=step, attempt=1,
            inputs=inputs, config=None,
        )  # fmt: skip
        name = pod["metadata"]["name"]
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
        assert name == pod_name("r", "u", step, 1)
        assert pod["metadata"]["labels"][LABEL_STEP] == "train"
        assert pod["metadata"]["annotations"][ANNOTATION_STEP] == step and pod_step(pod) == step
        ctx = json.loads(pod["spec"]["containers"][0]["env"][0]["value"])
        assert ctx["deps"] == {"shard": ["split", f"shards[{key}]"]}
    assert pod_name("r", "u", "train[a_b]", 1) != pod_name("r", "u", "train[a-b]", 1)


def test_a_collector_pod_gets_every_keys_location() -> None:
    graph = build(spec()).concrete({("split", "shards"): ["a", "b"]})
    steps = {
        f"score[{k}]": {"phase": "Succeeded", "outputs": {"result": {"key": f"r/score[{k}]/result"}}} for k in "ab"
    }
    pod = step_pod(
        run="r", run_uid="u", namespace="ns", job_name="j", spec=spec(), graph=graph, step="report", attempt=1,
        inputs=step_inputs(graph, "report", steps), config=None,
    )  # fmt: skip
    ctx = json.loads(pod["spec"]["containers"][0]["env"][0]["value"])
    assert ctx["collect"] == {"scores": [["a", "score[a].result"], ["b", "score[b].result"]]}
    assert ctx["inputs"]["score[b].result"] == {"key": "r/score[b]/result", "names": ["scores[b]"]}


def test_from_failure_of_a_fanned_out_run_reruns_exactly_the_failed_shards() -> None:
    keys = [f"s{i}" for i in range(1000)]
    failed = {f"s{i}" for i in range(0, 1000, 100)}  # 10 shards
    steps: dict[str, Any] = {
        "split": {"phase": "Succeeded", "outputs": {"shards": {"key": "ns/p/split/shards"}}, "keys": {"shards": keys}},
        "report": {"phase": "NotExecuted"},
    }
    for k in keys:
        bad = k in failed
        steps[f"train[{k}]"] = {"phase": "Failed" if bad else "Succeeded"}
        steps[f"score[{k}]"] = {"phase": "NotExecuted" if bad else "Succeeded"}
        if not bad:
            steps[f"train[{k}]"]["outputs"] = {"result": {"key": f"ns/p/train[{k}]/result"}}
            steps[f"score[{k}]"]["outputs"] = {"result": {"key": f"ns/p/score[{k}]/result"}}
    status = {"phase": "Failed", "steps": steps}
    p = plan_child(build(spec()), "p", status, "p", Request(Mode.FROM_FAILURE))
    assert len(p.to_run) == 10 + 10 + 1
    assert {s for s, _ in p.to_run} == {f"train[{k}]" for k in failed} | {f"score[{k}]" for k in failed} | {"report"}
    assert len(p.reused_steps) == 1 + 990 * 2
    execution = child_execution(p, "p", "p", {}, status)
    assert execution.reused["split"].keys == {"shards": keys}

    # the child starts with every instance (keys known through split, reused) and creates only the 10 failed
    run = RunInput(name="c", uid="u2", generation=1, status={}, max_parallel=1000, execution=execution)
    res = reconcile(run, build(spec()), [], T0)
    assert sorted(created(res)) == sorted(f"train[{k}]" for k in failed)
    assert res.status["steps"]["train[s1]"]["phase"] == "Reused"
    assert parent_view("c", res.status, "p").keys == {("split", "shards"): tuple(keys)}


def test_a_rerun_dynamic_step_fans_out_again_over_its_new_keys() -> None:
    steps: dict[str, Any] = {
        "split": {
            "phase": "Succeeded",
            "outputs": {"shards": {"key": "ns/p/split/shards"}},
            "keys": {"shards": ["a", "b"]},
        },
        "train[a]": {"phase": "Succeeded", "outputs": {"result": {"key": "ns/p/train[a]/result"}}},
        "train[b]": {"phase": "Failed"},
        "score[a]": {"phase": "Succeeded", "outputs": {"result": {"key": "ns/p/score[a]/result"}}},
        "score[b]": {"phase": "NotExecuted"},
        "report": {"phase": "NotExecuted"},
    }
    status = {"phase": "Failed", "steps": steps}
    p = plan_child(build(spec()), "p", status, "p", Request(Mode.FROM_SELECTED, ("split",)))
    assert p.steps_to_run == ["split", "train[*]", "score[*]", "report"]
    execution = child_execution(p, "p", "p", {}, status)
    run = RunInput(name="c", uid="u2", generation=1, status={}, max_parallel=10, execution=execution)
    first = reconcile(run, build(spec()), [], T0)
    assert created(first) == ["split"]
    pods = [obs("split", "Succeeded", ok("split", "shards"))]
    run = RunInput(
        name="c", uid="u2", generation=1, status=first.status, max_parallel=10, execution=execution,
        dynamic_keys={"split": {"shards": ["b", "c", "d"]}},
    )  # fmt: skip
    res = reconcile(run, build(spec()), pods, T0)
    assert created(res) == ["train[b]", "train[c]", "train[d]"]
    assert "train[a]" not in res.status["steps"], "the parent's instance of a key no longer emitted is not mixed in"
    assert res.status["steps"]["train[c]"]["reason"] == "downstream-of:split"


def collector_pod(n: int) -> dict[str, Any]:
    keys = [f"shard_{i}" for i in range(n)]
    graph = build(spec()).concrete({("split", "shards"): keys})
    steps = {
        f"score[{k}]": {"phase": "Succeeded", "outputs": {"result": {"key": f"ns/run-1.0a1b2c3d/score[{k}]/result"}}}
        for k in keys
    }
    return step_pod(
        run="r", run_uid="u", namespace="ns", job_name="j", spec=spec(), graph=graph, step="report", attempt=1,
        inputs=step_inputs(graph, "report", steps), config=None,
    )  # fmt: skip


def test_a_large_collectors_context_is_packed_and_reads_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from cairn.step import PACKED_CONTEXT_ENV, read_context

    env = {e["name"]: e.get("value") for e in collector_pod(1000)["spec"]["containers"][0]["env"]}
    assert "CAIRN_STEP_CONTEXT" not in env and len(env[PACKED_CONTEXT_ENV]) < 120 * 1024
    monkeypatch.delenv("CAIRN_STEP_CONTEXT", raising=False)
    monkeypatch.setenv(PACKED_CONTEXT_ENV, env[PACKED_CONTEXT_ENV])
    ctx = read_context(None)
    assert len(ctx["collect"]["scores"]) == 1000 and ctx["collect"]["scores"][999] == [
        "shard_999",
        "score[shard_999].result",
    ]


def test_a_context_too_large_even_packed_is_refused_saying_what_to_do() -> None:
    from cairn.step import ContextTooLarge

    with pytest.raises(ContextTooLarge, match="collect fewer keys per step"):
        collector_pod(30000)


def test_a_map_too_large_for_a_runs_status_fails_its_dynamic_step_saying_so() -> None:
    first = cycle({}, [])
    pods = [obs("split", "Succeeded", ok("split", "shards"))]
    res = cycle(first.status, pods, keys={"split": {"shards": [f"k{i}" for i in range(1100)]}})
    split = res.status["steps"]["split"]
    assert split["phase"] == "Failed" and "would make this Run 2202 steps, more than the 2100" in split["message"]
    assert "keys" not in split and res.status["phase"] == "Failed" and created(res) == []


def test_a_large_runs_outputs_keep_what_reexecution_needs() -> None:
    first = cycle({}, [])
    split = obs("split", "Succeeded", ok("split", "shards"))
    fanned = cycle(first.status, [split], keys={"split": {"shards": [f"k{i}" for i in range(600)]}}, par=1)
    msg = json.dumps(
        {"protocol": 1, "status": "SUCCESS", "outputs": {"result": {"key": "k", "size": 3, "etag": "e", "sha256": "h"}}}
    )
    done = cycle(fanned.status, [split, obs("train[k0]", "Succeeded", msg)], par=1)
    assert done.status["steps"]["train[k0]"]["outputs"] == {"result": {"key": "k", "size": 3, "etag": "e"}}


def test_canceling_mid_map_deletes_the_running_instances_and_cancels_the_rest() -> None:
    from cairn_operator.reconcile import DeletePod

    first = cycle({}, [])
    split = obs("split", "Succeeded", ok("split", "shards"))
    fanned = cycle(first.status, [split], keys={"split": {"shards": ["a", "b", "c"]}}, par=2)
    running = [obs("train[a]", "Running"), obs("train[b]", "Running")]
    run = RunInput(name="r", uid="u", generation=2, status=fanned.status, max_parallel=2, cancel=True)
    res = reconcile(run, build(spec()), [split, *running], T0)
    deleted = sorted(a.name for a in res.actions if isinstance(a, DeletePod))
    assert deleted == ["p-train[a]", "p-train[b]"] and created(res) == []
    phases = {s: st["phase"] for s, st in res.status["steps"].items()}
    assert phases["train[a]"] == phases["train[b]"] == "Interrupted"
    assert phases["train[c]"] == phases["score[a]"] == phases["report"] == "Canceled"
    assert res.status["phase"] == "Canceled"
    # from failure resumes the map: the interrupted and never-run instances, nothing of split re-run
    p = plan_child(build(spec()), "r", res.status, "r", Request(Mode.FROM_FAILURE))
    assert dict(p.to_run) == {
        "train[a]": "interrupted",
        "train[b]": "interrupted",
        "train[c]": "not-executed",
        "score[a]": "downstream-of:train[a]",
        "score[b]": "downstream-of:train[b]",
        "score[c]": "downstream-of:train[c]",
        "report": "downstream-of:train[a]",
    }
    assert p.reused_steps == {"split": "r"} and not p.remapped
