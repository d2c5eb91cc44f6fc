"""A ``--job`` directory on a full disk: one clear line naming the cause, exit 1,
no traceback.

The job lives on a real 2 MiB tmpfs when this test may mount one (root, and a
kernel that allows it); elsewhere a file-size limit (``RLIMIT_FSIZE``) makes every
write past 2 MiB fail with ``EFBIG``, as a full disk fails with ``ENOSPC``.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crawler.sites.server import Hit, Page

from ..support.cli import CRAWL
from ..support.items import read_jsonl

pytestmark = pytest.mark.timeout(120)

LIMIT = 2 * 1024 * 1024
SPIDER = """
from crawler import Spider

class Growing(Spider):
    name = "growing"

    def parse(self, response):
        yield {"url": response.url}
        yield from response.follow_all("a")
"""


@dataclass
class SmallDisk:
    """Where the job goes, and how to start the crawl so that it fills up."""

    directory: Path
    preexec: Callable[[], None] | None  # None: a real tmpfs
    kind: str


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={LIMIT}", "tmpfs", str(mount_point)]
    can_mount = os.geteuid() == 0 and shutil.which("mount") is not None
    mounted = can_mount and subprocess.run(command, capture_output=True, check=False).returncode == 0
    if mounted:
        yield SmallDisk(mount_point, None, "tmpfs")
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)
    else:
        yield SmallDisk(mount_point, _limit_file_size, "RLIMIT_FSIZE")


def endless_site(hit: Hit) -> Page:
    """Every page links to 40 new ones with long URLs: the job's queue grows fast."""
    number = int(hit.target.split("/")[2].split("?")[0])
    padding = "x" * 200
    links = "".join(f'<a href="/p/{number * 40 + k}?{padding}">{k}</a>' for k in range(1, 41))
    return Page(f"<html><title>{number}</title>{links}</html>".encode())


def test_a_job_on_a_full_disk_is_one_clear_error(small_disk: SmallDisk, serve, tmp_path: Path) -> None:
    server = serve(handler=endless_site)
    spider = tmp_path / "spider.py"
    spider.write_text(SPIDER)
    output = tmp_path / "items.jsonl"
    command = [CRAWL, str(spider), "--job", str(small_disk.directory / "job"), "-o", str(output),
               "-a", f"start_urls={server.url}/p/0", "--no-progress", "--no-obey-robots"]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=90, check=False, preexec_fn=small_disk.preexec
    )
    stderr = result.stderr
    assert result.returncode == 1, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("crawl: error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert "job database" in errors[0] and ("full" in errors[0] or "too large" in errors[0]), errors[0]
    assert "Traceback" not in stderr and "ExceptionGroup" not in stderr, stderr[-3000:]
    assert "Unclosed" not in stderr, stderr[-3000:]
    assert len(stderr.splitlines()) < 20, stderr[-3000:]  # the summary, the error: no flood
    assert read_jsonl(output)  # what was written stays whole JSON lines
