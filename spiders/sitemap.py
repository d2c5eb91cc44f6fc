"""Let the site's sitemap say which pages to fetch.

Many sites list their pages in a sitemap, named by a ``Sitemap:`` line in
robots.txt. Setting ``sitemap_urls`` makes the default ``start_requests`` read them
with the built-in ``parse_sitemap`` (sitemap indexes and gzipped sitemaps too), and
every page they list goes to ``sitemap_callback``. Nothing else is fetched: no
home page, no listings. Against the demo shop:

    crawl demo --serve &                        # serves http://127.0.0.1:8000/
    crawl spiders/sitemap.py -O products.jsonl  # 60 products
    crawl spiders/sitemap.py -a base_url=http://127.0.0.1:8001 -O products.jsonl
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crawler import Response, Spider

FIELDS = {"sku": "span.sku", "name": "h1.title", "price": "p.price"}  # item field: CSS selector


class SitemapSpider(Spider):
    name = "sitemap"
    base_url = "http://127.0.0.1:8000"  # `-a base_url=...` points the spider elsewhere
    sitemap_callback = "parse_product"  # the callback for the pages the sitemap lists

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # `-a NAME=VALUE` arguments become attributes here
        # robots.txt names the sitemap; "/sitemap.xml" itself would do as well.
        self.sitemap_urls = [self.base_url.rstrip("/") + "/robots.txt"]

    def parse_product(self, response: Response) -> Iterator[dict[str, Any]]:
        """A page from the sitemap: one item, with a field per selector of FIELDS."""
        if response.css_first("article.product") is None:
            return  # a sitemap may list pages of any kind: keep the products only
        item: dict[str, Any] = {"url": response.url}
        for field, selector in FIELDS.items():
            node = response.css_first(selector)
            item[field] = node.text(strip=True) if node is not None else None
        yield item
