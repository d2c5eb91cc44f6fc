"""`RedisFrontier`: the frontier contract on a real Redis, plus what only a shared
frontier has: several nodes, leases that expire, lost connections.

Uses the Redis at ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), each test
under a fresh namespace whose keys are deleted afterwards. Without a reachable
Redis the tests are skipped, unless ``CI`` is set: then they fail.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import crawler
from crawler import FrontierError
from crawler._request import Request
from crawler._urls import host_key
from crawler.frontier.base import Frontier, HostPolicy
from crawler.frontier.redis import LEAD_MOST, LEAD_START, START_SLACK, RedisFrontier, _Lead
from tests.support.frontier_contract import FakeClock, FrontierContract, FrontierFactory, take
from tests.support.jobs import CHAIN_PAGES, CHAIN_SETTINGS, ChainSpider
from tests.support.redis_server import RedisServer, started_redis
from tests.support.sites import chain_site

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
A, B = "http://a.example", "http://b.example"
ONE = HostPolicy(concurrency=1)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``REDIS_URL`` if a Redis answers there; else skip (or fail under ``CI``)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"no Redis at {REDIS_URL} ({exc}); set REDIS_URL to run the Redis frontier tests"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A namespace no other test uses; its keys are deleted after the test."""
    name = f"crawler-test:{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{{{name}}}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


class TestRedisFrontier(FrontierContract):
    @pytest.fixture
    def make_frontier(self, redis_url: str, namespace: str) -> FrontierFactory:
        def make(*, policy: HostPolicy, clock: Callable[[], float]) -> Frontier:
            return RedisFrontier(redis_url, namespace, policy, clock=clock, lead=0.0)

        return make


def test_is_a_frontier(redis_url: str, namespace: str) -> None:
    assert isinstance(RedisFrontier(redis_url, namespace), Frontier)


def test_nodes_share_a_store_and_add_up_their_statistics(redis_url: str, namespace: str) -> None:
    async def body() -> None:
        one, two = RedisFrontier(redis_url, namespace), RedisFrontier(redis_url, namespace)
        try:
            await one.shared_set("robots:http://a.example", b"rules", ttl=60.0)
            assert await two.shared_get("robots:http://a.example") == b"rules"
            assert await two.shared_get("robots:http://b.example") is None
            await one.add_stats({"pages": 2, "items": 1})
            await two.add_stats({"pages": 3})
            await two.add_stats({})
        finally:
            await one.close()
            await two.close()

    run(body)
    client = redis.Redis.from_url(redis_url)
    try:
        assert 0 < client.pttl(f"{{{namespace}}}:x:robots:http://a.example") <= 60_000
        assert client.hgetall(f"{{{namespace}}}:stats") == {b"pages": b"5", b"items": b"1"}
    finally:
        client.close()


def test_a_crawl_with_the_callers_redis_frontier_is_a_shared_crawl(
    redis_url: str, namespace: str, serve: Any, tmp_path: Path
) -> None:
    """As with ``--frontier``: each page acknowledged once written, and the node's
    statistics added to the crawl's totals."""
    server = serve(chain_site(CHAIN_PAGES))
    output = tmp_path / "items.jsonl"
    output.touch()
    ChainSpider.frontier, ChainSpider.seen = RedisFrontier(redis_url, namespace), []
    args = {"start": f"{server.url}/0", "out": str(output)}
    backend = ChainSpider.frontier
    crawler.run(ChainSpider, output=str(output), spider_args=args, backend=backend, **CHAIN_SETTINGS)
    assert ChainSpider.seen == [(lines, 1) for lines in range(CHAIN_PAGES)]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.hget(f"{{{namespace}}}:stats", "pages") == str(CHAIN_PAGES).encode()
    finally:
        client.close()


def test_real_clock_by_default(redis_url: str, namespace: str) -> None:
    async def body() -> None:
        f = RedisFrontier(redis_url, namespace, HostPolicy(concurrency=8, interval=60.0))
        try:
            await f.add([Request(f"{A}/0"), Request(f"{A}/1")])
            assert len(await take(f, 10)) == 1
            wait = (await f.status()).wait
            assert wait is not None and 59.0 < wait <= 60.0  # Redis server time moves
        finally:
            await f.close()

    run(body)


# -- several nodes on one namespace -------------------------------------------------


def two_nodes(
    url: str,
    namespace: str,
    policy: HostPolicy,
    *,
    clock: Callable[[], float] | None = None,
    lease_seconds: float = 30.0,
) -> list[RedisFrontier]:
    options = {"clock": clock, "lease_seconds": lease_seconds, "lead": 0.0}
    return [RedisFrontier(url, namespace, policy, node_id=name, **options) for name in ("node-a", "node-b")]


