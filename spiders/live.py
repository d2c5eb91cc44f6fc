"""Render a page whose content JavaScript builds, in a real browser.

The demo shop's live catalogue (``/live/``) arrives as an empty list: its script
fetches ``/api/products.json`` and fills in one ``li.product`` per product, so a
plain fetch sees none of them. With ``render = True`` every page of this spider is
loaded in Chromium (driven by Playwright: ``pip install 'crawler[browser]'``, plus
Debian's ``chromium`` package or ``playwright install chromium``), and the callback
gets the DOM once the page settled; ``wait_for`` names an element that only exists
once the script ran. The browser's own requests (here the API call) pass the same
address guard, size cap and per-host politeness as the crawl's. Against the demo shop:

    crawl demo --serve &                     # serves http://127.0.0.1:8000/
    crawl spiders/live.py -O products.jsonl  # 60 products, from one rendered page
    crawl spiders/live.py -a base_url=http://127.0.0.1:8001 -O products.jsonl

(Reading the API directly, as ``spiders/api.py`` does, is faster when a site has
one; rendering is for the sites whose API is private or signed.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crawler import Request, Response, Spider


class LiveSpider(Spider):
    name = "live"
    base_url = "http://127.0.0.1:8000"  # `-a base_url=...` points the spider elsewhere
    render = True  # every request of this spider is rendered; or Request(url, render=True)
    wait_for = "ol.live-products li.product"  # settled once the script added a product

    def start_requests(self) -> Iterator[Request]:
        yield Request(self.base_url.rstrip("/") + "/live/")

    def parse(self, response: Response) -> Iterator[dict[str, Any]]:
        """The rendered live catalogue: one item per product the script listed."""
        for product in response.css_nodes("ol.live-products li.product"):
            link = product.css_first("h3 a")
            yield {
                "url": response.urljoin(link.attributes["href"] or ""),
                "sku": product.css_first("span.sku").text(strip=True),
                "name": link.text(strip=True),
                "price": product.css_first("p.price").text(strip=True),
                "in_stock": product.css_first("p.availability").text(strip=True) == "In stock",
            }
