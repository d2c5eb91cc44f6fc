"""Sitemap reading, from the sitemaps.org schema and its extensions' namespaces; and
crawls driven by robots.txt -> index -> sitemaps, with a spider's sitemap_filter."""

# ruff: noqa: RUF001  (Cyrillic and Japanese sample URLs are the point)

from __future__ import annotations

import gzip
import tracemalloc
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from crawler import Response, Spider
from crawler._errors import ResponseTooLarge
from crawler._sitemaps import SitemapEntry, SitemapError, parse_w3c_datetime, sitemap_entries
from crawler.sites.server import Page
from crawler.testing import fake_response

from .support.sites import html, robots

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
IMAGE_NS = "http://www.google.com/schemas/sitemap-image/1.1"
NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
VIDEO_NS = "http://www.google.com/schemas/sitemap-video/1.1"
XHTML_NS = "http://www.w3.org/1999/xhtml"

# The protocol's own example (sitemaps.org/protocol.html), entity-escaped URL included.
PROTOCOL_URLSET = f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="{SITEMAP_NS}">
   <url>
      <loc>http://www.example.com/</loc>
      <lastmod>2005-01-01</lastmod>
      <changefreq>monthly</changefreq>
      <priority>0.8</priority>
   </url>
   <url>
      <loc>http://www.example.com/catalog?item=12&amp;desc=vacation_hawaii</loc>
      <changefreq>weekly</changefreq>
   </url>
   <url>
      <loc>http://www.example.com/catalog?item=83&amp;desc=vacation_usa</loc>
      <lastmod>2004-12-23T18:00:15+00:00</lastmod>
      <priority>0.3</priority>
   </url>
</urlset>""".encode()
PROTOCOL_INDEX = f"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="{SITEMAP_NS}">
   <sitemap>
      <loc>http://www.example.com/sitemap1.xml.gz</loc>
      <lastmod>2004-10-01T18:23:17+00:00</lastmod>
   </sitemap>
   <sitemap>
      <loc>http://www.example.com/sitemap2.xml.gz</loc>
      <lastmod>2005-01-01</lastmod>
   </sitemap>
</sitemapindex>""".encode()

# Google's extensions, as their documentation shows them: none of their URLs is a page.
EXTENSIONS = f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="{SITEMAP_NS}" xmlns:image="{IMAGE_NS}" xmlns:news="{NEWS_NS}"
        xmlns:video="{VIDEO_NS}" xmlns:xhtml="{XHTML_NS}">
  <url>
    <loc>https://example.com/sample1.html</loc>
    <image:image><image:loc>https://example.com/image.jpg</image:loc></image:image>
    <image:image><image:loc>https://example.com/photo.jpg</image:loc></image:image>
  </url>
  <url>
    <loc>http://www.example.org/business/article55.html</loc>
    <news:news>
      <news:publication>
        <news:name>The Example Times</news:name><news:language>en</news:language>
      </news:publication>
      <news:publication_date>2008-12-23</news:publication_date>
      <news:title>Companies A, B in Merger Talks</news:title>
    </news:news>
  </url>
  <url>
    <loc>https://www.example.com/videos/some_video_landing_page.html</loc>
    <video:video>
      <video:thumbnail_loc>https://www.example.com/thumbs/123.jpg</video:thumbnail_loc>
      <video:title>Grilling steaks for summer</video:title>
      <video:content_loc>http://streamserver.example.com/video123.mp4</video:content_loc>
      <video:player_loc>https://www.example.com/videoplayer.php?video=123</video:player_loc>
    </video:video>
  </url>
  <url>
    <loc>https://www.example.com/english/page.html</loc>
    <xhtml:link rel="alternate" hreflang="de" href="https://www.example.de/deutsch/page.html"/>
    <xhtml:link rel="alternate" hreflang="en" href="https://www.example.com/english/page.html"/>
  </url>
