"""The parse pool: spider callbacks in worker processes, fed in adaptive batches.

Each worker is a process with two pipes that the event loop reads and writes
directly: no executor threads in the main process (``ProcessPoolExecutor``'s
manager and feeder threads fought the event loop for the GIL and cost a quarter
of the main process's time per page), and no forkserver or resource-tracker
processes. Workers are forked from the main process before the crawl starts, so
they share its memory pages; when other threads already run, a forkserver is used
instead, because forking a threaded process is unsafe.

A process round trip costs about as much main-process CPU as parsing a page, so
pages travel in batches: when workers are idle a page goes alone (low latency);
under load, the pages that queue up travel together (up to ``MAX_BATCH``).
``async def`` callbacks, and every callback when ``workers == 0``, run in the main
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import multiprocessing
import os
import pickle
import signal
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from ._callbacks import CallbackRunner, LinkRules, ParseResult, ParseTask, is_async_callback
from ._spider import Spider, SpiderRef

log = logging.getLogger("crawler.pool")

MAX_BATCH = 16
BATCHES_PER_WORKER = 2

Batch = list[tuple[ParseTask, "asyncio.Future[ParseResult]"]]
# A page waiting for a worker, and for a page under suspicion (its batch was lost),
# the result it gets if it is lost again, alone.
Waiting = tuple[ParseTask, "asyncio.Future[ParseResult]", "Callable[[], ParseResult] | None"]


def _worker_main(
    inbox: Connection, outbox: Connection, source: Any, args: Mapping[str, Any], rules: LinkRules
) -> None:
    """A worker process: load the spider, then answer batches until told to stop.
    Ctrl-C and SIGTERM are the main process's business."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    _die_with_parent()
    spider_cls = source.load() if isinstance(source, SpiderRef) else source
    runner = CallbackRunner(spider_cls(**args), rules)
    outbox.send_bytes(b"ready")
    while payload := inbox.recv_bytes():
        tasks: list[ParseTask] = pickle.loads(payload)
        outbox.send_bytes(pickle.dumps([runner.run(task) for task in tasks], pickle.HIGHEST_PROTOCOL))


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the process that started it dies, even by
    ``kill -9``. Waiting for the end of the inbox pipe is not enough: a forked worker
    inherits the crawl's end of its own inbox (and of the other workers' pipes), so
    it would never see the pipe close and would wait forever."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


PIPE_SIZE = 1 << 20


def _enlarge_pipe(fd: int) -> None:
    """A batch of pages is several hundred KB and a pipe holds 64 KB by default: the
    worker would wait for the event loop to refill it eight times per batch. Linux
    lets a pipe grow to ``/proc/sys/fs/pipe-max-size`` (1 MiB by default)."""
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def _frame_header(size: int) -> bytes:
    """``multiprocessing.Connection``'s framing, so the worker can ``recv_bytes``."""
    return struct.pack("!iQ", -1, size) if size > 0x7FFFFFFF else struct.pack("!i", size)


class _FrameReader(asyncio.Protocol):
    """Splits the worker's output pipe into messages, on the event loop."""

    def __init__(self, worker: _Worker) -> None:
        self._worker = worker
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (message := self._next_message()) is not None:
            self._worker.message(message)

    def _next_message(self) -> bytes | None:
        if len(self._buffer) < 4:
            return None
        (size,) = struct.unpack_from("!i", self._buffer)
        start = 4
        if size == -1:
            if len(self._buffer) < 12:
                return None
            (size,), start = struct.unpack_from("!Q", self._buffer, 4), 12
        if len(self._buffer) < start + size:
            return None
        message = bytes(self._buffer[start : start + size])
        del self._buffer[: start + size]
        return message

    def connection_lost(self, exc: Exception | None) -> None:
        self._worker.lost()


