"""Per-host politeness decisions around each fetch.

Before a fetch, ``admit`` decides whether a request may go: robots.txt rules (and
the Crawl-delay they carry), an origin whose robots.txt is unreachable for now
(come back later) or for good, and the per-host page cap. ``refusal`` says the
same, without waiting, of a link about to be queued, so that what the known rules
refuse never takes a place in the queue or a start of its host. The fetch itself
goes through the host's limiter (``slot``, ``paced``: `HostLimiters`, the one clock
of ``rate`` and Crawl-delay). After it, ``answered`` and ``failed`` feed
Retry-After and the adaptive throttle, which change the host's policy in the
frontier, where it holds for every worker (and, with a shared frontier, every node).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .._counters import (
    DROPPED_HOST_FAILING,
    DROPPED_HOST_PAGE_LIMIT,
    DROPPED_ROBOTS,
    DROPPED_ROBOTS_UNREACHABLE,
    POLITENESS_CIRCUIT_BREAKER,
    POLITENESS_RETRY_AFTER,
)
from .._errors import BlockedAddress, FetchError, TransientFetchError
from .._request import Request
from .._settings import RETRY_STATUSES, Settings
from .._stats import Stats
from .._urls import host_key, origin
from ..frontier import Frontier, HostLimiters, HostPolicy
from .robots import RobotsCache
from .rules import retry_after
from .throttle import BREAKER_TRIPS, Adjustment, AutoThrottle

if TYPE_CHECKING:
    from .client import Fetched

log = logging.getLogger("crawler.politeness")

Fetch = Callable[[Request], Awaitable["Fetched"]]
Resolve = Callable[[str, int], Awaitable[str | None]]

# Starts are spaced 5% wider than a rate or Crawl-delay asks: requests reach the
# server with tens of milliseconds of jitter, which would otherwise let one more
# request into some 1-second window there. A limit is a ceiling, not a target.
SPACING_MARGIN = 1.05


@dataclass(frozen=True, slots=True)
class Admission:
    """May a request be fetched now? If not: ``drop`` (a ``dropped/`` counter) names why it never will, or
    ``retry_in`` says when to try again, or ``error`` is why it fails (an error, not
    a drop: the address guard refused its robots.txt)."""

    allowed: bool
    drop: str | None = None
    retry_in: float | None = None
    detail: str = ""
    error: FetchError | None = None


ADMITTED = Admission(True)


def rate_interval(settings: Settings) -> float:
    """Seconds between two starts on one host that ``rate`` asks for (0: no cap)."""
    return SPACING_MARGIN / settings.rate if settings.rate else 0.0


def default_host_policy(settings: Settings) -> HostPolicy:
    """A new host's policy: ``per_host`` in flight (one at first when the adaptive
    throttle is on: it grows with healthy answers), ``1 / rate`` between starts.
    With the HTTP cache on, the frontier does not space starts: a cache hit costs the
    site nothing, so `Politeness.paced` spaces the requests that reach the network."""
    interval = 0.0 if settings.cache else rate_interval(settings)
    return HostPolicy(1 if settings.autothrottle else settings.per_host, interval)


class Politeness:
    """The politeness decisions of one crawl (or of one single-fetch session).

    ``limiters``: the hosts' limiters, the frontier's. With the HTTP cache on
    (``paces_network``), the frontier does not space starts and this keeps limiters
    of its own, entered only by fetches that reach the network (`paced`), so
    replayed pages do not wait."""

    def __init__(
        self,
        settings: Settings,
        frontier: Frontier,
        robots: RobotsCache,
        stats: Stats,
        *,
        resolve: Resolve | None = None,
    ) -> None:
        self._resolve = (resolve or first_address) if settings.politeness_key == "ip" else None
        self.paces_network = settings.cache is not None
        self.limiters = HostLimiters(rate_interval(settings)) if self.paces_network else frontier.limiters
        self._scheduled = frontier.limiters
        self._settings = settings
        self._frontier = frontier
        self._robots = robots
        self._stats = stats
        self._throttle = AutoThrottle(settings.per_host) if settings.autothrottle else None
        self._known: set[str] = set()
        self._addressed: set[str] = set()
        self._pages: Counter[str] = Counter()
        self._given_up: set[str] = set()

    def refusal(self, request: Request) -> str | None:
        """Why the rules known now refuse ``request`` for good (the ``dropped/``
        counter), or ``None``; never waits (robots.txt not known yet: ``None``)."""
        host = host_key(request.url)
        verdict = self._host_refusal(host)
        if verdict is None and self._settings.obey_robots:
            rules = self._robots.known(origin(request.url))
            if rules is not None and not rules.unreachable and not rules.allows(request.url):
                verdict = DROPPED_ROBOTS
        return verdict

    def _host_refusal(self, host: str) -> str | None:
        if host in self._given_up:
            return DROPPED_HOST_FAILING
        cap = self._settings.max_pages_per_host
        if cap is not None and self._pages[host] >= cap:
            return DROPPED_HOST_PAGE_LIMIT
        return None

    async def admit(self, request: Request) -> Admission:
        host = host_key(request.url)
        if (drop := self._host_refusal(host)) is not None:
            return Admission(False, drop=drop)
        if self._resolve is not None and host not in self._addressed:
            await self._share_address(host, request.url)
        if not self._settings.obey_robots:
            return ADMITTED
        rules = await self._robots.rules_for(origin(request.url))
        if host not in self._known:
            self._known.add(host)
            await self._set_interval(host, rules.crawl_delay)
        if rules.blocked:
            return Admission(False, error=BlockedAddress(f"its robots.txt is refused: {rules.reason}"))
        if rules.unreachable:
            return await self._robots_unreachable(host, rules.retry_in, rules.reason)
        return ADMITTED if rules.allows(request.url) else Admission(False, drop=DROPPED_ROBOTS)

    async def _share_address(self, host: str, url: str) -> None:
        """``politeness_key = "ip"``: pace ``host`` with every other host on its address."""
        self._addressed.add(host)
        parts = urlsplit(url)
        assert self._resolve is not None and parts.hostname is not None
        address = await self._resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        if address is not None:
            self.limiters.alias(host, address)

    async def _robots_unreachable(self, host: str, retry_in: float | None, reason: str) -> Admission:
        if retry_in is None:
            return Admission(False, drop=DROPPED_ROBOTS_UNREACHABLE, detail=reason)
        await self._frontier.throttle(host, pause=retry_in)
        return Admission(False, retry_in=retry_in, detail=reason)

    async def _set_interval(self, host: str, delay: float | None) -> None:
        """On first sight of a host: its interval from ``rate`` and Crawl-delay; the
        frontier hears of it only if Crawl-delay changes it (a round trip to the
        frontier would delay the host's first request)."""
        interval = rate_interval(self._settings)
        if delay:
            if delay > self._settings.max_crawl_delay:
                log.warning(
                    "%s asks for Crawl-delay %gs; capped at %gs", host, delay, self._settings.max_crawl_delay
                )
                delay = self._settings.max_crawl_delay
            interval = max(interval, delay * SPACING_MARGIN)  # an explicit slower rate wins
        self.limiters.set_interval(host, interval)
        if delay:
            policy = HostPolicy(self._concurrency(host), self._spacing(host))
            await self._frontier.throttle(host, policy=policy)

    def _spacing(self, host: str) -> float:
        """The interval the frontier keeps between starts on ``host``."""
        return 0.0 if self.paces_network else self.limiters.interval(host)

    def _concurrency(self, host: str) -> int:
        return self._throttle.concurrency(host) if self._throttle else self._settings.per_host

    def can_start(self, request: Request) -> bool:
        """Would ``slot`` let ``request`` start at once? Not if something else started
        on its host after the frontier handed it out (its robots.txt, a single fetch)."""
        return self._scheduled.has_capacity(host_key(request.url))

    def slot(self, request: Request) -> AbstractAsyncContextManager[None]:
        """Send a request the frontier handed out inside this block: its host's
        limiter, which the frontier found with capacity, so it does not wait."""
        return self._scheduled.start(host_key(request.url), request.fingerprint)

    def paced(self, fetch: Fetch) -> Fetch:
        """``fetch``, each call inside its host's limiter (waiting for it if need be):
        for single fetches, and with ``paces_network`` for what reaches the network.
        A single fetch shares the limiter of the crawl's requests to its host, so it
        counts against the host's rate."""

        async def paced_fetch(request: Request) -> Fetched:
            async with self.limiters.start(host_key(request.url)):
                return await fetch(request)

        return paced_fetch

    def page_fetched(self, request: Request) -> None:
        self._pages[host_key(request.url)] += 1
        self._stats.hosts = len(self._pages)

    async def answered(self, request: Request, fetched: Fetched, latency: float) -> float:
        """Learn from a response; return how long a retry of it must wait at least
        (Retry-After), 0 if nothing says so."""
        host = host_key(request.url)
        pause = retry_after(fetched)
        if pause:
            self._stats.inc(POLITENESS_RETRY_AFTER)
            log.info("%s asks to wait %gs (Retry-After): pausing it", host, pause)
            await self._frontier.throttle(host, pause=pause)
        if self._throttle is not None:
            failed = fetched.status in RETRY_STATUSES
            await self._adjust(
                host, self._throttle.failed(host) if failed else self._throttle.succeeded(host, latency)
            )
        return pause or 0.0

    async def failed(self, request: Request, error: FetchError) -> None:
        """A fetch that got no response: a transient error slows the host down."""
        if self._throttle is not None and isinstance(error, TransientFetchError):
            host = host_key(request.url)
            await self._adjust(host, self._throttle.failed(host))

    async def _adjust(self, host: str, adjustment: Adjustment) -> None:
        if adjustment.concurrency is not None:
            policy = HostPolicy(adjustment.concurrency, self._spacing(host))
            await self._frontier.throttle(host, policy=policy)
        if adjustment.give_up and host not in self._given_up:
            self._given_up.add(host)
            log.warning("%s keeps failing after %d pauses: giving up on it", host, BREAKER_TRIPS)
        if adjustment.pause is not None:
            self._stats.inc(POLITENESS_CIRCUIT_BREAKER)
            log.warning("%s keeps failing: pausing it for %gs", host, adjustment.pause)
            await self._frontier.throttle(host, pause=adjustment.pause)


async def first_address(hostname: str, port: int) -> str | None:
    """The first address ``hostname`` resolves to (the one a connection tries
    first), ``None`` if it does not resolve: the fetch will say why."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    return str(infos[0][4][0]) if infos else None
