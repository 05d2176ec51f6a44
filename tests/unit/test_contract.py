"""Every vocabulary that crosses a boundary agrees with `cairn.contract`: the CRDs (generated and as
shipped in the chart), the chart's RBAC, the UI (its tables, styles and page script), the CLI, the step
entrypoint's result and the operator's reading of it; and no module but the contract spells a
`cairn.dev/...` key or a phase, mode or result status again."""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cairn import contract
from cairn.contract import (
    GROUP,
    RESOURCES,
    VERSION,
    PodPhase,
    ResultStatus,
    RetryStrategy,
    RunPhase,
    RxMode,
    RxPhase,
    StepState,
)

ROOT = Path(__file__).resolve().parents[2]
CRD_DIRS = (ROOT / "crds", ROOT / "charts" / "cairn" / "crds")
STATIC = ROOT / "runtime" / "cairn" / "ui" / "static"


def values(enum: Any) -> list[str]:
    return [m.value for m in enum]


# ----- the contract itself -------------------------------------------------------------------------


def test_every_key_is_under_the_group_and_names_one_thing() -> None:
    keys = {
        n: getattr(contract, n) for n in dir(contract) if n.startswith(("LABEL_", "ANNOTATION_", "FINALIZER_", "TAG_"))
    }
    assert keys and all(k.startswith(f"{GROUP}/") for k in keys.values())
    assert len(set(keys.values())) == len(keys), "two names for one key"
    assert tuple(contract.API_VERSION.split("/")) == (GROUP, VERSION)


@pytest.mark.parametrize(
    ("run_phase", "rx_phase"),
    [
        (None, RxPhase.RUNNING),
        ("Pending", RxPhase.RUNNING),
        ("Running", RxPhase.RUNNING),
        ("Succeeded", RxPhase.SUCCEEDED),
        ("Failed", RxPhase.FAILED),
        ("Canceled", RxPhase.FAILED),
    ],
)
def test_a_reexecution_follows_its_child(run_phase: str | None, rx_phase: RxPhase) -> None:
    assert RxPhase.of_child(run_phase) is rx_phase


def test_every_finished_run_phase_has_a_reexecution_phase() -> None:
    assert {RxPhase.of_child(p.value) for p in RunPhase if p.finished} <= {p for p in RxPhase if p.done}


@pytest.mark.parametrize(
    ("strategy", "mode"), [(RetryStrategy.FROM_FAILURE, RxMode.FROM_FAILURE), (RetryStrategy.ALL_STEPS, RxMode.ALL)]
)
def test_a_retry_strategy_is_a_reexecution_mode(strategy: RetryStrategy, mode: RxMode) -> None:
    assert strategy.mode is mode


def test_the_planner_has_a_mode_for_every_reexecution_mode() -> None:
    from cairn_operator.rxdecide import MODES

    assert set(MODES) == set(RxMode)


def test_pod_phases_are_kubernetes_own() -> None:
    assert values(PodPhase) == ["Pending", "Running", "Succeeded", "Failed", "Unknown"]
    assert {p for p in PodPhase if p.finished} == {PodPhase.SUCCEEDED, PodPhase.FAILED}


# ----- the CRDs ------------------------------------------------------------------------------------


def crds() -> Iterator[tuple[Path, dict[str, Any]]]:
    for folder in CRD_DIRS:
        for path in sorted(folder.glob("*.yaml")):
            yield path, yaml.safe_load(path.read_text())


