"""Run Dagster's own public-API tests (re-execution, dynamic outputs, retries) against Cairn, imports changed.

The measure of issue 17: a Dagster job and its tests port by changing imports. The harness copies
Dagster's test files at run time from a directory you point to (they are not part of this repository),
rewrites only their imports and runs them with pytest:

- ``import dagster as dg`` -> ``import cairn.dagster as dg``; ``from dagster import X`` -> ``from
  cairn.dagster import X``;
- ``from dagster._core... import X`` where X is one of Dagster's public names (``DagsterInstance``,
  ``instance_for_test``, ``Output``...) -> ``from cairn.dagster import X`` (the same import a user of the
  public API writes);
- a test that needs Dagster's internals (a name only in ``dagster._...``, ``dg._...``, ``dagster_shared``,
  ``dagster_test``) is skipped and counted as "uses internals"; one that needs a test dependency the
  interpreter lacks (``objgraph``) is skipped as "missing test dependency";
- a test that needs one of Dagster's public names the target lacks fails, with that name as its error
  (the module's other tests still run: the definitions using the name are taken out, not the file).

The test files (Dagster 1.13's ``dagster_tests``, paths relative to it)::

    execution_tests/dynamic_tests/test_reexecute.py         re-execution over dynamic (mapped) steps
    execution_tests/dynamic_tests/test_dynamic_execution.py dynamic outputs executed
    execution_tests/dynamic_tests/test_dynamic_output.py    DynamicOutput and its values
    execution_tests/dynamic_tests/test_dsl.py               .map() / .collect() composition
    execution_tests/dynamic_tests/test_not_allowed.py       what a dynamic job refuses at definition
    execution_tests/misc_execution_tests/test_retries.py    RetryPolicy, RetryRequested, Failure, retried events
    execution_tests/execute_job_tests/test_execute_job.py   execute_job, ReexecutionOptions, results

Get them from Dagster's source distribution (it carries ``dagster_tests``)::

    pip download dagster==1.13.29 --no-deps --no-binary :all: -d /tmp/dsdist
    tar xzf /tmp/dsdist/dagster-1.13.29.tar.gz -C /tmp      # -> /tmp/dagster-1.13.29/dagster_tests
    .venv/bin/python bench/dagster_public_tests.py --dagster-tests /tmp/dagster-1.13.29/dagster_tests

``--dagster-python PATH`` runs the same tests (same skips) against real Dagster in that interpreter, side
by side (it needs pytest: ``--dagster-pythonpath DIR`` puts e.g. ``pip install --target DIR pytest
pytest-timeout`` on its path). Without it, an internal import of a public name Cairn lacks counts as
"uses internals" (the public list is asked of Dagster). Prints, per target: files, tests tried, passed,
failed, skipped (internals, missing test dependency), and for each failing test the first line of its error.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

FILES = (
    "execution_tests/dynamic_tests/test_reexecute.py",
    "execution_tests/dynamic_tests/test_dynamic_execution.py",
    "execution_tests/dynamic_tests/test_dynamic_output.py",
    "execution_tests/dynamic_tests/test_dsl.py",
    "execution_tests/dynamic_tests/test_not_allowed.py",
    "execution_tests/misc_execution_tests/test_retries.py",
    "execution_tests/execute_job_tests/test_execute_job.py",
)
REPO = Path(__file__).resolve().parent.parent
INTERNAL_PACKAGES = ("dagster_shared", "dagster_test", "dagster_pipes")
INTERNALS = "uses internals"
MISSING_DEP = "missing test dependency"
LACKS = "harness: needs dagster."
PRELUDE = """import functools as _harness_functools
import pytest as _harness_pytest


def _harness_fails(message):
    def wrap(fn):
        @_harness_functools.wraps(fn)
        def run(*args, **kwargs):
            _harness_pytest.fail(message, pytrace=False)

        return run

    return wrap


