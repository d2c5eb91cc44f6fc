"""The parse executor: a ``concurrent.futures.Executor`` of forked worker processes.

The engine parses with ``await loop.run_in_executor(executor, parse_page, task)``;
``ParseExecutor`` is the default executor, and any other (``ProcessPoolExecutor``)
can take its place. What it does differently, and why:

- The event loop drives each worker's two pipes itself (``add_reader`` and
  ``add_writer``): no manager or feeder threads fighting the loop for the GIL
  (a large share of the main process's time per page under ``ProcessPoolExecutor``),
  and no forkserver or resource-tracker processes. ``submit`` must therefore be
  called on the loop's thread to take the fast path; other threads are handed over.
- Workers are forked before the crawl starts, so they share the main process's
  memory pages; when other threads already run, a forkserver is used instead,
  because forking a threaded process is unsafe.
- A process round trip costs about as much main-process CPU as parsing a page, so
  calls travel in batches: calls submitted in the same loop turn go out together,
  spread over the idle workers, and while workers are busy the calls that queue up
  travel together (up to ``MAX_BATCH``).
- Bytes travel out of band (pickle protocol 5): the pickle holds the small parts,
  and ``os.writev`` sends each page body from its own memory, with no copy.
- When every worker is busy and a full batch waits, a call that ``may_run_here``
  allows runs at once in the calling thread: with one worker and large pages the
  worker is the bottleneck while the main process idles.
- A batch that runs past the parse deadline, or whose worker dies, costs only the
  page at fault: the worker is replaced and the batch sent again one page at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import gc
import itertools
import logging
import math
import multiprocessing
import os
import pickle
import signal
import struct
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, Executor, Future, InvalidStateError
from multiprocessing import forkserver, resource_tracker
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger("crawler.pool")

MAX_BATCH = 16
# Allocations between two collections of the youngest generation, in a parse worker
# and in the main process while crawls run (the interpreter's default is 700).
YOUNG_THRESHOLD = 20_000
MAX_BATCH_BYTES = 4 << 20  # by ``weigh``: a worker holds a batch twice while unpacking it
BATCHES_PER_WORKER = 2
PIPE_SIZE = 1 << 20
READ_SIZE = 1 << 20
IOV_MAX = 512
PR_SET_PDEATHSIG = 1
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}

Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]
Batch = list[tuple[Call, "Future[Any]"]]
# A call waiting for a worker; for a call under suspicion (its batch was lost), the
# error it gets if it is lost again, alone.
Waiting = tuple[Call, "Future[Any]", "Callable[[], BaseException] | None"]
Outcome = tuple[bool, Any]  # (True, result) or (False, exception)


class WorkerStartError(RuntimeError):
    """A parse worker failed to start (its initializer raised, or it died)."""


class WorkerCrashed(BrokenExecutor):
    """The worker process running this call died (a crash in native code, the OOM
    killer); the executor replaced it."""


class CallTimedOut(TimeoutError):
    """This call ran past the executor's deadline; its worker was replaced."""


# --- the worker process --------------------------------------------------------------


