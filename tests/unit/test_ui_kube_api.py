"""The JSON API of `cairn ui` over the Kubernetes source, against a fake API server: reads from the
watch cache, previews and re-executions as Reexecution manifests, logs from the pod or from storage,
refusals with the API server's message, CSRF protection, and no Secret value in any answer."""

from __future__ import annotations

import base64
import copy
import json
import queue
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from cairn.ui.app import create_app
from cairn.ui.kube import KubeSource

with warnings.catch_warnings():  # Starlette suggests httpx2 for its TestClient; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NS = "team"
SECRET_KEY = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETMARK"
ACCESS_KEY = "AKIAEXAMPLEACCESSMARK"
TOKEN = "t0ken"
AUTH = {"X-Cairn-CSRF": TOKEN}
OPS = [
    {"name": "start"},
    {"name": "unreliable", "inputs": {"num": "start"}},
    {"name": "end", "inputs": {"_num": "unreliable"}},
]
STORAGE = {"secretRef": {"name": "cairn-s3"}, "prefix": "cairn"}


def api_error(status: int, message: str) -> ApiException:
    exc = ApiException(status=status, reason={403: "Forbidden", 404: "Not Found"}.get(status, "Error"))
    exc.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": status})
    return exc


def failed_run() -> dict[str, Any]:
    """`unreliable-fails` as the operator leaves it: start succeeded, unreliable failed, end not executed."""
    return {
        "apiVersion": "cairn.dev/v1alpha1",
        "kind": "Run",
        "metadata": {"name": "unreliable-fails", "namespace": NS, "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"jobRef": {"name": "unreliable"}},
        "status": {
            "phase": "Failed",
            "progress": "3/3",
            "startedAt": "2025-01-01T00:00:01Z",
            "finishedAt": "2025-01-01T00:00:09Z",
            "jobSnapshot": {"ops": OPS, "storage": STORAGE},
            "steps": {
                "start": {
                    "phase": "Succeeded",
                    "attempt": 1,
                    "podName": "unreliable-fails-start-1",
                    "startedAt": "2025-01-01T00:00:01Z",
                    "finishedAt": "2025-01-01T00:00:03Z",
                    "outputs": {
                        "result": {
                            "key": "team/unreliable-fails/start/result",
                            "size": 5,
                            "etag": "e1",
                            "sha256": "ab" * 32,
                            "uri": "s3://cairn/cairn/team/unreliable-fails/start/result",
                        }
                    },
                    "logs": {"1": "team/unreliable-fails/start/logs/1"},
                },
                "unreliable": {
                    "phase": "Failed",
                    "attempt": 1,
                    "podName": "unreliable-fails-unreliable-1",
                    "startedAt": "2025-01-01T00:00:04Z",
                    "finishedAt": "2025-01-01T00:00:08Z",
                    "exitCode": 1,
                    "message": "Exception: blah",
                    "logs": {"1": "team/unreliable-fails/unreliable/logs/1"},
                },
                "end": {"phase": "NotExecuted", "reason": "upstream failed: unreliable"},
            },
        },
    }


class FakeCustom:
    """CustomObjectsApi with a store per plural, a watch queue per plural and a tiny 'operator' that
    plans a dry run and creates a child for a Reexecution."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"jobs": {}, "runs": {}, "reexecutions": {}}
        self.events: dict[str, queue.Queue[dict[str, Any]]] = {k: queue.Queue() for k in self.objects}
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.refuse: ApiException | None = None
        self.refuse_list: ApiException | None = None
        self.rv = 1

    def put(self, plural: str, obj: dict[str, Any], typ: str = "ADDED") -> None:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[plural][obj["metadata"]["name"]] = obj
        self.events[plural].put({"type": typ, "object": obj})

    def list_namespaced_custom_object(self, g: str, v: str, ns: str, plural: str, **_: Any) -> dict[str, Any]:
        if self.refuse_list is not None:
            raise self.refuse_list
        return {
            "items": list(copy.deepcopy(self.objects[plural]).values()),
            "metadata": {"resourceVersion": str(self.rv)},
        }

    def create_namespaced_custom_object(self, g: str, v: str, ns: str, plural: str, body: dict[str, Any]) -> Any:
        if self.refuse is not None:
            raise self.refuse
        self.created.append(copy.deepcopy(body))
        self.put(plural, body)
        threading.Thread(target=self._operate, args=(copy.deepcopy(body),), daemon=True).start()
        return copy.deepcopy(self.objects[plural][body["metadata"]["name"]])

    def delete_namespaced_custom_object(self, g: str, v: str, ns: str, plural: str, name: str) -> None:
        self.deleted.append(name)
        obj = self.objects[plural].pop(name)
        self.events[plural].put({"type": "DELETED", "object": obj})

    def _operate(self, rx: dict[str, Any]) -> None:
        time.sleep(0.05)
        spec = rx["spec"]
        reused = [
            {
                "step": "start",
                "output": "result",
                "sourceRun": "unreliable-fails",
                "key": "team/unreliable-fails/start/result",
            }
        ]
        plan = {
            "steps": [
                {"name": "unreliable", "reason": "selected"},
                {"name": "end", "reason": "downstream-of:unreliable"},
            ],
            "reused": reused,
            "skipped": {},
        }
        if spec.get("dryRun"):
            rx["status"] = {"phase": "Planned", "message": "2 step(s) would run", "plan": plan}
            self.put("reexecutions", rx, "MODIFIED")
            return
        child = f"{spec['parentRun']}-rx-abcde"
        run = failed_run()
        run["metadata"] = {
            "name": child,
            "namespace": NS,
            "creationTimestamp": "2025-01-01T00:01:00Z",
            "labels": {
                "cairn.dev/parent-run": spec["parentRun"],
                "cairn.dev/root-run": "unreliable-fails",
                "cairn.dev/reexecution": rx["metadata"]["name"],
            },
            "annotations": {"cairn.dev/reexecution-mode": spec["mode"]},
        }
        run["spec"]["execution"] = {
            "parentRun": spec["parentRun"],
            "rootRun": "unreliable-fails",
            "steps": plan["steps"],
        }
        run["status"] = {"phase": "Running", "steps": {"start": {"phase": "Reused", "sourceRun": "unreliable-fails"}}}
        self.put("runs", run)
        rx["status"] = {"phase": "Running", "childRun": child, "plan": plan}
        self.put("reexecutions", rx, "MODIFIED")


class FakeSecret:
    def __init__(self, data: dict[str, str]) -> None:
        self.data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


class FakeFollow:
    """A followed pod log as urllib3 returns it with _preload_content=False: `read1` gives the next chunk,
    blocking while none is there (unless `ends`, then b"" after the last); `shutdown`/`close` unblock it
    as a shut-down socket does (the read raises)."""

    def __init__(self, chunks: list[bytes], ends: bool = True) -> None:
        self.chunks: queue.Queue[bytes] = queue.Queue()
        for c in chunks:
            self.chunks.put(c)
        if ends:
            self.chunks.put(b"")
        self.closed = threading.Event()
        self.reading = threading.Event()  # a read is blocked waiting for more

    def push(self, chunk: bytes) -> None:
        self.chunks.put(chunk)

    def read1(self, amt: int) -> bytes:
        while not self.closed.is_set():
            try:
                chunk = self.chunks.get(timeout=0.02)
            except queue.Empty:
                self.reading.set()
                continue
            self.reading.clear()
            return chunk
        raise OSError("read on a shut-down connection")

    def shutdown(self) -> None:
        self.closed.set()

    def close(self) -> None:
        self.closed.set()

    def release_conn(self) -> None:
        pass


class FakeResponse:
    """An unparsed answer (`_preload_content=False`): the body as bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class FakeCore:
    def __init__(self) -> None:
        self.pods = {"unreliable-fails-unreliable-1": "Traceback...\nException: blah\n"}
        self.follows: dict[str, FakeFollow] = {}
        self.follow_calls: list[tuple[str, dict[str, Any]]] = []
        self.refuse_log: ApiException | None = None
        self.refuse_secret: ApiException | None = None
        self.secret_reads = 0

    def read_namespaced_pod_log(self, name: str, ns: str, **kw: Any) -> Any:
        if self.refuse_log is not None:
            raise self.refuse_log
        if kw.get("follow"):
            self.follow_calls.append((name, kw))
            if name not in self.follows:
                raise api_error(404, f'pods "{name}" not found')
            return self.follows[name]
        if name not in self.pods:
            raise api_error(404, f'pods "{name}" not found')
        assert kw.get("_preload_content") is False  # the client's decoding would return repr(bytes)
        return FakeResponse(self.pods[name].encode())

    def read_namespaced_secret(self, name: str, ns: str) -> FakeSecret:
        self.secret_reads += 1
        if self.refuse_secret is not None:
            raise self.refuse_secret
        return FakeSecret(
            {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "CAIRN_S3_BUCKET": "cairn"}
        )


class World:
    def __init__(self) -> None:
        self.custom = FakeCustom()
        self.core = FakeCore()
        self.reads: list[tuple[Any, ...]] = []
        self.custom.put("jobs", {"metadata": {"name": "unreliable"}, "spec": {"ops": OPS, "storage": STORAGE}})
        self.custom.put("runs", failed_run())

    def stream(self, plural: str, rv: str, stop: threading.Event) -> Iterator[dict[str, Any]]:
        q = self.custom.events[plural]
        while not stop.is_set():
            try:
                yield q.get(timeout=0.05)
            except queue.Empty:
                continue

    def storage_read(self, endpoint: str | None, bucket: str, prefix: str, creds: dict[str, str], key: str) -> bytes:
        self.reads.append((endpoint, bucket, prefix, creds.get("AWS_SECRET_ACCESS_KEY"), key))
        return f"{key}: hello\nconnecting with secret {SECRET_KEY}\n".encode()


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    for q in world.custom.events.values():  # the initial list has them; the watch starts after it
        while not q.empty():
            q.get()
    source = KubeSource(world.custom, world.core, NS, watch_stream=world.stream, storage_read=world.storage_read)
    with TestClient(create_app(source, token=TOKEN), cookies={"cairn_csrf": TOKEN}) as c:
        assert source.wait_ready(5)
        yield c


def test_runs_list_and_filters(client: TestClient) -> None:
    items = client.get("/api/runs").json()["items"]
    assert [(r["name"], r["job"], r["phase"], r["progress"], r["duration"]) for r in items] == [
        ("unreliable-fails", "unreliable", "Failed", "3/3", 8.0)
    ]
    assert client.get("/api/runs?phase=Succeeded").json()["items"] == []
    assert len(client.get("/api/runs?root=unreliable-fails&job=unreliable").json()["items"]) == 1


def test_run_page_data(client: TestClient) -> None:
    run = client.get("/api/runs/unreliable-fails").json()
    assert run["graph"] == {"start": [], "unreliable": ["start"], "end": ["unreliable"]}
    assert [s["name"] for s in run["steps"]] == ["start", "unreliable", "end"]
    start = run["steps"][0]
    assert start["outputs"] == [
        {
            "name": "result",
            "key": "team/unreliable-fails/start/result",
            "size": 5,
            "etag": "e1",
            "sha256": "ab" * 32,
            "uri": "s3://cairn/cairn/team/unreliable-fails/start/result",
        }
    ]
    assert (start["attempts"], start["started"] < start["finished"]) == ([1], True)
    assert run["canFromFailure"] is True and run["plan"] is None
    assert set(run["layout"]["nodes"]) == {"start", "unreliable", "end"}
    assert client.get("/api/runs/nope").status_code == 404


def test_preview_creates_a_dry_run_shows_its_plan_and_removes_it(client: TestClient, world: World) -> None:
    r = client.post(
        "/api/runs/unreliable-fails/preview", json={"mode": "FromSelected", "selection": ["unreliable"]}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["phase"] == "Planned"
    assert body["plan"]["reused"][0]["step"] == "start"
    (doc,) = world.custom.created
    assert doc["spec"] == {
        "parentRun": "unreliable-fails",
        "mode": "FromSelected",
        "stepSelection": ["unreliable"],
        "dryRun": True,
    }
    assert world.custom.deleted == [doc["metadata"]["name"]]


def test_reexecute_creates_the_reexecution_with_overrides_and_finds_the_child(client: TestClient, world: World) -> None:
    body = {
        "mode": "FromFailure",
        "env": {"unreliable": {"CAIRN_UNRELIABLE": "pass"}},
        "image": {"end": "localhost/mine:1"},
        "config": {"ops": {}},
    }
    r = client.post("/api/runs/unreliable-fails/reexecute", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    (doc,) = world.custom.created
    assert doc["spec"] == {
        "parentRun": "unreliable-fails",
        "mode": "FromFailure",
        "overrides": {
            "unreliable": {"env": [{"name": "CAIRN_UNRELIABLE", "value": "pass"}]},
            "end": {"image": "localhost/mine:1"},
        },
        "config": {"ops": {}},
    }
    assert doc["metadata"]["name"].startswith("unreliable-fails-rx-")
    assert r.json()["childRun"] == "unreliable-fails-rx-abcde"
    child = client.get("/api/runs/unreliable-fails-rx-abcde").json()
    assert child["parent"] == "unreliable-fails" and child["stepSubset"] == ["unreliable", "end"]
    assert child["plan"]["reused"][0]["sourceRun"] == "unreliable-fails"
    tree = client.get("/api/runs/unreliable-fails-rx-abcde/lineage").json()["tree"]
    assert (tree["name"], [c["name"] for c in tree["children"]]) == ("unreliable-fails", ["unreliable-fails-rx-abcde"])
    rx = client.get(f"/api/reexecutions/{doc['metadata']['name']}").json()
    assert (rx["phase"], rx["childRun"]) == ("Running", "unreliable-fails-rx-abcde")


def test_same_steps_of_a_root_run_selects_all_its_steps(client: TestClient, world: World) -> None:
    assert (
        client.post("/api/runs/unreliable-fails/reexecute", json={"mode": "SameSteps"}, headers=AUTH).status_code == 201
    )
    assert world.custom.created[0]["spec"]["stepSelection"] == ["start", "unreliable", "end"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"mode": "Sideways"}, "mode must be one of"),
        ({"mode": "Selected"}, "needs at least one selected step"),
        ({"mode": "All", "env": {"ghost": {"A": "b"}}}, "overrides name unknown step(s): ghost"),
        ({"mode": "All", "env": {"start": "A=b"}}, "env must map a step"),
    ],
)
def test_bad_requests_say_what_is_wrong(client: TestClient, world: World, body: dict[str, Any], message: str) -> None:
    r = client.post("/api/runs/unreliable-fails/reexecute", json=body, headers=AUTH)
    assert r.status_code == 400 and message in r.json()["error"]
    assert world.custom.created == []


