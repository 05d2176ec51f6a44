"""Small waiting helpers for tests on the real control plane."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

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
