"""The engine: a dispatcher and a bounded pool of worker coroutines.

The dispatcher leases requests from the frontier (only from hosts that are ready,
so no worker ever waits on a busy host) and hands them to idle fetch workers. A
fetch worker takes one request through the fetch stage (`FetchStage`: robots.txt ->
fetch -> redirect or retry) under a claim on the body budget; a parse worker takes
its page on: parse in the pool -> items to the sink, new requests to the frontier ->
acknowledge once the items are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import BrokenExecutor, Executor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._counters import (
    DROPPED,
    DROPPED_DUPLICATE,
    ERRORS_INTERNAL,
    ERRORS_ITEM,
    ERRORS_START_REQUESTS,
    ITEMS,
    PARSE_MAIN_PROCESS,
    START_REQUESTS,
    short,
)
from ._errors import (
    BrowserUnavailable,
    CrawlerError,
    FrontierError,
    OutputError,
    UsageError,
)
from ._request import Request
from ._settings import Settings
from ._spider import Spider, bind_fetch, call_hook, start_requests_of
from ._stats import Stats
from ._urls import default_allowed_domains, vet_url
from .fetch import BodyBudget, Claim, FetchStage, Network, Page, certificates_loaded, default_host_policy
from .frontier import (
    ClusterStats,
    DurableFrontier,
    Frontier,
    FrontierStatus,
    Job,
    SharedFrontier,
    SharedStore,
    open_frontier,
)
from .output import FLUSH_BYTES, ItemSink, PipelineError, Pipelines, encode_items
from .parse import (
    LinkRules,
    ParseExecutor,
    ParseResult,
    ParseTask,
    SpiderParser,
    is_async_method,
    parse_failure,
    space_young_collections,
)

if TYPE_CHECKING:  # at run time these load after the parse workers are forked
    import httpx

    from .fetch.client import ClientFactory, Fetched

log = logging.getLogger("crawler.engine")

STOP_GRACE = 5.0
TICK = 0.5
# The largest page the main process parses itself when the parse workers are all
# busy: parsing it blocks the event loop for a few milliseconds at most.
RUN_HERE_MAX_BODY = 256 * 1024

Ticker = Callable[[Stats, FrontierStatus], None]
ClaimedPage = tuple[Request, "Fetched", Claim]  # a page with its bytes in the body budget


class Engine:
    """Runs one crawl of ``spider`` under ``settings``, writing items to ``sink``
    (``overwrite``: the sink replaces its file, which a job that ran before refuses)."""

    def __init__(
        self,
        spider: Spider,
        settings: Settings,
        sink: ItemSink,
        *,
        spider_args: Mapping[str, Any] | None = None,
        frontier: Frontier | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        client_factory: ClientFactory | None = None,
        parse_executor: Executor | None = None,
        on_tick: Ticker | None = None,
        overwrite: bool = False,
    ) -> None:
        self.spider = spider
        self.settings = settings
        self.sink = sink
        self.stats = Stats()
        self._spider_args = dict(spider_args or {})
        name = spider_identity(spider)
        self._frontier = frontier or open_frontier(settings, name, default_host_policy(settings))
        durable = self._frontier if isinstance(self._frontier, DurableFrontier) else None
        self._job = Job(durable, name, overwrite=overwrite) if durable is not None else None
        shared = self._frontier if isinstance(self._frontier, SharedFrontier) else None
        self._cluster = ClusterStats(shared) if shared is not None else None
        # A durable or shared frontier hears of each page as soon as its items are
        # written, so that a kill -9 can repeat only what was in flight; a memory
        # frontier dies with the process anyway: twice a second is enough.
        self._durable = self._job is not None or shared is not None
        self._flush_bytes = 0 if self._durable else FLUSH_BYTES
        # Other nodes' progress wakes no one here: a node of a shared crawl looks again
        # four times a second; alone, a local event always comes first.
        self._poll = 0.25 if shared is not None else 1.0
        self._transport = transport
        self._client_factory = client_factory
        self._executor = parse_executor  # the caller's, if any: it stays open after the crawl
        self._own_executor: ParseExecutor | None = None
        self._async_callbacks: dict[str | None, bool] = {}
        self._on_tick = on_tick
        self._pipelines = Pipelines(spider.pipelines, spider, self.stats)
        self._work: asyncio.Queue[Request | None] = asyncio.Queue()
        self._pages: asyncio.Queue[ClaimedPage | None] = asyncio.Queue(settings.concurrency)
        self._fetching = 0
        self._wake = asyncio.Event()
        self._budget = BodyBudget(settings.max_body_memory, on_release=self._wake.set)
        self._active = 0
        self._stopping = False
        self._fatal: BaseException | None = None
        self._unacked: list[Request] = []
        self._unwritten_items = 0
        self._scope: tuple[str, ...] = ()
        self._stage: FetchStage | None = None
        self._workers: list[asyncio.Task[None]] = []

    def stop(self) -> None:
        """Stop cleanly: no new requests; in-flight ones get a few seconds."""
        if not self._stopping:
            log.info("stopping: finishing requests in flight")
        self._stopping = True
        self._wake.set()

    async def run(self) -> Stats:
        await self._open_frontier()
        start = await self._start_requests()
        if not start:
            await self._refuse_an_empty_start()
        start_hosts = default_allowed_domains(r.url for r in start)
        self._scope = self.settings.allowed_domains or start_hosts
        self._parse_page = SpiderParser.of(type(self.spider), self._spider_args, self._link_rules())
        self._runner = self._parse_page.install(self.spider)
        try:
            await self._start_parse_executor()
            if self._stopping:  # Ctrl-C while the workers were starting
                return self.stats
            stage = self._open_fetch_stage(start_hosts)
            await self._before_user_hooks()
            await self._pipelines.open()
            await call_hook(self.spider, "open")
            self.stats.inc(START_REQUESTS, await self._frontier.add(start))
            if (await self._frontier.status()).finished:
                log.info("nothing left to crawl: this crawl has finished already")
            self.sink.begin(durable=self._durable)  # start-up succeeded: the output may change now
            await self._crawl(stage)
        except PipelineError as exc:  # the crawl failed (with a summary), not its start-up
            self._fail(exc)
        finally:
            await self._shut_down()
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    async def _before_user_hooks(self) -> None:
        """A pipeline, or the spider's ``open``, may speak HTTPS through aiohttp itself:
        first the certificates aiohttp's import left to a thread (`certificates_loaded`)."""
        if self._pipelines or type(self.spider).open is not Spider.open:
            await certificates_loaded()

    async def _open_frontier(self) -> None:
        """Connect the frontier (an unreachable one stops the crawl here); a job's
        also checks its spider and carries its statistics and output over."""
        try:
            recovered = await self._frontier.open()
            if self._job is not None:
                await self._job.open(self.stats, self.sink, recovered)
        except BaseException:
            await self._frontier.close()
            raise

    async def _start_parse_executor(self) -> None:
        """Our parse executor, unless the caller brought one or parses in-process."""
        if self._executor is not None or self.settings.parse_workers == 0:
            return
        executor = ParseExecutor(
            self.settings.parse_workers,
            initializer=self._parse_page.load,
            timeout=self.settings.parse_timeout,
            may_run_here=_small_page,
            weigh=_page_size,
        )
        self._own_executor = executor
        await executor.start()
        self._executor = executor

    def _is_async(self, callback: str | None) -> bool:
        """Whether the spider's ``callback`` is ``async``: asked once per callback."""
        known = self._async_callbacks.get(callback)
        if known is None:
            known = self._async_callbacks[callback] = is_async_method(self.spider, callback)
        return known

    async def _parse(self, task: ParseTask) -> ParseResult:
        """Run the page's callback: in the parse executor, or here for ``async def``
        callbacks and ``parse_workers=0``."""
        if self._executor is None or self._is_async(task.request.callback):
            return await self._runner.run_async(task)
        loop = asyncio.get_running_loop()
        try:
            result: ParseResult = await loop.run_in_executor(self._executor, self._parse_page, task)
        except (BrokenExecutor, TimeoutError) as exc:
            return parse_failure(exc)
        return result

    def _open_fetch_stage(self, start_hosts: tuple[str, ...]) -> FetchStage:
        """The fetch stage, and with it the network (``start_hosts`` and the allowed
        domains pass the address guard); ``Spider.fetch`` goes through it."""
        shared = self._frontier if isinstance(self._frontier, SharedStore) else None
        named_hosts = (*start_hosts, *(self.settings.allowed_domains or ()))
        network = Network(
            self.settings,
            self.stats,
            self._frontier,
            named_hosts,
            shared=shared,
            transport=self._transport,
            client_factory=self._client_factory,
        )
        self._stage = FetchStage(
            network,
            self.settings,
            self.stats,
            self._frontier,
            scope=self._scope,
            handled_statuses=self.spider.handle_httpstatus_list,
            on_start=self._wake.set,
        )
        self._stage.check()  # no browser for a crawl that renders: one clear error now
        bind_fetch(self.spider, self._stage.single_fetches().fetch)
        return self._stage

    def _link_rules(self) -> LinkRules:
        encode = encode_items if self.sink.wants_lines and not self._pipelines else None
        settings = self.settings
        return LinkRules(
            self._scope, settings.depth, settings.max_url_length, encode, settings.strip_session_ids
        )

    async def _start_requests(self) -> list[Request]:
        start: list[Request] = []
        try:
            async for request in start_requests_of(self.spider):
                self._vet_start_request(request, start)
        except Exception as exc:
            self.stats.inc(ERRORS_START_REQUESTS)
            log.error("start_requests failed: %s: %s", type(exc).__name__, exc)
        return start

    async def _refuse_an_empty_start(self) -> None:
        """No start request, and nothing queued by an earlier run: a usage error (before
        the output is touched). A job or shared crawl that did its work ends normally."""
        if self.stats.pages or not (await self._frontier.status()).finished:
            return
        await self._frontier.close()
        refused = sum(n for key, n in self.stats.counts.items() if key.startswith(DROPPED))
        if refused:
            raise UsageError(f"nothing to crawl: all {refused} start URL(s) were refused (see the warnings)")
        if self.stats[ERRORS_START_REQUESTS]:
            raise CrawlerError("nothing to crawl: start_requests failed (see the error above)")
        raise UsageError(
            "nothing to crawl: the spider has no start URL (set start_urls or -a start_urls=URL)"
        )

    def _vet_start_request(self, request: Any, start: list[Request]) -> None:
        if not isinstance(request, Request):
            request = Request(str(request))
        verdict, url = vet_url(request.url, LinkRules((), None, self.settings.max_url_length))
        if verdict is not None:
            self.stats.inc(verdict)
            log.warning("start URL %r refused: %s", request.url, short(verdict).replace("_", " "))
            return
        start.append(replace(request, url=url))

    async def _crawl(self, stage: FetchStage) -> None:
        try:
            with _CRAWL_COLLECTOR.held():
                async with asyncio.TaskGroup() as group:
                    workers = range(self.settings.concurrency)
                    self._workers = [group.create_task(self._fetch_worker(stage)) for _ in workers]
                    self._workers += [group.create_task(self._parse_worker()) for _ in workers]
                    ticker = group.create_task(self._tick())
                    group.create_task(self._dispatch(ticker))
        except* FrontierError as failed:  # Redis gone, a job's disk full: stop, say why
            self._fail(failed.exceptions[0])

    async def _dispatch(self, ticker: asyncio.Task[None]) -> None:
        try:
            reason = await self._dispatch_until_done()
            self.stats.finish_reason = reason
            await self._let_workers_finish()
        finally:
            ticker.cancel()
            for _ in range(self.settings.concurrency):
                self._work.put_nowait(None)
                with contextlib.suppress(asyncio.QueueFull):  # full only when its workers were cancelled
                    self._pages.put_nowait(None)

    async def _dispatch_until_done(self) -> str:
        while not self._stopping:
            capacity = self._capacity()
            if capacity > 0 and await self._hand_out(capacity):
                continue
            if self._active == 0 and self._unacked:
                await self._flush_and_ack()
            status = await self._frontier.status()
            if self._active == 0 and (status.finished or self._page_budget_spent()):
                return "finished" if status.finished else "max_pages"
            wait = status.wait if capacity > 0 and status.wait is not None else 1.0
            await self._sleep(max(wait, 0.001))
        return "stopped" if self._fatal is None else "failed"

    def _capacity(self) -> int:
        """How many more requests to fetch now: ``concurrency`` counts requests on the
        wire (as in Scrapy), not pages waiting for or in the parse pool."""
        free = self.settings.concurrency - self._fetching
        if self._budget.spent:  # fetching pauses until parsed pages give bytes back
            free = 0
        if self.settings.max_pages is not None:
            free = min(free, self.settings.max_pages - self.stats.pages - self._active)
        return free

    def _page_budget_spent(self) -> bool:
        return self.settings.max_pages is not None and self.stats.pages >= self.settings.max_pages

    async def _hand_out(self, capacity: int) -> bool:
        batch = await self._frontier.take(capacity)
        self._active += len(batch)
        self._fetching += len(batch)
        for request in batch:
            self._work.put_nowait(request)
        return bool(batch)

    async def _sleep(self, timeout: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), min(timeout, self._poll))

    async def _let_workers_finish(self) -> None:
        """Give requests in flight ``STOP_GRACE`` seconds, then give them up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE
        while self._active and loop.time() < deadline:
            await self._sleep(deadline - loop.time())
        if self._active:
            log.warning("gave up %d requests still in flight", self._active)
            for worker in self._workers:
                worker.cancel()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            await self._flush_and_ack()
            await self._save_progress()
            if self._on_tick is not None:
                self._on_tick(self.stats, await self._frontier.status())

    async def _save_progress(self) -> None:
        """The job's statistics so far; this node's share of a shared crawl's."""
        try:
            if self._job is not None:
                await self._job.save(self.stats)
            if self._cluster is not None:
                await self._cluster.push(self.stats)
        except FrontierError as exc:
            self._fail(exc)

    async def _flush_and_ack(self) -> None:
        """Write buffered items out, then acknowledge the requests they came from: a
        request is done only once its items are in the output, so a crash loses none
        (with a durable frontier, the unacknowledged ones are crawled again). A failed
        write acknowledges nothing; a durable crawl saves its counts (so a kill -9
        can only count twice what it fetches twice) and syncs the file first."""
        try:
            self.sink.flush()
            self.stats.inc(ITEMS, self._unwritten_items)  # items counts what is in the output
            self._unwritten_items = 0
            acknowledged, self._unacked = self._unacked, []
            if self._durable and acknowledged:
                if self._job is not None:
                    await self._job.save(self.stats)
                await self.sink.sync()
            for request in acknowledged:
                await self._frontier.done(request)
        except (OutputError, FrontierError) as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self.stop()

    async def _fetch_worker(self, stage: FetchStage) -> None:
        """Fetch stage: robots.txt, fetch, redirect or retry; pages go on to the parse stage."""
        while (request := await self._work.get()) is not None:
            await self._fetch_one(stage, request)
            self._fetching -= 1
            self._wake.set()

    async def _fetch_one(self, stage: FetchStage, request: Request) -> None:
        """Fetch ``request`` under a claim on the body budget, and pass its page on.
        (A function of its own: an idle worker must not hold its last page's body.)"""
        claim = self._budget.claim()
        reading = claim.reading()
        try:
            page = await self._guarded(request, stage.fetch(request))
        finally:
            claim.done_reading(reading)
        if page is not None:
            claim.cover(len(page[1].body))
            await self._pages.put((*page, claim))
        else:
            claim.release()
            self._request_finished()

    async def _parse_worker(self) -> None:
        """Parse stage: callback in the pool, items to the sink, links to the frontier."""
        while (page := await self._pages.get()) is not None:
            request, fetched, claim = page
            try:
                await self._guarded(request, self._parse_stage(request, fetched))
            finally:
                claim.release()
            del page, fetched  # an idle worker must not hold its last page's body
            self._request_finished()

    async def _guarded(self, request: Request, stage: Awaitable[Page | None]) -> Page | None:
        """Run one stage for ``request``; a bug in it ends the request, not the crawl."""
        try:
            return await stage
        except (OutputError, FrontierError, BrowserUnavailable) as exc:
            self._fail(exc)
        except Exception:
            self.stats.inc(ERRORS_INTERNAL)
            log.exception("internal error while handling %s", request.url)
            await self._frontier.done(request)
        return None

    def _request_finished(self) -> None:
        self._active -= 1
        self._wake.set()

    async def _parse_stage(self, request: Request, fetched: Fetched) -> None:
        task = ParseTask(request, fetched.url, fetched.status, fetched.headers, fetched.body)
        result = await self._parse(task)
        await self._store(request, result)
        self._unacked.append(request)
        if self.sink.buffered >= self._flush_bytes:
            await self._flush_and_ack()

    async def _store(self, request: Request, result: ParseResult) -> None:
        for key, count in result.counts.items():
            self.stats.inc(key, count)
        self._log_errors(request, result.errors)
        lines, items = result.lines, result.items
        if self._pipelines and items:
            items = await self._pipelines.process(items, request.url)
            if self.sink.wants_lines:
                lines, failures = encode_items(items)
                items = []
                self.stats.inc(ERRORS_ITEM, len(failures))
                self._log_errors(request, failures)
        await self.sink.write(lines, items)
        self._unwritten_items += len(items) + lines.count(b"\n")  # JSON Lines: one newline per item
        if result.requests and (requests := self._unrefused(result.requests)):
            queued = await self._frontier.add(requests)
            self.stats.inc(DROPPED_DUPLICATE, len(requests) - queued)

    def _unrefused(self, requests: list[Request]) -> list[Request]:
        assert self._stage is not None  # a page was fetched
        return self._stage.unrefused(requests)

    def _log_errors(self, request: Request, errors: list[str]) -> None:
        for error in errors:
            sep = "\n" if "\n" in error else " "  # a traceback below, a one-line error beside
            log.error("callback %s failed on %s:%s%s", request.callback or "parse", request.url, sep, error)

    async def _shut_down(self) -> None:
        if self.stats.finish_reason == "running":
            self.stats.finish_reason = "failed" if self._fatal else "stopped"
        self._withdraw_empty_output()  # before any await: a second Ctrl-C cancels those
        try:
            await self._pipelines.close()
        finally:
            await call_hook(self.spider, "closed", self.stats.finish_reason)
            await self._flush_and_ack()
            if self._own_executor is not None:
                self.stats.inc(PARSE_MAIN_PROCESS, self._own_executor.ran_here)
            self.stats.finish(self.stats.finish_reason)
            await self._save_progress()
            closing = [self._close_parse_executor(), self._frontier.close()]
            if self._stage is not None:
                closing.append(self._stage.close())
            await asyncio.gather(*closing)
            try:
                self.sink.close()
            except OutputError as exc:
                self._fatal = self._fatal or exc

    def _withdraw_empty_output(self) -> None:
        """A file the crawl would replace (``-O``) stays as it was when the crawl was
        stopped before it wrote an item, or when nothing it asked for answered: an old
        file is worth more than an empty one. A crawl that finished with no item
        replaces it: that is what the site holds now."""
        wrote = self.stats.items + self._unwritten_items
        if self.stats.nothing_answered or (self.stats.finish_reason == "stopped" and not wrote):
            self.sink.withdraw()

    async def _close_parse_executor(self) -> None:
        self._parse_page.forget()
        if self._own_executor is not None:
            await self._own_executor.aclose()


