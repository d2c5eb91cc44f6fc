from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from crawler._errors import FrontierError
from crawler._request import Request
from crawler.frontier.base import Frontier, HostPolicy
from crawler.frontier.sqlite import SqliteFrontier, _signed
from tests.support.frontier_contract import FakeClock, FrontierContract, FrontierFactory, status, take

A, B = "http://a.example", "http://b.example"
ROOT = Path(__file__).resolve().parents[2]


class TestSqliteFrontier(FrontierContract):
    @pytest.fixture
    def make_frontier(self, tmp_path: Path) -> FrontierFactory:
        count = 0

        def make(*, policy: HostPolicy, clock: Callable[[], float]) -> Frontier:
            nonlocal count
            count += 1
            return SqliteFrontier(tmp_path / f"frontier-{count}.db", policy, clock=clock)

        return make


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


def test_is_a_frontier(tmp_path: Path) -> None:
    assert isinstance(SqliteFrontier(tmp_path / "f.db"), Frontier)


def test_real_clock_and_async_with(tmp_path: Path) -> None:
    async def main() -> None:
        async with SqliteFrontier(tmp_path / "job" / "f.db") as f:
            await f.add([Request(f"{A}/")])
            assert len(await f.take(10)) == 1

    run(main)


@pytest.mark.parametrize(
    ("unsigned", "signed"),
    [(0, 0), (1, 1), ((1 << 63) - 1, (1 << 63) - 1), (1 << 63, -(1 << 63)), ((1 << 64) - 1, -1)],
)
def test_fingerprints_are_stored_as_signed_64_bit(unsigned: int, signed: int) -> None:
    assert _signed(unsigned) == signed


# -- durability -----------------------------------------------------------------------


def test_queue_seen_and_meta_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    batch = [Request(f"{A}/{i}") for i in range(50)] + [Request(f"{B}/{i}") for i in range(50)]
    # both halves of the unsigned range, so the signed conversion is exercised
    assert {r.fingerprint >= 1 << 63 for r in batch} == {True, False}

    async def first() -> None:
        f = SqliteFrontier(path, HostPolicy(concurrency=100))
        assert await f.open() == 0
        assert await f.add(batch) == 100
        for r in await f.take(10):
            await f.done(r)
        await f.set_meta("spider", "shop")
        await f.set_meta("spider", "catalog")
        await f.close()

    async def second() -> None:
        f = SqliteFrontier(path, HostPolicy(concurrency=100))
        assert await f.open() == 0
        assert await status(f) == (90, 0, 100)
        assert await f.add(batch) == 0  # every one was seen, done or not
        assert await f.add([Request(f"{A}/new")]) == 1
        assert await f.get_meta("spider") == "catalog"
        assert await f.get_meta("missing") is None
        taken = await f.take(1000)
        assert len(taken) == 91
        assert {r.url for r in taken} | {r.url for r in batch[:5] + batch[50:55]} == {
            r.url for r in batch
        } | {f"{A}/new"}
        await f.close()

    run(first)
    run(second)


def test_leases_come_back_after_close_without_done(tmp_path: Path) -> None:
    path = tmp_path / "f.db"

    async def first() -> None:
        f = SqliteFrontier(path, HostPolicy(concurrency=1))
        await f.add([Request(f"{A}/0"), Request(f"{A}/1"), Request(f"{B}/0")])
        assert len(await f.take(10)) == 2
        await f.close()  # the process stops with two requests in flight

    async def second() -> None:
        f = SqliteFrontier(path, HostPolicy(concurrency=1))
        assert await f.open() == 2
        assert await f.open() == 2  # idempotent
        assert await status(f) == (3, 0, 3)
        assert sorted(r.url for r in await f.take(10)) == [f"{A}/0", f"{B}/0"]  # a.example's first
        await f.close()

    run(first)
    run(second)


def test_recover_puts_this_process_leases_back(tmp_path: Path) -> None:
    async def main() -> None:
        async with SqliteFrontier(tmp_path / "f.db") as f:
            await f.add([Request(f"{A}/{i}") for i in range(3)])
            taken = await f.take(2)
            assert await f.recover() == 2
            assert await status(f) == (3, 0, 3)
            with pytest.raises(ValueError):
                await f.done(taken[0])  # its lease is gone
            assert len(await f.take(10)) == 3

    run(main)


