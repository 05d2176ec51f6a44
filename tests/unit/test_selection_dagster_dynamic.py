"""Re-execution over dynamic steps as Dagster 1.13 runs it, planned by `cairn.planner.plan` (pure).

The job is Dagster's usual fan-out, ``merge(split().map(process).collect())``, also nested in a graph
(steps ``outer.split``, ``outer.process[k]``...). Each row is (parent, mode, selection) -> the steps the
child runs (a placeholder ``process[*]`` runs over the keys `split` emits then), or the error class and
the first part of its message. Steps and messages were observed by running the same job with Dagster 1.13
(`execute_job(..., reexecution_options=ReexecutionOptions(...))`, keys a, b, c, process[b] failing in
the parent): Dagster's wording is the first part of each message, Cairn's hint may follow. Rows marked
CAIRN are where Cairn differs on purpose (the reason is in the row's comment).
"""

from __future__ import annotations

import dataclasses

import pytest

from cairn.errors import (
    DagsterExecutionStepNotFoundError,
    DagsterInvalidSubsetError,
    DagsterInvariantViolationError,
    ReexecutionError,
)
from cairn.planner import JobGraph, Mode, OutputRef, Plan, Request, RunView, plan, same_steps_selection
from cairn.runstate import RunPhase, StepState

S, F, N = StepState.SUCCEEDED, StepState.FAILED, StepState.NOT_EXECUTED
KEYS = ("a", "b", "c")


def fanout(prefix: str = "") -> JobGraph:
    """split (dynamic `result`) -> process[k] -> merge (collects process)."""
    split, process, merge = f"{prefix}split", f"{prefix}process", f"{prefix}merge"
    return JobGraph(
        steps=(split, process, merge),
        deps={process: {"x": (split, "result")}},
        outputs={split: {"result": True}, process: {"result": True}, merge: {"result": True}},
        dynamic={split: ("result",)},
        mapped={process: (split, "result")},
        collects={merge: {"xs": (process, "result")}},
    )


def run_of(states: dict[str, StepState], keys: tuple[str, ...] | None, prefix: str = "") -> RunView:
    """A parent run with these step states; `keys`: what split emitted (None: it never did)."""
    outputs: dict[tuple[str, str], OutputRef] = {}
    for step, state in states.items():
        if state is not S:
            continue
        outputs[(prefix + step, "result")] = OutputRef("p", f"p/{step}")
        if step == "split":
            for k in keys or ():
                outputs[(prefix + step, f"result[{k}]")] = OutputRef("p", f"p/{step}[{k}]")
    failed = any(s is not S for s in states.values())
    return RunView(
        "p",
        RunPhase.FAILED if failed else RunPhase.SUCCEEDED,
        "p",
        {prefix + s: st for s, st in states.items()},
        outputs,
        keys={} if keys is None else {(prefix + "split", "result"): keys},
    )


PARENTS = {
    "process[b] failed": ({"split": S, "process[a]": S, "process[b]": F, "process[c]": S, "merge": N}, KEYS),
    "all succeeded": ({"split": S, "process[a]": S, "process[b]": S, "process[c]": S, "merge": S}, KEYS),
    "split failed": ({"split": F, "process[*]": N, "merge": N}, None),
    "zero keys": ({"split": S, "merge": S}, ()),
    "a and c failed": ({"split": S, "process[a]": F, "process[b]": S, "process[c]": F, "merge": N}, KEYS),
    "merge failed": ({"split": S, "process[a]": S, "process[b]": S, "process[c]": S, "merge": F}, KEYS),
}

NOT_FOUND = (DagsterExecutionStepNotFoundError, "Step selection refers to unknown step")
SUBSET = (DagsterExecutionStepNotFoundError, "Can not build subset plan from unknown step")
UNRESOLVED = (DagsterInvariantViolationError, 'Unresolved ExecutionStep "{0}" is resolved by "{1}split" which is not')

