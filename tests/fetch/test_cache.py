"""The HTTP cache (``--cache DIR``): unit tests of ``HttpCache``, then real crawls of a
server on 127.0.0.1 replayed from the cache, then the ``crawl`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

import crawler
from crawler import OutputError, Request, Response, Spider, UsageError
from crawler._errors import FetchTimeout
from crawler._settings import DEFAULT_CACHE_IGNORE_STATUS, Settings, resolve_settings
from crawler._stats import Stats
from crawler.fetch.cache import HttpCache
from crawler.fetch.client import Fetched
from crawler.sites.server import Page

from ..support.cli import SPIDER, crawl
from ..support.sites import html, robots
from ..support.timing import spaced

URL = "http://shop.test/item?id=1"


class FakeNetwork:
    """A fetch function that answers every request with ``status`` and counts calls;
    the body names the request, so replays can be told apart."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls: list[Request] = []

    async def fetch(self, request: Request) -> Fetched:
        self.calls.append(request)
        body = f"{request.method} {request.url} {request.body!r} #{len(self.calls)}".encode()
        headers = {"content-type": "text/html; charset=utf-8", "x-note": "caf\u00e9"}
        return Fetched(request.url, self.status, headers, body)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def open_cache(path: Path, **options: Any) -> tuple[HttpCache, Stats]:
    stats = Stats()
    return HttpCache(path / "cache", stats, **options), stats


def fetch_all(cache: HttpCache, network: FakeNetwork, *requests: Request) -> list[Fetched]:
    fetch = cache.wrap(network.fetch)

    async def run() -> list[Fetched]:
        return [await fetch(request) for request in requests]

    return asyncio.run(run())


def test_a_miss_is_fetched_and_stored_then_replayed(tmp_path):
    cache, stats = open_cache(tmp_path)
    network = FakeNetwork()
    first, second = fetch_all(cache, network, Request(URL), Request(URL))
    assert len(network.calls) == 1
    assert second == first
    assert second.headers["x-note"] == "caf\u00e9"
    assert (stats["cache/miss"], stats["cache/stored"], stats["cache/hit"]) == (1, 1, 1)


def test_entries_are_spread_over_subdirectories_without_leftovers(tmp_path):
    cache, _ = open_cache(tmp_path)
    fetch_all(cache, FakeNetwork(), *(Request(f"{URL}{i}") for i in range(20)))
    files = [path for path in (tmp_path / "cache").rglob("*") if path.is_file()]
    assert len(files) == 20
    for path in files:
        assert len(path.name) == 16 and path.parent.name == path.name[:2]
    assert cache.path_for(Request(URL + "0")) in files


def test_any_body_bytes_survive_the_round_trip(tmp_path):
    cache, _ = open_cache(tmp_path)
    body = bytes(range(256)) + b"\n\r\n{}" * 3
    stored = Fetched(URL, 200, {"x-a": "1\n2"}, body)
    asyncio.run(cache.store(Request(URL), stored))
    assert cache.load(Request(URL)) == stored


def test_method_and_body_are_part_of_the_key(tmp_path):
    cache, stats = open_cache(tmp_path)
    network = FakeNetwork()
    requests = [
        Request(URL),
        Request(URL, method="POST", body=b"a=1"),
        Request(URL, method="POST", body=b"a=2"),
        Request(URL, method="HEAD"),
    ]
    first = fetch_all(cache, network, *requests)
    again = fetch_all(cache, network, *requests)
    assert len(network.calls) == 4 and again == first
    assert len({fetched.body for fetched in first}) == 4
    assert stats["cache/hit"] == 4


def test_rendered_entries_are_kept_apart_from_plain_ones(tmp_path):
    cache, _ = open_cache(tmp_path)
    network = FakeNetwork()
    rendered = cache.wrap(network.fetch, variant="rendered")

    async def run() -> list[Fetched]:
        return [await rendered(Request(URL)), await rendered(Request(URL))]

    first, again = asyncio.run(run())
    assert again == first and len(network.calls) == 1
    assert cache.load(Request(URL)) is None  # a plain fetch never gets the rendered DOM
    assert cache.path_for(Request(URL), "rendered").name.endswith("-rendered")
    (plain,) = fetch_all(cache, network, Request(URL))
    assert plain.body != first.body and len(network.calls) == 2


