"""What the UI reads and does, independent of where runs live: the `Source` protocol, the re-execution
request the pages send, and the one JSON shape of a run that both sources produce.

Two sources implement it: `cairn.ui.kube.KubeSource` (Jobs, Runs and Reexecutions on a cluster, kept
in memory from one watch per kind) and `cairn.ui.local.LocalSource` (the in-process run store).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cairn.contract import RxMode
from cairn.dynamic import status_keys
from cairn.planner import JobGraph

#: The UI's own mode: Selected with the steps the parent executed (Dagster's "Same steps").
SAME_STEPS = "SameSteps"
#: Re-execution modes of the UI: RxMode's but Stale, and SAME_STEPS.
MODES = (RxMode.ALL.value, SAME_STEPS, RxMode.SELECTED.value, RxMode.FROM_SELECTED.value, RxMode.FROM_FAILURE.value)
#: Modes that re-execute a selection of steps (a request needs at least one).
SELECTING = (RxMode.SELECTED.value, RxMode.FROM_SELECTED.value)
#: Reasons the planner gives a step it runs (`cairn.planner`).
PLAN_REASONS = ("selected", "failed", "interrupted", "not-executed", "all", "missing-output")

Publish = Callable[[dict[str, Any]], None]


class UIError(Exception):
    """A refusal to show to the user as it is, with the HTTP status it maps to."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ReexecRequest:
    """A re-execution as the page asks for it."""

    mode: str
    selection: tuple[str, ...] = ()
    env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # step -> name -> value
    image: Mapping[str, str] = field(default_factory=dict)  # step -> image
    config: Mapping[str, Any] | None = None

    @classmethod
    def parse(cls, body: Any) -> ReexecRequest:
        """From the JSON body of a preview or re-execute request; UIError(400) says what is wrong."""
        if not isinstance(body, dict):
            raise UIError(400, "the request body must be a JSON object")
        mode = body.get("mode")
        if mode not in MODES:
            raise UIError(400, f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        selection = body.get("selection") or []
        if isinstance(selection, str):
            selection = [s for s in selection.replace(",", " ").split() if s]
        if not isinstance(selection, list) or not all(isinstance(s, str) and s for s in selection):
            raise UIError(400, "selection must be a list of step selection clauses like 'op', 'op*', '+op'")
        if mode in SELECTING and not selection:
            raise UIError(400, f"mode {mode} needs at least one selected step")
        env = body.get("env") or {}
        if not isinstance(env, dict) or not all(
            isinstance(s, str)
            and isinstance(kv, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in kv.items())
            for s, kv in env.items()
        ):
            raise UIError(400, "env must map a step to {NAME: value}")
        image = body.get("image") or {}
        if not isinstance(image, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in image.items()
        ):
            raise UIError(400, "image must map a step to an image name")
        config = body.get("config")
        if config is not None and not isinstance(config, dict):
            raise UIError(400, "config must be a mapping like {ops: {op: {config: ...}}}")
        return cls(mode, tuple(selection), env, image, config)

    def unknown_steps(self, steps: list[str]) -> list[str]:
        known = set(steps)
        return sorted({s for s in [*self.env, *self.image] if s not in known})


def iso_to_epoch(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def progress(phases: list[str], terminal: Callable[[str], bool]) -> str:
    return f"{sum(1 for p in phases if terminal(p))}/{len(phases)}"


def duration(started: float | None, finished: float | None, now: float) -> float | None:
    if started is None:
        return None
    return max(0.0, (finished if finished is not None else now) - started)


def upstream_of_ops(ops: list[dict[str, Any]], status_steps: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """A Job spec's ops as step -> upstream steps (an input names `op` or `op.output`). With fan-out, the
    steps of the Run: each mapped op once per key its status knows (`op[key]`; `op[*]` while unknown)."""

    graph = JobGraph.of_ops(ops).concrete(status_keys(status_steps or {}))
    return {step: list(dict.fromkeys(up for up, _ in graph.deps[step].values())) for step in graph.steps}


def lineage_tree(runs: list[dict[str, Any]], root: str) -> dict[str, Any] | None:
    """Run summaries (with name, parent, steps subset) as a tree from `root`, children by creation."""
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    by_name = {r["name"]: r for r in runs}
    for r in sorted(runs, key=lambda r: r.get("created") or 0):
        by_parent.setdefault(r.get("parent"), []).append(r)

    def node(r: dict[str, Any], depth: int) -> dict[str, Any]:
        kids = [] if depth > 100 else by_parent.get(r["name"], [])
        return {
            "name": r["name"],
            "phase": r["phase"],
            "mode": r.get("mode"),
            "stepSubset": r.get("stepSubset"),
            "children": [node(k, depth + 1) for k in kids],
        }

    return node(by_name[root], 0) if root in by_name else None


class LogFollow(Protocol):
    """The log of a running attempt as it is written (one upstream connection): `chunks` blocks for the
    next bytes and ends when the log ends; `close` may be called from another thread and unblocks it."""

    source: str  # where the log comes from, e.g. "pod NAME"
    secrets: Sequence[str]  # values to replace by *** in every line sent to a page
    note: str | None  # something the page should say about this log (e.g. masking not possible)

    def chunks(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


def mask(text: str, secrets: Sequence[str]) -> str:
    """`text` with every value of `secrets` replaced by ***."""
    for value in secrets:
        if value and value in text:
            text = text.replace(value, "***")
    return text


class LineMasker:
    """Cuts a stream of text into lines and masks each line whole, so that a secret split across two
    chunks is still masked. A line longer than `max_line` characters is cut (never inside a secret)."""

    def __init__(self, secrets: Sequence[str], max_line: int = 16384) -> None:
        self.secrets = [s for s in secrets if s]
        self.keep = max((len(s) for s in self.secrets), default=1) - 1  # a secret may start in the tail
        self.max_line = max(max_line, self.keep + 1)
        self.buf = ""

    def feed(self, text: str) -> list[str]:
        self.buf += text
        *complete, self.buf = self.buf.split("\n")
        out = [mask(line, self.secrets) for line in complete]
        while len(self.buf) > self.max_line + self.keep:  # the kept tail may hold the start of a secret
            cut = self._cut(self.max_line)
            out.append(mask(self.buf[:cut], self.secrets))
            self.buf = self.buf[cut:]
        return out

    def flush(self) -> list[str]:
        rest, self.buf = self.buf, ""
        return [mask(rest, self.secrets)] if rest else []

    def _cut(self, cut: int) -> int:
        """The largest cut <= `cut` that splits no occurrence of a secret in the buffer."""
        moved = True
        while moved:
            moved = False
            for s in self.secrets:
                i = self.buf.find(s, max(0, cut - len(s) + 1))
                if 0 <= i < cut < i + len(s):
                    cut, moved = i, True
        return cut if cut > 0 else len(self.buf)


class Source(Protocol):
    """Where runs come from; each method raises UIError for what the user should see."""

    kind: str
    live_logs: bool  # whether `follow_log` can follow a running step's log

    def start(self, publish: Publish) -> None: ...

    def stop(self) -> None: ...

    def info(self) -> dict[str, Any]: ...

    def list_runs(self) -> list[dict[str, Any]]: ...

    def get_run(self, name: str) -> dict[str, Any]: ...

    def lineage(self, name: str) -> dict[str, Any]: ...

    def step_log(self, name: str, step: str, attempt: int | None) -> dict[str, Any]: ...

    def follow_log(self, name: str, step: str, attempt: int | None) -> LogFollow: ...

    def preview(self, name: str, req: ReexecRequest) -> dict[str, Any]: ...

    def reexecute(self, name: str, req: ReexecRequest) -> dict[str, Any]: ...

    def get_reexecution(self, name: str) -> dict[str, Any]: ...
