"""Politeness end to end, against real servers on 127.0.0.1: robots.txt as RFC 9309
says, Crawl-delay, Retry-After, adaptive throttling."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter

import aiolimiter
import pytest

import crawler.fetch.robots
import crawler.fetch.throttle
from crawler._errors import UsageError
from crawler._request import Request
from crawler._settings import Settings
from crawler._stats import Stats
from crawler.fetch.client import Fetched
from crawler.fetch.politeness import Politeness, default_host_policy, first_address
from crawler.fetch.robots import RobotsCache
from crawler.frontier.memory import MemoryFrontier
from crawler.sites.server import Hit, Page

from ..support.frontier_contract import FakeClock
from ..support.sites import chain_site, html, robots
from ..support.spiders import TitleSpider
from ..support.timing import spaced


@pytest.fixture
def fast_backoff(monkeypatch):
    """Robots and circuit-breaker backoffs of a fraction of a second, not minutes."""
    monkeypatch.setattr(crawler.fetch.robots, "FIRST_BACKOFF", 0.2)
    monkeypatch.setattr(crawler.fetch.throttle, "BREAKER_PAUSE", 0.3)


def pages_with(rules: Page, count: int = 3) -> dict[str, Page]:
    site = {f"/{i}": html(f"page {i}", [f"/{i + 1}"] if i + 1 < count else []) for i in range(count)}
    return {"/robots.txt": rules, **site}


def gaps(hits: list[Hit]) -> list[float]:
    return [b.time - a.time for a, b in itertools.pairwise(hits)]


def test_group_for_our_product_token_wins_case_insensitively(serve, crawl_items):
    rules = robots("User-agent: *\nDisallow: /\n\nUser-agent: CRAWLER\nDisallow: /private\n")
    server = serve({**pages_with(rules), "/private": html("no")})
    server.routes["/0"] = html("page 0", ["/1", "/private"])
    items, stats = crawl_items(TitleSpider, [server.url + "/0"])
    assert len(items) == 3  # the * group would forbid everything
    assert not server.hits_for("/private")
    assert stats["dropped/robots"] == 1


def test_robots_redirects_are_followed_to_another_host(serve, crawl_items):
    elsewhere = serve({"/rules.txt": robots("User-agent: *\nDisallow: /2\n")})
    moved = lambda target: Page(status=301, headers=(("Location", target),))  # noqa: E731
    server = serve(pages_with(moved("/r1")))
    server.routes.update(
        {"/r1": moved("/r2"), "/r2": Page(status=302, headers=(("Location", elsewhere.url + "/rules.txt"),))}
    )
    items, stats = crawl_items(TitleSpider, [server.url + "/0"])
    assert [item["title"] for item in items] == ["page 0", "page 1"]
    assert not server.hits_for("/2") and stats["dropped/robots"] == 1


def test_a_robots_redirect_loop_makes_it_unreachable_without_laps(serve, crawl_items, fast_backoff):
    """The crawl's redirect rule: a loop ends at its first repeat, not after five hops."""
    server = serve(pages_with(Page(status=301, headers=(("Location", "/robots.txt"),))))
    items, stats = crawl_items(TitleSpider, [server.url + "/0"])
    assert items == [] and not server.hits_for("/0")
    assert len(server.hits_for("/robots.txt")) == crawler.fetch.robots.MAX_FAILURES  # one per attempt
    assert stats["dropped/robots_unreachable"] == 1


@pytest.mark.parametrize("status", [300, 304])
def test_a_robots_3xx_that_is_no_redirect_means_no_restrictions(serve, crawl_items, status):
    """Only redirect statuses are followed (a 304 has no rules to go and get)."""
    elsewhere = serve({"/rules.txt": robots("User-agent: *\nDisallow: /\n")})
    server = serve(pages_with(Page(status=status, headers=(("Location", elsewhere.url + "/rules.txt"),))))
    items, _ = crawl_items(TitleSpider, [server.url + "/0"])
    assert len(items) == 3 and not elsewhere.hits


def test_robots_404_means_no_restrictions(serve, crawl_items):
    server = serve(pages_with(Page(b"gone", status=404)))
    items, _ = crawl_items(TitleSpider, [server.url + "/0"])
    assert len(items) == 3 and len(server.hits_for("/robots.txt")) == 1


def test_robots_503_disallows_for_now_then_retries_with_backoff(serve, crawl_items, fast_backoff):
    answers = iter([Page(b"busy", status=503), robots("User-agent: *\nDisallow: /2\n")])

    def handle(hit: Hit) -> Page | None:
        return next(answers) if hit.target == "/robots.txt" else None

    server = serve(pages_with(robots("unused")), handler=handle)
    del server.routes["/robots.txt"]
    items, stats = crawl_items(TitleSpider, [server.url + "/0"])
    robots_hits = server.hits_for("/robots.txt")
    assert len(robots_hits) == 2 and robots_hits[1].time - robots_hits[0].time >= 0.2
    assert [item["title"] for item in items] == ["page 0", "page 1"]
    assert server.hits[1].target == "/robots.txt"  # no page before robots.txt answered
    assert stats["dropped/robots"] == 1


