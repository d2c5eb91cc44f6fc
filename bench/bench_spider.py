"""Our crawler's benchmark spider: ``BENCH_URL=... crawl bench/bench_spider.py -O items.jsonl``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bench.fields import ATTRIBUTE_FIELDS, TEXT_FIELDS, start_url
from crawler import Request, Response, Spider


class BenchSpider(Spider):
    name = "bench"
    start_urls = (start_url(),)

    def parse(self, response: Response) -> Iterator[dict[str, Any] | Request]:
        yield extract(response)
        yield from response.follow_all("a")


def extract(response: Response) -> dict[str, str]:
    item = {"url": response.url}
    for field, css in TEXT_FIELDS.items():
        node = response.css_first(css)
        item[field] = node.text(deep=True).strip() if node is not None else ""
    for field, (css, attribute) in ATTRIBUTE_FIELDS.items():
        node = response.css_first(css)
        item[field] = (node.attributes.get(attribute) or "") if node is not None else ""
    return item
