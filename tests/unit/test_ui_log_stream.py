"""The live log of a running step (`GET /api/runs/NAME/steps/STEP/logs/stream`): server-sent events
from a followed pod log (a fake API server's follow stream), each line masked, an `end` event when the
pod's log ends, the API server's refusal with its message, and the upstream closed as soon as the page
goes away. Locally there is no per-step log: the endpoint says so."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.ui import app as ui_app
from cairn.ui.app import create_app
from cairn.ui.kube import KubeSource
from cairn.ui.local import LocalSource
from cairn.ui.sources import LineMasker
from tests.unit.test_ui_kube_api import ACCESS_KEY, NS, SECRET_KEY, TOKEN, FakeFollow, World, api_error, failed_run
from tests.unit.test_ui_local_api import failed_run as local_failed_run

with warnings.catch_warnings():  # Starlette suggests httpx2 for its TestClient; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

POD = "live-unreliable-2"
URL = "/api/runs/live/steps/unreliable/logs/stream"
Frame = tuple[str, Any]


def running_run() -> dict[str, Any]:
    """`live`: start succeeded, unreliable running its second attempt in pod live-unreliable-2."""
    run = failed_run()
    run["metadata"]["name"] = "live"
    run["status"]["phase"] = "Running"
    run["status"].pop("finishedAt")
    run["status"]["steps"]["unreliable"] = {
        "phase": "Running",
        "attempt": 2,
        "podName": POD,
        "startedAt": "2025-01-01T00:00:04Z",
        "logs": {"1": "team/live/unreliable/logs/1"},
    }
    run["status"]["steps"]["end"] = {"phase": "Pending"}
    return run


@pytest.fixture
def world() -> World:
    w = World()
    w.custom.put("runs", running_run())
    return w


@pytest.fixture
def source(world: World) -> Iterator[KubeSource]:
    src = KubeSource(world.custom, world.core, NS, watch_stream=world.stream, storage_read=world.storage_read)
    src.start(lambda _e: None)
    try:
        assert src.wait_ready(5)
        yield src
    finally:
        src.stop()


def frames(text: str) -> list[Frame]:
    """The events of an SSE body as (event, data), comments and `retry:` left out."""
    out: list[Frame] = []
    for block in text.split("\n\n"):
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            out.append((event, json.loads("\n".join(data))))
    return out


def log_lines(got: list[Frame]) -> list[str]:
    return [line for event, data in got if event == "log" for line in data]


def no_follow_thread_left(timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while any(t.name == "cairn-ui-log-follow" and t.is_alive() for t in threading.enumerate()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_running_steps_log_is_streamed_line_by_line_masked_then_ends(world: World, source: KubeSource) -> None:
    chunks = [
        b"attempt 2 starting\nusing key AKIAEXAMPLE",  # a credential split across two chunks
        b"ACCESSMARK and " + SECRET_KEY[:10].encode(),
        SECRET_KEY[10:].encode() + b"\n\xc3",  # so is a UTF-8 character
        b"\xa9t\xc3\xa9\n",
        b"last line without newline",
    ]
    world.core.follows[POD] = follow = FakeFollow(chunks)
    app = create_app(source, token=TOKEN)
    with TestClient(app) as c:
        r = c.get(URL + "?attempt=2")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-store" and "content-length" not in r.headers
    got = frames(r.text)
    assert got[0] == ("open", {"source": f"pod {POD}", "note": None})
    assert log_lines(got) == ["attempt 2 starting", "using key *** and ***", "été", "last line without newline"]
    assert got[-1] == ("end", {"source": f"pod {POD}"})
    assert [e for e, _ in got[1:-1]] == ["log"] * (len(got) - 2)
    assert SECRET_KEY not in r.text and ACCESS_KEY not in r.text
    # As the caller, following the current attempt's pod: its last 5000 lines, then what is written.
    ((pod, kw),) = world.core.follow_calls
    assert (pod, kw["follow"], kw["_preload_content"], kw["tail_lines"]) == (POD, True, False, 5000)
    assert follow.closed.is_set() and app.state.log_streams == set()
    assert no_follow_thread_left()


def test_a_refusal_of_the_api_server_is_shown_with_its_message(world: World, source: KubeSource) -> None:
    msg = 'pods "live-unreliable-2" is forbidden: User "viewer" cannot get resource "pods/log" in the namespace "team"'
    world.core.refuse_log = api_error(403, msg)
    app = create_app(source, token=TOKEN)
    with TestClient(app) as c:
        r = c.get(URL)
        assert (r.status_code, r.json()) == (403, {"error": msg})
        world.core.refuse_log = None
        gone = c.get(URL)  # the pod is gone already: the page reads the saved log instead
        assert gone.status_code == 404 and "not found" in gone.json()["error"]
    assert app.state.log_streams == set()


def test_only_the_running_attempt_can_be_followed(world: World, source: KubeSource) -> None:
    with TestClient(create_app(source, token=TOKEN)) as c:
        old = c.get(URL + "?attempt=1")
        assert old.status_code == 409 and "attempt 1 of step unreliable is not running" in old.json()["error"]
        done = c.get("/api/runs/live/steps/start/logs/stream")
        assert done.status_code == 409 and "the step is Succeeded" in done.json()["error"]
        assert c.get("/api/runs/live/steps/ghost/logs/stream").status_code == 404
        assert c.get("/api/runs/nope/steps/unreliable/logs/stream").status_code == 404
        assert c.get(URL + "?attempt=two").status_code == 400
        assert c.get("/api/info").json()["liveLogs"] is True
    assert world.core.follow_calls == []


def test_a_log_that_breaks_off_ends_with_an_error_event(world: World, source: KubeSource) -> None:
    class Breaking(FakeFollow):
        def read1(self, amt: int) -> bytes:
            chunk = super().read1(amt)
            if chunk == b"":
                raise api_error(500, f"stream error near {SECRET_KEY}")
            return chunk

    world.core.follows[POD] = Breaking([b"one\ntwo"])
    with TestClient(create_app(source, token=TOKEN)) as c:
        got = frames(c.get(URL).text)
    assert log_lines(got) == ["one", "two"]
    event, data = got[-1]
    assert (event, data["status"]) == ("error", 500)
    assert data["error"] == f"the log of pod {POD} broke off: stream error near ***"


def test_when_the_secret_cannot_be_read_the_log_is_not_shown(world: World, source: KubeSource) -> None:
    """No Secret value is ever shown: without the values to mask, the live log is refused, saying why."""
    world.core.refuse_secret = api_error(403, 'secrets "cairn-s3" is forbidden')
    world.core.follows[POD] = FakeFollow([b"hello\n"])
    with TestClient(create_app(source, token=TOKEN)) as c:
        r = c.get(URL)
    assert r.status_code == 403 and "hello" not in r.text
    assert "this log is not shown: cannot read the storage Secret" in r.text and "kubectl logs" in r.text


async def drive(app: Any, path: str, leave_when: Callable[[list[Frame]], bool], spec: str) -> tuple[int, list[Frame]]:
    """One GET of `path` as a server would run it; the client disconnects once `leave_when(frames)`."""
    gone = asyncio.Event()
    state: dict[str, Any] = {"asked": False, "status": 0, "body": ""}

    async def receive() -> dict[str, Any]:
        if not state["asked"]:
            state["asked"] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            state["status"] = message["status"]
            assert b"content-length" not in dict(message["headers"])  # a stream: chunked
        elif message["type"] == "http.response.body":
            if gone.is_set() and spec == "2.4":  # ASGI 2.4: sending to a gone client raises
                raise OSError("client gone")
            state["body"] += message.get("body", b"").decode()
            if leave_when(frames(state["body"])):
                gone.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    return state["status"], frames(state["body"])


@pytest.mark.parametrize("spec", ["2.3", "2.4"])
def test_the_upstream_is_closed_when_the_page_goes_away(world: World, source: KubeSource, spec: str) -> None:
    world.core.follows[POD] = follow = FakeFollow([b"first\n", b"second\n"], ends=False)  # a step still running
    app = create_app(source, token=TOKEN)
    status, got = asyncio.run(drive(app, URL, lambda fs: len(log_lines(fs)) >= 2, spec))
    assert status == 200 and log_lines(got) == ["first", "second"]
    assert not any(e == "end" for e, _ in got)  # the log did not end: the page left
    assert follow.closed.is_set()  # the API server connection was closed...
    assert no_follow_thread_left()  # ...which unblocked the thread reading it
    assert app.state.log_streams == set()


def test_the_number_of_followed_logs_is_bounded(world: World, source: KubeSource) -> None:
    world.core.follows[POD] = FakeFollow([b"x\n"])
    app = create_app(source, token=TOKEN)
    app.state.log_streams.update(object() for _ in range(ui_app.MAX_LOG_STREAMS))
    with TestClient(app) as c:
        r = c.get(URL)
    assert r.status_code == 503 and "logs are followed already" in r.json()["error"]
    assert world.core.follow_calls == []


def test_the_pod_log_read_at_once_is_masked_too(world: World, source: KubeSource) -> None:
    world.core.pods[POD] = f"key {ACCESS_KEY}\n"
    with TestClient(create_app(source, token=TOKEN)) as c:
        r = c.get("/api/runs/live/steps/unreliable/logs")
    assert r.json() == {"source": f"pod {POD}", "attempt": 2, "text": "key ***\n"}


def test_a_long_line_is_cut_but_never_inside_a_secret() -> None:
    secret = "S3CR3T-VALUE"
    text = "a" * 25 + secret + "b" * 30 + "\n" + "c" * 7
    for size in range(1, 12):  # every way of cutting the text into chunks
        m = LineMasker([secret], max_line=30)
        out: list[str] = []
        for i in range(0, len(text), size):
            out += m.feed(text[i : i + size])
        out += m.flush()
        assert all(secret[:4] not in line for line in out), (size, out)
        assert "".join(out[:-1]) == "a" * 25 + "***" + "b" * 30 and out[-1] == "c" * 7, (size, out)
        assert all(len(line) <= 30 + len(secret) for line in out)


def test_a_local_instance_has_no_per_step_log_to_follow(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_id = local_failed_run(home)
    with TestClient(create_app(LocalSource(home), token=TOKEN)) as c:
        assert c.get("/api/info").json()["liveLogs"] is False  # the page says so instead of streaming
        r = c.get(f"/api/runs/{run_id}/steps/unreliable/logs/stream")
        assert r.status_code == 501 and r.json()["error"].startswith("no live log on a local instance")
        assert c.get("/api/runs/nope/steps/x/logs/stream").status_code == 404
