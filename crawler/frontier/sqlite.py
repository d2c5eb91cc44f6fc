"""`SqliteFrontier`: a durable `Frontier` in one SQLite file, for crawls that resume.

The database is the durable copy of the crawl; memory holds only a hot cache of
per-host state. Tables:

* ``requests``: one row per queued, delayed or leased request; ``data`` is the
  pickled `Request`; a partial index on (host, priority DESC, id) of the queued
  rows serves ``take``. ``state`` is ``'queued'`` (takeable once its host is ready),
  ``'delayed'`` (a retry, takeable from ``not_before`` on) or ``'leased'`` (taken,
  not yet done). ``done`` deletes the row (``seen`` keeps the fingerprint).
* ``seen``: every fingerprint ever queued, as a signed 64-bit integer.
* ``hosts``: politeness overrides set by ``throttle`` (``concurrency`` and
  ``interval``; NULL means the frontier's default policy) and ``paused_until``;
  ``close`` also writes each host's ``in_flight`` there, as a snapshot for
  inspection. ``last_start`` stays NULL: a host's interval is kept by its limiter
  (`HostLimiters`), in memory.
* ``meta``: job metadata (``get_meta``/``set_meta``).

Threading: one connection, used by one dedicated worker thread. Every public
method runs its whole body there (SQL *and* the host cache), so the event loop
never blocks on SQLite and calls never interleave. Calls made while the worker
is busy wait and then run together, in the order they were made, in one
transaction (group commit: one thread hop and one commit for many ``done``s);
each call returns once its transaction is committed. A call that raises
``ValueError`` (a request not in flight) or cannot pickle its request changed
nothing and fails alone.

Locking: the connection holds an exclusive lock from its first call to ``close``,
so a second frontier opening the same job (another crawl) fails with
`FrontierError` instead of putting the first one's leases back. Inspect a job
with the ``sqlite3`` shell only while no crawl has it open.

Memory: per known host, a ``_Host`` (counts and times), plus the `ReadyHosts` of
the memory backend, plus the leases in flight. Nothing grows with the number of
queued or seen requests; those live on disk.

Resuming: a new process opening an existing job calls ``open`` (or just any
method: the first call opens). ``recover`` puts every leased request back in the
queue (the process that leased it died or stopped), and forgets every stored
time: ``paused_until`` and a retry's ``not_before`` are readings of
the old process's monotonic clock, meaningless to the new one, so every host is
ready at once and every delayed retry is queued at once. Throttled policies
(``concurrency``, ``interval``) survive.

Durability: WAL with ``synchronous=NORMAL``: every committed call survives the
process being killed (a power cut may lose the last few). After a SQLite error
(raised as `FrontierError`) the cache may be out of step with the database, so
every later call raises too; reopening the job rebuilds the cache from disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import pickle
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, NamedTuple, Self, TypeVar

from .._errors import FrontierError
from .._request import Request
from .._urls import host_key
from .base import DurableFrontier, FrontierStatus, HostPolicy
from .limiters import HostLimiters
from .ready_hosts import NOWHERE, ReadyHosts

T = TypeVar("T")

DEFAULT_POLICY = HostPolicy()
_CACHE_KIB = 16 * 1024  # SQLite's page cache: bounded, and enough to keep the indexes' hot pages
# Checkpoint (copy the WAL into the database, with two fsyncs) every 32 MB of WAL rather
# than SQLite's 4 MB: adds of random fingerprints dirty a page each, and checkpointing
# each page once per many commits rather than once per commit (bench/frontier.py measures adds/s).
_CHECKPOINT_PAGES = 8192
_SEEN_CHUNK = 500  # fingerprints per INSERT ... RETURNING statement
_BUSY_TIMEOUT = 1.0  # seconds to wait for a job database another process holds

_SCHEMA_VERSION = 1  # PRAGMA user_version; 0 is a new, empty file
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    fingerprint INTEGER NOT NULL,
    host TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'delayed', 'leased')),
    not_before REAL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_take ON requests (host, priority DESC, id) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS requests_due ON requests (not_before) WHERE state = 'delayed';
CREATE TABLE IF NOT EXISTS seen (fingerprint INTEGER PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hosts (
    host TEXT PRIMARY KEY,
    in_flight INTEGER NOT NULL DEFAULT 0,
    last_start REAL,
    paused_until REAL,
    concurrency INTEGER,
    interval REAL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_INSERT = (
    "INSERT INTO requests (fingerprint, host, priority, state, not_before, data) VALUES (?, ?, ?, ?, ?, ?)"
)
# A host's best n: highest priority first, then FIFO. (One UPDATE ... WHERE id IN (this
# query) costs time in proportion to the host's whole queue: SQLite reads all of it.)
_NEXT = "SELECT id, data FROM requests WHERE host = ? AND state = 'queued' ORDER BY priority DESC, id LIMIT ?"
# Due retries go to the back of their host's queue (new ids), in the order they came due.
_WAKE = """INSERT INTO requests (fingerprint, host, priority, state, data)
    SELECT fingerprint, host, priority, 'queued', data FROM requests
    WHERE state = 'delayed' AND not_before <= ? ORDER BY not_before, id
    RETURNING host"""
_SAVE_HOST = """INSERT INTO hosts (host, in_flight, last_start, paused_until, concurrency, interval)
    VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET
    in_flight = excluded.in_flight, last_start = excluded.last_start,
    paused_until = excluded.paused_until, concurrency = excluded.concurrency,
    interval = excluded.interval"""


class _Host:
    """One host's politeness state and how many of its requests are queued (on disk)."""

    __slots__ = ("in_flight", "key", "override", "paused_until", "queued", "wake", "where")

    def __init__(self, key: str) -> None:
        self.key = key
        self.override: HostPolicy | None = None  # set by throttle; None: the default policy
        self.queued = 0
        self.in_flight = 0
        self.paused_until = -math.inf
        self.where = NOWHERE  # and ``wake``: `ReadyHosts`'s bookkeeping
        self.wake = 0.0

    def row(self) -> tuple[object, ...]:
        """Its ``hosts`` row (after ``host``); -inf is stored as NULL."""
        policy = self.override
        return (
            self.in_flight,
            None,
            _finite(self.paused_until),
            None if policy is None else policy.concurrency,
            None if policy is None else policy.interval,
        )


