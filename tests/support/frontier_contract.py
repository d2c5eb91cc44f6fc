"""The contract every `Frontier` backend passes.

A backend's test module subclasses `FrontierContract` and provides a fixture
``make_frontier`` returning a factory ``make(*, policy, clock) -> Frontier`` that
builds a fresh, empty frontier using ``policy`` for every host and ``clock`` for
every time decision (the contract always passes both). The factory is called
inside the running event loop, so a backend may connect there; the contract
closes each frontier it makes. Time moves only through `FakeClock`, which is also
the event loop's ``time()`` (what aiolimiter reads): no test sleeps.

A request the contract takes starts at once, as a worker would start it: it
enters its host's limiter (``take`` below); ``take_only`` leaves it handed out.

    class TestMemoryFrontier(FrontierContract):
        @pytest.fixture
        def make_frontier(self) -> FrontierFactory:
            return lambda *, policy, clock: MemoryFrontier(policy, clock=clock)

The wait hint (``FrontierStatus.wait``) may be early, never late: when a retried
request comes due on a host that is still waiting, a backend may report either time.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from crawler._request import Request
from crawler._urls import host_key
from crawler.frontier.base import Frontier, FrontierStatus, HostPolicy


class FakeClock:
    """A monotonic clock that moves only when told to. It starts far from zero so
    that a backend mistaking 0 for "never" shows up."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


DEFAULT_POLICY = HostPolicy()
FrontierFactory = Callable[..., Frontier]
"""``make(*, policy: HostPolicy, clock: Callable[[], float]) -> Frontier``"""


Body = Callable[[Frontier, FakeClock], Awaitable[None]]


def drive(make_frontier: FrontierFactory, body: Body, *, policy: HostPolicy = DEFAULT_POLICY) -> None:
    """Run ``body(frontier, clock)`` in a fresh event loop and close the frontier."""

    async def main() -> None:
        clock = FakeClock()
        asyncio.get_running_loop().time = clock  # type: ignore[method-assign]  # the limiters' clock
        frontier = make_frontier(policy=policy, clock=clock)
        try:
            await body(frontier, clock)
        finally:
            await frontier.close()

    asyncio.run(main())


async def take(f: Frontier, limit: int) -> list[Request]:
    """``f.take(limit)``, each request then started in its host's limiter."""
    taken = await f.take(limit)
    for request in taken:
        async with f.limiters.start(host_key(request.url), request.fingerprint):
            pass
    return taken


def urls(requests: list[Request]) -> list[str]:
    return [r.url for r in requests]


def hosts(requests: list[Request]) -> list[str]:
    return [host_key(r.url) for r in requests]


A, B, C = "http://a.example", "http://b.example", "http://c.example"
ONE = HostPolicy(concurrency=1)


