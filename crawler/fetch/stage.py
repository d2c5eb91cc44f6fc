"""The fetch stage: takes one request the frontier handed out to a page for the
parse stage, or to what comes instead (a redirect queued, a retry scheduled, a
drop or a failure counted).

A request goes: politeness admission (robots.txt, page cap, given-up hosts) -> its
host's slot in the limiter -> the fetcher (behind the HTTP cache and the renderer,
when on) -> counted -> `next_hop` (the rule single fetches and robots.txt follow
too): a redirect becomes a new request in the frontier, a 408/429/5xx a retry; what
is left is a page, if the spider handles its status. The stage owns its `Network`
(fetcher, HTTP cache, robots.txt cache, politeness, renderer) from its creation to
`close`; the engine owns dispatch, storing, acknowledging and shutdown.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from .._counters import (
    BYTES,
    DROPPED_DUPLICATE,
    DROPPED_HTTP_STATUS,
    PAGES,
    RESPONSES,
    RETRIES,
    SINGLE_FETCHES,
    STATUS,
    short,
)
from .._errors import FetchError, HostDeferred
from .._request import Request
from .._settings import Settings
from .._stats import Stats
from .._urls import host_key
from ..frontier import Frontier
from .network import Network
from .politeness import Admission
from .rules import DONE, Follow, Hop, HopRules, Refused, Retry, next_hop, retry_after_error
from .single import SingleFetcher, url_vetting

if TYPE_CHECKING:  # at run time it loads after the parse workers are forked
    from .client import Fetched

log = logging.getLogger("crawler.engine")

Page = tuple[Request, "Fetched"]


class FetchStage:
    """The fetch stage of one crawl, through ``network``. Every redirect must stay in
    ``scope``; a page whose status is neither 2xx nor in ``handled_statuses`` is
    dropped; ``on_start`` hears of each request sent (the host's next start may be
    due before its answer)."""

    def __init__(
        self,
        network: Network,
        settings: Settings,
        stats: Stats,
        frontier: Frontier,
        *,
        scope: tuple[str, ...],
        handled_statuses: Collection[int],
        on_start: Callable[[], None],
    ) -> None:
        self._network = network
        self._fetch = network.fetch
        self._politeness = network.politeness
        self._settings = settings
        self._hops = HopRules(
            settings.max_redirects, settings.retries, vet=url_vetting(settings), scope=scope
        )
        self._stats = stats
        self._frontier = frontier
        self._scope = scope
        self._handled = handled_statuses
        self._on_start = on_start
        self._reported: set[tuple[str, str]] = set()  # (failure kind, host) already warned of

    def check(self) -> None:
        """Raise `BrowserUnavailable` now if the crawl renders every page and no
        browser is there: one clear error before the crawl starts."""
        self._network.check()

    def single_fetches(self) -> SingleFetcher:
        """``Spider.fetch`` for ``async def`` callbacks, through this crawl's gates."""
        return SingleFetcher(
            self._settings, self._fetch, self._politeness, scope=self._scope, on_response=self._count_single
        )

    async def close(self) -> None:
        await self._network.close()

    def unrefused(self, requests: list[Request]) -> list[Request]:
        """``requests`` without those the known politeness rules refuse (robots.txt,
        page cap, a given-up host): they never take a place in the queue."""
        kept = []
        for request in requests:
            if (drop := self._politeness.refusal(request)) is None:
                kept.append(request)
            else:
                self._stats.inc(drop)
        return kept

    async def fetch(self, request: Request) -> Page | None:
        """Fetch ``request``: its page, or ``None`` when what follows is settled here
        (with the frontier: requeued, retried, dropped or failed)."""
        try:
            return await self._admit_and_fetch(request)
        except HostDeferred as deferred:  # nothing was attempted: back soon, no retry counted
            await self._frontier.retry(request, deferred.retry_in * random.uniform(0.5, 1.5))
            return None

    def _count_single(self, fetched: Fetched) -> None:
        self._stats.inc(SINGLE_FETCHES)
        self._count_response(fetched)

    async def _admission(self, request: Request) -> Admission:
        admission = await self._politeness.admit(request)
        if admission.allowed and not self._politeness.can_start(request):
            admission = Admission(False, retry_in=0.0)  # its robots.txt took the start: no waiting here
        return admission

    async def _admit_and_fetch(self, request: Request) -> Page | None:
        if (drop := self._politeness.refusal(request)) is not None:  # known rules: no place needed
            await self._not_admitted(request, Admission(False, drop=drop))
            return None
        try:
            admission, fetched, latency = await self._admitted_fetch(request)
        except FetchError as exc:
            await self._frontier.fetched(request)
            await self._politeness.failed(request, exc)
            await self._retry_or_give_up(request, exc)
            return None
        if fetched is None:
            await self._not_admitted(request, admission)
            return None
        return await self._answered(request, fetched, latency)

    async def _admitted_fetch(self, request: Request) -> tuple[Admission, Fetched | None, float]:
        """Admission (robots.txt, Crawl-delay) and, if admitted, the fetch, with its
        latency. A host that never answered: inside its first-contact place, or
        HostDeferred at once, before its robots.txt or the request takes its start."""
        holding = False
        try:
            with self._network.first_contact(request):
                holding = True
                admission = await self._admission(request)
                if not admission.allowed:
                    return admission, None, 0.0
                started = time.monotonic()
                async with self._politeness.slot(request):
                    self._on_start()
                    fetched = await self._fetch(request)
                return admission, fetched, time.monotonic() - started
        except HostDeferred:
            await self._frontier.fetched(request, sent=holding)  # deferred at once: the start goes back
            raise

    async def _answered(self, request: Request, fetched: Fetched, latency: float) -> Page | None:
        await self._frontier.fetched(request)
        self._count_response(fetched)
        if log.isEnabledFor(logging.DEBUG):
            referer = request.headers.get("Referer")
            status, method = fetched.status, request.method
            log.debug("Crawled (%d) <%s %s> (referer: %s)", status, method, request.url, referer)
        await self._politeness.answered(request, fetched, latency)
        hop = next_hop(request, fetched, self._hops)
        if hop is DONE:
            return await self._accept_page(request, fetched)
        await self._take_hop(request, hop)
        return None

    async def _not_admitted(self, request: Request, admission: Admission) -> None:
        await self._frontier.fetched(request, sent=False)  # its host's slot and start back
        if admission.retry_in is not None:  # no attempt was made: the retry count stays
            await self._frontier.retry(request, admission.retry_in)
            return
        if (error := admission.error) is not None:
            await self._give_up(request, error.counter, str(error))
            return
        assert admission.drop is not None  # not allowed, not later, no error: a drop, named
        self._stats.inc(admission.drop)
        log.debug("Dropped <%s %s> (%s)", request.method, request.url, short(admission.drop))
        await self._frontier.done(request)

    def _count_response(self, fetched: Fetched) -> None:
        self._stats.inc(RESPONSES)
        self._stats.inc(f"{STATUS}{fetched.status}")
        self._stats.inc(BYTES, len(fetched.body))

    async def _take_hop(self, request: Request, hop: Hop) -> None:
        """A redirect goes to the frontier as a new request, a retry back to it."""
        if isinstance(hop, Retry):
            await self._retry(hop)
            return
        if isinstance(hop, Follow):
            queued = await self._frontier.add([hop.request])
            self._stats.inc(DROPPED_DUPLICATE, 1 - queued)
        elif isinstance(hop, Refused):
            self._stats.inc(hop.verdict)
            log.debug(
                "Dropped redirect of <%s %s> to %s (%s)",
                request.method, request.url, hop.url, short(hop.verdict),
            )  # fmt: skip
        await self._frontier.done(request)

    async def _retry_or_give_up(self, request: Request, error: FetchError) -> None:
        retry = retry_after_error(request, error, self._hops)
        if retry is None:
            await self._give_up(request, error.counter, str(error))
        else:
            await self._retry(retry)

    async def _retry(self, retry: Retry) -> None:
        self._stats.inc(RETRIES)
        log.debug("retrying %s in %.1fs: %s", retry.request.url, retry.delay, retry.reason)
        await self._frontier.retry(retry.request, retry.delay)

    async def _give_up(self, request: Request, counter: str, reason: str) -> None:
        self._stats.inc(counter)
        self._report_failure(request, counter, reason)
        await self._frontier.done(request)

    def _report_failure(self, request: Request, kind: str, reason: str) -> None:
        """A warning for the first failure of each kind on each host (a certificate
        error is reported once per host, not once per page); DEBUG after that."""
        first = (kind, host_key(request.url)) not in self._reported
        self._reported.add((kind, host_key(request.url)))
        level = logging.WARNING if first else logging.DEBUG
        log.log(level, "failed %s after %d attempts: %s", request.url, request.retries + 1, reason)

    async def _accept_page(self, request: Request, fetched: Fetched) -> Page | None:
        self._stats.inc(PAGES)
        self._politeness.page_fetched(request)
        self._stats.max_depth = max(self._stats.max_depth, request.depth)
        if not (200 <= fetched.status < 300 or fetched.status in self._handled):
            self._stats.inc(DROPPED_HTTP_STATUS)
            log.debug("Dropped <%d %s> (http_status: not handled by the spider)", fetched.status, request.url)
            await self._frontier.done(request)
            return None
        return request, fetched
