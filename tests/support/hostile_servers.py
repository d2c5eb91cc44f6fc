"""Servers that misbehave on purpose, for ``test_hostile.py``.

``HostileServer`` is a raw TCP server on 127.0.0.1, run in a background thread
with its own event loop (like ``SiteServer``), whose every connection is handed
to one *behaviour*: a coroutine that reads the request and then does something
no well-behaved server does (trickles, resets, never answers, lies about its
length). It counts connections and requests, the bytes it sent and when the
client hung up, so tests can assert what the crawler did from the server's side::

    with HostileServer(never_answers()) as server:
        crawl(server.url + "/")
        server.wait_idle()
    assert server.requests == 2 and server.hangups == 2

Hazards that only need a strange body or header (a gzip bomb, a redirect loop,
200,000 nested ``<div>``s) are plain ``SiteServer`` pages; builders for those
bodies are at the bottom.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Self

MAX_HEAD = 64 * 1024
OK_HTML = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nConnection: close\r\n"


class Connection:
    """One accepted connection, as a behaviour sees it, and afterwards as a record.

    ``target`` is the request target (None until a request head arrived),
    ``requested_at`` and ``hung_up_at`` are ``time.time()`` stamps (comparable with
    ``SiteServer`` hits) of the request and of the client closing the connection
    first, ``bytes_sent`` counts response bytes the kernel accepted.
    """

    def __init__(self, server: HostileServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.target: str | None = None
        self.requested_at: float | None = None
        self.hung_up_at: float | None = None
        self.bytes_sent = 0
        self.gone = asyncio.Event()  # the client closed or reset the connection
        self._server = server
        self._closed_here = False  # the server closed first: a later EOF is no hang-up

    async def read_request(self) -> str | None:
        """Read one request head and return its target (None if the client left first).
        From then on a watcher reads on, to notice when the client hangs up."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            self._hung_up()
            return None
        self.requested_at = time.time()
        self.target = head.split(b" ", 2)[1].decode("latin-1")
        self._server._track(asyncio.get_running_loop().create_task(self._watch()))
        return self.target

    async def _watch(self) -> None:
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(MAX_HEAD):
                pass
        self._hung_up()

    def _hung_up(self) -> None:
        if not self.gone.is_set() and not self._closed_here:
            self.gone.set()
            self.hung_up_at = time.time()

    async def send(self, data: bytes) -> bool:
        """Write ``data`` and wait until the kernel took it; False if the client has gone."""
        if self.gone.is_set():
            return False
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError:
            self._hung_up()
            return False
        self.bytes_sent += len(data)
        return True

    async def wait_gone(self, timeout: float) -> bool:
        """Wait until the client hangs up, at most ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gone.wait(), timeout)
        return self.gone.is_set()

    def close(self) -> None:
        """Close the connection from the server's side (FIN)."""
        self._closed_here = True
        self.writer.transport.abort()

    def reset(self) -> None:
        """Close abruptly: SO_LINGER 0 turns the close into a TCP RST."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()


Behaviour = Callable[[Connection], Awaitable[None]]


class HostileServer:
    """Serves every connection on 127.0.0.1 with ``behaviour``, from a background thread.

    ``url`` is valid once started. ``log`` holds one `Connection` per accepted
    connection, in order; ``connections``, ``requests``, ``hangups`` and
    ``bytes_sent`` sum it up. The client's hang-ups reach the server's thread a
    moment later: ``wait_idle`` before asserting on them. Stopping closes every
    connection still open.
    """

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.url = ""
        self.log: list[Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy = 0  # connections whose behaviour is still running

    @property
    def connections(self) -> int:
        return len(self.log)

    @property
    def requests(self) -> int:
        return sum(conn.target is not None for conn in self.log)

    @property
    def hangups(self) -> int:
        """Connections the client closed before the server did."""
        return sum(conn.hung_up_at is not None for conn in self.log)

    @property
    def bytes_sent(self) -> int:
        return sum(conn.bytes_sent for conn in self.log)

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait (in the caller's thread) until no connection's behaviour is running,
        so that hang-ups the client made have been seen; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._busy

    def start(self) -> Self:
        self._loop = loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, daemon=True, name="hostile-server")
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(5)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then the thread; idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        asyncio.run_coroutine_threadsafe(self._stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=MAX_HEAD)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        for _ in range(3):  # let the aborted transports report connection_lost
            await asyncio.sleep(0)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer)
        self.log.append(conn)
        task = asyncio.current_task()
        assert task is not None
        self._track(task)
        self._busy += 1
        try:
            await self.behaviour(conn)
        except ConnectionError:
            pass
        finally:
            conn.close()
            self._busy -= 1


# -- behaviours ------------------------------------------------------------------


def trickle(interval: float, length: int = 1000) -> Behaviour:
    """Status line and headers at once, then one body byte every ``interval`` seconds."""

    async def behave(conn: Connection) -> None:
        if await conn.read_request() is None:
            return
        await conn.send(OK_HTML + f"Content-Length: {length}\r\n\r\n<html>".encode())
        for _ in range(length - 6):
            if await conn.wait_gone(interval) or not await conn.send(b" "):
                return

    return behave


def reset() -> Behaviour:
    """Read the request, then close with a TCP RST instead of an answer."""

    async def behave(conn: Connection) -> None:
        if await conn.read_request() is not None:
            conn.reset()

    return behave


def chunked_without_end(chunks: int = 3) -> Behaviour:
    """``Transfer-Encoding: chunked``, a few chunks, then a close without the 0-chunk."""

    async def behave(conn: Connection) -> None:
        if await conn.read_request() is None:
            return
        await conn.send(OK_HTML + b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(chunks):
            data = f"<p>chunk {i}</p>".encode()
            await conn.send(b"%x\r\n%s\r\n" % (len(data), data))

    return behave


def never_answers() -> Behaviour:
    """Read the request and send nothing, until the client gives up."""

    async def behave(conn: Connection) -> None:
        if await conn.read_request() is not None:
            await conn.gone.wait()

    return behave


def huge_content_length(declared: int, limit: int = 256 * 1024 * 1024) -> Behaviour:
    """Announce ``declared`` bytes, then stream zeros as fast as the client reads,
    until it hangs up or ``limit`` bytes have gone."""

    async def behave(conn: Connection) -> None:
        if await conn.read_request() is None:
            return
        await conn.send(OK_HTML + f"Content-Length: {declared}\r\n\r\n".encode())
        chunk = bytes(64 * 1024)
        sent = 0
        while sent < limit and await conn.send(chunk):
            sent += len(chunk)

    return behave


def huge_headers(total: int, line_length: int) -> Behaviour:
    """A response whose header section is ``total`` bytes, in lines of ``line_length``."""

    async def behave(conn: Connection) -> None:
        if await conn.read_request() is None:
            return
        body = b"<html><title>headers</title></html>"
        lines = [b"X-Filler-%d: %s\r\n" % (i, b"a" * line_length) for i in range(total // line_length)]
        await conn.send(OK_HTML + b"".join(lines) + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await conn.wait_gone(5.0)

    return behave


# -- hostile bodies for SiteServer pages -------------------------------------------


def write_gzip_bomb(path: Path, decoded_size: int) -> None:
    """Write a gzip of ``decoded_size`` zero bytes to ``path``, 1 MiB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    with path.open("wb") as out:
        for _ in range(decoded_size >> 20):
            out.write(compressor.compress(zeros))
        out.write(compressor.flush())


def nested_divs(depth: int) -> bytes:
    """``depth`` unclosed-then-closed nested ``<div>``s around a link."""
    return b"<html><head><title>deep</title></head><body>%s<a href='/after-deep'>x</a>%s</body></html>" % (
        b"<div>" * depth,
        b"</div>" * depth,
    )


def nul_and_huge_attribute(attribute_size: int) -> bytes:
    """NUL bytes in text, tag names and attribute values, and one attribute of ``attribute_size`` bytes."""
    return b"".join(
        [
            b"<html><head><title>nul\x00title</title></head><body>",
            b"<p>text\x00with\x00nuls</p><di\x00v class='\x00'>x</di\x00v>",
            b"<a data-huge='" + b"A" * attribute_size + b"' href='/after-nul'>big</a>",
            b"<a href='/after\x00nul'>nul link</a>",
            b"</body></html>",
        ]
    )


def png_bytes() -> bytes:
    """A small valid PNG (a 64x64 gradient), to serve as ``text/html``."""
    width = height = 64
    rows = b"".join(b"\x00" + bytes((x * 4 + y) % 256 for x in range(width * 3)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", crc)

    header = struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(rows)),
            chunk(b"IEND", b""),
        ]
    )