</urlset>""".encode()
EXTENSION_PAGES = (
    "https://example.com/sample1.html",
    "http://www.example.org/business/article55.html",
    "https://www.example.com/videos/some_video_landing_page.html",
    "https://www.example.com/english/page.html",
)


def urlset(*locs: str, namespace: str = SITEMAP_NS) -> str:
    urls = "".join(f"<url><loc>{loc}</loc></url>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="{namespace}">{urls}</urlset>'


def read(body: bytes, url: str = "http://a.test/sitemap.xml") -> list[SitemapEntry]:
    return list(sitemap_entries(body, url, 10**7))


def locs(body: bytes, url: str = "http://a.test/sitemap.xml") -> list[tuple[str, str]]:
    return [(entry.kind, entry.loc) for entry in read(body, url)]


def test_the_protocols_urlset_with_every_field() -> None:
    assert read(PROTOCOL_URLSET) == [
        SitemapEntry("http://www.example.com/", lastmod="2005-01-01", changefreq="monthly", priority="0.8"),
        SitemapEntry("http://www.example.com/catalog?item=12&desc=vacation_hawaii", changefreq="weekly"),
        SitemapEntry(
            "http://www.example.com/catalog?item=83&desc=vacation_usa",
            lastmod="2004-12-23T18:00:15+00:00",
            priority="0.3",
        ),
    ]


def test_the_protocols_sitemap_index() -> None:
    assert read(PROTOCOL_INDEX) == [
        SitemapEntry(
            "http://www.example.com/sitemap1.xml.gz", "sitemap", lastmod="2004-10-01T18:23:17+00:00"
        ),
        SitemapEntry("http://www.example.com/sitemap2.xml.gz", "sitemap", lastmod="2005-01-01"),
    ]


def test_image_news_and_video_urls_are_not_pages() -> None:
    entries = read(EXTENSIONS)
    assert tuple(entry.loc for entry in entries) == EXTENSION_PAGES
    assert entries[3].alternates == (
        "https://www.example.de/deutsch/page.html",
        "https://www.example.com/english/page.html",
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # issue 14's quoted bugs
        (
            f"<urlset xmlns='{SITEMAP_NS}'><!-- <url><loc>http://a.test/old</loc></url> -->"
            "<url><loc>http://a.test/new</loc></url></urlset>",
            [("page", "http://a.test/new")],
        ),
        (f"<urlset xmlns='{SITEMAP_NS}'><url><LOC>http://a.test/x</LOC></url></urlset>", []),
        (f"<urlset xmlns='{SITEMAP_NS}'><URL><loc>http://a.test/x</loc></URL></urlset>", []),
        (
            "<!--" + " " * 5000 + f"--><sitemapindex xmlns='{SITEMAP_NS}'>"
            "<sitemap><loc>http://a.test/s.xml</loc></sitemap></sitemapindex>",
            [("sitemap", "http://a.test/s.xml")],
        ),
        # namespaces: the protocol's, none, Google's old ones; others are not sitemaps
        (urlset("http://a.test/p", namespace=""), [("page", "http://a.test/p")]),
        (
            urlset("http://a.test/p", namespace="http://www.google.com/schemas/sitemap/0.84"),
            [("page", "http://a.test/p")],
        ),
        (
            f"<s:urlset xmlns:s='{SITEMAP_NS}'><s:url><s:loc>http://a.test/p</s:loc></s:url></s:urlset>",
            [("page", "http://a.test/p")],
        ),
        # a loc outside its place is nothing; the first loc of an entry counts
        (f"<urlset xmlns='{SITEMAP_NS}'><loc>http://a.test/x</loc></urlset>", []),
        (
            f"<urlset xmlns='{SITEMAP_NS}'><url><loc>http://a.test/1</loc><loc>http://a.test/2</loc></url></urlset>",
            [("page", "http://a.test/1")],
        ),
        (f"<urlset xmlns='{SITEMAP_NS}'><url><lastmod>2024-01-01</lastmod></url></urlset>", []),
        (f"<urlset xmlns='{SITEMAP_NS}'><url><loc>  </loc></url></urlset>", []),
        (f"<sitemapindex xmlns='{SITEMAP_NS}'><url><loc>http://a.test/x</loc></url></sitemapindex>", []),
        # text, entities, CDATA and whitespace
        (urlset("\n   http://a.test/2?x=1&amp;y=2\n  "), [("page", "http://a.test/2?x=1&y=2")]),
        (urlset("<![CDATA[http://a.test/3?a=1&b=2]]>"), [("page", "http://a.test/3?a=1&b=2")]),
        (urlset("http://a.test/&#x65E5;&#26412;"), [("page", "http://a.test/日本")]),
    ],
)
def test_sitemap_rules(body: str, expected: list[tuple[str, str]]) -> None:
    assert locs(body.encode()) == expected


# Sitemaps of real sites in their languages, in the encodings they declare.
RUSSIAN = urlset("https://пример.рф/каталог/книги?автор=Пушкин", "https://пример.рф/о-нас")
JAPANESE = urlset("https://例え.jp/商品/本?著者=夏目漱石", "https://例え.jp/会社概要")


@pytest.mark.parametrize(
    ("text", "codec", "declared"),
    [
        (RUSSIAN, "utf-8", "UTF-8"),
        (RUSSIAN, "cp1251", "windows-1251"),
        (RUSSIAN, "koi8-r", "KOI8-R"),
        (JAPANESE, "cp932", "Shift_JIS"),
        (JAPANESE, "euc_jp", "EUC-JP"),
        (JAPANESE, "utf-16", "UTF-16"),  # with a BOM
        (JAPANESE, "utf-16-le", "UTF-16"),  # without one
        (JAPANESE, "utf-16-be", "UTF-16"),
        (urlset("https://a.test/café"), "cp1252", "ISO-8859-1"),  # the label means windows-1252
    ],
)
def test_declared_encodings_and_utf16(text: str, codec: str, declared: str) -> None:
    body = text.replace('encoding="UTF-8"', f'encoding="{declared}"').encode(codec)
    expected = [entry.loc for entry in read(text.encode())]
    assert [entry.loc for entry in read(body)] == expected
    assert len(expected) >= 1


def test_a_gzipped_sitemap_is_decompressed() -> None:
    assert read(gzip.compress(PROTOCOL_URLSET)) == read(PROTOCOL_URLSET)


def test_gzipped_sitemap_bomb_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"<urlset>" + b" " * (20 << 20) + b"</urlset>")
    with pytest.raises(ResponseTooLarge):
        list(sitemap_entries(bomb, "http://a.test/s.xml.gz", 1 << 20))


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>http://a.test/&lol3;</loc></url></urlset>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>http://a.test/&xxe;</loc></url></urlset>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE urlset SYSTEM "http://127.0.0.1:9/evil.dtd">
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>http://a.test/p</loc></url></urlset>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD])
def test_doctypes_are_refused_so_no_entity_expands(body: bytes) -> None:
    with pytest.raises(SitemapError, match="DOCTYPE"):
        read(body)


def test_entries_before_a_fault_are_kept_then_the_fault_is_raised() -> None:
    body = urlset("http://a.test/1", "http://a.test/2").encode().replace(b"</urlset>", b"<url><loc>x&y</loc>")
    entries = sitemap_entries(body, "http://a.test/s.xml", 10**6)
    assert [next(entries).loc, next(entries).loc] == ["http://a.test/1", "http://a.test/2"]
    with pytest.raises(SitemapError, match="not well-formed"):
        next(entries)


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Not found</body></html>",
        b"<rss><channel/></rss>",
        b"<urlset><url><loc>http://a.test/p",
        urlset("http://a.test/p", namespace="http://example.com/not-sitemaps").encode(),
    ],
)
def test_what_is_no_sitemap_raises(body: bytes) -> None:
    with pytest.raises(SitemapError):
        read(body)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "body",
    [
        # issue 18 item 8: inputs that made the old <loc> regex backtrack for minutes
        b"<loc>" + b" \t\n" * 40_000,
        b"<urlset><url><loc><![CDATA[" + b" " * 100_000,
        b"<x:loc " + b"a" * 100_000,
        b"<urlset>" + b"<loc>" * 20_000,
    ],
)
def test_hostile_sitemaps_are_read_in_linear_time(body: bytes) -> None:
    with pytest.raises(SitemapError):
        read(body)


def test_a_50k_entry_sitemap_streams_in_bounded_memory() -> None:
    body = urlset(*(f"https://a.test/product/{i}?ref=sitemap" for i in range(50_000))).encode()
    tracemalloc.start()
    try:
        count = sum(1 for _ in sitemap_entries(body, "http://a.test/s.xml", 10**8))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert peak < len(body)  # a tree of it would take many times the body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b"http://a.test/1\nhttps://a.test/2\r\n\r\n  http://a.test/3  \r",
            ["http://a.test/1", "https://a.test/2", "http://a.test/3"],
        ),
        (b"\xef\xbb\xbfhttp://a.test/\xe6\x97\xa5\n", ["http://a.test/日"]),
        (b"http://a.test/\xff\nhttp://a.test/ok\n", ["http://a.test/ok"]),  # not UTF-8: skipped
        (b"Not found\nftp://a.test/x\nhttp://a.test/a b\n", []),
    ],
)
def test_text_sitemaps(body: bytes, expected: list[str]) -> None:
    assert [loc for _, loc in locs(body, "http://a.test/sitemap.txt")] == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b"User-agent: *\nSitemap: http://a.test/i.xml\nsitemap:http://a.test/s.xml\n",
            ["http://a.test/i.xml", "http://a.test/s.xml"],
        ),
        # issue 14: lines after bare CR endings, and URLs that are not UTF-8
        (b"User-agent: *\rDisallow: /x\rSitemap: http://a.test/cr.xml\r", ["http://a.test/cr.xml"]),
        (b"User-agent: *\r\nSitemap: http://a.test/crlf.xml\r\n", ["http://a.test/crlf.xml"]),
        (b"Sitemap: http://a.test/\xff.xml\nSitemap: http://a.test/ok.xml", ["http://a.test/ok.xml"]),
        (b"Sitemap: http://a.test/\xd1\x84.xml", ["http://a.test/ф.xml"]),
        (b"SITEMAP :  http://a.test/s.xml # the main one\n", ["http://a.test/s.xml"]),
        (b"Sitemap:\nDisallow: /sitemap: http://a.test/no\n# Sitemap: http://a.test/comment\n", []),
    ],
)
def test_robots_sitemap_lines(body: bytes, expected: list[str]) -> None:
    assert locs(body, "http://a.test/robots.txt") == [("sitemap", url) for url in expected]


@pytest.mark.timeout(20)
def test_a_robots_txt_of_newlines_is_read_in_linear_time() -> None:
    """issue 18 item 8: 100 KB of newlines took 55 s through the old multiline regex."""
    assert locs(b"\n" * 100_000 + b"Sitemap: http://a.test/s.xml", "http://a.test/robots.txt") == [
        ("sitemap", "http://a.test/s.xml")
    ]
    assert locs(b" \n" * 50_000 + b"\r" * 50_000, "http://a.test/robots.txt") == []


UTC_PLUS_2 = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the W3C Datetime note's six forms
        ("1997", datetime(1997, 1, 1, tzinfo=UTC)),
        ("1997-07", datetime(1997, 7, 1, tzinfo=UTC)),
        ("1997-07-16", datetime(1997, 7, 16, tzinfo=UTC)),
        ("1997-07-16T19:20+01:00", datetime(1997, 7, 16, 18, 20, tzinfo=UTC)),
        ("1997-07-16T19:20:30+01:00", datetime(1997, 7, 16, 18, 20, 30, tzinfo=UTC)),
        ("1997-07-16T19:20:30.45+01:00", datetime(1997, 7, 16, 18, 20, 30, 450000, tzinfo=UTC)),
        ("2004-12-23T18:00:15Z", datetime(2004, 12, 23, 18, 0, 15, tzinfo=UTC)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC_PLUS_2)),
        (" 2024-05-01 ", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),  # no zone: UTC
        ("yesterday", None),
        ("2024-13-01", None),
        ("", None),
    ],
)
def test_lastmod_datetimes(text: str, expected: datetime | None) -> None:
    assert parse_w3c_datetime(text) == expected
    entry = SitemapEntry("http://a.test/", lastmod=text or None)
    assert entry.lastmod_datetime == expected


def test_entries_read_like_scrapys_dicts() -> None:
    entry = SitemapEntry("http://a.test/", lastmod="2024-01-01")
    assert (entry["loc"], entry["lastmod"], entry["kind"]) == ("http://a.test/", "2024-01-01", "page")
    for missing in ("priority", "nonsense", "lastmod_datetime"):
        with pytest.raises(KeyError):
            entry[missing]


XML = (("Content-Type", "application/xml"),)
GZIP = (("Content-Type", "application/gzip"),)


class SitemapSpider(Spider):
    sitemap_callback = "parse_product"

    def parse_product(self, response: Response) -> Any:
        yield {"url": response.url, "title": response.css_first("title").text()}


def test_crawl_from_robots_sitemap_lines_through_an_index(serve, crawl_items):
    server = serve()
    base = server.url
    pages = {f"/p/{i}": html(f"product {i}") for i in range(6)}
    listed = "".join(f"<url><loc>{base}/p/{i}</loc></url>" for i in range(3))
    gz = "".join(f"<url><loc>{base}/p/{i}</loc></url>" for i in range(3, 6))
    server.routes = {
        "/robots.txt": robots(f"User-agent: *\rDisallow: /p/5\rSitemap: {base}/index.xml\r"),
        "/index.xml": Page(f"<sitemapindex><sitemap><loc>{base}/a.xml</loc></sitemap>"
                           f"<sitemap><loc>{base}/b.xml.gz</loc></sitemap></sitemapindex>".encode()),
        "/a.xml": Page(f"<urlset>{listed}</urlset>".encode(), headers=XML),
        "/b.xml.gz": Page(gzip.compress(f"<urlset>{gz}</urlset>".encode()), headers=GZIP),
        **pages,
    }  # fmt: skip
    items, stats = crawl_items(SitemapSpider, [], spider_args={"sitemap_urls": [base + "/robots.txt"]})
    assert sorted(item["title"] for item in items) == [f"product {i}" for i in range(5)]
    assert stats["dropped/robots"] == 1  # /p/5: sitemaps do not bypass robots.txt


class RecentOnlySpider(SitemapSpider):
    """Scrapy's sitemap_filter example: only entries changed since a date."""

    since = datetime(2024, 1, 1, tzinfo=UTC)

    def sitemap_filter(self, entries: Iterable[SitemapEntry]) -> Iterator[SitemapEntry]:
        for entry in entries:
            if (entry.lastmod_datetime or self.since) >= self.since:
                yield entry


