"""A failed output write loses no item and acknowledges nothing (issue 18, item 1).

On a real full file system (a 2 MiB tmpfs, mounted when the tests run as root), a
``--job`` crawl runs out of space, exits 1 with one line, and leaves whole lines in
its output; after space is freed, the same command resumes and the output then
holds an item for every page of the site."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..support.cli import CRAWL
from ..support.sites import html

PAGES = 400
FREE_BYTES = 150_000  # room left for the output: a few hundred of the ~1.2 KB items

SPIDER = """
from crawler import Request, Spider

class BlobSpider(Spider):
    name = "blob"

    def start_requests(self):
        yield Request(self.start)

    def parse(self, response):
        yield {"url": response.url, "blob": response.css_first("p").text()}
        yield from response.follow_all("a")
"""


@pytest.fixture(scope="module")
def small_disk() -> Iterator[Path]:
    """A 2 MiB tmpfs of our own (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = Path(tempfile.mkdtemp(prefix="crawler-full-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)
        mount_point.rmdir()


@pytest.fixture
def site(serve):
    """A tree of pages, each with 1 KB of incompressible text (gzip cannot hide it)."""
    links = lambda i: [f"/{j}" for j in (2 * i + 1, 2 * i + 2) if j < PAGES]  # noqa: E731
    return serve({
        f"/{i}": html(f"page {i}", links(i), f"<p>{secrets.token_hex(500)}</p>") for i in range(PAGES)
    })  # fmt: skip


def fill(disk: Path) -> Path:
    """Take all but ``FREE_BYTES`` of the disk's space; the file to delete to free it."""
    for old in disk.iterdir():
        old.unlink()
    ballast = disk / "ballast"
    stats = os.statvfs(disk)
    ballast.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - FREE_BYTES))
    return ballast


def read_items(path: Path) -> list[dict[str, str]]:
    """Every item in the output; fails on a partial line, row or gzip member."""
    if path.name.endswith(".csv"):
        with path.open(encoding="utf-8", newline="") as file:
            return list(csv.DictReader(file))
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return [json.loads(line) for line in io.StringIO(data.decode("utf-8"))]


@pytest.mark.parametrize("name", ["items.jsonl", "items.jsonl.gz", "items.csv"])
def test_a_full_disk_loses_no_item_and_resume_fetches_the_rest(small_disk, site, tmp_path, name):
    ballast = fill(small_disk)
    spider = tmp_path / "blob_spider.py"
    spider.write_text(SPIDER)
    output = small_disk / name
    command = [
        CRAWL, str(spider), "-a", f"start={site.url}/0", "--job", str(tmp_path / "job"), "-o", str(output),
        "--no-obey-robots", "--concurrency", "8", "--no-progress", "--stats", str(tmp_path / "stats.json"),
    ]  # fmt: skip

    failed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert failed.returncode == 1, failed.stderr
    assert "No space left on device" in failed.stderr
    assert "Traceback" not in failed.stderr
    written = read_items(output)  # whole lines, rows and members only
    assert 0 < len(written) < PAGES

    ballast.unlink()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    items = read_items(output)
    assert {item["url"] for item in items} == {f"{site.url}/{i}" for i in range(PAGES)}
    assert all(len(item["blob"]) == 1000 for item in items)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["items"] == len(items)
