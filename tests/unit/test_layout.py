"""The source roots: `operator/` must never shadow the standard library's `operator`; and no function in them
is longer than the issue-16 limits (120 lines anywhere, `execute_job` at most 60)."""

from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = ("runtime", "operator", "devtools")
MAX_FUNCTION_LINES = 120
MAX_EXECUTE_JOB_LINES = 60


def test_operator_is_the_standard_library_module_in_tests() -> None:
    import operator

    assert Path(operator.__file__).parent == Path(sysconfig.get_paths()["stdlib"])
    assert operator.add(2, 3) == 5


def test_operator_is_the_standard_library_module_from_the_repository_root() -> None:
    # `python -c` puts the current directory (the repository root, holding operator/) first on sys.path.
    code = "import operator, sys; print(operator.__file__); assert operator.itemgetter(1)([0, 7]) == 7"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()).parent == Path(sysconfig.get_paths()["stdlib"])


def test_source_roots_have_no_init_and_both_packages_import() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
    assert not (ROOT / "runtime" / "__init__.py").exists()
    import cairn
    import cairn_operator

    assert Path(cairn.__file__).is_relative_to(ROOT / "runtime")
    assert Path(cairn_operator.__file__).is_relative_to(ROOT / "operator")


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int, int]]:
    """(qualified name, first line, length in lines) of every function and method in `tree`, nested ones too;
    the length runs from the `def` line to the last line of the body (decorators not counted)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                yield name, node.lineno, node.end_lineno - node.lineno + 1
            yield from functions(node, f"{name}.")
        else:
            yield from functions(node, prefix)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    return 1\n", [("f", 1, 2)]),
        ("@d\nasync def f():\n    x = 1\n\n    return x\n", [("f", 2, 4)]),
        (
            "class C:\n    def m(self):\n        def inner():\n            pass\n        return inner\n",
            [("C.m", 2, 4), ("C.m.inner", 3, 2)],
        ),
        ("if True:\n    def g(): pass\n", [("g", 2, 1)]),
        ("x = 1\n", []),
    ],
)
def test_functions_are_measured_from_def_to_their_last_line(source: str, expected: list[tuple[str, int, int]]) -> None:
    assert list(functions(ast.parse(source))) == expected


def test_no_function_in_the_source_roots_is_over_120_lines() -> None:
    too_long, seen = [], set()
    for root in SOURCE_ROOTS:
        for path in sorted((ROOT / root).rglob("*.py")):
            seen.add(root)
            for name, line, length in functions(ast.parse(path.read_text(), str(path))):
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{line} {name}: {length} lines")
    assert seen == set(SOURCE_ROOTS), f"no Python file found under {set(SOURCE_ROOTS) - seen}"
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(too_long)


def test_execute_job_is_at_most_60_lines() -> None:
    import cairn.execution

    path = Path(cairn.execution.__file__)
    lengths = {name: length for name, _, length in functions(ast.parse(path.read_text(), str(path)))}
    assert "execute_job" in lengths, f"no top-level execute_job in {path}"
    assert lengths["execute_job"] <= MAX_EXECUTE_JOB_LINES, f"execute_job is {lengths['execute_job']} lines"
