"""The JSON API of `cairn ui --local`: runs of a temporary local instance, the planner's plan as the
preview, in-process re-execution (in a background thread) with per-step env overrides, bulk from
failure, lineage."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn import Instance, execute_job
from cairn.loader import load_job
from cairn.ui.app import create_app
from cairn.ui.local import LocalSource

with warnings.catch_warnings():  # Starlette suggests httpx2 for its TestClient; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "local-token"
JOB = "cairn.examples.unreliable:unreliable_job"
AUTH = {"X-Cairn-CSRF": TOKEN}


def failed_run(home: Path) -> str:
    os.environ["CAIRN_UNRELIABLE"] = "fail"
    try:
        instance = Instance.local(home)
        result = execute_job(load_job(JOB), instance=instance)  # records its job_ref, as `cairn run` does
        instance.close()
    finally:
        del os.environ["CAIRN_UNRELIABLE"]
    assert not result.success
    return result.run_id


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def client(home: Path) -> Iterator[TestClient]:
    Instance.local(home).close()
    with TestClient(create_app(LocalSource(home), token=TOKEN), cookies={"cairn_csrf": TOKEN}) as c:
        yield c


def wait_finished(client: TestClient, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        run: dict[str, Any] = client.get(f"/api/runs/{name}").json()
        if run["phase"] in ("Succeeded", "Failed", "Canceled"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def test_runs_and_run_page(client: TestClient, home: Path) -> None:
    parent = failed_run(home)
    (item,) = client.get("/api/runs").json()["items"]
    assert (item["name"], item["job"], item["phase"], item["progress"], item["parent"], item["root"]) == (
        parent,
        "unreliable_job",
        "Failed",
        "3/3",
        None,
        parent,
    )
    run = client.get(f"/api/runs/{parent}").json()
    assert run["graph"] == {"start": [], "unreliable": ["start"], "end": ["unreliable"]}
    phases = {s["name"]: s["phase"] for s in run["steps"]}
    assert phases == {"start": "Succeeded", "unreliable": "Failed", "end": "NotExecuted"}
    (out,) = run["steps"][0]["outputs"]
    assert out["size"] > 0 and len(out["sha256"]) == 64 and out["uri"].endswith(f"{parent}/start/result")
    assert run["canFromFailure"] and run["layout"]["nodes"]["end"]["x"] > run["layout"]["nodes"]["start"]["x"]
    log = client.get(f"/api/runs/{parent}/steps/unreliable/logs").json()
    assert "Exception: blah" in log["text"]
    assert client.get("/api/runs/nope").status_code == 404


def test_preview_is_the_planners_plan_and_creates_nothing(client: TestClient, home: Path) -> None:
    parent = failed_run(home)
    r = client.post(
        f"/api/runs/{parent}/preview", json={"mode": "FromSelected", "selection": ["unreliable"]}, headers=AUTH
    )
    plan = r.json()["plan"]
    assert plan["steps"] == [
        {"name": "unreliable", "reason": "selected"},
        {"name": "end", "reason": "downstream-of:unreliable"},
    ]
    assert [(x["step"], x["output"], x["sourceRun"]) for x in plan["reused"]] == [("start", "result", parent)]
    assert len(client.get("/api/runs").json()["items"]) == 1
    bad = client.post(
        f"/api/runs/{parent}/preview", json={"mode": "Selected", "selection": ["nope"]}, headers=AUTH
    ).json()
    assert bad["phase"] == "Invalid" and "nope" in bad["message"]


def test_reexecute_from_selected_with_an_env_override_reuses_start(client: TestClient, home: Path) -> None:
    parent = failed_run(home)
    body = {"mode": "FromSelected", "selection": ["unreliable"], "env": {"unreliable": {"CAIRN_UNRELIABLE": "pass"}}}
    r = client.post(f"/api/runs/{parent}/reexecute", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    child = wait_finished(client, r.json()["childRun"])
    assert child["phase"] == "Succeeded" and child["parent"] == parent and child["mode"] == "FromSelected"
    steps = {s["name"]: s for s in child["steps"]}
    assert (steps["start"]["phase"], steps["start"]["sourceRun"]) == ("Reused", parent)
    assert steps["start"]["outputs"][0]["sourceRun"] == parent
    assert [x["step"] for x in child["plan"]["reused"]] == ["start"]
    assert [s["name"] for s in child["plan"]["steps"]] == ["unreliable", "end"]
    assert "CAIRN_UNRELIABLE" not in os.environ  # the override was put back
    tree = client.get(f"/api/runs/{child['name']}/lineage").json()["tree"]
    assert tree["name"] == parent and tree["children"][0]["stepSubset"] == ["unreliable", "end"]


def test_without_the_override_the_child_fails_again_and_same_steps_repeats_its_subset(
    client: TestClient, home: Path
) -> None:
    parent = failed_run(home)
    os.environ["CAIRN_UNRELIABLE"] = "fail"
    try:
        r = client.post(f"/api/runs/{parent}/reexecute", json={"mode": "FromFailure"}, headers=AUTH)
        child = wait_finished(client, r.json()["childRun"])
        assert child["phase"] == "Failed"
        r2 = client.post(f"/api/runs/{child['name']}/reexecute", json={"mode": "SameSteps"}, headers=AUTH)
        grandchild = wait_finished(client, r2.json()["childRun"])
    finally:
        del os.environ["CAIRN_UNRELIABLE"]
    assert grandchild["stepSubset"] == ["unreliable", "end"] and grandchild["root"] == parent


def test_refusals(client: TestClient, home: Path) -> None:
    parent = failed_run(home)
    r = client.post(f"/api/runs/{parent}/reexecute", json={"mode": "All", "image": {"start": "x:1"}}, headers=AUTH)
    assert r.status_code == 400 and "Kubernetes only" in r.json()["error"]
    os.environ["CAIRN_UNRELIABLE"] = "pass"
    try:
        ok = wait_finished(
            client, client.post(f"/api/runs/{parent}/reexecute", json={"mode": "All"}, headers=AUTH).json()["childRun"]
        )
    finally:
        del os.environ["CAIRN_UNRELIABLE"]
    assert ok["phase"] == "Succeeded"
    r = client.post(f"/api/runs/{ok['name']}/reexecute", json={"mode": "FromFailure"}, headers=AUTH)
    assert r.status_code == 400 and "only for failed or canceled runs" in r.json()["error"]
    assert client.post(f"/api/runs/{parent}/reexecute", json={"mode": "All"}).status_code == 403  # no CSRF token
    assert len(client.get("/api/runs").json()["items"]) == 2


def test_bulk_from_failure(client: TestClient, home: Path) -> None:
    a, b = failed_run(home), failed_run(home)
    os.environ["CAIRN_UNRELIABLE"] = "pass"
    try:
        res = client.post("/api/bulk/from-failure", json={"runs": [a, b, "nope"]}, headers=AUTH).json()["results"]
        children = [wait_finished(client, res[x]["childRun"]) for x in (a, b)]
    finally:
        del os.environ["CAIRN_UNRELIABLE"]
    assert [c["phase"] for c in children] == ["Succeeded", "Succeeded"]
    assert [c["parent"] for c in children] == [a, b]
    assert res["nope"]["ok"] is False and res["nope"]["status"] == 404


def test_a_run_that_does_not_record_its_job_needs_the_job_option(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cairn.examples.unreliable import unreliable_job

    monkeypatch.setattr(unreliable_job, "module_ref", None)  # as in a fresh process (the loader sets it)

    os.environ["CAIRN_UNRELIABLE"] = "fail"
    try:
        run_id = execute_job(unreliable_job, instance=Instance.local(home)).run_id  # Python API: no job_ref
    finally:
        del os.environ["CAIRN_UNRELIABLE"]
    with TestClient(create_app(LocalSource(home), token=TOKEN), cookies={"cairn_csrf": TOKEN}) as c:
        run = c.get(f"/api/runs/{run_id}").json()
        assert "--job unreliable_job=module:attr" in run["graphError"] and run["graph"]["end"] == []
        r = c.post(f"/api/runs/{run_id}/preview", json={"mode": "FromFailure"}, headers=AUTH)
        assert r.status_code == 422 and "--job" in r.json()["error"]
    source = LocalSource(home, {"unreliable_job": JOB})
    with TestClient(create_app(source, token=TOKEN), cookies={"cairn_csrf": TOKEN}) as c:
        assert c.get(f"/api/runs/{run_id}").json()["graph"]["end"] == ["unreliable"]
        plan = c.post(f"/api/runs/{run_id}/preview", json={"mode": "FromFailure"}, headers=AUTH).json()["plan"]
        assert [s["name"] for s in plan["steps"]] == ["unreliable", "end"]


def test_the_cli_parses_ui_options() -> None:
    from cairn.cli import build_parser
    from cairn.ui import allowed_hosts, make_source
    from cairn.ui.sources import UIError

    args = build_parser().parse_args(["ui", "--local", "/tmp/x", "--job", "bad"])
    assert (args.host, args.port, args.func.__name__) == ("127.0.0.1", 3000, "serve")
    with pytest.raises(UIError, match="JOB_NAME=module:attr"):
        make_source(args)
    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "::1", "[::1]", "localhost"]
    assert allowed_hosts("0.0.0.0") == ["*"]


def test_a_run_made_by_another_process_is_announced(home: Path) -> None:
    seen: list[dict[str, Any]] = []
    Instance.local(home).close()
    source = LocalSource(home)
    source.start(seen.append)
    try:
        time.sleep(0.7)  # the watcher has read data_version once
        failed_run(home)  # its own connection, as another process's would be
        deadline = time.monotonic() + 5
        while not seen:
            assert time.monotonic() < deadline, "no change event"
            time.sleep(0.05)
        assert seen[0]["kind"] == "runs"
    finally:
        source.stop()
