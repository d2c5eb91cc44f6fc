"""The hostile web: nothing a server sends may crash, stall or bloat a crawl, or turn
a broken page into a silent wrong item.

Each hazard is served by a real misbehaving server on 127.0.0.1
(``hostile_servers.HostileServer`` for broken HTTP, ``SiteServer`` for strange
bodies), crawled end to end, and checked from both sides: the crawl's counters and
items, and what the server saw (requests, hang-ups, bytes sent). Crawls that could
take the test process down or hold it up (a decompression bomb, a page that takes
a minute to parse) run in a subprocess under a deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler import Request, Response, Spider
from crawler.sites.server import Page, SiteServer

from ..support.hostile_crawls import FAST, TIMEOUT, MiB, SubprocessCrawl, crawl_in_subprocess
from ..support.hostile_servers import (
    Behaviour,
    HostileServer,
    chunked_without_end,
    huge_content_length,
    huge_headers,
    nested_divs,
    never_answers,
    nul_and_huge_attribute,
    png_bytes,
    reset,
    trickle,
    write_gzip_bomb,
)
from ..support.items import urls
from ..support.sites import chain_site, endless_redirects, html, moved
from ..support.spiders import PageSpider
from ..support.threaded import ThreadedServer
from ..support.tls import self_signed_certificate

pytestmark = pytest.mark.timeout(60)

SLACK = 0.75  # scheduling, connection set-up and teardown on a loaded machine
MAX_BACKOFF = 0.75  # the first retry waits 0.5 s times a jitter of at most 1.5


@pytest.fixture
def hostile() -> Iterator[Callable[[Behaviour], HostileServer]]:
    """Start a `HostileServer`; stopped after the test."""
    servers: list[HostileServer] = []

    def start(behaviour: Behaviour) -> HostileServer:
        servers.append(server := HostileServer(behaviour).start())
        return server

    yield start
    for server in servers:
        server.stop()


# -- stalls: a host that trickles or never answers ----------------------------------


def test_a_trickling_host_is_given_up_at_the_deadline_and_holds_up_no_other(hostile, serve, crawl_items):
    slow = hostile(trickle(interval=0.1))  # 1,000 bytes at 10 bytes/s: 100 s if waited for
    fast = serve(chain_site(10))
    started = time.monotonic()
    items, stats = crawl_items(PageSpider, [slow.url + "/", fast.url + "/0"], **FAST)
    elapsed = time.monotonic() - started
    assert slow.wait_idle()

    assert stats["errors/timeout"] == 1 and stats.errors == 1
    assert urls(items) == {f"{fast.url}/{i}" for i in range(10)}
    assert slow.requests == 1 + FAST["retries"]
    for conn in slow.log:  # each attempt given up at its deadline, its connection closed
        assert conn.requested_at is not None and conn.hung_up_at is not None
        assert conn.hung_up_at - conn.requested_at < TIMEOUT + SLACK
    assert elapsed < 2 * TIMEOUT + MAX_BACKOFF + 2 * SLACK
    first_give_up = slow.log[0].hung_up_at
    assert max(hit.time for hit in fast.hits) < first_give_up  # the fast host never waited


def test_a_host_that_never_answers_times_out(hostile, crawl_items):
    silent = hostile(never_answers())
    items, stats = crawl_items(PageSpider, [silent.url + "/"], **FAST)
    assert silent.wait_idle()
    assert items == []
    assert stats["errors/timeout"] == 1
    assert silent.requests == 1 + FAST["retries"]
    assert silent.hangups == silent.connections  # the crawler closed every connection it gave up
    for conn in silent.log:
        assert conn.hung_up_at is not None and conn.requested_at is not None
        assert conn.hung_up_at - conn.requested_at < TIMEOUT + SLACK


# -- bodies cut short ------------------------------------------------------------------

BROKEN = {
    "reset": "connection_error",  # RST right after the request
    "chunked_without_end": "broken_transfer",  # chunks, then a close without the 0-chunk
    "short_content_length": "broken_transfer",  # Content-Length 1000, 100 bytes, close
}


def broken_server(kind: str, hostile, serve) -> tuple[str, Callable[[], int]]:
    """The URL of a server that breaks its answer as ``kind`` says, and a count of the
    requests it has received."""
    if kind == "short_content_length":
        cut = Page(b"<title>cut</title>".ljust(100), headers=(("Content-Length", "1000"),))
        server = serve({"/": cut})
        return server.url + "/", lambda: len(server.hits)
    raw = hostile(reset() if kind == "reset" else chunked_without_end())
    return raw.url + "/", lambda: raw.requests


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_transfer_is_counted_and_never_parsed(kind, hostile, serve, crawl_items):
    url, _ = broken_server(kind, hostile, serve)
    items, stats = crawl_items(PageSpider, [url], **FAST)
    assert items == [] and stats.pages == 0
    assert stats[f"errors/{BROKEN[kind]}"] == 1 and stats.errors == 1
    assert stats.finish_reason == "finished"


@pytest.mark.parametrize(
    "kind",
    [
        "reset",
        "chunked_without_end",
        "short_content_length",
    ],
)
def test_a_broken_transfer_is_retried_at_most_retries_times(kind, hostile, serve, crawl_items):
    url, requests = broken_server(kind, hostile, serve)
    _, stats = crawl_items(PageSpider, [url], **{**FAST, "retries": 2})
    assert stats["retries"] == 2
    assert requests() == 3


# -- too large: a declared length or a decompression bomb ------------------------------


def test_a_declared_length_over_the_cap_is_refused_before_reading(hostile, crawl_items):
    liar = hostile(huge_content_length(10**12, limit=1024 * MiB))
    items, stats = crawl_items(PageSpider, [liar.url + "/"], **FAST, max_size=16 * MiB)
    assert liar.wait_idle()
    assert items == []
    assert stats["errors/too_large"] == 1 and stats.errors == 1
    assert liar.requests == 1  # too large is not transient: never retried
    (conn,) = liar.log
    assert conn.hung_up_at is not None and conn.requested_at is not None
    assert conn.hung_up_at - conn.requested_at < SLACK  # closed at once, not read to the cap
    assert conn.bytes_sent < 64 * MiB  # what loopback buffers hold, not the body


@pytest.fixture(scope="session")
def gzip_bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """256 MiB of zeros, gzipped (about 250 KiB), built once per session."""
    path = tmp_path_factory.mktemp("bomb") / "zeros.gz"
    write_gzip_bomb(path, 256 * MiB)
    return path.read_bytes()


def test_a_gzip_bomb_stops_at_the_cap_in_bounded_memory(serve, gzip_bomb, tmp_path):
    cap = 16 * MiB
    bomb = Page(gzip_bomb, headers=(("Content-Type", "text/html"), ("Content-Encoding", "gzip")))
    server = serve({"/bomb": bomb, "/ok": html("ok")})
    result = crawl_in_subprocess(
        [server.url + "/bomb", server.url + "/ok"],
        tmp_path / "items.jsonl",
        deadline=30,
        obey_robots=False,
        retries=1,
        timeout=10,
        max_size=cap,
        parse_workers=0,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    growth = (result.report["after_kib"] - result.report["before_kib"]) * 1024
    assert result.report["counts"]["errors/too_large"] == 1
    assert urls(result.items) == {server.url + "/ok"}
    assert len(server.hits_for("/bomb")) == 1  # not retried
    assert growth < 3 * cap, f"peak RSS grew by {growth / MiB:.1f} MiB"


# -- headers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "behaviour",
    [huge_headers(200_000, 200_000), huge_headers(200_000, 100), huge_content_length(10**30)],
    ids=["one-200KB-header", "2000-headers-of-100B", "Content-Length-10**30"],
)
def test_huge_or_malformed_response_headers_are_an_error_not_a_crash(behaviour, hostile, serve, crawl_items):
    bloated = hostile(behaviour)
    fine = serve({"/": html("fine")})
    items, stats = crawl_items(PageSpider, [bloated.url + "/", fine.url + "/"], **FAST)
    assert urls(items) == {fine.url + "/"}
    assert stats["errors/bad_response"] == 1 and stats.errors == 1
    assert bloated.requests == 1  # a malformed response is not retried
    assert stats.finish_reason == "finished"


# -- redirects -------------------------------------------------------------------------


def test_redirect_loops_and_endless_chains_end(serve, crawl_items):
    server = serve({"/a": moved("/b"), "/b": moved("/a"), "/self": moved("/self", 301)}, endless_redirects)
    starts = [server.url + path for path in ("/a", "/self", "/chain/0")]
    items, stats = crawl_items(PageSpider, starts, **FAST, max_redirects=5)
    assert items == [] and stats.errors == 0
    assert [len(server.hits_for(path)) for path in ("/a", "/b", "/self")] == [1, 1, 1]
    assert [hit.target for hit in server.hits if hit.target.startswith("/chain/")] == [
        f"/chain/{i}" for i in range(6)
    ]
    assert stats["dropped/redirect_too_many"] == 1
    loops = sum(n for key, n in stats.counts.items() if key.startswith("dropped/") and key.endswith("loop"))
    assert loops == 2


def test_a_redirect_loop_is_counted_as_dropped_redirect_loop(serve, crawl_items):
    server = serve({"/self": moved("/self")})
    _, stats = crawl_items(PageSpider, [server.url + "/self"], **FAST)
    assert stats["dropped/redirect_loop"] == 1


def test_redirects_to_other_schemes_are_dropped_never_followed(serve, crawl_items):
    server = serve(
        {
            "/": html("home", ["/ftp", "/file", "/data", "/js", "/ok"]),
            "/ftp": moved("ftp://127.0.0.1/pub/secret.txt", 301),
            "/file": moved("file:///etc/passwd"),
            "/data": moved("data:text/html,<title>injected</title>", 307),
            "/js": moved("javascript:alert(1)"),
            "/ok": html("ok"),
        }
    )
    items, stats = crawl_items(PageSpider, [server.url + "/"], **FAST)
    assert urls(items) == {server.url + "/", server.url + "/ok"}
    assert stats["dropped/redirect_unsupported_scheme"] == 4
    assert {hit.target for hit in server.hits} == {"/", "/ftp", "/file", "/data", "/js", "/ok"}
    assert len(server.hits) == 6
    assert stats.errors == 0


SECRETS = {"Authorization": "Bearer s3cret", "Cookie": "session=s3cret", "Proxy-Authorization": "Basic czM="}


class SecretSpider(PageSpider):
    def start_requests(self) -> Any:
        for url in self.start_urls:
            yield Request(url, headers=SECRETS)


def test_credentials_are_not_sent_after_a_cross_origin_redirect(serve, crawl_items):
    other = serve({"/landing": html("landing")})
    origin = serve({"/start": moved("/same"), "/same": moved(other.url + "/landing")})
    items, _ = crawl_items(SecretSpider, [origin.url + "/start"], **FAST, allowed_domains=["127.0.0.1"])
    assert urls(items) == {other.url + "/landing"}
    same_origin = origin.hits_for("/same")[0].headers
    assert same_origin["authorization"] == SECRETS["Authorization"]  # same origin: kept
    assert same_origin["cookie"] == SECRETS["Cookie"]
    landing = other.hits_for("/landing")[0].headers
    assert {"authorization", "cookie", "proxy-authorization"}.isdisjoint(landing)


# -- bodies that are hard to parse -----------------------------------------------------

DEEP_DEADLINE = 8.0  # a crawl of three small pages; parsing 200,000 nested divs takes ~60 s


@pytest.fixture(scope="module")
def deep_crawl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SiteServer, SubprocessCrawl]]:
    """One crawl, in a subprocess with two parse workers, of a page of 200,000 nested
    ``<div>``s next to an ordinary page."""
    routes = {"/deep": Page(nested_divs(200_000)), "/after-deep": html("after"), "/ok": html("ok")}
    with SiteServer(routes) as server:
        result = crawl_in_subprocess(
            [server.url + "/deep", server.url + "/ok"],
            tmp_path_factory.mktemp("deep") / "items.jsonl",
            deadline=DEEP_DEADLINE,
            obey_robots=False,
            timeout=5,
            parse_workers=2,
            parse_timeout=2.0,
        )
        yield server, result


def test_deeply_nested_html_holds_up_no_other_page(deep_crawl):
    server, result = deep_crawl
    assert result.returncode in (0, -signal.SIGKILL), result.stderr[-2000:]  # killed at most, never crashed
    assert server.url + "/ok" in urls(result.items)


def test_deeply_nested_html_does_not_stall_the_crawl(deep_crawl):
    server, result = deep_crawl
    assert result.finished, f"still running after {DEEP_DEADLINE:g}s"
    assert result.returncode == 0, result.stderr[-2000:]
    counts = result.report["counts"]
    deep_url = server.url + "/deep"
    assert deep_url in urls(result.items) or sum(n for k, n in counts.items() if k.startswith("errors/")) == 1


def test_nul_bytes_and_a_5mb_attribute(serve, crawl_items):
    server = serve(
        {
            "/": Page(nul_and_huge_attribute(5 * MiB)),
            "/after-nul": html("after"),
            "/ok": html("ok"),
        }
    )
    items, stats = crawl_items(PageSpider, [server.url + "/", server.url + "/ok"], **FAST, parse_workers=1)
    assert {server.url + "/after-nul", server.url + "/ok"} <= urls(items)
    by_url = {item["url"]: item for item in items}
    assert by_url[server.url + "/"]["title"] in ("nul\ufffdtitle", "nultitle")
    assert stats.errors == 0 and stats.finish_reason == "finished"


def test_a_charset_header_that_lies(serve, crawl_items):
    cp1252 = "<html><head><title>café crème</title></head><body></body></html>".encode("cp1252")
    server = serve({"/": Page(cp1252, headers=(("Content-Type", "text/html; charset=utf-8"),))})
    items, stats = crawl_items(PageSpider, [server.url + "/"], **FAST)
    assert [item["title"] for item in items] in (["café crème"], ["caf\ufffd cr\ufffdme"])
    assert stats.errors == 0


def test_an_image_served_as_html(serve, crawl_items):
    server = serve({"/": html("home", ["/logo", "/ok"]), "/logo": Page(png_bytes()), "/ok": html("ok")})
    items, stats = crawl_items(PageSpider, [server.url + "/"], **FAST, parse_workers=1)
    assert {server.url + "/", server.url + "/ok"} <= urls(items)
    assert stats.pages == 3 and stats.finish_reason == "finished"
    logo = [item for item in items if item["url"] == server.url + "/logo"]
    assert logo == [{"url": server.url + "/logo", "title": None}] or stats.errors == 1


class JsonSpider(Spider):
    def parse(self, response: Response) -> Any:
        if response.url.endswith("/as-html"):
            response.css("a")
        yield {"url": response.url, "data": response.json()}


def test_css_on_json_is_a_counted_callback_error_and_json_works(serve, crawl_items, caplog):
    data = Page(b'{"products": [1, 2, 3]}', headers=(("Content-Type", "application/json"),))
    server = serve({"/data.json": data, "/as-html": data})
    items, stats = crawl_items(JsonSpider, [server.url + "/data.json", server.url + "/as-html"], **FAST)
    assert items == [{"url": server.url + "/data.json", "data": {"products": [1, 2, 3]}}]
    assert stats["errors/not_html"] == 1
    assert "NotHtmlError" in caplog.text and server.url + "/as-html" in caplog.text


# -- servers that always fail, spiders and pipelines that raise ------------------------


def test_a_host_that_answers_503_forever_gets_one_plus_retries_requests_per_page(serve, crawl_items):
    server = serve(handler=lambda hit: Page(b"busy", 503))
    pages = [f"/{i}" for i in range(3)]
    # autothrottle off: its circuit breaker would pause the host after five failures in a row
    items, stats = crawl_items(PageSpider, [server.url + p for p in pages], **FAST, autothrottle=False)
    assert items == []
    assert [len(server.hits_for(p)) for p in pages] == [1 + FAST["retries"]] * 3
    assert stats["status/503"] == 3 * (1 + FAST["retries"])
    assert stats["dropped/http_status"] == 3  # no errors/ counter of its own
    assert stats.finish_reason == "finished"


class ExplodingPipeline:
    def process_item(self, item: dict[str, Any], spider: Spider) -> dict[str, Any]:
        if item["url"].endswith("/b"):
            raise ValueError("pipeline blew up")
        return item


class ExplodingSpider(PageSpider):
    pipelines = [ExplodingPipeline()]

    def start_requests(self) -> Any:
        yield Request(self.start_urls[0])
        raise RuntimeError("start_requests blew up")


def test_start_requests_and_pipeline_errors_are_counted_and_logged(serve, crawl_items, caplog):
    server = serve({"/a": html("a", ["/b"]), "/b": html("b")})
    items, stats = crawl_items(ExplodingSpider, [server.url + "/a"], **FAST)
    assert urls(items) == {server.url + "/a"}
    assert stats["errors/start_requests"] == 1 and stats["errors/pipeline"] == 1
    assert "start_requests blew up" in caplog.text
    assert "pipeline blew up" in caplog.text and server.url + "/b" in caplog.text
    assert stats.finish_reason == "finished"


# -- TLS, proxies from the environment, per-host page caps ------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server-side TLS context with a throwaway self-signed certificate."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class TlsServer(ThreadedServer):
    """HTTPS on 127.0.0.1 with a certificate nobody trusts; counts handshakes."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(tls=context)
        self.handshakes = 0

    def __enter__(self) -> TlsServer:
        self.url = f"https://127.0.0.1:{self._start('127.0.0.1', timeout=5)[0][1]}"
        return self

    async def _listen(self, hosts: str | list[str]) -> asyncio.Server:
        return await asyncio.get_running_loop().create_server(self._accepted, hosts, 0, ssl=self._tls)

    def _accepted(self) -> asyncio.Protocol:
        """Called for each connection, before its TLS handshake (which fails here)."""
        self.handshakes += 1
        return asyncio.Protocol()