def _worker_main(
    inbox: Connection, outbox: Connection, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]
) -> None:
    """A worker: run the initializer, then answer batches until told to stop.
    Ctrl-C and SIGTERM are the main process's business: they stay blocked (as the
    parent left them while forking) until they are ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _die_with_parent()
    try:
        if initializer is not None:
            initializer(*initargs)
    except BaseException as exc:
        outbox.send_bytes(b"failed:" + _describe(exc).encode("utf-8", "replace"))
        return
    _settle_collector()
    outbox.send_bytes(b"ready")
    with contextlib.suppress(EOFError):  # the main process closed the pipe: it is gone
        while message := inbox.recv_bytes():
            outbox.send_bytes(_dumps_outcomes([_call(call) for call in _unpack(message)]))


def _settle_collector() -> None:
    """A worker only parses: what it inherited and loaded is never garbage (frozen,
    full collections skip it, and its pages stay shared with the process it was
    forked from), and a page's objects die young, freed by their reference counts,
    so young collections come every `YOUNG_THRESHOLD` allocations, not every 700."""
    gc.freeze()
    space_young_collections()


def space_young_collections() -> tuple[int, int, int]:
    """Collect the youngest generation every `YOUNG_THRESHOLD` allocations (or as
    rarely as it was set to already); the thresholds before, to restore them."""
    before = gc.get_threshold()
    gc.set_threshold(max(YOUNG_THRESHOLD, before[0]), *before[1:])
    return before


def _call(call: Call) -> Outcome:
    fn, args, kwargs = call
    try:
        return True, fn(*args, **kwargs)
    except Exception as exc:
        return False, exc


def _dumps_outcomes(outcomes: list[Outcome]) -> bytes:
    try:
        return pickle.dumps(outcomes, pickle.HIGHEST_PROTOCOL)
    except Exception:  # an unpicklable result or exception: say what it was instead
        return pickle.dumps([_picklable(outcome) for outcome in outcomes], pickle.HIGHEST_PROTOCOL)


def _picklable(outcome: Outcome) -> Outcome:
    try:
        pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return False, RuntimeError(f"the parse result could not be sent back: {exc!r}")
    return outcome


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the process that started it dies, even by
    ``kill -9``. Waiting for the end of the inbox pipe is not enough: a forked worker
    inherits the crawl's end of its own inbox (and of the other workers' pipes), so
    it would never see the pipe close and would wait forever."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# --- messages ------------------------------------------------------------------------
# Framing is ``multiprocessing.Connection``'s (the worker uses ``recv_bytes`` and
# ``send_bytes``). A batch of calls is: buffer count, the sizes of the pickle and of
# each out-of-band buffer, the pickle, the buffers.


def _frame_header(size: int) -> bytes:
    return struct.pack("!iQ", -1, size) if size > 0x7FFFFFFF else struct.pack("!i", size)


def _pack(calls: list[Call]) -> list[bytes | memoryview]:
    """The parts of one framed message, for ``os.writev``: page bodies are not copied."""
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(calls, protocol=5, buffer_callback=buffers.append)
    views = [buffer.raw() for buffer in buffers]
    sizes = (len(payload), *(view.nbytes for view in views))
    index = struct.pack(f"!I{len(sizes)}Q", len(views), *sizes)
    return [_frame_header(len(index) + sum(sizes)), index, payload, *views]


def _unpack(message: bytes) -> list[Call]:
    view = memoryview(message)
    (count,) = struct.unpack_from("!I", view)
    sizes = struct.unpack_from(f"!{count + 1}Q", view, 4)
    offsets = list(itertools.accumulate(sizes, initial=4 + 8 * (count + 1)))
    parts = [view[start:end] for start, end in itertools.pairwise(offsets)]
    calls: list[Call] = pickle.loads(parts[0], buffers=parts[1:])
    return calls


def _split_frames(buffer: bytearray) -> Iterator[bytes]:
    """Take each complete message off the front of ``buffer``."""
    while len(buffer) >= 4:
        (size,) = struct.unpack_from("!i", buffer)
        start = 4
        if size == -1:
            if len(buffer) < 12:
                return
            (size,), start = struct.unpack_from("!Q", buffer, 4), 12
        if len(buffer) < start + size:
            return
        message = bytes(buffer[start : start + size])
        del buffer[: start + size]
        yield message


def _enlarge_pipe(fd: int) -> None:
    """A batch of pages is several hundred KB and a pipe holds 64 KB by default: the
    worker would wait for the event loop to refill it eight times per batch. Linux
    lets a pipe grow to ``/proc/sys/fs/pipe-max-size`` (1 MiB by default)."""
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


# --- one worker, seen from the main process -------------------------------------------


class _Worker:
    """One worker process, its pipes, and the batches it owes answers for, oldest first."""

    def __init__(self, executor: ParseExecutor, loop: asyncio.AbstractEventLoop) -> None:
        self._executor = executor
        self._loop = loop
        self.owed: deque[Batch] = deque()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.alive = True
        self.busy_since: float | None = None  # when the batch at the head of ``owed`` began
        self.timed_out = False
        self.process: Any = None
        self._pipes: list[Connection] = []  # our ends: to the worker, from the worker
        self._unsent: deque[memoryview] = deque()  # what the pipe had no room for yet
        self._writing = False
        self._received = bytearray()

    def start(self, method: str, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
        child_in, to_worker = multiprocessing.Pipe(duplex=False)
        from_worker, child_out = multiprocessing.Pipe(duplex=False)
        self._pipes = [to_worker, from_worker]
        _enlarge_pipe(to_worker.fileno())
        context: Any = multiprocessing.get_context(method)
        self.process = context.Process(
            target=_worker_main, args=(child_in, child_out, initializer, initargs), daemon=True
        )
        self.process.name = "crawler-parse"
        if method == "forkserver":
            resource_tracker.ensure_running()  # it unblocks Ctrl-C as it returns: before ours
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # children inherit the mask
        try:
            if method == "forkserver":  # Ctrl-C would kill it too, while it starts
                forkserver.ensure_running()
            self.process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            child_in.close()
            child_out.close()
        os.set_blocking(to_worker.fileno(), False)
        os.set_blocking(from_worker.fileno(), False)
        self._loop.add_reader(from_worker.fileno(), self._on_readable)

    def send(self, batch: Batch) -> None:
        if not self.owed:
            self.busy_since = time.monotonic()
        self.owed.append(batch)
        self._unsent.extend(memoryview(part) for part in _pack([call for call, _ in batch]))
        if not self._writing:
            self._write()

    def _write(self) -> None:
        """Write what the pipe takes now; the loop calls again when it has room."""
        fd = self._pipes[0].fileno()
        while self._unsent:
            try:
                written = os.writev(fd, list(itertools.islice(self._unsent, IOV_MAX)))
            except BlockingIOError:
                break
            except OSError:  # the worker is gone: its reader sees the end and says so
                self._unsent.clear()
                break
            self._consume(written)
        self._want_writable(bool(self._unsent))

    def _consume(self, written: int) -> None:
        while written:
            head = self._unsent[0]
            if written < head.nbytes:
                self._unsent[0] = head[written:]
                return
            written -= head.nbytes
            self._unsent.popleft()

    def _want_writable(self, wanted: bool) -> None:
        if wanted and not self._writing:
            self._loop.add_writer(self._pipes[0].fileno(), self._write)
        elif self._writing and not wanted:
            self._loop.remove_writer(self._pipes[0].fileno())
        self._writing = wanted

    def read_answers(self) -> None:
        """Take in whatever answers the worker has written, without waiting."""
        self._on_readable()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._pipes[1].fileno(), READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        self._received += data
        for message in _split_frames(self._received):
            self._message(message)

    def _message(self, payload: bytes) -> None:
        if not self.ready.done():
            if payload == b"ready":
                self.ready.set_result(None)
            else:
                reason = payload.removeprefix(b"failed:").decode("utf-8", "replace")
                self.ready.set_exception(WorkerStartError(f"a parse worker failed to start: {reason}"))
            return
        outcomes: list[Outcome] = pickle.loads(payload)
        batch = self.owed.popleft()
        self.busy_since = time.monotonic() if self.owed else None
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)
        self._executor.batch_done()

    def kill_for_timeout(self) -> None:
        """A callback ran past the parse deadline (lexbor is quadratic in nesting
        depth; a callback may loop): replace the process."""
        self.timed_out = True
        self.process.kill()

    def _lost(self) -> None:
        """The worker's pipe closed: it exited, died (a crash in native code, the OOM
        killer) or was killed for the deadline. The batch it was working on is sent
        again one call at a time, so only the call at fault fails; its later batches
        had not started and are sent again as they were."""
        self.alive = False
        self._detach()
        if not self.ready.done():
            self.ready.set_exception(WorkerStartError("a parse worker exited while starting"))
        owed, self.owed = list(self.owed), deque()
        if owed:
            failure = _timed_out if self.timed_out else _crashed
            self._executor.resend(owed[0], failure=failure)
            for batch in owed[1:]:
                self._executor.resend(batch)
        self._executor.worker_lost(self)

    def _detach(self) -> None:
        """Stop watching the pipes (before they close: uvloop and epoll both need it)."""
        if self._pipes:
            self._loop.remove_reader(self._pipes[1].fileno())
            self._want_writable(False)
            self._unsent.clear()

    def stop(self) -> None:
        """Ask the worker to exit once it has answered what it owes; one still being
        fed a batch would wait for the rest forever: it is killed."""
        if self.alive and self._unsent:
            self.process.kill()
        elif self.alive and self._pipes:
            with contextlib.suppress(OSError):  # full: then ``reap`` kills it
                os.write(self._pipes[0].fileno(), _frame_header(0))
        self._detach()

    def reap(self, timeout: float) -> None:
        if self.process is None or self.process.pid is None:
            return
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def release(self) -> None:
        """Close our ends of the pipes (after ``_detach``)."""
        for pipe in self._pipes:
            pipe.close()
        self._pipes = []

    def unsettled(self) -> Iterator[Future[Any]]:
        return (future for batch in self.owed for _, future in batch)


def _settle(future: Future[Any], outcome: Outcome) -> None:
    ok, value = outcome
    with contextlib.suppress(InvalidStateError):  # cancelled meanwhile
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


# --- the executor --------------------------------------------------------------------


class ParseExecutor(Executor):
    """Runs calls in ``workers`` processes started by ``start()`` (on the event loop
    that will submit). Each worker runs ``initializer(*initargs)`` first; a call
    batch that runs longer than ``timeout`` seconds gets its worker replaced.
    ``may_run_here(fn, args)`` says whether a call is cheap enough to run in the
    calling thread when every worker is busy (``None``: never); ``weigh(fn, args)``
    is a call's size in bytes, so that a batch stays under ``MAX_BATCH_BYTES``."""

    def __init__(
        self,
        workers: int,
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        timeout: float = 30.0,
        may_run_here: Callable[[Callable[..., Any], tuple[Any, ...]], bool] | None = None,
        weigh: Callable[[Callable[..., Any], tuple[Any, ...]], int] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a parse executor needs at least one worker")
        self._size = workers
        self._initializer = initializer
        self._initargs = initargs
        self._timeout = timeout
        self._may_run_here = may_run_here
        self._weigh = weigh
        self._workers: list[_Worker] = []
        self._waiting: deque[Waiting] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._flush_scheduled = False
        self._watchdog: asyncio.Task[None] | None = None
        self._replacing: set[asyncio.Task[None]] = set()
        self._closing = False
        self.ran_here = 0

    async def start(self) -> None:
        """Start the worker processes and wait until each has run its initializer."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        try:
            await asyncio.gather(*(self._add_worker() for _ in range(self._size)))
        except BaseException:
            await self.aclose()
            raise
        self._watchdog = self._loop.create_task(self._watch())

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._closing:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if self._loop is None:
            raise RuntimeError("start the parse executor before submitting to it")
        future: Future[Any] = Future()
        call: Call = (fn, args, kwargs)
        if threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._enqueue, call, future)
        elif self._saturated() and self._may_run_here is not None and self._may_run_here(fn, args):
            self._run_here(call, future)
        else:
            self._enqueue(call, future)
        return future

    def _saturated(self) -> bool:
        """Every worker holds all the batches it may, and a full batch waits besides."""
        if len(self._waiting) < MAX_BATCH or not self._all_owe_their_fill():
            return False
        # The answers may be in the pipes already, unread while the loop was busy:
        # read them now (a read that finds nothing costs one syscall), and look again.
        for worker in list(self._workers):  # one found dead leaves the list meanwhile
            if worker.alive:
                worker.read_answers()
        return len(self._waiting) >= MAX_BATCH and self._all_owe_their_fill()

    def _all_owe_their_fill(self) -> bool:
        return all(len(worker.owed) >= BATCHES_PER_WORKER for worker in self._workers if worker.alive)

    def _run_here(self, call: Call, future: Future[Any]) -> None:
        future.set_running_or_notify_cancel()
        _settle(future, _call(call))
        self.ran_here += 1

    def _enqueue(self, call: Call, future: Future[Any]) -> None:
        self._waiting.append((call, future, None))
        if not self._flush_scheduled:  # calls submitted in this loop turn travel together
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._send_scheduled)

    def _send_scheduled(self) -> None:
        self._flush_scheduled = False
        self._send_batches()

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
        assert self._loop is not None
        worker = _Worker(self, self._loop)
        self._workers.append(worker)
        worker.start(_start_method(self._initializer), self._initializer, self._initargs)
        await worker.ready

    def resend(self, batch: Batch, failure: Callable[[], BaseException] | None = None) -> None:
        """Queue a lost batch again, first in line. With ``failure``, each call goes
        alone, and a call that was alone already fails with ``failure()``."""
        if failure is not None and len(batch) == 1:
            _settle(batch[0][1], (False, failure()))
            return
        self._waiting.extendleft((call, future, failure) for call, future in reversed(batch))

    def _send_batches(self) -> None:
        while self._waiting:
            free = [w for w in self._workers if w.alive and len(w.owed) < BATCHES_PER_WORKER]
            if not free:
                return
            worker = min(free, key=lambda w: len(w.owed))
            slots = sum(BATCHES_PER_WORKER - len(w.owed) for w in free)
            batch = self._next_batch(min(MAX_BATCH, math.ceil(len(self._waiting) / slots)))
            if batch:
                worker.send(batch)

    def _next_batch(self, size: int) -> Batch:
        """Up to ``size`` waiting calls that were not cancelled, and up to
        ``MAX_BATCH_BYTES``; a call under suspicion goes alone."""
        batch: Batch = []
        weight = 0
        while self._waiting and len(batch) < size:
            call, future, suspect = self._waiting[0]
            weight += self._weigh(call[0], call[1]) if self._weigh is not None else 0
            if batch and (suspect is not None or weight > MAX_BATCH_BYTES):
                break
            self._waiting.popleft()
            if future.running() or future.set_running_or_notify_cancel():
                batch.append((call, future))
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
        worker.process.join(1.0)
        worker.release()
        assert self._loop is not None
        replacing = self._loop.create_task(self._replace_worker())
        self._replacing.add(replacing)
        replacing.add_done_callback(self._replacing.discard)
        self._send_batches()

    async def _replace_worker(self) -> None:
        try:
            await self._add_worker()
        except Exception as exc:
            log.error("could not replace a parse worker: %s", exc)
            self._workers = [worker for worker in self._workers if worker.alive]
            if not self._workers:
                self._fail_waiting(BrokenExecutor("every parse worker is gone"))
            return
        self._send_batches()

    def _fail_waiting(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, deque()
        for _, future, _ in waiting:
            if future.running() or future.set_running_or_notify_cancel():
                _settle(future, (False, error))

    async def aclose(self) -> None:
        """Shut down from the event loop: workers finish what they hold, then exit."""
        workers = self._begin_shutdown()
        await asyncio.gather(*(asyncio.to_thread(worker.reap, 5.0) for worker in workers))
        self._end_shutdown(workers)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        workers = self._begin_shutdown()
        if wait:
            for worker in workers:
                worker.reap(5.0)
        self._end_shutdown(workers)

    def _begin_shutdown(self) -> list[_Worker]:
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for task in self._replacing:
            task.cancel()
        for _, future, _ in self._waiting:
            future.cancel()
        self._waiting.clear()
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()
        return workers

    @staticmethod
    def _end_shutdown(workers: Iterable[_Worker]) -> None:
        gone = BrokenExecutor("the parse executor was shut down")
        for worker in workers:
            for future in worker.unsettled():
                _settle(future, (False, gone))
            worker.release()


def _start_method(initializer: Callable[..., Any] | None) -> str:
    """``fork`` while the process has one thread; otherwise ``forkserver``, whose
    workers get the initializer by pickle (so it must be importable)."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    try:
        pickle.dumps(initializer)
    except Exception:
        raise RuntimeError("a spider class defined inside a function needs parse_workers=0 here") from None
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _crashed() -> BaseException:
    return WorkerCrashed("a parse worker process died while handling this page")


def _timed_out() -> BaseException:
    return CallTimedOut("parsing this page took longer than the parse deadline; its worker was replaced")