def test_entries_older_than_the_expiry_are_fetched_again(tmp_path):
    clock = Clock()
    cache, stats = open_cache(tmp_path, expiry=60, clock=clock)
    network = FakeNetwork()
    fetch_all(cache, network, Request(URL))
    clock.now += 59
    fetch_all(cache, network, Request(URL))
    assert len(network.calls) == 1
    clock.now += 2
    refreshed = fetch_all(cache, network, Request(URL), Request(URL))
    assert len(network.calls) == 2
    assert refreshed[0].body.endswith(b"#2") and refreshed[1] == refreshed[0]
    assert (stats["cache/expired"], stats["cache/miss"], stats["cache/hit"]) == (1, 2, 2)


def test_zero_expiry_keeps_entries_for_ever(tmp_path):
    clock = Clock()
    cache, stats = open_cache(tmp_path, expiry=0, clock=clock)
    network = FakeNetwork()
    fetch_all(cache, network, Request(URL))
    clock.now += 10 * 365 * 86400
    fetch_all(cache, network, Request(URL))
    assert len(network.calls) == 1 and stats["cache/expired"] == 0


@pytest.mark.parametrize("status", DEFAULT_CACHE_IGNORE_STATUS)
def test_ignored_statuses_are_never_stored(tmp_path, status):
    cache, stats = open_cache(tmp_path, ignore_status=DEFAULT_CACHE_IGNORE_STATUS)
    network = FakeNetwork(status)
    answers = fetch_all(cache, network, Request(URL), Request(URL))
    assert len(network.calls) == 2 and {a.status for a in answers} == {status}
    assert stats["cache/stored"] == 0 and not list((tmp_path / "cache").rglob("*"))


@pytest.mark.parametrize("status", [301, 404, 410])
def test_other_statuses_are_stored(tmp_path, status):
    cache, _ = open_cache(tmp_path, ignore_status=DEFAULT_CACHE_IGNORE_STATUS)
    network = FakeNetwork(status)
    fetch_all(cache, network, Request(URL), Request(URL))
    assert len(network.calls) == 1


def test_fetch_errors_are_never_stored(tmp_path):
    cache, stats = open_cache(tmp_path)
    calls = 0

    async def failing(request: Request) -> Fetched:
        nonlocal calls
        calls += 1
        raise FetchTimeout("no answer")

    fetch = cache.wrap(failing)
    for _ in range(2):
        with pytest.raises(FetchTimeout):
            asyncio.run(fetch(Request(URL)))
    assert calls == 2 and stats["cache/stored"] == 0


def _truncate(data: bytes) -> bytes:
    return data[:-1]


def _extend(data: bytes) -> bytes:
    return data + b"x"


def _garbage(data: bytes) -> bytes:
    return b"\x00\xff garbage"


def _empty(data: bytes) -> bytes:
    return b""


def _header_only(data: bytes) -> bytes:
    return data.partition(b"\n")[0]


def _other_version(data: bytes) -> bytes:
    return data.replace(b'"v":1', b'"v":99', 1)


def _wrong_types(data: bytes) -> bytes:
    return data.replace(b'"headers":{', b'"headers":[],"x":{', 1)


def _not_an_object(data: bytes) -> bytes:
    return b"[1, 2]\n"


def _other_request(data: bytes) -> bytes:
    return data.replace(b'"request":"GET ', b'"request":"GET http://other.test/?', 1)


@pytest.mark.parametrize(
    "corrupt",
    [
        _truncate,
        _extend,
        _garbage,
        _empty,
        _header_only,
        _other_version,
        _wrong_types,
        _not_an_object,
        _other_request,
    ],
)
def test_a_corrupt_entry_is_a_miss_and_gets_replaced(tmp_path, caplog, corrupt):
    cache, stats = open_cache(tmp_path)
    network = FakeNetwork()
    fetch_all(cache, network, Request(URL))
    path = cache.path_for(Request(URL))
    path.write_bytes(corrupt(path.read_bytes()))
    with caplog.at_level(logging.DEBUG, logger="crawler.httpcache"):
        refetched, replayed = fetch_all(cache, network, Request(URL), Request(URL))
    assert len(network.calls) == 2 and replayed == refetched
    assert stats["cache/miss"] == 2 and stats["cache/hit"] == 1
    assert str(path) in caplog.text


def test_an_entry_that_cannot_be_written_is_logged_once_and_skipped(tmp_path, caplog):
    cache, stats = open_cache(tmp_path)
    network = FakeNetwork()
    requests = [Request(f"{URL}{i}") for i in range(40)]  # 40 over 256 subdirectories
    for request in requests:  # a file where each entry's subdirectory should go
        cache.path_for(request).parent.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="crawler.httpcache"):
        answers = fetch_all(cache, network, *requests)
    assert [a.status for a in answers] == [200] * 40
    assert stats["cache/stored"] == 0
    assert len(caplog.records) == 1 and "cannot store" in caplog.text


