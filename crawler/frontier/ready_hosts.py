"""`ReadyHosts`: which hosts are ready now, shared by the frontier backends.

* the ring: hosts that were ready when placed, served round-robin. A host can
  become unready while in the ring (a throttle, say); ``take`` and
  ``wake_up`` notice that when they reach it and place it again (lazy removal).
* the waiting heap of ``(ready_at, seq, host)``: hosts that have work but must
  wait for a time. Entries that no longer match the host's ``wake`` time are
  stale and dropped when they surface.
* hosts with no work now (nothing queued, or at their concurrency limit) are in
  neither; the frontier places them again when that changes.

The bookkeeping lives on the hosts themselves (``where`` and ``wake``), so that
placing a host costs no lookup.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")

NOWHERE, RING, WAITING = 0, 1, 2


class Placeable(Protocol):
    """A host as `ReadyHosts` sees it: ``where`` is ``NOWHERE``, ``RING`` or
    ``WAITING`` (start with ``NOWHERE``); ``wake`` is the ready time of its live
    entry in the waiting heap."""

    where: int
    wake: float


H = TypeVar("H", bound=Placeable)


class ReadyHosts(Generic[H]):
    """The hosts ready now (a round-robin ring) and those waiting for a time (a heap).

    ``ready_at(host)`` says when ``host`` may start its next request, or ``None``
    while it has no work it could start.
    """

    __slots__ = ("_ready_at", "_ring", "_seq", "_waiting")

    def __init__(self, ready_at: Callable[[H], float | None]) -> None:
        self._ready_at = ready_at
        self._ring: deque[H] = deque()
        self._waiting: list[tuple[float, int, H]] = []
        self._seq = itertools.count()

    def place(self, host: H, now: float) -> None:
        """Put ``host`` where its readiness says: the ring, the waiting heap, or
        nowhere. A host already in the ring stays there (checked when reached)."""
        if host.where == RING:
            return
        ready_at = self._ready_at(host)
        if ready_at is None:
            host.where = NOWHERE
        elif ready_at <= now:
            host.where = RING
            self._ring.append(host)
        elif host.where != WAITING or host.wake != ready_at:
            host.where = WAITING
            host.wake = ready_at
            heapq.heappush(self._waiting, (ready_at, next(self._seq), host))

    def wake_up(self, now: float) -> None:
        """Move due hosts into the ring; drop unready hosts from the head of the
        ring, so that a non-empty ring means a host is ready now."""
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            wake, _, host = heapq.heappop(waiting)
            if host.where == WAITING and host.wake == wake:
                host.where = NOWHERE
                self.place(host, now)
        ring = self._ring
        ready_at_of = self._ready_at
        while ring:
            ready_at = ready_at_of(ring[0])
            if ready_at is not None and ready_at <= now:
                break
            host = ring.popleft()
            host.where = NOWHERE
            self.place(host, now)

    def take(self, limit: int, now: float, start: Callable[[H, float], T]) -> list[T]:
        """Call ``start(host, now)`` for up to ``limit`` hosts ready at ``now``,
        round-robin (a host may come again once it is back in the ring), placing
        each host again after its start; return what the calls returned, in order."""
        taken: list[T] = []
        ring = self._ring
        ready_at_of = self._ready_at
        place = self.place
        while len(taken) < limit and ring:  # the hot path: keep it lean
            host = ring.popleft()
            host.where = NOWHERE
            ready_at = ready_at_of(host)
            if ready_at is not None and ready_at <= now:
                taken.append(start(host, now))
            place(host, now)
        return taken

    def wait(self, now: float, other: float | None = None) -> float | None:
        """The wait hint, after ``wake_up(now)``: 0 if a host is ready, else the
        time until the earliest waiting host or ``other`` (another time at which
        work may appear), or ``None`` if there is neither."""
        if self._ring:
            return 0.0
        waiting = self._waiting
        while waiting:
            wake, _, host = waiting[0]
            if host.where == WAITING and host.wake == wake:
                break
            heapq.heappop(waiting)
        first = waiting[0][0] if waiting else None
        if first is None or (other is not None and other < first):
            first = other
        return None if first is None else max(first - now, 0.0)
