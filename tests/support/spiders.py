"""Spiders that several test modules crawl with."""

from __future__ import annotations

from typing import Any

from crawler import Response, Spider


class TitleSpider(Spider):
    """Each page's URL, title and depth; follows every link."""

    name = "titles"

    def parse(self, response: Response) -> Any:
        title = response.css_first("title")
        yield {"url": response.url, "title": title.text() if title else None, "depth": response.depth}
        yield from response.follow_all("a")


class PageSpider(Spider):
    """Each page's URL and title (no depth, no name); follows every link."""

    def parse(self, response: Response) -> Any:
        title = response.css_first("title")
        yield {"url": response.url, "title": title.text() if title else None}
        yield from response.follow_all("a")
