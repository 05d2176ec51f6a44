"""Small waiting helpers for tests on the real control plane: wait for a condition, read the operator's
metrics, wait for an object's reconcile cycles (to prove that something did not happen, without sleeping)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


def eventually(fn: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = "") -> T:
    """Call fn until it returns a truthy value and return it; fail with the last value or error."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = value
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or fn}: last={last!r}")
        time.sleep(interval)


def metric_value(exposition: str, sample: str, **labels: str) -> float:
    """The value of `sample` (e.g. `cairn_reconcile_cycles_total`) with exactly `labels` in a Prometheus text
    exposition; 0 when it is not there (a counter not yet incremented)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    return 0.0


def scrape(url: str) -> str:
    """The text a metrics endpoint serves."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


def cycles_at(url: str, kind: str, namespace: str, name: str) -> int:
    """How many reconcile cycles the operator serving metrics at `url` finished for one object."""
    value = metric_value(scrape(url), "cairn_reconcile_cycles_total", kind=kind, namespace=namespace, name=name)
    return int(value)


class CycleCounter(Protocol):
    def cycles(self, kind: str, namespace: str, name: str) -> int: ...


def after_cycles(
    op: CycleCounter,
    kind: str,
    namespace: str,
    name: str,
    n: int = 3,
    timeout: float = 60.0,
    nudge: Callable[[], None] | None = None,
) -> int:
    """Wait until the object (kind Run or Reexecution) had at least `n` more reconcile cycles than when
    called; returns its count then. Each cycle saw the object as it is, so what a test asserts afterwards
    (no second Event, no status write, no new object) held for `n` cycles. `nudge`, if given, is called
    before each look (e.g. touching the object, which wakes a cycle at once rather than at the next
    resync or back-off)."""
    start = op.cycles(kind, namespace, name)

    def enough() -> int | None:
        if nudge is not None:
            nudge()
        try:
            now = op.cycles(kind, namespace, name)
        except OSError as exc:  # the endpoint did not answer this time (a busy machine): look again
            raise AssertionError(f"metrics not read: {exc}") from exc
        return now if now >= start + n else None

    return eventually(enough, timeout=timeout, interval=0.2, what=f"{n} more cycles of {kind} {namespace}/{name}")
