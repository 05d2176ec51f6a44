"""The re-execution planner as tables: (graph, parent step outcomes, request) -> plan or error."""

from __future__ import annotations

import dataclasses

import pytest

from cairn.errors import MissingOutputsError, ReexecutionError, StepSelectionError
from cairn.planner import JobGraph, Mode, OutputRef, Plan, Request, RunView, plan, plan_checked
from cairn.runstate import RunPhase, StepState

S, F, N, INT, K, X, R, P = (
    StepState.SUCCEEDED,
    StepState.FAILED,
    StepState.NOT_EXECUTED,
    StepState.INTERRUPTED,
    StepState.SKIPPED,
    StepState.RUNNING,
    StepState.REUSED,
    StepState.PENDING,
)

# a -> b -> d ; a -> c -> d ; e alone. c has an optional output "maybe" read by g.
JOB = JobGraph(
    steps=("a", "b", "c", "d", "e", "g"),
    deps={
        "b": {"x": ("a", "result")},
        "c": {"x": ("a", "result")},
        "d": {"x": ("b", "result"), "y": ("c", "result")},
        "g": {"m": ("c", "maybe")},
    },
    outputs={s: {"result": True} for s in "abde"} | {"c": {"result": True, "maybe": False}, "g": {"result": True}},
)


def parent(
    states: dict[str, StepState],
    status: RunPhase = RunPhase.FAILED,
    produced: str = "",
    run_id: str = "p",
    maybe: bool = False,
) -> RunView:
    outputs = {}
    for s, st in states.items():
        if st.produced_outputs or s in produced:
            outputs[(s, "result")] = OutputRef(run_id, f"local/{run_id}/{s}/result")
    if maybe:
        outputs[("c", "maybe")] = OutputRef(run_id, f"local/{run_id}/c/maybe")
    return RunView(run_id=run_id, status=status, root_run_id=run_id, steps=states, outputs=outputs)


ALL_OK = {"a": S, "b": S, "c": S, "d": S, "e": S, "g": K}
B_FAILED = {"a": S, "b": F, "c": S, "d": N, "e": S, "g": K}


def run_of(p: Plan) -> list[tuple[str, str]]:
    return list(p.to_run)


@pytest.mark.parametrize(
    ("states", "status", "request_", "to_run", "reused_from"),
    [
        (ALL_OK, RunPhase.SUCCEEDED, Request(Mode.ALL), [(s, "all") for s in "abcdeg"], set()),
        (ALL_OK, RunPhase.SUCCEEDED, Request(Mode.SELECTED, ("b",)), [("b", "selected")], {"a"}),
        (
            ALL_OK,
            RunPhase.SUCCEEDED,
            Request(Mode.SELECTED, ("b*",)),
            [("b", "selected"), ("d", "selected")],
            {"a", "c"},
        ),
        (
            ALL_OK,
            RunPhase.SUCCEEDED,
            Request(Mode.SELECTED, ("+d",)),
            [("b", "selected"), ("c", "selected"), ("d", "selected")],
            {"a"},
        ),
        (
            ALL_OK,
            RunPhase.SUCCEEDED,
            Request(Mode.FROM_SELECTED, ("b",)),
            [("b", "selected"), ("d", "downstream-of:b")],
            {"a", "c"},
        ),
        (
            ALL_OK,
            RunPhase.SUCCEEDED,
            Request(Mode.FROM_SELECTED, ("a",)),
            [
                ("a", "selected"),
                ("b", "downstream-of:a"),
                ("c", "downstream-of:a"),
                ("d", "downstream-of:a"),
                ("g", "downstream-of:a"),
            ],
            set(),
        ),
        (
            B_FAILED,
            RunPhase.FAILED,
            Request(Mode.FROM_FAILURE),
            [("b", "failed"), ("d", "downstream-of:b")],
            {"a", "c"},
        ),
        (
            {**B_FAILED, "b": X},
            RunPhase.FAILED,
            Request(Mode.FROM_FAILURE),
            [("b", "interrupted"), ("d", "downstream-of:b")],
            {"a", "c"},
        ),
        # A canceled run: b interrupted, c never started.
        (
            {"a": S, "b": INT, "c": P, "d": N, "e": S, "g": N},
            RunPhase.CANCELED,
            Request(Mode.FROM_FAILURE),
            [("b", "interrupted"), ("c", "not-executed"), ("d", "downstream-of:b"), ("g", "downstream-of:c")],
            {"a"},
        ),
        # A chain parent whose steps were reused from its own parent: they count as produced.
        (
            {"a": R, "b": F, "c": R, "d": N, "e": R, "g": K},
            RunPhase.FAILED,
            Request(Mode.FROM_FAILURE),
            [("b", "failed"), ("d", "downstream-of:b")],
            {"a", "c"},
        ),
    ],
)
def test_plans(
    states: dict[str, StepState],
    status: RunPhase,
    request_: Request,
    to_run: list[tuple[str, str]],
    reused_from: set[str],
) -> None:
    p = plan(JOB, parent(states, status), request_)
    assert run_of(p) == to_run
    assert {s for s, _ in p.reused} == reused_from
    assert all(ref.run_id == "p" for ref in p.reused.values())


