"""Dagster's step selection grammar, resolved against a job graph."""

from __future__ import annotations

import pytest

from cairn.errors import StepSelectionError
from cairn.selection import ALL, Clause, Graph, parse_clause, resolve_selection

# a -> b -> d -> f ; a -> c -> d ; e alone
DEPS = {
    "b": {"x": ("a", "result")},
    "c": {"x": ("a", "result")},
    "d": {"x": ("b", "result"), "y": ("c", "result")},
    "f": {"x": ("d", "result")},
}
G = Graph.of(["a", "b", "c", "d", "e", "f"], DEPS)


@pytest.mark.parametrize(
    ("text", "clause"),
    [
        ("a", Clause("a", 0, 0)),
        ("*a", Clause("a", ALL, 0)),
        ("a*", Clause("a", 0, ALL)),
        ("*a*", Clause("a", ALL, ALL)),
        ("++a+", Clause("a", 2, 1)),
        ("op_1.x-y", Clause("op_1.x-y", 0, 0)),
        (" a ", Clause("a", 0, 0)),
    ],
)
def test_parse_clause(text: str, clause: Clause) -> None:
    assert parse_clause(text) == clause


@pytest.mark.parametrize("bad", ["", "*", "a**", "**a", "a b", "a*+", "+*a", "a,b"])
def test_malformed_clauses(bad: str) -> None:
    assert parse_clause(bad) is None


@pytest.mark.parametrize(
    ("selection", "steps"),
    [
        (["b"], ["b"]),
        (["b*"], ["b", "d", "f"]),
        (["*d"], ["a", "b", "c", "d"]),
        (["+d"], ["b", "c", "d"]),
        (["++d"], ["a", "b", "c", "d"]),
        (["a+"], ["a", "b", "c"]),
        (["a++"], ["a", "b", "c", "d"]),
        (["*d*"], ["a", "b", "c", "d", "f"]),
        (["b", "e"], ["b", "e"]),
        (["f", "a"], ["a", "f"]),  # in the graph's order, not the selection's
        (["b*", "c*"], ["b", "c", "d", "f"]),
    ],
)
def test_resolve(selection: list[str], steps: list[str]) -> None:
    assert resolve_selection(selection, G) == steps


def test_unknown_steps_are_named() -> None:
    with pytest.raises(StepSelectionError) as err:
        resolve_selection(["zz*", "b", "yy"], G)
    assert str(err.value) == "Step selection refers to unknown steps: zz, yy"  # Dagster: in the selection's order
    assert err.value.step_keys == ["zz", "yy"]


def test_a_malformed_clause_refuses_the_whole_selection() -> None:
    with pytest.raises(StepSelectionError) as err:
        resolve_selection(["b", "un*reliable"], G)
    assert str(err.value) == "No qualified steps to execute found for step_selection=['b', 'un*reliable']"


def test_empty_selection_is_malformed_for_the_resolver() -> None:
    with pytest.raises(StepSelectionError, match="No qualified steps"):
        resolve_selection([], G)