class FrontierContract:
    """Tests every backend passes; subclasses provide the ``make_frontier`` fixture."""

    # -- open and close ----------------------------------------------------------

    def test_open_is_idempotent_and_a_new_frontier_recovers_nothing(
        self, make_frontier: FrontierFactory
    ) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            assert await f.open() == 0
            assert await f.open() == 0
            await f.add([Request(f"{A}/1")])
            assert urls(await take(f, 1)) == [f"{A}/1"]

        drive(make_frontier, body)

    def test_close_needs_no_open_and_is_idempotent(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.close()
            await f.close()  # and ``drive`` closes it once more

        drive(make_frontier, body)

    # -- dedup -------------------------------------------------------------------

    def test_same_url_twice_is_queued_once(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            assert await f.add([Request(f"{A}/1")]) == 1
            assert await f.add([Request(f"{A}/1")]) == 0
            assert await status(f) == (1, 0, 1)
            assert urls(await take(f, 10)) == [f"{A}/1"]
            assert await take(f, 10) == []

        drive(make_frontier, body)

    def test_seen_after_done_is_still_deduped(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/1")])
            [r] = await take(f, 1)
            await f.done(r)
            assert await f.add([Request(f"{A}/1")]) == 0
            assert (await f.status()).finished

        drive(make_frontier, body)

    def test_batch_add_counts_new_requests(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            batch = [
                Request(f"{A}/1"),
                Request(f"{A}/2"),
                Request(f"{A}/1"),
                Request(f"{B}/1"),
                Request(f"{A}/2"),
            ]
            assert await f.add(batch) == 3
            assert await f.add([]) == 0
            assert await f.add([Request(f"{B}/1"), Request(f"{B}/2")]) == 1
            assert await status(f) == (4, 0, 4)

        drive(make_frontier, body)

    def test_dont_filter_skips_dedup_and_records(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            assert await f.add([Request(f"{A}/1", dont_filter=True)]) == 1
            assert await f.add([Request(f"{A}/1")]) == 0  # recorded by the dont_filter add
            assert await f.add([Request(f"{A}/1", dont_filter=True)]) == 1
            assert await status(f) == (2, 0, 1)

        drive(make_frontier, body)

    def test_method_and_body_are_part_of_identity(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            batch = [
                Request(f"{A}/form"),
                Request(f"{A}/form", method="POST"),
                Request(f"{A}/form", method="POST", body=b"q=1"),
                Request(f"{A}/form", method="POST", body=b"q=2"),
                Request(f"{A}/form", method="post", body=b"q=2"),
            ]
            assert await f.add(batch) == 4

        drive(make_frontier, body)

    # -- take: limit, order, fairness --------------------------------------------

    def test_take_respects_limit(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"http://h{i}.example/") for i in range(10)])
            await f.add([Request(f"{A}/{i}") for i in range(10)])
            assert await take(f, 0) == []
            assert len(await take(f, 3)) == 3
            assert len(await take(f, 1)) == 1
            assert len(await take(f, 100)) == 16
            assert await take(f, 100) == []
            assert await status(f) == (0, 20, 20)

        drive(make_frontier, body, policy=HostPolicy(concurrency=10))

    def test_priority_order_then_fifo_within_host(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            priorities = {"p0a": 0, "p5a": 5, "m1": -1, "p5b": 5, "p3": 3, "p0b": 0}
            await f.add([Request(f"{A}/{name}", priority=p) for name, p in priorities.items()])
            order = []
            for _ in priorities:
                [r] = await take(f, 1)
                order.append(r.url.rsplit("/", 1)[1])
                await f.done(r)
            assert order == ["p5a", "p5b", "p3", "p0a", "p0b", "m1"]

        drive(make_frontier, body, policy=ONE)

    def test_fifo_among_equal_priority_across_adds(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            for i in range(5):
                await f.add([Request(f"{A}/{i}")])
            assert urls(await take(f, 10)) == [f"{A}/{i}" for i in range(5)]

        drive(make_frontier, body, policy=HostPolicy(concurrency=10))

    def test_round_robin_serves_small_host_first_pass(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(100)])
            await f.add([Request(f"{B}/0")])
            assert sorted(hosts(await take(f, 2))) == ["a.example", "b.example"]

        drive(make_frontier, body, policy=HostPolicy(concurrency=1000))

    def test_round_robin_one_request_per_host_per_pass(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(10)])
            await f.add([Request(f"{B}/{i}") for i in range(10)])
            await f.add([Request(f"{C}/{i}") for i in range(2)])
            first = await take(f, 6)
            assert Counter(hosts(first)) == {
                "a.example": 2,
                "b.example": 2,
                "c.example": 2,
            }
            rest = await take(f, 100)
            assert Counter(hosts(rest)) == {"a.example": 8, "b.example": 8}

        drive(make_frontier, body, policy=HostPolicy(concurrency=1000))

    # -- politeness ----------------------------------------------------------------

    def test_concurrency_caps_in_flight_and_done_frees_a_slot(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(5)])
            await f.add([Request(f"{B}/0")])
            first = await take(f, 10)
            assert Counter(hosts(first)) == {"a.example": 2, "b.example": 1}
            assert await take(f, 10) == []
            await f.done(next(r for r in first if r.url.startswith(A)))
            assert hosts(await take(f, 10)) == ["a.example"]
            assert await take(f, 10) == []
            assert await status(f) == (2, 3, 6)

        drive(make_frontier, body, policy=HostPolicy(concurrency=2))

    def test_fetched_frees_the_host_slot_but_keeps_the_lease(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(3)])
            [first] = await take(f, 10)
            assert await take(f, 10) == []
            await f.fetched(first)
            [second] = await take(f, 10)
            assert await status(f) == (1, 2, 3)  # both leased: parsing does not end a lease
            await f.done(first)  # its slot was freed already: no second free
            assert await take(f, 10) == []
            await f.done(second)  # ends the lease and frees the slot it still held
            [third] = await take(f, 10)
            await f.fetched(third)
            with pytest.raises(ValueError):
                await f.fetched(third)
            await f.retry(third, 0.0)
            assert await status(f) == (1, 0, 3)

        drive(make_frontier, body, policy=HostPolicy(concurrency=1))

    def test_fetched_of_request_not_in_flight_raises(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/0")])
            with pytest.raises(ValueError):
                await f.fetched(Request(f"{A}/0"))

        drive(make_frontier, body)

    def test_interval_spaces_starts_of_one_host(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(3)])
            await f.add([Request(f"{B}/0")])
            assert sorted(urls(await take(f, 10))) == [f"{A}/0", f"{B}/0"]
            assert await take(f, 10) == []
            clock.advance(0.5)
            assert await take(f, 10) == []
            await f.add([Request(f"{C}/0")])  # other hosts are unaffected
            assert urls(await take(f, 10)) == [f"{C}/0"]
            clock.advance(0.5)
            assert urls(await take(f, 10)) == [f"{A}/1"]
            clock.advance(1.0)
            assert urls(await take(f, 10)) == [f"{A}/2"]

        drive(make_frontier, body, policy=HostPolicy(concurrency=8, interval=1.0))

    def test_interval_counts_from_take_not_from_done(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(2)])
            [r] = await take(f, 10)
            clock.advance(0.75)
            await f.done(r)
            assert await take(f, 10) == []
            clock.advance(0.25)
            assert urls(await take(f, 10)) == [f"{A}/1"]

        drive(make_frontier, body, policy=HostPolicy(concurrency=8, interval=1.0))

    def test_a_request_handed_out_holds_its_host_till_it_starts(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(3)])
            [a0] = await f.take(10)  # handed out, not started yet
            clock.advance(5.0)
            assert await f.take(10) == []  # one start per interval: a0 may start any moment
            async with f.limiters.start("a.example", a0.fingerprint):
                pass
            assert await f.take(10) == []
            clock.advance(1.0)
            assert urls(await take(f, 10)) == [f"{A}/1"]

        drive(make_frontier, body, policy=HostPolicy(concurrency=8, interval=1.0))

    def test_a_request_never_sent_gives_its_start_back(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(3)])
            [a0] = await f.take(10)
            await f.fetched(a0, sent=False)  # refused (robots.txt, say): no slot, no interval
            await f.done(a0)
            [a1] = await take(f, 10)
            assert a1.url == f"{A}/1"
            assert await f.take(10) == []
            clock.advance(1.0)
            assert urls(await take(f, 10)) == [f"{A}/2"]

        drive(make_frontier, body, policy=HostPolicy(concurrency=8, interval=1.0))

    def test_a_request_ended_before_it_started_frees_its_host(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(2)])
            [a0] = await f.take(10)
            await f.retry(a0, 30.0)  # e.g. its robots.txt could not be fetched yet
            assert urls(await take(f, 10)) == [f"{A}/1"]

        drive(make_frontier, body, policy=HostPolicy(concurrency=8, interval=1.0))

    def test_pause_skips_host_and_never_shortens(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(2)])
            await f.add([Request(f"{B}/{i}") for i in range(2)])
            await f.throttle("a.example", pause=10.0)
            assert hosts(await take(f, 10)) == ["b.example", "b.example"]
            await f.throttle("a.example", pause=1.0)  # shorter: no effect
            clock.advance(5.0)
            assert await take(f, 10) == []
            clock.advance(5.0)
            assert hosts(await take(f, 10)) == ["a.example", "a.example"]

        drive(make_frontier, body)

    def test_pause_of_ready_host_takes_effect_at_once(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(3)])
            [r] = await take(f, 1)
            await f.throttle(host_key(r.url), pause=2.0)
            assert await take(f, 10) == []
            assert (await f.status()).wait == 2.0
            clock.advance(2.0)
            assert len(await take(f, 10)) == 2

        drive(make_frontier, body)

    def test_pause_of_unknown_host_holds_later_adds(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.throttle("a.example", pause=3.0)
            await f.add([Request(f"{A}/0")])
            assert await take(f, 10) == []
            assert (await f.status()).wait == 3.0
            clock.advance(3.0)
            assert urls(await take(f, 10)) == [f"{A}/0"]

        drive(make_frontier, body)

    def test_throttle_policy_overrides_one_host(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(5)])
            await f.add([Request(f"{B}/{i}") for i in range(5)])
            await f.throttle("a.example", policy=HostPolicy(concurrency=3))
            await f.throttle("b.example", policy=HostPolicy(concurrency=8, interval=5.0))
            assert Counter(hosts(await take(f, 10))) == {"a.example": 3, "b.example": 1}
            clock.advance(4.0)
            assert await take(f, 10) == []
            clock.advance(1.0)
            assert hosts(await take(f, 10)) == ["b.example"]

        drive(make_frontier, body, policy=ONE)

    def test_throttle_lowering_concurrency_applies_to_queued(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(4)])
            taken = await take(f, 2)
            await f.throttle("a.example", policy=HostPolicy(concurrency=1))
            assert await take(f, 10) == []
            assert (await f.status()).wait is None
            await f.done(taken[0])
            assert await take(f, 10) == []
            await f.done(taken[1])
            assert len(await take(f, 10)) == 1

        drive(make_frontier, body, policy=HostPolicy(concurrency=8))

    # -- leases: done and retry ----------------------------------------------------

    def test_retry_waits_for_delay_and_is_not_deduped(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/0")])
            [r] = await take(f, 1)
            await f.retry(r, 5.0)
            assert await status(f) == (1, 0, 1)
            assert (await f.status()).wait == 5.0
            assert await take(f, 10) == []
            clock.advance(4.5)
            assert await take(f, 10) == []
            assert await f.add([Request(f"{A}/0")]) == 0  # still seen
            clock.advance(0.5)
            assert urls(await take(f, 10)) == [f"{A}/0"]
            await f.done(r)
            assert (await f.status()).finished

        drive(make_frontier, body)

    def test_retry_frees_the_slot_at_once(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/0"), Request(f"{A}/1")])
            [r] = await take(f, 10)
            await f.retry(r, 60.0)
            assert urls(await take(f, 10)) == [f"{A}/1"]

        drive(make_frontier, body, policy=ONE)

    def test_retry_accepts_a_changed_copy(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/0")])
            [r] = await take(f, 1)
            await f.retry(Request(r.url, retries=r.retries + 1), 0.0)
            [again] = await take(f, 1)
            assert again.retries == 1
            await f.done(again)
            assert (await f.status()).finished

        drive(make_frontier, body)

    def test_done_of_request_not_in_flight_raises(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            with pytest.raises(ValueError):
                await f.done(Request(f"{A}/never-added"))
            await f.add([Request(f"{A}/0")])
            with pytest.raises(ValueError):
                await f.done(Request(f"{A}/0"))  # queued, not taken
            [r] = await take(f, 1)
            await f.done(r)
            with pytest.raises(ValueError):
                await f.done(r)
            with pytest.raises(ValueError):
                await f.retry(r, 1.0)
            assert await status(f) == (0, 0, 1)

        drive(make_frontier, body)

    def test_same_url_in_flight_twice(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/0", dont_filter=True) for _ in range(2)])
            first, second = await take(f, 10)
            assert await status(f) == (0, 2, 1)
            await f.done(first)
            await f.done(second)
            with pytest.raises(ValueError):
                await f.done(first)
            assert (await f.status()).finished

        drive(make_frontier, body)

    # -- status --------------------------------------------------------------------

    def test_status_of_empty_frontier(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            s = await f.status()
            assert s == FrontierStatus(pending=0, in_flight=0, seen=0, wait=None)
            assert s.finished

        drive(make_frontier, body)

    def test_status_wait_hints(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/{i}") for i in range(3)])
            assert (await f.status()).wait == 0.0  # ready now
            [a0] = await take(f, 10)
            assert (await f.status()).wait is None  # only a done can help
            await f.done(a0)
            assert (await f.status()).wait == 2.0  # interval
            clock.advance(0.5)
            assert (await f.status()).wait == 1.5
            await f.throttle("a.example", pause=4.0)
            assert (await f.status()).wait == 4.0  # the pause is longer
            clock.advance(4.0)
            assert (await f.status()).wait == 0.0
            clock.advance(100.0)
            assert (await f.status()).wait == 0.0  # never negative
            [a1] = await take(f, 10)
            await f.retry(a1, 3.0)
            assert (await f.status()).wait == 2.0  # the host's interval ends before the retry
            clock.advance(2.0)
            s = await f.status()
            assert (s.pending, s.in_flight, s.wait) == (2, 0, 0.0)
            assert not s.finished

        drive(make_frontier, body, policy=HostPolicy(concurrency=1, interval=2.0))

    def test_status_wait_picks_earliest_of_hosts_and_retries(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            await f.add([Request(f"{A}/0"), Request(f"{A}/1"), Request(f"{B}/0")])
            taken = await take(f, 10)
            assert (await f.status()).wait == 10.0
            b0 = next(r for r in taken if r.url == f"{B}/0")
            await f.retry(b0, 3.0)
            # b0 is due in 3 s but its host is ready in 10 s: a backend may hint
            # either (an early hint costs one empty take; a late one never happens).
            wait = (await f.status()).wait
            assert wait is not None and 3.0 <= wait <= 10.0
            await f.throttle("b.example", policy=HostPolicy(concurrency=8, interval=1.0))
            assert (await f.status()).wait == 3.0
            clock.advance(3.0)
            assert urls(await take(f, 10)) == [f"{B}/0"]

        drive(make_frontier, body, policy=HostPolicy(concurrency=8, interval=10.0))

    def test_finished_only_when_nothing_pending_or_in_flight(self, make_frontier: FrontierFactory) -> None:
        async def body(f: Frontier, clock: FakeClock) -> None:
            assert (await f.status()).finished
            await f.add([Request(f"{A}/0")])
            assert not (await f.status()).finished
            [r] = await take(f, 1)
            assert not (await f.status()).finished
            await f.retry(r, 1.0)
            assert not (await f.status()).finished
            clock.advance(1.0)
            [r] = await take(f, 1)
            await f.done(r)
            assert (await f.status()).finished

        drive(make_frontier, body)

    # -- a whole crawl ---------------------------------------------------------------

    def test_many_hosts_drain_with_politeness(self, make_frontier: FrontierFactory) -> None:
        n_hosts, per_host, policy = 1000, 10, HostPolicy(concurrency=2, interval=1.0)

        async def body(f: Frontier, clock: FakeClock) -> None:
            for i in range(n_hosts):
                await f.add([Request(f"http://h{i}.example/{j}") for j in range(per_host)])
            crawl = SimulatedCrawl(f, clock, policy)
            for _tick in range(1000):
                if not await crawl.step():
                    break
            assert (await f.status()).finished
            assert len(crawl.taken) == n_hosts * per_host
            assert set(crawl.taken.values()) == {1}

        drive(make_frontier, body, policy=policy)


class SimulatedCrawl:
    """Drives a frontier like the engine does, on a fake clock, with fetches that
    take 1-4 ticks, and checks politeness at every start."""

    def __init__(self, frontier: Frontier, clock: FakeClock, policy: HostPolicy) -> None:
        self.frontier, self.clock, self.policy = frontier, clock, policy
        self.rng = random.Random(7)
        self.taken: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.last_start: dict[str, float] = {}
        self.fetching: list[tuple[float, Request]] = []  # (finishes at, request)

    async def step(self) -> bool:
        """One tick: take what is ready, advance, finish due fetches. False when done."""
        s = await self.frontier.status()
        if s.finished:
            return False
        batch = await take(self.frontier, 300)
        assert (s.wait == 0.0) == bool(batch)
        if not batch and not self.fetching:
            assert s.wait is not None and s.wait > 0
        for request in batch:
            self.start(request)
        self.clock.advance(1.0)
        await self.finish_due()
        return True

    def start(self, request: Request) -> None:
        host = host_key(request.url)
        self.in_flight[host] += 1
        assert self.in_flight[host] <= self.policy.concurrency
        assert self.clock() - self.last_start.get(host, -self.policy.interval) >= self.policy.interval
        self.last_start[host] = self.clock()
        self.taken[request.url] += 1
        self.fetching.append((self.clock() + self.rng.randint(1, 4), request))

    async def finish_due(self) -> None:
        due = [r for finish, r in self.fetching if finish <= self.clock()]
        self.fetching = [(finish, r) for finish, r in self.fetching if finish > self.clock()]
        for request in due:
            await self.frontier.done(request)
            self.in_flight[host_key(request.url)] -= 1


async def status(f: Frontier) -> tuple[int, int, int]:
    """``(pending, in_flight, seen)``."""
    s = await f.status()
    return s.pending, s.in_flight, s.seen
