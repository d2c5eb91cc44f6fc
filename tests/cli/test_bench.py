"""``crawl bench``, run as a user runs it: a subprocess of the installed script."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import psutil
import pytest

from crawler._errors import CrawlerError
from crawler.cli import bench as _benchcmd
from crawler.sites.bench import build_site

from ..support.cli import crawl

PAGES = 200
REPORT = re.compile(
    r"crawl bench: (?P<pages>[\d,]+) pages in [\d.]+ s\n"
    r"  [\d,]+ pages/s\n"
    r"  (?P<cpu>[\d.]+) ms CPU per page \(crawler and its \d+ parse workers?\)\n"
    r"  peak RSS \d+ MB, \d+ MB in the largest parse worker\n"
    r"  concurrency 64, per host 8, autothrottle on\n"
)


@pytest.fixture(scope="module")
def expected_pages() -> int:
    """The site's pages but the ones robots.txt disallows (/private/ is not counted)."""
    return build_site(PAGES, "http://127.0.0.1:8000").reachable()


def test_report_for_people(expected_pages):
    result = crawl("bench", "--pages", str(PAGES), "--parse-workers", "1")
    assert result.returncode == 0, result.stderr
    report = REPORT.fullmatch(result.stdout)
    assert report is not None, result.stdout
    assert int(report["pages"].replace(",", "")) == expected_pages == PAGES
    assert float(report["cpu"]) > 0
    assert result.stderr == ""


def test_json_result(expected_pages):
    result = crawl("bench", "--pages", str(PAGES), "--parse-workers", "1", "--json")
    assert result.returncode == 0, result.stderr
    bench = json.loads(result.stdout)
    assert bench["pages"] == bench["expected_pages"] == expected_pages
    for name in ("seconds", "pages_per_second", "cpu_seconds", "cpu_ms_per_page", "peak_rss_mb"):
        assert bench[name] > 0, name
    assert bench["parse_worker_peak_rss_mb"] > 0
    assert bench["pages_per_second"] == pytest.approx(bench["pages"] / bench["seconds"], rel=0.01)
    assert bench["cpu_ms_per_page"] == pytest.approx(1000 * bench["cpu_seconds"] / bench["pages"], rel=0.01)
    assert (bench["concurrency"], bench["per_host"], bench["autothrottle"]) == (64, 8, True)


def test_options_reach_the_crawl():
    args = ["--pages", "50", "--concurrency", "4", "--per-host", "2", "--parse-workers", "0"]
    result = crawl("bench", *args, "--no-autothrottle", "--json")
    assert result.returncode == 0, result.stderr
    bench = json.loads(result.stdout)
    assert bench["pages"] == 50
    assert (bench["concurrency"], bench["per_host"], bench["parse_workers"]) == (4, 2, 0)
    assert bench["autothrottle"] is False
    assert bench["parse_worker_peak_rss_mb"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pages", "0"], "bench: error: Invalid value for '--pages': must be a whole number of at least 1"),
        (["--pages", "10", "--concurrency", "0"], "crawl bench: error: concurrency must be a whole number"),
    ],
)
def test_bad_options_exit_2(args, message):
    result = crawl("bench", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_incomplete_crawl_fails(capsys):
    with pytest.raises(CrawlerError, match=r"^the crawl fetched \d+ pages, not the site.s 100 "):
        _benchcmd.bench(100, {"max_pages": 20, "parse_workers": 0}, as_json=False)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("line", ["", "Traceback (most recent call last):\n", '{"pages": 3}\n'])
def test_a_site_that_did_not_start_is_an_error(line):
    with pytest.raises(CrawlerError, match="the benchmark site did not start"):
        _benchcmd._announced_site(line)


PARENT = """
import subprocess, sys
command = [sys.executable, "-m", "crawler.sites.bench", "--port", "0", "--pages", "3", "--stop-with-parent"]
site = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
site.stdout.readline()
print(site.pid)
"""


def test_the_site_stops_when_its_parent_dies():
    parent = subprocess.run(
        [sys.executable, "-c", PARENT], capture_output=True, text=True, timeout=30, check=True
    )
    site = int(parent.stdout)
    deadline = time.monotonic() + 10
    while _running(site) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(site)


def _running(pid: int) -> bool:
    """Alive, and not a zombie waiting for a parent that may never reap it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
