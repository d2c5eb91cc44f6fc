"""End-to-end crawls of real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections import Counter
from typing import Any

import aiohttp.abc
import pytest

import crawler
from crawler import Request, Response, Spider
from crawler.fetch.addressguard import GuardedResolver
from crawler.sites.server import Hit, Page

from .support.sites import chain_site, html, robots
from .support.spiders import TitleSpider
from .support.timing import spaced

PAGES = 40


def tricky_links(base: str, i: int) -> list[str]:
    """Equivalent spellings of links to other pages, plus links that must never be fetched."""
    n = lambda k: (i + k) % PAGES  # noqa: E731
    host = base.removeprefix("http://")
    return [
        f"{n(1)}.html",
        f"./{n(2)}.html",
        f"../items/{n(3)}.html",
        f"{base}/items/{n(4)}.html",
        f"HTTP://{host.upper()}/items/{n(5)}.html",
        f"/items/{n(6)}.html#reviews",
        f"  /items/{n(7)}.html \n",
        f"/items/./x/../{n(8)}.html",
        f"/%69tems/{n(9)}.html",
        f"/items/\t{n(10)}.html",
        f"/items/{n(11)}.html?",
        "mailto:someone@example.com",
        "javascript:void(0)",
        "tel:+123",
        "data:text/html,<p>x</p>",
        f"/private/{i}.html",
        "http://offsite.invalid/page",
    ]


def tricky_site(base: str) -> dict[str, Page]:
    routes = {"/robots.txt": robots("User-agent: *\nDisallow: /private/\n")}
    routes["/"] = html("home", ["/items/0.html"])
    for i in range(PAGES):
        routes[f"/items/{i}.html"] = html(f"page {i}", tricky_links(base, i))
        routes[f"/private/{i}.html"] = html("secret")
    return routes


@pytest.mark.parametrize("parse_workers", [0, 2])
def test_tricky_links_fetch_every_page_once_and_nothing_disallowed(serve, crawl_items, parse_workers):
    server = serve()
    server.routes = tricky_site(server.url)
    items, stats = crawl_items(TitleSpider, [server.url + "/"], parse_workers=parse_workers)

    targets = Counter(hit.target for hit in server.hits)
    assert targets["/robots.txt"] == 1
    assert all(count == 1 for count in targets.values()), targets.most_common(3)
    assert set(targets) == {"/robots.txt", "/"} | {f"/items/{i}.html" for i in range(PAGES)}
    assert sorted(item["url"] for item in items) == sorted(
        [server.url + "/"] + [f"{server.url}/items/{i}.html" for i in range(PAGES)]
    )
    assert {item["title"] for item in items} == {"home"} | {f"page {i}" for i in range(PAGES)}
    assert stats.pages == PAGES + 1 and stats.items == PAGES + 1
    assert stats["dropped/robots"] == PAGES
    assert stats["dropped/offsite"] == PAGES
    assert stats["dropped/unsupported_scheme"] == 4 * PAGES
    assert stats.finish_reason == "finished"


def test_robots_can_be_ignored(serve, crawl_items):
    server = serve()
    server.routes = tricky_site(server.url)
    _, stats = crawl_items(TitleSpider, [server.url + "/"], obey_robots=False)
    assert not server.hits_for("/robots.txt")
    assert len([h for h in server.hits if h.target.startswith("/private/")]) == PAGES
    assert stats.pages == 2 * PAGES + 1


class RedirectSpider(Spider):
    def parse(self, response: Response) -> Any:
        yield {"url": response.url, "from": list(response.redirect_urls)}
        yield from response.follow_all("a")


def test_redirects_are_followed_and_checked_hop_by_hop(serve, crawl_items):
    server = serve()
    moved = lambda target, status=301: Page(status=status, headers=(("Location", target),))  # noqa: E731
    server.routes = {
        "/robots.txt": robots("User-agent: *\nDisallow: /private\n"),
        "/": html("home", ["/old", "/away", "/loop-a", "/to-private", "/see-other"]),
        "/old": moved("/older", 302),
        "/older": moved("/new", 307),
        "/new": html("new"),
        "/away": moved("http://offsite.invalid/"),
        "/loop-a": moved("/loop-b"),
        "/loop-b": moved("/loop-a"),
        "/to-private": moved("/private/x"),
        "/see-other": moved("/other", 303),
        "/other": html("other"),
    }
    items, stats = crawl_items(RedirectSpider, [server.url + "/"])
    by_url = {item["url"]: item["from"] for item in items}
    assert by_url[server.url + "/new"] == [server.url + "/old", server.url + "/older"]
    assert not server.hits_for("/private/x")
    assert by_url[server.url + "/other"] == [server.url + "/see-other"]
    assert len(server.hits_for("/new")) == 1
    assert len(server.hits_for("/loop-a")) == 1
    assert stats["dropped/redirect_offsite"] == 1
    assert stats["dropped/robots"] == 1
    assert stats["status/301"] >= 3


def flaky_handler(failures: int, status: int = 503):
    seen: Counter[str] = Counter()

    def handle(hit: Hit) -> Page | None:
        seen[hit.target] += 1
        if hit.target == "/robots.txt":
            return Page(status=404)
        if seen[hit.target] <= failures:
            return Page(b"busy", status=status)
        return html(f"ok {hit.target}")

    return handle


def test_transient_errors_are_retried_with_backoff(serve, crawl_items):
    server = serve(handler=flaky_handler(failures=2))
    items, stats = crawl_items(TitleSpider, [server.url + "/a"], retries=2)
    assert len(server.hits_for("/a")) == 3
    assert [item["title"] for item in items] == ["ok /a"]
    assert stats["retries"] == 2
    gaps = [b.time - a.time for a, b in zip(server.hits_for("/a"), server.hits_for("/a")[1:], strict=False)]
    assert all(gap >= 0.2 for gap in gaps), gaps


def test_retries_are_bounded(serve, crawl_items):
    server = serve(handler=flaky_handler(failures=100, status=500))
    items, stats = crawl_items(TitleSpider, [server.url + "/a"], retries=1)
    assert len(server.hits_for("/a")) == 2
    assert items == []
    assert stats["errors/http_500"] == 0 and stats["dropped/http_status"] == 1
    assert stats.finish_reason == "finished"


def test_unreachable_host_is_an_error_not_a_crash(crawl_items, unused_port):
    items, stats = crawl_items(
        TitleSpider, [f"http://127.0.0.1:{unused_port}/"], retries=1, obey_robots=False
    )
    assert items == []
    assert stats["errors/connection_error"] == 1
    assert stats["retries"] == 1


class FailingSpider(Spider):
    def parse(self, response: Response) -> Any:
        if response.url.endswith("/bad"):
            raise ValueError("broken page")
        yield {"url": response.url}
        yield from response.follow_all("a")


@pytest.mark.parametrize("parse_workers", [0, 1])
def test_callback_errors_are_counted_and_the_crawl_goes_on(serve, crawl_items, caplog, parse_workers):
    server = serve({"/": html("home", ["/bad", "/good"]), "/bad": html("bad"), "/good": html("good")})
    items, stats = crawl_items(
        FailingSpider, [server.url + "/"], obey_robots=False, parse_workers=parse_workers
    )
    assert sorted(i["url"] for i in items) == [server.url + "/", server.url + "/good"]
    assert stats["errors/callback"] == 1
    assert "broken page" in caplog.text and server.url + "/bad" in caplog.text


class UpperPipeline:
    opened = closed = False

    def open(self, spider: Spider) -> None:
        UpperPipeline.opened = True

    def process_item(self, item: dict[str, Any], spider: Spider) -> dict[str, Any]:
        return {**item, "title": item["title"].upper()}

    def close(self, spider: Spider) -> None:
        UpperPipeline.closed = True


class DropOddPipeline:
    async def process_item(self, item: dict[str, Any], spider: Spider) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        return None if item["url"].endswith(("1", "3")) else item


class PipelineSpider(TitleSpider):
    pipelines = [UpperPipeline, DropOddPipeline()]


def test_pipelines_change_and_drop_items(serve, crawl_items):
    server = serve({f"/{i}": html(f"page {i}", [f"/{i + 1}"]) for i in range(5)})
    items, stats = crawl_items(PipelineSpider, [server.url + "/0"], obey_robots=False, parse_workers=2)
    assert sorted(item["title"] for item in items) == ["PAGE 0", "PAGE 2", "PAGE 4"]
    assert stats.items == 3 and stats["dropped/pipeline"] == 2
    assert UpperPipeline.opened and UpperPipeline.closed


class AsyncSpider(Spider):
    async def parse(self, response: Response) -> Any:
        await asyncio.sleep(0.01)
        yield {"url": response.url, "title": response.css_first("title").text()}
        for request in response.follow_all("a", callback=self.parse_detail):
            yield request

    def parse_detail(self, response: Response) -> Any:
        return {"detail": response.css_first("title").text(), "depth": response.depth}


def test_async_and_named_callbacks(serve, crawl_items):
    server = serve({"/": html("home", ["/d1", "/d2"]), "/d1": html("one"), "/d2": html("two")})
    items, _ = crawl_items(AsyncSpider, [server.url + "/"], obey_robots=False, parse_workers=2)
    assert {"url": server.url + "/", "title": "home"} in items
    assert sorted(i["detail"] for i in items if "detail" in i) == ["one", "two"]
    assert {i["depth"] for i in items if "detail" in i} == {1}


def test_depth_and_max_pages_limits(serve, crawl_items):
    server = serve(chain_site(30))
    items, stats = crawl_items(TitleSpider, [server.url + "/0"], obey_robots=False, depth=3)
    assert [item["depth"] for item in items] == [0, 1, 2, 3]
    assert stats.max_depth == 3
    assert stats["dropped/depth_limited"] == 1

    items, stats = crawl_items(TitleSpider, [server.url + "/0"], obey_robots=False, max_pages=5)
    assert len(items) == 5 and stats.pages == 5
    assert stats.finish_reason == "max_pages"


def test_rate_spaces_requests_to_one_host(serve, crawl_items):
    server = serve(chain_site(6))
    crawl_items(TitleSpider, [server.url + "/0"], obey_robots=False, rate=10)
    times = [hit.time for hit in server.hits]
    assert len(times) == 6 and spaced(times, 0.1)


class FreezeCountSpider(Spider):
    """Yields how many objects the collector holds frozen while its page is parsed."""

    def parse(self, response: Response) -> Any:
        yield {"url": response.url, "frozen": gc.get_freeze_count(), "young": gc.get_threshold()[0]}


@pytest.mark.parametrize("parse_workers", [0, 1], ids=["main process", "parse worker"])
def test_the_collector_is_tuned_while_the_crawl_runs_and_as_it_was_after(serve, crawl_items, parse_workers):
    """Full collections would otherwise walk every module and stall the event loop
    between a host's start and its request reaching the wire."""
    server = serve({"/": html("home")})
    assert gc.get_freeze_count() == 0
    thresholds = gc.get_threshold()
    settings = {"obey_robots": False, "parse_workers": parse_workers}
    items, _ = crawl_items(FreezeCountSpider, [server.url + "/"], **settings)
    assert items[0]["frozen"] > 10_000  # the modules imported, at least
    assert items[0]["young"] >= 20_000  # young objects mostly die before a collection
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == thresholds


