"""Step and op selection, Dagster's grammar: a list of clauses, unioned.

A clause is a name with an optional prefix and suffix: ``*name`` adds all ancestors, ``+name`` one level
of ancestors per ``+``; ``name*`` adds all descendants, ``name+`` one level per ``+`` (Dagster also
reads ``*+name`` and ``name+*`` as "all"). Step selection (re-execution, `resolve_selection`) names
steps; with fan-out ``op[key]`` names one instance of a mapped op and ``op[?]`` all of them (Dagster's
unresolved step; Cairn also reads ``op[*]``); a mapped op's name alone is not a step. Op selection for a fresh run
(`select_ops`, Dagster's ``op_selection``) names the job's top-level nodes, or exact dotted node paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cairn.contract import key
from cairn.errors import DagsterInvalidSubsetError, StepSelectionError

#: Dagster's clause: ancestors (``*``, ``+``...), a name (letters, digits, ``_ - . /``, brackets, ``?``),
#: descendants; Cairn also reads ``op[*]`` (all instances of a mapped op).
_CLAUSE = re.compile(r"^(\*?\+*)([./\w\[\]?\-]+|[./\w\-]+\[\*\])(\+*\*?)$")
ALL = -1
#: A run started with an op selection records it (a JSON list) under this tag; its re-executions plan
#: within it and carry it on, as Dagster's runs carry their `op_selection`.
OP_SELECTION_TAG = key("op-selection")


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
    return Clause(name, _depth(pre), _depth(post))


def _depth(part: str) -> int:
    """Dagster's depth of a prefix or suffix: any ``*`` is all levels, else one level per ``+``."""
    return ALL if "*" in part else len(part)


class StepSubsetError(StepSelectionError, DagsterInvalidSubsetError):
    """A step selection that cannot be built into a subset (a clause that parses to nothing, a selection that
    cannot run as a whole): Dagster's DagsterInvalidSubsetError, and still a Cairn StepSelectionError."""


def unknown_steps(prefix: str, keys: Sequence[str], graph: Graph) -> StepSelectionError:
    """Dagster's refusal of unknown step keys (``{prefix} unknown step: a`` / ``unknown steps: a, b``), with
    a hint where Cairn has one (a mapped op's keys, its ``op[?]``)."""
    plural = "s" if len(keys) > 1 else ""
    return StepSelectionError(
        f"{prefix} unknown step{plural}: {', '.join(keys)}{_hint(keys, graph)}", step_keys=list(keys)
    )


def parse_selection(selection: Sequence[str]) -> list[Clause]:
    if isinstance(selection, str):
        selection = [selection]
    clauses = [parse_clause(c) for c in selection]
    if not clauses or any(c is None for c in clauses):
        raise StepSubsetError(f"No qualified steps to execute found for step_selection={list(selection)}")
    return [c for c in clauses if c is not None]


def resolve_selection(selection: Sequence[str], graph: Graph) -> list[str]:
    """The selected steps, in the graph's order. As Dagster: names that are not steps first
    (DagsterExecutionStepNotFoundError, ``Step selection refers to unknown step: x``, in the selection's
    order), then a clause that parses to nothing (DagsterInvalidSubsetError, ``No qualified steps ...``).
    ``op[*]`` (Cairn's) is ``op[?]`` (Dagster's) where the graph has it."""
    texts = [selection] if isinstance(selection, str) else list(selection)
    parsed = [parse_clause(t) for t in texts]
    names = {c.name: _matching(c.name, graph) for c in parsed if c is not None}
    unknown = [c.name for c in parsed if c is not None and names[c.name] is None]
    if unknown:
        raise unknown_steps("Step selection refers to", unknown, graph)
    if not texts or any(c is None for c in parsed):
        raise StepSubsetError(f"No qualified steps to execute found for step_selection={texts}")
    chosen: set[str] = set()
    for c in parsed:
        assert c is not None
        found = [names[c.name] or c.name]
        chosen.update(found)
        if c.up:
            chosen |= graph.walk(found, c.up, "up")
        if c.down:
            chosen |= graph.walk(found, c.down, "down")
    return [s for s in graph.steps if s in chosen]


def _matching(name: str, graph: Graph) -> str | None:
    """The step a clause's name selects: the step itself, or for ``op[*]`` / ``op[?]`` the other spelling."""
    if name in graph.upstream:
        return name
    for a, b in (("[*]", "[?]"), ("[?]", "[*]")):
        if name.endswith(a) and name[: -len(a)] + b in graph.upstream:
            return name[: -len(a)] + b
    return None


