"""Concurrency limits the Run controller holds: the operator-wide step pod slots (shared by the cycle
threads) and per-key growing delays for refusals an admin may fix."""

from __future__ import annotations

import threading


class PodSlots:
    """The operator-wide limit on unfinished step pods (`--max-pods`), shared by the cycle threads.

    A pod counts from the moment a cycle reserves its slot, before it is created, until the watch says
    it finished or went: `reserve` hands out free slots under a lock, `hold` names the ones a cycle
    uses and gives the rest back, `release` gives one back when its pod was not created, and `seen` is
    the watch's word on a pod (its reservation then counts as the pod itself). So the cycles, however
    many run at once, never together exceed the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._active: set[str] = set()  # namespace/name of pods the watch saw unfinished
        self._held: set[str] = set()  # namespace/name of pods reserved, not seen by the watch yet
        self._anonymous = 0  # reserved by a cycle that has not decided yet

    def used(self) -> int:
        with self._lock:
            return len(self._active | self._held) + self._anonymous

    def reserve(self, wanted: int) -> Reservation:
        """Up to `wanted` slots, taken now; `Reservation.hold` (or leaving its `with`) gives back the rest."""
        with self._lock:
            free = max(0, self.limit - len(self._active | self._held) - self._anonymous)
            granted = min(max(0, wanted), free)
            self._anonymous += granted
        return Reservation(self, granted)

    def _hold(self, granted: int, pods: list[str]) -> None:
        with self._lock:
            self._anonymous -= granted
            self._held.update(pods)

    def release(self, pod: str) -> None:
        """A held pod was not created (refused, failed) or existed already (the watch counts it)."""
        with self._lock:
            self._held.discard(pod)

    def seen(self, pod: str, active: bool) -> None:
        """The watch saw `pod`: unfinished (it counts) or finished/deleted (its slot is free)."""
        with self._lock:
            self._held.discard(pod)
            if active:
                self._active.add(pod)
            else:
                self._active.discard(pod)


class Reservation:
    """Slots one cycle reserved: `granted` of them until it names the pods it creates."""

    def __init__(self, slots: PodSlots, granted: int) -> None:
        self.slots, self.granted, self._open = slots, granted, True

    def hold(self, pods: list[str]) -> None:
        """Keep the slots of `pods` (at most `granted`: the pods about to be created), give back the rest."""
        if len(pods) > self.granted:
            raise ValueError(f"{len(pods)} pods to create with {self.granted} slot(s) reserved")
        if self._open:
            self._open = False
            self.slots._hold(self.granted, pods)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *_: object) -> None:
        self.hold([])  # nothing created (or held already): every slot back


class Backoff:
    """Per-key growing delays (1, 2, 4 ... up to `cap` seconds) for a refusal that an admin may fix."""

    def __init__(self, cap: float = 60.0) -> None:
        self.cap = cap
        self._tries: dict[str, int] = {}
        self._lock = threading.Lock()

    def next(self, key: str) -> float:
        with self._lock:
            n = self._tries.get(key, 0)
            self._tries[key] = n + 1
        return float(min(self.cap, 2**n))

    def reset(self, key: str) -> None:
        with self._lock:
            self._tries.pop(key, None)
