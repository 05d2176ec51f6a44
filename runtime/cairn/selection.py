"""Step selection, Dagster's grammar: a list of clauses, unioned.

A clause is a step name with an optional prefix and suffix: ``*name`` adds all ancestors, ``+name``
one level of ancestors per ``+``; ``name*`` adds all descendants, ``name+`` one level per ``+``.
With fan-out, ``op[key]`` names one instance of a mapped op, and ``op[*]`` (or plain ``op``) all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cairn.errors import StepSelectionError

_CLAUSE = re.compile(r"^(\*|\+*)([A-Za-z0-9_.\-]+(?:\[(?:[A-Za-z0-9_]+|\*)\])?)(\*|\+*)$")
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
    matches = {c.name: _matching(c.name, graph) for c in clauses}
    unknown = sorted(name for name, found in matches.items() if not found)
    if unknown:
        raise StepSelectionError(
            f"Step selection refers to unknown step(s): {', '.join(unknown)}{_hint(unknown, graph)}"
        )
    chosen: set[str] = set()
    for c in clauses:
        found = matches[c.name]
        chosen |= found
        if c.up:
            chosen |= graph.walk(found, c.up, "up")
        if c.down:
            chosen |= graph.walk(found, c.down, "down")
    return [s for s in graph.steps if s in chosen]


def _matching(name: str, graph: Graph) -> set[str]:
    """The steps a clause's name selects: the step itself; for a mapped op (``op`` or ``op[*]``) all its
    instances (or its placeholder while its keys are unknown)."""
    if name in graph.upstream:
        return {name}
    op = name[: -len("[*]")] if name.endswith("[*]") else name
    if "[" in op:
        return set()
    return {s for s in graph.steps if s.startswith(op + "[") and s.endswith("]")}


def _hint(unknown: Sequence[str], graph: Graph) -> str:
    """For an unknown instance ``op[key]`` of a mapped op: the keys it has."""
    hints = []
    for name in unknown:
        op, _, key = name.partition("[")
        instances = [s[len(op) + 1 : -1] for s in sorted(_matching(op, graph))]
        if key and instances:
            shown = ", ".join(instances[:10]) + (f" and {len(instances) - 10} more" if len(instances) > 10 else "")
            hints.append(f"{op} has keys {shown}")
    return f" ({'; '.join(hints)})" if hints else ""
