"""Every spelling of a private address we could think of, on every path a URL can
take into a fetch, against a canary server that must never be reached.

The canary listens on 127.0.3.11, ::1 and 127.0.0.1 (one port for all three). No
test names its host: the start pages live on 127.0.0.1, on other ports, and
naming is per host name, so 127.0.3.11 and ``localhost`` stay guarded. Each
spelling is tried on each path: links, redirects, robots.txt redirects, sitemaps,
``Spider.fetch``, ``crawl parse`` and ``crawl shell``. A path is tested with all
spellings in one crawl (or one command); each spelling has its own origin whose
robots.txt redirects to it (the audit's way past the guard), whose ``/hop``
redirects to it, and whose ``/page`` is an ordinary page. The last test shows the
canary is reachable at all: with ``allow_private`` on, it is reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import crawler
from crawler import Response, Spider
from crawler._errors import BlockedAddress, FetchError
from crawler._request import Request
from crawler._settings import Settings
from crawler.fetch.addressguard import AddressGuard
from crawler.fetch.client import Fetcher
from crawler.sites.server import Page, SiteServer

from ..support.items import read_jsonl
from ..support.sites import html

pytestmark = pytest.mark.timeout(120)

CANARY_IPV4 = "127.0.3.11"  # 0x7f00030b, 2130707211

# (id, host as written in the URL; {P} is the canary's port, {S} a start server's)
SPELLINGS: list[tuple[str, str]] = [
    ("dotted", "127.0.3.11:{P}"),
    ("decimal", "2130707211:{P}"),
    ("hex", "0x7f00030b:{P}"),
    ("hex-upper", "0X7F00030B:{P}"),
    ("octal", "017700001413:{P}"),
    ("octal-dotted", "0177.0.03.013:{P}"),
    ("hex-dotted", "0x7f.0x0.0x3.0xb:{P}"),
    ("three-parts", "127.0.779:{P}"),
    ("two-parts", "127.779:{P}"),
    ("hex-two-parts", "0x7f.779:{P}"),
    ("trailing-dot", "127.0.3.11.:{P}"),
    ("percent-encoded", "%31%32%37.0.3.11:{P}"),
    ("percent-encoded-dots", "127%2E0%2E3%2E11:{P}"),
    ("fullwidth-digits", "\uff11\uff12\uff17.\uff10.\uff13.\uff11\uff11:{P}"),
    ("ideographic-dots", "127\u30020\u30023\u300211:{P}"),
    ("userinfo", "user:pass@127.0.3.11:{P}"),
    ("userinfo-named-host", "127.0.0.1:{S}@127.0.3.11:{P}"),
    ("double-at", "a@b@127.0.3.11:{P}"),
    ("ipv4-mapped", "[::ffff:127.0.3.11]:{P}"),
    ("ipv4-mapped-hex", "[::ffff:7f00:30b]:{P}"),
    ("ipv4-mapped-long", "[0:0:0:0:0:ffff:7f00:30b]:{P}"),
    ("ipv4-mapped-zone", "[::ffff:7f00:30b%251]:{P}"),
    ("ipv4-mapped-zone-name", "[::ffff:7f00:30b%25lo]:{P}"),
    ("ipv4-compatible", "[::127.0.3.11]:{P}"),
    ("nat64", "[64:ff9b::7f00:30b]:{P}"),
    ("6to4", "[2002:7f00:30b::1]:{P}"),
    ("ipv6-loopback", "[::1]:{P}"),
    ("ipv6-loopback-long", "[0:0:0:0:0:0:0:1]:{P}"),
    ("ipv6-loopback-zone", "[::1%251]:{P}"),
    ("ipv6-unspecified", "[::]:{P}"),
    ("link-local-zone", "[fe80::1%251]:{P}"),
    ("metadata-mapped-zone", "[::ffff:a9fe:a9fe%251]:{P}"),
    ("metadata-mapped", "[::ffff:169.254.169.254]:{P}"),
    ("unspecified", "0.0.0.0:{P}"),
    ("zero", "0:{P}"),
    ("localhost", "localhost:{P}"),
    ("localhost-upper", "LOCALHOST:{P}"),
]
IDS = [name for name, _ in SPELLINGS]
MIB = 1024 * 1024
FAST: dict[str, Any] = {"timeout": 5, "retries": 0, "parse_workers": 0}


@dataclass
class Site:
    """The canary, and one origin per spelling (``origins[i]`` for ``SPELLINGS[i]``)."""

    canaries: list[SiteServer]
    origins: list[SiteServer]
    spelled: list[str]  # the spelled canary URLs, without a path

    @property
    def canary_connections(self) -> int:
        return sum(server.connections for server in self.canaries)


def start_canaries() -> list[SiteServer]:
    first = SiteServer({"/": html("canary"), "/robots.txt": Page(b"")}, host=CANARY_IPV4).start()
    canaries = [first]
    for host in ("::1", "127.0.0.1"):
        with contextlib.suppress(OSError):  # the port may be taken there: fewer canaries
            canaries.append(SiteServer(first.routes, host=host, port=first.port).start())
    return canaries


def moved(target: str) -> Page:
    """A redirect; a non-ASCII target goes out as UTF-8 bytes, as servers send it."""
    return Page(status=302, headers=(("Location", target.encode().decode("latin-1")),))


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    canaries = start_canaries()
    origins: list[SiteServer] = []
    spelled: list[str] = []
    try:
        for _, host in SPELLINGS:
            origin = SiteServer().start()
            url = "http://" + host.format(P=canaries[0].port, S=origin.port)
            origin.routes = {"/robots.txt": moved(url + "/robots.txt"), "/hop": moved(url + "/"),
                             "/page": html("page")}  # fmt: skip
            origins.append(origin)
            spelled.append(url)
        yield Site(canaries, origins, spelled)
    finally:
        for server in canaries + origins:
            server.stop()


@pytest.fixture(autouse=True)
def canary_never_reached(site: Site, request: pytest.FixtureRequest) -> Iterator[None]:
    before = site.canary_connections
    yield
    if request.node.name != CONTROL:
        assert site.canary_connections == before, "the canary was reached"


# -- one spelling at a time: the guard itself ---------------------------------------------


@pytest.mark.parametrize("index", range(len(SPELLINGS)), ids=IDS)
def test_the_fetcher_refuses_every_spelling(site: Site, index: int) -> None:
    """Straight to the fetcher, as a robots.txt redirect reaches it: refused before
    any connection, whatever the spelling (the host names by the resolver)."""

    async def fetch() -> None:
        fetcher = Fetcher(Settings(timeout=5), guard=AddressGuard(["127.0.0.1"]))
        try:
            await fetcher.fetch(Request(site.spelled[index] + "/"))
        finally:
            await fetcher.close()

    with pytest.raises(BlockedAddress):
        asyncio.run(fetch())


# -- every path, all spellings at once ---------------------------------------------------


class TitleSpider(Spider):
    def parse(self, response: Response) -> Any:
        yield {"url": response.url}
        yield from response.follow_all("a")


class FetchingSpider(Spider):
    """Fetches every URL in ``targets`` with ``Spider.fetch`` and reports the outcome."""

    targets: list[str] = []

    async def parse(self, response: Response) -> Any:
        for url in self.targets:
            try:
                await self.fetch(url)
                yield {"target": url, "outcome": "fetched"}
            except FetchError as exc:
                yield {"target": url, "outcome": exc.kind}


def crawl(spider: type[Spider], start_urls: list[str], tmp_path: Path, **settings: Any) -> Any:
    output = tmp_path / "items.jsonl"
    args = {"start_urls": start_urls, **settings.pop("spider_args", {})}
    stats = crawler.run(spider, output=str(output), overwrite=True, spider_args=args, **{**FAST, **settings})
    return read_jsonl(output), stats


def pages(site: Site) -> list[str]:
    return [origin.url + "/page" for origin in site.origins]


def test_robots_txt_redirects(site: Site, tmp_path: Path) -> None:
    items, stats = crawl(TitleSpider, pages(site), tmp_path)
    assert items == []
    assert stats["errors/blocked_address"] == len(SPELLINGS) and stats.errors == len(SPELLINGS)
    assert stats["dropped/robots_unreachable"] == 0


def test_links(site: Site, serve: Any, tmp_path: Path) -> None:
    links = [url + "/" for url in site.spelled] + pages(site)
    home = serve({"/": html("home", links)})
    items, stats = crawl(TitleSpider, [home.url + "/"], tmp_path)
    assert [item["url"] for item in items] == [home.url + "/"]
    assert stats["errors/blocked_address"] == len(SPELLINGS)  # the origins' robots.txt
    assert stats["dropped/offsite"] + stats["dropped/invalid_url"] == len(SPELLINGS)


def test_redirects(site: Site, tmp_path: Path) -> None:
    hops = [origin.url + "/hop" for origin in site.origins]
    items, stats = crawl(TitleSpider, hops, tmp_path, obey_robots=False)
    assert items == []
    refused = stats["dropped/redirect_offsite"] + stats["dropped/redirect_invalid_url"]
    assert refused == len(SPELLINGS) and stats.errors == 0


def test_sitemaps(site: Site, serve: Any, tmp_path: Path) -> None:
    locs = [url + "/" for url in site.spelled] + pages(site)
    xml = "".join(f"<url><loc>{loc}</loc></url>" for loc in locs)
    sitemap = Page(f"<urlset>{xml}</urlset>".encode(), headers=(("Content-Type", "application/xml"),))
    home = serve({"/sitemap.xml": sitemap})
    args = {"sitemap_urls": [home.url + "/sitemap.xml"]}
    items, stats = crawl(TitleSpider, [], tmp_path, spider_args=args, allowed_domains=["127.0.0.1"])
    assert items == []
    assert stats["errors/blocked_address"] == len(SPELLINGS)
    assert stats["dropped/offsite"] + stats["dropped/invalid_url"] == len(SPELLINGS)


def test_spider_fetch(site: Site, serve: Any, tmp_path: Path) -> None:
    home = serve({"/": html("home")})
    targets = pages(site) + [url + "/" for url in site.spelled]
    items, _ = crawl(FetchingSpider, [home.url + "/"], tmp_path, spider_args={"targets": targets})
    outcomes = {item["target"]: item["outcome"] for item in items}
    assert [outcomes[url] for url in pages(site)] == ["blocked_address"] * len(SPELLINGS)
    assert {outcomes[url + "/"] for url in site.spelled} <= {"blocked_address", "refused"}


SPIDER_FILE = """
from crawler import Spider
from crawler._errors import FetchError

