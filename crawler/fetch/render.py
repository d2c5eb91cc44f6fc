"""Rendering in a browser: the step that replaces the network fetch for requests
that ask for it (``Request(url, render=True)``, or the spider's ``render`` setting).

The step sits where the engine (and `SingleFetcher`) call their fetch function:
`RenderStep.hook` takes the crawl's fetch function and returns one with the same
signature. A request that does not render goes straight through. One that does:

1. its main document is fetched by the crawl's own fetch function, after the
   engine's robots.txt check, under the host's politeness, through the address
   guard and the size cap, exactly as a plain fetch;
2. a redirect, an error status or a body that is not HTML is returned as it is
   (the engine follows redirects hop by hop, retries errors, and a sitemap or an
   API answer has nothing to render);
3. an HTML page is loaded into a browser page from that response, and every other
   request the page makes is fulfilled by the crawl's fetcher too (`_browser`), so
   the browser itself never touches the network; the DOM, once the page settled
   (``wait_for``), is the body the callback parses.

With the HTTP cache on, rendered pages are stored as rendered (their own entries,
beside the plain ones) and replay without a browser.

This module loads no browser code: Playwright is imported by `_browser`, on the
first request to render, so crawls that never render never load it. Without it,
the first render request raises `BrowserUnavailable` (fatal to the crawl: it
cannot do what the spider asks), which says what to install.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._errors import BrowserUnavailable
from ..charset import is_html

if TYPE_CHECKING:
    from .._request import Request
    from .._settings import Settings
    from .._stats import Stats
    from .browser import Renderer
    from .cache import HttpCache
    from .client import Fetched
    from .politeness import Politeness

Fetch = Callable[["Request"], Awaitable["Fetched"]]

INSTALL_HINT = "pip install 'crawler[browser]'"
RENDERED = "rendered"  # the HTTP cache's name for rendered entries


def wants_render(request: Request, settings: Settings) -> bool:
    """Whether ``request`` is rendered: its own ``render``, else the spider's setting."""
    return settings.render if request.render is None else request.render


def renderable(fetched: Fetched) -> bool:
    """Whether a main document is worth a browser: a 2xx HTML page."""
    return 200 <= fetched.status < 300 and is_html(fetched.headers.get("content-type"), fetched.body)


class RenderStep:
    """Renders the requests that ask for it, in a browser started on first use.

    ``politeness`` paces the browser's own requests; ``network`` fetches them (the
    crawl's guarded fetcher, unpaced and uncached). Call ``close`` at the end."""

    def __init__(self, settings: Settings, stats: Stats, politeness: Politeness, network: Fetch) -> None:
        self._settings = settings
        self._stats = stats
        self._politeness = politeness
        self._network = network
        self._renderer: Renderer | None = None
        self._starting = asyncio.Lock()

    def hook(self, fetch: Fetch, cache: HttpCache | None = None) -> Fetch:
        """``fetch`` for requests that do not render, ``fetch`` then the browser for
        those that do; both behind ``cache`` when there is one."""
        rendered: Fetch = self._fetch_then_render(fetch)
        plain: Fetch = fetch
        if cache is not None:
            plain, rendered = cache.wrap(fetch), cache.wrap(rendered, variant=RENDERED)

        def page_fetch(request: Request) -> Awaitable[Fetched]:
            return rendered(request) if wants_render(request, self._settings) else plain(request)

        return page_fetch

    def _fetch_then_render(self, fetch: Fetch) -> Fetch:
        async def fetch_then_render(request: Request) -> Fetched:
            main = await fetch(request)
            if not renderable(main):
                return main
            renderer = await self._started()
            return await renderer.render(request, main)

        return fetch_then_render

    def check(self) -> None:
        """Raise `BrowserUnavailable` now if a render would: for crawls that render
        every page, so a missing browser is reported before the crawl starts."""
        _browser_module().find_chromium(self._settings.browser_path)

    async def _started(self) -> Renderer:
        async with self._starting:
            if self._renderer is None:
                renderer = _browser_module().Renderer(
                    self._settings, self._stats, self._politeness, self._network
                )
                await renderer.start()
                self._renderer = renderer
        return self._renderer

    async def close(self) -> None:
        if self._renderer is not None:
            await self._renderer.close()
            self._renderer = None


def _browser_module() -> Any:
    try:
        from . import browser as _browser  # noqa: PLC0415  (Playwright loads only for a render)
    except ImportError as exc:
        missing = exc.name or "playwright"
        raise BrowserUnavailable(
            f"rendering pages needs Playwright ({missing} is not installed): {INSTALL_HINT}"
        ) from None
    return _browser
