"""Distributed crawls: several ``crawl`` processes share one crawl through Redis.

Runs against the Redis at $REDIS_URL (default 127.0.0.1:6379, database 0). Without
one the tests are skipped, except under CI, where they fail."""

from __future__ import annotations

import bisect
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crawler.sites.server import Page

from .support.cli import CRAWL
from .support.sites import html

REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
PAGES = 60

SPIDER = """
from crawler import Request, Spider

class SharedSpider(Spider):
    name = "shared"

    def start_requests(self):
        for url in self.start.split(","):
            yield Request(url)

    def parse(self, response):
        yield {"url": response.url}
        yield from response.follow_all("a")
"""


def redis_reachable() -> bool:
    parts = urlsplit(REDIS)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def frontier() -> Iterator[str]:
    """A fresh crawl id on the Redis server; its keys are deleted afterwards."""
    if not redis_reachable():
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS}, and CI is set")
        pytest.skip(f"no Redis reachable at {REDIS}")
    crawl_id = uuid.uuid4().hex
    yield f"{REDIS}?crawl={crawl_id}&lease=2"
    import redis

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(match=f"*{crawl_id}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def sites(serve):
    """Three hosts of PAGES pages each, every answer 20 ms late."""
    tree = lambda i: [f"/{j}" for j in (2 * i + 1, 2 * i + 2) if j < PAGES]  # noqa: E731
    return [
        serve({f"/{i}": Page(html(f"page {i}", tree(i)).body, delay=0.02) for i in range(PAGES)})
        for _ in range(3)
    ]


@pytest.fixture
def node(tmp_path: Path, frontier: str, sites) -> Iterator[object]:
    spider = tmp_path / "shared_spider.py"
    spider.write_text(SPIDER)
    starts = ",".join(site.url + "/0" for site in sites)
    processes: list[subprocess.Popen[str]] = []

    def start(n: int, *extra: str) -> subprocess.Popen[str]:
        output = str(tmp_path / f"part-{n}.jsonl")
        command = [
            CRAWL, str(spider), "-a", f"start={starts}", "--frontier", frontier, "-o", output,
            "--no-obey-robots", "--concurrency", "4", "--no-progress", "--parse-workers", "0", *extra,
        ]  # fmt: skip
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def parts(tmp_path: Path) -> Counter[str]:
    urls: Counter[str] = Counter()
    for part in tmp_path.glob("part-*.jsonl"):
        urls.update(json.loads(line)["url"] for line in part.read_text().splitlines())
    return urls


def test_three_nodes_share_one_crawl(node, tmp_path, sites):
    nodes = [node(n) for n in range(3)]
    assert [process.wait(timeout=60) for process in nodes] == [0, 0, 0]
    urls = parts(tmp_path)
    assert len(urls) == 3 * PAGES and set(urls.values()) == {1}
    assert sum(1 for part in tmp_path.glob("part-*.jsonl") if part.read_text()) >= 2  # the work was shared
    fetched = Counter(hit.target for site in sites for hit in site.hits)
    assert sum(fetched.values()) == 3 * PAGES  # no page fetched twice


def test_a_node_killed_with_sigkill_is_finished_by_the_others(node, tmp_path):
    victim, *others = [node(n) for n in range(3)]
    deadline = time.monotonic() + 30
    part = tmp_path / "part-0.jsonl"
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 200):
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert [process.wait(timeout=60) for process in others] == [0, 0]
    urls = parts(tmp_path)
    assert len(urls) == 3 * PAGES  # the dead node's leased requests were crawled by the others
    assert sum(count - 1 for count in urls.values()) <= 8  # only what the victim had in flight


def test_per_host_rate_holds_across_nodes(node, tmp_path, sites):
    """The promise as a site sees it: no second holds more than ``rate`` requests. The
    nodes send each request at the start reserved for it in Redis (telling Redis when
    one went out late), and space starts 5% wider than the rate: 50 ms a second,
    which absorbs the delay between a start and its arrival. (A smallest-gap check
    would measure that delay, the machine's scheduling, instead; cross-node spacing
    is checked exactly, on a fake clock, in test_redis_frontier.py.)"""
    nodes = [node(n, "--rate", "8") for n in range(3)]
    assert [process.wait(timeout=90) for process in nodes] == [0, 0, 0]
    for site in sites:
        times = sorted(hit.time for hit in site.hits)
        worst = max(bisect.bisect_left(times, start + 1.0) - i for i, start in enumerate(times))
        assert worst <= 8, f"{worst} requests within one second at one host"


def test_a_node_started_after_the_end_says_so(node, tmp_path):
    assert node(0).wait(timeout=60) == 0
    late = node(1)
    _, stderr = late.communicate(timeout=60)
    assert late.returncode == 0 and "finished already" in stderr
    assert not (tmp_path / "part-1.jsonl").read_text()


def test_unreachable_redis_is_one_clear_error(tmp_path, unused_port):
    spider = tmp_path / "s.py"
    spider.write_text(SPIDER)
    command = [
        CRAWL,
        str(spider),
        "-a",
        "start=http://127.0.0.1:9/",
        "--frontier",
        f"redis://127.0.0.1:{unused_port}/0",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "cannot reach Redis" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
