"""HTTP/1.1 on one connection: the asyncio protocol of `PoolTransport`, with its
response parser.

A connection carries one exchange at a time: `send` writes the request, `head`
waits for the response's status line and headers (informational 1xx answers are
skipped), and `chunk` hands the body up piece by piece, decoded from its framing
(``Content-Length``, ``chunked``, or until the server closes) but not from its
``Content-Encoding``: the fetcher reads it under the size cap. The parser refuses
what a hostile server could use to confuse it (``BadResponse``): a head over
``MAX_HEAD`` bytes or ``MAX_HEADERS`` fields, a line over ``MAX_LINE``, a folded or
nameless header, a ``Content-Length`` that is not one number, a chunk size that is
not hexadecimal. A connection cut before the response is complete fails the
exchange (``BrokenTransfer``, or ``TransientFetchError`` when nothing came back):
nothing is ever sent again on it. While the reader is behind by more than
``HIGH_WATER`` bytes, the socket is not read.

A connection goes back to the pool (`reusable`) only when its response was read to
its end, the server did not ask to close, and nothing followed the response.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from typing import cast

from .._errors import BadResponse, BrokenTransfer, FetchError, TransientFetchError

MAX_HEAD = 64 * 1024
MAX_LINE = 8190  # aiohttp's and llhttp's limit of one line
MAX_HEADERS = 128
MAX_CHUNK_LINE = 4096  # a chunk-size line with its extensions
HIGH_WATER = 256 * 1024  # body bytes read but not yet taken, before reading stops

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?:[ \t][^\r\n]*)?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_NOT_IN_HEAD = re.compile(rb"\x00|\r(?!\n)")
_NO_BODY_STATUSES = frozenset({204, 304})

RawHeaders = list[tuple[bytes, bytes]]

# what the parser waits for
_HEAD, _LENGTH, _CHUNK_LINE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _DONE = range(8)


class Http1Connection(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._scanned = 0  # how much of the buffer the search for the head's end has seen
        self._trailers = 0  # bytes of trailer lines so far
        self._state = _DONE
        self._skip_body = False
        self._remaining = 0  # body bytes left (_LENGTH), or of the current chunk (_CHUNK_DATA)
        self._keep_alive = False
        self._extra = False  # bytes came after the end of the response
        self._received_any = False
        self._error: FetchError | None = None
        self._head: tuple[int, RawHeaders] | None = None
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio's side ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        if self._state == _LENGTH and not self._buffer:  # the common case: no copy
            taken = data[: self._remaining]
            self._deliver(taken)
            self._remaining -= len(taken)
            if self._remaining == 0:
                self._finish()
            if len(taken) < len(data):
                self._buffer += data[len(taken) :]
                self._advance()
            self._wake()
            return
        self._buffer += data
        self._advance()

    def eof_received(self) -> bool:
        return False  # close: a half-closed connection is no use to a client

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self._state == _UNTIL_CLOSE and exc is None:  # a reset is no end of a body
            self._deliver(bytes(self._buffer))
            self._buffer.clear()
            self._finish()
        elif self._state != _DONE:
            self._fail(self._cut_short())
        self._wake()

    # -- the exchange's side ----------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """Whether the last response was read to its end (by the parser and by its
        reader) on a connection that may carry another exchange."""
        return (
            self._state == _DONE
            and self._keep_alive
            and not (self._extra or self._chunks or self._paused or self._error)
            and not self.closed
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def send(self, data: bytes, *, head_request: bool) -> None:
        """Write a whole request on a fresh or `reusable` connection; its response is
        read next."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise TransientFetchError("the connection closed before the request was sent")
        self._state, self._skip_body, self._head = _HEAD, head_request, None
        self._received_any = self._keep_alive = self._extra = False
        self._scanned = self._trailers = 0
        self.transport.write(data)

    async def head(self) -> tuple[int, RawHeaders]:
        """The response's status and raw headers, once they are in."""
        while self._head is None:
            await self._wait()
        return self._head

    async def chunk(self) -> bytes:
        """The next piece of the body; ``b""`` at its end."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._state == _DONE:
                return b""
            await self._wait()
        data = self._chunks.popleft()
        self._queued -= len(data)
        if self._paused and self._queued <= HIGH_WATER // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        """Close at once: a TLS goodbye would wait (up to half a minute on uvloop) for
        a server that is still sending, holding the socket outside every budget."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._error is not None and not self._chunks:
            raise self._error

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- the parser -------------------------------------------------------------------

    def _advance(self) -> None:
        try:
            while self._buffer and self._step():
                pass
        except BadResponse as exc:
            self._fail(exc)
            if self.transport is not None:
                self.transport.close()
        self._wake()

    def _step(self) -> bool:
        """Take what the state can from the buffer; whether to go on."""
        state = self._state
        if state == _HEAD:
            return self._take_head()
        if state == _LENGTH:
            return self._take_length()
        if state in (_CHUNK_LINE, _CHUNK_DATA, _CHUNK_END):
            return self._take_chunked()
        if state == _TRAILERS:
            return self._take_trailers()
        if state == _UNTIL_CLOSE:
            self._deliver(bytes(self._buffer))
            self._buffer.clear()
            return False
        self._extra = True  # _DONE: nobody asked for more
        self._buffer.clear()
        return False

    def _take_head(self) -> bool:
        # from where the last search stopped (less the end's length): a head that
        # trickles in a byte at a time is searched once, not once per byte
        end = _HEAD_END.search(self._buffer, max(0, self._scanned - 3), MAX_HEAD + 4)
        if end is None:
            if len(self._buffer) > MAX_HEAD:
                raise BadResponse(f"response head over {MAX_HEAD} bytes")
            self._scanned = len(self._buffer)
            return False
        head = bytes(self._buffer[: end.start()])
        del self._buffer[: end.end()]
        self._scanned = 0
        status, headers, version_one_one = parse_head(head)
        if 100 <= status < 200 and status != 101:
            return True  # informational: the real answer follows
        self._head = (status, headers)
        self._frame(status, headers, version_one_one)
        return True

    def _frame(self, status: int, headers: RawHeaders, version_one_one: bool) -> None:
        """How the body ends, and whether the connection may carry another exchange."""
        fields = _fields(headers, (b"connection", b"transfer-encoding", b"content-length"))
        connection = {token.strip().lower() for token in (fields[b"connection"] or b"").split(b",")}
        self._keep_alive = version_one_one and b"close" not in connection and status != 101
        codings = [c.strip().lower() for c in (fields[b"transfer-encoding"] or b"").split(b",") if c.strip()]
        length = fields[b"content-length"]
        if self._skip_body or status in _NO_BODY_STATUSES or status < 200:
            self._finish()
        elif codings:
            chunked = codings[-1] == b"chunked"
            self._state = _CHUNK_LINE if chunked else _UNTIL_CLOSE
            # a length beside a transfer coding is how responses get smuggled: not again
            self._keep_alive = self._keep_alive and chunked and length is None
        elif length is not None:
            self._remaining = content_length(length)
            self._state = _LENGTH
            if self._remaining == 0:
                self._finish()
        else:
            self._state, self._keep_alive = _UNTIL_CLOSE, False

    def _take_length(self) -> bool:
        if self._take_data():
            self._finish()
        return True

    def _take_data(self) -> bool:
        """Hand up what the buffer holds of the ``_remaining`` body bytes; whether
        they are all in."""
        data = bytes(self._buffer[: self._remaining])
        del self._buffer[: len(data)]
        self._deliver(data)
        self._remaining -= len(data)
        return self._remaining == 0

    def _take_chunked(self) -> bool:
        if self._state == _CHUNK_LINE:
            line = self._line(MAX_CHUNK_LINE, "chunk size line")
            if line is None:
                return False
            size = line.split(b";", 1)[0].strip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size):
                raise BadResponse(f"invalid chunk size {size[:40]!r}")
            self._remaining = int(size, 16)
            self._state = _CHUNK_DATA if self._remaining else _TRAILERS
        elif self._state == _CHUNK_DATA:
            if self._take_data():
                self._state = _CHUNK_END
        else:  # _CHUNK_END: the CRLF after a chunk's data
            line = self._line(2, "end of chunk")
            if line is None:
                return False
            if line:
                raise BadResponse("chunk data longer than its size")
            self._state = _CHUNK_LINE
        return True

    def _take_trailers(self) -> bool:
        while (line := self._line(MAX_LINE, "trailer line")) is not None:
            if not line:
                self._finish()
                return True
            self._trailers += len(line) + 2
            if self._trailers > MAX_HEAD:
                raise BadResponse(f"trailers over {MAX_HEAD} bytes")
        return False

    def _line(self, limit: int, what: str) -> bytes | None:
        """The next line without its end (CRLF or LF), or ``None`` if it is not all in."""
        end = self._buffer.find(b"\n", 0, limit + 2)
        if end < 0:
            if len(self._buffer) > limit + 1:
                raise BadResponse(f"{what} over {limit} bytes")
            return None
        line = bytes(self._buffer[:end]).removesuffix(b"\r")
        del self._buffer[: end + 1]
        return line

    def _deliver(self, data: bytes) -> None:
        if not data:
            return
        self._chunks.append(data)
        self._queued += len(data)
        if not self._paused and self._queued > HIGH_WATER and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _finish(self) -> None:
        self._state = _DONE
        self.idle_since = asyncio.get_running_loop().time()

    def _fail(self, error: FetchError) -> None:
        if self._error is None:
            self._error = error
        self._state = _DONE
        self._keep_alive = False

    def _cut_short(self) -> FetchError:
        if self._state == _HEAD and not self._received_any:
            return TransientFetchError("the server closed the connection without answering")
        if self._state == _HEAD:
            return BrokenTransfer("the connection closed in the middle of the response head")
        return BrokenTransfer("the connection closed before the end of the response body")