def test_skipped_steps_stay_skipped_from_failure() -> None:
    p = plan(JOB, parent(B_FAILED), Request(Mode.FROM_FAILURE))
    assert p.skipped == {"g": "skipped in the parent run"}
    assert p.reused_steps == {"a": "p", "c": "p", "e": "p"}


def test_a_consumer_of_an_optional_output_that_was_not_produced_is_skipped() -> None:
    p = plan(JOB, parent(ALL_OK, RunPhase.SUCCEEDED), Request(Mode.SELECTED, ("b", "g")))
    assert run_of(p) == [("b", "selected")]
    assert p.skipped == {"g": "optional output c.maybe was not produced"}


def test_an_optional_output_that_was_produced_is_reused() -> None:
    p = plan(JOB, parent({**ALL_OK, "g": S}, RunPhase.SUCCEEDED, maybe=True), Request(Mode.SELECTED, ("g",)))
    assert run_of(p) == [("g", "selected")]
    assert p.reused[("c", "maybe")] == OutputRef("p", "local/p/c/maybe")


def test_outputs_come_from_the_run_that_produced_them() -> None:
    """A grandchild reads `a` from the root: the parent's index points there, not at the parent."""
    index = {
        ("a", "result"): OutputRef("root", "local/root/a/result"),
        ("b", "result"): OutputRef("child", "local/child/b/result"),
        ("c", "result"): OutputRef("root", "local/root/c/result"),
    }
    child = RunView("child", RunPhase.SUCCEEDED, "root", {"a": R, "b": S, "c": R, "d": S, "e": R, "g": K}, index)
    p = plan(JOB, child, Request(Mode.SELECTED, ("d",)), known_runs={"root", "child"})
    assert p.reused == {("b", "result"): index[("b", "result")], ("c", "result"): index[("c", "result")]}
    p2 = plan(JOB, child, Request(Mode.SELECTED, ("b",)), known_runs={"root", "child"})
    assert p2.reused == {("a", "result"): OutputRef("root", "local/root/a/result")}