def test_a_certificate_error_is_reported_once_per_host_and_not_retried(self_signed, crawl_items, caplog):
    with TlsServer(self_signed) as server, caplog.at_level(logging.DEBUG, logger="crawler.engine"):
        starts = [f"{server.url}/{i}" for i in range(3)]
        items, stats = crawl_items(PageSpider, starts, **{**FAST, "retries": 2})
    assert items == []
    assert stats["errors/tls_error"] == 3 and stats["retries"] == 0
    assert server.handshakes == 3  # one connection per page: never retried in a loop
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "failed" in r.getMessage()]
    assert len(warnings) == 1  # reported once for the host; the rest at DEBUG


def test_proxy_settings_in_the_environment_are_ignored(serve, tmp_path):
    server = serve({"/": html("direct")})
    spider = tmp_path / "spider.py"
    spider.write_text(
        "from crawler import Spider\n"
        f"class S(Spider):\n    start_urls = ['{server.url}/']\n"
        "    def parse(self, response):\n        yield {'title': response.css_first('title').text()}\n"
    )
    dead_proxy = "http://127.0.0.1:9"  # nothing listens there: a crawl through it would fail
    env = {**os.environ, "HTTP_PROXY": dead_proxy, "http_proxy": dead_proxy, "ALL_PROXY": dead_proxy}
    crawl = str(Path(sys.executable).parent / "crawl")
    command = [crawl, str(spider), "-o", "-", "--no-obey-robots"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"title": "direct"}
    assert [hit.target for hit in server.hits] == ["/"]  # straight to the server


def test_per_host_page_cap_stops_a_spider_trap(serve, crawl_items):
    trap = serve({f"/{i}": html(f"page {i}", [f"/{i + 1}"]) for i in range(500)})
    other = serve({"/": html("other")})
    items, stats = crawl_items(PageSpider, [trap.url + "/0", other.url + "/"], **FAST, max_pages_per_host=10)
    assert len(trap.hits) == 10 and len(other.hits) == 1
    assert stats["dropped/host_page_limit"] == 1 and len(items) == 11
