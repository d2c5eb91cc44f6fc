"""`SiteServer`: a small, fast HTTP/1.1 server over a route table.

Used by end-to-end tests, the demo shop and benchmarks::

    routes = {"/": Page(b'<a href="/slow">slow</a>'), "/slow": Page(b"zzz", delay=0.5)}
    with SiteServer(routes) as server:
        httpx.get(server.url + "/slow")
    assert [hit.target for hit in server.hits] == ["/slow"]

Lookup, per request: the request target exactly as sent (path plus query) in
``routes``, then ``handler``, then a 404. ``routes`` and ``handler`` are plain
attributes read per request, so they may be replaced while the server runs.

The server speaks the part of HTTP/1.1 a crawler uses: keep-alive, pipelining,
request bodies with Content-Length, HEAD. Chunked request bodies get 501, a bad
request line or header gets 400, a head over 64 KiB gets 431; each closes the
connection. Each Page's response bytes are encoded once and cached, so serving a
static page is a dict lookup and one ``transport.write``.
"""

from __future__ import annotations

import asyncio
import http
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Self

__all__ = ["Handler", "Hit", "Page", "SiteServer"]

logger = logging.getLogger(__name__)
_TEXT_PLAIN = (("Content-Type", "text/plain; charset=utf-8"),)
_MAX_HEAD = 64 * 1024
_CACHE_LIMIT = 4096  # encoded pages kept; handlers may build a new Page per request
_NO_BODY = frozenset({204, 304})
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}


@dataclass(frozen=True, slots=True)
class Page:
    """A canned response, sent ``delay`` seconds after its request (other connections go on).

    Content-Length is computed from ``body``. A page whose ``headers`` set their own
    Content-Length is sent as given and its connection closed afterwards, so a length
    above ``len(body)`` simulates a response cut short. 204 and 304 carry no body.
    """

    body: bytes = b""
    status: int = 200
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/html; charset=utf-8"),)
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the server received; ``time`` is ``time.time()`` when its head was complete."""

    method: str
    target: str
    headers: dict[str, str]
    time: float
    body: bytes


Handler = Callable[[Hit], Page | None]
"""A dynamic route: return the page for a hit, or ``None`` to answer 404."""

NOT_FOUND = Page(b"not found", 404, _TEXT_PLAIN)
_BAD_REQUEST = Page(b"bad request", 400, _TEXT_PLAIN)
_HEAD_TOO_LARGE = Page(b"request head too large", 431, _TEXT_PLAIN)
_NOT_IMPLEMENTED = Page(b"chunked request bodies are not supported", 501, _TEXT_PLAIN)


class _RequestError(Exception):
    """The request cannot be parsed; ``page`` is the answer, after which the connection closes."""

    def __init__(self, page: Page) -> None:
        super().__init__(page.body.decode())
        self.page = page


@dataclass(frozen=True, slots=True)
class _Head:
    """A parsed request head; ``length`` is the body's Content-Length."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    length: int
    time: float

    def keep_alive(self) -> bool:
        """HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only if asked."""
        tokens = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


def _parse_head(raw: bytes) -> _Head:
    """Parse a request head without its blank line; raise `_RequestError` if malformed."""
    request_line, *header_lines = raw.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2].startswith("HTTP/1."):
        raise _RequestError(_BAD_REQUEST)
    headers = _parse_headers(header_lines)
    return _Head(parts[0], parts[1], parts[2], headers, _body_length(headers), time.time())


def _parse_headers(lines: list[str]) -> dict[str, str]:
    """Header lines to a dict with lower-cased names; repeated names are joined with ", "."""
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _RequestError(_BAD_REQUEST)
        key, value = name.lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _body_length(headers: dict[str, str]) -> int:
    """The request body's length from Content-Length (0 if absent)."""
    if "transfer-encoding" in headers:
        raise _RequestError(_NOT_IMPLEMENTED)
    raw = headers.get("content-length", "0")
    if not (raw.isascii() and raw.isdigit()):
        raise _RequestError(_BAD_REQUEST)
    return int(raw)