class _Worker:
    """One worker process and the batches it owes answers for, oldest first."""

    def __init__(self, pool: ParsePool) -> None:
        self._pool = pool
        self.owed: deque[Batch] = deque()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.alive = True
        self.busy_since: float | None = None  # when the batch at the head of ``owed`` began
        self.timed_out = False

    async def start(self, method: str, init_args: tuple[Any, ...]) -> None:
        context: Any = multiprocessing.get_context(method)
        child_in, self._inbox = multiprocessing.Pipe(duplex=False)
        self._outbox, child_out = multiprocessing.Pipe(duplex=False)
        _enlarge_pipe(self._inbox.fileno())
        self.process = context.Process(
            target=_worker_main, args=(child_in, child_out, *init_args), daemon=True, name="crawler-parse"
        )
        self.process.start()
        child_in.close()
        child_out.close()
        loop = asyncio.get_running_loop()
        self._writer, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(self._inbox.fileno(), "wb", 0, closefd=False)
        )
        self._reader, _ = await loop.connect_read_pipe(
            lambda: _FrameReader(self), os.fdopen(self._outbox.fileno(), "rb", 0, closefd=False)
        )
        await self.ready

    def send(self, batch: Batch) -> None:
        if not self.owed:
            self.busy_since = time.monotonic()
        self.owed.append(batch)
        tasks = [task for task, _ in batch]
        payload = pickle.dumps(tasks, pickle.HIGHEST_PROTOCOL)
        self._writer.writelines((_frame_header(len(payload)), payload))

    def message(self, payload: bytes) -> None:
        if not self.ready.done():
            self.ready.set_result(None)
            return
        results: list[ParseResult] = pickle.loads(payload)
        batch = self.owed.popleft()
        self.busy_since = time.monotonic() if self.owed else None
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        self._pool.batch_done()

    def kill_for_timeout(self) -> None:
        """A callback ran past the parse deadline (lexbor is quadratic in nesting
        depth; a callback may loop): replace the process."""
        self.timed_out = True
        self.process.kill()

    def lost(self) -> None:
        """The worker's pipe closed: it exited, died (a crash in native code, the OOM
        killer) or was killed for the deadline. The batch it was working on is sent
        again one page at a time, so only the page at fault fails; its later batches
        had not started and are sent again as they were."""
        self.alive = False
        if not self.ready.done():
            self.ready.set_exception(RuntimeError("a parse worker exited while starting"))
        owed, self.owed = list(self.owed), deque()
        if owed:
            self._pool.resend(owed[0], failure=_timeout_result if self.timed_out else _crash_result)
            for batch in owed[1:]:
                self._pool.resend(batch)
        self._pool.worker_lost(self)

    def stop(self) -> None:
        if self.alive and not self._writer.is_closing():
            self._writer.write(_frame_header(0))
        self._writer.close()

    def reap(self, timeout: float) -> None:
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def discard(self) -> None:
        """Let go of a worker that died: its pipes, and its exit status."""
        self._writer.close()
        self.process.join(1.0)
        self.release()

    def release(self) -> None:
        self._reader.close()
        self._inbox.close()
        self._outbox.close()


