"""The network one crawl (or one single-fetch session) fetches through, set up once.

The fetcher (address guard, transport), the HTTP cache, the robots.txt cache,
politeness and the renderer, wired the same way for the crawl's fetch stage and
for ``crawl parse`` and ``crawl shell``: what reaches the network waits for its
host's limiter (robots.txt too: it is a request to its host like any other), a
cache hit does not; requests that ask to be rendered go through a browser after
their fetch.

The fetcher, and with it httpx and aiohttp, loads only when a `Network` is made:
a crawl makes it after its parse workers are forked, so they do not carry the
network stack.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from .._request import Request
from .._settings import Settings
from .._stats import Stats
from ..frontier import Frontier, SharedStore
from .politeness import Politeness
from .render import RenderStep
from .robots import ROBOTS_TIMEOUT, RobotsCache

if TYPE_CHECKING:
    import httpx

    from .client import ClientFactory, Fetched


class Network:
    """``fetch`` fetches a page (behind the HTTP cache and the renderer, when on);
    ``politeness`` decides around it. ``named_hosts`` are exempt from the address
    guard; ``shared`` is where the nodes of a shared crawl share robots.txt."""

    def __init__(
        self,
        settings: Settings,
        stats: Stats,
        frontier: Frontier,
        named_hosts: Iterable[str],
        *,
        shared: SharedStore | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        client_factory: ClientFactory | None = None,
    ) -> None:
        from .cache import open_http_cache  # noqa: PLC0415
        from .client import Fetcher, network_guard  # noqa: PLC0415

        cache = open_http_cache(settings, stats)  # a bad cache directory stops here
        guard = network_guard(settings, named_hosts)
        self._fetcher = Fetcher(settings, transport, guard=guard, client_factory=client_factory)
        network = self._fetcher.fetch if cache is None else self._paced_fetch
        robots_fetch = self._paced_fetch if cache is None else cache.wrap(network)
        agent = settings.robots_user_agent or settings.user_agent
        timeout = min(settings.timeout, ROBOTS_TIMEOUT)
        robots = RobotsCache(robots_fetch, agent, timeout=timeout, shared=shared)
        self.politeness = Politeness(settings, frontier, robots, stats)
        self._paced = self.politeness.paced(self._fetcher.fetch)
        self._render = RenderStep(settings, stats, self.politeness, self._fetcher.fetch)
        self.fetch = self._render.hook(network, cache)
        # with the HTTP cache on, a hit never reaches the network: nothing to hold
        self.first_contact: Callable[[Request], AbstractContextManager[object]] = (
            self._fetcher.first_contact if cache is None else contextlib.nullcontext
        )
        self._settings = settings

    def check(self) -> None:
        """Raise `BrowserUnavailable` now if every page is to be rendered and no
        browser is there: one clear error before the first fetch."""
        if self._settings.render:
            self._render.check()

    async def close(self) -> None:
        try:
            await self._render.close()
        finally:
            await self._fetcher.close()

    async def _paced_fetch(self, request: Request) -> Fetched:
        """A fetch inside its host's limiter: with the HTTP cache on, what a miss does."""
        return await self._paced(request)
