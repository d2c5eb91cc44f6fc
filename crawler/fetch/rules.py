"""HTTP rules shared by every path that fetches: the crawl's fetch stage, single
fetches (``Spider.fetch``, ``crawl parse``, ``crawl shell``) and robots.txt.

Which statuses redirect or deserve a retry, what Retry-After asks, how a redirect
changes the request, the backoff between attempts, and `next_hop`: given a request
and its response, what comes next. The paths differ only in their `HopRules`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from .._counters import (
    DROPPED_OFFSITE,
    DROPPED_REDIRECT_LOOP,
    DROPPED_REDIRECT_OFFSITE,
    DROPPED_REDIRECT_TOO_MANY,
    REDIRECT_DROPS,
    short,
)
from .._errors import FetchError, TransientFetchError
from .._request import Request
from .._settings import RETRY_STATUSES
from .._urls import in_scope, join_url, origin
from .throttle import retry_after_seconds

if TYPE_CHECKING:
    from .client import Fetched

RETRY_AFTER_STATUSES = frozenset({429, 503})
"""Answers whose Retry-After header is honoured."""
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CROSS_ORIGIN_SECRETS = ("authorization", "cookie", "proxy-authorization")

Vet = Callable[[str], tuple[str | None, str]]
"""A redirect target's vetting: (why it is refused, as its ``dropped/`` counter, or
``None``; its canonical URL)."""
# A refusal of a redirect's target, as the redirect's counter.
REDIRECT_REFUSALS = {**REDIRECT_DROPS, DROPPED_OFFSITE: DROPPED_REDIRECT_OFFSITE}


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: 0.5s, 1s, 2s ... (capped at 60s), times 0.5-1.5."""
    return min(60.0, 0.5 * 2.0**attempt) * random.uniform(0.5, 1.5)


def retry_after(fetched: Fetched) -> float | None:
    """The seconds a 429 or 503 answer's Retry-After asks to wait, if any."""
    if fetched.status not in RETRY_AFTER_STATUSES:
        return None
    return retry_after_seconds(fetched.headers.get("retry-after"), time.time())


def follow_redirect(request: Request, status: int, url: str) -> Request:
    """The request for the next hop to ``url`` (canonical): 303, and 301/302 after a
    POST, become a GET without a body; credentials stay on their origin."""
    changes: dict[str, Any] = {"url": url, "redirects": (*request.redirects, request.url), "retries": 0}
    if status == 303 or (status in (301, 302) and request.method == "POST"):
        changes.update(method="GET", body=b"")
    if origin(url) != origin(request.url):
        changes["headers"] = {
            k: v for k, v in request.headers.items() if k.lower() not in CROSS_ORIGIN_SECRETS
        }
    return replace(request, **changes)


@dataclass(frozen=True, slots=True)
class HopRules:
    """How one path follows redirects and retries.

    ``vet``: canonicalises and vets a redirect target (``None``: the joined URL as it
    is, for robots.txt, whose hops the fetcher's address guard checks in any
    spelling). ``scope``: the allowed domains every hop must be in (``None``: any
    host). ``max_retry_wait``: the longest Retry-After honoured (``None``: what the
    server asks, up to the throttle's clamp; a caller awaiting a single fetch sets
    ``max_crawl_delay``)."""

    max_redirects: int
    retries: int
    vet: Vet | None = None
    scope: tuple[str, ...] | None = None
    max_retry_wait: float | None = None

    def refusal(self, url: str) -> tuple[str | None, str]:
        """Why ``url`` may not be fetched on this path (its ``dropped/`` counter) or
        ``None``, and its canonical form."""
        verdict, url = (None, url) if self.vet is None else self.vet(url)
        if verdict is None and self.scope is not None and not in_scope(url, self.scope):
            verdict = DROPPED_OFFSITE
        return verdict, url

    def describe(self, verdict: str, url: str) -> str:
        """A refusal as one line for a person."""
        if verdict == DROPPED_OFFSITE:
            return f"{url} refused: off-site (allowed: {', '.join(self.scope or ())})"
        if verdict == DROPPED_REDIRECT_TOO_MANY:
            return f"{url} refused: more than {self.max_redirects} redirects"
        if verdict == DROPPED_REDIRECT_LOOP:
            return f"{url} refused: a redirect loop"
        return f"{url!r} refused: {short(verdict).replace('_', ' ')}"


@dataclass(frozen=True, slots=True)
class Follow:
    """Fetch ``request`` next: the redirect's target."""

    request: Request


@dataclass(frozen=True, slots=True)
class Retry:
    """Fetch ``request`` (one more attempt counted) again after ``delay`` seconds."""

    request: Request
    delay: float
    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A redirect not followed: ``verdict`` is why, as its counter
    (``dropped/redirect_loop``, ``dropped/redirect_too_many``, ...), ``url`` its
    target, ``message`` for a person."""

    verdict: str
    url: str
    message: str


class Done:
    """The response is the answer: no redirect to follow, no retry due."""

    __slots__ = ()


DONE: Final = Done()
Hop = Follow | Retry | Refused | Done


def next_hop(request: Request, fetched: Fetched, rules: HopRules) -> Hop:
    """What comes after ``fetched``, the answer to ``request``: a redirect's next
    request, a retry, a redirect refused, or `DONE`."""
    status = fetched.status
    if status in REDIRECT_STATUSES and (location := fetched.headers.get("location")):
        return _redirect(request, status, join_url(request.url, location), rules)
    if status in RETRY_STATUSES and request.retries < rules.retries:
        wait = retry_after(fetched) or 0.0
        if rules.max_retry_wait is not None:
            wait = min(wait, rules.max_retry_wait)
        return _retry(request, max(backoff(request.retries), wait), f"HTTP {status}")
    return DONE


def retry_after_error(request: Request, error: FetchError, rules: HopRules) -> Retry | None:
    """A retry of ``request`` after ``error``, if it is transient and attempts remain."""
    if isinstance(error, TransientFetchError) and request.retries < rules.retries:
        return _retry(request, backoff(request.retries), str(error))
    return None


def _retry(request: Request, delay: float, reason: str) -> Retry:
    return Retry(replace(request, retries=request.retries + 1), delay, reason)


def _redirect(request: Request, status: int, location: str, rules: HopRules) -> Follow | Refused:
    verdict, url = rules.refusal(location)
    if verdict in (None, DROPPED_OFFSITE):  # a chain too long or a loop is named first
        if len(request.redirects) >= rules.max_redirects:
            verdict = DROPPED_REDIRECT_TOO_MANY
        elif url == request.url or url in request.redirects:
            verdict = DROPPED_REDIRECT_LOOP
    if verdict is not None:
        counter = REDIRECT_REFUSALS.get(verdict, verdict)
        return Refused(counter, url, rules.describe(verdict, url))
    return Follow(follow_redirect(request, status, url))