class _Lease:
    """The leased rows of one fingerprint, and how many of them hold a host slot."""

    __slots__ = ("host", "ids", "slots")

    def __init__(self, host: _Host) -> None:
        self.host = host
        self.ids: list[int] = []
        self.slots = 0


class SqliteFrontier(DurableFrontier):
    """A `Frontier` kept in the SQLite database at ``path`` (created if missing).

    ``policy`` applies to every host not changed by ``throttle``; its ``interval``
    is kept by ``limiters`` (made from it if not given). ``clock`` returns seconds
    (monotonic, as the event loop's ``time()``, which the limiters read); tests
    inject a fake one. Construct it anywhere (it does no I/O); ``await open()``
    connects and recovers, and any other method opens first if needed. ``close``
    keeps what is pending and in flight for the next run.
    """

    def __init__(
        self,
        path: str | Path,
        policy: HostPolicy = DEFAULT_POLICY,
        *,
        clock: Callable[[], float] = time.monotonic,
        limiters: HostLimiters | None = None,
    ) -> None:
        self._path = Path(path)
        self._policy = policy
        self._clock = clock
        self.limiters = limiters or HostLimiters(policy.interval)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-frontier")
        self._closed = False
        # Calls waiting for the batch in progress to end (owned by the event loop).
        self._pending: list[_Call[Any]] = []
        self._busy = False
        self._used = False
        # Everything below belongs to the worker thread.
        self._db: sqlite3.Connection | None = None
        self._broken: BaseException | None = None
        self._recovered = 0
        self._reset_cache()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def location(self) -> str:
        return str(self._path)

    # -- the Frontier protocol -------------------------------------------------------

    async def add(self, requests: Sequence[Request]) -> int:
        return await self._call(self._add, requests)

    async def take(self, limit: int) -> list[Request]:
        return await self._call(self._take, limit)

    async def fetched(self, request: Request, *, sent: bool = True) -> None:
        if not sent:  # the limiters belong to the event loop's thread
            self.limiters.give_back(host_key(request.url))
        await self._call(self._fetched, request)

    async def done(self, request: Request) -> None:
        await self._call(self._done, request)

    async def retry(self, request: Request, delay: float) -> None:
        await self._call(self._retry, request, delay)

    async def throttle(
        self, host: str, *, policy: HostPolicy | None = None, pause: float | None = None
    ) -> None:
        if policy is not None:
            self.limiters.set_interval(host, policy.interval)
        await self._call(self._throttle, host, policy, pause)

    async def status(self) -> FrontierStatus:
        return await self._call(self._status)

    async def close(self) -> None:
        """Finish the calls already made, commit, close the database and stop the
        worker thread. Idempotent; any later call raises `FrontierError`."""
        if self._closed:
            return
        if not self._used:  # never opened: nothing to close
            self._closed = True
            self._executor.shutdown(wait=True)
            return
        barrier = self._call(_nothing)  # resolves once every earlier call is committed
        self._closed = True
        try:
            with contextlib.suppress(FrontierError):
                await barrier
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        finally:
            self._executor.shutdown(wait=True)

    # -- job lifecycle and metadata ----------------------------------------------------

    async def open(self) -> int:
        """Connect (creating the tables), ``recover``, and load the host cache; return
        how many leases the recovery put back. Idempotent: later calls return the
        same number without doing anything."""
        return await self._call(lambda: self._recovered)

    async def recover(self) -> int:
        """Put every leased request back in the queue, forget every stored time (see
        the module docstring), rebuild the host cache from disk, and return how many
        leases were put back. ``open`` does this first; calling it again also puts
        back this process's own leases, so do so only when none is being worked on."""
        return await self._call(self._recover)

    async def get_meta(self, key: str) -> str | None:
        return await self._call(self._get_meta, key)

    async def set_meta(self, key: str, value: str) -> None:
        await self._call(self._set_meta, key, value)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _call(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``function(*args)`` for the worker thread; the future resolves once the
        batch it ran in is committed. Calls made while a batch runs form the next one."""
        if self._closed:
            raise FrontierError(f"the frontier at {self._path} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._used = True
        self._pending.append(_Call(function, args, future))
        if not self._busy:
            self._submit(loop)
        return future

    def _submit(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending, []
        self._busy = True
        job = loop.run_in_executor(self._executor, self._run_batch, batch)
        job.add_done_callback(lambda job: self._finish(loop, batch, job))

    def _finish(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Call[Any]], job: asyncio.Future[list[_Outcome]]
    ) -> None:
        """On the event loop: hand out the batch's outcomes and start the next batch."""
        self._busy = False
        error = FrontierError("the frontier's worker was cancelled") if job.cancelled() else job.exception()
        outcomes = job.result() if error is None else [(False, error)] * len(batch)
        for call, (ok, value) in zip(batch, outcomes, strict=True):
            if call.future.cancelled():
                if ok and call.function == self._take and value:  # nobody got these leases
                    put_back = _Call(self._put_back, (value,), _ignored(loop.create_future()))
                    self._pending.insert(0, put_back)
                continue
            if ok:
                call.future.set_result(value)
            else:
                call.future.set_exception(value)
        if self._pending:
            self._submit(loop)

    # -- everything below runs on the worker thread --------------------------------------

    def _run_batch(self, batch: list[_Call[Any]]) -> list[_Outcome]:
        """Run ``batch`` in one transaction (opening the database first if needed). A
        call that raises ``ValueError`` or the like changed nothing and fails alone; a
        SQLite error rolls back the batch, fails all of it, and leaves the cache in
        doubt, so the frontier refuses any further work."""
        try:
            if self._broken is not None:
                raise FrontierError(f"{self._failure(self._broken)} (an earlier failure)") from self._broken
            opening = self._db is None
            if opening:
                self._open()
            with self._transaction():
                if opening:
                    self._recovered = self._recover()
                return [_run_one(call) for call in batch]
        except (sqlite3.Error, FrontierError) as error:
            if self._broken is None:
                self._broken = error
            return [(False, self._failure(error)) for _ in batch]

    def _failure(self, error: BaseException) -> FrontierError:
        if isinstance(error, sqlite3.Error):
            message = f"job database {self._path}: {_explain(error)}"
        else:
            message = str(error)
        failure = FrontierError(message)
        failure.__cause__ = error
        return failure

    @property
    def _conn(self) -> sqlite3.Connection:
        assert self._db is not None
        return self._db

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit (we BEGIN ourselves); a short timeout: a busy job is a running crawl.
        db = sqlite3.connect(self._path, timeout=_BUSY_TIMEOUT, isolation_level=None)
        try:
            # One process per job: the first transaction takes a lock held until close,
            # so a second crawl of the job cannot requeue this one's leases.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise FrontierError(f"job database {self._path}: cannot use WAL mode ({mode})")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
            _check_version(db, self._path)
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        self._db = db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _recover(self) -> int:
        db = self._conn
        leased: int = db.execute("UPDATE requests SET state = 'queued' WHERE state = 'leased'").rowcount
        db.execute("UPDATE requests SET state = 'queued', not_before = NULL WHERE state = 'delayed'")
        db.execute("UPDATE hosts SET in_flight = 0, last_start = NULL, paused_until = NULL")
        self._load()
        return leased

    def _reset_cache(self) -> None:
        self._hosts: dict[str, _Host] = {}
        self._ready: ReadyHosts[_Host] = ReadyHosts(self._ready_at)
        self._leases: dict[int, _Lease] = {}
        self._claimed: set[_Host] = set()  # hosts claimed in the limiters by a take
        self._queued = 0
        self._delayed = 0
        self._next_due: float | None = None  # the earliest ``not_before`` of a delayed row
        self._in_flight = 0
        self._seen = 0

    def _load(self) -> None:
        """Rebuild the host cache from the database (after ``recover``: nothing leased)."""
        self._reset_cache()
        db = self._conn
        for key, concurrency, interval in db.execute(
            "SELECT host, concurrency, interval FROM hosts WHERE concurrency IS NOT NULL"
        ):
            self._host(key).override = HostPolicy(concurrency, interval)
            self.limiters.set_interval(key, interval)
        for key, count in db.execute(
            "SELECT host, COUNT(*) FROM requests WHERE state = 'queued' GROUP BY host"
        ):
            self._host(key).queued = count
            self._queued += count
        self._delayed, self._next_due = db.execute(
            "SELECT COUNT(*), MIN(not_before) FROM requests WHERE state = 'delayed'"
        ).fetchone()
        self._seen = db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]
        now = self._clock()
        for host in self._hosts.values():
            self._ready.place(host, now)

    def _close(self) -> None:
        if self._db is None:
            return
        try:
            if self._broken is None:
                with self._transaction() as db:
                    db.executemany(_SAVE_HOST, ((h.key, *h.row()) for h in self._hosts.values()))
        finally:
            self._db.close()
            self._db = None

    def _get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- add and take ----------------------------------------------------------------

    def _add(self, requests: Sequence[Request]) -> int:
        if not requests:
            return 0
        fingerprints = [_signed(r.fingerprint) for r in requests]
        db = self._conn
        db.execute("SAVEPOINT add_requests")  # a request that cannot be pickled undoes the add
        try:
            new = _record_seen(db, fingerprints)
            seen_added = len(new)
            rows = []
            for request, fp in zip(requests, fingerprints, strict=True):
                if fp in new:
                    new.discard(fp)
                elif not request.dont_filter:
                    continue
                rows.append((fp, host_key(request.url), request.priority, "queued", None, _dump(request)))
            db.executemany(_INSERT, rows)
        except Exception:
            db.execute("ROLLBACK TO add_requests")
            raise
        finally:
            db.execute("RELEASE add_requests")
        self._seen += seen_added
        self._queue_counts(row[1] for row in rows)
        return len(rows)

    def _queue_counts(self, keys: Iterable[str]) -> None:
        """Count newly queued rows of the hosts ``keys`` (one per row) and place the hosts."""
        touched: dict[str, _Host] = {}
        for key in keys:
            host = touched.get(key)
            if host is None:
                host = touched[key] = self._host(key)
            host.queued += 1
            self._queued += 1
        now = self._clock()
        for host in touched.values():
            self._ready.place(host, now)

    def _take(self, limit: int) -> list[Request]:
        now = self._clock()
        self._wake_up(now)
        plan = self._plan(limit, now)
        if not plan:
            return []
        wanted: dict[_Host, int] = {}
        for host in plan:
            wanted[host] = wanted.get(host, 0) + 1
        try:  # the cache has changed: any failure from here on breaks the frontier
            rows = {host: _lease_rows(self._conn, host, n) for host, n in wanted.items()}
            return self._lease(plan, rows)
        except (sqlite3.Error, FrontierError):
            raise
        except Exception as error:
            raise FrontierError(f"job database {self._path}: cannot take requests: {error}") from error

    def _lease(self, plan: list[_Host], rows: dict[_Host, list[tuple[int, bytes]]]) -> list[Request]:
        """Unpickle the leased rows in the order of ``plan`` and record their leases."""
        taken = []
        for host in plan:  # the round-robin order of the plan, each host's rows in queue order
            row_id, data = rows[host].pop()
            request: Request = pickle.loads(data)
            self.limiters.claim(host.key, request.fingerprint)
            lease = self._leases.get(request.fingerprint)
            if lease is None:
                lease = self._leases[request.fingerprint] = _Lease(host)
            lease.ids.append(row_id)
            lease.slots += 1
            taken.append(request)
        return taken

    def _plan(self, limit: int, now: float) -> list[_Host]:
        """Start up to ``limit`` requests in the cache, round-robin over the ready hosts
        (as the memory backend does); return their hosts, one per request, in order."""
        return self._ready.take(limit, now, self._start)

    def _start(self, host: _Host, now: float) -> _Host:
        """Count one request of ``host`` as started at ``now`` (in the cache only)."""
        host.queued -= 1
        host.in_flight += 1
        self.limiters.claim(host.key, 0)  # ``_lease`` names the request
        self._claimed.add(host)
        self._queued -= 1
        self._in_flight += 1
        return host

    def _wake_up(self, now: float) -> None:
        """Queue due retries, place again the hosts whose claim ended (their request
        started or was given back), then wake the due hosts."""
        if self._next_due is not None and self._next_due <= now:
            self._queue_due_retries(now)
        if self._claimed:
            ended = [host for host in self._claimed if self.limiters.ready_at(host.key) is not None]
            for host in ended:
                self._claimed.discard(host)
                self._ready.place(host, now)
        self._ready.wake_up(now)

    def _queue_due_retries(self, now: float) -> None:
        db = self._conn
        keys = [key for (key,) in db.execute(_WAKE, (now,)).fetchall()]
        db.execute("DELETE FROM requests WHERE state = 'delayed' AND not_before <= ?", (now,))
        self._next_due = db.execute(
            "SELECT MIN(not_before) FROM requests WHERE state = 'delayed'"
        ).fetchone()[0]
        self._delayed -= len(keys)
        self._queue_counts(keys)

    # -- leases ------------------------------------------------------------------------

    def _fetched(self, request: Request) -> None:
        lease = self._leases.get(request.fingerprint)
        if lease is None or lease.slots == 0:
            raise ValueError(f"request holds no host slot: {request.method} {request.url}")
        lease.slots -= 1
        self._free_slot(lease.host)

    def _done(self, request: Request) -> None:
        lease = self._lease_of(request)
        self._conn.execute("DELETE FROM requests WHERE id = ?", (lease.ids[-1],))
        self._release(request.fingerprint, lease)

    def _retry(self, request: Request, delay: float) -> None:
        lease = self._lease_of(request)
        due = self._clock() + max(delay, 0.0)
        row = (_signed(request.fingerprint), host_key(request.url), request.priority, "delayed", due)
        data = _dump(request)
        db = self._conn  # a new row: retries come due in the order they were made
        db.execute("DELETE FROM requests WHERE id = ?", (lease.ids[-1],))
        db.execute(_INSERT, (*row, data))
        self._release(request.fingerprint, lease)
        self._delayed += 1
        self._next_due = due if self._next_due is None else min(self._next_due, due)

    def _put_back(self, requests: list[Request]) -> None:
        """Return leases that a cancelled ``take`` could not hand out."""
        for request in requests:
            self._retry(request, 0.0)

    def _lease_of(self, request: Request) -> _Lease:
        lease = self._leases.get(request.fingerprint)
        if lease is None:
            raise ValueError(f"request is not in flight: {request.method} {request.url}")
        return lease

    def _release(self, fp: int, lease: _Lease) -> None:
        """End the lease of ``lease.ids[-1]`` (its row is gone), and its host slot if
        ``fetched`` did not free it."""
        lease.ids.pop()
        self.limiters.give_back(lease.host.key, fp)  # if it never started
        if lease.slots > len(lease.ids):
            lease.slots -= 1
            self._free_slot(lease.host)
        if not lease.ids:
            del self._leases[fp]
        self._in_flight -= 1

    def _free_slot(self, host: _Host) -> None:
        host.in_flight -= 1
        self._ready.place(host, self._clock())

    # -- throttle and status -------------------------------------------------------------

    def _throttle(self, key: str, policy: HostPolicy | None, pause: float | None) -> None:
        now = self._clock()
        host = self._host(key)
        if policy is not None:
            host.override = policy
        if pause is not None:
            host.paused_until = max(host.paused_until, now + pause)
        self._conn.execute(_SAVE_HOST, (key, *host.row()))
        self._ready.place(host, now)

    def _status(self) -> FrontierStatus:
        now = self._clock()
        self._wake_up(now)
        return FrontierStatus(
            pending=self._queued + self._delayed,
            in_flight=self._in_flight,
            seen=self._seen,
            wait=self._ready.wait(now, self._next_due),
        )

    # -- the host cache ----------------------------------------------------------------

    def _host(self, key: str) -> _Host:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(key)
        return host

    def _ready_at(self, host: _Host) -> float | None:
        """When ``host`` may start its next request; ``None`` while it has nothing
        queued or is at its concurrency limit."""
        policy = host.override or self._policy
        if not host.queued or host.in_flight >= policy.concurrency:
            return None
        free = self.limiters.ready_at(host.key)
        return None if free is None else max(free, host.paused_until)


