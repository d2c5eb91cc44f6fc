"""Sitemaps (sitemaps.org): the URLs a sitemap, a sitemap index or a robots.txt lists.

Parsed with a tolerant scan for ``<loc>`` elements rather than an XML parser: real
sitemaps are often slightly broken, and a scan cannot be made to expand entities
(no "billion laughs"). Gzipped sitemaps are decompressed under the same size cap as
pages.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from ._decoding import decode_content

GZIP_MAGIC = b"\x1f\x8b"
_LOC = re.compile(
    rb"<(?:[\w.-]+:)?loc\b[^>]*>\s*(?:<!\[CDATA\[)?\s*(.*?)\s*(?:\]\]>)?\s*</(?:[\w.-]+:)?loc>", re.S | re.I
)
_INDEX = re.compile(rb"<(?:[\w.-]+:)?sitemapindex\b", re.I)
_ROBOTS_SITEMAP = re.compile(r"^\s*sitemap\s*:\s*(\S+)", re.I | re.M)


@dataclass(frozen=True, slots=True)
class SitemapEntries:
    """``sitemaps``: more sitemaps to read (an index, or robots.txt's Sitemap lines);
    ``pages``: the pages it lists."""

    sitemaps: tuple[str, ...] = ()
    pages: tuple[str, ...] = ()


def read_sitemap(body: bytes, url: str, max_size: int) -> SitemapEntries:
    """The entries of a sitemap, sitemap index or robots.txt fetched from ``url``."""
    if url.endswith("/robots.txt"):
        text = body.decode("utf-8", errors="replace")
        return SitemapEntries(sitemaps=tuple(_ROBOTS_SITEMAP.findall(text)))
    if body.startswith(GZIP_MAGIC):
        body = decode_content(body, "gzip", max_size)
    locations = tuple(html.unescape(match.decode("utf-8", errors="replace")) for match in _LOC.findall(body))
    if _INDEX.search(body[:4096]):
        return SitemapEntries(sitemaps=locations)
    return SitemapEntries(pages=locations)
