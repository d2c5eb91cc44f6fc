"""Adaptive per-host politeness: Retry-After, and concurrency that follows the server.

``AutoThrottle`` adjusts each host's concurrency the way TCP adjusts its window:
it starts at one request in flight and adds one for every healthy response (so it
doubles every round trip up to ``per_host``), halves it on an error (5xx, 429, a
timeout, a broken connection) or on a response much slower than the host's usual
(over ``SLOW_FACTOR`` times its fastest and over ``SLOW_SECONDS``), and after
``BREAKER_FAILURES`` failures in a row opens a circuit breaker: the host is paused,
for twice as long each time it fails again, and after ``BREAKER_TRIPS`` pauses
without a single success it is given up (its remaining requests are dropped and
counted), so a dead host cannot keep a crawl from ending. So the load on a
struggling host never grows.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass

MAX_RETRY_AFTER = 600.0
SLOW_FACTOR = 4.0
SLOW_SECONDS = 2.0
BREAKER_FAILURES = 5
BREAKER_PAUSE = 10.0
BREAKER_TRIPS = 3
LATENCY_WEIGHT = 0.3
# RFC 9110's asctime-date, which is GMT though it names no zone: "Sun Nov  6 08:49:37 1994".
_ASCTIME = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}")


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 10.2.3): delay-seconds
    (ASCII digits only) or an HTTP-date in any of its three forms (``now`` is the
    Unix time). Garbage and dates in the past give ``None``; huge values are
    clamped to ``MAX_RETRY_AFTER``."""
    if value is None:
        return None
    value = value.strip()
    delay = value.isascii() and value.isdigit()  # str.isdigit alone takes "²" and "٣"
    seconds = float(value) if delay else _seconds_until(value, now)
    if seconds is None or seconds < 0 or (seconds == 0 and not delay):
        return None
    return min(seconds, MAX_RETRY_AFTER)


def _seconds_until(http_date: str, now: float) -> float | None:
    """Seconds from ``now`` to an IMF-fixdate, an RFC 850 date or an asctime date;
    a date in another form without a zone is no HTTP-date."""
    try:
        parts = email.utils.parsedate_tz(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if parts is None or (parts[9] is None and not _ASCTIME.fullmatch(http_date)):
        return None
    try:
        return email.utils.mktime_tz((*parts[:9], parts[9] or 0)) - now
    except (OverflowError, ValueError):
        return None


@dataclass(slots=True)
class HostHealth:
    concurrency: int = 1
    latency: float | None = None
    fastest: float | None = None
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Adjustment:
    """What to change for a host: a new concurrency, a pause in seconds, or giving
    the host up."""

    concurrency: int | None = None
    pause: float | None = None
    give_up: bool = False


class AutoThrottle:
    """Per-host concurrency between 1 and ``max_concurrency``, driven by outcomes."""

    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max_concurrency
        self._hosts: dict[str, HostHealth] = {}

    def concurrency(self, host: str) -> int:
        return self._health(host).concurrency

    def _health(self, host: str) -> HostHealth:
        health = self._hosts.get(host)
        if health is None:
            health = self._hosts[host] = HostHealth(concurrency=1)
        return health

    def succeeded(self, host: str, latency: float) -> Adjustment:
        """A response that is not an error: speed up unless it was very slow."""
        health = self._health(host)
        health.failures = 0
        health.latency = latency if health.latency is None else _blend(health.latency, latency)
        health.fastest = latency if health.fastest is None else min(health.fastest, latency)
        if health.latency > max(SLOW_SECONDS, SLOW_FACTOR * health.fastest):
            return self._set(health, max(1, health.concurrency // 2))
        return self._set(health, min(self.max_concurrency, health.concurrency + 1))

    def failed(self, host: str) -> Adjustment:
        """An error (5xx, 429, timeout, broken connection): slow down; pause the host
        after ``BREAKER_FAILURES`` in a row."""
        health = self._health(host)
        health.failures += 1
        adjustment = self._set(health, max(1, health.concurrency // 2))
        trips = health.failures - BREAKER_FAILURES + 1
        if trips > BREAKER_TRIPS:
            return Adjustment(adjustment.concurrency, give_up=True)
        if trips > 0:
            return Adjustment(adjustment.concurrency, BREAKER_PAUSE * 2.0 ** (trips - 1))
        return adjustment

    def _set(self, health: HostHealth, concurrency: int) -> Adjustment:
        if concurrency == health.concurrency:
            return Adjustment()
        health.concurrency = concurrency
        return Adjustment(concurrency=concurrency)


def _blend(average: float, sample: float) -> float:
    return (1 - LATENCY_WEIGHT) * average + LATENCY_WEIGHT * sample