class _Call(NamedTuple, Generic[T]):
    function: Callable[..., T]
    args: tuple[Any, ...]
    future: asyncio.Future[T]


_Outcome = tuple[bool, Any]  # (True, result) or (False, exception)


def _run_one(call: _Call[Any]) -> _Outcome:
    """Run one call of a batch; SQLite's errors (and ours) abort the whole batch."""
    try:
        return True, call.function(*call.args)
    except (sqlite3.Error, FrontierError):
        raise
    except Exception as error:
        return False, error


def _nothing() -> None:
    pass


def _ignored(future: asyncio.Future[T]) -> asyncio.Future[T]:
    """``future``, with its outcome marked as retrieved (nobody awaits it)."""
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


def _record_seen(db: sqlite3.Connection, fingerprints: list[int]) -> set[int]:
    """Insert ``fingerprints`` into ``seen``; return those that were not there."""
    new: set[int] = set()
    for start in range(0, len(fingerprints), _SEEN_CHUNK):
        chunk = fingerprints[start : start + _SEEN_CHUNK]
        values = ",".join(["(?)"] * len(chunk))
        sql = f"INSERT OR IGNORE INTO seen (fingerprint) VALUES {values} RETURNING fingerprint"
        new.update(fp for (fp,) in db.execute(sql, chunk).fetchall())
    return new


