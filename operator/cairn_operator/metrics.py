"""The operator's Prometheus metrics: counters of reconcile cycles, status writes, created pods and API
refusals, in a registry of their own, served over HTTP when asked (`--metrics HOST:PORT`).

The controllers call one method per thing that happened; tests read the counters from the endpoint to
wait for cycles (to prove that something did not happen) instead of sleeping.
"""

from __future__ import annotations

import contextlib
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, start_http_server

#: The `kind` label of the cycles counter for each controller.
RUN = "Run"
REEXECUTION = "Reexecution"


class Metrics:
    """The counters of one operator process (its own registry: several can live in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._cycles = Counter(
            "cairn_reconcile_cycles",
            "Reconcile cycles finished, per object (a Run's cycle, a Reexecution's decision).",
            ["kind", "namespace", "name"],
            registry=self.registry,
        )
        self._status_writes = Counter(
            "cairn_status_writes",
            "Status writes (patches of the status subresource) made, per kind.",
            ["kind"],
            registry=self.registry,
        )
        self._pods_created = Counter(
            "cairn_pods_created",
            "Step pods created, per namespace.",
            ["namespace"],
            registry=self.registry,
        )
        self._refusals = Counter(
            "cairn_api_refusals",
            "Requests the API server refused (admission, RBAC, quota), per kind of object and reason.",
            ["kind", "reason"],
            registry=self.registry,
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def run_cycle(self, namespace: str, name: str) -> None:
        """One reconcile cycle of a Run finished."""
        self._cycles.labels(kind=RUN, namespace=namespace, name=name).inc()

    def rx_cycle(self, namespace: str, name: str) -> None:
        """One decision of a Reexecution was made (and carried out)."""
        self._cycles.labels(kind=REEXECUTION, namespace=namespace, name=name).inc()

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop an object's cycle counter (it is gone or done: per-object series must not pile up)."""
        with contextlib.suppress(KeyError):
            self._cycles.remove(kind, namespace, name)

    def status_write(self, kind: str) -> None:
        """A status write of an object of `kind` (Run, Reexecution) was made."""
        self._status_writes.labels(kind=kind).inc()

    def pod_created(self, namespace: str) -> None:
        """A step pod was created in `namespace`."""
        self._pods_created.labels(namespace=namespace).inc()

    def api_refusal(self, kind: str, reason: str) -> None:
        """The API server refused a request about an object of `kind` (Pod, ServiceAccount, Run), for `reason`
        (its status reason: Forbidden, Invalid, ...)."""
        self._refusals.labels(kind=kind, reason=reason).inc()

    def serve(self, host: str, port: int) -> int:
        """Serve the metrics at http://host:port/metrics in a daemon thread (port 0: a free one); returns the
        bound port. Once per Metrics."""
        if self._server is not None:
            raise RuntimeError("the metrics endpoint is served already")
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        """Stop serving (if serving)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