class FetchingSpider(Spider):
    name = "fetching"
    targets = {targets!r}

    async def parse(self, response):
        for url in self.targets:
            try:
                await self.fetch(url)
                yield {{"target": url, "outcome": "fetched"}}
            except FetchError as exc:
                yield {{"target": url, "outcome": exc.kind}}
"""


def crawl_command(*args: str) -> subprocess.CompletedProcess[str]:
    crawl_bin = str(Path(sys.executable).parent / "crawl")
    return subprocess.run([crawl_bin, *args], capture_output=True, text=True, timeout=90, check=False)


def test_crawl_parse(site: Site, serve: Any, tmp_path: Path) -> None:
    """The named page's callback fetches every origin's page: each robots.txt
    redirects to a spelling of the canary."""
    home = serve({"/": html("home")})
    spider = tmp_path / "spider.py"
    spider.write_text(SPIDER_FILE.format(targets=pages(site)))
    result = crawl_command("parse", home.url + "/", str(spider), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    outcomes = [item["outcome"] for item in json.loads(result.stdout)["items"]]
    assert outcomes == ["blocked_address"] * len(SPELLINGS)


SHELL_CODE = """
from crawler._errors import FetchError
outcomes = []
for url in {urls!r}:
    try:
        fetch(url)
        outcomes.append("fetched")
    except FetchError as exc:
        outcomes.append(exc.kind)
