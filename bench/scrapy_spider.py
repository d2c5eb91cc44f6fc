"""Scrapy's benchmark spider: ``BENCH_URL=... scrapy runspider bench/scrapy_spider.py -O items.jsonl``.

An ordinary, fair Scrapy setup: default middlewares and reactor, robots.txt obeyed,
the same concurrency as ours, no throttling, no cache, no depth limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.http import Response

from bench.fields import ATTRIBUTE_FIELDS, TEXT_FIELDS, start_url


class BenchScrapySpider(scrapy.Spider):
    name = "bench_scrapy"
    custom_settings = {
        "ROBOTSTXT_OBEY": True,
        "CONCURRENT_REQUESTS": 64,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 64,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "HTTPCACHE_ENABLED": False,
        "DEPTH_LIMIT": 0,
        "LOG_LEVEL": "WARNING",
        "TELNETCONSOLE_ENABLED": False,
    }

    async def start(self) -> AsyncIterator[scrapy.Request]:
        # Not start_urls: Scrapy sends those with dont_filter=True, so "/" would be
        # fetched (and yield an item) twice once other pages link back to it.
        yield scrapy.Request(start_url())

    def parse(self, response: Response) -> Iterator[Any]:
        yield extract(response)
        yield from response.follow_all(css="a")


def extract(response: Response) -> dict[str, str]:
    item = {"url": response.url}
    for field, css in TEXT_FIELDS.items():
        item[field] = response.css(f"{css}::text").get("").strip()
    for field, (css, attribute) in ATTRIBUTE_FIELDS.items():
        item[field] = response.css(f"{css}::attr({attribute})").get("")
    return item
