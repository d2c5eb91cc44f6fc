"""robots.txt: fetched once per origin before its first page, shared by all workers.

Status handling follows RFC 9309 section 2.3.1: 2xx rules apply; 3xx redirects
are followed (up to five hops, to any host) and the result applies to the
original origin; 4xx means no restrictions; 5xx and network errors mean the
origin is fully disallowed (it is "unreachable").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protego import Protego

from ._errors import FetchError
from ._request import Request
from ._urls import join_url

if TYPE_CHECKING:
    from ._fetcher import Fetched

log = logging.getLogger("crawler.robots")

MAX_ROBOTS_BYTES = 500 * 1024
MAX_ROBOTS_REDIRECTS = 5

Fetch = Callable[[Request], Awaitable["Fetched"]]


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """The rules of one origin for our product token."""

    parser: Protego | None = None
    disallow_all: bool = False
    token: str = "*"

    def allows(self, url: str) -> bool:
        if self.disallow_all:
            return False
        return self.parser is None or self.parser.can_fetch(url, self.token)

    @property
    def crawl_delay(self) -> float | None:
        return self.parser.crawl_delay(self.token) if self.parser else None

    @property
    def sitemaps(self) -> list[str]:
        return list(self.parser.sitemaps) if self.parser else []


def product_token(user_agent: str) -> str:
    """RFC 9309 product token of a User-Agent: ``crawler/0.1 (+url)`` -> ``crawler``."""
    token = user_agent.strip().split("/", 1)[0].split(" ", 1)[0]
    return token.lower() or "*"


class RobotsCache:
    """Fetches each origin's robots.txt once; concurrent callers share the fetch."""

    def __init__(self, fetch: Fetch, user_agent: str) -> None:
        self._fetch = fetch
        self._token = product_token(user_agent)
        self._rules: dict[str, asyncio.Task[RobotsRules]] = {}
        self.fetched = 0

    async def rules_for(self, origin: str) -> RobotsRules:
        """Rules for ``origin`` (``scheme://host[:port]``)."""
        task = self._rules.get(origin)
        if task is None:
            task = asyncio.ensure_future(self._load(origin))
            self._rules[origin] = task
        return await asyncio.shield(task)

    async def _load(self, origin: str) -> RobotsRules:
        url = origin + "/robots.txt"
        self.fetched += 1
        for _ in range(MAX_ROBOTS_REDIRECTS + 1):
            try:
                fetched = await self._fetch(Request(url))
            except FetchError as exc:
                log.warning("robots.txt of %s unreachable (%s): not crawling it", origin, exc)
                return RobotsRules(disallow_all=True, token=self._token)
            location = fetched.headers.get("location")
            if 300 <= fetched.status < 400 and location:
                url = join_url(url, location)
                continue
            return self._rules_from(origin, fetched)
        log.warning(
            "robots.txt of %s redirects more than %d times: no restrictions", origin, MAX_ROBOTS_REDIRECTS
        )
        return RobotsRules(token=self._token)

    def _rules_from(self, origin: str, fetched: Fetched) -> RobotsRules:
        if 200 <= fetched.status < 300:
            text = fetched.body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
            return RobotsRules(Protego.parse(text), token=self._token)
        if 400 <= fetched.status < 500:
            return RobotsRules(token=self._token)
        log.warning("robots.txt of %s answered %d: not crawling it", origin, fetched.status)
        return RobotsRules(disallow_all=True, token=self._token)
