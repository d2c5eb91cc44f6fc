"""``Spider.fetch``: an ``async def`` callback awaiting an extra request, in real crawls
of local servers; and the `SingleFetcher` rules behind it (also used by ``crawl parse``
and ``crawl shell``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import crawler
from crawler import FetchError, RequestRefused, Response, Spider
from crawler._settings import Settings
from crawler.fetch.single import single_fetcher
from crawler.sites.server import Hit, Page
from crawler.testing import fake_response, run_callback

from ..support.sites import TEXT, endless_redirects, html, moved, robots
from ..support.timing import spaced

JSON = (("Content-Type", "application/json"),)


class StockSpider(Spider):
    """Product pages need their stock level from a JSON endpoint."""

    name = "stock"

    async def parse(self, response: Response) -> Any:
        for link in response.css_nodes("a.product"):
            yield response.follow(link, callback=self.parse_product)

    async def parse_product(self, response: Response) -> dict[str, Any]:
        sku = response.css_first("span.sku").text()
        api = await self.fetch(response.urljoin(f"/api/{sku}.json"))
        try:
            secret = (await self.fetch(response.urljoin("/private/stock"))).status
        except FetchError as exc:
            secret = type(exc).__name__
        return {"sku": sku, "stock": api.json()["stock"], "status": api.status, "private": secret}


def shop(products: int) -> dict[str, Page]:
    links = "".join(f'<a class="product" href="/p/{i}">{i}</a>' for i in range(products))
    routes = {
        "/": Page(f"<html><body>{links}</body></html>".encode()),
        "/robots.txt": robots("User-agent: *\nDisallow: /private/\n"),
        "/private/stock": Page(b"{}", headers=JSON),
    }
    for i in range(products):
        routes[f"/p/{i}"] = Page(f'<html><body><span class="sku">S{i}</span></body></html>'.encode())
        routes[f"/api/S{i}.json"] = Page(b'{"stock": %d}' % (i * 10), headers=JSON)
    return routes


def test_an_async_callback_awaits_an_extra_request_through_the_crawls_gates(serve, crawl_items):
    server = serve(shop(3))
    items, stats = crawl_items(StockSpider, [server.url + "/"], parse_workers=1)
    assert sorted(items, key=lambda item: item["sku"]) == [
        {"sku": f"S{i}", "stock": i * 10, "status": 200, "private": "RequestRefused"} for i in range(3)
    ]
    assert not server.hits_for("/private/stock")  # robots.txt holds for single fetches too
    assert [len(server.hits_for(f"/api/S{i}.json")) for i in range(3)] == [1, 1, 1]
    assert stats["single_fetches"] == 3
    assert stats["responses"] == 1 + 3 + 3  # home, products and API calls alike


def test_single_fetches_count_against_the_hosts_rate(serve, crawl_items):
    server = serve(shop(3))
    crawl_items(StockSpider, [server.url + "/"], rate=10.0, obey_robots=False)
    starts = sorted(hit.time for hit in server.hits if hit.target != "/private/stock")
    assert len(starts) == 7 and spaced(starts, 0.1)


def test_a_single_fetch_off_site_is_refused(serve, crawl_items):
    other = serve({"/x.json": Page(b"{}", headers=JSON)})
    server = serve({"/": html("home"), "/robots.txt": robots("")})

    class Offsite(Spider):
        target = ""

        async def parse(self, response: Response) -> dict[str, Any]:
            try:
                await self.fetch(self.target)
            except RequestRefused as exc:
                return {"refused": str(exc)}
            return {"refused": None}

    localhost = other.url.replace("127.0.0.1", "localhost") + "/x.json"
    items, _ = crawl_items(Offsite, [server.url + "/"], spider_args={"target": localhost})
    assert "off-site" in items[0]["refused"]
    assert not other.hits


def _settings(**overrides: Any) -> Settings:
    return Settings(**{"allow_private": True, "obey_robots": False, **overrides})


def fetch_one(settings: Settings, url: str, **fields: Any) -> Response:
    async def go() -> Response:
        async with single_fetcher(settings, ["127.0.0.1"]) as direct:
            return await direct.fetch(url, **fields)

    return asyncio.run(go())


def test_redirects_are_followed_and_credentials_stay_on_their_origin(serve):
    target = serve({"/end": Page(b"done", headers=TEXT)})
    server = serve(
        {
            "/a": Page(b"", 301, (("Location", "/b"),)),
            "/b": Page(b"", 302, (("Location", target.url.replace("127.0.0.1", "localhost") + "/end"),)),
        }
    )
    response = fetch_one(_settings(), server.url + "/a", headers={"Authorization": "secret"})
    assert response.status == 200 and response.body == b"done"
    assert response.redirect_urls == (server.url + "/a", server.url + "/b")
    assert server.hits_for("/b")[0].headers.get("authorization") == "secret"
    assert "authorization" not in target.hits[0].headers


def test_too_many_redirects_are_refused(serve):
    server = serve(handler=endless_redirects)
    with pytest.raises(RequestRefused, match="more than 3 redirects"):
        fetch_one(_settings(max_redirects=3), server.url + "/chain/0")
    assert [hit.target for hit in server.hits] == [f"/chain/{i}" for i in range(4)]


def test_a_redirect_loop_is_refused_at_once(serve):
    """The crawl's loop check holds for single fetches: no lap of the loop is
    fetched twice, however many redirects ``max_redirects`` would allow."""
    server = serve({"/a": moved("/b"), "/b": moved("/a")})
    with pytest.raises(RequestRefused, match="redirect loop"):
        fetch_one(_settings(max_redirects=20), server.url + "/a")
    assert [hit.target for hit in server.hits] == ["/a", "/b"]


def test_retry_after_is_honoured_up_to_max_crawl_delay(serve):
    """A caller awaits a single fetch: an hour's Retry-After waits ``max_crawl_delay``."""
    answers = iter([Page(b"busy", 503, (("Retry-After", "3600"),)), Page(b"ok", headers=TEXT)])
    server = serve(handler=lambda hit: next(answers))
    assert fetch_one(_settings(max_crawl_delay=0.5), server.url + "/x").body == b"ok"
    first, second = server.hits
    assert 0.5 <= second.time - first.time < 60