def _lease_rows(db: sqlite3.Connection, host: _Host, n: int) -> list[tuple[int, bytes]]:
    """Lease the best ``n`` queued rows of ``host``; return ``(id, data)`` in reverse
    queue order (so that ``pop()`` gives the next one)."""
    rows: list[tuple[int, bytes]] = db.execute(_NEXT, (host.key, n)).fetchall()
    if len(rows) != n:
        raise FrontierError(f"host {host.key}: {n} requests expected in the queue, found {len(rows)}")
    db.executemany("UPDATE requests SET state = 'leased' WHERE id = ?", [(row_id,) for row_id, _ in rows])
    rows.reverse()
    return rows


def _signed(fingerprint: int) -> int:
    """The unsigned 64-bit ``fingerprint`` as SQLite's signed 64-bit integer."""
    return fingerprint - (1 << 64) if fingerprint >= 1 << 63 else fingerprint


def _check_version(db: sqlite3.Connection, path: Path) -> None:
    """Stamp a new database with the schema version; refuse one from a newer crawler."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > _SCHEMA_VERSION:
        raise FrontierError(f"job database {path} has schema {version}; this crawler knows {_SCHEMA_VERSION}")
    if version < _SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")


def _explain(error: sqlite3.Error) -> str:
    if "locked" in str(error):
        return f"{error} (is another crawl running this job?)"
    return str(error)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _dump(request: Request) -> bytes:
    return pickle.dumps(request, pickle.HIGHEST_PROTOCOL)
