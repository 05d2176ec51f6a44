"""What the controllers are given besides the API client and storage: where Events go (kopf's queue in
the operator, a list in tests) and what is counted (Prometheus metrics, or nothing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Recorder(Protocol):
    """Posts an Event of an object."""

    def post(self, body: Mapping[str, Any], type: str, reason: str, message: str) -> None: ...


class Metrics(Protocol):
    """Counts what the controllers do (see `cairn_operator.metrics`)."""

    def run_cycle(self, namespace: str, name: str) -> None: ...

    def rx_cycle(self, namespace: str, name: str) -> None: ...

    def status_write(self, kind: str) -> None: ...

    def pod_created(self, namespace: str) -> None: ...

    def api_refusal(self, kind: str, reason: str) -> None: ...

    def forget(self, kind: str, namespace: str, name: str) -> None: ...


class NoMetrics:
    """Counts nothing."""

    def run_cycle(self, namespace: str, name: str) -> None:
        pass

    def rx_cycle(self, namespace: str, name: str) -> None:
        pass

    def status_write(self, kind: str) -> None:
        pass

    def pod_created(self, namespace: str) -> None:
        pass

    def api_refusal(self, kind: str, reason: str) -> None:
        pass

    def forget(self, kind: str, namespace: str, name: str) -> None:
        pass
