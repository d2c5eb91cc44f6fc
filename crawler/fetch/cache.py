"""The HTTP cache for spider development (``--cache DIR``): responses are stored on
disk and replayed on the next run, so tuning a spider's selectors does not hit the
site again.

``HttpCache.wrap`` wraps the engine's fetch function, which robots.txt fetches go
through too, so a replay works fully offline. Entries are keyed by the request's
fingerprint: method, canonical URL and body (request headers are not part of the
key, as in Scrapy). A hit that has not expired is returned as it was stored (URL,
status, headers, decoded body) without touching the network. A miss is fetched and
stored, unless its status is in ``ignore_status`` (by default 408, 429, 500, 502,
503 and 504: server errors and rate limits are worth asking again next run). Fetch
errors are never stored. Entries older than ``expiry`` seconds are misses (0: they
never expire, as Scrapy's ``HTTPCACHE_EXPIRATION_SECS``).

Layout and format: ``DIR/ab/ab0123456789cdef``, the fingerprint as 16 hex digits in
a directory named by its first two (256 directories: 100,000 entries make about 400
in each). A page rendered in a browser is stored as rendered, in its own entry
``DIR/ab/ab0123456789cdef-rendered`` (request ``"GET http://a.test/ (rendered)"``),
so it replays without a browser and never stands in for the plain response. A file
is one JSON line, then the raw (decoded) body bytes::

    {"v":1,"request":"GET http://a.test/","url":"http://a.test/","status":200,
     "headers":{"content-type":"text/html"},"time":1718000000.5,"length":5120}
    <the 5120 bytes of the body>

``time`` is when the entry was stored (Unix seconds), ``length`` the body's size.
An entry that is truncated or otherwise unreadable, or whose ``request`` is not the
request at hand (a fingerprint collision), is a miss (logged at DEBUG) and is
replaced by the next store. An entry is written to a temporary file in its own
directory and renamed into place, so no reader ever sees half of one, even after a
``kill -9``.

Statistics: ``cache/hit``; ``cache/miss`` for each request that went to the
network, of which ``cache/expired`` found an entry too old; ``cache/stored``.

Blocking file I/O: reading an entry takes less time than a round trip through
``asyncio.to_thread``, so hits are read on the event loop. Writing one (temporary
file and rename) takes several times longer, which would stall every other request
of a fast crawl, so writes run in a thread; the miss has waited for the network
anyway. (The timings: bench/README.md, "Measurements behind the code".)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._counters import CACHE_EXPIRED, CACHE_HIT, CACHE_MISS, CACHE_STORED
from .._errors import OutputError
from .._request import Request
from .._settings import Settings
from .._stats import Stats
from .client import Fetched
from .robots import Fetch

log = logging.getLogger("crawler.httpcache")

FORMAT_VERSION = 1
_DECODING_ERRORS = (ValueError, LookupError, TypeError, AttributeError)


@dataclass(frozen=True, slots=True)
class _Entry:
    request: str
    stored: float
    fetched: Fetched


class HttpCache:
    """Responses stored under ``directory`` (see the module docstring).

    ``expiry``: seconds after which an entry is a miss (0: never). ``ignore_status``:
    statuses never stored. ``clock``: the time in Unix seconds. Raises ``OutputError``
    at once if the directory cannot be created or written."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        stats: Stats,
        *,
        expiry: float = 0.0,
        ignore_status: Iterable[int] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self._stats = stats
        self._expiry = expiry
        self._ignore = frozenset(ignore_status)
        self._clock = clock
        self._store_failures = 0
        _check_writable(self.directory)

    def wrap(self, fetch: Fetch, variant: str = "") -> Callable[[Request], Coroutine[Any, Any, Fetched]]:
        """``fetch`` behind the cache: same signature, same errors. A ``variant``
        (``"rendered"``) keeps its entries apart from the plain ones of the same request."""

        async def fetch_through_cache(request: Request) -> Fetched:
            cached = self.load(request, variant)
            if cached is not None:
                return cached
            fetched = await fetch(request)
            if fetched.status not in self._ignore:
                await self.store(request, fetched, variant)
            return fetched

        return fetch_through_cache

    def load(self, request: Request, variant: str = "") -> Fetched | None:
        """The stored response to ``request``, or ``None`` for a miss."""
        entry = self._read(request, variant)
        if entry is not None and self._expiry and self._clock() - entry.stored > self._expiry:
            self._stats.inc(CACHE_EXPIRED)
            entry = None
        self._stats.inc(CACHE_MISS if entry is None else CACHE_HIT)
        return entry.fetched if entry is not None else None

    async def store(self, request: Request, fetched: Fetched, variant: str = "") -> None:
        """Store ``fetched`` as the response to ``request``; a failure is logged, not raised."""
        path = self.path_for(request, variant)
        data = encode_entry(request, fetched, self._clock(), variant)
        try:
            await asyncio.to_thread(_write_atomically, path, data)
        except OSError as exc:
            self._store_failures += 1
            level = logging.WARNING if self._store_failures == 1 else logging.DEBUG
            log.log(level, "cannot store %s in the HTTP cache: %s", request.url, exc.strerror or exc)
            return
        self._stats.inc(CACHE_STORED)

    def path_for(self, request: Request, variant: str = "") -> Path:
        key = f"{request.fingerprint:016x}"
        return self.directory / key[:2] / (f"{key}-{variant}" if variant else key)

    def _read(self, request: Request, variant: str = "") -> _Entry | None:
        path = self.path_for(request, variant)
        try:
            entry = decode_entry(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, *_DECODING_ERRORS) as exc:
            log.debug("HTTP cache entry %s is unreadable (a miss): %s", path, exc)
            return None
        if entry.request != _request_line(request, variant):
            log.debug("HTTP cache entry %s belongs to %s (a miss)", path, entry.request)
            return None
        return entry