def test_a_process_that_froze_objects_itself_keeps_them_frozen(serve, crawl_items):
    server = serve({"/": html("home")})
    gc.freeze()  # as a pre-fork server does
    try:
        frozen = gc.get_freeze_count()
        crawl_items(FreezeCountSpider, [server.url + "/"], obey_robots=False)
        assert gc.get_freeze_count() > frozen // 2  # still frozen (a few freed by their refcount)
    finally:
        gc.unfreeze()


def test_a_slow_host_does_not_hold_up_a_fast_one(serve, crawl_items):
    slow = serve({f"/{i}": Page(b"<title>slow</title>", delay=0.4) for i in range(3)})
    fast = serve(chain_site(20))
    starts = [slow.url + f"/{i}" for i in range(3)] + [fast.url + "/0"]
    crawl_items(TitleSpider, starts, obey_robots=False, per_host=1, concurrency=4)
    fast_done = max(hit.time for hit in fast.hits)
    slow_done = max(hit.time for hit in slow.hits)
    assert len(fast.hits) == 20 and len(slow.hits) == 3
    assert fast_done < slow_done  # the fast chain of 20 finished while the slow host took 3 x 0.4 s


def test_crawl_streams_items_in_the_callers_loop(serve):
    server = serve(chain_site(10))

    async def consume(limit: int | None) -> list[Any]:
        items = []
        stream = crawler.crawl(
            TitleSpider, spider_args={"start_urls": [server.url + "/0"]}, obey_robots=False, parse_workers=0
        )
        async for item in stream:
            items.append(item)
            if limit and len(items) == limit:
                break
        return items

    assert len(asyncio.run(consume(None))) == 10
    assert len(asyncio.run(consume(3))) == 3