def test_nodes_share_dedup(redis_url: str, namespace: str) -> None:
    async def body() -> None:
        a, b = two_nodes(redis_url, namespace, HostPolicy(), clock=FakeClock())
        try:
            assert await a.add([Request(f"{A}/0"), Request(f"{A}/1")]) == 2
            assert await b.add([Request(f"{A}/1"), Request(f"{A}/2")]) == 1
            assert (await b.status()).seen == 3
            taken = await a.take(10) + await b.take(10)
            assert sorted(r.url for r in taken) == [f"{A}/0", f"{A}/1", f"{A}/2"]
        finally:
            await a.close()
            await b.close()

    run(body)


def test_nodes_share_host_concurrency(redis_url: str, namespace: str) -> None:
    async def body() -> None:
        a, b = two_nodes(redis_url, namespace, ONE, clock=FakeClock())
        try:
            await a.add([Request(f"{A}/{i}") for i in range(3)] + [Request(f"{B}/0")])
            [first] = await a.take(1)
            assert first.url.startswith(A)
            assert [r.url for r in await b.take(10)] == [f"{B}/0"]  # nothing more of a.example
            assert await b.take(10) == []
            await a.done(first)
            assert [r.url for r in await b.take(10)] == [f"{A}/1"]
            s = await a.status()
            assert (s.pending, s.in_flight) == (1, 2)  # in flight counts every node
        finally:
            await a.close()
            await b.close()

    run(body)


def test_nodes_share_host_interval_and_pause(redis_url: str, namespace: str) -> None:
    async def body() -> None:
        clock = FakeClock()
        asyncio.get_running_loop().time = clock  # type: ignore[method-assign]  # the nodes' clock
        a, b = two_nodes(redis_url, namespace, HostPolicy(concurrency=8, interval=2.0), clock=clock)
        try:
            await a.add([Request(f"{A}/{i}") for i in range(3)])
            [taken] = await a.take(10)
            assert await b.take(10) == []
            assert (await b.status()).wait is None  # handed out: b waits for its start
            clock.advance(1.0)
            async with a.limiters.start("a.example", taken.fingerprint):
                assert await b.take(10) == []
            # the interval counts from the start (one recorded late: less the slack it may have)
            assert (await b.status()).wait == pytest.approx(2.0 - START_SLACK)
            clock.advance(1.0)
            assert await b.take(10) == []
            clock.advance(2.0)
            await a.throttle("a.example", pause=5.0)
            assert await b.take(10) == []
            clock.advance(5.0)
            assert len(await b.take(10)) == 1
        finally:
            await a.close()
            await b.close()

    run(body)


def test_a_hosts_starts_are_an_interval_apart_across_late_nodes(redis_url: str, namespace: str) -> None:
    """Three nodes take requests of one host and start them late, in random order: the
    host's starts, whichever node makes them, stay one interval apart (the interval
    counts from the start, and a request taken holds its host until it starts)."""

    async def body() -> None:
        clock = FakeClock()
        asyncio.get_running_loop().time = clock  # type: ignore[method-assign]  # the limiters' clock
        policy = HostPolicy(concurrency=8, interval=1.0)
        nodes = [RedisFrontier(redis_url, namespace, policy, clock=clock, node_id=f"n{i}") for i in range(3)]
        rng = random.Random(15)
        handed: list[tuple[RedisFrontier, Request]] = []
        starts: list[float] = []
        try:
            await nodes[0].add([Request(f"{A}/{i}") for i in range(10)])
            for _ in range(400):
                node = rng.choice(nodes)
                handed += [(node, request) for request in await node.take(10)]
                if handed and rng.random() < 0.25:  # some node gets round to a request it took
                    owner, request = handed.pop(rng.randrange(len(handed)))
                    async with owner.limiters.start("a.example", request.fingerprint):
                        starts.append(clock())
                    await owner.fetched(request)
                    await owner.done(request)
                clock.advance(rng.choice((0.0, 0.25, 0.5)))
        finally:
            for node in nodes:
                await node.close()
        assert len(starts) == 10
        assert min(b - a for a, b in itertools.pairwise(starts)) >= 1.0

    run(body)


async def start_when_due(node: RedisFrontier, request: Request, clock: FakeClock) -> float:
    """Start ``request`` in ``node``'s limiter: the fake clock's time at which it goes
    on the wire, once the test has moved the clock far enough."""
    async with node.limiters.start(host_key(request.url), request.fingerprint):
        return clock()