SEL, FROM_SEL, FROM_FAILURE = Mode.SELECTED, Mode.FROM_SELECTED, Mode.FROM_FAILURE
ROWS: list[tuple[str, Mode, tuple[str, ...], object]] = [
    # an instance alone, with what reads it, all instances of the parent's keys
    ("process[b] failed", SEL, ("process[b]",), ["process[b]"]),
    ("process[b] failed", SEL, ("process[b]+",), ["process[b]", "merge"]),
    ("process[b] failed", SEL, ("process[b]*",), ["process[b]", "merge"]),
    ("process[b] failed", SEL, ("process[a]", "process[b]"), ["process[a]", "process[b]"]),
    ("process[b] failed", SEL, ("process[?]",), ["process[a]", "process[b]", "process[c]"]),
    ("process[b] failed", SEL, ("process[?]", "process[a]"), ["process[a]", "process[b]", "process[c]"]),
    ("process[b] failed", SEL, ("+merge",), ["process[a]", "process[b]", "process[c]", "merge"]),
    ("process[b] failed", SEL, ("process[b]", "merge"), ["process[b]", "merge"]),
    ("all succeeded", SEL, ("process[?]",), ["process[a]", "process[b]", "process[c]"]),
    ("all succeeded", SEL, ("merge",), ["merge"]),
    # the dynamic step: alone it runs alone; with op[?] (or its downstream) its map runs over the new keys
    ("process[b] failed", SEL, ("split",), ["split"]),
    ("all succeeded", SEL, ("split",), ["split"]),
    ("process[b] failed", SEL, ("split+",), ["split", "process[*]"]),
    ("process[b] failed", SEL, ("split*",), ["split", "process[*]", "merge"]),
    ("process[b] failed", SEL, ("split", "process[?]"), ["split", "process[*]"]),
    ("process[b] failed", SEL, ("split", "process[?]", "process[a]"), ["split", "process[*]"]),
    ("split failed", SEL, ("split*",), ["split", "process[*]", "merge"]),
    ("process[b] failed", FROM_SEL, ("split",), ["split", "process[*]", "merge"]),
    ("process[b] failed", FROM_SEL, ("process[b]",), ["process[b]", "merge"]),
    # Dagster's refusals
    ("process[b] failed", SEL, ("process",), NOT_FOUND),  # a mapped op's name is not a step
    ("process[b] failed", SEL, ("process[zz]",), NOT_FOUND),
    ("process[b] failed", SEL, ("nope",), NOT_FOUND),
    ("split failed", SEL, ("process[a]",), NOT_FOUND),
    ("process[b] failed", SEL, ("split", "process[a]"), SUBSET),  # an old instance with its re-run split
    ("all succeeded", SEL, ("split", "process[b]"), SUBSET),
    ("process[b] failed", SEL, ("*process[b]",), SUBSET),
    ("process[b] failed", SEL, ("*merge",), SUBSET),
    ("split failed", SEL, ("process[?]",), UNRESOLVED),
    ("split failed", SEL, ("merge",), UNRESOLVED),
    ("process[b] failed", SEL, ("b**",), (DagsterInvalidSubsetError, "No qualified steps to execute found")),
    # CAIRN: Dagster fails with KeyError('process[a]'): merge would collect steps that never run
    ("process[b] failed", SEL, ("split", "merge"), (DagsterInvalidSubsetError, "Cannot execute step '{1}merge'")),
    # CAIRN: Dagster collects only the instances that succeeded (['A', 'C']); Cairn refuses before running
    ("process[b] failed", SEL, ("merge",), (ReexecutionError, "Cannot execute step '{1}merge'")),
    ("process[b] failed", SEL, ("process[a]*",), (ReexecutionError, "Cannot execute step '{1}merge'")),
    # CAIRN: with zero keys Dagster leaves the collector out of split* (its old output stays); Cairn runs it
    ("zero keys", SEL, ("split*",), ["split", "process[*]", "merge"]),
    ("zero keys", SEL, ("merge",), ["merge"]),
    # CAIRN: Dagster fails inside its IO manager; Cairn says there is nothing to run
    ("zero keys", SEL, ("process[?]",), (DagsterInvalidSubsetError, "No qualified steps to execute found")),
    # from failure
    ("process[b] failed", FROM_FAILURE, (), ["process[b]", "merge"]),
    ("a and c failed", FROM_FAILURE, (), ["process[a]", "process[c]", "merge"]),
    ("split failed", FROM_FAILURE, (), ["split", "process[*]", "merge"]),
    ("merge failed", FROM_FAILURE, (), ["merge"]),
    (
        "all succeeded",
        FROM_FAILURE,
        (),
        (DagsterInvariantViolationError, "Cannot reexecute from failure a run that is not failed or canceled"),
    ),
]


