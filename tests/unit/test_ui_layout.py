"""The layered layout of `cairn ui`'s run graph: longest-path layers, dummy nodes for long edges,
barycenter crossing reduction, coordinates."""

from __future__ import annotations

import itertools
import random

import pytest

from cairn.ui.layout import GAP_X, NODE_H, NODE_W, count_crossings, layout, longest_path_layers


def brute_crossings(order: list[list[str]], edges: list[tuple[str, str]]) -> int:
    pos = {n: (li, i) for li, lay in enumerate(order) for i, n in enumerate(lay)}
    n = 0
    for (a, b), (c, d) in itertools.combinations(edges, 2):
        (la, ia), (_, ib) = pos[a], pos[b]
        (lc, ic), (_, id_) = pos[c], pos[d]
        if la == lc and (ia - ic) * (ib - id_) < 0:
            n += 1
    return n


def random_dag(rng: random.Random, n: int, p: float) -> dict[str, list[str]]:
    names = [f"s{i}" for i in range(n)]
    return {s: [u for u in names[:i] if rng.random() < p] for i, s in enumerate(names)}


def test_layers_are_longest_paths() -> None:
    g = {"a": [], "b": ["a"], "c": ["b"], "d": ["a", "c"], "e": []}
    assert longest_path_layers(g) == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 0}


def test_unknown_upstreams_are_ignored_and_a_cycle_is_refused() -> None:
    assert longest_path_layers({"a": ["ghost"]}) == {"a": 0}
    with pytest.raises(ValueError, match="cycle"):
        longest_path_layers({"a": ["b"], "b": ["a"]})


def test_the_seed_job_is_a_row_left_to_right() -> None:
    lay = layout({"start": [], "unreliable": ["start"], "end": ["unreliable"]})
    xs = [lay.positions[s][0] for s in ("start", "unreliable", "end")]
    assert xs == [0.0, NODE_W + GAP_X, 2 * (NODE_W + GAP_X)]
    assert len({lay.positions[s][1] for s in lay.positions}) == 1
    assert lay.layers == [["start"], ["unreliable"], ["end"]]
    assert lay.crossings == 0 and lay.width == 3 * NODE_W + 2 * GAP_X and lay.height == NODE_H


def test_every_edge_points_forward_and_boxes_never_overlap() -> None:
    rng = random.Random(7)
    for _ in range(20):
        g = random_dag(rng, rng.randint(2, 40), 0.15)
        lay = layout(g)
        for b, ups in g.items():
            for a in ups:
                assert lay.positions[a][0] < lay.positions[b][0]
                pts = lay.edges[(a, b)]
                assert pts[0] == (lay.positions[a][0] + NODE_W, lay.positions[a][1] + NODE_H / 2)
                assert pts[-1] == (lay.positions[b][0], lay.positions[b][1] + NODE_H / 2)
        boxes = sorted(lay.positions.values())
        for (x1, y1), (x2, y2) in itertools.pairwise(boxes):
            assert x1 != x2 or abs(y1 - y2) >= NODE_H
        assert all(0 <= x <= lay.width and 0 <= y <= lay.height for x, y in lay.positions.values())


def test_a_long_edge_bends_through_one_point_per_layer_it_crosses() -> None:
    lay = layout({"a": [], "b": ["a"], "c": ["b"], "d": ["c", "a"]})
    assert len(lay.edges[("a", "d")]) == 2 + 2  # its ends, and dummies in the layers of b and c
    assert len(lay.edges[("c", "d")]) == 2


def test_barycenter_removes_avoidable_crossings() -> None:
    # In input order a1, a2 over b1, b2 the edges a1->b2 and a2->b1 cross; swapping b1 and b2 fixes it.
    g = {"a1": [], "a2": [], "b1": ["a2"], "b2": ["a1"], "c1": ["b2"], "c2": ["b1"]}
    assert (
        count_crossings(
            [["a1", "a2"], ["b1", "b2"], ["c1", "c2"]], [("a2", "b1"), ("a1", "b2"), ("b2", "c1"), ("b1", "c2")]
        )
        == 2
    )
    lay = layout(g)
    assert lay.crossings == 0
    (b1, b2), (c1, c2) = (
        (lay.positions["b1"][1], lay.positions["b2"][1]),
        (lay.positions["c1"][1], lay.positions["c2"][1]),
    )
    assert (lay.positions["a1"][1] < lay.positions["a2"][1]) == (b2 < b1) == (c1 < c2)


def test_crossing_count_matches_brute_force_and_layout_never_adds_crossings() -> None:
    rng = random.Random(11)
    for _ in range(30):
        g = random_dag(rng, rng.randint(3, 25), 0.3)
        layers = longest_path_layers(g)
        # Only edges between adjacent layers, for the brute-force comparison.
        edges = [(a, b) for b, ups in g.items() for a in ups if layers[b] - layers[a] == 1]
        order = [[n for n in g if layers[n] == li] for li in range(max(layers.values()) + 1)]
        assert count_crossings(order, edges) == brute_crossings(order, edges)
        shuffled = [rng.sample(lay, len(lay)) for lay in order]
        assert count_crossings(shuffled, edges) == brute_crossings(shuffled, edges)


def test_the_sweeps_never_leave_more_crossings_than_the_input_order(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    graphs = [random_dag(rng, rng.randint(4, 40), 0.2) for _ in range(15)]
    optimized = [layout(g).crossings for g in graphs]
    monkeypatch.setattr("cairn.ui.layout.SWEEPS", 0)
    initial = [layout(g).crossings for g in graphs]
    assert all(o <= i for o, i in zip(optimized, initial, strict=True))
    assert sum(optimized) < sum(initial)  # and on random graphs, it does remove some


def column(x: float) -> int:
    """The layer a point of the drawing is in."""
    return int(x // (NODE_W + GAP_X))


def test_the_reported_crossings_are_those_of_the_drawing() -> None:
    rng = random.Random(3)
    for _ in range(15):
        g = random_dag(rng, rng.randint(4, 30), 0.25)
        lay = layout(g)
        segments = [(p, q) for pts in lay.edges.values() for p, q in itertools.pairwise(pts)]
        drawn = 0
        for (p1, q1), (p2, q2) in itertools.combinations(segments, 2):
            if column(p1[0]) == column(p2[0]) and (p1[1] - p2[1]) * (q1[1] - q2[1]) < 0:
                drawn += 1
        assert drawn == lay.crossings


def test_empty_and_isolated() -> None:
    assert layout({}).positions == {}
    lay = layout({"x": [], "y": [], "z": []})
    assert {p[0] for p in lay.positions.values()} == {0.0} and lay.height == 3 * NODE_H + 2 * 18