def test_a_directory_that_cannot_be_created_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match=r"cannot use cache directory .*file/cache: Not a directory"):
        HttpCache(tmp_path / "file" / "cache", Stats())


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_directory_is_one_clear_error(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o500)
    try:
        with pytest.raises(OutputError, match=r"cannot use cache directory .*ro: Permission denied"):
            HttpCache(tmp_path / "ro", Stats())
    finally:
        (tmp_path / "ro").chmod(0o700)


# Settings


def test_cache_settings_default_and_validate():
    assert (Settings().cache, Settings().cache_expiry) == (None, 0.0)
    assert Settings().cache_ignore_status == (408, 429, 500, 502, 503, 504)
    assert Settings(cache_expiry=3600, cache_ignore_status=()).cache_ignore_status == ()
    for bad in ({"cache_expiry": -1}, {"cache_expiry": "1h"}, {"cache_ignore_status": ("500",)}):
        with pytest.raises(UsageError, match="cache_"):
            Settings(**bad)


def test_cache_settings_as_spider_attributes():
    class Cached(Spider):
        cache = "httpcache"
        cache_expiry = 60
        cache_ignore_status = [404, 500]

    settings = resolve_settings(Cached, {})
    assert (settings.cache, settings.cache_expiry, settings.cache_ignore_status) == (
        "httpcache",
        60,
        (404, 500),
    )
    assert resolve_settings(Cached, {"cache_ignore_status": (503,)}).cache_ignore_status == (503,)


# Real crawls of a server on 127.0.0.1


class TitleSpider(Spider):
    name = "cached_titles"

    def parse(self, response: Response) -> Any:
        yield {"url": response.url, "title": response.css_first("title").text(), "status": response.status}
        yield from response.follow_all("a")


def chain_site(pages: int = 5) -> dict[str, Page]:
    routes = {"/robots.txt": robots("User-agent: *\nDisallow: /private\n")}
    for i in range(pages):
        routes[f"/{i}"] = html(f"page {i}", [f"/{i + 1}", "/private"] if i < pages - 1 else [])
    return routes


def by_url(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: item["url"])


def test_a_second_crawl_replays_the_first_with_the_server_gone(serve, crawl_items, tmp_path):
    server = serve(chain_site())
    cache = str(tmp_path / "cache")
    first, stats = crawl_items(TitleSpider, [server.url + "/0"], cache=cache)
    assert len(first) == 5 and stats["cache/stored"] == 6  # the pages and robots.txt
    seen = len(server.hits)
    server.stop()
    again, stats = crawl_items(TitleSpider, [server.url + "/0"], cache=cache)
    assert by_url(again) == by_url(first)
    assert stats["cache/hit"] == 6 and stats["cache/miss"] == 0 and stats.errors == 0
    assert stats["dropped/robots"] == 1  # robots.txt was replayed too: /private stays out
    assert len(server.hits) == seen and not server.hits_for("/private")


def test_crawl_delay_spaces_the_network_fetches_but_not_the_replay(serve, crawl_items, tmp_path):
    routes = chain_site(5)
    routes["/robots.txt"] = robots("User-agent: *\nDisallow: /private\nCrawl-delay: 0.4\n")
    server = serve(routes)
    cache = str(tmp_path / "cache")
    _, live = crawl_items(TitleSpider, [server.url + "/0"], cache=cache)
    starts = [hit.time for hit in server.hits if hit.target != "/robots.txt"]
    assert len(starts) == 5
    assert spaced(starts, 0.4)  # misses wait for Crawl-delay
    server.stop()
    _, replay = crawl_items(TitleSpider, [server.url + "/0"], cache=cache)
    assert replay["cache/hit"] == 6
    assert replay.elapsed < 4 * 0.4 <= live.elapsed  # hits do not wait: the site is not asked


@pytest.mark.parametrize("durable", [{"job": "crawls/x"}, {"frontier": "redis://127.0.0.1:6379/0"}])
def test_the_cache_does_not_mix_with_a_job_or_a_shared_frontier(durable):
    with pytest.raises(UsageError, match="does not mix with --job or --frontier"):
        Settings(cache="cache", **durable)


def test_ignored_statuses_are_asked_again_and_the_rest_replayed(serve, crawl_items, tmp_path):
    routes = chain_site(3)
    routes["/busy"] = Page(b"try later", status=503)
    routes["/0"] = html("page 0", ["/1", "/busy"])
    server = serve(routes)
    cache = str(tmp_path / "cache")
    for _ in range(2):
        _, stats = crawl_items(TitleSpider, [server.url + "/0"], cache=cache, retries=0)
    assert len(server.hits_for("/busy")) == 2
    assert all(len(server.hits_for(target)) == 1 for target in ("/robots.txt", "/0", "/1", "/2"))
    assert (stats["cache/hit"], stats["cache/miss"]) == (4, 1)