def test_robots_that_keeps_failing_is_given_up_and_the_crawl_ends(serve, crawl_items, fast_backoff):
    server = serve(pages_with(Page(b"down", status=500)))
    items, stats = crawl_items(TitleSpider, [server.url + "/0"])
    assert items == []
    assert len(server.hits_for("/robots.txt")) == crawler.fetch.robots.MAX_FAILURES
    assert not server.hits_for("/0")
    assert stats["dropped/robots_unreachable"] == 1 and stats.finish_reason == "finished"


def test_a_hanging_robots_txt_costs_one_timeout_and_stalls_only_its_host(serve, crawl_items, fast_backoff):
    hanging = serve(pages_with(Page(b"", delay=30)))
    healthy = serve(chain_site(10))
    started = time.time()
    items, stats = crawl_items(TitleSpider, [hanging.url + "/0", healthy.url + "/0"], timeout=1.0)
    assert len(items) == 10 and all(item["title"].startswith("page") for item in items)
    assert max(hit.time for hit in healthy.hits) - started < 1.0  # done while the other robots.txt hung
    assert not hanging.hits_for("/0")
    assert len(hanging.hits_for("/robots.txt")) == crawler.fetch.robots.MAX_FAILURES
    assert stats["dropped/robots_unreachable"] == 1


def test_crawl_delay_spaces_requests_and_is_capped(serve, crawl_items, caplog):
    server = serve(pages_with(robots("User-agent: *\nCrawl-delay: 0.3\n"), count=4))
    crawl_items(TitleSpider, [server.url + "/0"])
    page_hits = [hit for hit in server.hits if hit.target != "/robots.txt"]
    assert len(page_hits) == 4 and spaced([hit.time for hit in page_hits], 0.3)

    capped = serve(pages_with(robots("User-agent: *\nCrawl-delay: 1000\n"), count=3))
    with caplog.at_level(logging.WARNING):
        crawl_items(TitleSpider, [capped.url + "/0"], max_crawl_delay=0.2)
    page_hits = [hit for hit in capped.hits if hit.target != "/robots.txt"]
    assert spaced([hit.time for hit in page_hits], 0.2) and max(gaps(page_hits)) < 1.0
    assert "capped at 0.2s" in caplog.text


def test_a_slower_user_rate_wins_over_crawl_delay(serve, crawl_items):
    server = serve(pages_with(robots("User-agent: *\nCrawl-delay: 0.05\n"), count=3))
    crawl_items(TitleSpider, [server.url + "/0"], rate=4)
    page_hits = [hit for hit in server.hits if hit.target != "/robots.txt"]
    assert spaced([hit.time for hit in page_hits], 0.25)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_pauses_only_that_host(serve, crawl_items, status):
    seen: Counter[str] = Counter()

    def handle(hit: Hit) -> Page | None:
        seen[hit.target] += 1
        if hit.target == "/robots.txt":
            return Page(status=404)
        if hit.target == "/a" and seen["/a"] == 1:
            return Page(b"slow down", status=status, headers=(("Retry-After", "1"),))
        return html(f"ok {hit.target}")

    paused = serve(handler=handle)
    other = serve(chain_site(15))
    items, stats = crawl_items(TitleSpider, [paused.url + "/a", other.url + "/0"], retries=1)
    first, second = paused.hits_for("/a")
    assert second.time - first.time >= 0.95  # the pause the server asked for
    during = [hit for hit in other.hits if first.time < hit.time < second.time]
    assert len(during) >= 10  # the other host carried on at full speed
    assert "ok /a" in {item["title"] for item in items}
    assert stats["politeness/retry_after"] == 1


def test_a_failing_host_is_backed_off_by_the_circuit_breaker(serve, crawl_items, fast_backoff):
    server = serve(
        {"/robots.txt": Page(status=404), **{f"/{i}": Page(b"oops", status=500) for i in range(8)}}
    )
    server.routes["/0"] = Page(html("hub", [f"/{i}" for i in range(1, 8)]).body)
    _items, stats = crawl_items(TitleSpider, [server.url + "/0"], retries=1)
    assert stats["politeness/circuit_breaker"] == crawler.fetch.throttle.BREAKER_TRIPS
    assert (
        stats["dropped/http_status"] + stats["dropped/host_failing"] == 7
    )  # each page failed or dropped once
    assert stats["dropped/host_failing"] >= 1  # given up: the crawl ends by itself
    assert stats.finish_reason == "finished"