def test_from_failure_of_a_succeeded_run_is_refused(client: TestClient, world: World) -> None:
    run = failed_run()
    run["metadata"]["name"] = "good"
    run["status"]["phase"] = "Succeeded"
    world.custom.put("runs", run)
    deadline = time.monotonic() + 5
    while client.get("/api/runs/good").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = client.post("/api/runs/good/reexecute", json={"mode": "FromFailure"}, headers=AUTH)
    assert r.status_code == 400 and "only for failed or canceled runs" in r.json()["error"]


def test_a_refusal_of_the_api_server_is_shown_with_its_message(client: TestClient, world: World) -> None:
    msg = (
        'reexecutions.cairn.dev is forbidden: User "viewer" cannot create resource "reexecutions" in API group '
        '"cairn.dev" in the namespace "team"'
    )
    world.custom.refuse = api_error(403, msg)
    r = client.post("/api/runs/unreliable-fails/reexecute", json={"mode": "FromFailure"}, headers=AUTH)
    assert (r.status_code, r.json()) == (403, {"error": msg})
    bulk = client.post("/api/bulk/from-failure", json={"runs": ["unreliable-fails", "nope"]}, headers=AUTH).json()[
        "results"
    ]
    assert bulk["unreliable-fails"] == {"ok": False, "status": 403, "error": msg}
    assert bulk["nope"]["status"] == 404


