"""robots.txt: fetched once per origin before its first page, shared by all workers.

Status handling follows RFC 9309 section 2.3.1:

* 2xx: the rules apply (at most ``MAX_ROBOTS_BYTES`` are read and parsed: a longer
  robots.txt is cut there, RFC 9309 2.5, not refused);
* 3xx: redirects (``REDIRECT_STATUSES``) are followed by the crawl's rule
  (`next_hop`), up to five hops and to any host, and the result applies to the
  original origin; a redirect loop makes robots.txt unreachable at once;
* 4xx: no restrictions;
* 5xx, a timeout or a network error: the origin is "unreachable" and fully
  disallowed for now. robots.txt is fetched again after a backoff (5 s, 10 s, 20 s);
  after ``MAX_FAILURES`` failures the origin is given up and its requests dropped,
  so the crawl still ends by itself.
* refused by the address guard (robots.txt, or a redirect of it, on an address the
  user did not allow): ``blocked``, given up at once, since asking again cannot
  change the answer; its requests fail as the guard's refusals do.

Rules are cached for at most ``CACHE_SECONDS`` (24 hours), then fetched again. A
robots.txt that never answers costs one ``ROBOTS_TIMEOUT`` per attempt, and only the
requests of its own origin wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from protego import Protego

from .._errors import BlockedAddress, FetchError, FetchTimeout
from .._request import Request
from .._sitemaps import MAX_ROBOTS_BYTES, robots_sitemaps
from ..frontier import SharedStore
from .rules import Follow, HopRules, Refused, next_hop

if TYPE_CHECKING:
    from .client import Fetched

log = logging.getLogger("crawler.robots")

READ_PREFIX = "crawler_read_prefix"
"""``Request.meta`` key: read only this many bytes of the body, and keep them."""

# What browsers (and crawlers that look like them) put before their own name.
_BROWSER_PRODUCTS = frozenset(
    {"", "mozilla", "applewebkit", "chrome", "chromium", "headlesschrome", "safari", "mobile",
     "version", "gecko", "firefox", "khtml", "like", "edg", "opr", "crios", "fxios"}
)  # fmt: skip
_UA_PARTS = re.compile(r"\([^()]*\)|[^\s()]+")
_COMMENT_ITEMS = re.compile(r"[;,]")
_COMMENT_PRODUCT = re.compile(r"\s*([A-Za-z][A-Za-z0-9_.\-]*)/[^\s/]+\s*")
MAX_ROBOTS_REDIRECTS = 5
# RFC 9309 2.3.1.2: at least five redirects, to any host; the guard checks each hop
ROBOTS_HOPS = HopRules(max_redirects=MAX_ROBOTS_REDIRECTS, retries=0)
CACHE_SECONDS = 24 * 3600.0
ROBOTS_TIMEOUT = 10.0
MAX_FAILURES = 3
FIRST_BACKOFF = 5.0

Fetch = Callable[[Request], Awaitable["Fetched"]]


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """The rules of one origin for our product token.

    ``unreachable``: robots.txt could not be fetched (``reason`` says why); nothing
    is allowed until ``retry_in`` seconds from now (``None``: given up for good).
    ``blocked``: unreachable for good because the address guard refused it."""

    parser: Protego | None = None
    token: str = "*"
    unreachable: bool = False
    retry_in: float | None = None
    sitemaps: tuple[str, ...] = field(default=())
    reason: str = ""
    blocked: bool = False

    def allows(self, url: str) -> bool:
        if self.unreachable:
            return False
        return self.parser is None or self.parser.can_fetch(url, self.token)

    @property
    def crawl_delay(self) -> float | None:
        delay = self.parser.crawl_delay(self.token) if self.parser else None
        return float(delay) if delay else None


def _robots_request(url: str) -> Request:
    """A request for a robots.txt that reads only its first ``MAX_ROBOTS_BYTES``
    (RFC 9309 2.5: a longer file is parsed up to there, not refused), uncompressed
    so that the prefix is text."""
    return Request(url, headers={"Accept-Encoding": "identity"}, meta={READ_PREFIX: MAX_ROBOTS_BYTES})


def product_token(user_agent: str) -> str:
    """The RFC 9309 product token of a User-Agent, lower-case, as the big crawlers
    document theirs: the first product (``name/version``) outside comments that is
    no browser-compatibility product (``Mozilla``, ``AppleWebKit``, ``Chrome``...),
    else the last ``name/version`` inside comments, else ``*``.

    ``crawler/0.1 (+https://...)`` gives ``crawler``; ``Mozilla/5.0 (compatible;
    Googlebot/2.1; +http://www.google.com/bot.html)`` gives ``googlebot``, as
    Google's documentation names it; a bare token (``Foobot``) gives itself."""
    products, commented = _products(user_agent)
    for name in products:
        if name.lower() not in _BROWSER_PRODUCTS:
            return name.lower()
    return commented[-1].lower() if commented else "*"


def _products(user_agent: str) -> tuple[list[str], list[str]]:
    """Names of the products outside comments, and of ``name/version`` items inside."""
    products: list[str] = []
    commented: list[str] = []
    for part in _UA_PARTS.findall(user_agent):
        if part.startswith("("):
            commented += [
                m[1] for m in map(_COMMENT_PRODUCT.fullmatch, _COMMENT_ITEMS.split(part[1:-1])) if m
            ]
        else:
            products.append(part.partition("/")[0])
    return products, commented


@dataclass
class _Origin:
    """What is known of one origin's robots.txt."""

    rules: RobotsRules | None = None
    expires: float = 0.0
    failures: int = 0
    loading: asyncio.Task[RobotsRules] | None = None


class RobotsCache:
    """Fetches each origin's robots.txt when first needed and again when its rules
    expire; concurrent callers share one fetch."""

    def __init__(
        self,
        fetch: Fetch,
        user_agent: str,
        *,
        timeout: float = ROBOTS_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedStore | None = None,
    ) -> None:
        self._fetch = fetch
        self._shared = shared
        self._token = product_token(user_agent)
        self._timeout = timeout
        self._clock = clock
        self._origins: dict[str, _Origin] = {}

    async def rules_for(self, origin: str) -> RobotsRules:
        """Rules for ``origin`` (``scheme://host[:port]``)."""
        state = self._origins.setdefault(origin, _Origin())
        if state.rules is not None and self._clock() < state.expires:
            return self._current(state)
        if state.loading is None:
            state.loading = asyncio.ensure_future(self._load(origin, state))
        return await asyncio.shield(state.loading)

    def known(self, origin: str) -> RobotsRules | None:
        """The rules of ``origin`` if they are known and fresh now; never fetches."""
        state = self._origins.get(origin)
        if state is None or state.rules is None or self._clock() >= state.expires:
            return None
        return self._current(state)

    def _current(self, state: _Origin) -> RobotsRules:
        rules = state.rules
        assert rules is not None
        if rules.unreachable and rules.retry_in is not None:
            return replace(rules, retry_in=max(state.expires - self._clock(), 0.0))
        return rules

    async def _load(self, origin: str, state: _Origin) -> RobotsRules:
        try:
            rules, lifetime = await self._fetch_rules(origin, state)
            state.rules, state.expires = rules, self._clock() + lifetime
            return rules
        finally:
            state.loading = None

    async def _fetch_rules(self, origin: str, state: _Origin) -> tuple[RobotsRules, float]:
        if self._shared is not None and (answer := await self._shared.shared_get("robots:" + origin)):
            status, _, body = answer.partition(b"\n")
            return self._rules_from(int(status), body), CACHE_SECONDS
        try:
            fetched = await self._fetch_following_redirects(origin + "/robots.txt")
        except BlockedAddress as exc:  # the guard's answer will not change: no retry
            blocked = RobotsRules(token=self._token, unreachable=True, reason=str(exc), blocked=True)
            return blocked, CACHE_SECONDS
        except FetchError as exc:
            return self._unreachable(origin, state, str(exc))
        if fetched.status >= 500:
            return self._unreachable(origin, state, f"HTTP {fetched.status}")
        state.failures = 0
        body = fetched.body[:MAX_ROBOTS_BYTES]
        if self._shared is not None:  # the other nodes need not fetch it again
            await self._shared.shared_set("robots:" + origin, b"%d\n" % fetched.status + body, CACHE_SECONDS)
        return self._rules_from(fetched.status, body), CACHE_SECONDS

    async def _fetch_following_redirects(self, url: str) -> Fetched:
        """robots.txt and its redirects, each hop within the timeout; no retries
        (an unreachable robots.txt has a backoff of its own)."""
        request = _robots_request(url)
        while True:
            fetched = await self._fetch_in_time(request)
            hop = next_hop(request, fetched, ROBOTS_HOPS)
            if isinstance(hop, Refused):
                raise FetchError(hop.message)
            if not isinstance(hop, Follow):
                return fetched
            request = hop.request

    async def _fetch_in_time(self, request: Request) -> Fetched:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._fetch(request)
        except TimeoutError:
            raise FetchTimeout(f"no answer within {self._timeout:g}s") from None

    def _unreachable(self, origin: str, state: _Origin, reason: str) -> tuple[RobotsRules, float]:
        state.failures += 1
        if state.failures >= MAX_FAILURES:
            log.warning(
                "robots.txt of %s unreachable %d times (%s): giving up on it", origin, state.failures, reason
            )
            return RobotsRules(token=self._token, unreachable=True, reason=reason), CACHE_SECONDS
        backoff = FIRST_BACKOFF * 2 ** (state.failures - 1)
        log.warning("robots.txt of %s unreachable (%s): not crawling it for %gs", origin, reason, backoff)
        return RobotsRules(token=self._token, unreachable=True, retry_in=backoff, reason=reason), backoff

    def _rules_from(self, status: int, body: bytes) -> RobotsRules:
        if not 200 <= status < 300:
            return RobotsRules(token=self._token)  # other 3xx, 4xx: no restrictions
        text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        parser = Protego.parse(text)
        return RobotsRules(parser, token=self._token, sitemaps=robots_sitemaps(body))
