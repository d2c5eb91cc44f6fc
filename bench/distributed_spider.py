"""The spider of ``bench/distributed.py``: every page is an item, every link is followed.

    DISTRIBUTED_URLS="http://127.0.0.1:P1/ http://127.0.0.1:P2/ ..." crawl bench/distributed_spider.py

The start URLs come from ``$DISTRIBUTED_URLS`` (separated by spaces), read when the
spider file is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from crawler import Request, Response, Spider

URLS_ENV = "DISTRIBUTED_URLS"


class DistributedSpider(Spider):
    name = "distributed"
    start_urls = tuple(os.environ.get(URLS_ENV, "").split())

    def parse(self, response: Response) -> Iterator[dict[str, str] | Request]:
        yield {"url": response.url}
        yield from response.follow_all("a")
