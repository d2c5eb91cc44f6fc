"""The browser behind `_render`: Playwright driving a Chromium the user has.

One Chromium per crawl, started on the first render, with one browser context
(cookies carry from page to page, as for a visitor) and at most ``browser_pages``
pages at a time, reused from render to render.

Every request a page makes is intercepted (``BrowserContext.route``) and
fulfilled here, by the crawl's own fetcher, so the browser never opens a
connection itself:

- the main document is served from the response the crawl fetched already;
- anything but http(s), a resource type not in ``render_resources`` (fonts, media
  and images by default), or a request past the page's byte budget (``max_size``
  for all of a page's requests together) is aborted;
- the rest (scripts, XHR and fetch calls, stylesheets, iframes, later navigations)
  goes through the fetcher: the address guard (a page cannot reach an internal
  address the user did not name), the size cap, the deadline; redirects are
  followed here, hop by hop, each hop checked again (Chromium does not intercept
  the target of a fulfilled redirect); and the crawl's politeness: each request
  waits for its host's interval (``rate``, Crawl-delay) like a single fetch, one
  at a time per host and page (a page holds one of its host's concurrency slots),
  and its answer feeds the adaptive throttle; a Retry-After pauses the host for the
  frontier and for every page's later requests to it.

WebSockets are refused and service workers blocked (Playwright cannot intercept
what they fetch). As a backstop, the browser resolves no host name at all
(``--host-resolver-rules``), so anything that escaped interception fails.

A browser that dies (or a page that crashes) is restarted and the render tried
again, up to ``CRASH_RETRIES`` times; ``render/crashes`` counts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    WebSocketRoute,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from .._counters import (
    DROPPED_REDIRECT_LOOP,
    DROPPED_REDIRECT_TOO_MANY,
    RENDER_BLOCKED_REQUESTS,
    RENDER_CRASHES,
    RENDER_MS,
    RENDER_PAGES,
    RENDER_REQUESTS,
    RENDER_RETRIES,
)
from .._errors import BlockedAddress, BrowserUnavailable, FetchError, FetchTimeout, ResponseTooLarge
from .._request import Request, Wait, parse_wait
from .._urls import canonicalize, host_key, vet_url
from .client import Fetched
from .render import INSTALL_HINT, Fetch
from .rules import Follow, HopRules, Refused, next_hop

if TYPE_CHECKING:
    from playwright.async_api import Request as BrowserRequest

    from .._settings import Settings
    from .._stats import Stats
    from .politeness import Politeness

log = logging.getLogger("crawler.render")

CRASH_RETRIES = 2
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# Playwright's own downloads (`playwright install chromium`).
PLAYWRIGHT_CACHE = "~/.cache/ms-playwright/chromium-*/chrome-linux*/chrome"
CHROMIUM_FLAGS = (
    # Nothing of Chromium's own: no updates, sync, first-run or background fetches
    # (the machine may have no Internet, and a crawl should send only its own requests).
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--mute-audio",
    # Headless: no GPU to use; and containers often give /dev/shm 64 MB, too
    # little for Chromium's shared memory (pages crash), so it uses /tmp instead.
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Every request is fulfilled by the crawl's fetcher: the browser needs no DNS.
    # Whatever escapes interception (a preconnect, WebRTC) fails, IP literals too.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)
# Headers the fetcher sets itself, and ones that describe a body already decoded.
_OWN_HEADERS = frozenset({"user-agent", "accept-encoding", "host", "connection", "content-length"})
_STALE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection"})
_MS = 1000.0


def find_chromium(configured: str | None) -> str:
    """The Chromium to drive: ``configured`` (``browser_path``), else the first on
    PATH of `CHROMIUM_NAMES`, else one Playwright downloaded."""
    if configured:
        if not os.access(configured, os.X_OK):
            raise BrowserUnavailable(f"browser_path {configured!r} is not an executable file")
        return configured
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    cache = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    pattern = os.path.join(cache, "chromium-*/chrome-linux*/chrome") if cache else PLAYWRIGHT_CACHE
    downloaded = sorted(glob.glob(os.path.expanduser(pattern)))
    if downloaded:
        return downloaded[-1]
    raise BrowserUnavailable(
        "rendering pages needs Chromium and none was found: install it (Debian: apt-get install "
        f"chromium; or `playwright install chromium` after {INSTALL_HINT}), or set browser_path"
    )


def chromium_flags() -> list[str]:
    # Chromium refuses to run its sandbox as root (containers, CI).
    return [*CHROMIUM_FLAGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]


@dataclass
class _Job:
    """One render in progress on one page: what its requests are checked against."""

    request: Request
    main: Fetched
    document: Fetched
    budget: int
    main_served: bool = False
    crashed: bool = False
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, host: str) -> asyncio.Lock:
        return self.locks.setdefault(host, asyncio.Lock())


class Renderer:
    """Renders pages in a pool of ``settings.browser_pages`` browser pages; see the
    module docstring. ``start`` before use, ``close`` after."""

    def __init__(self, settings: Settings, stats: Stats, politeness: Politeness, network: Fetch) -> None:
        self._settings = settings
        self._stats = stats
        self._politeness = politeness
        self._network = network
        self._executable = find_chromium(settings.browser_path)
        self._allowed = frozenset(settings.render_resources)
        self._slots = asyncio.Semaphore(settings.browser_pages)
        self._idle: list[Page] = []
        self._jobs: dict[Page, _Job] = {}
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._generation = 0
        self._restarting = asyncio.Lock()
        self._paused_until: dict[str, float] = {}  # host: monotonic time (Retry-After)
        self._hops = HopRules(settings.max_redirects, retries=0, vet=partial(vet_url, limits=settings))

    async def start(self) -> None:
        try:
            self._playwright = await async_playwright().start()
            await self._launch()
        except PlaywrightError as exc:
            await self.close()
            message = f"cannot start Chromium ({self._executable}): {_first_line(exc)}"
            raise BrowserUnavailable(message) from None

    async def _launch(self) -> None:
        assert self._playwright is not None
        self._browser = await self._playwright.chromium.launch(
            executable_path=self._executable, args=chromium_flags(), headless=True
        )
        self._context = await self._browser.new_context(
            service_workers="block", user_agent=self._settings.user_agent
        )
        await self._context.route("**/*", self._on_request)
        await self._context.route_web_socket("**/*", self._refuse_websocket)
        self._idle = []
        pages = self._settings.browser_pages
        log.info("rendering with %s, up to %d pages at a time", self._executable, pages)

    async def close(self) -> None:
        with contextlib.suppress(PlaywrightError):
            if self._browser is not None:
                await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()
        self._browser = self._playwright = self._context = None

    async def render(self, request: Request, main: Fetched) -> Fetched:
        """The page of ``main`` (the response to ``request``) after it settled."""
        wait = parse_wait(request.wait_for if request.wait_for is not None else self._settings.wait_for)
        for attempt in range(CRASH_RETRIES + 1):
            try:
                return await self._render_once(request, main, wait)
            except _Crashed:
                if attempt == CRASH_RETRIES:
                    raise FetchError(f"the browser crashed {attempt + 1} times on this page") from None
                self._stats.inc(RENDER_RETRIES)
                log.warning("the browser crashed while rendering %s: rendering it again", request.url)
        raise AssertionError("unreachable")

    async def _render_once(self, request: Request, main: Fetched, wait: Wait) -> Fetched:
        """One attempt, timed from when a page is free (``render/ms``)."""
        async with self._slots:
            started = time.monotonic()
            page, generation = await self._page()
            job = _Job(request, main, main, budget=self._settings.max_size)
            self._jobs[page] = job
            try:
                body, url = await self._settle(page, request.url, wait)
            except PlaywrightError as exc:
                failure = self._failure(exc, wait, job, generation)
                await self._discard(page, generation, crashed=isinstance(failure, _Crashed))
                raise failure from None
            except FetchError:
                await self._recycle(page)
                raise
            finally:
                self._jobs.pop(page, None)
            await self._recycle(page)
            self._stats.inc(RENDER_PAGES)
            self._stats.inc(RENDER_MS, round((time.monotonic() - started) * _MS))
        return _rendered(job.document, url, body)

    async def _page(self) -> tuple[Page, int]:
        """An idle page, or a new one (the semaphore bounds how many exist)."""
        if self._idle:
            return self._idle.pop(), self._generation
        generation = self._generation
        try:
            assert self._context is not None
            page = await self._context.new_page()
        except PlaywrightError:
            await self._restart(generation)
            raise _Crashed() from None
        page.on("crash", self._mark_crashed)
        return page, generation

    def _mark_crashed(self, page: Page) -> None:
        job = self._jobs.get(page)
        if job is not None:
            job.crashed = True

    async def _settle(self, page: Page, url: str, wait: Wait) -> tuple[bytes, str]:
        """Load ``url`` and wait as ``wait`` says, within the crawl's ``timeout``;
        the DOM (UTF-8) and the page's URL after it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.timeout
        await page.goto(url, wait_until=wait.event, timeout=self._settings.timeout * _MS)  # type: ignore[arg-type]
        if wait.selector is not None:
            left = max(deadline - loop.time(), 0.001)
            await page.wait_for_selector(wait.selector, state="attached", timeout=left * _MS)
        if wait.seconds:
            await asyncio.sleep(min(wait.seconds, max(deadline - loop.time(), 0.0)))
        body = (await page.content()).encode("utf-8", "replace")  # a lone surrogate becomes "?"
        if len(body) > self._settings.max_size:
            raise ResponseTooLarge(f"rendered page exceeds the {self._settings.max_size}-byte cap")
        return body, page.url.partition("#")[0]

    def _failure(self, exc: PlaywrightError, wait: Wait, job: _Job, generation: int) -> Exception:
        """What a Playwright error during a render means: a crash (of the page, of
        the browser, or a browser restarted meanwhile), a page that did not settle
        in time, or another failure of the page."""
        browser = self._browser
        dead = browser is None or not browser.is_connected() or generation != self._generation
        if job.crashed or dead:
            return _Crashed()
        if isinstance(exc, PlaywrightTimeout):
            what = wait.selector or wait.event
            return FetchTimeout(f"the page did not settle ({what}) within {self._settings.timeout:g}s")
        return FetchError(f"browser: {_first_line(exc)}")

    async def _discard(self, page: Page, generation: int, *, crashed: bool) -> None:
        """A page whose render failed is closed; after a crash, a dead browser is
        started again."""
        with contextlib.suppress(PlaywrightError):
            await page.close()
        if crashed:
            await self._restart(generation)

    async def _recycle(self, page: Page) -> None:
        """Back to the idle pages, on about:blank so its scripts stop; requests it
        still makes find no job and are aborted."""
        try:
            await page.goto("about:blank")
        except PlaywrightError:
            with contextlib.suppress(PlaywrightError):
                await page.close()
            return
        self._idle.append(page)

    async def _restart(self, generation: int) -> None:
        """Count a crash, and start a new browser if the browser of ``generation`` is
        dead: several renders see the death of one browser, one of them restarts it."""
        async with self._restarting:
            if generation != self._generation:
                return
            self._stats.inc(RENDER_CRASHES)
            if self._browser is not None and self._browser.is_connected():
                return  # only a page crashed: it is closed already
            self._generation += 1
            log.warning("the browser died: starting a new one")
            with contextlib.suppress(PlaywrightError):
                assert self._browser is not None
                await self._browser.close()
            try:
                await self._launch()
            except PlaywrightError as exc:
                raise BrowserUnavailable(f"cannot restart Chromium: {_first_line(exc)}") from None

    async def _refuse_websocket(self, websocket: WebSocketRoute) -> None:
        self._stats.inc(RENDER_BLOCKED_REQUESTS)
        log.debug("render: refused WebSocket %s", websocket.url)
        await websocket.close(code=1008, reason="WebSockets are not fetched by the crawler")

    async def _on_request(self, route: Route) -> None:
        """Every request of every page: served, fetched by the crawl, or aborted."""
        outgoing = route.request
        job = self._job_of(outgoing)
        try:
            if job is None:
                await route.abort("aborted")
            elif not job.main_served and outgoing.is_navigation_request():
                job.main_served = True
                await _fulfil(route, job.main)
            else:
                await self._fetch_for(job, route)
        except PlaywrightError as exc:  # the page went away meanwhile
            log.debug("render: %s %s: %s", outgoing.method, outgoing.url, _first_line(exc))

    def _job_of(self, outgoing: BrowserRequest) -> _Job | None:
        try:
            return self._jobs.get(outgoing.frame.page)
        except PlaywrightError:
            return None

    async def _fetch_for(self, job: _Job, route: Route) -> None:
        outgoing = route.request
        refusal = self._refusal(job, outgoing)
        if refusal is not None:
            await self._block(route, refusal)
            return
        try:
            fetched = await self._fetch_following(job, _request_of(outgoing))
        except (BlockedAddress, ValueError) as exc:
            await self._block(route, str(exc))
            return
        except FetchError as exc:
            log.debug("render: %s failed: %s", outgoing.url, exc)
            await route.abort("timedout" if isinstance(exc, FetchTimeout) else "failed")
            return
        job.budget -= len(fetched.body)
        if outgoing.is_navigation_request() and outgoing.frame.parent_frame is None:
            job.document = fetched  # the script navigated the page: its status and headers
        await _fulfil(route, fetched)

    def _refusal(self, job: _Job, outgoing: BrowserRequest) -> str | None:
        if not outgoing.url.lower().startswith(("http://", "https://")):
            return "not http(s)"
        if outgoing.resource_type not in self._allowed:
            return f"resource type {outgoing.resource_type} is not in render_resources"
        if job.budget <= 0:
            return f"the page's requests passed the {self._settings.max_size}-byte cap"
        return None

    async def _block(self, route: Route, reason: str) -> None:
        self._stats.inc(RENDER_BLOCKED_REQUESTS)
        log.debug("render: blocked %s: %s", route.request.url, reason)
        await route.abort("blockedbyclient")

    async def _fetch_following(self, job: _Job, request: Request) -> Fetched:
        """Fetch ``request`` and its redirects by the crawl's rule (`next_hop`), every
        hop vetted and paced; the browser's own requests are not retried."""
        while True:
            fetched = await self._paced(job, request)
            hop = next_hop(request, fetched, self._hops)
            if isinstance(hop, Follow):
                request = hop.request
            elif isinstance(hop, Refused):
                tangled = hop.verdict in (DROPPED_REDIRECT_LOOP, DROPPED_REDIRECT_TOO_MANY)
                raise FetchError(hop.message) if tangled else BlockedAddress(hop.message)
            else:
                return fetched

    async def _paced(self, job: _Job, request: Request) -> Fetched:
        """One fetch under the host's politeness: one at a time per host and page,
        after the host's Retry-After pause, inside its limiter; its answer is learnt from."""
        host = host_key(request.url)
        async with job.lock(host):
            while (pause := self._paused_until.get(host, 0.0) - time.monotonic()) > 0:
                await asyncio.sleep(pause)  # a render that cannot wait that long times out
            started = time.monotonic()
            try:
                fetched = await self._politeness.paced(self._network)(request)
            except FetchError as exc:
                await self._politeness.failed(request, exc)
                raise
            self._stats.inc(RENDER_REQUESTS)
            await self._learn(host, request, fetched, time.monotonic() - started)
        return fetched

    async def _learn(self, host: str, request: Request, fetched: Fetched, latency: float) -> None:
        """Feed the throttle; a Retry-After pauses the host's frontier (in `answered`)
        and the browser's other requests to it (here)."""
        pause = await self._politeness.answered(request, fetched, latency)
        if pause:
            until = time.monotonic() + pause
            self._paused_until[host] = max(self._paused_until.get(host, 0.0), until)


class _Crashed(Exception):
    """The browser or the page died during a render: render it again."""


def _request_of(outgoing: BrowserRequest) -> Request:
    headers = {k: v for k, v in outgoing.headers.items() if k.lower() not in _OWN_HEADERS}
    body = outgoing.post_data_buffer or b""
    return Request(canonicalize(outgoing.url), method=outgoing.method, headers=headers, body=body)


async def _fulfil(route: Route, fetched: Fetched) -> None:
    """Answer the browser's request with ``fetched`` (its body is decoded already)."""
    headers = {k: v for k, v in fetched.headers.items() if k not in _STALE_HEADERS}
    await route.fulfill(status=fetched.status, headers=headers, body=fetched.body)


def _rendered(document: Fetched, url: str, body: bytes) -> Fetched:
    """The document's status and headers, the DOM as a UTF-8 HTML body."""
    headers = {k: v for k, v in document.headers.items() if k not in _STALE_HEADERS}
    headers["content-type"] = "text/html; charset=utf-8"
    return replace(document, url=url or document.url, headers=headers, body=body)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