def test_a_forbidden_list_is_shown_with_its_message(world: World) -> None:
    msg = 'runs.cairn.dev is forbidden: User "nobody" cannot list resource "runs"'
    world.custom.refuse_list = api_error(403, msg)
    source = KubeSource(world.custom, world.core, NS, watch_stream=world.stream, storage_read=world.storage_read)
    with TestClient(create_app(source, token=TOKEN)) as c:
        source.wait_ready(5)
        r = c.get("/api/runs")
        assert (r.status_code, r.json()) == (403, {"error": msg})


def test_bulk_from_failure(client: TestClient, world: World) -> None:
    r = client.post("/api/bulk/from-failure", json={"runs": ["unreliable-fails"]}, headers=AUTH)
    res = r.json()["results"]["unreliable-fails"]
    assert res["ok"] and res["reexecution"].startswith("unreliable-fails-rx-")
    assert world.custom.created[0]["spec"] == {"parentRun": "unreliable-fails", "mode": "FromFailure"}


def test_logs_from_the_pod_while_it_exists_then_from_storage(client: TestClient, world: World) -> None:
    live = client.get("/api/runs/unreliable-fails/steps/unreliable/logs").json()
    assert live == {
        "source": "pod unreliable-fails-unreliable-1",
        "attempt": 1,
        "text": "Traceback...\nException: blah\n",
    }
    world.core.pods.clear()  # podGC
    saved = client.get("/api/runs/unreliable-fails/steps/unreliable/logs?attempt=1").json()
    assert saved["source"] == "storage team/unreliable-fails/unreliable/logs/1"
    assert saved["text"].startswith("team/unreliable-fails/unreliable/logs/1: hello")
    assert world.reads == [(None, "cairn", "cairn", SECRET_KEY, "team/unreliable-fails/unreliable/logs/1")]
    none = client.get("/api/runs/unreliable-fails/steps/end/logs").json()
    assert none["text"] == "" and none["message"]


