"""Single fetches outside the frontier, checked as the crawl checks its own.

``Spider.fetch`` (an ``async def`` callback awaiting an extra request), ``crawl
parse`` and ``crawl shell`` fetch one request to the end and get a `Response`
back. The request goes through the same gates as a crawled one: its URL is
canonicalised and vetted, every hop must be in scope and allowed by robots.txt
(and the per-host page cap and the circuit breaker), redirects are followed hop
by hop with credentials dropped across origins, transient errors and 408/429/5xx
answers are retried with backoff (honouring Retry-After up to ``max_crawl_delay``),
and the address guard sits in the fetcher itself.

Politeness: a single fetch enters its host's limiter (``rate`` or Crawl-delay), the
one the crawl's requests to that host enter, so it waits for the host's interval
and counts against the host's rate like any other request. It does not take one
of the host's concurrency slots: it is rare, and awaited by a callback that holds
no slot either. What refuses a request raises `RequestRefused` (a `FetchError`);
an HTTP error status is a response, not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._counters import (
    DROPPED_HOST_FAILING,
    DROPPED_HOST_PAGE_LIMIT,
    DROPPED_ROBOTS,
    DROPPED_ROBOTS_UNREACHABLE,
    short,
)
from ._errors import HostDeferred, RequestRefused, TransientFetchError
from ._http import REDIRECT_STATUSES, RETRY_STATUSES, backoff, follow_redirect
from ._memory_frontier import MemoryFrontier
from ._politeness import Admission, Politeness, default_host_policy
from ._render import RenderStep
from ._request import Request
from ._response import Response
from ._robots import ROBOTS_TIMEOUT, RobotsCache
from ._settings import Settings
from ._stats import Stats
from ._throttle import retry_after_seconds
from ._urls import in_scope, join_url, vet_url

if TYPE_CHECKING:
    from ._fetcher import Fetched

Fetch = Callable[[Request], Awaitable["Fetched"]]

REFUSALS: Mapping[str, str] = {
    DROPPED_ROBOTS: "robots.txt disallows it",
    DROPPED_ROBOTS_UNREACHABLE: "its robots.txt cannot be fetched",
    DROPPED_HOST_FAILING: "its host keeps failing",
    DROPPED_HOST_PAGE_LIMIT: "its host reached max_pages_per_host",
}


class DirectFetcher:
    """Fetches single requests under ``settings`` through ``politeness``; ``scope``
    (the allowed domains) applies to every hop, ``None`` allows any host."""

    def __init__(
        self,
        settings: Settings,
        fetch: Fetch,
        politeness: Politeness,
        *,
        scope: tuple[str, ...] | None = None,
        on_response: Callable[[Fetched], None] | None = None,
    ) -> None:
        self._settings = settings
        # with the HTTP cache on, ``fetch`` paces what reaches the network itself
        self._fetch = fetch if politeness.paces_network else politeness.paced(fetch)
        self._politeness = politeness
        self._scope = scope
        self._on_response = on_response

    async def fetch(self, target: str | Request, **fields: Any) -> Response:
        """Fetch ``target`` (an absolute URL, or a `Request`; ``fields`` set other
        `Request` fields such as ``headers`` or ``method``) and follow its redirects."""
        request = replace(target, **fields) if isinstance(target, Request) else Request(target, **fields)
        request = replace(request, url=self._vetted(request.url))
        for _ in range(self._settings.max_redirects + 1):
            fetched = await self._admitted_attempts(request)
            location = fetched.headers.get("location")
            if fetched.status not in REDIRECT_STATUSES or not location:
                return Response(fetched.url, fetched.status, fetched.headers, fetched.body, request)
            url = self._vetted(join_url(request.url, location))
            request = follow_redirect(request, fetched.status, url)
        raise RequestRefused(f"{request.url}: more than {self._settings.max_redirects} redirects")

    def _vetted(self, url: str) -> str:
        verdict, canonical = vet_url(url, self._settings)
        if verdict is not None:
            raise RequestRefused(f"{url!r} refused: {short(verdict).replace('_', ' ')}")
        if self._scope is not None and not in_scope(canonical, self._scope):
            raise RequestRefused(f"{canonical} refused: off-site (allowed: {', '.join(self._scope)})")
        return canonical

    async def _admitted_attempts(self, request: Request) -> Fetched:
        """Admission and attempts; a single fetch holds no worker slot, so it waits
        out `HostDeferred` (too many attempts on hosts that never answered)."""
        while True:
            try:
                await self._admit(request)
                return await self._attempts(request)
            except HostDeferred as deferred:
                await asyncio.sleep(deferred.retry_in * random.uniform(0.5, 1.5))

    async def _admit(self, request: Request) -> None:
        admission = await self._politeness.admit(request)
        if admission.error is not None:
            raise type(admission.error)(f"{request.url} refused: {admission.error}")
        if not admission.allowed:
            raise RequestRefused(f"{request.url} refused: {_reason(admission)}")

    async def _attempts(self, request: Request) -> Fetched:
        attempt = 0
        while True:
            try:
                fetched = await self._once(request)
            except TransientFetchError:
                if attempt >= self._settings.retries:
                    raise
                await asyncio.sleep(backoff(attempt))
            else:
                if fetched.status not in RETRY_STATUSES or attempt >= self._settings.retries:
                    return fetched
                await asyncio.sleep(max(backoff(attempt), self._retry_after(fetched)))
            attempt += 1

    async def _once(self, request: Request) -> Fetched:
        fetched = await self._fetch(request)
        if self._on_response is not None:
            self._on_response(fetched)
        return fetched

    def _retry_after(self, fetched: Fetched) -> float:
        wait = retry_after_seconds(fetched.headers.get("retry-after"), time.time()) or 0.0
        return min(wait, self._settings.max_crawl_delay)


def _reason(admission: Admission) -> str:
    drop = DROPPED_ROBOTS_UNREACHABLE if admission.retry_in is not None else admission.drop or ""
    reason = REFUSALS.get(drop, short(drop) or "refused")
    return f"{reason} ({admission.detail})" if admission.detail else reason


@contextlib.asynccontextmanager
async def standalone_fetcher(
    settings: Settings, named_hosts: Iterable[str], scope: tuple[str, ...] | None = None
) -> AsyncIterator[DirectFetcher]:
    """A `DirectFetcher` with its own network stack, robots.txt cache and politeness,
    outside any crawl (``crawl parse``, ``crawl shell``). ``named_hosts`` are exempt
    from the address guard, as a crawl's start hosts are. Requests that ask for it
    (or all, with the ``render`` setting) are rendered in a browser."""
    from ._fetcher import Fetcher, network_guard  # noqa: PLC0415  (httpx loads only when needed)
    from ._httpcache import open_http_cache  # noqa: PLC0415

    stats = Stats()
    cache = open_http_cache(settings, stats)
    fetcher = Fetcher(settings, guard=network_guard(settings, named_hosts))
    render: RenderStep | None = None
    try:
        paced: list[Fetch] = []

        async def network(request: Request) -> Fetched:  # what reaches the network waits for its host
            return await paced[0](request)

        fetch = fetcher.fetch if cache is None else cache.wrap(network)
        timeout = min(settings.timeout, ROBOTS_TIMEOUT)
        agent = settings.robots_user_agent or settings.user_agent
        robots = RobotsCache(network if cache is None else fetch, agent, timeout=timeout)
        politeness = Politeness(settings, MemoryFrontier(default_host_policy(settings)), robots, stats)
        paced.append(politeness.paced(fetcher.fetch))
        render = RenderStep(settings, stats, politeness, fetcher.fetch)
        page_fetch = render.hook(fetcher.fetch if cache is None else network, cache)
        yield DirectFetcher(settings, page_fetch, politeness, scope=scope)
    finally:
        if render is not None:
            await render.close()
        await fetcher.close()
