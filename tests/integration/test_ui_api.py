"""`cairn ui` against the real local control plane: the server runs as its own process with the test's
kubeconfig, and the test drives its JSON API as the page does (CSRF cookie and header): open the failed
seed run, preview From selected on `unreliable` (a dry-run Reexecution planned by the operator),
re-execute with an env override, follow the child to Succeeded with `start` reused, read logs, and get
the change events pushed by the server's watches; follow a running step's log live."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cairn_dev import procs
from tests.helpers import eventually
from tests.integration.test_operator import apply, job_of, ns, run_of, sample, wait_phase

__all__ = ["ns"]

ROOT = Path(__file__).resolve().parents[2]
PASS = {"unreliable": {"CAIRN_UNRELIABLE": "pass"}}


class UIServer:
    """`python -m cairn.cli ui ARGS` on a free loopback port, stopped by `close`."""

    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "cairn.cli", "ui", *args, "--port", str(self.port)]
        self.log = log
        self.record = procs.start("cairn-ui", argv, log, env={**os.environ, **(env or {})}, cwd=ROOT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/api/info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"cairn ui did not answer within 30 s:\n{log.read_text()}")
            time.sleep(0.2)
        self.client = httpx.Client(base_url=self.url, timeout=60)
        page = self.client.get("/")  # the page sets the CSRF cookie; the page's JS sends it back as a header
        assert page.status_code == 200
        self.token = page.cookies["cairn_csrf"]

    def get(self, path: str) -> Any:
        r = self.client.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, path: str, body: dict[str, Any], expect: int = 200) -> Any:
        r = self.client.post(path, json=body, headers={"X-Cairn-CSRF": self.token})
        assert r.status_code == expect, r.text
        return r.json()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        procs.stop(self.record, grace=5)


@contextlib.contextmanager
def ui_server(args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Iterator[UIServer]:
    server = UIServer(args, log, env)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def failed_seed_run(cairn_operator: Any, kube: Any, ns: str) -> dict[str, Any]:
    apply(kube, ns, sample("job-unreliable.yaml"))
    apply(kube, ns, sample("run-unreliable-fails.yaml"))
    run = wait_phase(kube, ns, "unreliable-fails", "Failed", "Succeeded")
    assert run["status"]["phase"] == "Failed"
    return run


def collect_events(url: str, into: list[dict[str, Any]], stop: threading.Event) -> None:
    with contextlib.suppress(httpx.HTTPError), httpx.stream("GET", f"{url}/api/events", timeout=None) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                into.extend(json.loads(line[6:]))
            if stop.is_set():
                return


def test_preview_and_reexecute_the_failed_seed_run_from_the_ui_api(
    dev_cluster: Any, core: Any, ns: str, failed_seed_run: dict[str, Any], tmp_path: Path
) -> None:
    args = ["--kubeconfig", str(dev_cluster.kubeconfig), "--namespace", ns]
    with ui_server(args, tmp_path / "ui.log") as ui:
        events: list[dict[str, Any]] = []
        stop = threading.Event()
        threading.Thread(target=collect_events, args=(ui.url, events, stop), daemon=True).start()

        assert ui.get("/api/info")["namespace"] == ns
        listed = ui.get("/api/runs?phase=Failed")["items"]
        assert [(r["name"], r["job"]) for r in listed] == [("unreliable-fails", "unreliable")]
        run = ui.get("/api/runs/unreliable-fails")
        assert run["graph"] == {"start": [], "unreliable": ["start"], "end": ["unreliable"]}
        steps = {s["name"]: s for s in run["steps"]}
        assert (steps["start"]["phase"], steps["unreliable"]["phase"]) == ("Succeeded", "Failed")
        start_key = steps["start"]["outputs"][0]["key"]
        assert steps["start"]["outputs"][0]["uri"].startswith("s3://")
        log = eventually(
            lambda: ui.get("/api/runs/unreliable-fails/steps/unreliable/logs")["text"] or None,
            timeout=60,
            interval=1,
            what="the log of the failed step",
        )
        assert "blah" in log

        selection = {"mode": "FromSelected", "selection": ["unreliable"]}
        preview = ui.post("/api/runs/unreliable-fails/preview", selection)
        assert preview["phase"] == "Planned", preview
        assert preview["plan"]["steps"] == [
            {"name": "unreliable", "reason": "selected"},
            {"name": "end", "reason": "downstream-of:unreliable"},
        ]
        assert [(r["step"], r["sourceRun"], r["key"]) for r in preview["plan"]["reused"]] == [
            ("start", "unreliable-fails", start_key)
        ]
        assert "cleanup" not in preview  # the dry-run Reexecution was removed

        created = ui.post("/api/runs/unreliable-fails/reexecute", {**selection, "env": PASS}, expect=201)
        rx_name = created["reexecution"]
        child = created["childRun"] or eventually(
            lambda: ui.get(f"/api/reexecutions/{rx_name}")["childRun"], timeout=60, interval=0.5, what="the child"
        )
        done = eventually(
            lambda: ((r := ui.get(f"/api/runs/{child}"))["phase"] in ("Succeeded", "Failed") and r) or None,
            timeout=120,
            interval=1,
            what=f"child run {child} to finish",
        )
        assert done["phase"] == "Succeeded", done
        cs = {s["name"]: s for s in done["steps"]}
        assert (cs["start"]["phase"], cs["start"]["sourceRun"]) == ("Reused", "unreliable-fails")
        assert [(r["step"], r["key"]) for r in done["plan"]["reused"]] == [("start", start_key)]
        assert (done["parent"], done["root"], done["stepSubset"]) == (
            "unreliable-fails",
            "unreliable-fails",
            ["unreliable", "end"],
        )
        tree = ui.get(f"/api/runs/{child}/lineage")["tree"]
        assert tree["name"] == "unreliable-fails" and [c["name"] for c in tree["children"]] == [child]
        stop.set()
        kinds = {(e["kind"], e.get("name")) for e in events}
        assert ("reexecutions", rx_name) in kinds and ("runs", child) in kinds  # pushed by the watches
        # The storage Secret was used (the saved logs of the child's steps come from S3) and never shown.
        secret = core.read_namespaced_secret("cairn-s3", ns).data
        values = [base64.b64decode(secret[k]).decode() for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
        texts = [json.dumps(done), json.dumps(ui.get("/api/runs")), json.dumps(ui.get("/api/info"))]
        texts += [json.dumps(ui.get(f"/api/runs/{child}/steps/{s}/logs")) for s in ("unreliable", "end")]
        assert all(v not in t for v in values for t in texts)


def viewer_kubeconfig(core: Any, kube: Any, dev_cluster: Any, ns: str, path: Path) -> Path:
    """A kubeconfig of a ServiceAccount that may only read Cairn's resources in `ns` (no create, no
    pods/log, no Secrets)."""
    from kubernetes import client

    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="viewer")))
    rbac = client.RbacAuthorizationV1Api(kube)
    rule = client.V1PolicyRule(
        api_groups=["cairn.dev"], resources=["jobs", "runs", "reexecutions"], verbs=["get", "list", "watch"]
    )
    rbac.create_namespaced_role(ns, client.V1Role(metadata=client.V1ObjectMeta(name="viewer"), rules=[rule]))
    rbac.create_namespaced_role_binding(
        ns,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="viewer"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="viewer"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="viewer", namespace=ns)],
        ),
    )
    token = core.create_namespaced_service_account_token(
        "viewer",
        ns,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)),
    ).status.token
    admin = yaml.safe_load(dev_cluster.kubeconfig.read_text())
    cluster = admin["clusters"][0]["name"]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": admin["clusters"],
                "users": [{"name": "viewer", "user": {"token": token}}],
                "contexts": [{"name": "viewer", "context": {"cluster": cluster, "user": "viewer", "namespace": ns}}],
                "current-context": "viewer",
            }
        )
    )
    return path


def test_the_ui_acts_as_the_callers_identity_and_shows_the_api_servers_refusals(
    dev_cluster: Any, kube: Any, core: Any, ns: str, failed_seed_run: dict[str, Any], tmp_path: Path
) -> None:
    config = viewer_kubeconfig(core, kube, dev_cluster, ns, tmp_path / "viewer.kubeconfig")
    with ui_server(["--kubeconfig", str(config)], tmp_path / "ui.log") as ui:
        assert ui.get("/api/info")["namespace"] == ns  # the context's namespace
        assert [r["name"] for r in ui.get("/api/runs")["items"]] == ["unreliable-fails"]
        refused = ui.post("/api/runs/unreliable-fails/reexecute", {"mode": "FromFailure"}, expect=403)
        assert refused["error"].startswith('reexecutions.cairn.dev is forbidden: User "system:serviceaccount:')
        assert 'cannot create resource "reexecutions"' in refused["error"]
        r = ui.client.get("/api/runs/unreliable-fails/steps/unreliable/logs")
        assert r.status_code == 403, r.text
        assert "forbidden" in r.json()["error"] and "system:serviceaccount:" in r.json()["error"]
    rxs = client_objects(kube, ns, "reexecutions")
    assert rxs == []


def client_objects(kube: Any, ns: str, plural: str) -> list[dict[str, Any]]:
    from kubernetes import client

    items: list[dict[str, Any]] = client.CustomObjectsApi(kube).list_namespaced_custom_object(
        "cairn.dev", "v1alpha1", ns, plural
    )["items"]
    return items


def ticker_job(ticks: int) -> dict[str, Any]:
    """A Job whose `ticker` step prints `tick N` once a second for `ticks` seconds (tests.local.jobs)."""
    env = [{"name": "PYTHONPATH", "value": str(ROOT)}, {"name": "CAIRN_TEST_TICKS", "value": str(ticks)}]
    ops: list[dict[str, Any]] = [
        {"name": "start", "env": env},
        {"name": "ticker", "inputs": {"num": "start"}, "env": env},
        {"name": "end", "inputs": {"_num": "ticker"}, "env": env},
    ]
    return job_of("ticker", "tests.local.jobs:ticker_job", ops)


def sse_events(response: httpx.Response) -> Iterator[tuple[str, Any, float]]:
    """The events of a server-sent-events answer as (event, data, when received)."""
    event = "message"
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:]), time.monotonic()
            event = "message"


def test_the_log_of_a_running_step_is_followed_live(
    dev_cluster: Any, kube: Any, ns: str, cairn_operator: Any, tmp_path: Path
) -> None:
    apply(kube, ns, ticker_job(ticks=8))
    apply(kube, ns, run_of("ticker", "tick"))
    args = ["--kubeconfig", str(dev_cluster.kubeconfig), "--namespace", ns]
    with ui_server(args, tmp_path / "ui.log") as ui:

        def ticker_running() -> dict[str, Any] | None:
            step = {s["name"]: s for s in ui.get("/api/runs/tick")["steps"]}["ticker"]
            return step if step["phase"] == "Running" and step.get("podName") else None

        step = eventually(ticker_running, timeout=90, interval=0.2, what="the ticker step to run")
        url = f"{ui.url}/api/runs/tick/steps/ticker/logs/stream?attempt={step['attempt']}"
        got: list[tuple[str, Any, float]] = []
        deadline = time.monotonic() + 20
        while not got:
            with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=30)) as r:
                if r.status_code == 404 and time.monotonic() < deadline:  # the container has no log yet
                    time.sleep(0.2)
                    continue
                assert r.status_code == 200, r.read()
                assert r.headers["content-type"].startswith("text/event-stream")
                for ev in sse_events(r):
                    got.append(ev)
                    if ev[0] in ("end", "error"):
                        break
        assert got[0][:2] == ("open", {"source": f"pod {step['podName']}", "note": None})
        assert got[-1][:2] == ("end", {"source": f"pod {step['podName']}"}), got[-1]
        ticks = [(line, at) for event, data, at in got if event == "log" for line in data if line.startswith("tick ")]
        assert [t for t, _ in ticks] == [f"tick {i}" for i in range(1, 9)]
        # Live: the lines came as they were written (about a second apart), not all at the end.
        assert ticks[-1][1] - ticks[0][1] > 2, ticks
        run = wait_phase(kube, ns, "tick", "Succeeded", "Failed")
        assert run["status"]["phase"] == "Succeeded", run["status"]
        after = ui.client.get(url)  # the step has ended: no live log, the page reads the saved one
        assert after.status_code == 409, after.text
        saved = ui.get("/api/runs/tick/steps/ticker/logs")["text"]  # from the pod, or from storage
        assert [line for line in saved.splitlines() if line.startswith("tick ")] == [f"tick {i}" for i in range(1, 9)]
