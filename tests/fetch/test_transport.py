"""The transport under httpx, on real sockets: crawls through a proxy, a user's own
``httpx.AsyncClient`` (event hooks, auth), every request as an ``httpx.Request``,
idle connections bounded, and hosts that never answer held to their share."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

import crawler
from crawler import Request, Response, Settings, Spider, UsageError
from crawler._errors import BlockedAddress, FetchError, FetchTimeout
from crawler.fetch.client import Fetcher, network_guard
from crawler.fetch.transport import PoolTransport
from crawler.sites.server import Page, SiteServer

from ..support.hostile_servers import HostileServer, never_answers
from ..support.sites import html, robots
from ..support.threaded import ThreadedServer


class LinkSpider(Spider):
    name = "links"

    def parse(self, response: Response) -> Any:
        title = response.css_first("title")
        yield {"url": response.url, "title": title.text() if title is not None else ""}
        yield from response.follow_all("a")


def shop(pages: int, extra_links: tuple[str, ...] = ()) -> dict[str, Page]:
    routes = {"/robots.txt": robots("User-agent: *\nDisallow: /private/\n")}
    routes["/"] = html("home", [f"/p/{i}" for i in range(pages)] + list(extra_links))
    for i in range(pages):
        routes[f"/p/{i}"] = html(f"page {i}")
    return routes


# -- a forward proxy ---------------------------------------------------------------------


class TinyProxy(ThreadedServer):
    """An HTTP forward proxy on ``host`` (absolute-form requests; one request per
    connection), recording the targets it was asked for."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        super().__init__()
        self.host = host
        self.targets: list[str] = []
        self.headers: list[dict[str, str]] = []

    def __enter__(self) -> TinyProxy:
        port = self._start(self.host, timeout=5)[0][1]
        self.url = f"http://{self.host}:{port}"
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, target, _ = head.split("\r\n", 1)[0].split(" ")
            headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if line)
            self.targets.append(target)
            self.headers.append(headers)
            await self._forward(method, target, headers, writer)
        finally:
            writer.close()

    async def _forward(
        self, method: str, target: str, headers: dict[str, str], writer: asyncio.StreamWriter
    ) -> None:
        parts = urlsplit(target)
        upstream_reader, upstream_writer = await asyncio.open_connection(parts.hostname, parts.port)
        kept = {k: v for k, v in headers.items() if not k.lower().startswith(("proxy-", "connection"))}
        lines = [f"{method} {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in kept.items()] + ["Connection: close", "", ""]
        upstream_writer.write("\r\n".join(lines).encode("latin-1"))
        writer.write(await upstream_reader.read())  # the upstream closes after its answer
        await writer.drain()
        upstream_writer.close()


@pytest.fixture
def proxy() -> Iterator[TinyProxy]:
    with TinyProxy() as running:
        yield running


def test_a_crawl_goes_through_the_proxy(serve, crawl_items, proxy):
    """The proxy listens on 127.0.0.2, which nobody named: the proxy's own host
    counts as named."""
    server = serve(shop(3))

    class Proxied(LinkSpider):  # the setting as a spider attribute
        pass

    Proxied.proxy = proxy.url
    items, _ = crawl_items(Proxied, [server.url + "/"])
    assert sorted(item["title"] for item in items) == ["home", "page 0", "page 1", "page 2"]
    assert sorted(urlsplit(target).path for target in proxy.targets) == [
        "/",
        "/p/0",
        "/p/1",
        "/p/2",
        "/robots.txt",
    ]
    assert all(target.startswith(server.url) for target in proxy.targets)  # the target host, unresolved
    assert len(server.hits) == 5


def test_the_proxy_urls_credentials_go_to_the_proxy(serve, proxy):
    """``http://user:password@proxy/``: the proxy gets them as ``Proxy-Authorization``."""
    server = serve(shop(0))
    settings = Settings(proxy=proxy.url.replace("//", "//us%40er:s3cr%C3%A9t@"))

    async def main() -> None:
        fetcher = Fetcher(settings, guard=network_guard(settings, ["127.0.0.1"]))
        try:
            assert (await fetcher.fetch(Request(server.url + "/"))).status == 200
        finally:
            await fetcher.close()

    asyncio.run(main())
    expected = "Basic " + base64.b64encode("us@er:s3crét".encode()).decode()
    assert [headers.get("Proxy-Authorization") for headers in proxy.headers] == [expected]


def test_behind_a_proxy_only_http_and_https_are_fetched(proxy):
    settings = Settings(proxy=proxy.url)

    async def main() -> None:
        fetcher = Fetcher(settings, guard=network_guard(settings, ["127.0.0.1"]))
        try:
            with pytest.raises(FetchError, match="cannot fetch ftp"):
                await fetcher.fetch(Request("ftp://127.0.0.1:21/file"))
        finally:
            await fetcher.close()

    asyncio.run(main())
    assert proxy.targets == []


@pytest.mark.parametrize("url", ["http://127.0.0.3:9/", "http://localhost:9/", "http://[::ffff:7f00:1]:9/"])
def test_behind_a_proxy_the_guard_still_checks_the_target(proxy, url):
    """A private target nobody named is refused before the proxy hears of it: an IP
    literal, or a name resolved here first (the proxy would resolve it itself)."""
    settings = Settings(proxy=proxy.url)

    async def main() -> None:
        fetcher = Fetcher(settings, guard=network_guard(settings, ["127.0.0.1"]))
        try:
            with pytest.raises(BlockedAddress):
                await fetcher.fetch(Request(url))
        finally:
            await fetcher.close()

    asyncio.run(main())
    assert proxy.targets == []


def test_the_proxy_setting_is_a_cli_flag(serve, proxy, tmp_path):
    server = serve(shop(1))
    spider = tmp_path / "spider.py"
    spider.write_text(
        "from crawler import Spider\n"
        "class S(Spider):\n"
        f"    start_urls = [{server.url + '/'!r}]\n"
        "    def parse(self, response):\n"
        "        yield {'url': response.url}\n",
        encoding="utf-8",
    )
    crawl = str(Path(sys.executable).parent / "crawl")
    command = [crawl, str(spider), "-o", "-", "--proxy", proxy.url, "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    assert sorted(urlsplit(target).path for target in proxy.targets) == ["/", "/robots.txt"]


@pytest.mark.parametrize("through_proxy", [False, True])
def test_aiohttp_loads_only_for_a_proxy(serve, proxy, tmp_path, through_proxy):
    """Our own pool fetches; aiohttp's, which speaks to proxies, loads with one."""
    server = serve(shop(1))
    spider = tmp_path / "spider.py"
    spider.write_text(
        "import sys\n"
        "from crawler import Spider\n"
        "class S(Spider):\n"
        f"    start_urls = [{server.url + '/'!r}]\n"
        "    def parse(self, response):\n"
        "        yield {'url': response.url}\n"
        "    def closed(self, reason):\n"
        "        print('aiohttp' in sys.modules, file=sys.stderr)\n",
        encoding="utf-8",
    )
    crawl = str(Path(sys.executable).parent / "crawl")
    command = [crawl, str(spider), "-o", "-", "--no-progress", "--log-level", "ERROR"]
    command += ["--proxy", proxy.url] if through_proxy else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    assert done.stderr.split()[0] == str(through_proxy)


@pytest.mark.parametrize("bad", ["socks5://127.0.0.1:1080", "127.0.0.1:3128", "http://"])
def test_a_proxy_that_is_not_an_http_url_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="proxy must be"):
        Settings(proxy=bad)


# -- the user's own client ---------------------------------------------------------------


def test_a_client_factory_adds_hooks_and_auth_to_every_request(serve, tmp_path):
    server = serve(shop(2))
    seen: list[httpx.Response] = []

    async def sign(request: httpx.Request) -> None:
        request.headers["X-Signature"] = f"sig:{request.method}:{request.url.path}"

    async def record(response: httpx.Response) -> None:
        seen.append(response)

    def client(transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
        hooks: dict[str, Any] = {"request": [sign], "response": [record]}
        return httpx.AsyncClient(transport=transport, auth=("bot", "secret"), event_hooks=hooks)

    stats = crawler.run(
        LinkSpider, spider_args={"start_urls": [server.url + "/"]}, client_factory=client, parse_workers=0
    )
    assert stats.pages == 3
    assert [hit.headers["x-signature"] for hit in server.hits] == [
        f"sig:GET:{hit.target}" for hit in server.hits
    ]
    assert all(hit.headers["authorization"] == "Basic Ym90OnNlY3JldA==" for hit in server.hits)
    assert len(seen) == len(server.hits) == 4  # robots.txt too


def test_every_request_of_a_crawl_is_an_httpx_request(serve, crawl_items, monkeypatch):
    """Count what reaches the transport: every request the server saw was an
    ``httpx.Request`` answered by an ``httpx.Response``."""
    sent: list[tuple[httpx.Request, httpx.Response]] = []
    original = PoolTransport.handle_async_request

    async def counting(self: PoolTransport, request: httpx.Request) -> httpx.Response:
        response = await original(self, request)
        sent.append((request, response))
        return response

    monkeypatch.setattr(PoolTransport, "handle_async_request", counting)
    server = serve(shop(5))
    items, _ = crawl_items(LinkSpider, [server.url + "/"], parse_workers=1)
    assert len(items) == 6
    targets = sorted(server.url + hit.target for hit in server.hits)
    assert sorted(str(request.url) for request, _ in sent) == targets
    assert all(isinstance(r, httpx.Request) and isinstance(a, httpx.Response) for r, a in sent)


# -- idle connections --------------------------------------------------------------------


def test_idle_connections_are_bounded_least_recently_used_first(monkeypatch):
    monkeypatch.setattr("crawler.fetch.transport.idle_connection_budget", lambda descriptors, connections: 2)
    servers = [SiteServer({"/": Page(b"hi")}).start() for _ in range(4)]

    async def main() -> list[int]:
        fetcher = Fetcher(Settings())
        for server in servers:
            await fetcher.fetch(Request(server.url + "/"))
        await fetcher.fetch(Request(servers[3].url + "/"))  # the most recent one is kept
        await fetcher.fetch(Request(servers[0].url + "/"))  # the oldest was closed: a new one
        await fetcher.close()
        return [server.connections for server in servers]

    try:
        assert asyncio.run(main()) == [2, 1, 1, 1]
    finally:
        for server in servers:
            server.stop()


# -- hosts that never answer -------------------------------------------------------------


def test_silent_hosts_do_not_starve_a_normal_site(serve):
    """Eight hosts accept connections and never answer; with 4 workers they could
    hold all of them until the 60 s deadline. Attempts on hosts that never answered
    may hold only part of them, and the first-byte deadline finds them out in 2 s,
    so the normal site is crawled while they wait: the crawl ends on ``max_pages``
    long before the total deadline (only what was in flight is waited for, 5 s)."""
    silent = [HostileServer(never_answers()).start() for _ in range(8)]
    server = serve(shop(10))
    urls = [host.url + "/" for host in silent] + [server.url + "/"]
    started = time.monotonic()
    try:
        stats = crawler.run(
            LinkSpider,
            spider_args={"start_urls": urls},
            concurrency=4,
            first_byte_timeout=2,
            timeout=60,
            max_pages=11,
            parse_workers=0,
        )
    finally:
        for host in silent:
            host.stop()
    assert (stats.pages, stats.finish_reason) == (11, "max_pages")
    assert len(server.hits) == 12
    assert time.monotonic() - started < 30  # half the total deadline, which nobody waited for


def test_a_dead_host_is_found_out_by_the_first_byte_deadline():
    """The total deadline is 60 s; the server never sends a byte; the first-byte
    deadline ends the attempt."""
    with HostileServer(never_answers()) as silent, pytest.raises(FetchTimeout):
        asyncio.run(fetch_real(silent.url + "/", first_byte_timeout=0.5, timeout=60))


def test_a_connection_that_cannot_be_made_is_found_out_by_the_connect_deadline():
    """A listening socket whose accept queue is full drops further SYNs, so a
    connection attempt hangs; the connect deadline ends it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        with socket.create_connection(listener.getsockname(), timeout=1), pytest.raises(FetchTimeout):
            asyncio.run(fetch_real(url, connect_timeout=0.5, timeout=60))


async def fetch_real(url: str, **settings: Any) -> None:
    fetcher = Fetcher(Settings(**settings))
    try:
        await fetcher.fetch(Request(url))
    finally:
        await fetcher.close()


def test_silent_hosts_found_mid_crawl_hold_at_most_half_the_workers(serve):
    """The site links to eight hosts (same domain, other ports) that never answer,
    and the deadlines are long: without a bound they would take all 4 workers for
    60 s. Attempts on hosts that never answered hold at most 2, and the site's own
    pages go on through the others."""
    silent = [HostileServer(never_answers()).start() for _ in range(8)]
    routes = shop(10)
    routes["/"] = html("home", [host.url + "/" for host in silent] + [f"/p/{i}" for i in range(10)])
    server = serve(routes)
    started = time.monotonic()

    async def until_the_site_is_done() -> list[dict[str, Any]]:
        items = []
        settings = {"first_byte_timeout": 60, "timeout": 60, "obey_robots": False, "autothrottle": False}
        start = {"start_urls": [server.url + "/"]}
        async for item in crawler.crawl(
            LinkSpider, spider_args=start, concurrency=4, parse_workers=0, **settings
        ):
            items.append(item)
            if len(items) == 11:
                break  # stops the crawl: what is in flight gets a few seconds, then is given up
        return items

    try:
        items = asyncio.run(until_the_site_is_done())
    finally:
        for host in silent:
            host.stop()
    assert sorted(item["url"] for item in items) == sorted(server.url + hit.target for hit in server.hits)
    assert sum(host.connections for host in silent) <= 2  # two at a time, and neither answered
    assert time.monotonic() - started < 30  # half the deadline, which nobody waited for


# -- file descriptors ------------------------------------------------------------------


class ManyHosts(ThreadedServer):
    """One tiny HTTP/1.1 server (keep-alive) listening on ``count`` loopback
    addresses, 127.0.1.1 and up: each is a host of its own to the crawler. Every
    path answers with a page linking to ``/a`` and ``/b``; robots.txt is a 404."""

    PAGE = b'<html><head><title>t</title></head><body><a href="/a">a</a><a href="/b">b</a></body></html>'

    def __init__(self, count: int) -> None:
        super().__init__()
        self.addresses = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(count)]
        self.requests = 0

    def __enter__(self) -> ManyHosts:
        self.urls = [f"http://{host}:{port}/" for host, port in self._start(self.addresses, timeout=10)]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                robots = head.startswith(b"GET /robots.txt ")
                status, body = (b"404 Not Found", b"") if robots else (b"200 OK", self.PAGE)
                writer.write(
                    b"HTTP/1.1 %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
                    % (status, len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def test_a_crawl_of_many_hosts_under_a_low_descriptor_limit_fetches_every_host(tmp_path):
    """300 hosts, each leaving a keep-alive connection behind, under ``ulimit -n 256``:
    idle connections are bounded to what the limit allows, so every host is fetched
    (3 pages and a robots.txt each), nothing is dropped, and the crawl ends cleanly."""
    with ManyHosts(300) as hosts:
        spider = tmp_path / "spider.py"
        spider.write_text(
            "from crawler import Spider\n"
            "class Many(Spider):\n"
            f"    start_urls = {hosts.urls!r}\n"
            "    def parse(self, response):\n"
            "        yield {'url': response.url}\n"
            "        yield from response.follow_all('a')\n",
            encoding="utf-8",
        )
        crawl = Path(sys.executable).parent / "crawl"
        stats = tmp_path / "stats.json"
        command = f"ulimit -n 256 && exec {crawl} {spider} -O {tmp_path / 'items.jsonl'} --stats {stats}"
        done = subprocess.run(
            ["bash", "-c", command + " --no-progress --parse-workers 1"],
            capture_output=True,
            text=True,
            timeout=110,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr and "Too many open files" not in done.stderr
        counters = json.loads(stats.read_text(encoding="utf-8"))
        assert counters["pages"] == 900
        assert counters["hosts"] == 300
        assert not counters["errors"] and set(counters["dropped"]) <= {"duplicate"}
        assert hosts.requests == 1200


def test_the_soft_descriptor_limit_is_raised_where_the_hard_limit_allows():
    code = (
        "import resource;"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE);"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard));"
        "from crawler.fetch.transport import raise_descriptor_limit;"
        "print(raise_descriptor_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    raised, soft, hard = (int(word) for word in done.stdout.split())
    assert raised == soft
    assert soft == (min(hard, 1 << 16) if hard > 256 else 256)
