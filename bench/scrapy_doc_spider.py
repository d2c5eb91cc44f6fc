"""Scrapy's spider for the real-site benchmarks, the twin of ``doc_spider.py``, with
the same settings as ``scrapy_spider.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response

from bench.fields import DOC_HEADING, DOC_PAGE_LINKS, start_url
from bench.scrapy_spider import BenchScrapySpider


class DocScrapySpider(scrapy.Spider):
    name = "docs_scrapy"
    custom_settings = BenchScrapySpider.custom_settings
    # Our spider stays on the start URL's host by default; Scrapy needs telling, or it
    # waits on DNS for the docs' links to other sites.

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allowed_domains = [urlsplit(start_url()).hostname or ""]

    async def start(self) -> AsyncIterator[scrapy.Request]:
        yield scrapy.Request(start_url())

    def parse(self, response: Response) -> Iterator[Any]:
        yield {
            "url": response.url,
            "title": response.xpath("string(//title)").get("").strip(),
            "heading": response.xpath(f"string((//{DOC_HEADING})[1])").get("").strip(),
        }
        yield from response.follow_all(css=DOC_PAGE_LINKS)
