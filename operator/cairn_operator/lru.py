"""Bounded caches of the operator's controllers: a dict that forgets its oldest entry past a limit."""

from __future__ import annotations

from typing import Any


class Lru(dict[Any, Any]):
    """A dict that forgets its oldest entry past `limit` entries."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: Any, value: Any) -> None:
        if key not in self and len(self) >= self.limit:
            self.pop(next(iter(self)))
        self[key] = value