"""


@dataclass(frozen=True)
class Target:
    """Where the rewritten tests run: the module they import Dagster's names from, and which it has."""

    label: str
    python: str
    module: str  # "cairn.dagster" or "dagster"
    names: frozenset[str]  # public names the module has
    modules: frozenset[str]  # third-party top-level modules the interpreter can import
    pythonpath: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rewrite:
    """A test file with its imports changed, and why tests were taken out."""

    source: str
    skipped: dict[str, str] = field(default_factory=dict)  # test name -> reason
    failed: dict[str, str] = field(default_factory=dict)  # test name -> reason


# --- reading a test file: which names each top-level statement binds and uses ---------------------------


def _dagster_module(name: str) -> bool:
    return name == "dagster" or name.startswith("dagster.") or name.startswith("dagster._")


def _uses(node: ast.AST, aliases: frozenset[str]) -> set[str]:
    """Names `node` reads; an attribute of a module alias of dagster as ``dagster.<attr>``."""
    found: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id in aliases:
            found.add(f"dagster.{sub.attr}")
        elif isinstance(sub, ast.Name):
            found.add(sub.id)
    return found


def _binds(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _import_reason(module: str, name: str, target: Target, public: frozenset[str]) -> str | None:
    """Why a name imported from `module` cannot be bound in `target` (None: it can)."""
    top = module.split(".")[0]
    if _dagster_module(module):
        if module == "dagster" or name in public:
            return None if name in target.names else f"{LACKS}{name}, which {target.label} does not have"
        return f"{INTERNALS}: {module}.{name}"
    if top in INTERNAL_PACKAGES:
        return f"{INTERNALS}: {module}.{name}"
    if top not in target.modules and top not in sys.stdlib_module_names:
        return f"{MISSING_DEP}: {top}"
    return None


# --- the rewrite ---------------------------------------------------------------------------------------


def _rewrite_import(node: ast.Import | ast.ImportFrom, target: Target, public: frozenset[str]) -> tuple[str, dict]:
    """The import as the target writes it, and the names it no longer binds (name -> reason)."""
    bad: dict[str, str] = {}
    if isinstance(node, ast.Import):
        lines = []
        for a in node.names:
            bound = a.asname or a.name.split(".")[0]
            reason = _import_reason(a.name, "*", target, public) if a.name not in ("dagster",) else None
            if a.name == "dagster":
                lines.append(f"import {target.module} as {bound}")
            elif reason:
                bad[bound] = reason
            else:
                lines.append(f"import {a.name}" + (f" as {a.asname}" if a.asname else ""))
        return "\n".join(lines), bad
    module = node.module or ""
    keep: list[str] = []
    for a in node.names:
        reason = _import_reason(module, a.name, target, public)
        if reason:
            bad[a.asname or a.name] = reason
        else:
            keep.append(a.name + (f" as {a.asname}" if a.asname else ""))
    if not keep:
        return "", bad
    source = target.module if _dagster_module(module) else module
    return f"from {source} import ({', '.join(keep)})", bad


def _test_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
        return [node.name]
    if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
        return [f"{node.name}::{n.name}" for n in node.body if isinstance(n, ast.FunctionDef)]
    return []


def _spread(stmts: Sequence[ast.stmt], bad: dict[str, str], aliases: frozenset[str]) -> dict[int, str]:
    """Statements (by index) that read a bad name, directly or through another such statement."""
    uses = [_uses(s, aliases) for s in stmts]
    taken: dict[int, str] = {}
    changed = True
    while changed:
        changed = False
        for i, stmt in enumerate(stmts):
            if i in taken:
                continue
            hit = sorted(n for n in uses[i] if n in bad)
            if hit:
                taken[i] = bad[hit[0]]
                for name in _binds(stmt):
                    bad.setdefault(name, bad[hit[0]])
                changed = True
    return taken


def _replacement(stmt: ast.stmt, reason: str) -> str:
    """What a taken-out statement becomes: its names bound to None; a test skipped, or failing with the
    reason if the target lacks a public name."""
    if reason.startswith(LACKS) and isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and _test_names(stmt):
        return f"@_harness_fails({reason!r})\n" + _stub_def(stmt)
    if _test_names(stmt) and isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        return f"@_harness_pytest.mark.skip(reason={reason!r})\n" + _stub_def(stmt)
    if _test_names(stmt) and isinstance(stmt, ast.ClassDef):
        methods = "".join(
            f"    @_harness_pytest.mark.skip(reason={reason!r})\n    def {n.split('::')[1]}(self): pass\n"
            for n in _test_names(stmt)
        )
        return f"class {stmt.name}:\n{methods}"
    return "\n".join(f"{name} = None" for name in sorted(_binds(stmt))) or "pass"


def _marker(reason: str) -> str:
    return (
        f"@_harness_fails({reason!r})" if reason.startswith(LACKS) else f"@_harness_pytest.mark.skip(reason={reason!r})"
    )


def _header_fine(stmt: ast.stmt, bad: dict[str, str], aliases: frozenset[str]) -> bool:
    """A test function whose decorators and defaults read no bad name (only its body does)."""
    if not (isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and _test_names(stmt)):
        return False
    header = [*stmt.decorator_list, *stmt.args.defaults, *(d for d in stmt.args.kw_defaults if d is not None)]
    return not any(n in bad for h in header for n in _uses(h, aliases))


def _stub_def(stmt: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    return f"def {stmt.name}(*args, **kwargs):\n    pass"


def rewrite(source: str, target: Target, public: frozenset[str]) -> Rewrite:
    """`source` (a Dagster test module) with its imports changed for `target` (pure: the table tests)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    aliases = frozenset(
        a.asname or a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names if a.name == "dagster"
    )
    bad: dict[str, str] = {}
    edits: dict[int, tuple[int, str]] = {}  # first line index -> (last line index, text)
    body = [s for s in tree.body if not isinstance(s, ast.Import | ast.ImportFrom)]
    for node in tree.body:
        if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.module != "__future__"):
            text, dropped = _rewrite_import(node, target, public)
            bad.update(dropped)
            edits[node.lineno - 1] = (node.end_lineno or node.lineno, text)
    for name in target_lacks(aliases, body, target, public):
        bad[name] = f"{LACKS}{name.split('.', 1)[1]}, which {target.label} does not have"
    for name in [n for n in _all_uses(body, aliases) if n.startswith("dagster._")]:
        bad[name] = f"{INTERNALS}: {name}"
    taken = _spread(body, bad, aliases)
    result = Rewrite("")
    for i, reason in taken.items():
        stmt = body[i]
        start = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))]) - 1
        if _header_fine(stmt, bad, aliases):
            edits[start] = (start, _marker(reason))  # an insertion: the test keeps its code and parameters
        else:
            edits[start] = (stmt.end_lineno or stmt.lineno, _replacement(stmt, reason))
        for test in _test_names(stmt):
            (result.failed if reason.startswith(LACKS) else result.skipped)[test] = reason
    return Rewrite(_apply(lines, edits, _prelude_at(tree)), result.skipped, result.failed)


def _all_uses(body: Iterable[ast.stmt], aliases: frozenset[str]) -> set[str]:
    return {n for s in body for n in _uses(s, aliases)}


def target_lacks(aliases: frozenset[str], body: Sequence[ast.stmt], target: Target, public: frozenset[str]) -> set[str]:
    """``dagster.X`` read through a module alias where X is public and the target has no X."""
    return {
        n
        for n in _all_uses(body, aliases)
        if n.startswith("dagster.") and not n.startswith("dagster._") and n.split(".", 1)[1] not in target.names
    }


def _prelude_at(tree: ast.Module) -> int:
    """The line index after the docstring and ``from __future__`` imports: where the prelude goes."""
    at = 0
    for node in tree.body:
        is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and at == 0
        if (isinstance(node, ast.ImportFrom) and node.module == "__future__") or is_doc:
            at = node.end_lineno or node.lineno
        else:
            break
    return at


def _apply(lines: list[str], edits: dict[int, tuple[int, str]], prelude_at: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i == prelude_at:
            out.append(PRELUDE)
        if i in edits:
            end, text = edits[i]
            out.extend(text.splitlines())
            if end > i:
                i = end
                continue
        out.append(lines[i])
        i += 1
    if prelude_at >= len(lines):
        out.append(PRELUDE)
    return "\n".join(out) + "\n"


# --- running -------------------------------------------------------------------------------------------

_PROBE = """
import importlib, importlib.util, json, sys
mod = importlib.import_module(sys.argv[1])
names = [n for n in dir(mod) if not n.startswith("_")]
wanted = json.loads(sys.argv[2])
print(json.dumps({"names": names, "modules": [m for m in wanted if importlib.util.find_spec(m) is not None]}))
"""


def _env(pythonpath: Sequence[str], home: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, env.get("PYTHONPATH", "")]).strip(os.pathsep)
    env["CAIRN_HOME"] = home
    env.pop("DAGSTER_HOME", None)
    return env


def probe(label: str, python: str, module: str, third_party: Sequence[str], pythonpath: Sequence[str]) -> Target:
    """Ask `python` which public names `module` has and which of `third_party` it can import."""
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run(
            [python, "-c", _PROBE, module, json.dumps(sorted(third_party))],
            capture_output=True,
            text=True,
            env=_env(pythonpath, home),
            check=True,
        ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return Target(label, python, module, frozenset(data["names"]), frozenset(data["modules"]), tuple(pythonpath))


def third_party_modules(sources: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "dagster" and m not in INTERNAL_PACKAGES}


@dataclass(frozen=True)
class Outcome:
    test: str  # file::name[params]
    status: str  # passed, failed, skipped
    message: str = ""


def run_target(target: Target, sources: dict[str, str], public: frozenset[str], timeout: int) -> list[Outcome]:
    """Rewrite each file for `target`, run it with pytest (one process per file) and read the outcomes."""
    outcomes: list[Outcome] = []
    for rel, source in sources.items():
        with tempfile.TemporaryDirectory(prefix="dagster-public-tests-") as work:
            outcomes.extend(_run_file(target, rel, rewrite(source, target, public).source, Path(work), timeout))
    return outcomes


def _run_file(target: Target, rel: str, source: str, work: Path, timeout: int) -> list[Outcome]:
    name = rel.replace("/", "__")
    (work / "pytest.ini").write_text("[pytest]\naddopts =\n")
    (work / name).write_text(source)
    report = work / "report.xml"
    cmd = [target.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", name]
    cmd += [f"--junitxml={report}", "--timeout=120", "-rN"]
    home = work / "home"
    home.mkdir()
    try:
        subprocess.run(cmd, cwd=work, env=_env(target.pythonpath, str(home)), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [Outcome(f"{rel}::*", "failed", f"harness: the file did not finish in {timeout}s")]
    if not report.exists():
        return [Outcome(f"{rel}::*", "failed", "harness: pytest wrote no report (collection crashed)")]
    return parse_junit(report.read_text(), rel)


def parse_junit(xml: str, rel: str) -> list[Outcome]:
    """The outcome of each test case in a pytest junit report; a failure's message is its first line."""
    outcomes: list[Outcome] = []
    for case in ET.fromstring(xml).iter("testcase"):
        test = f"{rel}::{case.get('name', '?')}"
        classname = case.get("classname", "")
        if "." in classname and classname.rsplit(".", 1)[1].startswith("Test"):
            test = f"{rel}::{classname.rsplit('.', 1)[1]}::{case.get('name', '?')}"
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = "skipped" if child.tag == "skipped" else "failed"
                text = child.get("message") or child.text or ""
                message = (text.strip().splitlines() or [""])[0]
                break
        outcomes.append(Outcome(test, status, message))
    return outcomes


# --- the report ----------------------------------------------------------------------------------------


def counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    skipped = [o for o in outcomes if o.status == "skipped"]
    internals = sum(INTERNALS in o.message for o in skipped)
    missing = sum(MISSING_DEP in o.message for o in skipped)
    return {
        "tried": len(outcomes),
        "passed": sum(o.status == "passed" for o in outcomes),
        "failed": sum(o.status == "failed" for o in outcomes),
        "skipped-internals": internals,
        "skipped-missing-dep": missing,
        "skipped-other": len(skipped) - internals - missing,
    }


def report(files: Sequence[str], results: dict[str, list[Outcome]]) -> str:
    labels = list(results)
    out = [f"files: {len(files)}"] + [f"  {f}" for f in files]
    keys = list(counts([]))
    out.append(f"{'':22}" + "".join(f"{label:>12}" for label in labels))
    for key in keys:
        out.append(f"{key:22}" + "".join(f"{counts(results[label])[key]:>12}" for label in labels))
    for rel in files:
        per = "  ".join(f"{label} {_passed(results[label], rel)}" for label in labels)
        out.append(f"  {rel}: {per}")
    skipped = [o for o in results[labels[0]] if o.status == "skipped"]
    out.append(f"\nskipped ({len(skipped)}, the same for every target):")
    out.extend(f"  {o.test}: {o.message[:160]}" for o in skipped)
    for label in labels:
        failing = [o for o in results[label] if o.status == "failed"]
        out.append(f"\nfailing against {label} ({len(failing)}):")
        out.extend(f"  {o.test}\n      {o.message[:200]}" for o in failing)
    return "\n".join(out)


def _passed(outcomes: Sequence[Outcome], rel: str) -> str:
    mine = [o for o in outcomes if o.test.startswith(rel + "::")]
    return f"{sum(o.status == 'passed' for o in mine)}/{len(mine)}"


def _sources(root: Path, files: Sequence[str]) -> dict[str, str]:
    if (root / "dagster_tests").is_dir():
        root = root / "dagster_tests"
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise SystemExit(f"not found under {root}: {', '.join(missing)} (point --dagster-tests at dagster_tests/)")
    return {f: (root / f).read_text() for f in files}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--dagster-tests", required=True, type=Path, help="Dagster's dagster_tests directory")
    p.add_argument("--dagster-python", help="an interpreter with Dagster installed: run the tests there too")
    p.add_argument("--dagster-pythonpath", action="append", default=[], help="extra path for --dagster-python")
    p.add_argument("--files", nargs="*", default=list(FILES), help="test files, relative to dagster_tests")
    p.add_argument("--timeout", type=int, default=900, help="seconds per file and target")
    p.add_argument("--keep", type=Path, help="write the rewritten files (Cairn's) to this directory")
    args = p.parse_args(argv)
    sources = _sources(args.dagster_tests, args.files)
    third = sorted(third_party_modules(sources.values()))
    runtime = [str(REPO / "runtime")]
    cairn = probe("cairn", sys.executable, "cairn.dagster", third, runtime)
    targets = [cairn]
    public = cairn.names
    if args.dagster_python:
        dagster = probe("dagster", args.dagster_python, "dagster", third, args.dagster_pythonpath)
        targets.append(dagster)
        public = dagster.names
    if args.keep:
        _keep(args.keep, sources, cairn, public)
    results = {t.label: run_target(t, sources, public, args.timeout) for t in targets}
    print(report(args.files, results))
    return 0


def _keep(where: Path, sources: dict[str, str], target: Target, public: frozenset[str]) -> None:
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    for rel, source in sources.items():
        (where / rel.replace("/", "__")).write_text(rewrite(source, target, public).source)


if __name__ == "__main__":
    raise SystemExit(main())
