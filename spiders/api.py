"""Read a JSON API instead of HTML pages.

When a site has an API, it is usually faster and sturdier to read than its pages:
one request for the whole catalog, no selectors to break. ``response.json()``
decodes the body; the callback yields one item per record, keeping the fields it
wants. Against the demo shop:

    crawl demo --serve &                    # serves http://127.0.0.1:8000/
    crawl spiders/api.py -O products.jsonl  # 60 products
    crawl spiders/api.py -a base_url=http://127.0.0.1:8001 -O products.jsonl
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crawler import Request, Response, Spider


class ApiSpider(Spider):
    name = "api"
    base_url = "http://127.0.0.1:8000"  # `-a base_url=...` points the spider elsewhere

    def start_requests(self) -> Iterator[Request]:
        yield Request(self.base_url.rstrip("/") + "/api/products.json")

    def parse(self, response: Response) -> Iterator[dict[str, Any]]:
        """The catalog: a JSON list of product records."""
        for record in response.json():
            yield {
                "url": record["url"],
                "sku": record["sku"],
                "name": record["name"],
                "category": record["category"],
                "price": record["price"],  # a number here, not the "£12.34" a page shows
                "stock": record["stock"],  # pages only say "In stock" or "Out of stock"
            }
        # A paginated API would name its next page; follow it like a link:
        #     if data["next"]: yield response.follow(data["next"])
