"""HTTP rules shared by the crawl's fetch stage and single fetches (``Spider.fetch``,
``crawl parse``, ``crawl shell``): which statuses redirect or deserve a retry, how a
redirect changes the request, and the backoff between attempts."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from ._request import Request
from ._urls import origin

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CROSS_ORIGIN_SECRETS = ("authorization", "cookie", "proxy-authorization")


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: 0.5s, 1s, 2s ... (capped at 60s), times 0.5-1.5."""
    return min(60.0, 0.5 * 2.0**attempt) * random.uniform(0.5, 1.5)


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
