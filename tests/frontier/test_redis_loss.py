"""A shared crawl whose Redis loses its data, or goes away, stops every node with
one clear error (exit 1), never "crawl finished" with pages missing.

Every test here starts its own ``redis-server`` on a free port (``RedisServer``),
since it flushes or stops it; the shared Redis at ``REDIS_URL`` is never touched.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from crawler._errors import FrontierError
from crawler._request import Request
from crawler.frontier.redis import RedisFrontier
from crawler.sites.server import Page

from ..support.cli import CRAWL
from ..support.redis_server import RedisServer, started_redis
from ..support.sites import html

pytestmark = pytest.mark.timeout(90)

NAMESPACE = "crawler:loss"
GONE = "is gone (FLUSHALL, or a restart without persistence)"


@pytest.fixture
def ephemeral_redis(unused_port: int, tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of our own that keeps nothing across a restart."""
    yield from started_redis(unused_port, tmp_path, persist=False)


def run(coro: Callable[[], object]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def test_flushall_stops_every_node_and_for_good(ephemeral_redis: RedisServer) -> None:
    async def body() -> None:
        first = RedisFrontier(ephemeral_redis.url, NAMESPACE)
        second = RedisFrontier(ephemeral_redis.url, NAMESPACE)
        try:
            await first.add([Request("http://a.test/1"), Request("http://a.test/2")])
            [taken] = await first.take(1)
            assert (await second.status()).pending == 1  # both joined the same crawl
            redis.Redis(port=ephemeral_redis.port).flushall()
            with pytest.raises(FrontierError, match=re.escape(GONE)):
                await first.done(taken)
            with pytest.raises(FrontierError, match=re.escape(GONE)):
                await second.take(5)
            with pytest.raises(FrontierError, match=re.escape(GONE)):  # final: no call goes on
                await second.add([Request("http://a.test/3")])
        finally:
            await first.close()
            await second.close()
        client = redis.Redis(port=ephemeral_redis.port)
        assert client.dbsize() == 0  # the refused calls wrote nothing
        client.close()

    run(body)


def test_a_restart_without_persistence_stops_the_node(ephemeral_redis: RedisServer) -> None:
    async def body() -> None:
        node = RedisFrontier(ephemeral_redis.url, NAMESPACE)
        try:
            await node.add([Request("http://a.test/1")])
            ephemeral_redis.stop()
            ephemeral_redis.start()
            with pytest.raises(FrontierError, match=re.escape(GONE)):
                await node.status()
        finally:
            await node.close()

    run(body)


def test_a_node_started_after_the_loss_starts_the_crawl_anew(ephemeral_redis: RedisServer) -> None:
    async def body() -> None:
        old = RedisFrontier(ephemeral_redis.url, NAMESPACE)
        await old.add([Request("http://a.test/1")])
        await old.close()
        redis.Redis(port=ephemeral_redis.port).flushall()
        new = RedisFrontier(ephemeral_redis.url, NAMESPACE)
        try:
            assert await new.add([Request("http://a.test/1")]) == 1
            assert (await new.status()).pending == 1
        finally:
            await new.close()

    run(body)


# -- real nodes: `crawl` processes -------------------------------------------------------

SPIDER = """
from crawler import Request, Spider

class SharedSpider(Spider):
    name = "shared"

    def start_requests(self):
        yield Request(self.start)

    def parse(self, response):
        yield {"url": response.url}
        yield from response.follow_all("a")
"""
PAGES = 3000  # a crawl of minutes: a node that starts late still finds work


@pytest.fixture
def slow_site(serve):
    """A binary tree of PAGES pages, every answer 100 ms late, four at a time (two
    per node): far longer a crawl than the test, which breaks Redis in the middle of it."""
    tree = lambda i: [f"/{j}" for j in (2 * i + 1, 2 * i + 2) if j < PAGES]  # noqa: E731
    return serve({f"/{i}": Page(html(f"page {i}", tree(i)).body, delay=0.1) for i in range(PAGES)})


def start_nodes(redis_url: str, start: str, tmp_path: Path, count: int = 2) -> list[subprocess.Popen[str]]:
    spider = tmp_path / "spider.py"
    spider.write_text(SPIDER)
    return [
        subprocess.Popen(
            [
                CRAWL,
                str(spider),
                "--frontier",
                redis_url + "?lease=3",
                "-a",
                f"start={start}",
                "-O",
                str(tmp_path / f"node{i}.jsonl"),
                "--per-host",  # room for both nodes on the one host, whichever asks first:
                "8",
                "--concurrency",  # each holds at most two of its places
                "2",
                "--no-progress",
                "--no-obey-robots",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]


def wait_until_crawling(tmp_path: Path, count: int = 2) -> None:
    """Until every node has written an item (at most 60 s: a loaded machine)."""
    outputs = [tmp_path / f"node{i}.jsonl" for i in range(count)]
    deadline = time.monotonic() + 60
    while not all(path.exists() and path.stat().st_size for path in outputs):
        assert time.monotonic() < deadline, "the nodes did not start crawling"
        time.sleep(0.05)


def finish(nodes: list[subprocess.Popen[str]], deadline: float) -> list[tuple[int, str, float]]:
    """Each node's exit code, stderr and seconds until it exited (killed at ``deadline``)."""
    started, results = time.monotonic(), []
    for node in nodes:
        try:
            _, stderr = node.communicate(timeout=max(deadline - (time.monotonic() - started), 0.1))
        except subprocess.TimeoutExpired:
            node.kill()
            _, stderr = node.communicate()
        results.append((node.returncode, stderr, time.monotonic() - started))
    return results


def assert_one_clear_error(stderr: str, words: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("crawl: error:")]
    assert len(errors) == 1 and words in errors[0], stderr[-3000:]
    assert "Traceback" not in stderr and "ExceptionGroup" not in stderr, stderr[-3000:]


def test_flushall_mid_crawl_stops_every_node_with_one_error(ephemeral_redis, slow_site, tmp_path):
    nodes = start_nodes(ephemeral_redis.url, slow_site.url + "/0", tmp_path)
    wait_until_crawling(tmp_path)
    redis.Redis(port=ephemeral_redis.port).flushall()
    for returncode, stderr, _ in finish(nodes, deadline=60):
        assert returncode == 1, stderr[-3000:]
        assert_one_clear_error(stderr, GONE)
        assert "crawl finished" not in stderr


def test_redis_down_stops_every_node_in_about_ten_seconds(ephemeral_redis, slow_site, tmp_path):
    """Redis stays down for 30 s: each node retries for about 10 s (one warning),
    then stops with one error, well before Redis would be back."""
    nodes = start_nodes(ephemeral_redis.url, slow_site.url + "/0", tmp_path)
    wait_until_crawling(tmp_path)
    ephemeral_redis.stop()
    for returncode, stderr, elapsed in finish(nodes, deadline=30):
        assert returncode == 1, stderr[-3000:]
        assert_one_clear_error(stderr, "lost the connection to Redis")
        assert stderr.count("retrying for") == 1
        print(f"node stopped {elapsed:.1f}s after Redis went down")
        assert elapsed < 30  # the documented ~10 s, with room for a loaded machine
