"""Single fetches outside the frontier, checked as the crawl checks its own.

``Spider.fetch`` (an ``async def`` callback awaiting an extra request), ``crawl
parse`` and ``crawl shell`` fetch one request to the end and get a `Response`
back. The request goes through the same gates as a crawled one: its URL is
canonicalised and vetted, every hop must be in scope and allowed by robots.txt
(and the per-host page cap and the circuit breaker), redirects are followed hop
by hop with credentials dropped across origins, transient errors and 408/429/5xx
answers are retried with backoff: all by the crawl's rule (`next_hop`), except that
a Retry-After is honoured only up to ``max_crawl_delay``, since a caller awaits the
answer. The address guard sits in the fetcher itself.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from .._counters import (
    DROPPED_HOST_FAILING,
    DROPPED_HOST_PAGE_LIMIT,
    DROPPED_ROBOTS,
    DROPPED_ROBOTS_UNREACHABLE,
    short,
)
from .._errors import HostDeferred, RequestRefused, TransientFetchError
from .._request import Request
from .._response import Response
from .._settings import Settings
from .._stats import Stats
from .._urls import vet_url
from ..frontier import MemoryFrontier
from .network import Network
from .politeness import Admission, Politeness, default_host_policy
from .rules import Done, Follow, HopRules, Refused, Retry, Vet, next_hop, retry_after_error

if TYPE_CHECKING:
    from .client import Fetched

Fetch = Callable[[Request], Awaitable["Fetched"]]

REFUSALS: Mapping[str, str] = {
    DROPPED_ROBOTS: "robots.txt disallows it",
    DROPPED_ROBOTS_UNREACHABLE: "its robots.txt cannot be fetched",
    DROPPED_HOST_FAILING: "its host keeps failing",
    DROPPED_HOST_PAGE_LIMIT: "its host reached max_pages_per_host",
}


class SingleFetcher:
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
        self._on_response = on_response
        self._hops = HopRules(
            settings.max_redirects,
            settings.retries,
            vet=url_vetting(settings),
            scope=scope,
            max_retry_wait=settings.max_crawl_delay,  # a caller awaits it: no longer
        )

    async def fetch(self, target: str | Request, **fields: Any) -> Response:
        """Fetch ``target`` (an absolute URL, or a `Request`; ``fields`` set other
        `Request` fields such as ``headers`` or ``method``) and follow its redirects."""
        request = replace(target, **fields) if isinstance(target, Request) else Request(target, **fields)
        request = replace(request, url=self._vetted(request.url))
        while True:
            step = await self._step(request)
            if isinstance(step, Response):
                return step
            if isinstance(step, Retry):
                await asyncio.sleep(step.delay)
            request = step.request

    def _vetted(self, url: str) -> str:
        verdict, canonical = self._hops.refusal(url)
        if verdict is not None:
            raise RequestRefused(self._hops.describe(verdict, canonical))
        return canonical

    async def _step(self, request: Request) -> Response | Follow | Retry:
        """One attempt at ``request``: its response, or the next hop (`next_hop`, the
        crawl's rule); a redirect that the rule refuses raises `RequestRefused`."""
        try:
            fetched = await self._admitted_fetch(request)
        except TransientFetchError as exc:
            if (retry := retry_after_error(request, exc, self._hops)) is None:
                raise
            return retry
        hop = next_hop(request, fetched, self._hops)
        if isinstance(hop, Refused):
            raise RequestRefused(hop.message)
        if isinstance(hop, Done):
            return Response(fetched.url, fetched.status, fetched.headers, fetched.body, request)
        return hop

    async def _admitted_fetch(self, request: Request) -> Fetched:
        """Admission, then one fetch; a single fetch holds no worker slot, so it waits
        out `HostDeferred` (too many attempts on hosts that never answered)."""
        while True:
            try:
                await self._admit(request)
                return await self._once(request)
            except HostDeferred as deferred:
                await asyncio.sleep(deferred.retry_in * random.uniform(0.5, 1.5))

    async def _admit(self, request: Request) -> None:
        admission = await self._politeness.admit(request)
        if admission.error is not None:
            raise type(admission.error)(f"{request.url} refused: {admission.error}")
        if not admission.allowed:
            raise RequestRefused(f"{request.url} refused: {_reason(admission)}")

    async def _once(self, request: Request) -> Fetched:
        fetched = await self._fetch(request)
        if self._on_response is not None:
            self._on_response(fetched)
        return fetched


def url_vetting(settings: Settings) -> Vet:
    """How a URL outside the crawl's links is vetted: canonical, followable, not too long."""
    return partial(vet_url, limits=settings)


def _reason(admission: Admission) -> str:
    drop = DROPPED_ROBOTS_UNREACHABLE if admission.retry_in is not None else admission.drop or ""
    reason = REFUSALS.get(drop, short(drop) or "refused")
    return f"{reason} ({admission.detail})" if admission.detail else reason


@contextlib.asynccontextmanager
async def single_fetcher(
    settings: Settings, named_hosts: Iterable[str], scope: tuple[str, ...] | None = None
) -> AsyncIterator[SingleFetcher]:
    """A `SingleFetcher` with its own network stack, robots.txt cache and politeness,
    outside any crawl (``crawl parse``, ``crawl shell``). ``named_hosts`` are exempt
    from the address guard, as a crawl's start hosts are. Requests that ask for it
    (or all, with the ``render`` setting) are rendered in a browser."""
    network = Network(settings, Stats(), MemoryFrontier(default_host_policy(settings)), named_hosts)
    try:
        yield SingleFetcher(settings, network.fetch, network.politeness, scope=scope)
    finally:
        await network.close()
