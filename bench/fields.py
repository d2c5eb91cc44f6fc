"""What both benchmark spiders extract, and where they start; shared so they cannot drift.

The spiders import this as ``bench.fields``, so the repository root must be on
``PYTHONPATH`` (``bench/run.py`` sets it).
"""

from __future__ import annotations

import os

URL_ENV = "BENCH_URL"

TEXT_FIELDS = {
    "title": "title",
    "name": ".product h1",
    "price": ".product .price",
    "sku": ".product .sku",
}
"""Item field -> CSS selector of the element whose text it holds."""

ATTRIBUTE_FIELDS = {"description": ("meta[name=description]", "content")}
"""Item field -> (CSS selector, attribute) it holds."""

FIELD_NAMES = ("url", *TEXT_FIELDS, *ATTRIBUTE_FIELDS)

DOC_PAGE_LINKS = 'a[href*=".html"]'
"""What the real-site spiders follow: links to HTML pages (documentation sets also
link their reStructuredText sources and images, which are not pages)."""

DOC_HEADING = "h1"
"""The real-site spiders yield each page's title and the text of its first heading."""


def start_url() -> str:
    """The site's root URL, from ``$BENCH_URL``."""
    url = os.environ.get(URL_ENV)
    if not url:
        raise RuntimeError(f"set {URL_ENV} to the benchmark site's URL (bench/run.py does)")
    return url.rstrip("/") + "/"
