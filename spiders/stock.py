"""An ``async def`` callback that awaits an extra request: the stock count.

A product page says only "In stock" or "Out of stock"; the exact count is in the
shop's JSON API (``/api/products/<sku>.json``). The product callback is ``async
def``, so it can ``await self.fetch(url)`` for the API record and merge both into
one item. ``self.fetch`` goes through the same checks as crawled requests (scope,
robots.txt, the private-address guard, retries) and counts against the host's
rate; it returns a `Response` of any status, and raises ``FetchError`` (such as
``RequestRefused``) when the request cannot be made. Against the demo shop:

    crawl demo --serve &                     # serves http://127.0.0.1:8000/
    crawl spiders/stock.py -O stock.jsonl    # 60 products, each with its stock count
    crawl spiders/stock.py -a base_url=http://127.0.0.1:8001 -O stock.jsonl
    crawl parse http://127.0.0.1:8000/product/highland-espresso.html spiders/stock.py \\
        --callback parse_product             # try the callback on one page

``async def`` callbacks run in the crawl's own process, on its event loop (other
callbacks run in parse worker processes): keep their CPU work small.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crawler import FetchError, Request, Response, Spider


class StockSpider(Spider):
    name = "stock"
    base_url = "http://127.0.0.1:8000"  # `-a base_url=...` points the spider elsewhere

    def start_requests(self) -> Iterator[Request]:
        yield Request(self.base_url.rstrip("/") + "/sitemap.xml", callback="parse_sitemap")

    sitemap_callback = "parse_product"  # every product URL in the sitemap goes there

    async def parse_product(self, response: Response) -> dict[str, Any]:
        """A product page, completed by its API record."""
        sku = _text(response, "span.sku")
        item: dict[str, Any] = {"url": response.url, "sku": sku, "name": _text(response, "h1.title")}
        try:
            api = await self.fetch(response.urljoin(f"/api/products/{sku}.json"))
        except FetchError as exc:  # unreachable, refused, ...: keep the page's data, say why
            return {**item, "stock": None, "error": str(exc)}
        if api.status != 200:
            return {**item, "stock": None, "error": f"API answered HTTP {api.status}"}
        record = api.json()
        return {**item, "stock": record["stock"], "reviews": record["reviews"]}


def _text(response: Response, selector: str) -> str:
    node = response.css_first(selector)
    return node.text(strip=True) if node is not None else ""