def _prefixed(clause: str, prefix: str) -> str:
    """``*merge`` of the nested job: ``*outer.merge``."""
    name = clause.lstrip("*+")
    return clause[: len(clause) - len(name)] + prefix + name


def _plan(parent: str, mode: Mode, selection: tuple[str, ...], prefix: str) -> Plan:
    states, keys = PARENTS[parent]
    clauses = tuple(_prefixed(c, prefix) for c in selection)
    return plan(fanout(prefix), run_of(states, keys, prefix), Request(mode, clauses))


@pytest.mark.parametrize("prefix", ["", "outer."], ids=["top-level", "nested"])
@pytest.mark.parametrize(("parent", "mode", "selection", "expected"), ROWS)
def test_what_a_reexecution_runs_or_refuses(
    parent: str, mode: Mode, selection: tuple[str, ...], expected: object, prefix: str
) -> None:
    if isinstance(expected, list):
        p = _plan(parent, mode, selection, prefix)
        assert p.steps_to_run == [prefix + s for s in expected]
        return
    assert isinstance(expected, tuple)
    cls, message = expected
    step = prefix + selection[0] if selection else ""
    with pytest.raises(cls) as err:
        _plan(parent, mode, selection, prefix)
    assert str(err.value).startswith(message.format(step, prefix)), str(err.value)


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (("nope",), "Step selection refers to unknown step: nope"),
        (("process",), "Step selection refers to unknown step: process (process is mapped (has keys a, b, c): "),
        (("process[zz]", "nope"), "Step selection refers to unknown steps: process[zz], nope (process has keys a, b"),
        (("split", "process[a]"), "Can not build subset plan from unknown step: process[a]"),
        (("*merge",), "Can not build subset plan from unknown steps: process[a], process[b], process[c]"),
    ],
)
def test_unknown_steps_are_named_as_dagster_names_them(selection: tuple[str, ...], message: str) -> None:
    with pytest.raises(DagsterExecutionStepNotFoundError) as err:
        _plan("process[b] failed", SEL, selection, "")
    assert str(err.value).startswith(message)
    assert err.value.step_keys and all(k in str(err.value) for k in err.value.step_keys)


def test_the_dynamic_step_alone_drops_the_parents_map_and_reuses_nothing_of_it() -> None:
    p = _plan("all succeeded", SEL, ("split",), "")
    assert p.remapped == {("split", "result"): KEYS}
    assert p.keys == {}  # the child learns its keys from split
    assert "process[*]" in p.not_executed
    assert not any(s.startswith("process[") for s in p.reused_steps)


def test_op_unresolved_reuses_the_dynamic_step_and_reads_each_key_of_it() -> None:
    p = _plan("process[b] failed", SEL, ("process[?]",), "")
    assert p.reused_steps == {"split": "p"}
    assert set(p.reused) == {("split", "result[a]"), ("split", "result[b]"), ("split", "result[c]")}
    assert p.keys == {("split", "result"): KEYS} and not p.remapped


def test_an_unresolved_step_says_how_to_select_its_dynamic_step() -> None:
    with pytest.raises(ReexecutionError, match=r"select split too, e\.g\. step_selection=\['split\*'\]"):
        _plan("split failed", SEL, ("process[?]",), "")


