"""The parse pool: spider callbacks in worker processes, fed in adaptive batches.

A process-pool round trip costs about as much main-process CPU as parsing a page,
so pages travel in batches: when workers are idle a page goes alone (low latency);
under load, pages that queue up while the workers are busy travel together (up to
``MAX_BATCH``), which cuts the per-page cost several times. ``async def``
callbacks, and every callback when ``workers == 0``, run in the main process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ._callbacks import CallbackRunner, LinkRules, ParseResult, ParseTask, is_async_callback
from ._spider import Spider, SpiderRef

MAX_BATCH = 16
BATCHES_PER_WORKER = 2

_worker_runner: CallbackRunner | None = None


def _init_worker(source: SpiderRef | type[Spider], args: Mapping[str, Any], rules: LinkRules) -> None:
    """Runs once in each worker process: load the spider, ignore Ctrl-C (the main
    process decides how to stop)."""
    global _worker_runner
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    spider_cls = source.load() if isinstance(source, SpiderRef) else source
    _worker_runner = CallbackRunner(spider_cls(**args), rules)


def _parse_batch(tasks: list[ParseTask]) -> list[ParseResult]:
    assert _worker_runner is not None, "parse worker was not initialised"
    return [_worker_runner.run(task) for task in tasks]


def _ready() -> bool:
    return True


class ParsePool:
    """Runs callbacks for ``spider`` (the main process's instance); worker processes
    build their own instance from the same class and arguments."""

    def __init__(self, spider: Spider, args: Mapping[str, Any], rules: LinkRules, workers: int) -> None:
        self._runner = CallbackRunner(spider, rules)
        self._init_args = (_spider_source(type(spider)), dict(args), rules)
        self._workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._waiting: deque[tuple[ParseTask, asyncio.Future[ParseResult]]] = deque()
        self._batches_in_flight = 0
        self.worker_restarts = 0

    async def start(self) -> None:
        """Start the worker processes and wait until each has loaded the spider."""
        if self._workers == 0:
            return
        self._executor = self._new_executor()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor, _ready) for _ in range(self._workers)))

    def _new_executor(self) -> ProcessPoolExecutor:
        source = self._init_args[0]
        method = "forkserver" if isinstance(source, SpiderRef) else "fork"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload([__name__])
        return ProcessPoolExecutor(
            self._workers, mp_context=context, initializer=_init_worker, initargs=self._init_args
        )

    async def parse(self, task: ParseTask) -> ParseResult:
        if is_async_callback(self._runner.spider, task.request):
            return await self._runner.run_async(task)
        if self._executor is None:
            return self._runner.run(task)
        future: asyncio.Future[ParseResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((task, future))
        self._send_batches()
        return await future

    def _send_batches(self) -> None:
        while self._waiting and self._batches_in_flight < self._workers * BATCHES_PER_WORKER:
            count = min(MAX_BATCH, len(self._waiting))
            batch = [self._waiting.popleft() for _ in range(count)]
            self._batches_in_flight += 1
            asyncio.get_running_loop().create_task(self._run_batch(batch))

    async def _run_batch(self, batch: list[tuple[ParseTask, asyncio.Future[ParseResult]]]) -> None:
        assert self._executor is not None
        tasks = [task for task, _ in batch]
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._executor, _parse_batch, tasks)
        except BrokenProcessPool:
            results = [_crash_result() for _ in batch]
            self._restart()
        finally:
            self._batches_in_flight -= 1
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        self._send_batches()

    def _restart(self) -> None:
        """A worker died (a crash in native code, the OOM killer): start fresh ones."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.worker_restarts += 1
        self._executor = self._new_executor()

    async def close(self) -> None:
        for _, future in self._waiting:
            future.cancel()
        self._waiting.clear()
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)


def _spider_source(spider_cls: type[Spider]) -> SpiderRef | type[Spider]:
    """Workers find an importable spider by reference (forkserver); a class defined
    inside a function can only reach them through ``fork``."""
    ref = SpiderRef.of(spider_cls)
    return ref if ref.importable else spider_cls


def _crash_result() -> ParseResult:
    result = ParseResult()
    result.errors.append("a parse worker process died while handling this page")
    result.counts["errors/worker_crash"] += 1
    return result