def test_sitemap_filter_skips_entries_before_they_are_requested(serve, crawl_items):
    server = serve()
    base = server.url

    def url(path: str, lastmod: str) -> str:
        return f"<url><loc>{base}{path}</loc><lastmod>{lastmod}</lastmod></url>"

    sitemap = (
        f'<urlset xmlns="{SITEMAP_NS}" xmlns:image="{IMAGE_NS}">'
        + url("/new", "2024-06-01")
        + url("/old", "2019-03-02T10:00:00+00:00")
        + f"<url><loc>{base}/undated</loc>"
        + f"<image:image><image:loc>{base}/photo.jpg</image:loc></image:image></url>"
        + "</urlset>"
    )
    index = (
        f'<sitemapindex xmlns="{SITEMAP_NS}">'
        f"<sitemap><loc>{base}/recent.xml</loc><lastmod>2024-07-01</lastmod></sitemap>"
        f"<sitemap><loc>{base}/archive.xml</loc><lastmod>2015-01-01</lastmod></sitemap></sitemapindex>"
    )
    server.routes = {
        "/index.xml": Page(index.encode(), headers=XML),
        "/recent.xml": Page(sitemap.encode(), headers=XML),
        "/archive.xml": Page(urlset(f"{base}/ancient").encode(), headers=XML),
        **{path: html(path) for path in ("/new", "/old", "/undated", "/ancient", "/photo.jpg")},
    }
    items, _ = crawl_items(RecentOnlySpider, [], spider_args={"sitemap_urls": [base + "/index.xml"]})
    assert sorted(item["title"] for item in items) == ["/new", "/undated"]
    assert not server.hits_for("/archive.xml")
    assert not server.hits_for("/photo.jpg")  # an image:loc is not a page


