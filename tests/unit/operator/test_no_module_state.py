"""No module of the operator holds mutable state: every cache, pool, lock, waiter and counter lives on a
controller built in `__main__` (tests build their own over fakes). Checked from the source (ast): a
module-level assignment of a mutable value, and a `global` statement, are refused."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

OPERATOR = Path(__file__).resolve().parents[3] / "operator" / "cairn_operator"
#: Calls whose result is mutable (or holds threads, locks or connections) at module level.
MUTABLE_CALLS = {
    "dict", "list", "set", "defaultdict", "OrderedDict", "deque", "Counter", "ThreadPoolExecutor", "Lock",
    "RLock", "Event", "Queue", "CollectorRegistry", "ApiClient",
}  # fmt: skip


def module_state(source: str) -> list[str]:
    """`line: name` of each module-level binding to a mutable value, and each `global` statement."""
    tree = ast.parse(source)
    found = [f"{n.lineno}: global {', '.join(n.names)}" for n in ast.walk(tree) if isinstance(n, ast.Global)]
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None and _mutable(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [f"{node.lineno}: {ast.unparse(t)}" for t in targets]
    return found


def _mutable(value: ast.expr) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp | ast.SetComp):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return name in MUTABLE_CALLS
    return False


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("CACHE: dict[str, int] = {}\n", ["1: CACHE"]),
        ("POOL = ThreadPoolExecutor(max_workers=8)\n", ["1: POOL"]),
        ("import threading\nLOCK = threading.Lock()\n", ["2: LOCK"]),
        ("def f():\n    global X\n    X = 1\n", ["2: global X"]),
        ("NAMES = ('a', 'b')\nFROZEN = frozenset({1})\nLIMIT = 5\n", []),
        ("def f():\n    cache = {}\n    return cache\n", []),  # a function's own state is fine
    ],
)
def test_the_check_finds_module_state(source: str, found: list[str]) -> None:
    assert module_state(source) == found


def test_no_operator_module_holds_mutable_state() -> None:
    files = sorted(OPERATOR.glob("*.py"))
    assert len(files) > 10
    offenders = [f"{p.name}:{hit}" for p in files for hit in module_state(p.read_text())]
    assert offenders == [], "module-level state (put it on a controller, built in __main__):\n" + "\n".join(offenders)