def _hint(unknown: Sequence[str], graph: Graph) -> str:
    """For a mapped op named without a key, or an unknown instance ``op[key]``: the keys it has."""
    hints: list[str] = []
    told: set[str] = set()
    for name in unknown:
        op, bracket, _ = name.partition("[")
        if op in told or not any(s.startswith(op + "[") for s in graph.upstream):
            continue
        told.add(op)
        instances = [s[len(op) + 1 : -1] for s in graph.steps if s.startswith(op + "[") and s[len(op) + 1] not in "?*"]
        shown = ", ".join(instances[:10]) + (f" and {len(instances) - 10} more" if len(instances) > 10 else "")
        keys = f"has keys {shown}" if instances else "has no known keys"
        hints.append(f"{op} {keys}" if bracket else f"{op} is mapped ({keys}): select {op}[?] for all its steps")
    return f" ({'; '.join(hints)})" if hints else ""


def select_ops(graph: Graph, clauses: Sequence[str]) -> set[str]:
    """Dagster's ``op_selection`` for a fresh run: the steps (ops, mapped ops unexpanded, nested ops by their
    dotted names) of the selected nodes. Clauses name the job's top-level nodes (a graph node selects all its
    ops) with Dagster's ``*``/``+`` grammar; ``["*"]`` is everything; if any clause has a dot, every clause
    is an exact node path (``outer.inner``), without the grammar. No clauses: everything, as Dagster.
    Raises DagsterInvalidSubsetError with Dagster's wording."""
    if isinstance(clauses, str):
        raise DagsterInvalidSubsetError(
            f'Param "op_selection" is not a Sequence. Got {clauses!r} which is type {type(clauses)}. str is a '
            f"disallowed Sequence type due to its likeliness to cause bugs. Pass a list: op_selection=[{clauses!r}]"
        )
    queries = list(clauses)
    if not queries or queries == ["*"]:
        return set(graph.steps)
    if any("." in q for q in queries):
        return _select_paths(graph, queries)
    top = _top_level(graph)
    chosen: set[str] = set()
    for query in queries:
        c = parse_clause(query)
        if c is None or c.name not in top.upstream:
            raise DagsterInvalidSubsetError(
                f"No qualified ops to execute found for op_selection={queries} (the job's top-level nodes are "
                f"{', '.join(top.steps)})"
            )
        chosen |= {c.name} | top.walk([c.name], c.up, "up") | top.walk([c.name], c.down, "down")
    return {s for s in graph.steps if node_path(s)[0] in chosen}


def node_path(step: str) -> tuple[str, ...]:
    """A step's node path: ``outer.inner[k]`` -> (outer, inner); a top-level op -> (op,)."""
    node = step.partition("[")[0] if step.endswith("]") else step
    return tuple(node.split("."))


def _top_level(graph: Graph) -> Graph:
    """The graph of the job's top-level nodes (what Dagster's op selection walks): a graph node's edges
    are those of its ops that cross its boundary."""
    names = list(dict.fromkeys(node_path(s)[0] for s in graph.steps))
    up: dict[str, list[str]] = {n: [] for n in names}
    down: dict[str, list[str]] = {n: [] for n in names}
    for s in graph.steps:
        me = node_path(s)[0]
        for u in graph.upstream[s]:
            them = node_path(u)[0]
            if them != me and them not in up[me]:
                up[me].append(them)
                down[them].append(me)
    return Graph(tuple(names), {k: tuple(v) for k, v in up.items()}, {k: tuple(v) for k, v in down.items()})


def _select_paths(graph: Graph, paths: Sequence[str]) -> set[str]:
    """Exact node paths (``outer.inner``, ``outer``): each must name a node, each prefix a graph."""
    leaves = {node_path(s) for s in graph.steps}
    nodes = {p[: i + 1] for p in leaves for i in range(len(p))}
    wanted = sorted({tuple(p.split(".")) for p in paths})
    for path in wanted:
        for i, name in enumerate(path):
            if path[: i + 1] not in nodes:
                raise DagsterInvalidSubsetError(f"Node {name} was selected, but no node named {name} was found.")
            if i + 1 < len(path) and path[: i + 1] in leaves:
                raise DagsterInvalidSubsetError(f"Children of node {name} were selected, but {name} is not a graph.")
    return {s for s in graph.steps if any(node_path(s)[: len(p)] == p for p in wanted)}
