"""Our spider for the real-site benchmarks: ``BENCH_URL=... crawl bench/doc_spider.py -O items.jsonl``.

``scrapy_doc_spider.py`` does the same with Scrapy; ``bench.fields`` says what.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bench.fields import DOC_HEADING, DOC_PAGE_LINKS, start_url
from crawler import Request, Response, Spider


class DocSpider(Spider):
    name = "docs"
    start_urls = (start_url(),)

    def parse(self, response: Response) -> Iterator[dict[str, Any] | Request]:
        title, heading = response.css_first("title"), response.css_first(DOC_HEADING)
        yield {
            "url": response.url,
            "title": title.text(deep=True).strip() if title is not None else "",
            "heading": heading.text(deep=True).strip() if heading is not None else "",
        }
        yield from response.follow_all(DOC_PAGE_LINKS)