class StartRequestsSpider(Spider):
    def start_requests(self) -> Any:
        yield Request(self.base + "/a", meta={"tag": "x"}, callback="parse_tagged")
        yield "not a request"
        raise RuntimeError("start requests blew up")

    def parse_tagged(self, response: Response) -> Any:
        yield {"tag": response.meta["tag"]}


def test_start_request_errors_are_counted(serve, crawl_items):
    server = serve({"/a": html("a")})
    items, stats = crawl_items(StartRequestsSpider, [], obey_robots=False, spider_args={"base": server.url})
    assert items == [{"tag": "x"}]
    assert stats["errors/start_requests"] == 1


class UnencodablePipeline:
    def process_item(self, item: dict[str, Any], spider: Spider) -> dict[str, Any]:
        return {**item, "bad": object()} if item["url"].endswith("/1") else item


class UnencodableSpider(TitleSpider):
    pipelines = [UnencodablePipeline()]


def test_items_that_cannot_be_encoded_are_counted_not_fatal(serve, crawl_items):
    server = serve(chain_site(3))
    items, stats = crawl_items(UnencodableSpider, [server.url + "/0"], obey_robots=False)
    assert sorted(item["url"] for item in items) == [server.url + "/0", server.url + "/2"]
    assert stats["errors/item"] == 1 and stats.items == 2