CRASHING_CHILD = """
import asyncio, os, signal, sys
from crawler.frontier.base import HostPolicy
from crawler._request import Request
from crawler.frontier.sqlite import SqliteFrontier

async def main():
    f = SqliteFrontier(sys.argv[1], HostPolicy(concurrency=100))
    await f.add([Request(f"http://a.example/{i}") for i in range(10)])
    taken = await f.take(4)
    await f.done(taken[0])
    await f.fetched(taken[1])
    await f.retry(taken[2], 3600.0)
    await f.throttle("a.example", policy=HostPolicy(concurrency=2, interval=0.0), pause=3600.0)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_kill_9_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASHING_CHILD), str(path)],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()

    async def resume() -> None:
        f = SqliteFrontier(path, HostPolicy(concurrency=100))
        assert await f.open() == 2  # the fetched one and the untouched one
        # 9 pending: 6 never taken, 2 leases put back, the retry due at once
        assert await status(f) == (9, 0, 10)
        taken = await f.take(100)  # the throttled policy survived; the pause did not
        assert len(taken) == 2
        assert f"{A}/0" not in {r.url for r in taken}
        await f.close()

    run(resume)


def test_a_job_opens_in_one_frontier_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "f.db"

    async def main() -> None:
        first = SqliteFrontier(path)
        await first.add([Request(f"{A}/0")])
        second = SqliteFrontier(path)
        with pytest.raises(FrontierError, match="another crawl"):
            await second.open()
        with pytest.raises(FrontierError):  # it stays refused
            await second.status()
        await second.close()
        assert (await first.status()).pending == 1
        await first.close()
        with pytest.raises(FrontierError, match="closed"):
            await first.status()
        await first.close()  # idempotent

    run(main)


def test_requests_round_trip_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    original = Request(
        f"{A}/form?q=1",
        callback="parse_item",
        method="POST",
        headers={"X-Token": "abc", "Accept": "text/html"},
        body=b"\x00binary\xff",
        meta={"item": {"name": "x", "tags": ["a", "b"]}, "n": 3},
        priority=-7,
        depth=4,
        dont_filter=True,
        retries=2,
        redirects=(f"{A}/old",),
    )

    async def first() -> None:
        f = SqliteFrontier(path)
        await f.add([original])
        [taken] = await f.take(1)
        assert taken == original
        await f.retry(Request(taken.url, method="POST", body=taken.body, priority=9, retries=3), 0.0)
        await f.add([original])  # dont_filter: queued again
        await f.close()

    async def second() -> None:
        f = SqliteFrontier(path)
        first, second = await f.take(10)  # the retry has priority 9
        assert (first.priority, first.retries) == (9, 3)
        assert second == original
        assert second.fingerprint == original.fingerprint
        await f.close()

    run(first)
    run(second)


def test_retry_delay_and_pause_are_forgotten_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "f.db"

    async def first() -> None:
        clock = FakeClock()
        asyncio.get_running_loop().time = clock  # type: ignore[method-assign]  # the limiters' clock
        f = SqliteFrontier(path, HostPolicy(concurrency=1, interval=100.0), clock=clock)
        await f.add([Request(f"{A}/0"), Request(f"{A}/1"), Request(f"{B}/0")])
        taken = await take(f, 10)
        for r in taken:
            await f.retry(r, 500.0)
        await f.throttle("b.example", pause=1000.0)
        assert await f.take(10) == []
        await f.close()

    async def second() -> None:
        # a new process: its clock may read anything, even less than the old one
        f = SqliteFrontier(path, HostPolicy(concurrency=1, interval=100.0), clock=FakeClock(5.0))
        # the retries went to the back of their queues, and are due at once
        assert sorted(r.url for r in await f.take(10)) == [f"{A}/1", f"{B}/0"]
        assert (await f.status()).pending == 1
        await f.close()

    run(first)
    run(second)


# -- scale ------------------------------------------------------------------------------


def make_batch(start: int, size: int, n_hosts: int) -> list[Request]:
    return [Request(f"http://h{i % n_hosts}.example/page/{i}") for i in range(start, start + size)]


def test_memory_does_not_grow_with_the_queue_or_the_seen_set(tmp_path: Path) -> None:
    n, size, n_hosts = 100_000, 1000, 100

    async def main() -> None:
        f = SqliteFrontier(tmp_path / "f.db", HostPolicy(concurrency=1000))
        await f.open()
        tracemalloc.start()
        try:
            for start in range(0, n, size):
                assert await f.add(make_batch(start, size, n_hosts)) == size
            after_adds = tracemalloc.get_traced_memory()[0]
            drained = 0
            while batch := await f.take(size):
                await asyncio.gather(*(f.done(r) for r in batch))
                drained += len(batch)
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert drained == n
        assert await status(f) == (0, 0, n)
        assert after_adds < 2_000_000, after_adds
        assert current < 2_000_000, current
        assert peak < 20_000_000, peak
        await f.close()

    run(main)


def test_add_and_take_do_not_block_the_event_loop(tmp_path: Path) -> None:
    requests = make_batch(0, 20_000, 50)

    async def main() -> None:
        f = SqliteFrontier(tmp_path / "f.db", HostPolicy(concurrency=1000))
        await f.open()
        gaps: list[float] = []
        running = True

        async def ticker() -> None:
            last = time.perf_counter()
            while running:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        gc.disable()  # a full collection late in a long test run pauses the loop by itself
        try:
            assert await f.add(requests) == len(requests)
            assert len(await f.take(len(requests))) == len(requests)
        finally:
            gc.enable()
        elapsed = time.perf_counter() - started
        running = False
        await task
        await f.close()
        assert len(gaps) > 10
        assert max(gaps) < 0.1, (max(gaps), elapsed)

    run(main)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_constructing_opens_nothing(tmp_path: Path) -> None:
    """Nothing is opened (no file, no thread) until the first call, so a parse pool
    may still fork after the frontier is made."""
    f = SqliteFrontier(tmp_path / "f.db")
    run(f.close)
    assert not (tmp_path / "f.db").exists()


def test_a_database_from_a_newer_crawler_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version=99")

    async def main() -> None:
        f = SqliteFrontier(path)
        with pytest.raises(FrontierError, match="schema 99"):
            await f.open()
        await f.close()

    run(main)


# -- batching --------------------------------------------------------------------------


def test_a_failing_call_does_not_fail_the_calls_batched_with_it(tmp_path: Path) -> None:
    async def main() -> None:
        f = SqliteFrontier(tmp_path / "f.db")
        await f.add([Request(f"{A}/0"), Request(f"{A}/1")])
        a0, a1 = await f.take(10)
        results = await asyncio.gather(  # made together: one batch, one transaction
            f.done(a0),
            f.done(Request(f"{A}/never")),
            f.add([Request(f"{B}/0")]),
            f.add([Request(f"{B}/1", meta={"unpicklable": lambda: None})]),
            f.done(a1),
            return_exceptions=True,
        )
        assert results[0] is None
        assert isinstance(results[1], ValueError)
        assert results[2] == 1
        assert isinstance(results[3], Exception)  # nothing of it was recorded
        assert results[4] is None
        assert await status(f) == (1, 0, 3)
        assert await f.add([Request(f"{B}/1")]) == 1
        await f.close()

    run(main)


def test_a_cancelled_take_puts_its_leases_back(tmp_path: Path) -> None:
    async def main() -> None:
        f = SqliteFrontier(tmp_path / "f.db")
        await f.add([Request(f"{A}/{i}") for i in range(3)])
        task = asyncio.create_task(f.take(10))
        await asyncio.sleep(0)  # the take is on its way to the worker thread
        task.cancel()
        assert await status(f) == (3, 0, 3)
        assert len(await f.take(10)) == 3
        await f.close()

    run(main)


def test_close_waits_for_calls_already_made(tmp_path: Path) -> None:
    path = tmp_path / "f.db"

    async def first() -> None:
        f = SqliteFrontier(path)
        adding = asyncio.create_task(f.add([Request(f"{A}/{i}") for i in range(100)]))
        await asyncio.sleep(0)  # the add is queued, not yet done
        assert not adding.done()
        await f.close()
        assert adding.result() == 100

    async def second() -> None:
        async with SqliteFrontier(path) as f:
            assert await status(f) == (100, 0, 100)

    run(first)
    run(second)
