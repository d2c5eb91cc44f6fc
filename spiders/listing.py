"""Listing pages with pagination, then one detail page per product.

The most common shape of a scraper: start at the home page, open each category,
walk its listing pages by their rel="next" link, and visit every product the
listings name. Each kind of page has its own callback, and items are a dataclass,
so every item has the same fields. Against the demo shop:

    crawl demo --serve &                        # serves http://127.0.0.1:8000/
    crawl spiders/listing.py -O products.jsonl  # 60 products
    crawl spiders/listing.py -a base_url=http://127.0.0.1:8001 -O products.jsonl
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from crawler import Request, Response, Spider


@dataclass(frozen=True, slots=True)
class Product:
    """One item per product page; the output has these fields, in this order."""

    url: str
    sku: str
    name: str
    price: str  # as shown, e.g. "£12.34"
    in_stock: bool
    category: str  # the listing it was found on: data carried over in Request.meta


class ListingSpider(Spider):
    name = "listing"
    base_url = "http://127.0.0.1:8000"  # `-a base_url=...` points the spider elsewhere

    def start_requests(self) -> Iterator[Request]:
        yield Request(self.base_url.rstrip("/") + "/")  # no callback: `parse` handles it

    def parse(self, response: Response) -> Iterator[Request]:
        """The home page: the first listing page of each category."""
        yield from response.follow_all("ul.categories a", callback=self.parse_listing)

    def parse_listing(self, response: Response) -> Iterator[Request]:
        """A listing page: its products, then the next page of the same listing."""
        category = _text(response, "main h1")
        for link in response.css_nodes("li.product h3 a"):
            yield response.follow(link, callback=self.parse_product, meta={"category": category})
        next_page = response.css_first('a[rel="next"]')
        if next_page is not None:  # the last page has no rel="next" link
            yield response.follow(next_page, callback=self.parse_listing)

    def parse_product(self, response: Response) -> Iterator[Product]:
        """A product page: one item. Links on it (related products) are not followed."""
        yield Product(
            url=response.url,
            sku=_text(response, "span.sku"),
            name=_text(response, "h1.title"),
            price=_text(response, "p.price"),
            in_stock=_text(response, "p.availability") == "In stock",
            category=response.meta["category"],
        )


def _text(response: Response, selector: str) -> str:
    """The text of the first element ``selector`` matches; "" if none does."""
    node = response.css_first(selector)
    return node.text(strip=True) if node is not None else ""
