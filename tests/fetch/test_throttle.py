"""Retry-After parsing and the adaptive throttle, from tables."""

from __future__ import annotations

import email.utils
import time

import pytest

from crawler.fetch.throttle import (
    BREAKER_FAILURES,
    BREAKER_PAUSE,
    BREAKER_TRIPS,
    MAX_RETRY_AFTER,
    Adjustment,
    AutoThrottle,
    retry_after_seconds,
)

NOW = 1_800_000_000.0


def http_date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


def _formats(when: float) -> tuple[str, str, str]:
    """IMF-fixdate, RFC 850 and asctime spellings of ``when``."""
    moment = time.gmtime(when)
    return (
        time.strftime("%a, %d %b %Y %H:%M:%S GMT", moment),
        time.strftime("%A, %d-%b-%y %H:%M:%S GMT", moment),
        time.strftime("%a %b ", moment) + f"{moment.tm_mday:2d}" + time.strftime(" %H:%M:%S %Y", moment),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("99999999", MAX_RETRY_AFTER),
        (http_date(30), 30.0),
        (http_date(-30), None),
        (http_date(10**6), MAX_RETRY_AFTER),
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: not an HTTP-date
        ("Mon, 32 Foo 2015 99:99:99 GMT", None),
        # RFC 9110 5.6.7: recipients accept all three forms of the same instant
        ("Sun, 06 Nov 1994 08:49:37 GMT", None),  # in the past
        *[(form, 30.0) for form in (_formats(NOW + 30))],
        # issue 14: delay-seconds are ASCII digits; other Unicode digits are garbage
        ("²", None),
        ("١٢٠", None),
        ("\uff11\uff12\uff10", None),  # fullwidth 120
        ("12²", None),
        ("9" * 400, MAX_RETRY_AFTER),
        ("Sun Nov 6 08:49:37 1994", None),  # asctime pads the day with a space
    ],
)
def test_retry_after(value, expected):
    result = retry_after_seconds(value, NOW)
    assert result == (pytest.approx(expected, abs=1.0) if expected else expected)


def test_slow_start_doubles_per_round_trip_up_to_the_limit():
    throttle = AutoThrottle(max_concurrency=8)
    assert throttle.concurrency("a") == 1
    seen = [throttle.succeeded("a", 0.05).concurrency for _ in range(10)]
    assert seen[:7] == [2, 3, 4, 5, 6, 7, 8]
    assert seen[7:] == [None, None, None]  # at the limit: nothing to change
    assert throttle.concurrency("a") == 8


def test_errors_halve_and_hosts_are_independent():
    throttle = AutoThrottle(max_concurrency=16)
    for _ in range(15):
        throttle.succeeded("a", 0.05)
    assert throttle.failed("a") == Adjustment(concurrency=8)
    assert throttle.failed("a") == Adjustment(concurrency=4)
    assert throttle.concurrency("b") == 1
    assert throttle.succeeded("a", 0.05) == Adjustment(concurrency=5)


def test_very_slow_responses_halve_concurrency():
    throttle = AutoThrottle(max_concurrency=16)
    for _ in range(15):
        throttle.succeeded("a", 0.1)
    changes = [throttle.succeeded("a", 10.0).concurrency for _ in range(4)]
    assert changes[-1] is not None and changes[-1] < 16
    assert throttle.concurrency("a") <= 4


def test_circuit_breaker_pauses_longer_each_time_then_gives_up():
    throttle = AutoThrottle(max_concurrency=4)
    adjustments = [throttle.failed("a") for _ in range(BREAKER_FAILURES + BREAKER_TRIPS)]
    pauses = [adjustment.pause for adjustment in adjustments]
    assert pauses[: BREAKER_FAILURES - 1] == [None] * (BREAKER_FAILURES - 1)
    assert pauses[BREAKER_FAILURES - 1 : -1] == [BREAKER_PAUSE * 2**trip for trip in range(BREAKER_TRIPS)]
    assert [adjustment.give_up for adjustment in adjustments].index(
        True
    ) == BREAKER_FAILURES + BREAKER_TRIPS - 1


def test_one_success_closes_the_breaker():
    throttle = AutoThrottle(max_concurrency=4)
    for _ in range(BREAKER_FAILURES + 1):
        throttle.failed("a")
    throttle.succeeded("a", 0.1)
    assert throttle.failed("a").pause is None


@pytest.mark.parametrize(
    "value", ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"]
)
def test_retry_after_takes_rfc_9110s_three_example_dates(value):
    """RFC 9110 5.6.7's examples, one instant (784111777) in three spellings."""
    assert retry_after_seconds(value, 784_111_777 - 60) == pytest.approx(60.0)