def test_from_failure_with_nothing_to_retry_is_dagsters_invalid_subset() -> None:
    outputs = {("split", "result"): OutputRef("p", "k"), ("merge", "result"): OutputRef("p", "m")}
    finished = RunView("p", RunPhase.FAILED, "p", {"split": S, "merge": S}, outputs, keys={("split", "result"): ()})
    with pytest.raises(DagsterInvalidSubsetError, match=r"^No steps needed to be retried in the failed run\.$"):
        plan(fanout(), finished, Request(Mode.FROM_FAILURE))


P, M = "process", "merge"


@pytest.mark.parametrize(
    ("steps", "selection", "runs"),
    [
        (["split", f"{P}[a]", f"{P}[b]", M], ["split", f"{P}[?]", M], ["split", f"{P}[*]", M]),
        ([f"{P}[a]", f"{P}[b]", M], [f"{P}[a]", f"{P}[b]", M], [f"{P}[a]", f"{P}[b]", M]),
        (["split"], ["split"], ["split"]),
    ],
)
def test_same_steps_becomes_a_selection_dagster_accepts(
    steps: list[str], selection: list[str], runs: list[str]
) -> None:
    assert same_steps_selection(fanout(), steps) == selection
    p = plan(fanout(), run_of(*PARENTS["all succeeded"]), Request(SEL, tuple(selection)))
    assert p.steps_to_run == runs


# split -> p1[k] -> p2[k] -> merge; in the parent p1[b] failed (p2[b] not executed). Dagster 1.13, same job.
CHAIN = JobGraph(
    steps=("split", "p1", "p2", "merge"),
    deps={"p1": {"x": ("split", "result")}, "p2": {"y": ("p1", "result")}},
    outputs={s: {"result": True} for s in ("split", "p1", "p2", "merge")},
    dynamic={"split": ("result",)},
    mapped={"p1": ("split", "result"), "p2": ("split", "result")},
    collects={"merge": {"xs": ("p2", "result")}},
)
CHAIN_PARENT = RunView(
    "p",
    RunPhase.FAILED,
    "p",
    {"split": S, "p1[a]": S, "p1[b]": F, "p2[a]": S, "p2[b]": N, "merge": N},
    {
        ("split", "result"): OutputRef("p", "s"),
        ("split", "result[a]"): OutputRef("p", "s[a]"),
        ("split", "result[b]"): OutputRef("p", "s[b]"),
        ("p1[a]", "result"): OutputRef("p", "p1a"),
        ("p2[a]", "result"): OutputRef("p", "p2a"),
    },
    keys={("split", "result"): ("a", "b")},
)


@pytest.mark.parametrize(
    ("mode", "selection", "expected"),
    [
        (SEL, ("p1[?]",), ["p1[a]", "p1[b]"]),
        (SEL, ("p1[b]+",), ["p1[b]", "p2[b]"]),
        (SEL, ("p2[a]",), ["p2[a]"]),
        (SEL, ("split", "p1[?]"), ["split", "p1[*]"]),
        (SEL, ("split+",), ["split", "p1[*]"]),
        (FROM_FAILURE, (), ["p1[b]", "p2[b]", "merge"]),
        # CAIRN: Dagster starts p2[b] and it fails reading p1[b]; Cairn refuses before running
        (SEL, ("p2[?]",), (ReexecutionError, "Cannot execute step 'p2[b]': its input 'y' reads output 'result'")),
        # CAIRN: Dagster runs split, then cannot run p2 (the run fails); Cairn refuses before running
        (SEL, ("split", "p2[?]"), (DagsterInvalidSubsetError, "Cannot execute step 'p2[?]': it reads p1")),
    ],
)
def test_a_chain_of_maps(mode: Mode, selection: tuple[str, ...], expected: object) -> None:
    if isinstance(expected, list):
        assert plan(CHAIN, CHAIN_PARENT, Request(mode, selection)).steps_to_run == expected
        return
    assert isinstance(expected, tuple)
    with pytest.raises(expected[0]) as err:
        plan(CHAIN, CHAIN_PARENT, Request(mode, selection))
    assert str(err.value).startswith(expected[1]), str(err.value)