def test_expired_entries_are_fetched_again(serve, crawl_items, tmp_path):
    server = serve(chain_site(3))
    cache = str(tmp_path / "cache")
    crawl_items(TitleSpider, [server.url + "/0"], cache=cache)
    server.routes = {**server.routes, "/2": html("page 2, new")}
    items, stats = crawl_items(TitleSpider, [server.url + "/0"], cache=cache, cache_expiry=1e-6)
    assert "page 2, new" in {item["title"] for item in items}
    assert stats["cache/expired"] == 4 and stats["cache/hit"] == 0
    assert len(server.hits_for("/2")) == 2


def test_a_changed_site_is_replayed_as_cached_until_the_cache_goes(serve, crawl_items, tmp_path):
    server = serve(chain_site(3))
    cache = tmp_path / "cache"
    crawl_items(TitleSpider, [server.url + "/0"], cache=str(cache))
    server.routes = {**server.routes, "/2": html("page 2, new")}
    items, _ = crawl_items(TitleSpider, [server.url + "/0"], cache=str(cache))
    assert "page 2" in {item["title"] for item in items}
    items, _ = crawl_items(TitleSpider, [server.url + "/0"])  # without the cache
    assert "page 2, new" in {item["title"] for item in items}


def test_a_bad_cache_directory_stops_the_crawl_before_any_request(serve, tmp_path):
    server = serve(chain_site(2))
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="cannot use cache directory"):
        crawler.run(
            TitleSpider,
            spider_args={"start_urls": [server.url + "/0"]},
            cache=str(tmp_path / "file"),
            parse_workers=0,
        )
    assert server.hits == []


# The crawl command


@pytest.fixture
def spider_file(tmp_path: Path) -> Path:
    path = tmp_path / "cli_spider.py"
    path.write_text(SPIDER)
    return path


def test_the_crawl_command_replays_from_its_cache(spider_file, serve, tmp_path):
    server = serve(chain_site(4))
    args = [str(spider_file), "-a", f"start={server.url}/0", "--cache", str(tmp_path / "cache")]
    runs = []
    for n in range(2):
        stats_path = tmp_path / f"stats{n}.json"
        result = crawl(*args, "--stats", str(stats_path), "--cache-ignore-status", "404", "--no-progress")
        assert result.returncode == 0, result.stderr
        runs.append(json.loads(stats_path.read_text()))
    assert "HTTP cache in use" in result.stderr and str(tmp_path / "cache") in result.stderr
    assert runs[0]["cache"]["miss"] == runs[0]["cache"]["stored"] == 5  # 4 pages and robots.txt
    assert runs[1]["cache"] == {"hit": 5}
    assert runs[1]["items"] == 4
    assert len(server.hits) == 5


def test_the_crawl_command_refetches_expired_entries(spider_file, serve, tmp_path):
    server = serve(chain_site(2))
    args = [str(spider_file), "-a", f"start={server.url}/0", "--cache", str(tmp_path / "cache")]
    stats_path = tmp_path / "stats.json"
    for _ in range(2):
        result = crawl(*args, "--cache-expiry", "0.001", "--stats", str(stats_path), "--no-progress")
        assert result.returncode == 0, result.stderr
    assert json.loads(stats_path.read_text())["cache"] == {"expired": 3, "miss": 3, "stored": 3}
    assert len(server.hits_for("/0")) == 2


def test_parse_replays_from_the_cache(spider_file, serve, tmp_path):
    server = serve(chain_site(2))
    args = ["parse", server.url + "/0", str(spider_file), "--cache", str(tmp_path / "cache"), "--json"]
    first = crawl(*args)
    server.stop()
    again = crawl(*args)
    assert first.returncode == again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["items"] == json.loads(first.stdout)["items"] != []


@pytest.mark.parametrize(
    ("option", "code", "message"),
    [
        ("--cache-expiry=-1", 2, "cache_expiry must be zero or more"),
        ("--cache-ignore-status=2000", 2, "cache_ignore_status must be HTTP status codes"),
        ("--cache={spider}", 1, "cannot use cache directory"),
    ],
)
def test_the_crawl_command_reports_bad_cache_options_in_one_line(spider_file, option, code, message):
    result = crawl(str(spider_file), "--no-progress", option.format(spider=spider_file))
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
