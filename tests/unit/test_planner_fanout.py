"""The planner on jobs that fan out: tables, and hypothesis against a brute-force reference.

The reference below builds each run's *instances* (steps) and their dependencies itself, from the
random job's ops, without `cairn.dynamic.expand`: an instance ``op[k]`` of a mapped op reads the dynamic
op, its op's static upstreams, and the same key's instance of a mapped upstream; a collector reads every
instance of the op it collects. It then states re-execution as sets:

- from failure re-runs exactly the instances that did not succeed, and every instance downstream of
  one; every other instance that succeeded is reused from the run that produced it;
- a dynamic op that runs again from failure may emit other keys: each op mapped over it becomes its
  placeholder ``op[*]`` (the parent's instances are neither run nor reused), and `Plan.remapped` names the
  parent's keys;
- a selection ``op[k]`` / ``op[?]`` (or ``op[*]``) picks one instance / all of them; a mapped op's name
  alone is not a step (Dagster's refusal). Selections over dynamic steps as Dagster runs them:
  tests/unit/test_selection_dagster_dynamic.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.errors import ReexecutionError, StepSelectionError
from cairn.planner import JobGraph, Mode, OutputRef, Request, RunView, initial_plan, plan
from cairn.runstate import RunPhase, StepState

S, F, N = StepState.SUCCEEDED, StepState.FAILED, StepState.NOT_EXECUTED
EXAMPLES = int(os.environ.get("CAIRN_HYPOTHESIS_EXAMPLES", "200"))

# split (dynamic "items") -> train[k] -> score[k] -> report (collects score); config is static, read by train.
FANOUT = JobGraph(
    steps=("config", "split", "train", "score", "report"),
    deps={
        "train": {"shard": ("split", "items"), "cfg": ("config", "result")},
        "score": {"model": ("train", "result")},
    },
    outputs={s: {"result": True} for s in ("config", "train", "score", "report")} | {"split": {"items": True}},
    dynamic={"split": ("items",)},
    mapped={"train": ("split", "items"), "score": ("split", "items")},
    collects={"report": {"scores": ("score", "result")}},
)
KEYS = ("a", "b", "c")


def fan_parent(states: dict[str, StepState], keys: tuple[str, ...] | None = KEYS, run: str = "p") -> RunView:
    outputs: dict[tuple[str, str], OutputRef] = {}
    for s, state in states.items():
        if state is not S:
            continue
        if s == "split":
            outputs[("split", "items")] = OutputRef(run, f"{run}/split/items")  # the key index
            for k in keys or ():
                outputs[("split", f"items[{k}]")] = OutputRef(run, f"{run}/split/items[{k}]")
        else:
            outputs[(s, "result")] = OutputRef(run, f"{run}/{s}/result")
    return RunView(
        run_id=run,
        status=RunPhase.FAILED,
        root_run_id=run,
        steps=states,
        outputs=outputs,
        keys={} if keys is None else {("split", "items"): keys},
    )


def instances(states: str = "SSS", score: str = "SSS") -> dict[str, StepState]:
    table = {"S": S, "F": F, "N": N}
    out = {"config": S, "split": S, "report": N}
    for k, t, sc in zip(KEYS, states, score, strict=True):
        out[f"train[{k}]"] = table[t]
        out[f"score[{k}]"] = table[sc]
    return out


def test_a_first_run_plans_placeholders_for_maps() -> None:
    assert initial_plan(FANOUT).steps_to_run == ["config", "split", "train[*]", "score[*]", "report"]


def test_the_concrete_graph_wires_instances_and_collects() -> None:
    g = FANOUT.concrete({("split", "items"): ("a", "b")})
    assert g.steps == ("config", "split", "train[a]", "train[b]", "score[a]", "score[b]", "report")
    assert g.deps["train[b]"] == {"shard": ("split", "items[b]"), "cfg": ("config", "result")}
    assert g.deps["score[a]"] == {"model": ("train[a]", "result")}
    assert g.deps["report"] == {"scores[a]": ("score[a]", "result"), "scores[b]": ("score[b]", "result")}
    assert g.outputs["split"] == {"items": True, "items[a]": True, "items[b]": True}


@pytest.mark.parametrize(
    ("train", "score", "expected"),
    [
        ("SFS", "SNS", [("train[b]", "failed"), ("score[b]", "downstream-of:train[b]"),
                        ("report", "downstream-of:train[b]")]),
        ("SSS", "FSS", [("score[a]", "failed"), ("report", "downstream-of:score[a]")]),
        ("FSF", "NSN", [("train[a]", "failed"), ("train[c]", "failed"), ("score[a]", "downstream-of:train[a]"),
                        ("score[c]", "downstream-of:train[c]"), ("report", "downstream-of:train[a]")]),
        ("SSN", "SSN", [("train[c]", "not-executed"), ("score[c]", "downstream-of:train[c]"),
                        ("report", "downstream-of:train[c]")]),
    ],
)  # fmt: skip
def test_from_failure_reruns_exactly_the_failed_instances(
    train: str, score: str, expected: list[tuple[str, str]]
) -> None:
    p = plan(FANOUT, fan_parent(instances(train, score)), Request(Mode.FROM_FAILURE))
    assert list(p.to_run) == expected
    ran = {s for s, _ in expected}
    assert set(p.reused_steps) == {s for s in instances() if s not in ran and s != "report"}
    assert p.keys == {("split", "items"): KEYS} and not p.remapped


def test_a_rerun_dynamic_step_reruns_its_maps_whole() -> None:
    states = instances("SFS", "SNS")
    p = plan(FANOUT, fan_parent(states), Request(Mode.FROM_SELECTED, ("split",)))
    assert p.steps_to_run == ["split", "train[*]", "score[*]", "report"]
    assert p.remapped == {("split", "items"): KEYS}
    assert not any("[" in s for s in p.reused_steps), "no instance of the parent's map is mixed in"
    assert p.keys == {}


def test_a_reused_dynamic_step_with_zero_keys_points_at_the_run_that_produced_it() -> None:
    view = fan_parent(instances() | {"report": S}, keys=(), run="grand")
    states = {"config": S, "split": StepState.REUSED, "report": F}
    outputs = {k: v for k, v in view.outputs.items() if k[0] in ("config", "split")}
    parent = RunView("p", RunPhase.FAILED, "grand", states, outputs, keys={("split", "items"): ()})
    p = plan(FANOUT, parent, Request(Mode.FROM_FAILURE))
    assert p.to_run == (("report", "failed"),)
    assert p.reused_steps == {"config": "grand", "split": "grand"}
    assert p.keys == {("split", "items"): ()}


def test_a_dynamic_step_that_failed_is_rerun_with_placeholders() -> None:
    states = {"config": S, "split": F, "train[*]": N, "score[*]": N, "report": N}
    p = plan(FANOUT, fan_parent(states, keys=None), Request(Mode.FROM_FAILURE))
    assert p.to_run == (
        ("split", "failed"),
        ("train[*]", "downstream-of:split"),
        ("score[*]", "downstream-of:split"),
        ("report", "downstream-of:split"),
    )
    assert p.reused_steps == {"config": "p"}


def test_selected_only_the_dynamic_step_runs_only_it() -> None:  # Dagster: its maps are not executed
    p = plan(FANOUT, fan_parent(instances() | {"report": S}), Request(Mode.SELECTED, ("split",)))
    assert p.to_run == (("split", "selected"),)
    assert p.remapped == {("split", "items"): KEYS}
    assert p.reused_steps == {"config": "p", "report": "p"}
    assert p.not_executed == ("train[*]", "score[*]")


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (("train[b]",), ["train[b]"]),
        (("train[b]*",), ["train[b]", "score[b]", "report"]),
        (("train[*]",), ["train[a]", "train[b]", "train[c]"]),
        (("score[?]",), ["score[a]", "score[b]", "score[c]"]),
        (("+score[c]",), ["train[c]", "score[c]"]),
    ],
)
def test_selection_names_instances(selection: tuple[str, ...], expected: list[str]) -> None:
    states = instances() | {"report": S}
    p = plan(FANOUT, fan_parent(states), Request(Mode.SELECTED, selection))
    assert p.steps_to_run == expected


def test_an_unknown_key_is_refused_with_the_keys_there_are() -> None:
    with pytest.raises(
        StepSelectionError, match=r"^Step selection refers to unknown step: train\[zz\] \(train has keys a, b, c\)$"
    ):
        plan(FANOUT, fan_parent(instances()), Request(Mode.SELECTED, ("train[zz]",)))


def test_stale_reruns_the_changed_op_in_every_instance() -> None:
    states = instances() | {"report": S}
    view = fan_parent(states)
    old = {s: "v1" for s in states}
    view = RunView(view.run_id, view.status, view.root_run_id, view.steps, view.outputs, old, view.keys)
    current = {"config": "v1", "split": "v1", "train": "v2", "score": "v1", "report": "v1"}
    p = plan(FANOUT, view, Request(Mode.STALE, current=current))
    assert [s for s, _ in p.to_run] == [
        "train[a]",
        "train[b]",
        "train[c]",
        "score[a]",
        "score[b]",
        "score[c]",
        "report",
    ]
    assert p.reason("train[a]") == "stale: v1 -> v2"


# --- hypothesis: random fan-out jobs, random parents, against the reference -----------------------------


@dataclass
class Case:
    ops: list[str]
    deps: dict[str, dict[str, tuple[str, str]]]
    dynamic: dict[str, tuple[str, ...]]
    mapped: dict[str, tuple[str, str]]
    collects: dict[str, dict[str, tuple[str, str]]]
    keys: dict[str, tuple[str, ...]]  # dynamic op -> keys it emitted in the parent (when it succeeded)
    fails: set[str] = field(default_factory=set)  # instances that failed in the parent

    def job(self) -> JobGraph:
        outputs = {o: ({"items": True} if o in self.dynamic else {"result": True}) for o in self.ops}
        return JobGraph(tuple(self.ops), self.deps, outputs, self.dynamic, self.mapped, self.collects)

    def instances(self, keys: dict[str, tuple[str, ...] | None]) -> dict[str, set[str]]:
        """Instance -> the instances it reads, built here from the ops (not by `cairn.dynamic`)."""

        def of(op: str) -> list[str]:
            if op not in self.mapped:
                return [op]
            ks = keys.get(self.mapped[op][0])
            return [f"{op}[*]"] if ks is None else [f"{op}[{k}]" for k in ks]

        reads: dict[str, set[str]] = {}
        for op in self.ops:
            for inst in of(op):
                key = inst[len(op) + 1 : -1] if inst != op else None
                ups: set[str] = set()
                for up, _ in self.deps.get(op, {}).values():
                    ups.add(f"{up}[{key}]" if up in self.mapped else up)
                for up, _ in self.collects.get(op, {}).values():
                    ups |= set(of(up))
                reads[inst] = ups
        return reads


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n = draw(st.integers(3, 8))
    ops = [f"o{i}" for i in range(n)]
    dynamic: dict[str, tuple[str, ...]] = {}
    mapped: dict[str, tuple[str, str]] = {}
    deps: dict[str, dict[str, tuple[str, str]]] = {}
    collects: dict[str, dict[str, tuple[str, str]]] = {}
    for i, op in enumerate(ops):
        deps[op] = {}
        earlier = ops[:i]
        dims = [d for d in earlier if d in dynamic]
        kind = draw(st.sampled_from(["static", "dynamic", "mapped"] if dims else ["static", "dynamic"]))
        if kind == "mapped":
            dim = draw(st.sampled_from(dims))
            mapped[op] = (dim, "items")
            deps[op]["x"] = (dim, "items")
            for j, up in enumerate(draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True))):
                if up not in dynamic and (up not in mapped or mapped[up][0] == dim):
                    deps[op][f"u{j}"] = (up, "result")
            continue
        if kind == "dynamic":
            dynamic[op] = ("items",)
        for j, up in enumerate(draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True)) if earlier else []):
            if up in mapped:
                collects.setdefault(op, {})[f"c{j}"] = (up, "result")
            elif up not in dynamic:
                deps[op][f"u{j}"] = (up, "result")
    keys = {d: tuple(draw(st.lists(st.sampled_from("abcd"), max_size=3, unique=True))) for d in dynamic}
    case = Case(ops, deps, dynamic, mapped, collects, keys)
    # the dynamic ops that failed emitted no keys
    failed_dyn = set(draw(st.lists(st.sampled_from(sorted(dynamic)), unique=True))) if dynamic else set()
    concrete = case.instances({d: (None if d in failed_dyn else ks) for d, ks in keys.items()})
    case.fails = failed_dyn | set(draw(st.lists(st.sampled_from(sorted(concrete)), max_size=3, unique=True)))
    return case


def simulate(case: Case) -> tuple[RunView, dict[str, set[str]]]:
    """The parent run, op by op: an instance fails if chosen, is not executed if it reads one that did
    not succeed; a dynamic op's keys are known once it succeeded (else its maps stay placeholders)."""
    keys: dict[str, tuple[str, ...] | None] = dict.fromkeys(case.keys)
    states: dict[str, StepState] = {}
    outputs: dict[tuple[str, str], OutputRef] = {}
    for op in case.ops:
        reads = case.instances(keys)
        for inst in [i for i in reads if i == op or i.startswith(op + "[")]:
            if any(states[u] is not S for u in reads[inst]) or inst.endswith("[*]"):
                states[inst] = N
            elif inst in case.fails:
                states[inst] = F
            else:
                states[inst] = S
                if inst in case.dynamic:
                    keys[inst] = case.keys[inst]
                    outputs[(inst, "items")] = OutputRef("p", f"p/{inst}/items")
                    for k in case.keys[inst]:
                        outputs[(inst, f"items[{k}]")] = OutputRef("p", f"p/{inst}/items[{k}]")
                else:
                    outputs[(inst, "result")] = OutputRef("p", f"p/{inst}/result")
    view = RunView(
        "p", RunPhase.FAILED, "p", states, outputs, keys={(d, "items"): ks for d, ks in keys.items() if ks is not None}
    )
    return view, case.instances(keys)


