"""`HostLimiters`: one `aiolimiter.AsyncLimiter` per politeness key, the only clock
of a host's interval (``rate``, Crawl-delay).

A host with an interval gets an ``AsyncLimiter(1, interval)``: one start per
interval, never a burst. A request goes on the wire only inside its host's limiter
(``async with limiters.start(key)``), whoever sends it: a crawl worker, a single
fetch, a cache miss.

So that no worker ever waits on a busy host, the frontier asks the limiters before
it hands a request out (``ready_at``, aiolimiter's ``has_capacity``) and keeps a
host whose limiter is busy waiting in the frontier, not in a worker. Between the
hand-out and the start the host is *claimed*: no second request of it is handed
out, and a request that is not sent after all (robots.txt, the page cap) gives
the claim back (``give_back``), so its host loses neither a start nor an interval.
Whoever hands requests out hears of every start and give-back (``subscribe``),
to look at the host again.

Per-IP politeness (``politeness_key = "ip"``): ``alias`` makes several host keys
share one limiter (their address's), so the rate holds for the machine, however
many hostnames it answers to; claims stay per host key.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .hostlimiter import HostLimiter

Listener = Callable[[str], None]


def _limiter_class() -> type[HostLimiter]:
    from .hostlimiter import HostLimiter  # noqa: PLC0415  (aiolimiter loads once a host is paced)

    return HostLimiter


def _new_limiter(interval: float) -> HostLimiter:
    return _limiter_class()(1, interval)


class HostLimiters:
    """The limiters of one crawl (or one single-fetch session), keyed by politeness
    key; ``interval`` applies to every key not changed by ``set_interval``."""

    def __init__(self, interval: float = 0.0) -> None:
        self.default_interval = interval
        self._intervals: dict[str, float] = {}
        self._limiters: dict[str, HostLimiter] = {}
        self._aliases: dict[str, str] = {}  # host key -> the key whose limiter it shares
        self._claimed: dict[str, int] = {}  # key -> fingerprint of the request handed out
        self._listeners: list[Listener] = []
        if interval > 0:  # every host is paced: load aiolimiter now, not on the loop before a start
            _limiter_class()

    def alias(self, key: str, shared: str) -> None:
        """Pace ``key`` with the limiter of ``shared`` (an IP address, say) from now on."""
        self._aliases[key] = shared

    def interval(self, key: str) -> float:
        return self._intervals.get(self._aliases.get(key, key), self.default_interval)

    def set_interval(self, key: str, interval: float) -> None:
        """``key``'s interval (with an alias: the shared limiter's, which only grows)."""
        shared = self._aliases.get(key)
        if shared is not None:
            key, interval = shared, max(interval, self.interval(shared))
        if interval == self.interval(key):
            return
        self._intervals[key] = interval
        old = self._limiters.pop(key, None)
        if interval > 0:
            self._limiters[key] = old.resized(interval) if old else _new_limiter(interval)
        else:
            self._claimed.pop(key, None)

    def limiter(self, key: str) -> HostLimiter | None:
        """``key``'s limiter; ``None`` while it has no interval (nothing to pace)."""
        key = self._aliases.get(key, key)
        limiter = self._limiters.get(key)
        if limiter is None and (interval := self.interval(key)) > 0:
            limiter = self._limiters[key] = _new_limiter(interval)
        return limiter

    def ready_at(self, key: str) -> float | None:
        """When ``key`` may start its next request (``loop.time()``), ``None`` while
        a request of it has been handed out and neither started nor given back."""
        if key in self._claimed:
            return None
        limiter = self._limiters.get(self._aliases.get(key, key))
        return -math.inf if limiter is None else limiter.free_at()

    def has_capacity(self, key: str) -> bool:
        """May ``key`` start a request now without waiting (aiolimiter's ``has_capacity``)?"""
        limiter = self._limiters.get(self._aliases.get(key, key))
        return limiter is None or limiter.has_capacity()

    def claim(self, key: str, fingerprint: int) -> None:
        """The request ``fingerprint`` of ``key`` was handed out: no other until it
        starts or is given back."""
        if self.interval(key) > 0:
            self._claimed[key] = fingerprint

    def give_back(self, key: str, fingerprint: int | None = None) -> None:
        """The request handed out will not be sent (if it is ``fingerprint``, or any
        when ``None``): ``key`` may start another now. A frontier gives back each
        request it ends, so one that ended without starting frees its host."""
        if key in self._claimed and fingerprint in (None, self._claimed[key]):
            del self._claimed[key]
            self._notify(key)

    @contextlib.asynccontextmanager
    async def start(self, key: str, fingerprint: int | None = None) -> AsyncIterator[None]:
        """Send a request of ``key`` inside this block: it waits for the host's
        limiter (not at all if the frontier handed it out: ``fingerprint`` names the
        request the frontier handed out; ``None``: a single fetch), then counts as
        the host's start."""
        limiter = self.limiter(key)
        if limiter is None:
            yield
            return
        async with limiter:
            if fingerprint is not None and self._claimed.get(key) == fingerprint:
                del self._claimed[key]
            await self._started(key, fingerprint)
            self._notify(key)
            yield

    async def _started(self, key: str, fingerprint: int | None) -> None:
        """Hook for a frontier that must hear of a start before it goes on the wire."""

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(key)`` after each start and give-back."""
        self._listeners.append(listener)

    def _notify(self, key: str) -> None:
        for listener in self._listeners:
            listener(key)