async def settle() -> None:
    """Let every task that can run, run (a Redis reply included)."""
    for _ in range(5):
        await asyncio.to_thread(time.sleep, 0.01)  # real time for Redis replies: the fake clock stands still


TwoNodes = Callable[[RedisFrontier, RedisFrontier, FakeClock], Awaitable[None]]


def with_two_leading_nodes(redis_url: str, namespace: str, body: TwoNodes) -> None:
    """Run ``body(a, b, clock)``: two nodes that take a host up to half a second before
    its start is due, a host interval of 1 s, and a fake clock that is also the nodes'
    event loop's (their limiters and their waits for a reserved start)."""

    async def main() -> None:
        clock = FakeClock()
        asyncio.get_running_loop().time = clock  # type: ignore[method-assign]
        policy = HostPolicy(concurrency=8, interval=1.0)
        a, b = (RedisFrontier(redis_url, namespace, policy, clock=clock, lead=0.5, node_id=n) for n in "ab")
        try:
            await body(a, b, clock)
        finally:
            await a.close()
            await b.close()

    run(main)


def test_take_reserves_the_next_start_ahead_and_nodes_keep_the_interval(
    redis_url: str, namespace: str
) -> None:
    """Two nodes take one host's requests before its next start is due; each waits for
    the start reserved for it, so the host's starts are exactly one interval apart, not
    one interval plus the time from take to start."""

    async def body(a: RedisFrontier, b: RedisFrontier, clock: FakeClock) -> None:
        await a.add([Request(f"{A}/{i}") for i in range(3)])
        [first] = await a.take(10)
        starts = [await start_when_due(a, first, clock)]
        clock.advance(0.4)
        assert await b.take(10) == []  # due in 0.6 s: more than the lead ahead
        assert (await b.status()).wait == pytest.approx(0.1)  # the lead before it is due
        for node in (b, a):
            clock.now = starts[-1] + 0.5
            [request] = await node.take(10)  # its start, reserved 0.5 s ahead
            assert await a.take(10) == await b.take(10) == []
            starting = asyncio.create_task(start_when_due(node, request, clock))
            await settle()
            assert not starting.done()  # waits for its reserved start
            clock.advance(0.5)
            starts.append(await starting)
        assert starts == [1000.0, 1001.0, 1002.0]

    with_two_leading_nodes(redis_url, namespace, body)


def test_a_refused_request_gives_its_reserved_start_back(redis_url: str, namespace: str) -> None:
    async def body(a: RedisFrontier, b: RedisFrontier, clock: FakeClock) -> None:
        await a.add([Request(f"{A}/{i}") for i in range(3)])
        [first] = await a.take(10)
        assert await start_when_due(a, first, clock) == 1000.0
        clock.advance(0.6)
        [refused] = await a.take(10)  # reserved for 1001
        await a.fetched(refused, sent=False)  # robots.txt, say: never sent
        await a.done(refused)
        [second] = await b.take(10)  # gets the same start
        starting = asyncio.create_task(start_when_due(b, second, clock))
        await settle()
        clock.advance(0.4)
        assert await starting == 1001.0

    with_two_leading_nodes(redis_url, namespace, body)


def test_a_start_recorded_late_moves_the_hosts_next_start(redis_url: str, namespace: str) -> None:
    """A node that gets to a request later than its reserved start records it then (less
    ``START_SLACK``): the next start of the host counts from there."""

    async def body(a: RedisFrontier, b: RedisFrontier, clock: FakeClock) -> None:
        await a.add([Request(f"{A}/{i}") for i in range(2)])
        [first] = await a.take(10)
        clock.advance(0.3)  # late by 0.3 s
        assert await start_when_due(a, first, clock) == 1000.3
        assert (await b.status()).wait == pytest.approx(1.0 - START_SLACK - 0.5)

    with_two_leading_nodes(redis_url, namespace, body)


def test_a_reply_that_comes_back_late_moves_the_hosts_start(redis_url: str, namespace: str) -> None:
    """A node whose event loop was busy while the start script's reply came back tells
    Redis when the request really went out, so the next start counts from there."""

    async def body() -> None:
        policy = HostPolicy(concurrency=8, interval=60.0)
        a = RedisFrontier(redis_url, namespace, policy, lead=0.0)
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            await a.add([Request(f"{A}/0"), Request(f"{A}/1")])
            [first] = await a.take(10)
            seconds, micros = await client.time()
            asyncio.get_running_loop().call_soon(time.sleep, 0.1)  # a busy loop, as a parse in-process
            async with a.limiters.start("a.example", first.fingerprint):
                pass
            await a.close()  # sends what it still had to say
            last = float(await client.hget(f"{{{namespace}}}:h:a.example", "last"))
        finally:
            await client.aclose()
        assert last >= seconds + micros / 1e6 + 0.1 - START_SLACK

    run(body)