def downstream(reads: dict[str, set[str]], seeds: set[str]) -> set[str]:
    out = set(seeds)
    changed = True
    while changed:
        changed = False
        for inst, ups in reads.items():
            if inst not in out and ups & out:
                out.add(inst)
                changed = True
    return out


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_from_failure_matches_the_reference(case: Case) -> None:
    parent, reads = simulate(case)
    seeds = {i for i, s in parent.steps.items() if s is not S}
    if not seeds:
        with pytest.raises(ReexecutionError, match="No steps needed"):
            plan(case.job(), parent, Request(Mode.FROM_FAILURE))
        return
    rerun = downstream(reads, seeds)
    rerun_dyn = {d for d in case.dynamic if d in rerun}
    if rerun_dyn:  # their maps are placeholders now; instances of the parent's maps over them are gone
        keys = {d: (None if d in rerun_dyn else parent.keys.get((d, "items"))) for d in case.dynamic}
        reads = case.instances(keys)
        rerun = downstream(reads, {i for i in reads if i in seeds or i.endswith("[*]")} | rerun_dyn)
    p = plan(case.job(), parent, Request(Mode.FROM_FAILURE))
    assert p.steps == tuple(reads), "the child's steps are the reference's instances, in order"
    assert set(p.steps_to_run) == rerun
    assert set(p.reused_steps) == {i for i in reads if i not in rerun and parent.steps.get(i) is S}
    assert all(run == "p" for run in p.reused_steps.values())
    assert set(p.remapped) == {dim for dim in case.mapped.values() if dim[0] in rerun_dyn}
    for (up, out), ref in p.reused.items():  # what a step to run reads from the parent is the parent's output
        assert up not in rerun and parent.outputs[(up, out)] == ref