def test_no_secret_value_is_ever_returned(client: TestClient, world: World) -> None:
    world.core.pods.clear()
    answers = [
        client.get("/api/info"),
        client.get("/api/runs"),
        client.get("/api/runs/unreliable-fails"),
        client.get("/api/runs/unreliable-fails/lineage"),
        client.get("/api/runs/unreliable-fails/steps/start/logs"),
        client.get("/api/runs/unreliable-fails/steps/unreliable/logs"),
        client.post("/api/runs/unreliable-fails/preview", json={"mode": "All"}, headers=AUTH),
    ]
    assert world.core.secret_reads == 2 and len(world.reads) == 2  # the Secret was used, server-side
    for r in answers:
        assert r.status_code == 200, r.text
        assert SECRET_KEY not in r.text and ACCESS_KEY not in r.text, r.request.url
    assert "connecting with secret ***" in answers[5].json()["text"]


def test_csrf_refusals(client: TestClient, world: World) -> None:
    url, body = "/api/runs/unreliable-fails/reexecute", {"mode": "FromFailure"}
    no_cookie = TestClient(client.app)
    cases = [
        (client.post(url, json=body), 403, "CSRF token"),
        (client.post(url, json=body, headers={"X-Cairn-CSRF": "guess"}), 403, "CSRF token"),
        (no_cookie.post(url, json=body, headers=AUTH), 403, "CSRF token"),
        (client.post(url, json=body, headers={**AUTH, "Sec-Fetch-Site": "cross-site"}), 403, "cross-site"),
        (client.post(url, json=body, headers={**AUTH, "Origin": "http://evil.example"}), 403, "cross-origin"),
        (
            client.post(url, content="mode=All", headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"}),
            415,
            "JSON",
        ),
        (client.post("/api/bulk/from-failure", json={"runs": ["unreliable-fails"]}), 403, "CSRF token"),
        (client.post("/api/runs/unreliable-fails/preview", json=body), 403, "CSRF token"),
    ]
    for r, status, words in cases:
        assert r.status_code == status and words in r.json()["error"], r.text
    assert world.custom.created == []
    ok = client.post(url, json=body, headers={**AUTH, "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 201


def test_the_page_gets_the_token_cookie_and_other_hosts_are_refused(world: World) -> None:
    source = KubeSource(world.custom, world.core, NS, watch_stream=world.stream, storage_read=world.storage_read)
    app = create_app(source, token=TOKEN, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:3000") as c:
        page = c.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert page.cookies["cairn_csrf"] == TOKEN and "samesite=strict" in page.headers["set-cookie"].lower()
        assert c.get("/static/app.js").status_code == 200
        assert c.get("/api/runs", headers={"Host": "attacker.example"}).status_code == 400  # DNS rebinding


def test_watch_events_reach_the_cache_and_are_published(world: World) -> None:
    seen: list[dict[str, Any]] = []
    source = KubeSource(world.custom, world.core, NS, watch_stream=world.stream, storage_read=world.storage_read)
    source.start(seen.append)
    try:
        assert source.wait_ready(5)
        run = failed_run()
        run["metadata"]["name"] = "another"
        world.custom.put("runs", run)
        deadline = time.monotonic() + 5
        while not any(e.get("name") == "another" for e in seen):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert {r["name"] for r in source.list_runs()} >= {"unreliable-fails", "another"}
        world.custom.events["runs"].put({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
        world.custom.put("runs", {**run, "metadata": {**run["metadata"], "name": "third"}})
        deadline = time.monotonic() + 5
        while "third" not in {r["name"] for r in source.list_runs()}:  # after 410 Gone: listed again
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert sum(1 for e in seen if e["kind"] == "runs" and e["type"] == "RESYNC") == 2
    finally:
        source.stop()
