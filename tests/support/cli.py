"""Running the ``crawl`` command as a user runs it: a subprocess of the installed script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# The console script of this environment, as a user runs it.
CRAWL = str(Path(sys.executable).parent / "crawl")

# A spider file for the command: ``-a start=URL`` and it follows every link.
SPIDER = """
from crawler import Request, Spider

class CliSpider(Spider):
    name = "cli"
    start = "http://127.0.0.1:9/"

    def start_requests(self):
        yield Request(self.start)

    def parse(self, response):
        yield {"url": response.url, "title": response.css_first("title").text(), "note": "café"}
        yield from response.follow_all("a")
"""


def crawl(
    *args: str, cwd: Path | None = None, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CRAWL, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False, input=input
    )
