"""`HostLimiter`: the `aiolimiter.AsyncLimiter` of one politeness key (see `.limiters`).

Its own module so that aiolimiter (and the package metadata lookup its import makes)
loads only once some host is paced: a crawl with no ``rate`` and no Crawl-delay never
needs it."""

from __future__ import annotations

import math

from aiolimiter import AsyncLimiter


class HostLimiter(AsyncLimiter):
    """An ``AsyncLimiter`` that can say when it will next have capacity."""

    __slots__ = ()

    def free_at(self) -> float:
        """When ``has_capacity()`` turns true, in ``loop.time()``: aiolimiter's own
        arithmetic (``_wake_next``), read without leaking so that it changes nothing
        and may be asked from the SQLite frontier's thread."""
        needed = self._level + 1 - self.max_rate
        return self._last_check + needed / self._rate_per_sec if needed > 0 else -math.inf

    def resized(self, interval: float) -> HostLimiter:
        """A limiter of ``interval`` whose last start is this one's (Crawl-delay
        arriving after a start does not forget it)."""
        limiter = HostLimiter(1, interval)
        if self._level > 0:
            limiter._level = 1.0
            limiter._last_check = self.free_at() - self.time_period
        return limiter
