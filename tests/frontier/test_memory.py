from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from crawler._request import Request
from crawler.frontier import memory as _memory_frontier
from crawler.frontier.base import Frontier, HostPolicy
from crawler.frontier.memory import MemoryFrontier
from tests.support.frontier_contract import FakeClock, FrontierContract, FrontierFactory, take


class TestMemoryFrontier(FrontierContract):
    @pytest.fixture
    def make_frontier(self) -> FrontierFactory:
        def make(*, policy: HostPolicy, clock: Callable[[], float]) -> Frontier:
            return MemoryFrontier(policy, clock=clock)

        return make


def test_is_a_frontier() -> None:
    assert isinstance(MemoryFrontier(), Frontier)


def test_real_clock_by_default() -> None:
    async def main() -> None:
        f = MemoryFrontier()
        await f.add([Request("http://a.example/")])
        assert len(await f.take(10)) == 1

    asyncio.run(main())


class CountingVisits:
    """Counts how many times the frontier looks at a host's readiness."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, frontier: MemoryFrontier) -> None:
        self.count = 0
        ready = frontier._ready
        original = ready._ready_at

        def ready_at(host: _memory_frontier._Host) -> float | None:
            self.count += 1
            return original(host)

        monkeypatch.setattr(ready, "_ready_at", ready_at)


@pytest.mark.parametrize(
    "policy",
    [HostPolicy(concurrency=1), HostPolicy(concurrency=8, interval=60.0)],
    ids=["concurrency-busy", "interval-busy"],
)
def test_take_does_not_visit_busy_hosts(monkeypatch: pytest.MonkeyPatch, policy: HostPolicy) -> None:
    n_hosts = 5000

    async def main() -> None:
        clock = FakeClock()
        asyncio.get_running_loop().time = clock  # type: ignore[method-assign]
        f = MemoryFrontier(policy, clock=clock)
        for i in range(n_hosts):
            await f.add([Request(f"http://h{i}.example/{j}") for j in range(3)])
        assert len(await take(f, 100_000)) == n_hosts  # now every host is busy
        visits = CountingVisits(monkeypatch, f)
        for _ in range(100):
            assert await f.take(100) == []
            assert (await f.status()).pending == 2 * n_hosts
        await f.add([Request("http://free.example/")])
        assert [r.url for r in await f.take(100)] == ["http://free.example/"]
        assert visits.count < 50

    asyncio.run(main())


def test_throttle_of_waiting_host_to_shorter_interval_wakes_it_earlier() -> None:
    async def main() -> None:
        clock = FakeClock()
        asyncio.get_running_loop().time = clock  # type: ignore[method-assign]
        f = MemoryFrontier(HostPolicy(interval=100.0), clock=clock)
        await f.add([Request(f"http://a.example/{i}") for i in range(2)])
        assert len(await take(f, 10)) == 1
        await f.throttle("a.example", policy=HostPolicy(interval=1.0))
        assert (await f.status()).wait == 1.0
        clock.advance(1.0)
        assert len(await f.take(10)) == 1

    asyncio.run(main())
