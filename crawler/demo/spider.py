"""The demo shop's spider: categories -> listing pages (with pagination) -> products.

``crawl demo -O items.jsonl`` serves the shop and runs this spider against it.
Read it as a tutorial: every part of a typical spider is here once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from crawler import Request, Response, Spider

PRICE = re.compile(r"([£$€])\s*([0-9]+(?:\.[0-9]+)?)")


class CatalogSpider(Spider):
    name = "demo-catalog"
    base_url = "http://127.0.0.1:8000"  # `crawl demo` passes the real one with -a base_url=...

    def start_requests(self) -> Iterator[Request]:
        yield Request(self.base_url.rstrip("/") + "/")

    def parse(self, response: Response) -> Iterator[Request]:
        """The home page: one request per category, parsed by ``parse_listing``."""
        yield from response.follow_all("ul.categories a", callback=self.parse_listing)

    def parse_listing(self, response: Response) -> Iterator[Request]:
        """A page of a category: its products, then the next page."""
        yield from response.follow_all("li.product h3 a", callback=self.parse_product)
        next_page = response.css_first("a.next")
        if next_page is not None:
            yield response.follow(next_page, callback=self.parse_listing)

    def parse_product(self, response: Response) -> Iterator[dict[str, Any]]:
        """One item per product page."""
        price = PRICE.search(text_of(response, "p.price"))
        crumbs = response.css_nodes("nav.breadcrumb a")
        yield {
            "url": response.url,
            "title": text_of(response, "h1.title"),
            "sku": text_of(response, "span.sku"),
            "price": float(price[2]) if price else None,
            "currency": price[1] if price else None,
            "in_stock": text_of(response, "p.availability") == "In stock",  # the count is only in the API
            "category": crumbs[-1].text(strip=True) if crumbs else None,
            "rating": int(attribute_of(response, "p.rating", "data-rating") or 0),
        }


def text_of(response: Response, selector: str) -> str:
    node = response.css_first(selector)
    return node.text(strip=True) if node is not None else ""


def attribute_of(response: Response, selector: str, name: str) -> str | None:
    node = response.css_first(selector)
    return node.attributes.get(name) if node is not None else None
