"""The ASGI app of `cairn ui`: a JSON API under /api, server-sent events, and the static pages.

Security: every state change (POST) must come from the UI's own pages: a cross-site request
(`Sec-Fetch-Site` other than same-origin/none, or an `Origin` that is not this server) is refused, and
the request must carry the CSRF token of this server process in the `X-Cairn-CSRF` header, equal to
the `cairn_csrf` cookie the page got (double submit), with a JSON body (no HTML form can send one
cross-site without a preflight). Requests for another Host than the ones served are refused (DNS
rebinding). Refusals of the API server keep their status and message.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import hmac
import json
import secrets
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.contract import RxMode
from cairn.ui.layout import layout
from cairn.ui.sources import LineMasker, LogFollow, ReexecRequest, Source, UIError, mask

STATIC = Path(__file__).parent / "static"
CSRF_COOKIE, CSRF_HEADER = "cairn_csrf", "x-cairn-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HEARTBEAT = 15.0
MAX_LOG_STREAMS = 32  # followed logs open at once (one upstream connection and one thread each)
LOG_CHUNKS_QUEUED = 64  # chunks read ahead of a slow page before the upstream read waits
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class Hub:
    """Fans change events out to every open event stream; `publish` may be called from any thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queues: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def publish(self, event: dict[str, Any]) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: dict[str, Any] | None) -> None:
        for q in list(self.queues):
            if q.full():  # a slow page: it gets one resync instead of a backlog
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        q.get_nowait()
                q.put_nowait({"kind": "all", "type": "RESYNC", "name": None})
            else:
                q.put_nowait(event)

    def close(self) -> None:
        self._put(None)


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class LogStreamResponse(Response):
    """Server-sent events of one followed log (see docs/ui.md, API): `open` {source, note}, `log` [lines]
    (each line masked), then `end` {source} when the log ends, or `error` {status, error}.

    One thread reads the upstream (`follow.chunks`, blocking) and hands chunks to the event loop, at
    most LOG_CHUNKS_QUEUED ahead; the upstream is closed when the log ends, when sending fails, or as
    soon as the client disconnects (a task waits for `http.disconnect`), and `on_close` runs once."""

    media_type = "text/event-stream"

    def __init__(self, follow: LogFollow, on_close: Any = None) -> None:
        self.status_code, self.background = 200, None
        self.init_headers(SSE_HEADERS)  # no body attribute: no Content-Length (the body is a stream)
        self.follow = follow
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        credits = threading.Semaphore(LOG_CHUNKS_QUEUED)
        stop = threading.Event()

        def post(item: tuple[str, Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens any more
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def pump() -> None:
            try:
                for chunk in self.follow.chunks():
                    while not credits.acquire(timeout=0.5):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    post(("data", chunk))
                post(("end", None))
            except Exception as exc:
                post(("error", exc))

        reader = threading.Thread(target=pump, name="cairn-ui-log-follow", daemon=True)
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            reader.start()
            async with anyio.create_task_group() as tg:

                async def until_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(until_disconnect)
                await self._events(send, queue, credits)
                tg.cancel_scope.cancel()
        except OSError:  # the client went away while we were sending
            pass
        finally:
            stop.set()
            self.follow.close()
            if self.on_close is not None:
                self.on_close()

    async def _events(self, send: Send, queue: asyncio.Queue[tuple[str, Any]], credits: threading.Semaphore) -> None:
        follow = self.follow
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        lines = LineMasker(follow.secrets)

        async def emit(data: bytes, more: bool = True) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": more})

        await emit(b"retry: 2000\n\n" + sse("open", {"source": follow.source, "note": follow.note}))
        while True:
            try:
                kind, item = await asyncio.wait_for(queue.get(), HEARTBEAT)
            except TimeoutError:
                await emit(b": ping\n\n")
                continue
            out: list[str] = []
            while kind == "data":  # a burst of chunks becomes one message
                credits.release()
                out += lines.feed(decoder.decode(item))
                if queue.empty() or len(out) > 1000:
                    break
                kind, item = queue.get_nowait()
            if kind != "data":
                out += lines.feed(decoder.decode(b"", final=True)) + lines.flush()
            if out:
                await emit(sse("log", out))
            if kind == "end":
                await emit(sse("end", {"source": follow.source}), more=False)
                return
            if kind == "error":
                status, message = _upstream_error(item)
                await emit(sse("error", {"status": status, "error": mask(message, follow.secrets)}), more=False)
                return


def _upstream_error(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, UIError):
        return exc.status, exc.message
    return 502, f"the log broke off: {type(exc).__name__}: {exc}"


@functools.lru_cache(maxsize=64)
def _layout_json(graph: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, Any]:
    return layout(dict(graph)).to_json()


def graph_layout(graph: dict[str, list[str]]) -> dict[str, Any]:
    """The layout of a run's step graph (cached: runs of one job share it)."""
    return _layout_json(tuple((s, tuple(ups)) for s, ups in graph.items()))


class CSRFMiddleware:
    """Refuses a state change that is cross-site or lacks this server's token (see the module doc)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(headers)
        if refusal is not None:
            status, message = refusal
            await JSONResponse({"error": message}, status_code=status)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, headers: dict[str, str]) -> tuple[int, str] | None:
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return 403, f"cross-site request refused (Sec-Fetch-Site: {site})"
        origin = headers.get("origin")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc != headers.get("host")):
            return 403, f"cross-origin request refused (Origin: {origin})"
        cookies = {}
        for part in headers.get("cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            cookies[k] = v
        sent, cookie = headers.get(CSRF_HEADER, ""), cookies.get(CSRF_COOKIE, "")
        if not sent or not hmac.compare_digest(sent, cookie) or not hmac.compare_digest(sent, self.token):
            return 403, "missing or wrong CSRF token: reload the page"
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return 415, "a state change needs a JSON body (Content-Type: application/json)"
        return None


def _error(exc: UIError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


async def _call(fn: Any, *args: Any) -> Any:
    return await run_in_threadpool(fn, *args)


class _Handlers:
    """The route handlers of one app: the source, this server's CSRF token, the event hub and the slots of
    the followed logs (one token per followed log, taken before its upstream is opened)."""

    def __init__(self, source: Source, token: str) -> None:
        self.source = source
        self.token = token
        self.hub = Hub()
        self.log_streams: set[object] = set()

    async def index(self, request: Request) -> Response:
        resp = FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
        resp.set_cookie(CSRF_COOKIE, self.token, httponly=False, samesite="strict", path="/")
        return resp

    async def info(self, request: Request) -> Response:
        source = self.source
        return JSONResponse({**(await _call(source.info)), "kind": source.kind, "liveLogs": source.live_logs})

    async def runs(self, request: Request) -> Response:
        items = await _call(self.source.list_runs)
        q = request.query_params
        for key in ("job", "phase", "root"):
            if q.get(key):
                items = [r for r in items if r.get(key) == q[key] or (key == "root" and r["name"] == q[key])]
        return JSONResponse({"items": items})

    async def run(self, request: Request) -> Response:
        detail = await _call(self.source.get_run, request.path_params["name"])
        detail["layout"] = await _call(graph_layout, detail["graph"])
        return JSONResponse(detail)

    async def lineage(self, request: Request) -> Response:
        return JSONResponse(await _call(self.source.lineage, request.path_params["name"]))

    async def logs(self, request: Request) -> Response:
        attempt = _attempt(request)
        p = request.path_params
        return JSONResponse(await _call(self.source.step_log, p["name"], p["step"], attempt))

    async def log_stream(self, request: Request) -> Response:
        attempt = _attempt(request)
        if len(self.log_streams) >= MAX_LOG_STREAMS:
            raise UIError(503, f"{MAX_LOG_STREAMS} logs are followed already: close some pages")
        p, slot = request.path_params, object()
        self.log_streams.add(slot)
        try:
            follow = await _call(self.source.follow_log, p["name"], p["step"], attempt)
        except BaseException:
            self.log_streams.discard(slot)
            raise
        return LogStreamResponse(follow, on_close=lambda: self.log_streams.discard(slot))

    async def preview(self, request: Request) -> Response:
        req = ReexecRequest.parse(await _body_of(request))
        return JSONResponse(await _call(self.source.preview, request.path_params["name"], req))

    async def reexecute(self, request: Request) -> Response:
        req = ReexecRequest.parse(await _body_of(request))
        result = await _call(self.source.reexecute, request.path_params["name"], req)
        return JSONResponse(result, status_code=201)

    async def bulk(self, request: Request) -> Response:
        body = await _body_of(request)
        names = body.get("runs") if isinstance(body, dict) else None
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise UIError(400, "runs must be a non-empty list of run names")
        req = ReexecRequest(RxMode.FROM_FAILURE.value)
        results: dict[str, Any] = {}
        for name in names:
            try:
                results[name] = {"ok": True, **(await _call(self.source.reexecute, name, req))}
            except UIError as exc:
                results[name] = {"ok": False, "status": exc.status, "error": exc.message}
        return JSONResponse({"results": results})

    async def reexecution(self, request: Request) -> Response:
        return JSONResponse(await _call(self.source.get_reexecution, request.path_params["name"]))

    async def events(self, request: Request) -> Response:
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=200)
        self.hub.queues.add(q)
        return StreamingResponse(self._event_stream(q), media_type="text/event-stream", headers=SSE_HEADERS)

    async def _event_stream(self, q: asyncio.Queue[dict[str, Any] | None]) -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    first = await asyncio.wait_for(q.get(), HEARTBEAT)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                if first is None:
                    return
                batch = [first]
                await asyncio.sleep(0.05)  # coalesce a burst of watch events into one message
                while not q.empty() and len(batch) < 100:
                    nxt = q.get_nowait()
                    if nxt is None:
                        return
                    batch.append(nxt)
                yield f"data: {json.dumps(batch)}\n\n"
        finally:
            self.hub.queues.discard(q)

    async def ui_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UIError)
        return _error(exc)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.hub.loop = asyncio.get_running_loop()
        await run_in_threadpool(self.source.start, self.hub.publish)
        try:
            yield
        finally:
            self.hub.close()
            await run_in_threadpool(self.source.stop)

    def routes(self) -> list[Route | Mount]:
        return [
            Route("/", self.index),
            Route("/api/info", self.info),
            Route("/api/runs", self.runs),
            Route("/api/runs/{name}", self.run),
            Route("/api/runs/{name}/lineage", self.lineage),
            Route("/api/runs/{name}/steps/{step}/logs", self.logs),
            Route("/api/runs/{name}/steps/{step}/logs/stream", self.log_stream),
            Route("/api/runs/{name}/preview", self.preview, methods=["POST"]),
            Route("/api/runs/{name}/reexecute", self.reexecute, methods=["POST"]),
            Route("/api/bulk/from-failure", self.bulk, methods=["POST"]),
            Route("/api/reexecutions/{name}", self.reexecution),
            Route("/api/events", self.events),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]


def _attempt(request: Request) -> int | None:
    """The `attempt` query parameter of a log request (None: the latest attempt)."""
    raw = request.query_params.get("attempt")
    if raw is not None and not raw.isdigit():
        raise UIError(400, "attempt must be a number")
    return int(raw) if raw else None


async def _body_of(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise UIError(400, f"the request body is not JSON: {exc}") from exc


def create_app(source: Source, token: str | None = None, allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The app over `source`. `allowed_hosts` None accepts any Host header (tests)."""
    token = token or secrets.token_urlsafe(32)
    handlers = _Handlers(source, token)
    middleware = [Middleware(CSRFMiddleware, token=token)]
    if allowed_hosts is not None:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    app = Starlette(
        routes=handlers.routes(),
        middleware=middleware,
        exception_handlers={UIError: handlers.ui_error},
        lifespan=handlers.lifespan,
    )
    app.state.hub = handlers.hub
    app.state.log_streams = handlers.log_streams
    app.state.token = token
    return app
