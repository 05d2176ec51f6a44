"""A layered (Sugiyama-style) layout of a run's step graph, as a pure function.

`layout(graph)` takes each step with the steps it reads from and returns where to draw it:

1. layering by longest path: a step's layer is one more than the deepest of its upstream steps, so
   every edge points from a lower layer to a higher one;
2. an edge that spans several layers gets one dummy node per layer it crosses, so that crossings are
   counted and reduced between adjacent layers only;
3. crossing reduction by the barycenter heuristic: sweeps down then up, each layer sorted by the mean
   position of its neighbours in the layer before; the ordering with the fewest crossings is kept;
4. coordinates: layers are columns (left to right, in dependency order), a layer's nodes are spread
   vertically and centered on the tallest layer; each edge is a polyline through its dummy nodes.

Nothing here does I/O; tests/unit/test_ui_layout.py pins its properties.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: Box size of a step and the gaps between layers (columns) and between steps of one layer, in pixels.
NODE_W, NODE_H, GAP_X, GAP_Y = 160, 36, 60, 18
SWEEPS = 12


@dataclass(frozen=True)
class Layout:
    """Where to draw each step (top-left corner of its box) and each edge (polyline of box anchors)."""

    positions: dict[str, tuple[float, float]]
    layers: list[list[str]]  # real steps only, in drawing order
    edges: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)
    width: float = 0.0
    height: float = 0.0
    crossings: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "nodes": {n: {"x": x, "y": y} for n, (x, y) in self.positions.items()},
            "edges": [{"from": a, "to": b, "points": pts} for (a, b), pts in self.edges.items()],
            "width": self.width,
            "height": self.height,
            "nodeWidth": NODE_W,
            "nodeHeight": NODE_H,
            "crossings": self.crossings,
        }


def longest_path_layers(graph: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each node's layer: 0 for a node with no upstream, else 1 + the maximum of its upstreams' layers.

    Upstream names that are not nodes of `graph` are ignored. Raises ValueError on a cycle."""
    layer: dict[str, int] = {}
    visiting: set[str] = set()
    for start in graph:
        if start in layer:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, i = stack.pop()
            ups = [u for u in graph[node] if u in graph]
            if i == 0:
                if node in layer:
                    continue
                visiting.add(node)
            if i < len(ups):
                stack.append((node, i + 1))
                up = ups[i]
                if up in visiting:
                    raise ValueError(f"the graph has a cycle through {up!r}")
                if up not in layer:
                    stack.append((up, 0))
                continue
            visiting.discard(node)
            layer[node] = 1 + max((layer[u] for u in ups), default=-1)
    return layer


def count_crossings(order: Sequence[Sequence[str]], edges: Sequence[tuple[str, str]]) -> int:
    """Edge crossings between adjacent layers of `order` (edges join nodes of adjacent layers)."""
    layer_of = {n: li for li, nodes in enumerate(order) for n in nodes}
    by_layer: dict[int, list[tuple[str, str]]] = {}
    for a, b in edges:
        if layer_of[a] > layer_of[b]:
            a, b = b, a
        by_layer.setdefault(layer_of[a], []).append((a, b))
    return _crossings(order, by_layer)


def _crossings(order: Sequence[Sequence[str]], by_layer: Mapping[int, list[tuple[str, str]]]) -> int:
    """count_crossings with the edges already grouped by their upper layer (the layout's inner loop)."""
    pos = {n: i for nodes in order for i, n in enumerate(nodes)}
    return sum(_inversions([b for _, b in sorted((pos[a], pos[b]) for a, b in pairs)]) for pairs in by_layer.values())


def _inversions(seq: list[int]) -> int:
    """Pairs i < j with seq[i] > seq[j]: each value counts the larger ones before it, found by bisection
    in the sorted prefix (the list insert is a memmove: fast for the sizes of a layer pair)."""
    seen: list[int] = []
    count = 0
    for x in seq:
        i = bisect.bisect_right(seen, x)
        count += len(seen) - i
        seen.insert(i, x)
    return count


