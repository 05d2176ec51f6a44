"""Step selection, Dagster's grammar: a list of clauses, unioned.

A clause is a step name with an optional prefix and suffix: ``*name`` adds all ancestors, ``+name``
one level of ancestors per ``+``; ``name*`` adds all descendants, ``name+`` one level per ``+``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cairn.errors import StepSelectionError

_CLAUSE = re.compile(r"^(\*|\+*)([A-Za-z0-9_.\-\[\]]+)(\*|\+*)$")
ALL = -1


@dataclass(frozen=True)
class Graph:
    """Steps in a topological order, each with the steps it reads from and the steps that read it."""

    steps: tuple[str, ...]
    upstream: Mapping[str, tuple[str, ...]]
    downstream: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, steps: Sequence[str], deps: Mapping[str, Mapping[str, tuple[str, str]]]) -> Graph:
        up: dict[str, list[str]] = {s: [] for s in steps}
        down: dict[str, list[str]] = {s: [] for s in steps}
        for s in steps:
            for src, _ in deps.get(s, {}).values():
                if src not in up[s]:
                    up[s].append(src)
                    down[src].append(s)
        return cls(tuple(steps), {k: tuple(v) for k, v in up.items()}, {k: tuple(v) for k, v in down.items()})

    def walk(self, start: Iterable[str], depth: int, direction: str) -> set[str]:
        """Steps reachable from `start` within `depth` levels (ALL: any), not counting `start` itself."""
        edges = self.downstream if direction == "down" else self.upstream
        seen: set[str] = set()
        frontier = list(start)
        level = 0
        while frontier and (depth == ALL or level < depth):
            nxt = []
            for s in frontier:
                for t in edges[s]:
                    if t not in seen:
                        seen.add(t)
                        nxt.append(t)
            frontier = nxt
            level += 1
        return seen

    def descendants(self, start: Iterable[str]) -> set[str]:
        return self.walk(start, ALL, "down")


@dataclass(frozen=True)
class Clause:
    name: str
    up: int  # levels of ancestors: 0, n, or ALL
    down: int  # levels of descendants: 0, n, or ALL


def parse_clause(text: str) -> Clause | None:
    m = _CLAUSE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        return None
    pre, name, post = m.groups()
    return Clause(name, ALL if pre == "*" else len(pre), ALL if post == "*" else len(post))


def parse_selection(selection: Sequence[str]) -> list[Clause]:
    if isinstance(selection, str):
        selection = [selection]
    clauses = [parse_clause(c) for c in selection]
    if not clauses or any(c is None for c in clauses):
        raise StepSelectionError(f"No qualified steps to execute found for step_selection={list(selection)}")
    return [c for c in clauses if c is not None]


def resolve_selection(selection: Sequence[str], graph: Graph) -> list[str]:
    """The selected steps, in the graph's order; errors name unknown steps or malformed clauses."""
    clauses = parse_selection(selection)
    known = set(graph.steps)
    unknown = sorted({c.name for c in clauses if c.name not in known})
    if unknown:
        raise StepSelectionError(f"Step selection refers to unknown step(s): {', '.join(unknown)}")
    chosen: set[str] = set()
    for c in clauses:
        chosen.add(c.name)
        if c.up:
            chosen |= graph.walk([c.name], c.up, "up")
        if c.down:
            chosen |= graph.walk([c.name], c.down, "down")
    return [s for s in graph.steps if s in chosen]
