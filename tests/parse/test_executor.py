"""The parse executor: a concurrent.futures.Executor with batches, a deadline, and
dead workers replaced."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import pytest

import crawler
from crawler import Request, Response, Spider
from crawler.output.itemjson import encode_items
from crawler.parse.callbacks import LinkRules, ParseResult, ParseTask, SpiderParser, parse_failure
from crawler.parse.executor import CallTimedOut, ParseExecutor, WorkerCrashed, WorkerStartError

from ..support.cli import CRAWL
from ..support.sites import html

RULES = LinkRules(("a.test",), None, 2083, encode_items)


class SlowSpider(Spider):
    def parse(self, response: Response) -> Any:
        if response.url.endswith("/hang"):
            time.sleep(60)
        if response.url.endswith("/die"):
            os._exit(3)
        if "/slow" in response.url:
            time.sleep(0.02)
        yield {"url": response.url, "size": len(response.body)}


def task(path: str, body: bytes = b"<title>t</title>") -> ParseTask:
    url = "http://a.test" + path
    return ParseTask(Request(url), url, 200, {"content-type": "text/html"}, body)


async def parse_on(executor: Executor, parser: SpiderParser, page: ParseTask) -> ParseResult:
    try:
        result: ParseResult = await asyncio.get_running_loop().run_in_executor(executor, parser, page)
    except (WorkerCrashed, CallTimedOut) as exc:
        return parse_failure(exc)
    return result


async def parse_all(paths: list[str], timeout: float) -> list[ParseResult]:
    parser = SpiderParser.of(SlowSpider, {}, RULES)
    executor = ParseExecutor(1, initializer=parser.load, timeout=timeout)
    await executor.start()
    try:
        first = asyncio.ensure_future(parse_on(executor, parser, task("/first")))
        await asyncio.sleep(0.1)  # the first page goes alone; the rest queue up as one batch
        rest = [asyncio.ensure_future(parse_on(executor, parser, task(path))) for path in paths]
        return [await first, *[await future for future in rest]]
    finally:
        await executor.aclose()


def test_a_page_past_the_deadline_fails_alone_and_its_batch_mates_are_parsed():
    started = time.monotonic()
    results = asyncio.run(parse_all(["/a", "/hang", "/b"], timeout=1.0))
    assert time.monotonic() - started < 10
    assert results[2].counts["errors/parse_timeout"] == 1
    assert [r.lines.count(b"\n") for i, r in enumerate(results) if i != 2] == [1, 1, 1]


def test_a_worker_that_dies_is_replaced_and_only_its_page_fails():
    results = asyncio.run(parse_all(["/a", "/die", "/b"], timeout=30.0))
    assert results[2].counts["errors/worker_crash"] == 1
    assert [r.lines.count(b"\n") for i, r in enumerate(results) if i != 2] == [1, 1, 1]


async def parse_many(executor: ParseExecutor, parser: SpiderParser, tasks: list[ParseTask]) -> list[Any]:
    results = await asyncio.gather(*(parse_on(executor, parser, t) for t in tasks))
    return [r.lines for r in results]


@pytest.mark.parametrize("size", [0, 100, 300_000, 3_000_000])
def test_bodies_of_every_size_arrive_whole(size):
    """Bodies travel as out-of-band buffers over a pipe that holds 1 MiB: a batch
    bigger than the pipe goes out in pieces as the worker drains it."""

    async def main() -> list[Any]:
        parser = SpiderParser.of(SlowSpider, {}, RULES)
        executor = ParseExecutor(2, initializer=parser.load)
        await executor.start()
        try:
            pages = [task(f"/{i}", bytes([65 + i % 26]) * (size + i)) for i in range(20)]
            return await parse_many(executor, parser, pages)
        finally:
            await executor.aclose()

    lines = asyncio.run(main())
    assert lines == [b'{"url":"http://a.test/%d","size":%d}\n' % (i, size + i) for i in range(20)]


def test_the_main_process_parses_small_pages_when_every_worker_is_busy():
    async def main() -> tuple[list[Any], int]:
        parser = SpiderParser.of(SlowSpider, {}, RULES)
        parser.install(SlowSpider())
        executor = ParseExecutor(1, initializer=parser.load, may_run_here=lambda fn, args: True)
        await executor.start()
        try:
            slow = [task(f"/slow{i}") for i in range(50)]  # a second in the worker
            first = asyncio.ensure_future(parse_many(executor, parser, slow))
            await asyncio.sleep(0.01)  # the worker has its two batches, and more wait
            rest = await parse_many(executor, parser, [task(f"/{i}") for i in range(50)])
            return await first + rest, executor.ran_here
        finally:
            await executor.aclose()
            parser.forget()

    lines, ran_here = asyncio.run(main())
    expected = [f"/slow{i}" for i in range(50)] + [f"/{i}" for i in range(50)]
    assert lines == [b'{"url":"http://a.test%s","size":16}\n' % path.encode() for path in expected]
    assert ran_here > 0


def test_answers_waiting_unread_in_the_pipe_mean_the_worker_is_not_busy():
    """A busy event loop reads the worker's answers late; before parsing a page
    itself, the main process reads them, and finds the worker free."""

    async def main() -> tuple[int, int]:
        parser = SpiderParser.of(SlowSpider, {}, RULES)
        parser.install(SlowSpider())
        executor = ParseExecutor(1, initializer=parser.load, may_run_here=lambda fn, args: True)
        await executor.start()
        try:
            loop = asyncio.get_running_loop()
            pages = [loop.run_in_executor(executor, parser, task(f"/{i}")) for i in range(48)]
            await asyncio.sleep(0)  # two batches go to the worker; a full batch waits
            time.sleep(1.0)  # the loop busy: the worker answers both, unread
            pages.append(loop.run_in_executor(executor, parser, task("/last")))
            await asyncio.gather(*pages)
            return len(pages), executor.ran_here
        finally:
            await executor.aclose()
            parser.forget()

    parsed, ran_here = asyncio.run(main())
    assert parsed == 49 and ran_here == 0


def raise_value_error(text: str) -> None:
    raise ValueError(text)


def test_it_is_an_executor_exceptions_and_all():
    async def main() -> None:
        executor = ParseExecutor(1)
        await executor.start()
        try:
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(executor, pow, 2, 10) == 1024
            with pytest.raises(ValueError, match="no good"):
                await loop.run_in_executor(executor, raise_value_error, "no good")
            from_thread = await asyncio.to_thread(lambda: executor.submit(pow, 3, 3).result(10))
            assert from_thread == 27
        finally:
            await executor.aclose()
        with pytest.raises(RuntimeError):
            executor.submit(pow, 2, 2)

    asyncio.run(main())


def fail_to_start() -> None:
    raise ImportError("no module named 'nowhere'")


def test_a_worker_whose_initializer_fails_says_why():
    async def main() -> None:
        executor = ParseExecutor(1, initializer=fail_to_start)
        await executor.start()

    with pytest.raises(WorkerStartError, match="no module named 'nowhere'"):
        asyncio.run(main())


def test_uvloop_runs_and_closes_the_executor():
    """uvloop closed the pipes' descriptors itself, and the executor's own close then
    failed with EBADF: every crawl under uvloop exited 1."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> list[Any]:
        parser = SpiderParser.of(SlowSpider, {}, RULES)
        executor = ParseExecutor(1, initializer=parser.load)
        await executor.start()
        try:
            return await parse_many(executor, parser, [task(f"/{i}") for i in range(40)])
        finally:
            await executor.aclose()

    assert len(uvloop.run(main())) == 40


