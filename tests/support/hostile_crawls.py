"""How the hostile-web tests crawl: settings that give up fast, and a crawl in a
subprocess under a deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .items import read_jsonl

MiB = 1024 * 1024
TIMEOUT = 1.5
FAST: dict[str, Any] = {"obey_robots": False, "timeout": TIMEOUT, "retries": 1}


# The crawl of a hostile page in a fresh interpreter: a bomb cannot bloat the test
# process, a parser stuck for a minute is killed at the deadline, and a crash is
# an exit code. It reports its peak RSS before and after the crawl.
SUBPROCESS_CRAWL = """
import json, resource, sys
import crawler
import crawler.fetch.client  # the network stack loads before the baseline is taken
from crawler import Spider

class TitleSpider(Spider):
    def parse(self, response):
        title = response.css_first("title")
        yield {"url": response.url, "title": title.text() if title else None}
        yield from response.follow_all("a")

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

if __name__ == "__main__":
    config = json.loads(sys.argv[1])
    before = peak_kib()
    stats = crawler.run(TitleSpider, output=config["output"], overwrite=True,
                        spider_args={"start_urls": config["start_urls"]}, **config["settings"])
    print(json.dumps({"before_kib": before, "after_kib": peak_kib(), "counts": dict(stats.counts),
                      "finish_reason": stats.finish_reason}))
"""


@dataclass
class SubprocessCrawl:
    finished: bool  # False: killed at the deadline
    returncode: int | None
    elapsed: float
    items: list[dict[str, Any]]
    report: dict[str, Any]
    stderr: str


def crawl_in_subprocess(
    start_urls: list[str], output: Path, deadline: float, **settings: Any
) -> SubprocessCrawl:
    config = json.dumps({"start_urls": start_urls, "output": str(output), "settings": settings})
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", SUBPROCESS_CRAWL, config],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its parse workers too are killed at the deadline
    )
    try:
        stdout, stderr = process.communicate(timeout=deadline)
        finished = True
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        finished = False
    elapsed = time.monotonic() - started
    report = json.loads(stdout) if finished and process.returncode == 0 else {}
    return SubprocessCrawl(finished, process.returncode, elapsed, read_jsonl(output), report, stderr)
