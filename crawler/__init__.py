"""crawler: an async web crawling and scraping engine.

Write a ``Spider``, then run it with ``crawl spider.py -o items.jsonl``, with
``crawler.run(MySpider)``, or stream items with ``async for item in crawler.crawl(MySpider)``.
"""

from ._api import crawl, run
from ._errors import (
    CrawlerError,
    FetchError,
    FrontierError,
    NotHtmlError,
    OutputError,
    RequestRefused,
    SelectorError,
    SpiderLoadError,
    UsageError,
)
from ._frontier import Frontier, FrontierStatus, HostPolicy
from ._request import Request
from ._response import Response
from ._settings import Settings
from ._sitemaps import SitemapEntry
from ._spider import Spider, load_spider
from ._stats import Stats
from ._version import __version__

__all__ = [
    "CrawlerError",
    "FetchError",
    "Frontier",
    "FrontierError",
    "FrontierStatus",
    "HostPolicy",
    "NotHtmlError",
    "OutputError",
    "Request",
    "RequestRefused",
    "Response",
    "SelectorError",
    "Settings",
    "SitemapEntry",
    "Spider",
    "SpiderLoadError",
    "Stats",
    "UsageError",
    "__version__",
    "crawl",
    "load_spider",
    "run",
]
