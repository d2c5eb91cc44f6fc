"""The brief's shape, on the path every crawl takes: httpx sends every request,
an aiolimiter limiter paces every host, and every page is parsed through
``loop.run_in_executor``. Counted by instrumenting the public classes of httpx,
aiolimiter and asyncio during a real crawl of a local site."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import aiolimiter
import httpx
import pytest

from crawler import Response, Spider
from crawler.sites.server import SiteServer

from .support.sites import html, robots

PAGES = 30


class LinkSpider(Spider):
    name = "shape"

    def parse(self, response: Response) -> Any:
        yield {"url": response.url}
        yield from response.follow_all("a")


def chain(pages: int) -> dict[str, Any]:
    routes = {"/robots.txt": robots("User-agent: *\nDisallow: /private/\n")}
    for i in range(pages):
        routes[f"/{i}.html"] = html(str(i), [f"/{i + 1}.html", f"/private/{i}.html"])
    routes["/"] = html("home", ["/0.html"])
    return routes


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts httpx.Request objects built, AsyncLimiter acquisitions and
    run_in_executor calls made in this process."""
    counts: Counter[str] = Counter()

    def counting(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return original(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(httpx.Request, "__init__", counting("httpx.Request", httpx.Request.__init__))
    monkeypatch.setattr(
        aiolimiter.AsyncLimiter, "acquire", counting("AsyncLimiter.acquire", aiolimiter.AsyncLimiter.acquire)
    )
    loop = asyncio.BaseEventLoop
    monkeypatch.setattr(loop, "run_in_executor", counting("run_in_executor", loop.run_in_executor))
    yield counts


def test_every_page_goes_through_httpx_aiolimiter_and_run_in_executor(
    serve: Callable[..., SiteServer], crawl_items: Callable[..., Any], counted: Counter[str]
) -> None:
    server = serve(chain(PAGES))
    items, stats = crawl_items(LinkSpider, [server.url + "/"], rate=500.0, parse_workers=1)
    pages = PAGES + 1  # the home page and the chain; the last link is a 404
    assert len(items) == pages
    fetched = [hit for hit in server.hits if hit.target != "/robots.txt"]
    assert not any(hit.target.startswith("/private/") for hit in server.hits)
    # robots.txt, every page and the 404 at the end of the chain: each one httpx.Request
    # on the wire, each one start inside its host's AsyncLimiter.
    assert counted["httpx.Request"] == len(server.hits) == len(fetched) + 1
    assert counted["AsyncLimiter.acquire"] == len(server.hits)
    # Every response reached a callback through the executor (the 404 is not parsed).
    assert counted["run_in_executor"] >= pages
    assert stats.pages == len(fetched)
