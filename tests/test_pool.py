"""The parse pool: batches, the parse deadline, and dead workers."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from crawler import Request, Response, Spider
from crawler._callbacks import LinkRules, ParseTask
from crawler._pool import ParsePool

RULES = LinkRules(("a.test",), None, 2083)


class SlowSpider(Spider):
    def parse(self, response: Response) -> Any:
        if response.url.endswith("/hang"):
            time.sleep(60)
        if response.url.endswith("/die"):
            os._exit(3)
        yield {"url": response.url}


def task(path: str) -> ParseTask:
    url = "http://a.test" + path
    return ParseTask(Request(url), url, 200, {"content-type": "text/html"}, b"<title>t</title>")


async def parse_all(paths: list[str], timeout: float) -> list[Any]:
    pool = ParsePool(SlowSpider(), {}, RULES, workers=1, timeout=timeout)
    await pool.start()
    try:
        first = asyncio.ensure_future(pool.parse(task("/first")))
        await asyncio.sleep(0)  # the first page goes alone; the rest queue up as one batch
        rest = [asyncio.ensure_future(pool.parse(task(path))) for path in paths]
        return [await first, *[await future for future in rest]]
    finally:
        await pool.close()


def test_a_page_past_the_deadline_fails_alone_and_its_batch_mates_are_parsed():
    started = time.monotonic()
    results = asyncio.run(parse_all(["/a", "/hang", "/b"], timeout=1.0))
    assert time.monotonic() - started < 10
    by_page = {i: r for i, r in enumerate(results)}
    assert by_page[2].counts["errors/parse_timeout"] == 1
    assert [r.lines.count(b"\n") for i, r in by_page.items() if i != 2] == [1, 1, 1]


def test_a_worker_that_dies_is_replaced_and_only_its_page_fails():
    results = asyncio.run(parse_all(["/a", "/die", "/b"], timeout=30.0))
    assert results[2].counts["errors/worker_crash"] == 1
    assert [r.lines.count(b"\n") for i, r in enumerate(results) if i != 2] == [1, 1, 1]
