"""Sitemap reading, from tables; and a crawl driven by robots.txt -> index -> sitemaps."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from crawler import Response, Spider
from crawler._errors import ResponseTooLarge
from crawler._sitemaps import read_sitemap
from crawler._siteserver import Page

from .conftest import html, robots

URLSET = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>http://a.test/1</loc><lastmod>2024-01-01</lastmod></url>
  <url><loc>
     http://a.test/2?x=1&amp;y=2
  </loc></url>
  <url><loc><![CDATA[http://a.test/3]]></loc></url>
</urlset>"""
INDEX = b"""<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>http://a.test/s1.xml</loc></sitemap><sitemap><loc>http://a.test/s2.xml.gz</loc></sitemap>
</sitemapindex>"""


@pytest.mark.parametrize(
    ("body", "url", "sitemaps", "pages"),
    [
        (URLSET, "http://a.test/s.xml", (), ("http://a.test/1", "http://a.test/2?x=1&y=2", "http://a.test/3")),
        (INDEX, "http://a.test/i.xml", ("http://a.test/s1.xml", "http://a.test/s2.xml.gz"), ()),
        (gzip.compress(URLSET), "http://a.test/s.xml.gz", (), ("http://a.test/1", "http://a.test/2?x=1&y=2", "http://a.test/3")),
        (b"User-agent: *\nSitemap: http://a.test/i.xml\nsitemap:http://a.test/s.xml\n", "http://a.test/robots.txt",
         ("http://a.test/i.xml", "http://a.test/s.xml"), ()),
        (b"<html>not a sitemap</html>", "http://a.test/x", (), ()),
        (b"<urlset><url><loc>http://a.test/unclosed", "http://a.test/x", (), ()),
        (b"<ns:urlset><ns:url><ns:loc>http://a.test/p</ns:loc></ns:url></ns:urlset>", "http://a.test/x", (), ("http://a.test/p",)),
    ],
)  # fmt: skip
def test_read_sitemap(body, url, sitemaps, pages):
    entries = read_sitemap(body, url, 10**6)
    assert entries.sitemaps == sitemaps
    assert entries.pages == pages


def test_gzipped_sitemap_bomb_stops_at_the_cap():
    bomb = gzip.compress(b"<urlset>" + b" " * (20 << 20) + b"</urlset>")
    with pytest.raises(ResponseTooLarge):
        read_sitemap(bomb, "http://a.test/s.xml.gz", 1 << 20)


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
        "/robots.txt": robots(f"User-agent: *\nDisallow: /p/5\nSitemap: {base}/index.xml\n"),
        "/index.xml": Page(f"<sitemapindex><sitemap><loc>{base}/a.xml</loc></sitemap>"
                           f"<sitemap><loc>{base}/b.xml.gz</loc></sitemap></sitemapindex>".encode()),
        "/a.xml": Page(f"<urlset>{listed}</urlset>".encode(), headers=XML),
        "/b.xml.gz": Page(gzip.compress(f"<urlset>{gz}</urlset>".encode()), headers=GZIP),
        **pages,
    }  # fmt: skip
    items, stats = crawl_items(SitemapSpider, [], spider_args={"sitemap_urls": [base + "/robots.txt"]})
    assert sorted(item["title"] for item in items) == [f"product {i}" for i in range(5)]
    assert stats["dropped/robots"] == 1  # /p/5: sitemaps do not bypass robots.txt
