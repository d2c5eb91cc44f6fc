"""The frontier: every request the crawl still has to make, and which host goes next.

A frontier owns three things that must change together, atomically, in every
backend (`MemoryFrontier`, `SqliteFrontier`, `RedisFrontier`):

* the queue: per-host queues of requests, highest ``priority`` first within a host;
* the seen-set: fingerprints of every request ever queued, for deduplication;
* per-host politeness: how many requests of a host are in flight (``concurrency``)
  and pauses (Retry-After). Politeness lives here, not in the workers, so that a
  Redis frontier can hold it for a whole cluster.

The interval between two starts on a host (``rate``, Crawl-delay) is kept by the
host's `aiolimiter` limiter (``limiters``, a `HostLimiters`), which every request
enters on its way to the wire. ``take`` asks the limiters and hands out only
requests whose host is ready *now* and never waits, so no worker ever sleeps on one
host while another host has work. Hosts are served round-robin. A taken request is
*leased* until ``done`` or ``retry``; it holds its host's concurrency slot until
``fetched`` (or the end of the lease), so a page being parsed does not count
against the host. A Redis frontier also keeps the cluster-wide interval in Redis:
each node's limiters pace that node's own starts.

What a backend can do besides is declared, not guessed: a `DurableFrontier` keeps
the crawl after the process ends (a job: the engine checks the spider, carries the
statistics over, repairs the output and acknowledges each page once written), and a
`SharedFrontier` is worked on by several processes at once (the engine shares
robots.txt answers and statistics through it, and polls it for other nodes'
progress). The engine asks these protocols, whoever built the backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._request import Request
from .limiters import HostLimiters


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Politeness for one host: at most ``concurrency`` requests in flight, and at
    least ``interval`` seconds between the starts of two requests (kept by the
    host's limiter in ``Frontier.limiters``; a Redis frontier also keeps it for the
    cluster)."""

    concurrency: int = 8
    interval: float = 0.0


@dataclass(frozen=True, slots=True)
class FrontierStatus:
    """A snapshot. ``wait``: seconds until ``take`` may return something without any
    ``done`` happening first (0.0: now); ``None`` when only a ``done`` or an ``add``
    can make a request takeable (or nothing is pending)."""

    pending: int
    in_flight: int
    seen: int
    wait: float | None

    @property
    def finished(self) -> bool:
        """Nothing pending and nothing in flight: the crawl is over."""
        return self.pending == 0 and self.in_flight == 0


@runtime_checkable
class Frontier(Protocol):
    """The contract every backend passes (see tests/support/frontier_contract.py).

    ``limiters``: the hosts' limiters that ``take`` asks (``throttle`` sets a policy's
    interval there); requests go on the wire inside them."""

    limiters: HostLimiters

    async def open(self) -> int:
        """Connect, and recover what an earlier run left: return how many requests it
        left in flight were queued again (0 for a new or in-memory crawl). Every other
        method may open first by itself; ``open`` is where a backend that cannot be
        reached says so. Idempotent: a second call does nothing and returns the same
        number."""
        ...

    async def add(self, requests: Sequence[Request]) -> int:
        """Queue each request whose fingerprint was never seen (or that has
        ``dont_filter``); record its fingerprint. URLs arrive canonical. Returns how
        many were queued. A request's host key is ``host_key(request.url)``."""
        ...

    async def take(self, limit: int) -> list[Request]:
        """Lease up to ``limit`` requests whose hosts are ready now (fewer than
        ``concurrency`` in flight, the host's limiter has capacity and no request of
        it is handed out but not yet started, not paused, retry delay over). Never
        waits; returns ``[]`` when nothing is ready."""
        ...

    async def fetched(self, request: Request, *, sent: bool = True) -> None:
        """The taken request's exchange with its host is over: free the host's
        concurrency slot. ``sent=False``: it was never sent (refused after it was
        taken), so the host also gets its start back: it costs no interval. The
        lease goes on until ``done`` or ``retry``. Raises ``ValueError`` if the
        request holds no slot."""
        ...

    async def done(self, request: Request) -> None:
        """End the lease of a taken request (stored, failed for good, or dropped),
        and its host slot if ``fetched`` has not freed it. Raises ``ValueError``
        if the request is not in flight; an equal copy ends the lease."""
        ...

    async def retry(self, request: Request, delay: float) -> None:
        """End the lease and queue ``request`` again (no dedup), takeable after
        ``delay`` seconds."""
        ...

    async def throttle(
        self, host: str, *, policy: HostPolicy | None = None, pause: float | None = None
    ) -> None:
        """Change one host's politeness (for example Crawl-delay) and/or pause the host
        for ``pause`` seconds from now (Retry-After). A shorter pause never shortens
        a longer one already in force."""
        ...

    async def status(self) -> FrontierStatus:
        """Counts and the wait hint; see ``FrontierStatus``."""
        ...

    async def close(self) -> None:
        """Release resources; a durable or shared backend keeps what is pending and in
        flight. Idempotent, and allowed without ``open``."""
        ...


@runtime_checkable
class DurableFrontier(Frontier, Protocol):
    """A frontier kept after the process ends (a job directory), so that the next run
    of the same crawl resumes it. Its metadata holds the job's bookkeeping: the
    spider it belongs to, how many runs it had, the statistics so far."""

    @property
    def location(self) -> str:
        """Where the frontier is kept, as messages name it (a path)."""
        ...

    async def get_meta(self, key: str) -> str | None:
        """The value stored under ``key`` by ``set_meta``, in this run or an earlier one."""
        ...

    async def set_meta(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, kept with the queue (committed with it)."""
        ...


@runtime_checkable
class SharedStore(Protocol):
    """A small key-value store the nodes of a distributed crawl share (robots.txt
    answers, so one node fetches each robots.txt for all)."""

    async def shared_get(self, key: str) -> bytes | None:
        """The value a node stored under ``key``, unless it expired."""
        ...

    async def shared_set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for every node, for ``ttl`` seconds."""
        ...


@runtime_checkable
class SharedFrontier(Frontier, SharedStore, Protocol):
    """A frontier several processes work on at once (Redis). Another node's progress
    wakes no one in this process, so the engine looks again often; each node adds its
    counters to the crawl's totals."""

    async def add_stats(self, counts: Mapping[str, int]) -> None:
        """Add ``counts`` to the crawl's totals, kept for every node to read."""
        ...
