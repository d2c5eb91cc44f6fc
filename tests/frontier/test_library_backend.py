"""A backend the caller built (``crawler.run(..., backend=SqliteFrontier(path))``) is
treated as what it is, not as what the settings chose: a durable frontier gets the
job's bookkeeping and acknowledgements whoever built it.

Each test runs the same crawl twice over: once with the ``job`` setting (what
``--job DIR`` does) and once with a `SqliteFrontier` built by the caller, and
checks both behave the same, on a real server."""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import crawler
from crawler import SqliteFrontier, UsageError
from crawler.sites.server import Page

from ..support.items import read_jsonl
from ..support.jobs import (
    CHAIN_PAGES,
    CHAIN_SETTINGS,
    JOB_PAGES,
    JOB_SPIDER,
    ChainSpider,
    finish,
    items_of,
    run_until,
)
from ..support.sites import chain_site, html


class OtherSpider(ChainSpider):
    name = "other"


@pytest.fixture
def site(serve: Any) -> str:
    return str(serve(chain_site(CHAIN_PAGES)).url)


@pytest.fixture(params=["job setting", "caller's backend"])
def crawl_job(request: pytest.FixtureRequest, tmp_path: Path, site: str) -> Any:
    """``crawl_job(spider_cls) -> Stats``: one run of the job in ``tmp_path``, its
    frontier chosen by the ``job`` setting or built by the caller."""
    output = tmp_path / "items.jsonl"
    output.touch()

    def run(spider_cls: type[ChainSpider], **extra: Any) -> crawler.Stats:
        chosen: dict[str, Any] = {"job": str(tmp_path / "job")}
        spider_cls.frontier = None
        if request.param == "caller's backend":
            spider_cls.frontier = SqliteFrontier(tmp_path / "job" / "frontier.sqlite")
            chosen = {"backend": spider_cls.frontier}
        spider_cls.seen = []
        args = {"start": site + "/0", "out": str(output)}
        return crawler.run(
            spider_cls, output=str(output), spider_args=args, **CHAIN_SETTINGS, **chosen, **extra
        )

    return run


def test_each_page_is_written_then_acknowledged_before_the_next(crawl_job: Any, tmp_path: Path) -> None:
    stats = crawl_job(ChainSpider)
    assert stats.pages == CHAIN_PAGES and stats.finish_reason == "finished"
    # Page k (a chain: one at a time) sees the items of pages 0..k-1 in the output,
    # and only itself in flight: each page is acknowledged once its items are written.
    assert [lines for lines, _ in ChainSpider.seen] == list(range(CHAIN_PAGES))
    if ChainSpider.frontier is not None:
        assert {in_flight for _, in_flight in ChainSpider.seen} == {1}


def test_a_job_refuses_another_spider_and_overwriting(crawl_job: Any, tmp_path: Path) -> None:
    crawl_job(ChainSpider)
    before = (tmp_path / "items.jsonl").read_bytes()
    with pytest.raises(UsageError, match="belongs to spider 'chain', not 'other'"):
        crawl_job(OtherSpider)
    with pytest.raises(UsageError, match=r"has run before: .* would discard its items"):
        crawl_job(ChainSpider, overwrite=True)
    assert (tmp_path / "items.jsonl").read_bytes() == before
    assert sorted(tmp_path.iterdir()) == [tmp_path / "items.jsonl", tmp_path / "job"]  # no temporary file


def test_statistics_carry_over_and_a_partial_line_is_cut(
    crawl_job: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crawl_job(ChainSpider)
    with (tmp_path / "items.jsonl").open("ab") as out:
        out.write(b'{"url": "http://half-writ')  # as if a kill landed mid-line
    with caplog.at_level(logging.INFO, logger="crawler.job"):
        stats = crawl_job(ChainSpider)
    assert stats.pages == CHAIN_PAGES and stats.items == CHAIN_PAGES  # the first run's, carried over
    assert ChainSpider.seen == []  # the job had finished: nothing fetched again
    assert len(read_jsonl(tmp_path / "items.jsonl")) == CHAIN_PAGES  # every line whole JSON
    assert "resuming job" in caplog.text and "25 bytes of a partial line cut" in caplog.text


# test_job.py's spider, run by ``crawler.run`` on a frontier the script builds.
KILLED_SCRIPT = (
    JOB_SPIDER
    + """
import json, sys
import crawler

if __name__ == "__main__":
    start, output, database = sys.argv[1:]
    stats = crawler.run(
        JobSpider, output=output, backend=crawler.SqliteFrontier(database), spider_args={"start": start},
        obey_robots=False, concurrency=4, parse_workers=1,
    )
    print(json.dumps({"items": stats.items}))
"""
)


def test_a_kill_9_loses_nothing_with_the_callers_backend(serve: Any, tmp_path: Path) -> None:
    """What ``--job`` promises (tests/frontier/test_job.py), for a `SqliteFrontier` built by
    the caller: resumed after kill -9, nothing is lost, duplicates are at most what
    was in flight, and the counts are those of the output."""
    children = lambda i: [f"/{j}" for j in (2 * i + 1, 2 * i + 2) if j < JOB_PAGES]  # noqa: E731
    tree = {f"/{i}": Page(html(f"page {i}", children(i)).body, delay=0.015) for i in range(JOB_PAGES)}
    server = serve(tree)
    script = tmp_path / "tree.py"
    script.write_text(KILLED_SCRIPT)
    output = tmp_path / "items.jsonl"
    command = [sys.executable, str(script), f"{server.url}/0", str(output), str(tmp_path / "job.sqlite")]
    assert run_until(command, tmp_path, 40, signal.SIGKILL) == -signal.SIGKILL
    finished = finish(command)
    urls = Counter(item["url"] for item in items_of(tmp_path))
    assert len(urls) == JOB_PAGES  # nothing lost
    assert sum(count - 1 for count in urls.values()) <= 8  # at most what was in flight
    assert json.loads(finished.stdout)["items"] == sum(urls.values())
