"""Durable crawls (``--job DIR``, a caller's `SqliteFrontier`, a shared Redis frontier):
a spider file to run as a job, ways to stop it part-way and finish it, and a spider
that watches each page being written and acknowledged."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar

import crawler
from crawler import Request, Response, Spider

# The job crawls: a tree of this many pages, crawled by the spider file below.
JOB_PAGES = 120

JOB_SPIDER = """
from crawler import Request, Spider

class JobSpider(Spider):
    name = "job-spider"

    def start_requests(self):
        yield Request(self.start)

    def parse(self, response):
        yield {"url": response.url, "title": response.css_first("title").text()}
        yield from response.follow_all("a")
"""


def items_of(tmp_path: Path) -> list[dict[str, str]]:
    lines = (tmp_path / "items.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]  # every line must be whole JSON


def run_until(command: list[str], tmp_path: Path, items: int, stop: signal.Signals) -> int:
    """Start the crawl, let it write ``items`` items, send ``stop``; the exit code."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    out = tmp_path / "items.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= items:
            break
        time.sleep(0.01)
    process.send_signal(stop)
    process.communicate(timeout=30)
    return process.returncode


def finish(command: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result


# The chain crawls: a chain of this many pages, one request at a time.
CHAIN_PAGES = 12

CHAIN_SETTINGS: dict[str, Any] = {"obey_robots": False, "parse_workers": 0, "concurrency": 1}


class ChainSpider(Spider):
    """Follows a chain of pages; before each page's item, notes how many items the
    output holds and how many requests the frontier (when the test holds it) has in
    flight."""

    name = "chain"
    start = ""
    out = ""
    frontier: ClassVar[crawler.Frontier | None] = None
    seen: ClassVar[list[tuple[int, int | None]]] = []

    def start_requests(self) -> Any:
        yield Request(self.start)

    async def parse(self, response: Response) -> Any:
        lines = Path(self.out).read_bytes().count(b"\n")
        frontier = type(self).frontier
        in_flight = None if frontier is None else (await frontier.status()).in_flight
        type(self).seen.append((lines, in_flight))
        yield {"url": response.url}
        for request in response.follow_all("a"):
            yield request