@dataclass(frozen=True, slots=True)
class _Encoded:
    """A page's response bytes. ``page`` keeps the page alive, so its id() stays unique."""

    page: Page
    head: bytes  # status line and headers for a kept-alive connection, blank line included
    full: bytes  # head + body
    close_head: bytes  # as head, but announcing Connection: close
    body: bytes
    must_close: bool  # the page set its own Content-Length


def _encode(page: Page) -> _Encoded:
    """Build the response bytes for ``page``, once."""
    body = b"" if page.status in _NO_BODY else page.body
    own_length = any(name.lower() == "content-length" for name, _ in page.headers)
    lines = [f"HTTP/1.1 {page.status} {_REASONS.get(page.status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in page.headers]
    if not own_length and page.status not in _NO_BODY:
        lines.append(f"Content-Length: {len(body)}")
    start = "\r\n".join(lines)
    head = f"{start}\r\nConnection: keep-alive\r\n\r\n".encode("latin-1")
    close_head = f"{start}\r\nConnection: close\r\n\r\n".encode("latin-1")
    return _Encoded(page, head, head + body, close_head, body, own_length)


class _Connection(asyncio.Protocol):
    """One client connection: parses requests off the byte stream and answers them in order.

    While a delayed answer is pending, later (pipelined) requests wait in the buffer.
    """

    _transport: asyncio.Transport

    def __init__(self, server: SiteServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._head: _Head | None = None  # parsed, waiting for the rest of its body
        self._pending: asyncio.Task[None] | None = None  # a delayed answer in flight

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server._opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._closed(self)
        if self._pending is not None:
            self._pending.cancel()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._pending is None:
            self._drain()

    def abort(self) -> asyncio.Task[None] | None:
        """Drop the connection now; return the cancelled pending answer, if any, to await."""
        self._transport.abort()
        if self._pending is not None:
            self._pending.cancel()
        return self._pending

    def _drain(self) -> None:
        """Answer the complete requests in the buffer, up to a delayed one or a close."""
        while self._pending is None and not self._transport.is_closing():
            request = self._next_request()
            if request is None:
                return
            self._answer(*request)

    def _next_request(self) -> tuple[_Head, bytes] | None:
        """Take one complete request off the buffer, or None if it has not all arrived."""
        try:
            head = self._head or self._take_head()
        except _RequestError as error:
            self._send(error.page, head_only=False, keep_alive=False)
            return None
        if head is None or len(self._buffer) < head.length:
            self._head = head
            return None
        body = bytes(self._buffer[: head.length])
        del self._buffer[: head.length]
        self._head = None
        return head, body

    def _take_head(self) -> _Head | None:
        """Parse the head at the start of the buffer (skipping stray blank lines), if complete."""
        while self._buffer.startswith(b"\r\n"):
            del self._buffer[:2]
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD:
                raise _RequestError(_HEAD_TOO_LARGE)
            return None
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        return _parse_head(raw)

    def _answer(self, head: _Head, body: bytes) -> None:
        page = self._server._page_for(Hit(head.method, head.target, head.headers, head.time, body))
        head_only, keep_alive = head.method == "HEAD", head.keep_alive()
        if page.delay > 0:
            later = self._answer_later(page, head_only, keep_alive)
            self._pending = asyncio.get_running_loop().create_task(later)
        else:
            self._send(page, head_only, keep_alive)

    async def _answer_later(self, page: Page, head_only: bool, keep_alive: bool) -> None:
        await asyncio.sleep(page.delay)
        self._pending = None
        self._send(page, head_only, keep_alive)
        self._drain()

    def _send(self, page: Page, head_only: bool, keep_alive: bool) -> None:
        encoded = self._server._encoded(page)
        if keep_alive and not encoded.must_close:
            self._transport.write(encoded.head if head_only else encoded.full)
            return
        self._transport.write(encoded.close_head if head_only else encoded.close_head + encoded.body)
        self._transport.close()


class SiteServer:
    """Serves ``routes`` (and ``handler``) over HTTP/1.1 on ``host``:``port`` (0 picks a free port).

    Run it in the current event loop (``start_async``/``stop_async``), in a background
    thread with its own loop (``start``/``stop``, or ``with``), or in the foreground
    (``serve_forever``). ``url`` and ``port`` are valid once started. ``hits`` lists every
    request in arrival order unless ``record_hits`` is false; ``connections`` counts the
    TCP connections accepted. ``host`` should be an IP literal: a name such as
    ``localhost`` may bind several sockets, each on its own port, and ``url`` names the
    first. A handler that raises gets a 500 and the error is logged.
    """

    def __init__(
        self,
        routes: Mapping[str, Page] | None = None,
        *,
        handler: Handler | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record_hits: bool = True,
    ) -> None:
        self.routes: Mapping[str, Page] = routes if routes is not None else {}
        self.handler = handler
        self.host = host
        self.port = port
        self.record_hits = record_hits
        self.url = ""
        self.hits: list[Hit] = []
        self.connections = 0
        self._bind_port = port
        self._server: asyncio.Server | None = None
        self._open: set[_Connection] = set()
        self._cache: dict[int, _Encoded] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def hits_for(self, target: str) -> list[Hit]:
        """The hits whose target is exactly ``target``, in arrival order."""
        return [hit for hit in self.hits if hit.target == target]

    async def start_async(self) -> None:
        """Listen in the running event loop; sets ``port`` and ``url``."""
        if self._server is not None:
            raise RuntimeError("SiteServer is already running")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, self._bind_port, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}"

    async def stop_async(self) -> None:
        """Stop listening and drop open connections and pending answers; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        pending = [task for conn in list(self._open) if (task := conn.abort()) is not None]
        await asyncio.gather(*pending, return_exceptions=True)
        await server.wait_closed()
        await asyncio.sleep(0)  # let the aborted transports report connection_lost

    def start(self) -> Self:
        """Serve from a background thread with its own event loop; return once listening."""
        if self._thread is not None:
            raise RuntimeError("SiteServer is already running")
        self._loop = loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start_async(), loop).result()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the background thread, closing its connections; idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self._thread = self._loop = None
        asyncio.run_coroutine_threadsafe(self.stop_async(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def serve_forever(self, *, on_ready: Callable[[SiteServer], None] | None = None) -> None:
        """Serve in the calling (main) thread until SIGINT or SIGTERM.

        ``on_ready(self)`` is called once listening, e.g. to print ``url``.
        """
        asyncio.run(self._serve_until_signalled(on_ready))

    async def _serve_until_signalled(self, on_ready: Callable[[SiteServer], None] | None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await self.start_async()
        try:
            if on_ready is not None:
                on_ready(self)
            await stop.wait()
        finally:
            await self.stop_async()

    def _opened(self, connection: _Connection) -> None:
        self.connections += 1
        self._open.add(connection)

    def _closed(self, connection: _Connection) -> None:
        self._open.discard(connection)

    def _page_for(self, hit: Hit) -> Page:
        """Record ``hit`` and look up its page: routes, then handler, then 404."""
        if self.record_hits:
            self.hits.append(hit)
        page = self.routes.get(hit.target)
        if page is None and self.handler is not None:
            page = self._call_handler(self.handler, hit)
        return NOT_FOUND if page is None else page

    def _call_handler(self, handler: Handler, hit: Hit) -> Page | None:
        try:
            return handler(hit)
        except Exception as error:
            logger.exception("SiteServer handler failed on %s %s", hit.method, hit.target)
            return Page(f"handler error: {error!r}".encode(), 500, _TEXT_PLAIN)

    def _encoded(self, page: Page) -> _Encoded:
        """``page``'s response bytes, cached by identity."""
        encoded = self._cache.get(id(page))
        if encoded is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            encoded = self._cache[id(page)] = _encode(page)
        return encoded


@contextmanager
def child_server(module_args: Sequence[str], *, own_session: bool = False) -> Iterator[str]:
    """Run ``python -m MODULE ARGS...``, a server that prints one line once it listens,
    as a child process (so its CPU is not the caller's); yield that line; stop it at
    the end. ``own_session`` keeps Ctrl-C in the terminal from reaching it."""
    command = [sys.executable, "-m", *module_args]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, start_new_session=own_session
    ) as server:
        try:
            assert server.stdout is not None
            yield server.stdout.readline()
        finally:
            server.terminate()