def _sweep(order: list[list[str]], neighbours: Mapping[str, list[str]], layers: range) -> None:
    """Sort each layer in `layers` by the barycenter of its nodes' neighbours in the previous layer."""
    for li in layers:
        prev = order[li - 1] if layers.step > 0 else order[li + 1]
        where = {n: i for i, n in enumerate(prev)}
        current = order[li]
        keyed: list[tuple[float, int, str]] = []
        for i, n in enumerate(current):
            ps = [where[m] for m in neighbours[n] if m in where]
            keyed.append((sum(ps) / len(ps) if ps else float(i), i, n))
        keyed.sort()
        order[li] = [n for _, _, n in keyed]


def layout(graph: Mapping[str, Sequence[str]]) -> Layout:
    """Lay out `graph` (node -> the nodes it reads from; insertion order is the tie-breaker)."""
    if not graph:
        return Layout({}, [])
    layer = longest_path_layers(graph)
    depth = max(layer.values()) + 1
    order: list[list[str]] = [[] for _ in range(depth)]
    for n in graph:
        order[layer[n]].append(n)
    # Split long edges with dummy nodes (names that cannot clash with a step's: they hold a NUL).
    chains: dict[tuple[str, str], list[str]] = {}
    short: list[tuple[str, str]] = []
    for b, ups in graph.items():
        for a in dict.fromkeys(u for u in ups if u in graph):
            chain = [a]
            for li in range(layer[a] + 1, layer[b]):
                d = f"\0{a}\0{b}\0{li}"
                order[li].append(d)
                chain.append(d)
            chain.append(b)
            chains[(a, b)] = chain
            short.extend(itertools.pairwise(chain))
    down: dict[str, list[str]] = {n: [] for lay in order for n in lay}
    up: dict[str, list[str]] = {n: [] for lay in order for n in lay}
    for a, b in short:
        down[a].append(b)
        up[b].append(a)

    by_layer: dict[int, list[tuple[str, str]]] = {}
    for a, b in short:  # every (split) edge goes from one layer to the next
        by_layer.setdefault(layer[a] if a in layer else int(a.rsplit("\0", 1)[1]), []).append((a, b))
    best = [list(lay) for lay in order]
    best_x = _crossings(best, by_layer)
    stale = 0
    for i in range(SWEEPS):
        if best_x == 0 or stale >= 4:  # no better ordering in the last four sweeps: stop early
            break
        if i % 2 == 0:
            _sweep(order, up, range(1, depth))
        else:
            _sweep(order, down, range(depth - 2, -1, -1))
        x = _crossings(order, by_layer)
        if x < best_x:
            best, best_x, stale = [list(lay) for lay in order], x, 0
        else:
            stale += 1

    tallest = max(len(lay) for lay in best)
    height = tallest * NODE_H + (tallest - 1) * GAP_Y
    slot: dict[str, tuple[float, float]] = {}
    for li, nodes in enumerate(best):
        top = (height - (len(nodes) * NODE_H + (len(nodes) - 1) * GAP_Y)) / 2
        for i, n in enumerate(nodes):
            slot[n] = (float(li * (NODE_W + GAP_X)), top + i * (NODE_H + GAP_Y))
    positions = {n: slot[n] for n in graph}
    edges: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for (a, b), chain in chains.items():
        pts = [(slot[a][0] + NODE_W, slot[a][1] + NODE_H / 2)]
        pts += [(slot[d][0] + NODE_W / 2, slot[d][1] + NODE_H / 2) for d in chain[1:-1]]
        pts.append((slot[b][0], slot[b][1] + NODE_H / 2))
        edges[(a, b)] = pts
    return Layout(
        positions=positions,
        layers=[[n for n in lay if not n.startswith("\0")] for lay in best],
        edges=edges,
        width=float(depth * NODE_W + (depth - 1) * GAP_X),
        height=float(height),
        crossings=best_x,
    )