# --- whole crawls --------------------------------------------------------------------

SITE_PAGES = 30


class LinkSpider(Spider):
    name = "links"

    def parse(self, response: Response) -> Any:
        title = response.css_first("title")
        yield {"url": response.url, "title": title.text() if title else None}
        yield from response.follow_all("a")


def linked_site() -> dict[str, Any]:
    from ..support.sites import html

    links = lambda i: [f"/{(i * 7 + k) % (SITE_PAGES - 1) + 1}" for k in range(1, 5)]  # noqa: E731
    pages = {f"/{i}": html(f"page {i}", links(i)) for i in range(1, SITE_PAGES)}
    return {"/": html("home", ["/1", "/2"]), **pages}


class CountingProcessPool(ProcessPoolExecutor):
    """The standard executor, counting what it is given."""

    submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        type(self).submitted += 1
        return super().submit(fn, *args, **kwargs)


def test_process_pool_executor_is_a_drop_in_and_every_page_goes_through_run_in_executor(
    serve, crawl_items, monkeypatch
):
    server = serve(linked_site())
    calls: list[Any] = []
    real = asyncio.BaseEventLoop.run_in_executor

    def counting(loop: Any, executor: Any, fn: Any, *args: Any) -> Any:
        if executor is not None:  # None: the loop's thread pool (closing, resolving)
            calls.append(type(executor).__name__)
        return real(loop, executor, fn, *args)

    monkeypatch.setattr(asyncio.BaseEventLoop, "run_in_executor", counting)
    ours, our_stats = crawl_items(LinkSpider, [server.url + "/"], parse_workers=2, obey_robots=False)
    context = multiprocessing.get_context("forkserver")
    with CountingProcessPool(2, mp_context=context) as executor:
        theirs, their_stats = crawl_items(
            LinkSpider, [server.url + "/"], parse_executor=executor, obey_robots=False
        )
    assert len(ours) == SITE_PAGES
    assert sorted(ours, key=str) == sorted(theirs, key=str)
    assert our_stats.pages == their_stats.pages == SITE_PAGES
    assert Counter(calls) == {"ParseExecutor": SITE_PAGES, "CountingProcessPool": SITE_PAGES}
    assert CountingProcessPool.submitted == SITE_PAGES


