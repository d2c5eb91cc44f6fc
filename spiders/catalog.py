"""Crawl a whole shop and keep the product pages.

Unlike the demo's own spider (``crawler/demo/spider.py``), which walks categories
and pagination with a callback per kind of page, this one follows every link and
recognises a product page by its markup: the simplest spider that works on a small
site. Against the demo shop:

    crawl demo --serve &                       # serves http://127.0.0.1:8000/
    crawl spiders/catalog.py -o products.jsonl
    crawl spiders/catalog.py -a base_url=http://127.0.0.1:8001 -O products.jsonl
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crawler import Request, Response, Spider


class ShopSpider(Spider):
    name = "shop"
    base_url = "http://127.0.0.1:8000"  # `-a base_url=...` points the spider elsewhere
    per_host = 4  # be gentle by default; `--per-host` overrides

    def start_requests(self) -> Iterator[Request]:
        """``-a start_urls=...`` wins; otherwise the shop at ``base_url``."""
        for url in self.start_urls or [self.base_url.rstrip("/") + "/"]:
            yield Request(url)

    def parse(self, response: Response) -> Iterator[dict[str, Any] | Request]:
        title = response.css_first("article.product h1.title")
        if title is not None:
            yield {
                "url": response.url,
                "title": title.text(strip=True),
                "price": _text(response, "article.product p.price"),
                "availability": _text(response, "article.product p.availability"),
            }
        yield from response.follow_all("a")


def _text(response: Response, selector: str) -> str | None:
    node = response.css_first(selector)
    return node.text(strip=True) if node is not None else None
