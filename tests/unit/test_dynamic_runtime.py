"""Dynamic fan-out in the runtime: authoring (`DynamicOut`, `.map`, `.collect`), the in-process executor
(instances `op[key]`, re-execution, key-set changes, zero keys), the run store's mapping keys, the pod
step entrypoint (python and command forms) and `cairn manifest`. Pure and fast: temp dirs only."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn import (
    DefinitionError,
    DynamicOut,
    DynamicOutput,
    Field,
    Instance,
    JobDefinition,
    OpDefinition,
    Out,
    Output,
    ReexecutionOptions,
    RunStatus,
    StepStatus,
    execute_job,
    job,
    op,
)
from cairn.dynamic import MappingKeyError
from cairn.examples.fanout import fanout
from cairn.execution import Event, concrete_deps, job_graph
from cairn.io import FilesystemIOManager, output_key
from cairn.manifest import job_manifest
from cairn.step import InvocationError, exec_command, resolve_step
from cairn.step import run as run_step

OK, FAIL, NOTX, REUSED = StepStatus.SUCCESS, StepStatus.FAILURE, StepStatus.NOT_EXECUTED, StepStatus.REUSED
FAIL_ENV = "CAIRN_TEST_FAN_FAIL"
CALLS: list[str] = []


# ----- a job with every fan-out feature: two outputs (one dynamic), broadcast, chained map, collect --------
@op(out={"items": DynamicOut(), "n": Out()}, config_schema={"keys": Field(list, default_value=["a", "b", "c"])})
def split(context: Any) -> Iterator[Any]:
    CALLS.append("split")
    keys = context.op_config["keys"]
    for k in keys:
        yield DynamicOutput(k.upper(), mapping_key=k, output_name="items")
    yield Output(len(keys), "n")


@op
def model() -> int:
    CALLS.append("model")
    return 100


@op
def proc(context: Any, x: str, m: int) -> str:
    import os

    CALLS.append(context.step)
    if context.mapping_key in os.environ.get(FAIL_ENV, "").split(","):
        raise Exception(f"shard {context.mapping_key} failed")
    return f"{x}:{m}"


@op
def score(context: Any, r: str) -> str:
    CALLS.append(context.step)
    assert context.op_name == "score"
    return r + "!"


@op
def summarize(xs: list[str], n: int) -> list[Any]:
    CALLS.append("summarize")
    return [*xs, n]


@job
def fan() -> None:
    items, n = split()
    m = model()
    results = items.map(lambda x: proc(x, m))
    summarize(results.map(score).collect(), n)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    inst = Instance(tmp_path / "home")
    yield inst
    inst.close()


@pytest.fixture(autouse=True)
def _calls(monkeypatch: pytest.MonkeyPatch) -> None:
    CALLS.clear()
    monkeypatch.delenv(FAIL_ENV, raising=False)


def ran() -> list[str]:
    out = list(CALLS)
    CALLS.clear()
    return out


def keys_config(*keys: str) -> dict[str, Any]:
    return {"ops": {"split": {"config": {"keys": list(keys)}}}}


# ----- authoring -------------------------------------------------------------------------------------
def test_the_job_graph_records_dynamic_mapped_and_collect() -> None:
    g = job_graph(fan)
    assert g.dynamic == {"split": ("items",)}
    assert g.mapped == {"proc": ("split", "items"), "score": ("split", "items")}
    assert g.collects == {"summarize": {"xs": ("score", "result")}}
    assert g.deps["proc"] == {"x": ("split", "items"), "m": ("model", "result")}  # m is broadcast
    c = g.concrete({("split", "items"): ("a", "b")})
    assert c.steps == ("split", "model", "proc[a]", "proc[b]", "score[a]", "score[b]", "summarize")
    assert c.deps["summarize"] == {
        "n": ("split", "n"),
        "xs[a]": ("score[a]", "result"),
        "xs[b]": ("score[b]", "result"),
    }
    assert fan.step_versions(None).keys() == set(fan.nodes)  # keyed by node


def test_map_of_a_function_calling_several_ops_and_chained_maps() -> None:
    @op(out=DynamicOut())
    def emit() -> list[DynamicOutput]:
        return []

    @op
    def train(x: int) -> int:
        return x

    @op
    def evaluate(x: int) -> int:
        return x

    @op
    def total(xs: list[int]) -> int:
        return sum(xs)

    @job
    def j() -> None:
        scored = emit().map(lambda x: evaluate(train(x)))
        again = scored.map(evaluate)
        total(again.collect())

    assert job_graph(j).mapped == {n: ("emit", "result") for n in ("train", "evaluate", "evaluate_2")}
    assert j.collects() == {"total": {"xs": ("evaluate_2", "result")}}


def _define(body: Any) -> None:
    job(name="refused")(body)  # a lambda's name is not a valid job name (Dagster's rule)


@op(out=DynamicOut())
def keys_op() -> list[DynamicOutput]:
    return []


@op(out=DynamicOut())
def other_keys() -> list[DynamicOutput]:
    return []


@op(out=DynamicOut())
def nested(x: int) -> list[DynamicOutput]:
    return []


@op
def one(x: Any) -> Any:
    return x


@op
def two(x: Any, y: Any) -> Any:
    return x


def test_refusals_say_what_is_wrong() -> None:
    with pytest.raises(DefinitionError, match="fan-out is one level deep"):
        _define(lambda: keys_op().map(nested))
    with pytest.raises(DefinitionError, match=r"reads mapped op one .*without collecting it; use .collect\(\)"):
        _define(lambda: one(keys_op().map(one)))
    with pytest.raises(DefinitionError, match=r"reads the dynamic output keys_op.result directly; map over it"):
        _define(lambda: one(keys_op()))
    with pytest.raises(DefinitionError, match="two fan-out dimensions"):
        _define(lambda: keys_op().map(lambda x: other_keys().map(lambda y: two(x, y))))
    with pytest.raises(DefinitionError, match=r"collect a mapped op's output"):
        _define(lambda: one(keys_op().collect()))

    def collect_inside() -> None:
        h = keys_op()
        h.map(lambda x: two(x, h.map(one).collect()))

    with pytest.raises(DefinitionError, match="collect outside it"):
        _define(collect_inside)


# ----- the in-process executor -----------------------------------------------------------------------
def test_a_failing_shard_then_from_failure_reruns_exactly_it_and_the_collector(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAIL_ENV, "b")
    first = execute_job(fan, instance=instance)
    assert first.status is RunStatus.FAILURE
    assert first.step_statuses == {
        "split": OK,
        "model": OK,
        "proc[a]": OK,
        "proc[b]": FAIL,
        "proc[c]": OK,
        "score[a]": OK,
        "score[b]": NOTX,
        "score[c]": OK,
        "summarize": NOTX,
    }
    assert ran() == ["split", "model", "proc[a]", "proc[b]", "proc[c]", "score[a]", "score[c]"]
    run = first.get_run()
    assert run.keys == {("split", "items"): ("a", "b", "c")}
    assert list(run.steps) == list(first.step_statuses)  # placeholders replaced in order, in the store too
    assert first.output_from_lineage("proc[a]") == "A:100"
    assert first.output_from_lineage("split", "items") == {"a": "A", "b": "B", "c": "C"}
    monkeypatch.setenv(FAIL_ENV, "")
    child = execute_job(
        fan, instance=instance, reexecution_options=ReexecutionOptions.from_failure(first.run_id, instance)
    )
    assert child.success
    assert child.executed_steps == ["proc[b]", "score[b]", "summarize"] == ran()
    assert child.step_statuses["proc[a]"] is REUSED and child.step_statuses["split"] is REUSED
    assert child.output_from_lineage("summarize") == ["A:100!", "B:100!", "C:100!", 3]
    assert child.output_from_lineage("score") == {"a": "A:100!", "b": "B:100!", "c": "C:100!"}
    assert child.get_run().keys == {("split", "items"): ("a", "b", "c")}  # recorded on the child too
    # a grandchild sees the keys through the child
    grand = execute_job(
        fan, instance=instance, reexecution_options=ReexecutionOptions(child.run_id, step_selection=["summarize"])
    )
    assert grand.executed_steps == ["summarize"] and grand.output_from_lineage("summarize")[-1] == 3


def test_output_for_node_of_a_mapped_op_with_a_failed_instance_names_it(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAIL_ENV, "b")
    first = execute_job(fan, instance=instance)
    with pytest.raises(Exception, match=r"no output 'result' of step 'score\[b\]'"):
        first.output_from_lineage("score")


@pytest.mark.parametrize(
    ("selection", "executed"),
    [
        (["proc[b]"], ["proc[b]"]),
        (["proc[*]"], ["proc[a]", "proc[b]", "proc[c]"]),
        (["proc[?]"], ["proc[a]", "proc[b]", "proc[c]"]),
        (["proc[b]*"], ["proc[b]", "score[b]", "summarize"]),
    ],
)
def test_step_selection_of_instances(instance: Instance, selection: list[str], executed: list[str]) -> None:
    first = execute_job(fan, instance=instance)
    ran()
    child = execute_job(fan, instance=instance, reexecution_options=ReexecutionOptions(first.run_id, selection))
    assert child.success and child.executed_steps == executed == ran()


def test_a_rerun_dynamic_step_with_other_keys_remaps_over_the_new_keys_only(instance: Instance) -> None:
    first = execute_job(fan, instance=instance, run_config=keys_config("a", "b", "c"))
    events: list[Event] = []
    child = execute_job(
        fan,
        instance=instance,
        run_config=keys_config("b", "d"),
        reexecution_options=ReexecutionOptions(first.run_id, ["split*"]),
        on_event=events.append,
    )
    assert child.success
    assert child.executed_steps == ["split", "proc[b]", "proc[d]", "score[b]", "score[d]", "summarize"]
    assert child.output_from_lineage("summarize") == ["B:100!", "D:100!", 2]
    changed = [d for kind, _, d in events if kind == "keys_changed"]
    assert changed == [{"output": "items", "added": ["d"], "removed": ["a", "c"], "before": ["a", "b", "c"]}]
    run = child.get_run()
    assert run.keys == {("split", "items"): ("b", "d")}
    assert not [s for s in run.steps if s in ("proc[a]", "proc[c]")]
    assert not [k for k in run.outputs if k[0] in ("proc[a]", "proc[c]") or k == ("split", "items[a]")]
    assert first.get_run().keys == {("split", "items"): ("a", "b", "c")}  # the parent is unchanged


def test_zero_keys_map_nothing_and_collect_an_empty_list(instance: Instance) -> None:
    result = execute_job(fan, instance=instance, run_config=keys_config())
    assert result.success
    assert list(result.step_statuses) == ["split", "model", "summarize"]
    assert result.output_from_lineage("summarize") == [0]
    assert result.get_run().keys == {("split", "items"): ()}
    assert result.output_from_lineage("proc") == {}


@op(out=DynamicOut(), config_schema={"keys": Field(list)})
def emit_keys(context: Any) -> list[DynamicOutput]:
    return [DynamicOutput(i, mapping_key=k) for i, k in enumerate(context.op_config["keys"])]


@op
def double(x: int) -> int:
    return 2 * x


@op
def listed(xs: list[int]) -> list[int]:
    return xs


@job
def simple() -> None:
    listed(emit_keys().map(double).collect())


def test_a_returned_list_of_dynamic_outputs_keeps_emission_order(instance: Instance) -> None:
    result = execute_job(simple, instance=instance, run_config={"ops": {"emit_keys": {"config": {"keys": ["z", "a"]}}}})
    assert result.success and result.output_from_lineage("listed") == [0, 2]
    assert result.executed_steps == ["emit_keys", "double[z]", "double[a]", "listed"]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["a", "a"], 'yielded a DynamicOutput with mapping_key "a" multiple times'),
        (["a-b"], "mapping_key 'a-b' .* is not valid"),
        (["x" * 101], "is not valid"),
    ],
)
def test_duplicate_and_malformed_keys_fail_the_dynamic_step(instance: Instance, keys: list[str], message: str) -> None:
    result = execute_job(simple, instance=instance, run_config={"ops": {"emit_keys": {"config": {"keys": keys}}}})
    assert result.step_statuses == {"emit_keys": FAIL, "double[*]": NOTX, "listed": NOTX}
    assert "MappingKeyError" in result.errors["emit_keys"]
    assert re.search(message, result.errors["emit_keys"])


def _mapping_job(bad: OpDefinition) -> JobDefinition:
    @job(name=f"j_{bad.name}")
    def j() -> None:
        out = bad()
        (out[0] if isinstance(out, tuple) else out).map(double)

    return j


def test_output_contract_of_dynamic_outputs(instance: Instance) -> None:
    @op(out={"items": DynamicOut(), "n": Out()})
    def wrong_kind() -> Iterator[Any]:
        yield Output([1], "items")

    @op(out={"items": DynamicOut(), "n": Out()})
    def wrong_target() -> Iterator[Any]:
        yield DynamicOutput(1, mapping_key="a", output_name="n")

    @op(out=DynamicOut())
    def not_a_list() -> int:
        return 3

    @op(out=DynamicOut())
    def twice() -> Iterator[Any]:
        yield DynamicOutput(1, mapping_key="dunk")
        yield DynamicOutput(2, mapping_key="dunk")

    for bad, message in [  # Dagster's wording first (Dagster 1.13's DagsterInvariantViolationError)
        (wrong_kind, 'Compute for op "wrong_kind" for output "items" defined as dynamic must yield DynamicOutput'),
        (wrong_target, 'Compute for op "wrong_target" yielded a DynamicOutput, but did not use DynamicOutputDef'),
        (twice, 'Compute for op "twice" yielded a DynamicOutput with mapping_key "dunk" multiple times.'),
        (not_a_list, "Error with output for op \"not_a_list\": dynamic output 'result' expected a list of Dynamic"),
    ]:
        j = _mapping_job(bad)
        result = execute_job(j, instance=instance)
        assert result.step_statuses[bad.name] is FAIL
        assert message in result.errors[bad.name], result.errors[bad.name]


OLD_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, job_name TEXT NOT NULL, status TEXT NOT NULL, parent_run_id TEXT,
    root_run_id TEXT NOT NULL, tags TEXT NOT NULL, run_config TEXT NOT NULL, job_ref TEXT, mode TEXT,
    created REAL NOT NULL, updated REAL NOT NULL, host TEXT, pid INTEGER, pid_start INTEGER);
CREATE TABLE steps (run_id TEXT NOT NULL, step TEXT NOT NULL, seq INTEGER NOT NULL, state TEXT NOT NULL,
    reason TEXT, source_run_id TEXT, started REAL, finished REAL, error TEXT, PRIMARY KEY (run_id, step));
CREATE TABLE outputs (run_id TEXT NOT NULL, step TEXT NOT NULL, output TEXT NOT NULL, source_run_id TEXT NOT NULL,
    key TEXT NOT NULL, size INTEGER, sha256 TEXT, format TEXT NOT NULL DEFAULT 'pickle',
    PRIMARY KEY (run_id, step, output));
INSERT INTO runs VALUES ('old', 'unreliable_job', 'SUCCESS', NULL, 'old', '{}', '{}', NULL, NULL, 1, 2, 'h', 1, 1);
INSERT INTO steps VALUES ('old', 'start', 0, 'SUCCESS', NULL, NULL, 1, 2, NULL);
"""