def test_session_ids_can_be_stripped_so_a_page_is_fetched_once(serve, crawl_items):
    links = [f"/page?PHPSESSID={i}&id=7" for i in range(5)] + ["/page;jsessionid=XYZ?id=7"]
    server = serve({"/": html("home", links), "/page?id=7": html("the page")})
    items, _ = crawl_items(TitleSpider, [server.url + "/"], obey_robots=False, strip_session_ids=True)
    assert sorted(item["title"] for item in items) == ["home", "the page"]
    assert [hit.target for hit in server.hits].count("/page?id=7") == 1

    items, _ = crawl_items(TitleSpider, [server.url + "/"], obey_robots=False)
    assert len(items) == 1  # without stripping, every spelling is another (missing) page


class FakeDns(aiohttp.abc.AbstractResolver):
    """Names that resolve to 127.0.0.1, as a hostile DNS record (or rebinding) would."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[Any]:
        if not host.endswith("shop.test"):
            raise OSError(f"no such host {host}")
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
def fake_dns(monkeypatch):
    original = GuardedResolver.__init__

    def with_fake_dns(self: GuardedResolver, guard: Any, base: Any = None) -> None:
        original(self, guard, FakeDns())

    monkeypatch.setattr(GuardedResolver, "__init__", with_fake_dns)


@pytest.mark.parametrize("allow_private", [False, True])
def test_address_guard_refuses_private_addresses_of_hosts_nobody_named(
    serve, crawl_items, fake_dns, allow_private
):
    victim = serve({"/secret": html("internal admin")})
    shop = serve()
    shop.routes = {"/": html("shop", [f"http://evil.shop.test:{victim.port}/secret"])}
    start = f"http://shop.test:{shop.port}/"
    items, stats = crawl_items(TitleSpider, [start], obey_robots=False, allow_private=allow_private)
    if allow_private:
        assert sorted(item["title"] for item in items) == ["internal admin", "shop"]
    else:
        assert [item["title"] for item in items] == ["shop"]  # shop.test was named: allowed
        assert victim.connections == 0  # evil.shop.test was in scope but not named: never connected
        assert stats["errors/blocked_address"] == 1
