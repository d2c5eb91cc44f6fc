"""Durable crawls: ``--job DIR`` survives Ctrl-C and kill -9 with nothing lost.

Each test runs real ``crawl`` subprocesses against a real server, stops them, and
resumes them with the same command until the crawl finishes."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from crawler import Request, SqliteFrontier
from crawler.sites.server import Page

from ..support.cli import CRAWL
from ..support.jobs import JOB_PAGES, JOB_SPIDER, finish, items_of, run_until
from ..support.sites import html


@pytest.fixture
def site(serve):
    """A tree of pages, each answering after 15 ms: a crawl of a few seconds."""
    links = lambda i: [f"/{j}" for j in (2 * i + 1, 2 * i + 2) if j < JOB_PAGES]  # noqa: E731
    return serve({f"/{i}": Page(html(f"page {i}", links(i)).body, delay=0.015) for i in range(JOB_PAGES)})


@pytest.fixture
def command(tmp_path: Path, site) -> list[str]:
    spider = tmp_path / "job_spider.py"
    spider.write_text(JOB_SPIDER)
    return [
        CRAWL, str(spider), "-a", f"start={site.url}/0", "--job", str(tmp_path / "job"),
        "-o", str(tmp_path / "items.jsonl"), "--no-obey-robots", "--concurrency", "4", "--no-progress",
    ]  # fmt: skip


def test_ctrl_c_then_resume_fetches_no_page_twice_and_writes_no_item_twice(command, tmp_path, site):
    assert run_until(command, tmp_path, 30, signal.SIGINT) == 130
    stopped_at = len(items_of(tmp_path))
    assert 30 <= stopped_at < JOB_PAGES
    finish(command)
    urls = Counter(item["url"] for item in items_of(tmp_path))
    assert len(urls) == JOB_PAGES and set(urls.values()) == {1}
    fetched = Counter(hit.target for hit in site.hits)
    assert len(fetched) == JOB_PAGES and set(fetched.values()) == {1}


@pytest.mark.parametrize("kill_after", [5, 40, 90])
def test_kill_9_then_resume_loses_nothing(command, tmp_path, kill_after):
    assert run_until(command, tmp_path, kill_after, signal.SIGKILL) == -signal.SIGKILL
    stats_path = tmp_path / "stats.json"
    result = finish([*command, "--stats", str(stats_path)])
    urls = Counter(item["url"] for item in items_of(tmp_path))
    assert len(urls) == JOB_PAGES  # nothing lost
    duplicates = sum(count - 1 for count in urls.values())
    assert duplicates <= 8  # at most what was in flight: 4 fetching, 4 being parsed
    # The counts are those of the output, even for the items the kill came between.
    lines = len(items_of(tmp_path))
    assert json.loads(stats_path.read_text())["items"] == lines
    job = subprocess.run(
        [CRAWL, "job", str(tmp_path / "job"), "--json"], capture_output=True, text=True, check=False
    )
    assert json.loads(job.stdout)["items"] == lines
    # The rate is this run's pages over this run's time.
    assert re.search(r"pages +\d+ \(\d+ this run\) in [\d.]+s \([\d.]+/s\)", result.stderr), result.stderr


def test_a_partial_last_line_is_repaired_on_resume(command, tmp_path):
    assert run_until(command, tmp_path, 20, signal.SIGKILL) == -signal.SIGKILL
    with (tmp_path / "items.jsonl").open("ab") as out:
        out.write(b'{"url": "http://half-writ')  # as if the kill landed mid-line
    result = finish(command)
    assert "partial line cut" in result.stderr
    assert len({item["url"] for item in items_of(tmp_path)}) == JOB_PAGES


def test_a_finished_job_says_so_and_stats_carry_over(command, tmp_path):
    finish(command)
    stats_path = tmp_path / "stats.json"
    result = finish([*command, "--stats", str(stats_path)])
    stats = json.loads(stats_path.read_text())
    assert stats["pages"] == JOB_PAGES and stats["items"] == JOB_PAGES  # this run added none
    assert len(items_of(tmp_path)) == JOB_PAGES
    assert "resuming job" in result.stderr and "finished already" in result.stderr


def test_job_refuses_another_spider_and_overwrite(command, tmp_path):
    finish(command)
    other = tmp_path / "other_spider.py"
    other.write_text(JOB_SPIDER.replace("job-spider", "another"))
    result = subprocess.run(
        [*command[:1], str(other), *command[2:]], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2 and "belongs to spider 'job-spider'" in result.stderr
    overwrite = [arg if arg != "-o" else "-O" for arg in command]
    result = subprocess.run(overwrite, capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "use -o to append" in result.stderr
    assert len(items_of(tmp_path)) == JOB_PAGES  # -O was refused before touching the output


def test_inspect_a_job_without_running_it(command, tmp_path):
    assert run_until(command, tmp_path, 30, signal.SIGINT) == 130
    job = str(tmp_path / "job")
    result = subprocess.run([CRAWL, "job", job, "--json"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["spider"] == "job-spider" and info["runs"] == 1
    assert info["pending"] > 0 and info["done"] >= 30 and info["items"] >= 30
    assert sum(info["hosts"].values()) == info["pending"]
    text = subprocess.run([CRAWL, "job", job], capture_output=True, text=True, check=False).stdout
    assert "pending" in text and "job-spider" in text
    missing = subprocess.run(
        [CRAWL, "job", str(tmp_path / "nope")], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 1 and "no job in" in missing.stderr


SAVED_JOB = Path(__file__).parents[1] / "data" / "job-before-layout" / "frontier.sqlite"


def test_a_job_saved_before_the_modules_moved_still_resumes(tmp_path: Path) -> None:
    """``tests/data/job-before-layout`` was written by the crawler as it stood just
    before its modules moved into stage folders (the parent of the commit that moved
    them): a spider ``saved`` stopped by ``max_pages=4`` with three requests left.
    Its pickled requests and its bookkeeping must load in this version."""
    database = tmp_path / "frontier.sqlite"
    shutil.copy(SAVED_JOB, database)

    async def reopen() -> tuple[list[Request], dict[str, str | None]]:
        frontier = SqliteFrontier(str(database))
        await frontier.open()
        meta = {key: await frontier.get_meta(key) for key in ("spider", "runs", "stats")}
        taken = await frontier.take(10)
        await frontier.close()
        return taken, meta

    taken, meta = asyncio.run(reopen())
    assert (meta["spider"], meta["runs"]) == ("saved", "1")
    assert json.loads(meta["stats"] or "{}")["counts"]["pages"] == 4
    left = sorted((re.sub(r"^http://127\.0\.0\.1:\d+", "", r.url), r.callback, r.depth) for r in taken)
    assert left == [("/p/3", "parse_page", 2), ("/p/4", "parse_page", 2), ("/p/5", "parse_page", 3)]