def open_http_cache(settings: Settings, stats: Stats) -> HttpCache | None:
    """The cache ``settings.cache`` asks for, announced in the log; ``None`` if none."""
    if settings.cache is None:
        return None
    cache = HttpCache(
        settings.cache, stats, expiry=settings.cache_expiry, ignore_status=settings.cache_ignore_status
    )
    expiry = f"expire after {settings.cache_expiry:g}s" if settings.cache_expiry else "never expire"
    log.info("HTTP cache in use: %s (entries %s)", cache.directory.absolute(), expiry)
    return cache


def encode_entry(request: Request, fetched: Fetched, now: float, variant: str = "") -> bytes:
    """One cache file: a JSON line (ASCII: no raw newline inside), then the body."""
    head = {
        "v": FORMAT_VERSION,
        "request": _request_line(request, variant),
        "url": fetched.url,
        "status": fetched.status,
        "headers": dict(fetched.headers),
        "time": now,
        "length": len(fetched.body),
    }
    return json.dumps(head, separators=(",", ":")).encode() + b"\n" + fetched.body


def decode_entry(data: bytes) -> _Entry:
    """What ``encode_entry`` wrote; raises one of ``_DECODING_ERRORS`` if it is not that."""
    line, newline, body = data.partition(b"\n")
    head = json.loads(line)
    if not newline or not isinstance(head, dict) or head.get("v") != FORMAT_VERSION:
        raise ValueError(f"not a cache entry of format version {FORMAT_VERSION}")
    if len(body) != head["length"]:
        raise ValueError(f"body of {len(body)} bytes where {head['length']} were stored")
    headers = {str(name): str(value) for name, value in head["headers"].items()}
    fetched = Fetched(str(head["url"]), int(head["status"]), headers, body)
    return _Entry(str(head["request"]), float(head["time"]), fetched)


def _request_line(request: Request, variant: str = "") -> str:
    line = f"{request.method} {request.url}"
    return f"{line} ({variant})" if variant else line


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise OutputError(f"cannot use cache directory {directory}: {exc.strerror or exc}") from None