def test_every_request_of_a_paced_host_goes_through_its_aiolimiter(serve, crawl_items, monkeypatch):
    entered: list[int] = []
    acquire = aiolimiter.AsyncLimiter.acquire

    async def counted(self: aiolimiter.AsyncLimiter, amount: float = 1) -> None:
        entered.append(id(self))
        await acquire(self, amount)

    monkeypatch.setattr(aiolimiter.AsyncLimiter, "acquire", counted)
    rules = robots("User-agent: *\nDisallow: /private\n")
    server = serve(pages_with(rules, count=5))
    server.routes["/0"] = html("page 0", ["/1", "/private/a", "/private/b"])
    items, stats = crawl_items(TitleSpider, [server.url + "/0"], rate=100)
    assert len(items) == 5 and stats["dropped/robots"] == 2
    assert len(server.hits) == 6  # robots.txt and five pages
    assert len(entered) == 6 and len(set(entered)) == 1  # each through the host's one limiter


def test_per_ip_politeness_holds_for_two_names_of_one_server(serve, crawl_items):
    if asyncio.run(first_address("localhost", 80)) != "127.0.0.1":
        pytest.skip("localhost does not resolve to 127.0.0.1 first here")
    server = serve({**{f"/a{i}": html(f"a{i}", [f"/a{i + 1}"]) for i in range(3)},
                    **{f"/b{i}": html(f"b{i}", [f"/b{i + 1}"]) for i in range(3)}})  # fmt: skip
    other_name = server.url.replace("127.0.0.1", "localhost")
    starts = [server.url + "/a0", other_name + "/b0"]
    items, _ = crawl_items(TitleSpider, starts, obey_robots=False, rate=5, politeness_key="ip")
    assert len(items) == 6 and {hit.headers["host"].split(":")[0] for hit in server.hits} == {
        "127.0.0.1",
        "localhost",
    }
    assert spaced([hit.time for hit in server.hits], 0.2)  # one rate for both names


# -- refused requests cost their host nothing (fake clock) ------------------------------


async def fetch_robots(request: Request) -> Fetched:
    return Fetched(request.url, 200, {"content-type": "text/plain"}, b"User-agent: *\nDisallow: /cart\n")


def test_robots_refusals_cost_the_host_no_start() -> None:
    """A host's queue holds disallowed and allowed URLs (robots.txt was not known when
    they were queued): the allowed ones start one interval apart, the refused ones
    in between take no start."""
    settings = Settings(rate=5, autothrottle=False)
    clock = FakeClock()

    async def crawl() -> list[float]:
        asyncio.get_running_loop().time = clock  # type: ignore[method-assign]  # aiolimiter's clock
        frontier = MemoryFrontier(default_host_policy(settings), clock=clock)
        robots_cache = RobotsCache(fetch_robots, settings.user_agent, clock=clock)
        politeness = Politeness(settings, frontier, robots_cache, Stats())
        urls = [f"http://a.example/{'cart' if i % 2 else 'page'}/{i}" for i in range(12)]
        await frontier.add([Request(url) for url in urls])
        return await simulate_crawl(politeness, frontier, clock)

    starts = asyncio.run(crawl())
    interval = 1.05 / 5  # the rate, spaced 5% wider
    assert len(starts) == 6
    assert [round(b - a, 9) for a, b in itertools.pairwise(starts)] == [round(interval, 9)] * 5


async def simulate_crawl(politeness: Politeness, frontier: MemoryFrontier, clock: FakeClock) -> list[float]:
    """Drive ``frontier`` as the engine's fetch stage does, on ``clock``; the start times."""
    starts = []
    while not (status := await frontier.status()).finished:
        for request in await frontier.take(8):
            admission = await politeness.admit(request)
            if admission.allowed and politeness.can_start(request):
                async with politeness.slot(request):
                    starts.append(clock())
                await frontier.fetched(request)
                await frontier.done(request)
            else:  # refused, or its host busy after all: no start, no waiting
                await frontier.fetched(request, sent=False)
                await (frontier.done(request) if admission.drop else frontier.retry(request, 0.0))
        clock.advance(status.wait or 0.0)
    return starts


def test_per_ip_politeness_paces_hostnames_of_one_address_together() -> None:
    settings = Settings(rate=5, autothrottle=False, obey_robots=False, politeness_key="ip")
    clock = FakeClock()

    async def one_machine(hostname: str, port: int) -> str:
        return "10.0.0.1"

    async def crawl() -> list[float]:
        asyncio.get_running_loop().time = clock  # type: ignore[method-assign]  # aiolimiter's clock
        frontier = MemoryFrontier(default_host_policy(settings), clock=clock)
        robots_cache = RobotsCache(fetch_robots, settings.user_agent, clock=clock)
        politeness = Politeness(settings, frontier, robots_cache, Stats(), resolve=one_machine)
        await frontier.add([Request(f"http://{name}.example/{i}") for name in "abc" for i in range(3)])
        return await simulate_crawl(politeness, frontier, clock)

    starts = asyncio.run(crawl())
    assert len(starts) == 9
    assert [round(b - a, 9) for a, b in itertools.pairwise(starts)] == [round(1.05 / 5, 9)] * 8


def test_politeness_key_is_checked() -> None:
    with pytest.raises(UsageError, match="politeness_key"):
        Settings(politeness_key="domain")
