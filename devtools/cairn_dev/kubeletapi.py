"""The part of the kubelet's HTTPS API that the local node serves: container logs, so that
`kubectl logs` (and the API server's `pods/log` subresource) work for pods on `cairn-local`.

The API server reaches it at the node's InternalIP and `daemonEndpoints.kubeletEndpoint.Port`, with
the client certificate given by `--kubelet-client-certificate`; the server asks for a client
certificate signed by the cluster CA and refuses any other caller. Served paths:

- ``/healthz``
- ``/containerLogs/{namespace}/{pod}/{container}`` with ``follow``, ``tailLines``, ``limitBytes``
  (``timestamps`` and ``sinceSeconds`` are accepted and ignored: the log has no per-line times).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("cairn_dev.kubeletapi")


@dataclass(frozen=True)
class LogSource:
    """Where a container's output is, and whether more may still come."""

    path: Path
    finished: Callable[[], bool]


#: (namespace, pod, container) -> LogSource, or None when there is no such running or ended container.
Resolver = Callable[[str, str, str], LogSource | None]


def tail_bytes(data: bytes, lines: int | None) -> bytes:
    """The last `lines` lines of data (all of it when lines is None)."""
    if lines is None:
        return data
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


class _Handler(BaseHTTPRequestHandler):
    resolver: Resolver
    server_version = "cairn-local-kubelet"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _text(self, code: int, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            self._text(200, "ok")
            return
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._text(404, f"cairn-local serves only /containerLogs/NS/POD/CONTAINER and /healthz, not {url.path}")
            return
        _, ns, pod, container = parts
        q = urllib.parse.parse_qs(url.query)
        try:
            tail = int(q["tailLines"][0]) if "tailLines" in q else None
            limit = int(q["limitBytes"][0]) if "limitBytes" in q else None
        except ValueError:
            self._text(400, "tailLines and limitBytes must be integers")
            return
        follow = q.get("follow", ["false"])[0] == "true"
        source = type(self).resolver(ns, pod, container)
        if source is None or not source.path.exists():
            self._text(404, f'container "{container}" in pod "{pod}" has no log on cairn-local (not started yet?)')
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0

        def chunk(data: bytes) -> bool:
            nonlocal sent
            if limit is not None:
                data = data[: max(0, limit - sent)]
            if data:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                sent += len(data)
            return limit is None or sent < limit

        try:
            with source.path.open("rb") as f:
                more = chunk(tail_bytes(f.read(), tail))
                while more and follow:
                    done = source.finished()  # read once more after the end, then stop
                    data = f.read()
                    more = chunk(data)
                    if done and not data:
                        break
                    if not data:
                        time.sleep(0.2)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


class KubeletAPI:
    """An HTTPS server on 127.0.0.1:port that requires a client certificate from the cluster CA."""

    def __init__(self, port: int, cert: Path, key: Path, client_ca: Path, resolver: Resolver) -> None:
        handler = type("Handler", (_Handler,), {"resolver": staticmethod(resolver)})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])

    def start(self) -> None:
        threading.Thread(target=self.httpd.serve_forever, name="kubelet-api", daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
