"""`MemoryFrontier`: the in-process `Frontier`, for single-process crawls and tests.

Bookkeeping, in terms of hosts (one ``_Host`` per ``host_key``):

* ``_ready``: a `ReadyHosts`, the hosts ready now (served round-robin by ``take``)
  and those waiting for their limiter (`HostLimiters`: the interval) or a pause.
  Hosts blocked by ``concurrency``, or claimed by a request handed out and not yet
  started, are in neither; ``done``/``retry`` and the limiters place them again.
* ``_delayed``: a heap of retried requests, moved into their host's queue when due.

Leases are counted per fingerprint (a request taken twice through ``dont_filter``
holds two), so ``done`` and ``retry`` accept any equal copy of the taken request,
for example one made with ``dataclasses.replace(request, retries=n + 1)``.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Sequence

from .._request import Request
from .._urls import host_key
from .base import Frontier, FrontierStatus, HostPolicy
from .limiters import HostLimiters
from .ready_hosts import NOWHERE, ReadyHosts

DEFAULT_POLICY = HostPolicy()


class _Host:
    """One host's queue and politeness state."""

    __slots__ = ("in_flight", "key", "paused_until", "policy", "queue", "wake", "where")

    def __init__(self, key: str, policy: HostPolicy) -> None:
        self.key = key
        self.policy = policy
        # (-priority, seq, fingerprint, request): highest priority first, then FIFO.
        self.queue: list[tuple[int, int, int, Request]] = []
        self.in_flight = 0
        self.paused_until = -math.inf
        self.where = NOWHERE  # and ``wake``: `ReadyHosts`'s bookkeeping
        self.wake = 0.0


class MemoryFrontier(Frontier):
    """A `Frontier` held in this process's memory; nothing survives the process.

    ``policy`` applies to every host not changed by ``throttle``; its ``interval``
    is kept by ``limiters`` (made from it if not given). ``clock`` returns seconds
    (monotonic, as the event loop's ``time()``, which the limiters read); tests
    inject a fake one.
    """

    def __init__(
        self,
        policy: HostPolicy = DEFAULT_POLICY,
        *,
        clock: Callable[[], float] = time.monotonic,
        limiters: HostLimiters | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self.limiters = limiters or HostLimiters(policy.interval)
        self.limiters.subscribe(self._look_again)
        self._seen: set[int] = set()
        self._hosts: dict[str, _Host] = {}
        self._ready: ReadyHosts[_Host] = ReadyHosts(self._ready_at)
        self._delayed: list[tuple[float, int, int, _Host, Request]] = []
        # fingerprint -> [leases, of which still holding a host slot]
        self._leases: dict[int, list[int]] = {}
        self._seq = itertools.count()
        self._queued = 0
        self._in_flight = 0

    async def open(self) -> int:
        """Nothing to connect, and nothing an earlier run left."""
        return 0

    async def add(self, requests: Sequence[Request]) -> int:
        now = self._clock()
        added = 0
        for request in requests:
            fp = request.fingerprint
            if fp in self._seen and not request.dont_filter:
                continue
            self._seen.add(fp)
            self._enqueue(self._host(host_key(request.url)), fp, request, now)
            added += 1
        return added

    async def take(self, limit: int) -> list[Request]:
        now = self._clock()
        self._wake_up(now)
        return self._ready.take(limit, now, self._start)

    async def fetched(self, request: Request, *, sent: bool = True) -> None:
        lease = self._leases.get(request.fingerprint)
        if lease is None or lease[1] == 0:
            raise ValueError(f"request holds no host slot: {request.method} {request.url}")
        lease[1] -= 1
        key = host_key(request.url)
        if not sent:
            self.limiters.give_back(key)
        self._free_slot(self._hosts[key])

    async def done(self, request: Request) -> None:
        self._release(request)

    async def retry(self, request: Request, delay: float) -> None:
        host, fp = self._release(request)
        due = self._clock() + max(delay, 0.0)
        heapq.heappush(self._delayed, (due, next(self._seq), fp, host, request))

    async def throttle(
        self, host: str, *, policy: HostPolicy | None = None, pause: float | None = None
    ) -> None:
        now = self._clock()
        state = self._host(host)
        if policy is not None:
            state.policy = policy
            self.limiters.set_interval(host, policy.interval)
        if pause is not None:
            state.paused_until = max(state.paused_until, now + pause)
        self._ready.place(state, now)

    async def status(self) -> FrontierStatus:
        now = self._clock()
        self._wake_up(now)
        return FrontierStatus(
            pending=self._queued + len(self._delayed),
            in_flight=self._in_flight,
            seen=len(self._seen),
            wait=self._ready.wait(now, self._delayed[0][0] if self._delayed else None),
        )

    async def close(self) -> None:
        pass

    def _host(self, key: str) -> _Host:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(key, self._policy)
        return host

    def _ready_at(self, host: _Host) -> float | None:
        """When ``host`` may start its next request; ``None`` while it has nothing
        queued, is at its concurrency limit or is claimed (see `HostLimiters`)."""
        if not host.queue or host.in_flight >= host.policy.concurrency:
            return None
        free = self.limiters.ready_at(host.key)
        return None if free is None else max(free, host.paused_until)

    def _look_again(self, key: str) -> None:
        """A host's limiter started a request or got one back: place the host again."""
        host = self._hosts.get(key)
        if host is not None:
            self._ready.place(host, self._clock())

    def _enqueue(self, host: _Host, fp: int, request: Request, now: float) -> None:
        heapq.heappush(host.queue, (-request.priority, next(self._seq), fp, request))
        self._queued += 1
        self._ready.place(host, now)

    def _start(self, host: _Host, now: float) -> Request:
        _, _, fp, request = heapq.heappop(host.queue)
        self._queued -= 1
        host.in_flight += 1
        self.limiters.claim(host.key, fp)
        self._in_flight += 1
        lease = self._leases.setdefault(fp, [0, 0])
        lease[0] += 1
        lease[1] += 1
        return request

    def _release(self, request: Request) -> tuple[_Host, int]:
        """End one lease of ``request`` (and its host slot if it still holds one);
        raise ``ValueError`` if it holds none."""
        fp = request.fingerprint
        lease = self._leases.get(fp)
        if lease is None:
            raise ValueError(f"request is not in flight: {request.method} {request.url}")
        lease[0] -= 1
        host = self._hosts[host_key(request.url)]
        self.limiters.give_back(host.key, fp)  # if it never started
        if lease[1] > lease[0]:
            lease[1] -= 1
            self._free_slot(host)
        if lease[0] == 0:
            del self._leases[fp]
        self._in_flight -= 1
        return host, fp

    def _free_slot(self, host: _Host) -> None:
        host.in_flight -= 1
        self._ready.place(host, self._clock())

    def _wake_up(self, now: float) -> None:
        """Move due retries into their queues, then wake the due hosts."""
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, _, fp, host, request = heapq.heappop(delayed)
            self._enqueue(host, fp, request, now)
        self._ready.wake_up(now)
