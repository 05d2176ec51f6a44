"""What the controllers are given besides the API client and storage: where Events go (kopf's queue in
the operator, a list in tests), what is counted (Prometheus metrics, or nothing), and the crash-window
test hook."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


class Faults:
    """The crash-window test hook (`CAIRN_FAULT=POINT[,POINT...]`, optionally only for Runs in
    `CAIRN_FAULT_NAMESPACE`): `exit` (os._exit(137), as a SIGKILL or an OOM kill would) the first time a
    cycle reaches a named POINT. Points: `exit-after:status-write`, `exit-before:pod-delete`,
    `exit-after:run-failed`. Never set in production."""

    def __init__(self, points: frozenset[str], namespace: str | None, exit: Callable[[str], None]) -> None:
        self.points, self.namespace, self.exit = points, namespace, exit

    @classmethod
    def none(cls) -> Faults:
        """No point set: the hook never exits (production, and tests that do not crash)."""
        return cls(frozenset(), None, lambda _: None)

    def __call__(self, point: str, namespace: str) -> None:
        if point in self.points and self.namespace in (None, namespace):
            self.exit(f"cairn-operator: CAIRN_FAULT {point} in namespace {namespace}: exiting\n")