def test_from_failure_of_a_selection_retries_within_it() -> None:
    """Dagster 1.13: re-executing process[b] alone fails again; from failure of that run runs process[b] only
    (merge was not among the run's steps), and from failure of the first run runs process[b] and merge."""
    states, keys = PARENTS["process[b] failed"]
    reused = {"split": StepState.REUSED, "process[a]": StepState.REUSED, "process[c]": StepState.REUSED}
    child = dataclasses.replace(run_of(states, keys), steps={**states, **reused}, not_selected=frozenset({"merge"}))
    assert plan(fanout(), child, Request(FROM_FAILURE)).steps_to_run == ["process[b]"]
    assert plan(fanout(), run_of(states, keys), Request(FROM_FAILURE)).steps_to_run == ["process[b]", "merge"]


def test_an_op_selection_walks_the_collect_edge() -> None:
    job = fanout("outer.")
    assert job.op_graph.downstream["outer.process"] == ("outer.merge",)
    assert not job.graph.downstream["outer.process"]  # per-step inputs only
    kept = job.subset({"outer.split", "outer.process"})
    assert kept.steps == ("outer.split", "outer.process") and not kept.collects


@pytest.mark.parametrize(
    ("produced", "expected"),
    [
        (("a", "c"), ["merge"]),  # Dagster collects [A, C]: an instance without its optional output is left out
        ((), []),  # none produced: merge stays skipped (Dagster skips it)
    ],
)
def test_a_collector_reads_the_instances_that_produced(produced: tuple[str, ...], expected: list[str]) -> None:
    job = dataclasses.replace(fanout(), outputs={**fanout().outputs, "process": {"result": False}})
    states = {"split": S, "process[a]": S, "process[b]": S, "process[c]": S, "merge": F}
    parent = run_of(states, KEYS)
    gone = {("process[a]", "result"), ("process[b]", "result"), ("process[c]", "result")}
    gone -= {(f"process[{k}]", "result") for k in produced}
    parent = dataclasses.replace(parent, outputs={k: v for k, v in parent.outputs.items() if k not in gone})
    if not expected:
        with pytest.raises(ReexecutionError, match="Nothing to execute: every selected step is skipped"):
            plan(job, parent, Request(FROM_FAILURE))
        return
    p = plan(job, parent, Request(FROM_FAILURE))
    assert p.steps_to_run == expected
    assert {up for up, _ in p.reused if up.startswith("process")} == {f"process[{k}]" for k in produced}


def test_a_fan_in_runs_with_a_skipped_source() -> None:
    """Dagster 1.13: gather([ea(a), eb(b)]) with eb skipped gathers [ea's]; with every source skipped, skipped."""
    job = JobGraph(
        steps=("src", "ea", "eb", "gather"),
        deps={
            "ea": {"x": ("src", "a")},
            "eb": {"x": ("src", "b")},
            "gather": {"xs__0": ("ea", "r"), "xs__1": ("eb", "r")},
        },
        outputs={"src": {"a": False, "b": False}, "ea": {"r": True}, "eb": {"r": True}, "gather": {"r": True}},
    )
    states = {"src": S, "ea": S, "eb": StepState.SKIPPED, "gather": F}
    outputs = {("src", "a"): OutputRef("p", "src/a"), ("ea", "r"): OutputRef("p", "ea/r")}
    parent = RunView("p", RunPhase.FAILED, "p", states, outputs)
    assert plan(job, parent, Request(FROM_FAILURE)).steps_to_run == ["gather"]
    skipped_all = dataclasses.replace(parent, steps={**states, "ea": StepState.SKIPPED}, outputs={})
    with pytest.raises(ReexecutionError, match="Nothing to execute"):
        plan(job, skipped_all, Request(SEL, ("gather",)))
