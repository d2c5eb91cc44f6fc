"""`next_hop`, the one redirect and retry rule of the crawl, single fetches and
robots.txt, as a pure function from a table; each path's own `HopRules` end to end
in test_hostile.py (crawl), test_single_fetch.py and test_politeness.py (robots.txt)."""

from __future__ import annotations

from functools import partial

import pytest

from crawler._counters import (
    DROPPED_REDIRECT_INVALID_URL,
    DROPPED_REDIRECT_LOOP,
    DROPPED_REDIRECT_OFFSITE,
    DROPPED_REDIRECT_TOO_MANY,
    DROPPED_REDIRECT_UNSUPPORTED_SCHEME,
)
from crawler._errors import FetchTimeout, ResponseTooLarge
from crawler._request import Request
from crawler._settings import DEFAULT_CACHE_IGNORE_STATUS, RETRY_STATUSES
from crawler._urls import vet_url
from crawler.fetch.client import Fetched
from crawler.fetch.rules import (
    DONE,
    Follow,
    HopRules,
    Refused,
    Retry,
    next_hop,
    retry_after_error,
)
from crawler.parse.callbacks import LinkRules

SITE = "http://a.test"
CRAWL = HopRules(3, 2, vet=partial(vet_url, limits=LinkRules((), None, 2083)), scope=("a.test",))


def answer(status: int, **headers: str) -> Fetched:
    return Fetched(SITE + "/x", status, {k.replace("_", "-"): v for k, v in headers.items()}, b"")


def hops(*urls: str) -> Request:
    """A request that got to its last URL through the others."""
    return Request(urls[-1], redirects=urls[:-1])


@pytest.mark.parametrize(
    ("request_", "fetched", "verdict"),
    [
        (hops(SITE + "/x"), answer(302, location="/y"), None),
        (hops(SITE + "/x"), answer(302, location=SITE + "/x"), DROPPED_REDIRECT_LOOP),
        (hops(SITE + "/y", SITE + "/x"), answer(301, location="/y"), DROPPED_REDIRECT_LOOP),
        (
            hops(SITE + "/1", SITE + "/2", SITE + "/3", SITE + "/x"),
            answer(307, location="/y"),
            DROPPED_REDIRECT_TOO_MANY,
        ),
        (hops(SITE + "/x"), answer(308, location="http://b.test/"), DROPPED_REDIRECT_OFFSITE),
        (hops(SITE + "/x"), answer(303, location="ftp://a.test/f"), DROPPED_REDIRECT_UNSUPPORTED_SCHEME),
        (hops(SITE + "/x"), answer(302, location="http://a.test:99999/"), DROPPED_REDIRECT_INVALID_URL),
    ],
    ids=["follow", "self", "loop", "too-many", "offsite", "scheme", "invalid"],
)
def test_redirects_are_followed_or_refused_with_a_reason(
    request_: Request, fetched: Fetched, verdict: str | None
) -> None:
    hop = next_hop(request_, fetched, CRAWL)
    if verdict is None:
        assert isinstance(hop, Follow) and hop.request.url == SITE + "/y"
        assert hop.request.redirects == (*request_.redirects, request_.url)
    else:
        assert isinstance(hop, Refused) and hop.verdict == verdict and hop.message


@pytest.mark.parametrize("status", [200, 204, 304, 404, 300, 302])
def test_an_answer_without_a_next_hop_is_done(status: int) -> None:
    assert next_hop(hops(SITE + "/x"), answer(status), CRAWL) is DONE  # a 302 without Location too


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_retry_statuses_are_retried_until_the_attempts_run_out(status: int) -> None:
    hop = next_hop(Request(SITE + "/x", retries=1), answer(status), CRAWL)
    assert isinstance(hop, Retry) and hop.request.retries == 2 and hop.reason == f"HTTP {status}"
    assert next_hop(Request(SITE + "/x", retries=2), answer(status), CRAWL) is DONE


def test_retry_after_sets_the_least_delay_up_to_the_paths_cap() -> None:
    busy = answer(503, retry_after="120")
    crawl = next_hop(Request(SITE + "/x"), busy, CRAWL)
    single = next_hop(Request(SITE + "/x"), busy, HopRules(3, 2, max_retry_wait=5.0))
    assert isinstance(crawl, Retry) and crawl.delay == 120.0
    assert isinstance(single, Retry) and 5.0 <= single.delay < 120.0
    failing = next_hop(Request(SITE + "/x"), answer(500, retry_after="120"), CRAWL)
    assert isinstance(failing, Retry) and failing.delay < 120.0  # Retry-After only on 429 and 503


def test_a_redirect_keeps_credentials_on_their_origin_and_a_303_becomes_a_get() -> None:
    post = Request(SITE + "/form", method="POST", body=b"q=1", headers={"Cookie": "c", "X-Mine": "m"})
    hop = next_hop(post, answer(303, location="http://sub.a.test/done"), CRAWL)
    assert isinstance(hop, Follow)
    assert (hop.request.method, hop.request.body) == ("GET", b"")
    assert hop.request.headers == {"X-Mine": "m"}


def test_transient_errors_are_retried_and_others_are_not() -> None:
    retry = retry_after_error(Request(SITE + "/x"), FetchTimeout("slow"), CRAWL)
    assert isinstance(retry, Retry) and retry.request.retries == 1 and retry.reason == "slow"
    assert retry_after_error(Request(SITE + "/x", retries=2), FetchTimeout("slow"), CRAWL) is None
    assert retry_after_error(Request(SITE + "/x"), ResponseTooLarge("big"), CRAWL) is None


def test_the_cache_keeps_no_answer_that_is_retried() -> None:
    assert set(DEFAULT_CACHE_IGNORE_STATUS) == RETRY_STATUSES