def _page_size(fn: Callable[..., Any], args: tuple[Any, ...]) -> int:
    return len(args[0].body) if args and isinstance(args[0], ParseTask) else 0


def _small_page(fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    """Whether the main process may parse this page itself (see ``ParseExecutor``)."""
    return _page_size(fn, args) <= RUN_HERE_MAX_BODY


class _CrawlCollector:
    """The garbage collector while crawls run.

    What start-up left alive (modules, the spider, settings) is never garbage while
    a crawl runs: ``gc.freeze()`` puts it where the full collections skip it. They
    would otherwise stall the loop for tens of ms, and a request whose host's start
    was taken just before such a stall reaches the wire that much late. A crawl's
    own objects mostly die young, freed by their reference counts: collections of
    the youngest generation come far more rarely than every 700 allocations
    (`space_young_collections`), so that most of those objects are gone before one runs.

    The first crawl of the process to start sets this up and the last to end undoes
    it (a library user's process goes on as it was); a process that froze objects
    itself (a pre-fork server) keeps its own freeze."""

    def __init__(self) -> None:
        self._running = 0
        self._froze = False
        self._thresholds = gc.get_threshold()
        self._lock = threading.Lock()  # crawls may run in several threads, each on its loop

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._running == 0:
                self._tune()
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    self._restore()

    def _tune(self) -> None:
        self._froze = gc.get_freeze_count() == 0
        if self._froze:
            gc.freeze()
        self._thresholds = space_young_collections()

    def _restore(self) -> None:
        gc.set_threshold(*self._thresholds)
        if self._froze:
            gc.unfreeze()
            self._froze = False


_CRAWL_COLLECTOR = _CrawlCollector()


def spider_identity(spider: Spider) -> str:
    """The name a job or a shared frontier knows the spider by."""
    name = type(spider).name
    return name if name != Spider.name else type(spider).__qualname__
