"""Dagster's op selection for a fresh run (`cairn.selection.select_ops`) and its clause grammar.

Rows were observed with Dagster 1.13 (`job.get_subset(op_selection=...)` and `execute_job(...,
op_selection=...)`) on the same shapes: ``a -> b -> c`` with ``d`` alone, and the same with ``b -> c``
inside a graph ``inner_g`` (steps ``inner_g.b``, ``inner_g.c``). Dagster's message is the first part of
each refusal; Cairn's hint may follow.
"""

from __future__ import annotations

import pytest

from cairn.errors import DagsterInvalidSubsetError
from cairn.selection import ALL, Clause, Graph, node_path, parse_clause, select_ops

LINEAR = Graph.of(["a", "b", "c", "d"], {"b": {"x": ("a", "result")}, "c": {"x": ("b", "result")}})
NESTED = Graph.of(
    ["a", "inner_g.b", "inner_g.c", "d"],
    {"inner_g.b": {"x": ("a", "result")}, "inner_g.c": {"x": ("inner_g.b", "result")}},
)
# split fans out to process (mapped, unexpanded in the static graph), merge collects it
FANOUT = Graph.of(["split", "process", "merge"], {"process": {"x": ("split", "r")}, "merge": {"xs": ("process", "r")}})


@pytest.mark.parametrize(
    ("graph", "clauses", "selected"),
    [
        (LINEAR, ["a"], {"a"}),
        (LINEAR, ["*c"], {"a", "b", "c"}),
        (LINEAR, ["+c"], {"b", "c"}),
        (LINEAR, ["a+"], {"a", "b"}),
        (LINEAR, ["a++"], {"a", "b", "c"}),
        (LINEAR, ["a*"], {"a", "b", "c"}),
        (LINEAR, ["*"], {"a", "b", "c", "d"}),
        (LINEAR, [], {"a", "b", "c", "d"}),
        (LINEAR, ["a", "d"], {"a", "d"}),
        (LINEAR, ["*+a"], {"a"}),  # Dagster reads "*+" as all levels
        (LINEAR, ["a+*"], {"a", "b", "c"}),
        (LINEAR, [" a "], {"a"}),
        (NESTED, ["inner_g"], {"inner_g.b", "inner_g.c"}),  # a graph node selects all its ops
        (NESTED, ["inner_g*"], {"inner_g.b", "inner_g.c"}),
        (NESTED, ["*inner_g"], {"a", "inner_g.b", "inner_g.c"}),
        (NESTED, ["a+"], {"a", "inner_g.b", "inner_g.c"}),
        (NESTED, ["inner_g.b"], {"inner_g.b"}),  # a dotted path: exactly that node
        (NESTED, ["inner_g.b", "d"], {"inner_g.b", "d"}),
        (NESTED, ["inner_g.b", "a"], {"a", "inner_g.b"}),
        (FANOUT, ["split*"], {"split", "process", "merge"}),
        (FANOUT, ["process"], {"process"}),
    ],
)
def test_op_selection_selects_what_dagster_selects(graph: Graph, clauses: list[str], selected: set[str]) -> None:
    assert select_ops(graph, clauses) == selected


@pytest.mark.parametrize(
    ("graph", "clauses", "message"),
    [
        (LINEAR, ["nope"], "No qualified ops to execute found for op_selection=['nope']"),
        (LINEAR, ["a", "nope"], "No qualified ops to execute found for op_selection=['a', 'nope']"),
        (LINEAR, ["x y"], "No qualified ops to execute found for op_selection=['x y']"),
        (LINEAR, ["**a"], "No qualified ops to execute found for op_selection=['**a']"),
        (LINEAR, ["b[k]"], "No qualified ops to execute found for op_selection=['b[k]']"),
        (LINEAR, ["*", "a"], "No qualified ops to execute found for op_selection="),  # "*" only alone
        (NESTED, ["inner_g.b+"], "Node b+ was selected, but no node named b+ was found."),
        (NESTED, ["inner_g.nope"], "Node nope was selected, but no node named nope was found."),
        (NESTED, ["a.b"], "Children of node a were selected, but a is not a graph."),
        (NESTED, ["inner_g.b", "a+"], "Node a+ was selected, but no node named a+ was found."),
        (NESTED, ["inner_g.b.c"], "Children of node b were selected, but b is not a graph."),
        (LINEAR, "a", "Param \"op_selection\" is not a Sequence. Got 'a' which is type <class 'str'>."),
    ],
)
def test_op_selection_refusals_are_dagsters(graph: Graph, clauses: list[str], message: str) -> None:
    with pytest.raises(DagsterInvalidSubsetError) as err:
        select_ops(graph, clauses)
    assert str(err.value).startswith(message)


def test_an_unknown_op_lists_the_top_level_nodes() -> None:
    with pytest.raises(DagsterInvalidSubsetError, match=r"\(the job's top-level nodes are a, inner_g, d\)$"):
        select_ops(NESTED, ["b"])


@pytest.mark.parametrize(
    ("text", "clause"),
    [
        ("outer.inner+", Clause("outer.inner", 0, 1)),
        ("outer.inner[k]", Clause("outer.inner[k]", 0, 0)),
        ("*outer.inner[k]+", Clause("outer.inner[k]", ALL, 1)),
        ("process[?]", Clause("process[?]", 0, 0)),
        ("+process[?]", Clause("process[?]", 1, 0)),
        ("process[*]", Clause("process[*]", 0, 0)),
        ("*+a", Clause("a", ALL, 0)),
        ("a++*", Clause("a", 0, ALL)),
    ],
)
def test_clauses_read_nested_names_mapping_keys_and_unresolved_steps(text: str, clause: Clause) -> None:
    assert parse_clause(text) == clause


@pytest.mark.parametrize(
    ("step", "path"),
    [("a", ("a",)), ("outer.inner", ("outer", "inner")), ("outer.inner[k]", ("outer", "inner")), ("op[*]", ("op",))],
)
def test_node_path(step: str, path: tuple[str, ...]) -> None:
    assert node_path(step) == path