class AlternatesSpider(SitemapSpider):
    sitemap_alternate_links = True


def test_sitemap_alternate_links_are_followed_when_asked(serve, crawl_items):
    server = serve()
    base = server.url
    sitemap = (
        f'<urlset xmlns="{SITEMAP_NS}" xmlns:xhtml="{XHTML_NS}"><url><loc>{base}/en</loc>'
        f'<xhtml:link rel="alternate" hreflang="de" href="{base}/de"/></url></urlset>'
    )
    server.routes = {"/s.xml": Page(sitemap.encode(), headers=XML), "/en": html("en"), "/de": html("de")}
    items, _ = crawl_items(AlternatesSpider, [], spider_args={"sitemap_urls": [base + "/s.xml"]})
    assert sorted(item["title"] for item in items) == ["de", "en"]
    items, _ = crawl_items(SitemapSpider, [], spider_args={"sitemap_urls": [base + "/s.xml"]})
    assert [item["title"] for item in items] == ["en"]


def test_listed_urls_are_utf8_and_carry_the_sitemap_as_referer() -> None:
    """A sitemap that declares Shift_JIS still lists UTF-8 URLs (the protocol's rule)."""
    text = urlset("https://a.test/検索?q=日本").replace('encoding="UTF-8"', 'encoding="Shift_JIS"')
    response = fake_response(text.encode("cp932"), url="https://a.test/sitemap.xml")
    (request,) = Spider().parse_sitemap(response)
    assert request.url == "https://a.test/検索?q=日本"  # canonicalised as UTF-8 later
    assert request.headers == {"Referer": "https://a.test/sitemap.xml"}
    assert request.callback == "parse" and request.depth == 1
