"""The body budget: a bound on response bodies held in memory at once.

Without it, memory grows as concurrency times page size: 64 requests for 8 MB
pages hold half a gigabyte while they download, and pages wait for the parse
executor for longer still. Each request the engine fetches gets a `Claim`; the
fetcher charges each chunk of body it reads to the claim of the request being
fetched (found in a context variable, so no fetch signature changes), and the
claim is released once the page has been parsed, or dropped.

While the budget is spent, the engine starts no new fetch, and a download that
wants more waits before it reads its next chunk (the kernel and TCP flow control
hold the rest), except the oldest download, which always goes on: it finishes,
goes to the parse executor, and frees its bytes, so the crawl cannot stall. The
bound is therefore the budget plus one page plus a chunk per download.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable

_CLAIM: contextvars.ContextVar[Claim | None] = contextvars.ContextVar("crawler_body_claim", default=None)


class BodyBudget:
    """Up to ``limit`` bytes of bodies being read or waiting to be parsed;
    ``on_release`` is called whenever bytes are given back."""

    def __init__(self, limit: int, on_release: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._on_release = on_release
        self._reading: dict[Claim, None] = {}  # claims still downloading, oldest first
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def spent(self) -> bool:
        return self.used >= self.limit

    def claim(self) -> Claim:
        claim = Claim(self)
        self._reading[claim] = None
        return claim

    async def _grow(self, claim: Claim, size: int) -> None:
        self.used += size
        self.peak = max(self.peak, self.used)
        while self.used > self.limit and claim in self._reading and next(iter(self._reading)) is not claim:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _done_reading(self, claim: Claim) -> None:
        if self._reading.pop(claim, False) is None:
            self._wake()  # another download may be the oldest now

    def _release(self, size: int) -> None:
        self.used -= size
        self._wake()
        if self._on_release is not None:
            self._on_release()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class Claim:
    """The body bytes of one request, from its first chunk until its page is parsed."""

    __slots__ = ("_budget", "size")

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.size = 0

    def reading(self) -> contextvars.Token[Claim | None]:
        """Charge the chunks the fetcher reads in this task to this claim."""
        return _CLAIM.set(self)

    def done_reading(self, token: contextvars.Token[Claim | None]) -> None:
        _CLAIM.reset(token)
        self._budget._done_reading(self)

    async def grow(self, size: int) -> None:
        self.size += size
        await self._budget._grow(self, size)

    def cover(self, size: int) -> None:
        """Count at least ``size`` bytes: a decoded body can be larger than the raw
        bytes that were read. Nothing waits: the download is over."""
        if size > self.size:
            self._budget.used += size - self.size
            self._budget.peak = max(self._budget.peak, self._budget.used)
            self.size = size

    def release(self) -> None:
        """Give the bytes back: the page was parsed, or will not be."""
        self._budget._done_reading(self)
        size, self.size = self.size, 0
        self._budget._release(size)


async def charge_body_chunk(size: int) -> None:
    """Charge ``size`` bytes just read to the request being fetched in this task (if
    the engine gave it a claim), waiting while the budget is spent."""
    claim = _CLAIM.get()
    if claim is not None:
        await claim.grow(size)
