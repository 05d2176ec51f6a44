"""`cairn k8s reexecute` and `cairn reexecute` flags: parsing, refusals of bad input, the Reexecution
manifest they build, --same-steps, and which Runs `--all-failed` re-executes (with a fake API)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from cairn import cli, k8s
from cairn.cli_runs import parse_step_env
from cairn.errors import CairnError

ENV_FORM = "--env takes STEP:NAME=VALUE"
IMAGE_FORM = "--image takes STEP=IMAGE"


def k8s_args(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["k8s", "reexecute", *argv])


def run(name: str, phase: str | None, steps: dict[str, str] | None = None, **labels: str) -> dict[str, Any]:
    """A Run as the API server returns it: its Job snapshot orders the ops start, unreliable, end."""
    status: dict[str, Any] = {"jobSnapshot": {"ops": [{"name": "start"}, {"name": "unreliable"}, {"name": "end"}]}}
    if phase:
        status["phase"] = phase
    if steps:
        status["steps"] = {s: {"phase": p} for s, p in steps.items()}
    return {"metadata": {"name": name, "labels": labels}, "status": status}


def rx(name: str, parent: str, phase: str | None, child: str | None = None, dry: bool = False) -> dict[str, Any]:
    status = {k: v for k, v in {"phase": phase, "childRun": child}.items() if v}
    return {"metadata": {"name": name}, "spec": {"parentRun": parent, "dryRun": dry}, "status": status}


@pytest.mark.parametrize(
    ("items", "env"),
    [
        ([], {}),
        (["unreliable:CAIRN_UNRELIABLE=pass"], {"unreliable": {"CAIRN_UNRELIABLE": "pass"}}),
        (["unreliable:EMPTY="], {"unreliable": {"EMPTY": ""}}),
        (["s:URL=http://h:9/x?a=b"], {"s": {"URL": "http://h:9/x?a=b"}}),  # the value keeps its ':' and '='
        (["s:A=1", "s:A=2", "s:B=3"], {"s": {"A": "2", "B": "3"}}),  # a later value wins
        (["a:X=1", "b:X=2"], {"a": {"X": "1"}, "b": {"X": "2"}}),
        (["s:my.var-1=v", "s:_X=v"], {"s": {"my.var-1": "v", "_X": "v"}}),
    ],
)
def test_env_flags_parse(items: list[str], env: dict[str, dict[str, str]]) -> None:
    assert parse_step_env(items) == env


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("unreliable=X", ENV_FORM),  # no STEP:
        ("unreliable:X", ENV_FORM),  # no =VALUE
        (":X=1", ENV_FORM),  # no step
        ("unreliable:=1", ENV_FORM),  # no name
        ("a=b:X=1", ENV_FORM),  # the step would hold '='
        ("a b:X=1", ENV_FORM),
        ("", ENV_FORM),
        ("unreliable:1X=1", "'1X' is not an environment variable name"),
        ("unreliable:A B=1", "'A B' is not an environment variable name"),
    ],
)
def test_bad_env_flags_name_the_flag_and_the_form(item: str, message: str) -> None:
    with pytest.raises(CairnError, match="--env") as err:
        parse_step_env([item])
    assert message in str(err.value) and repr(item) in str(err.value)


@pytest.mark.parametrize(
    ("items", "images"),
    [
        (["unreliable=localhost/cairn-step:0.2.0"], {"unreliable": "localhost/cairn-step:0.2.0"}),
        (["a=r/x@sha256:ab", "a=r/y:1", "b=z"], {"a": "r/y:1", "b": "z"}),
    ],
)
def test_image_flags_parse(items: list[str], images: dict[str, str]) -> None:
    assert k8s.parse_step_images(items) == images


@pytest.mark.parametrize("item", ["unreliable", "unreliable=", "=img", "a:b=img", "s=img with space"])
def test_bad_image_flags_name_the_flag_and_the_form(item: str) -> None:
    with pytest.raises(CairnError, match=IMAGE_FORM):
        k8s.parse_step_images([item])


def spec_of(*argv: str, parent: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = k8s.reexecution_manifest(k8s_args(*argv), parent)
    assert (doc["apiVersion"], doc["kind"]) == ("cairn.dev/v1alpha1", "Reexecution")
    spec: dict[str, Any] = doc["spec"]
    return spec


PASS = [{"name": "CAIRN_UNRELIABLE", "value": "pass"}]


@pytest.mark.parametrize(
    ("argv", "spec"),
    [
        (["p"], {"parentRun": "p", "mode": "All"}),
        (["p", "--from-failure"], {"parentRun": "p", "mode": "FromFailure"}),
        (
            ["p", "--select", "unreliable*", "end"],
            {"parentRun": "p", "mode": "Selected", "stepSelection": ["unreliable*", "end"]},
        ),
        (
            ["p", "--from-selected", "unreliable"],
            {"parentRun": "p", "mode": "FromSelected", "stepSelection": ["unreliable"]},
        ),
        (
            ["p", "--from-failure", "--env", "unreliable:CAIRN_UNRELIABLE=pass"],
            {"parentRun": "p", "mode": "FromFailure", "overrides": {"unreliable": {"env": PASS}}},
        ),
        (
            [
                "p",
                "--env",
                "unreliable:A=1",
                "--image",
                "end=img:2",
                "--image",
                "unreliable=img:1",
                "--env",
                "unreliable:B=",
            ],
            {
                "parentRun": "p",
                "mode": "All",
                "overrides": {
                    "unreliable": {"image": "img:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": ""}]},
                    "end": {"image": "img:2"},
                },
            },
        ),
        (["p", "--from-failure", "--dry-run"], {"parentRun": "p", "mode": "FromFailure", "dryRun": True}),
    ],
)
def test_the_manifest_carries_mode_selection_and_overrides(argv: list[str], spec: dict[str, Any]) -> None:
    assert spec_of(*argv) == spec


def test_the_manifest_carries_the_run_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("ops:\n  unreliable:\n    config: {fail: false}\n")
    assert spec_of("p", "--config", str(cfg))["config"] == {"ops": {"unreliable": {"config": {"fail": False}}}}
    js = tmp_path / "run.json"
    js.write_text(json.dumps({"ops": {"end": {"config": 3}}}))
    assert spec_of("p", "--config", str(js))["config"] == {"ops": {"end": {"config": 3}}}


def test_the_manifest_is_named_after_its_parent_unless_named() -> None:
    assert k8s.reexecution_manifest(k8s_args("p", "--name", "fix", "-n", "ns"), None)["metadata"] == {
        "name": "fix",
        "namespace": "ns",
    }
    generated = k8s.reexecution_manifest(k8s_args("x" * 70), None)["metadata"]["name"]
    assert generated.startswith("x" * 50 + "-rx-") and len(generated) == 59


@pytest.mark.parametrize(
    ("steps", "selection"),
    [
        ({"start": "Succeeded", "unreliable": "Failed", "end": "NotExecuted"}, ["start", "unreliable"]),
        ({"end": "Succeeded", "unreliable": "Succeeded", "start": "Reused"}, ["unreliable", "end"]),  # job order
        ({"start": "Reused", "unreliable": "Interrupted", "end": "Canceled"}, ["unreliable"]),
        ({"start": "Skipped", "unreliable": "Failed", "end": "Succeeded"}, ["unreliable", "end"]),
    ],
)
def test_same_steps_are_the_steps_the_parent_ran(steps: dict[str, str], selection: list[str]) -> None:
    parent = run("p", "Failed", steps)
    assert spec_of("p", "--same-steps", parent=parent) == {
        "parentRun": "p",
        "mode": "Selected",
        "stepSelection": selection,
    }


@pytest.mark.parametrize(
    ("parent", "message"),
    [
        (run("p", "Running", {"start": "Succeeded"}), "Run p is Running: --same-steps needs a finished Run"),
        (run("p", None), "Run p is Pending: --same-steps needs a finished Run"),
        (run("p", "Failed", {"start": "Reused", "unreliable": "NotExecuted"}), "Run p executed no step"),
    ],
)
def test_same_steps_of_a_run_that_ran_nothing_is_refused(parent: dict[str, Any], message: str) -> None:
    with pytest.raises(CairnError, match=message):
        spec_of("p", "--same-steps", parent=parent)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["p", "--env", "unreliable=X"], "--env takes STEP:NAME=VALUE"),
        (["p", "--env", "Unreliable:X=1"], "--env: 'Unreliable' cannot be a step of a Kubernetes Job"),
        (["p", "--image", "unreliable"], "--image takes STEP=IMAGE"),
        (["p", "--image", "un_reliable=img"], "--image: 'un_reliable' cannot be a step of a Kubernetes Job"),
        (["p", "--config", "/nonexistent/run.yaml"], "cannot read run config /nonexistent/run.yaml"),
        ([], "give the Run to re-execute"),
        (["p", "-l", "team=ml"], "-l SELECTOR chooses the Runs of --all-failed"),
        (["--all-failed"], "--all-failed takes -l SELECTOR"),
        (["p", "--all-failed", "-l", "a=b"], "give -l SELECTOR, not a Run name ('p')"),
        (["--all-failed", "-l", "a=b", "--select", "x"], "cannot be combined with --select"),
        (["--all-failed", "-l", "a=b", "--same-steps"], "cannot be combined with --same-steps"),
        (["--all-failed", "-l", "a=b", "--name", "x"], "--name names one Reexecution"),
    ],
)
def test_bad_input_is_refused_before_the_cluster_is_asked(argv: list[str], message: str) -> None:
    with pytest.raises(CairnError) as err:
        k8s.check_reexecute_args(k8s_args(*argv))
    assert message in str(err.value)


def test_bad_input_exits_2_with_the_message(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["k8s", "reexecute", "p", "--env", "unreliable=X"]) == 2
    assert "cairn: error: --env takes STEP:NAME=VALUE" in capsys.readouterr().err
    assert cli.main(["reexecute", "r", "--env", "unreliable=X", "--home", str(tmp_path)]) == 2
    assert "cairn: error: --env takes STEP:NAME=VALUE" in capsys.readouterr().err
    assert cli.main(["reexecute", "r", "--image", "unreliable=img", "--home", str(tmp_path)]) == 2
    assert "--image has no meaning in-process" in capsys.readouterr().err
    cfg = tmp_path / "list.yaml"
    cfg.write_text("- 1\n")
    assert cli.main(["reexecute", "r", "--config", str(cfg), "--home", str(tmp_path)]) == 2
    assert "must be a mapping like {ops:" in capsys.readouterr().err


def test_print_the_manifest_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    argv = ["k8s", "reexecute", "p", "--from-failure", "--env", "unreliable:CAIRN_UNRELIABLE=pass", "-o", "yaml"]
    assert cli.main(argv) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["spec"] == {"parentRun": "p", "mode": "FromFailure", "overrides": {"unreliable": {"env": PASS}}}


FAILED_A, FAILED_B = run("a", "Failed", team="ml"), run("b", "Canceled", team="ml")


@pytest.mark.parametrize(
    ("runs", "rxs", "existing", "targets"),
    [
        ([], [], set(), []),
        ([run("ok", "Succeeded"), run("live", "Running"), run("new", None)], [], set(), []),
        ([FAILED_B, FAILED_A], [], {"a", "b"}, [("a", None), ("b", None)]),  # by name
        ([FAILED_A], [rx("r1", "a", "Running", "c1")], {"a", "c1"}, [("a", "re-execution r1 is Running")]),
        ([FAILED_A], [rx("r1", "a", None)], {"a"}, [("a", "re-execution r1 is Pending")]),
        (
            [FAILED_A],
            [rx("r1", "a", "Succeeded", "c1")],
            {"a", "c1"},
            [("a", "re-execution r1 succeeded (child Run c1)")],
        ),
        (
            [FAILED_A],
            [rx("r1", "a", "Failed", "c1")],
            {"a", "c1"},
            [("a", "re-executed by r1: its child Run c1 carries the lineage on")],
        ),
        ([FAILED_A], [rx("r1", "a", "Failed", "c1")], {"a"}, [("a", None)]),  # its child was deleted
        ([FAILED_A], [rx("r1", "a", "Failed")], {"a"}, [("a", None)]),  # failed before a child (MissingOutputs)
        ([FAILED_A], [rx("r1", "a", "Invalid")], {"a"}, [("a", None)]),
        ([FAILED_A], [rx("r1", "a", "Planned", dry=True), rx("r2", "a", None, dry=True)], {"a"}, [("a", None)]),
        ([FAILED_A], [rx("r1", "other", "Running")], {"a"}, [("a", None)]),
        ([{**FAILED_A, "metadata": {"name": "a", "deletionTimestamp": "t"}}], [], {"a"}, []),
    ],
)
def test_all_failed_targets_runs_no_live_or_succeeded_reexecution_covers(
    runs: list[dict[str, Any]], rxs: list[dict[str, Any]], existing: set[str], targets: list[tuple[str, str | None]]
) -> None:
    assert k8s.bulk_targets(runs, rxs, existing) == targets


class FakeApi:
    """CustomObjectsApi as `--all-failed` uses it: lists filtered by one `k=v` selector; a created
    Reexecution reads back with the status `planned` gives it."""

    def __init__(self, runs: list[dict[str, Any]], rxs: list[dict[str, Any]], planned: dict[str, Any]) -> None:
        self.runs, self.rxs, self.planned = runs, rxs, planned
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    def list_namespaced_custom_object(
        self, g: str, v: str, ns: str, plural: str, label_selector: str = ""
    ) -> dict[str, Any]:
        items = self.runs if plural == "runs" else self.rxs
        if label_selector:
            k, _, val = label_selector.partition("=")
            items = [i for i in items if (i["metadata"].get("labels") or {}).get(k) == val]
        return {"items": items}

    def create_namespaced_custom_object(self, g: str, v: str, ns: str, plural: str, doc: dict[str, Any]) -> None:
        assert plural == "reexecutions"
        self.created.append(doc)

    def get_namespaced_custom_object(self, g: str, v: str, ns: str, plural: str, name: str) -> dict[str, Any]:
        doc = next(d for d in self.created if d["metadata"]["name"] == name)
        return {**doc, "status": self.planned}

    def delete_namespaced_custom_object(self, g: str, v: str, ns: str, plural: str, name: str) -> None:
        assert plural == "reexecutions"
        self.deleted.append(name)


def bulk(
    monkeypatch: pytest.MonkeyPatch, api: FakeApi, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str]:
    monkeypatch.setattr(k8s, "_custom", lambda: api)
    code = cli.main(["k8s", "reexecute", "--all-failed", *argv])
    return code, capsys.readouterr().out


def test_all_failed_makes_one_from_failure_reexecution_per_uncovered_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [FAILED_A, FAILED_B, run("c", "Failed", team="ml"), run("d", "Failed", team="ops"), run("e", "Succeeded")]
    api = FakeApi(runs, [rx("c-rx", "c", "Running", "c-child")], {})
    code, out = bulk(monkeypatch, api, capsys, "-l", "team=ml", "--env", "unreliable:CAIRN_UNRELIABLE=pass")
    assert code == 0
    lines = out.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["a", "b", "c"]  # one line per matching failed Run
    assert "reexecution.cairn.dev/a-rx-" in lines[0] and lines[0].endswith(" created")
    assert lines[2] == "c  skipped: re-execution c-rx is Running"
    assert [d["spec"] for d in api.created] == [
        {
            "parentRun": p,
            "mode": "FromFailure",
            "overrides": {"unreliable": {"env": PASS}},
            "labels": {"team": "ml"},  # the child matches the selector too
        }
        for p in ("a", "b")
    ]
    code, out = bulk(monkeypatch, FakeApi(runs, [], {}), capsys, "-l", "team=none")
    assert (code, out) == (0, "no Failed or Canceled Run matches -l 'team=none' in namespace default\n")


def test_all_failed_dry_run_prints_each_plan(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    planned = {
        "phase": "Planned",
        "message": "dry run: 2 step(s) would run",
        "plan": {
            "steps": [{"name": "unreliable", "reason": "failed"}, {"name": "end", "reason": "downstream-of:unreliable"}]
        },
    }
    api = FakeApi([FAILED_A], [], planned)
    code, out = bulk(monkeypatch, api, capsys, "-l", "team=ml", "--dry-run")
    assert code == 0
    assert api.created[0]["spec"]["dryRun"] is True
    assert api.deleted == [api.created[0]["metadata"]["name"]]  # a dry run leaves nothing behind
    assert out.splitlines()[1:] == [
        "a  Planned: dry run: 2 step(s) would run",
        "  would run unreliable  (failed)",
        "  would run end  (downstream-of:unreliable)",
    ]
    invalid = {
        "phase": "Invalid",
        "message": "overrides name unknown step(s): nope",
        "conditions": [{"type": "Ready", "status": "False", "reason": "UnknownSteps"}],
    }
    api = FakeApi([FAILED_A], [], invalid)
    code, out = bulk(monkeypatch, api, capsys, "-l", "team=ml", "--dry-run", "--env", "nope:X=1")
    assert code == 1
    assert out.splitlines()[1] == "a  Invalid (UnknownSteps): overrides name unknown step(s): nope"


def test_all_failed_prints_manifests_with_o_yaml(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    api = FakeApi([FAILED_A, FAILED_B], [rx("b-rx", "b", "Succeeded", "b-child")], {})
    code, out = bulk(monkeypatch, api, capsys, "-l", "team=ml", "-o", "yaml")
    assert code == 0 and api.created == []
    assert out.startswith("# b: skipped: re-execution b-rx succeeded (child Run b-child)\n")
    docs = list(yaml.safe_load_all(out))
    assert [d["spec"]["parentRun"] for d in docs] == ["a"]