def test_a_crawl_under_uvloop_finishes_and_exits_cleanly(serve):
    uvloop = pytest.importorskip("uvloop")
    server = serve(linked_site())

    async def main() -> list[Any]:
        args = {"start_urls": [server.url + "/"]}
        items = crawler.crawl(LinkSpider, parse_workers=1, obey_robots=False, spider_args=args)
        return [item async for item in items]

    assert len(uvloop.run(main())) == SITE_PAGES


# --- Ctrl-C while the parse workers start ---------------------------------------------


MARKED_SPIDER = """
import os, pathlib
from crawler import Request, Spider

pathlib.Path(os.environ["SPIDER_LOADED"]).touch()  # the crawl is past its imports

class MarkedSpider(Spider):
    name = "marked"
    start = ""

    def start_requests(self):
        yield Request(self.start)

    def parse(self, response):
        yield {"url": response.url}
        yield from response.follow_all("a")
"""


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
def test_ctrl_c_as_a_job_starts_exits_130_without_a_traceback(serve, tmp_path, delay):
    """Ctrl-C reaches every process in the terminal's group, parse workers included:
    one that died of it while starting made the crawl exit 1 with a traceback."""
    from ..support.sites import html

    # a chain, fetched one page after another: still crawling at the last delay
    site = serve({f"/{i}": html(f"page {i}", [f"/{i + 1}"]) for i in range(2000)})
    spider, marker = tmp_path / "marked.py", tmp_path / "loaded"
    spider.write_text(MARKED_SPIDER)
    command = [CRAWL, str(spider), "-a", f"start={site.url}/0", "--job", str(tmp_path / "job")]
    command += ["-o", str(tmp_path / "items.jsonl"), "--no-progress", "--no-obey-robots"]
    env = {**os.environ, "SPIDER_LOADED": str(marker)}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole process group
    _, stderr = process.communicate(timeout=60)
    assert (process.returncode, "Traceback" in stderr) == (130, False), stderr


# -- the fork rule -----------------------------------------------------------------------

NETWORK_SPIDER = """
import multiprocessing, sys
from crawler import Spider

class NetworkSpider(Spider):
    name = "network"

    def parse(self, response):
        loaded = sorted(m for m in ("aiohttp", "httpx") if m in sys.modules)
        yield {"worker": multiprocessing.parent_process() is not None, "network": loaded}
        yield from response.follow_all("a")
"""


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "job"])
def test_parse_workers_are_forked_before_the_network_stack_loads(serve, tmp_path, durable) -> None:
    """The fork rule, on the path users run: a forked worker inherits every module the
    main process has imported, so a worker that finds aiohttp or httpx loaded was
    forked after them (about 20 MB per worker). ``crawl SPIDER.py`` is run for real
    and the workers report what they inherited."""
    pages = {f"/{i}": html(str(i)) for i in range(8)}
    server = serve({"/": html("home", list(pages)), **pages})
    spider = tmp_path / "network_spider.py"
    spider.write_text(NETWORK_SPIDER)
    job = ["--job", str(tmp_path / "job")] if durable else []
    command = [CRAWL, str(spider), "-a", f"start_urls={server.url}/", "--no-obey-robots", "-o", "-"]
    result = subprocess.run(
        [*command, "--parse-workers", "2", "--no-progress", *job],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    in_workers = [report["network"] for report in reports if report["worker"]]
    assert in_workers, reports  # the workers parsed pages (not only the main process)
    assert all(loaded == [] for loaded in in_workers), in_workers