def test_server_errors_are_retried_then_returned_as_responses(serve):
    answers = iter([Page(b"busy", 503, (("Retry-After", "0"),)), Page(b"ok", headers=TEXT)])
    server = serve(handler=lambda hit: next(answers))
    assert fetch_one(_settings(), server.url + "/x").body == b"ok"
    failing = serve(handler=lambda hit: Page(b"broken", 500, TEXT))
    response = fetch_one(_settings(retries=1), failing.url + "/x")
    assert response.status == 500 and len(failing.hits) == 2


def test_robots_txt_refuses_and_bad_urls_are_refused(serve):
    server = serve({"/robots.txt": robots("User-agent: *\nDisallow: /no\n"), "/no": html("no")})
    with pytest.raises(RequestRefused, match=r"robots\.txt disallows it"):
        fetch_one(_settings(obey_robots=True), server.url + "/no")
    with pytest.raises(RequestRefused, match="unsupported scheme"):
        fetch_one(_settings(), "ftp://127.0.0.1/file")
    assert not server.hits_for("/no")


def test_a_private_address_nobody_named_is_blocked(serve):
    server = serve({"/": html("home")})
    with pytest.raises(crawler.FetchError, match="not a public address"):
        fetch_one(Settings(obey_robots=False), server.url.replace("127.0.0.1", "localhost") + "/")


def test_fetch_outside_a_crawl_says_where_it_works():
    with pytest.raises(RuntimeError, match="only inside an async def callback"):
        asyncio.run(StockSpider().fetch("http://example.com/"))


def test_run_callback_answers_fetches_from_canned_responses():
    page = fake_response('<span class="sku">S7</span>', "http://shop.test/p/7", callback="parse_product")
    canned = {
        "http://shop.test/api/S7.json": fake_response('{"stock": 3}', "http://shop.test/api/S7.json"),
        "http://shop.test/private/stock": "{}",
    }
    out = run_callback(StockSpider(), page, fetched=canned, raise_errors=True)
    assert out.items == [{"sku": "S7", "stock": 3, "status": 200, "private": 200}]
    missing = run_callback(StockSpider(), page, fetched={})
    assert "no response for http://shop.test/api/S7.json" in missing.errors[0]


def test_method_body_and_query_reach_the_server(serve):
    seen: list[Hit] = []

    def handler(hit: Hit) -> Page:
        seen.append(hit)
        return Page(b"{}", headers=JSON)

    server = serve(handler=handler)
    assert fetch_one(_settings(), server.url + "/a?b=1", method="POST", body=b"x").status == 200
    assert [(hit.method, hit.target, hit.body) for hit in seen] == [("POST", "/a?b=1", b"x")]


def test_a_single_fetch_waits_out_hosts_that_never_answered():
    """A single fetch holds no worker slot: when attempts on hosts that never
    answered hold their share, it waits a moment and tries again, uncounted."""
    from crawler._errors import HostDeferred
    from crawler._stats import Stats
    from crawler.fetch.client import Fetched
    from crawler.fetch.politeness import Politeness, default_host_policy
    from crawler.fetch.robots import RobotsCache
    from crawler.fetch.single import SingleFetcher
    from crawler.frontier.memory import MemoryFrontier

    settings = _settings(retries=0)
    calls: list[str] = []

    async def fetch(request: crawler.Request) -> Fetched:
        calls.append(request.url)
        if len(calls) < 3:
            raise HostDeferred("busy", retry_in=0.01)
        return Fetched(request.url, 200, {}, b"ok")

    async def go() -> Response:
        robots = RobotsCache(fetch, settings.user_agent)
        politeness = Politeness(settings, MemoryFrontier(default_host_policy(settings)), robots, Stats())
        return await SingleFetcher(settings, fetch, politeness).fetch("http://shop.test/x")

    response = asyncio.run(go())
    assert (response.status, response.body) == (200, b"ok")
    assert calls == ["http://shop.test/x"] * 3