def parse_head(head: bytes) -> tuple[int, RawHeaders, bool]:
    """A response head (without its blank line): the status, the raw headers in
    order, and whether the server speaks HTTP/1.1. ``BadResponse`` if it is not one."""
    if _NOT_IN_HEAD.search(head):
        raise BadResponse("a NUL or a lone CR in the response head")
    lines = head.split(b"\n")
    status_line = lines[0].removesuffix(b"\r")
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise BadResponse(f"not an HTTP/1.x status line: {status_line[:100]!r}")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadResponse(f"over {MAX_HEADERS} header fields")
    headers: RawHeaders = []
    for raw in lines[1:]:
        line = raw.removesuffix(b"\r")
        name, colon, value = line.partition(b":")
        if len(line) > MAX_LINE or not colon or not _TOKEN.fullmatch(name):
            raise BadResponse(f"invalid header line {line[:100]!r}")  # a fold starts with a space
        headers.append((name, value.strip(b" \t")))
    return int(match[2]), headers, match[1] == b"1"


def content_length(values: bytes) -> int:
    """The one length that every ``Content-Length`` value (joined with commas) says."""
    lengths = {value.strip() for value in values.split(b",")}
    if len(lengths) != 1 or not (length := lengths.pop()).isdigit() or len(length) > 18:
        raise BadResponse(f"invalid Content-Length {values[:60]!r}")
    return int(length)


def _fields(headers: RawHeaders, names: tuple[bytes, ...]) -> dict[bytes, bytes | None]:
    """The values of the headers ``names`` (lower case), repeated ones joined with
    commas; ``None`` for those absent."""
    found: dict[bytes, bytes | None] = dict.fromkeys(names)
    for name, value in headers:
        key = name.lower()
        if key in found:
            known = found[key]
            found[key] = value if known is None else known + b"," + value
    return found