def test_a_store_from_before_fan_out_opens_and_runs_fan_out_jobs(tmp_path: Path) -> None:
    home = tmp_path / "old"
    home.mkdir()
    con = sqlite3.connect(home / "runs.db")
    con.executescript(OLD_SCHEMA)
    con.close()
    inst = Instance(home)
    try:
        old = inst.get_run("old")
        assert old.keys == {} and old.view().keys == {} and old.steps["start"].status is OK
        result = execute_job(fanout, instance=inst)
        assert result.success and inst.get_run(result.run_id).keys == {
            ("split", "result"): ("shard_0", "shard_1", "shard_2")
        }
    finally:
        inst.close()


def test_the_example_fanout_job(instance: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_FANOUT_FAIL", "shard_1")
    first = execute_job(fanout, instance=instance)
    assert first.step_statuses["process[shard_1]"] is FAIL and first.step_statuses["summarize"] is NOTX
    monkeypatch.setenv("CAIRN_FANOUT_FAIL", "")
    child = execute_job(
        fanout, instance=instance, reexecution_options=ReexecutionOptions.from_failure(first.run_id, instance)
    )
    assert child.executed_steps == ["process[shard_1]", "summarize"]
    assert child.output_from_lineage("summarize") == 1 + 4 + 9


# ----- the pod step entrypoint -----------------------------------------------------------------------
REF = "cairn.examples.fanout:fanout"


def test_the_per_key_key_is_the_index_key_and_the_key_in_brackets() -> None:
    for ns, prefix in [("local", ""), ("team-a", "cairn/")]:
        index = output_key("run-1", "split", "items", namespace=ns, prefix=prefix)
        assert output_key("run-1", "split", "items[shard_7]", namespace=ns, prefix=prefix) == index + "[shard_7]"


def test_the_entrypoint_runs_a_dynamic_step_its_instances_and_the_collector(tmp_path: Path) -> None:
    storage = {"kind": "fs", "root": str(tmp_path / "store")}
    io = FilesystemIOManager(tmp_path / "store")
    res = run_step(REF, "r1", "split", {"storage": storage, "namespace": "ns", "config": {"shards": 2}})
    assert res["status"] == "SUCCESS", res
    assert set(res["outputs"]) == {"result"} and res["dynamic"] == {"result": {"count": 2}}
    index = res["outputs"]["result"]
    assert index["format"] == "json" and index["key"] == "ns/r1/split/result"
    assert io.load(index["key"], "json") == ["shard_0", "shard_1"]
    assert io.load(index["key"] + "[shard_1]") == 2

    values = {}
    for k in ("shard_0", "shard_1"):
        loc = {"key": f"{index['key']}[{k}]"}
        ctx: dict[str, Any] = {"storage": storage, "namespace": "ns", "inputs": {f"split.result[{k}]": loc}}
        if k == "shard_0":  # with the operator's concrete deps; shard_1 without: derived from the job
            ctx["deps"] = {"n": ["split", f"result[{k}]"]}
        res = run_step(REF, "r1", f"process[{k}]", ctx)
        assert res["status"] == "SUCCESS" and res["step"] == f"process[{k}]", res
        values[k] = res["outputs"]["result"]["key"]
        assert values[k] == f"ns/r1/process[{k}]/result"
    inputs = {f"process[{k}].result": {"key": key} for k, key in values.items()}
    deps = {f"results[{k}]": [f"process[{k}]", "result"] for k in ("shard_1", "shard_0")}  # key order as given
    res = run_step(REF, "r1", "summarize", {"storage": storage, "inputs": inputs, "deps": deps})
    assert res["status"] == "SUCCESS" and io.load(res["outputs"]["result"]["key"]) == 1 + 4
    collect = {"results": [[k, f"process[{k}].result"] for k in ("shard_0", "shard_1")]}
    res = run_step(REF, "r1", "summarize", {"storage": storage, "inputs": inputs, "collect": collect})
    assert res["status"] == "SUCCESS", res


def test_the_entrypoint_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    storage = {"kind": "fs", "root": str(tmp_path / "store")}
    with pytest.raises(InvocationError, match=r"no location for input\(s\) split.result\[shard_0\]"):
        run_step(REF, "r1", "process[shard_0]", {"storage": storage})
    with pytest.raises(InvocationError, match="whose keys are not known"):
        run_step(REF, "r1", "summarize", {"storage": storage})
    with pytest.raises(InvocationError, match=r"name one of its steps, process\[KEY\]"):
        run_step(REF, "r1", "process", {"storage": storage})
    with pytest.raises(InvocationError, match="is not mapped"):
        run_step(REF, "r1", "split[a]", {"storage": storage})
    assert resolve_step({"proc_2": None}, "proc-2[shard_1]", "j") == "proc_2[shard_1]"
    assert resolve_step({"proc_2": None}, "proc_2", "j") == "proc_2"
    assert concrete_deps(fan, "score[b]") == {"r": ("proc[b]", "result")}


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_the_command_form_uploads_a_dynamic_output_directory(tmp_path: Path) -> None:
    storage = {"kind": "fs", "root": str(tmp_path / "store")}
    io = FilesystemIOManager(tmp_path / "store")
    code = (
        "import os, pathlib; d = pathlib.Path(os.environ['CAIRN_OUTPUT_ITEMS']); "
        "(d / 'b').write_bytes(b'bee'); (d / 'a').write_bytes(b'ay'); "
        "pathlib.Path(os.environ['CAIRN_OUTPUT_N']).write_bytes(b'2')"
    )
    ctx = {"storage": storage, "namespace": "ns"}
    res, rc = exec_command("r1", "split", ["n"], [], _py(code), ctx, tmp_path / "w1", ["items"])
    assert rc == 0 and res["status"] == "SUCCESS", res
    assert res["dynamic"] == {"items": {"count": 2}} and set(res["outputs"]) == {"n", "items"}
    key = res["outputs"]["items"]["key"]
    assert res["outputs"]["items"]["format"] == "json" and io.load(key, "json") == ["a", "b"]  # sorted names
    assert io.load(key + "[b]", "bytes") == b"bee"

    empty, rc = exec_command("r1", "none", ["items"], [], _py("pass"), ctx, tmp_path / "w2", ["items"])
    assert rc == 0 and empty["dynamic"] == {"items": {"count": 0}}  # zero keys

    bad = "import os, pathlib; (pathlib.Path(os.environ['CAIRN_OUTPUT_ITEMS']) / 'a-b').write_bytes(b'')"
    res, rc = exec_command("r1", "bad", ["items"], [], _py(bad), ctx, tmp_path / "w3", ["items"])
    assert rc == 1 and res["status"] == "FAILURE" and res["error"]["type"] == "MappingKeyError"
    assert "'a-b'" in res["error"]["message"] and res["outputs"] == {}


def test_the_command_form_gets_a_collect_input_as_a_directory(tmp_path: Path) -> None:
    storage = {"kind": "fs", "root": str(tmp_path / "store")}
    io = FilesystemIOManager(tmp_path / "store")
    inputs = {}
    for k, v in [("b", b"2"), ("a", b"1")]:
        inputs[f"proc[{k}].result"] = {"key": io.store(f"ns/r0/proc[{k}]/result", v, "bytes").key}
    collect = {"xs": [["b", "proc[b].result"], ["a", "proc[a].result"]]}  # key order: b, a
    code = (
        "import os, pathlib; d = pathlib.Path(os.environ['CAIRN_INPUT_XS']); "
        "keys = pathlib.Path(os.environ['CAIRN_INPUT_XS_KEYS']).read_text().split(); "
        "out = b','.join(k.encode() + b'=' + (d / k).read_bytes() for k in keys); "
        "pathlib.Path(os.environ['CAIRN_OUTPUT_RESULT']).write_bytes(out)"
    )
    ctx = {"storage": storage, "inputs": inputs, "collect": collect}
    res, rc = exec_command("r1", "total", ["result"], [], _py(code), ctx, tmp_path / "w", [])
    assert rc == 0, res
    assert io.load(res["outputs"]["result"]["key"], "bytes") == b"b=2,a=1"
    with pytest.raises(InvocationError, match='which "inputs" does not locate'):
        exec_command("r1", "total", ["result"], [], _py("pass"), {**ctx, "inputs": {}}, tmp_path / "w4", [])
    with pytest.raises(InvocationError, match="is not valid"):
        exec_command("r1", "t", ["result"], [], _py("pass"), {**ctx, "collect": {"xs": [["a.b", "x.y"]]}}, tmp_path, [])


def test_the_step_cli_takes_dynamic_output_flags(tmp_path: Path) -> None:
    from cairn.step import main

    term = tmp_path / "term"
    ctx = json.dumps({"storage": {"kind": "fs", "root": str(tmp_path / "store")}})
    code = "import os, pathlib; (pathlib.Path(os.environ['CAIRN_OUTPUT_ITEMS']) / 'k1').write_bytes(b'x')"
    argv = ["exec", "--run-id", "r", "--step", "s", "--outputs", "items", "--dynamic-output", "items"]
    rc = main(
        [*argv, "--context", ctx, "--termination-path", str(term), "--workdir", str(tmp_path / "w"), "--", *_py(code)]
    )
    assert rc == 0 and json.loads(term.read_text())["dynamic"] == {"items": {"count": 1}}


# ----- cairn manifest --------------------------------------------------------------------------------
def test_the_manifest_lists_dynamic_outputs_and_collect_inputs() -> None:
    ops = {o["name"]: o for o in job_manifest(fan, "m:fan", image="img")["spec"]["ops"]}
    assert ops["split"]["dynamicOutputs"] == ["items"] and ops["split"]["outputs"] == ["items", "n"]
    assert ops["proc"]["inputs"] == {"x": "split.items", "m": "model"}
    assert ops["score"]["inputs"] == {"r": "proc"}
    assert ops["summarize"] == {**ops["summarize"], "inputs": {"n": "split.n"}, "collect": {"xs": "score"}}
    assert "dynamicOutputs" not in ops["proc"] and "collect" not in ops["proc"]


def test_mapping_key_errors_are_definition_errors() -> None:
    assert issubclass(MappingKeyError, DefinitionError)


# ----- Stale with fan-out: a changed op re-runs in every key, the rest is reused -----------------------
def test_stale_reruns_a_changed_mapped_op_in_every_key(instance: Instance) -> None:
    first = execute_job(fan, instance=instance)
    assert first.success
    ran()
    changed = _same_job_with_score_changed()
    child = execute_job(changed, instance=instance, reexecution_options=ReexecutionOptions.stale(first.run_id))
    assert child.success, child.errors
    assert child.executed_steps == ["score[a]", "score[b]", "score[c]", "summarize"] == ran()
    old, new = child.plan.versions["score[a]"]
    assert child.plan.reason("score[a]") == f"stale: {old} -> {new}" and str(new).startswith("v2+cfg:")
    assert child.plan.reason("summarize") == "downstream-of:score[a]"
    assert child.step_statuses["proc[b]"] is REUSED and child.step_statuses["split"] is REUSED
    assert child.output_from_lineage("summarize") == ["A:100?", "B:100?", "C:100?", 3]


def _same_job_with_score_changed() -> Any:
    """`fan` with `score`'s code changed (an explicit code_version), under the same op and job names."""

    @op(name="score", code_version="v2")
    def score_changed(context: Any, r: str) -> str:
        CALLS.append(context.step)
        return r + "?"

    @job(name="fan")
    def fan_v2() -> None:
        items, n = split()
        m = model()
        results = items.map(lambda x: proc(x, m))
        summarize(results.map(score_changed).collect(), n)

    return fan_v2
