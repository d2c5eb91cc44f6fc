"""crawler: an async web crawling and scraping engine.

Write a ``Spider``, then run it with ``crawl spider.py -o items.jsonl``, with
``crawler.run(MySpider)``, or stream items with ``async for item in crawler.crawl(MySpider)``.

The frontier backends are public because ``backend=`` is: ``MemoryFrontier``,
``SqliteFrontier`` and ``RedisFrontier`` (which loads redis when first named).
"""

import typing

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
from ._request import Request
from ._response import Response
from ._settings import Settings
from ._sitemaps import SitemapEntry
from ._spider import Spider, load_spider
from ._stats import Stats
from ._version import __version__
from .frontier import (
    DurableFrontier,
    Frontier,
    FrontierStatus,
    HostPolicy,
    MemoryFrontier,
    SharedFrontier,
    SqliteFrontier,
)

if typing.TYPE_CHECKING:
    from .frontier.redis import RedisFrontier

__all__ = [
    "CrawlerError",
    "DurableFrontier",
    "FetchError",
    "Frontier",
    "FrontierError",
    "FrontierStatus",
    "HostPolicy",
    "MemoryFrontier",
    "NotHtmlError",
    "OutputError",
    "RedisFrontier",
    "Request",
    "RequestRefused",
    "Response",
    "SelectorError",
    "Settings",
    "SharedFrontier",
    "SitemapEntry",
    "Spider",
    "SpiderLoadError",
    "SqliteFrontier",
    "Stats",
    "UsageError",
    "__version__",
    "crawl",
    "load_spider",
    "run",
]


def __getattr__(name: str) -> object:
    """``RedisFrontier`` imports redis (a tenth of a second) only when a crawl uses it."""
    if name == "RedisFrontier":
        from .frontier.redis import RedisFrontier  # noqa: PLC0415

        return RedisFrontier
    raise AttributeError(f"module 'crawler' has no attribute {name!r}")