def schema(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    return out


def test_the_crds_are_the_contracts_resources() -> None:
    found = list(crds())
    assert len(found) == 2 * len(RESOURCES)
    for path, doc in found:
        names = doc["spec"]["names"]
        resource = next(r for r in RESOURCES if r.kind == names["kind"])
        assert (names["plural"], names["shortNames"], doc["metadata"]["name"]) == (
            resource.plural,
            [resource.short],
            resource.crd_name,
        ), path
        assert doc["spec"]["group"] == GROUP and [v["name"] for v in doc["spec"]["versions"]] == [VERSION]
        assert path.name == f"{GROUP}_{resource.plural}.yaml"


def crd(kind: str) -> Iterator[dict[str, Any]]:
    for _, doc in crds():
        if doc["spec"]["names"]["kind"] == kind:
            yield doc


@pytest.mark.parametrize(
    ("kind", "path", "enum"),
    [
        ("Run", ("status", "phase"), RunPhase),
        ("Run", ("status", "steps", "*", "phase"), StepState),
        ("Run", ("spec", "retryPolicy", "strategy"), RetryStrategy),
        ("Reexecution", ("status", "phase"), RxPhase),
        ("Reexecution", ("spec", "mode"), RxMode),
    ],
)
def test_the_crds_enums_are_the_contracts(kind: str, path: tuple[str, ...], enum: Any) -> None:
    docs = list(crd(kind))
    assert len(docs) == 2
    for doc in docs:
        node: dict[str, Any] = {"properties": schema(doc)}
        for part in path:
            node = node["additionalProperties"] if part == "*" else node["properties"][part]
        assert node["enum"] == values(enum)


def test_the_run_crds_parent_column_reads_the_parent_label() -> None:
    for doc in crd("Run"):
        columns = {c["name"]: c["jsonPath"] for c in doc["spec"]["versions"][0]["additionalPrinterColumns"]}
        assert columns["Parent"] == ".metadata.labels." + contract.LABEL_PARENT.replace(".", "\\.")


# ----- the chart -----------------------------------------------------------------------------------


def operator_rules() -> list[dict[str, Any]]:
    text = (ROOT / "charts" / "cairn" / "templates" / "_helpers.tpl").read_text()
    body = re.search(r'\{\{- define "cairn.operatorRules" -\}\}\n(.*?)\{\{- end -\}\}', text, re.S)
    assert body is not None
    rules: list[dict[str, Any]] = yaml.safe_load(body.group(1))
    return rules


def test_the_charts_rbac_names_the_contracts_group_and_resources() -> None:
    ours = [r for r in operator_rules() if any("cairn" in g for g in r["apiGroups"])]
    assert ours and all(r["apiGroups"] == [GROUP] for r in ours)
    named = {res for r in ours for res in r["resources"]}
    with_status = {r.plural for r in RESOURCES for doc in crd(r.kind) if "status" in schema(doc)}
    assert named == {r.plural for r in RESOURCES} | {f"{p}/status" for p in with_status}


# ----- the UI --------------------------------------------------------------------------------------


def test_every_phase_has_a_style_and_every_phase_style_is_a_phase() -> None:
    css = (STATIC / "style.css").read_text()
    styled = set(re.findall(r"\.([A-Z][A-Za-z]*)\b", css))
    assert set(values(StepState)) | set(values(RunPhase)) <= styled
    assert styled <= set(values(StepState)) | set(values(RunPhase)) | set(values(RxPhase))


def test_the_pages_run_phase_filter_and_modes_are_the_contracts() -> None:
    js = (STATIC / "app.js").read_text()
    phases = re.search(r'sel\("f-phase", \[([^\]]*)\]', js)
    assert phases is not None and json.loads(f"[{phases.group(1)}]") == values(RunPhase)
    modes = re.search(r"const modes = \[(.*)\];", js)
    assert modes is not None
    from cairn.ui.sources import MODES

    assert [m for m, _ in json.loads(f"[{modes.group(1)}]")] == list(MODES)


def test_the_ui_tables_speak_the_contract() -> None:
    from cairn.ui import kube, local, sources

    assert set(sources.MODES) - {sources.SAME_STEPS} <= set(values(RxMode))
    assert set(local._MODES) == set(sources.MODES)
    assert set(kube._UI_MODE) <= set(values(RxMode))
    assert set(kube.FOLLOWABLE) | kube.POD_LOG_STEPS | kube.TERMINAL_STEPS <= set(values(StepState))
    assert set(kube.FINISHED | kube.RESUMABLE) <= set(values(RunPhase))
    assert set(kube.PLANNED) | set(kube.STARTED) <= set(values(RxPhase))


# ----- the CLI -------------------------------------------------------------------------------------


def test_the_clis_tables_speak_the_contract() -> None:
    from cairn import k8s

    assert set(k8s.RAN) == {"Succeeded", "Failed", "Interrupted"}
    assert set(k8s.FAILED_RUN) == {"Failed", "Canceled"}
    assert set(k8s.FINISHED) == {"Succeeded", "Failed", "Canceled"}
    assert set(k8s.LIVE_RX) - {None} | set(k8s.PLANNED) <= set(values(RxPhase))


@pytest.mark.parametrize(
    ("flags", "mode"),
    [
        ({"all": True}, RxMode.ALL),
        ({"from_failure": True}, RxMode.FROM_FAILURE),
        ({"select": ["a"]}, RxMode.SELECTED),
        ({"from_selected": ["a"]}, RxMode.FROM_SELECTED),
        ({"stale": True}, RxMode.STALE),
    ],
)
def test_the_cli_writes_the_contracts_modes_as_plain_strings(flags: dict[str, Any], mode: RxMode) -> None:
    from cairn import k8s
    from cairn.manifest import to_yaml

    none = {"all": False, "from_failure": False, "select": [], "from_selected": [], "stale": False}
    args = argparse.Namespace(
        run="r",
        namespace="ns",
        same_steps=False,
        all_failed=False,
        config=None,
        env=[],
        image=[],
        dry_run=False,
        name=None,
        **{**none, **flags},
    )
    doc = k8s.reexecution_manifest(args)
    assert (doc["apiVersion"], doc["kind"], doc["spec"]["mode"]) == (contract.API_VERSION, "Reexecution", mode.value)
    assert type(doc["spec"]["mode"]) is str
    assert yaml.safe_load(to_yaml(doc))["spec"]["mode"] == mode.value


# ----- the step result protocol --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "status"),
    [
        ("import os; open(os.environ['CAIRN_OUTPUT_RESULT'], 'w').write('x')", ResultStatus.SUCCESS),
        ("raise SystemExit(3)", ResultStatus.FAILURE),
        ("pass", ResultStatus.FAILURE),  # no output written
    ],
)
def test_the_step_result_is_what_the_operator_reads(tmp_path: Path, script: str, status: ResultStatus) -> None:
    from cairn.step import exec_command, result_message
    from cairn_operator import reconcile

    ctx = {"protocol": contract.STEP_PROTOCOL, "namespace": "ns", "storage": {"kind": "fs", "root": str(tmp_path)}}
    result, _ = exec_command("r1", "s", ["result"], [], [sys.executable, "-c", script], ctx, tmp_path / "w")
    assert set(result) <= contract.RESULT_FIELDS
    assert all(set(out) <= contract.OUTPUT_FIELDS for out in result["outputs"].values())
    parsed = reconcile.parse_result(result_message(result))
    assert parsed is not None and parsed["status"] == status.value
    assert reconcile.STEP_PROTOCOL == contract.STEP_PROTOCOL