@pytest.mark.parametrize(
    ("states", "status", "request_", "error", "message"),
    [
        (
            ALL_OK,
            RunPhase.SUCCEEDED,
            Request(Mode.FROM_FAILURE),
            ReexecutionError,
            "Cannot reexecute from failure a run that is not failed or canceled",
        ),
        (
            {"a": S, "b": S, "c": S, "d": S, "e": S, "g": K},
            RunPhase.FAILED,
            Request(Mode.FROM_FAILURE),
            ReexecutionError,
            "No steps needed to be retried in the failed run.",
        ),
        (
            ALL_OK,
            RunPhase.SUCCEEDED,
            Request(Mode.SELECTED, ("nope", "zz*")),
            StepSelectionError,
            "Step selection refers to unknown steps: nope, zz",
        ),
        (
            ALL_OK,
            RunPhase.SUCCEEDED,
            Request(Mode.SELECTED, ("b**",)),
            StepSelectionError,
            "No qualified steps to execute found for step_selection=['b**']",
        ),
        (
            B_FAILED,
            RunPhase.FAILED,
            Request(Mode.SELECTED, ("d",)),
            ReexecutionError,
            "Cannot execute step 'd': its input 'x' reads output 'result' of step 'b', which run p did not produce "
            "(step b is Failed). Select 'b' too, e.g. step_selection=['b*'], or re-execute from failure",
        ),
        (
            ALL_OK,
            RunPhase.SUCCEEDED,
            Request(Mode.SELECTED, ("g",)),
            ReexecutionError,
            "Nothing to execute: every selected step is skipped (g: optional output c.maybe was not produced)",
        ),
    ],
)
def test_errors(
    states: dict[str, StepState], status: RunPhase, request_: Request, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as err:
        plan(JOB, parent(states, status), request_)
    assert str(err.value) == message


def test_a_missing_ancestor_is_named() -> None:
    index = {("a", "result"): OutputRef("root", "local/root/a/result")}
    child = RunView("child", RunPhase.FAILED, "root", {"a": R, "b": F, "c": N, "d": N, "e": N, "g": N}, index)
    with pytest.raises(ReexecutionError) as err:
        plan(JOB, child, Request(Mode.SELECTED, ("b",)), known_runs={"child"})
    assert "stored by run root at local/root/a/result, but run root is no longer in the run store" in str(err.value)


def test_missing_outputs_refuse_the_plan_and_name_steps_and_keys() -> None:
    gone = {"local/p/a/result"}
    with pytest.raises(MissingOutputsError) as err:
        plan_checked(JOB, parent(B_FAILED), Request(Mode.FROM_FAILURE), exists=lambda k: k not in gone)
    assert err.value.missing == [("a", "result", "local/p/a/result")]
    assert "step a output result at local/p/a/result" in str(err.value)
    assert "rerun_missing=True" in str(err.value)


def test_missing_outputs_with_rerun_add_their_producers() -> None:
    gone = {"local/p/a/result"}
    p = plan_checked(
        JOB, parent(B_FAILED), Request(Mode.FROM_FAILURE), exists=lambda k: k not in gone, rerun_missing=True
    )
    assert run_of(p) == [("a", "missing-output"), ("b", "failed"), ("d", "downstream-of:b")]
    assert set(p.reused) == {("c", "result")}


def test_a_10000_step_plan_is_correct() -> None:
    steps = tuple(f"s{i}" for i in range(10_000))
    deps = {steps[i]: {"x": (steps[i - 1], "result")} for i in range(1, len(steps))}
    job = JobGraph(steps, deps, {s: {"result": True} for s in steps})
    states = {s: (S if i < 5000 else F if i == 5000 else N) for i, s in enumerate(steps)}
    p = plan(job, parent(states), Request(Mode.FROM_FAILURE))
    assert (
        len(p.to_run) == 5000 and p.to_run[0] == ("s5000", "failed") and p.to_run[1] == ("s5001", "downstream-of:s5000")
    )
    assert set(p.reused) == {("s4999", "result")}


V1 = {s: "v1" for s in "abcdeg"}


@pytest.mark.parametrize(
    ("states", "recorded", "now", "to_run"),
    [
        # b's code (or config) changed: b and what reads it re-run, the rest is reused in place
        (ALL_OK, V1, {**V1, "b": "v2"}, [("b", "stale: v1 -> v2"), ("d", "downstream-of:b")]),
        (
            ALL_OK,
            V1,
            {**V1, "a": "v2"},
            [
                ("a", "stale: v1 -> v2"),
                ("b", "downstream-of:a"),
                ("c", "downstream-of:a"),
                ("d", "downstream-of:a"),
                ("g", "downstream-of:a"),
            ],
        ),
        (ALL_OK, V1, {**V1, "e": "v2"}, [("e", "stale: v1 -> v2")]),
        # a version never recorded (a run made before versions) counts as changed
        (
            ALL_OK,
            {k: v for k, v in V1.items() if k != "c"},
            V1,
            [("c", "stale: unrecorded -> v1"), ("d", "downstream-of:c"), ("g", "downstream-of:c")],
        ),
        # what the parent never produced runs too (as from failure); a skipped step stays skipped
        (B_FAILED, V1, V1, [("b", "failed"), ("d", "downstream-of:b")]),
        (B_FAILED, V1, {**V1, "e": "v3"}, [("b", "failed"), ("d", "downstream-of:b"), ("e", "stale: v1 -> v3")]),
    ],
)
def test_stale(
    states: dict[str, StepState], recorded: dict[str, str], now: dict[str, str], to_run: list[tuple[str, str]]
) -> None:
    view = dataclasses.replace(parent(states, RunPhase.SUCCEEDED), versions=recorded)
    p = plan(JOB, view, Request(Mode.STALE, current=now))
    assert run_of(p) == to_run
    assert set(p.reused_steps) == {s for s in "abcde" if s not in dict(to_run) and states[s].produced_outputs}
    assert p.versions["b"] == (recorded.get("b"), now["b"])  # the plan shows each step's old and new version


def test_nothing_stale_is_said() -> None:
    view = dataclasses.replace(parent(ALL_OK, RunPhase.SUCCEEDED), versions=V1)
    with pytest.raises(ReexecutionError, match="Nothing is stale: every step of run p was produced by the code"):
        plan(JOB, view, Request(Mode.STALE, current=V1))
