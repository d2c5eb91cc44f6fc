"""The body budget: memory stays bounded when pages are large and many."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from crawler._errors import UsageError
from crawler._settings import Settings
from crawler.fetch.budget import BodyBudget

from ..support.cli import CRAWL
from ..support.hostile_servers import OK_HTML, Behaviour, Connection, HostileServer

MIB = 1 << 20
CHUNK = 256 * 1024

SPIDER = """
from crawler import Request, Spider

class BigSpider(Spider):
    name = "big"
    start = ""

    def start_requests(self):
        yield Request(self.start)

    def parse(self, response):
        yield {"url": response.url, "size": len(response.body)}
        yield from response.follow_all("a")
"""

# Runs a command and prints its exit code and the peak RSS of the largest process
# in its tree (the crawl, or a parse worker), in KiB.
PEAK_RSS = (
    "import resource, subprocess, sys;"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode;"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def big_pages(count: int, size: int) -> Behaviour:
    """``/`` links to ``count`` pages of ``size`` bytes, sent as fast as the client reads."""
    index = b"<title>index</title>" + b"".join(b'<a href="/%d">%d</a>' % (i, i) for i in range(count))
    page = b"<title>big</title><pre>" + b"x" * size + b"</pre>"

    async def behave(conn: Connection) -> None:
        target = await conn.read_request()
        if target is None:
            return
        body = memoryview(index if target == "/" else page)
        if await conn.send(OK_HTML + b"Content-Length: %d\r\n\r\n" % len(body)):
            for start in range(0, len(body), CHUNK):
                if not await conn.send(body[start : start + CHUNK]):
                    return
        conn.close()

    return behave


def crawl_peak_rss(tmp_path: Path, url: str, *args: str) -> tuple[int, float, list[str]]:
    spider = tmp_path / "big.py"
    spider.write_text(SPIDER)
    output = tmp_path / "items.jsonl"
    command = [CRAWL, str(spider), "-a", f"start={url}/", "-O", str(output), "--no-obey-robots"]
    command += ["--no-progress", "--parse-workers", "1", *args]
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command], capture_output=True, text=True, timeout=300, check=True
    )
    code, peak_kib = result.stdout.split()
    return int(code), int(peak_kib) / 1024, output.read_text().splitlines()


def test_sixty_pages_of_8_mb_stay_within_the_body_budget(tmp_path):
    """480 MB of pages, 64 requests at a time: before the budget, the main process
    held every page at once (1.1 GB). Now no process of the crawl grows past the
    budget plus a fixed allowance for the interpreter, one page being joined and
    decoded, and the parse worker's batch."""
    budget = 64 * MIB
    with HostileServer(big_pages(60, 8 * MIB)) as server:
        code, peak_mib, items = crawl_peak_rss(tmp_path, server.url, "--max-body-memory", str(budget))
    assert code == 0 and len(items) == 61
    assert peak_mib < budget / MIB + 192


def test_a_download_waits_while_the_budget_is_spent_except_the_oldest():
    async def main() -> list[str]:
        events: list[str] = []
        budget = BodyBudget(10)
        first, second = budget.claim(), budget.claim()
        await first.grow(8)
        waiting = asyncio.ensure_future(second.grow(8))
        await asyncio.sleep(0.01)
        events.append(f"second waits: {not waiting.done()}")
        await first.grow(8)  # the oldest download always goes on
        events.append(f"spent: {budget.spent}")
        first.release()
        await asyncio.wait_for(waiting, 1)
        events.append(f"used after release: {budget.used}")
        return events

    assert asyncio.run(main()) == ["second waits: True", "spent: True", "used after release: 8"]


def test_the_budget_is_a_setting_checked_like_the_others():
    with pytest.raises(UsageError, match="max_body_memory"):
        Settings(max_body_memory=0)