def test_an_invocation_error_is_a_failure_result(tmp_path: Path) -> None:
    from cairn import step

    term = tmp_path / "term"
    code = step.main(["exec", "--run-id", "r", "--step", "s", "--context", "{}", "--termination-path", str(term)])
    result = json.loads(term.read_text())
    assert code == 2 and result["status"] == ResultStatus.FAILURE.value and result["invocation_error"] is True
    assert set(result) <= contract.RESULT_FIELDS


# ----- no second spelling --------------------------------------------------------------------------

#: A phase, mode or result status spelled as a string literal: each has a contract name.
VOCABULARY = frozenset().union(
    *(values(e) for e in (StepState, RunPhase, RxPhase, RxMode, RetryStrategy, ResultStatus, PodPhase))
)
SOURCES = (ROOT / "runtime" / "cairn", ROOT / "operator" / "cairn_operator")
SKIPPED_DIRS = ("runtime/cairn/dev/",)  # the local cluster builder (moving to devtools/): no contract names
#: Files that define the vocabulary, or spell another one whose words happen to be the same.
DEFINED_HERE = {
    "runtime/cairn/contract.py": "the contract",
    "runtime/cairn/runstate.py": "defines StepState and RunPhase (and the names the local store wrote before)",
    "runtime/cairn/status.py": "defines the Dagster-style public statuses (SUCCESS, FAILURE, ...)",
}
#: (file, literal): a word of another vocabulary.
OTHER_VOCABULARY = {
    ("operator/cairn_operator/crdgen.py", "Failed"): "the header of the Run's printer column of failed steps",
    ("operator/cairn_operator/models.py", "Unknown"): "a condition's status (True, False, Unknown)",
    ("operator/cairn_operator/rxdecide.py", "Retrying"): "a Reexecution condition's reason (not a step's state)",
}
#: Files being rewritten by others at the time of writing (issue 16): they still spell some names. Remove each
#: entry once its file imports them from cairn.contract (PodPhase, RxPhase, RxMode, LABEL_*, ANNOTATION_MODE...).
NOT_YET_SWITCHED = {
    "operator/cairn_operator/reconcile.py",
    "runtime/cairn/launch.py",
}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are documentation (a bare string statement)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def spelled(text: str) -> Iterator[tuple[int, str]]:
    """(line, literal) of each string literal (not documentation) that is a contract word or holds a
    `cairn.dev` key."""
    tree = ast.parse(text)
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docs:
            continue
        if node.value in VOCABULARY or GROUP in node.value:
            yield node.lineno, node.value


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ('x = "Succeeded"', [(1, "Succeeded")]),
        ('x = {"cairn.dev/run": 1}', [(1, "cairn.dev/run")]),
        ('print(f"reexecution.cairn.dev/{n}")', [(1, "reexecution.cairn.dev/")]),
        ('"""A docstring about Succeeded and cairn.dev/run."""\nx = 1', []),
        ('x = "Succeeded now"', []),
    ],
)
def test_the_spelling_check_finds_literals_and_skips_documentation(source: str, found: list[tuple[int, str]]) -> None:
    assert list(spelled(source)) == found


def test_no_module_spells_a_contract_name_again() -> None:
    offenders = []
    for folder in SOURCES:
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(SKIPPED_DIRS) or rel in DEFINED_HERE or rel in NOT_YET_SWITCHED:
                continue
            offenders += [
                f"{rel}:{line}: {literal!r}"
                for line, literal in spelled(path.read_text())
                if (rel, literal) not in OTHER_VOCABULARY
            ]
    assert not offenders, "import these from cairn.contract:\n" + "\n".join(offenders)


@pytest.mark.parametrize("rel", sorted(NOT_YET_SWITCHED))
def test_a_file_not_yet_switched_still_spells_names(rel: str) -> None:
    """An entry of NOT_YET_SWITCHED goes once its file spells none (or is gone): the check then covers it."""
    path = ROOT / rel
    assert path.exists() and list(spelled(path.read_text())), f"{rel} is switched: remove it from NOT_YET_SWITCHED"