class ParsePool:
    """Runs callbacks for ``spider`` (the main process's instance); worker processes
    build their own instance from the same class and arguments."""

    def __init__(
        self, spider: Spider, args: Mapping[str, Any], rules: LinkRules, workers: int, timeout: float = 30.0
    ) -> None:
        self._runner = CallbackRunner(spider, rules)
        self._init_args = (_spider_source(type(spider)), dict(args), rules)
        self._size = workers
        self._workers: list[_Worker] = []
        self._waiting: deque[Waiting] = deque()
        self._timeout = timeout
        self._watchdog: asyncio.Task[None] | None = None
        self._replacing: set[asyncio.Task[None]] = set()
        self._closing = False
        self.worker_restarts = 0

    async def start(self) -> None:
        """Start the worker processes and wait until each has loaded the spider."""
        await asyncio.gather(*(self._add_worker() for _ in range(self._size)))
        if self._size:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """Replace a worker whose current batch has run longer than the deadline."""
        while True:
            await asyncio.sleep(min(1.0, self._timeout / 4))
            now = time.monotonic()
            for worker in self._workers:
                started = worker.busy_since
                if worker.alive and not worker.timed_out and started and now - started > self._timeout:
                    log.error("a parse worker spent over %gs on one batch: replacing it", self._timeout)
                    worker.kill_for_timeout()

    async def _add_worker(self) -> None:
        worker = _Worker(self)
        self._workers.append(worker)
        await worker.start(self._start_method(), self._init_args)

    def _start_method(self) -> str:
        if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
            return "fork"
        if not isinstance(self._init_args[0], SpiderRef):
            raise RuntimeError("a spider class defined inside a function needs parse_workers=0 here")
        return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"

    async def parse(self, task: ParseTask) -> ParseResult:
        if is_async_callback(self._runner.spider, task.request):
            return await self._runner.run_async(task)
        if not self._workers:
            return self._runner.run(task)
        future: asyncio.Future[ParseResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((task, future, None))
        self._send_batches()
        return await future

    def resend(self, batch: Batch, failure: Callable[[], ParseResult] | None = None) -> None:
        """Queue a lost batch again, first in line. With ``failure``, each page goes
        alone, and a page that was alone already gets ``failure()`` as its result."""
        if failure is not None and len(batch) == 1:
            _, future = batch[0]
            if not future.done():
                future.set_result(failure())
            return
        self._waiting.extendleft((task, future, failure) for task, future in reversed(batch))

    def _send_batches(self) -> None:
        while self._waiting and self._workers:
            worker = min(self._workers, key=lambda w: len(w.owed) if w.alive else BATCHES_PER_WORKER)
            if not worker.alive or len(worker.owed) >= BATCHES_PER_WORKER:
                return
            worker.send(self._next_batch())

    def _next_batch(self) -> Batch:
        """Up to ``MAX_BATCH`` waiting pages; a page under suspicion goes alone."""
        batch: Batch = []
        while self._waiting and len(batch) < MAX_BATCH:
            task, future, suspect = self._waiting[0]
            if suspect is not None and batch:
                break
            self._waiting.popleft()
            batch.append((task, future))
            if suspect is not None:
                break
        return batch

    def batch_done(self) -> None:
        self._send_batches()

    def worker_lost(self, worker: _Worker) -> None:
        if self._closing:
            return
        if not worker.timed_out:
            log.error("a parse worker died (exit code %s); starting a new one", worker.process.exitcode)
        self._workers.remove(worker)
        worker.discard()
        self.worker_restarts += 1
        replacing = asyncio.get_running_loop().create_task(self._replace_worker())
        self._replacing.add(replacing)
        replacing.add_done_callback(self._replacing.discard)
        self._send_batches()

    async def _replace_worker(self) -> None:
        await self._add_worker()
        self._send_batches()

    async def close(self) -> None:
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for _, future, _ in self._waiting:
            future.cancel()
        self._waiting.clear()
        for worker in self._workers:
            worker.stop()
        workers, self._workers = self._workers, []
        await asyncio.gather(*(asyncio.to_thread(worker.reap, 5.0) for worker in workers))
        for worker in workers:
            worker.release()


def _spider_source(spider_cls: type[Spider]) -> SpiderRef | type[Spider]:
    """Forked workers get the class itself; a forkserver's workers import it by
    reference (so a class defined inside a function needs ``fork``)."""
    ref = SpiderRef.of(spider_cls)
    return ref if ref.importable else spider_cls


def _crash_result() -> ParseResult:
    result = ParseResult()
    result.errors.append("a parse worker process died while handling this page")
    result.counts["errors/worker_crash"] += 1
    return result


def _timeout_result() -> ParseResult:
    result = ParseResult()
    result.errors.append("parsing this page took longer than the parse deadline; its worker was replaced")
    result.counts["errors/parse_timeout"] += 1
    return result