print("OUTCOMES", " ".join(outcomes))
"""


@pytest.mark.parametrize("route", ["/page", "/hop"], ids=["robots-redirect", "redirect"])
def test_crawl_shell(site: Site, serve: Any, route: str) -> None:
    """Every URL typed into the shell is named; where it redirects, or its
    robots.txt does, is not."""
    home = serve({"/": html("home")})
    urls = [origin.url + route for origin in site.origins]
    robots = "--obey-robots" if route == "/page" else "--no-obey-robots"
    result = crawl_command("shell", home.url + "/", "-c", SHELL_CODE.format(urls=urls), robots)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("OUTCOMES"))
    if route == "/hop":  # a redirect is vetted first: a zone id makes it no URL at all
        expected = ["refused" if "%25" in host else "blocked_address" for _, host in SPELLINGS]
    else:
        expected = ["blocked_address"] * len(SPELLINGS)
    assert line.split()[1:] == expected


CONTROL = "test_the_canary_is_reached_when_private_addresses_are_allowed"


def test_the_canary_is_reached_when_private_addresses_are_allowed(site: Site, tmp_path: Path) -> None:
    """The control: the same robots.txt redirects reach the canary once the guard
    lets private addresses through, so a bypass would not go unseen above."""
    reachable = [IDS.index(name) for name in ("dotted", "userinfo", "double-at")]
    before = site.canary_connections
    crawl(TitleSpider, [pages(site)[i] for i in reachable], tmp_path, allow_private=True)
    assert site.canary_connections - before >= len(reachable)