def test_the_lead_follows_how_early_or_late_requests_get_to_their_start() -> None:
    lead = _Lead(None)
    assert lead.seconds == LEAD_START
    for _ in range(100):
        lead.learn(-0.05)  # late: more lead
    assert lead.seconds == LEAD_MOST
    for _ in range(200):
        lead.learn(0.5)  # far too early: less lead (a request taken early holds a worker)
    assert lead.seconds == 0.0
    fixed = _Lead(0.25)
    fixed.learn(-1.0)
    assert fixed.seconds == 0.25


def test_a_claim_ends_with_its_lease(redis_url: str, namespace: str) -> None:
    async def body() -> None:
        clock = FakeClock()
        policy = HostPolicy(concurrency=8, interval=1.0)
        a, b = two_nodes(redis_url, namespace, policy, clock=clock, lease_seconds=5.0)
        try:
            await a.add([Request(f"{A}/{i}") for i in range(2)])
            assert len(await a.take(10)) == 1  # and node a dies before it starts it
            clock.advance(4.0)
            assert await b.take(10) == []  # a's request may still start
            clock.advance(1.0)
            assert len(await take(b, 10)) == 1  # the lease expired, and the claim with it
        finally:
            await a.close()
            await b.close()

    run(body)


def test_a_node_cannot_end_another_nodes_lease(redis_url: str, namespace: str) -> None:
    async def body() -> None:
        a, b = two_nodes(redis_url, namespace, ONE, clock=FakeClock())
        try:
            await a.add([Request(f"{A}/0")])
            [r] = await a.take(1)
            with pytest.raises(ValueError):
                await b.done(r)
            assert (await b.status()).in_flight == 1
            await a.done(r)
            assert (await b.status()).finished
        finally:
            await a.close()
            await b.close()

    run(body)


# -- leases ------------------------------------------------------------------------


async def take_within(frontier: RedisFrontier, seconds: float) -> list[Request]:
    """Poll ``take`` until it returns something or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if taken := await frontier.take(10):
            return taken
        await asyncio.sleep(0.05)
    return []


def test_renewed_lease_holds_and_a_crashed_nodes_lease_is_reclaimed(
    redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        a, b = two_nodes(redis_url, namespace, ONE, lease_seconds=0.5)
        try:
            await a.add([Request(f"{A}/0")])
            [r] = await a.take(1)
            assert await take_within(b, 1.5) == []  # three lease lengths: a renews
            await a.close()  # a "crashes": no done, no more renewal
            started = time.monotonic()
            [again] = await take_within(b, 5.0)
            assert again == r
            assert time.monotonic() - started < 2.0
            s = await b.status()
            assert (s.pending, s.in_flight, s.seen) == (0, 1, 1)
            await b.done(again)
            assert (await b.status()).finished
        finally:
            await a.close()
            await b.close()

    run(body)
    assert "lease expired" in caplog.text


def test_done_after_the_lease_was_reclaimed_does_nothing(
    redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        clock = FakeClock()
        a, b = two_nodes(redis_url, namespace, ONE, clock=clock, lease_seconds=10.0)
        try:
            await a.add([Request(f"{A}/0"), Request(f"{B}/0")])
            first, second = await a.take(10)
            clock.advance(10.0)  # a stalled past its leases
            again = await b.take(10)
            assert len(again) == 2
            await a.done(first)  # too late: b holds the requests now
            await a.retry(second, 0.0)  # not queued a second time
            s = await b.status()
            assert (s.pending, s.in_flight) == (0, 2)
            for r in again:
                await b.done(r)
            assert (await b.status()).finished
        finally:
            await a.close()
            await b.close()

    run(body)
    assert "another node re-queued it" in caplog.text


def test_fetched_lease_is_reclaimed_without_freeing_its_slot_twice(redis_url: str, namespace: str) -> None:
    async def body() -> None:
        clock = FakeClock()
        a, b = two_nodes(redis_url, namespace, ONE, clock=clock, lease_seconds=10.0)
        try:
            await a.add([Request(f"{A}/0"), Request(f"{A}/1")])
            [r0] = await a.take(1)
            await a.fetched(r0)
            [r1] = await a.take(1)
            clock.advance(10.0)
            # both re-queued; one slot was held (r1's), and one is free again now
            assert len(await b.take(10)) == 1
            assert await b.take(10) == []
            assert {r0.url, r1.url} == {f"{A}/0", f"{A}/1"}
        finally:
            await a.close()
            await b.close()

    run(body)


# -- namespaces --------------------------------------------------------------------


def test_namespaces_isolate_crawls(redis_url: str, namespace: str) -> None:
    other = f"{namespace}:other"

    async def body() -> None:
        clock = FakeClock()
        a = RedisFrontier(redis_url, namespace, ONE, clock=clock)
        b = RedisFrontier(redis_url, other, ONE, clock=clock)
        try:
            assert await a.add([Request(f"{A}/0")]) == 1
            assert await b.add([Request(f"{A}/0")]) == 1  # not seen in the other crawl
            assert len(await a.take(10)) == 1
            assert len(await b.take(10)) == 1  # a.example's slot is per crawl
            assert (await a.status()).in_flight == 1
        finally:
            await a.close()
            await b.close()

    try:
        run(body)
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{{{other}}}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_keys_carry_the_namespace_hash_tag(redis_url: str, namespace: str) -> None:
    async def body() -> None:
        f = RedisFrontier(redis_url, namespace, clock=FakeClock())
        try:
            await f.add([Request(f"{A}/0")])
            await f.take(1)
        finally:
            await f.close()

    run(body)
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [k.decode() for k in client.scan_iter(match=f"*{namespace}*")]
    finally:
        client.close()
    assert keys and all(k.startswith(f"{{{namespace}}}:") for k in keys)


def test_empty_namespace_is_refused() -> None:
    with pytest.raises(ValueError):
        RedisFrontier("redis://127.0.0.1:6379/0", "")


# -- connection trouble ------------------------------------------------------------


def test_unreachable_redis_raises_frontier_error(unused_port: int) -> None:
    url = f"redis://127.0.0.1:{unused_port}/0"

    async def body() -> None:
        f = RedisFrontier(url, "crawler:test")
        try:
            started = time.monotonic()
            with pytest.raises(FrontierError) as info:
                await f.add([Request(f"{A}/0")])
            assert time.monotonic() - started < 2.0  # no retries before the first contact
            assert str(info.value) == f"cannot reach Redis at {url}: Connection refused"
        finally:
            await f.close()

    run(body)


def test_password_is_not_in_error_messages(unused_port: int) -> None:
    async def body() -> None:
        f = RedisFrontier(f"redis://user:secret@127.0.0.1:{unused_port}/0", "crawler:test")
        try:
            with pytest.raises(FrontierError) as info:
                await f.status()
            assert "secret" not in str(info.value)
            assert f"user:***@127.0.0.1:{unused_port}" in str(info.value)
        finally:
            await f.close()

    run(body)


def test_bad_url_raises_frontier_error() -> None:
    with pytest.raises(FrontierError, match="bad Redis URL"):
        RedisFrontier("http://127.0.0.1:6379/0", "crawler:test")


@pytest.fixture
def own_redis(redis_url: str, unused_port: int, tmp_path: Path) -> Iterator[RedisServer]:
    yield from started_redis(unused_port, tmp_path)


def test_connection_lost_mid_crawl_is_retried_and_nothing_is_lost(own_redis: RedisServer) -> None:
    async def body() -> None:
        f = RedisFrontier(own_redis.url, "crawler:test", ONE, clock=FakeClock())
        try:
            await f.add([Request(f"{A}/0"), Request(f"{A}/1")])
            [r] = await f.take(1)
            own_redis.stop()
            loop = asyncio.get_running_loop()
            loop.call_later(1.0, own_redis.start)
            await f.done(r)  # retried until the server is back
            assert [x.url for x in await f.take(10)] == [f"{A}/1"]
            s = await f.status()
            assert (s.pending, s.in_flight, s.seen) == (0, 1, 2)
        finally:
            await f.close()

    run(body)


def test_connection_down_for_good_raises_frontier_error(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("crawler.frontier.redis.RECONNECT_DELAYS", (0.05, 0.1))

    async def body() -> None:
        f = RedisFrontier(own_redis.url, "crawler:test", clock=FakeClock())
        try:
            await f.add([Request(f"{A}/0")])
            own_redis.stop()
            with pytest.raises(
                FrontierError, match=r"lost the connection to Redis at .*: Connection refused"
            ):
                await f.take(10)
        finally:
            await f.close()

    run(body)
