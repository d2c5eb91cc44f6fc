"""The HTTP/1.1 response parser of `Http1Connection`, fed bytes directly (a fake
transport records what the connection does to its socket): framing, limits, every
way a response can be cut short, and flow control. ``test_exchange.py`` covers the
same connection on real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from crawler._errors import BadResponse, BrokenTransfer, FetchError, TransientFetchError
from crawler.fetch.http1 import HIGH_WATER, MAX_HEAD, MAX_HEADERS, Http1Connection


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.paused = 0
        self.resumed = 0
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        self.resumed += 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


class Outcome:
    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, reusable: bool) -> None:
        self.status, self.headers, self.body, self.reusable = status, headers, body, reusable


def exchange(pieces: Iterable[bytes], *, head_request: bool = False, close: bool = False) -> Outcome:
    """Send a request on a fresh connection, feed it ``pieces`` (then close it, if
    ``close``), and read the whole response."""

    async def main() -> Outcome:
        connection = Http1Connection()
        transport = FakeTransport()
        connection.connection_made(transport)
        connection.send(b"GET / HTTP/1.1\r\n\r\n", head_request=head_request)
        for piece in pieces:
            connection.data_received(piece)
        if close:
            connection.connection_lost(None)
        status, headers = await connection.head()
        body = b""
        while chunk := await connection.chunk():
            body += chunk
        return Outcome(status, headers, body, connection.reusable)

    return asyncio.run(main())


def failure(pieces: Iterable[bytes], *, close: bool = False) -> FetchError:
    with pytest.raises(FetchError) as caught:
        exchange(pieces, close=close)
    return caught.value


def split_everywhere(data: bytes) -> Iterable[list[bytes]]:
    for cut in range(1, len(data)):
        yield [data[:cut], data[cut:]]
    yield [bytes([byte]) for byte in data]


SIMPLE = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
)


@pytest.mark.parametrize("pieces", list(split_everywhere(SIMPLE)))
def test_a_response_split_anywhere_reads_the_same(pieces):
    outcome = exchange(pieces)
    assert (outcome.status, outcome.body, outcome.reusable) == (200, b"hello", True)
    assert outcome.headers == [(b"Content-Type", b"text/html"), (b"Content-Length", b"5")]


@pytest.mark.parametrize("pieces", list(split_everywhere(CHUNKED)))
def test_a_chunked_body_split_anywhere_reads_the_same(pieces):
    outcome = exchange(pieces)
    assert (outcome.body, outcome.reusable) == (b"hello, world", True)


def test_bare_newlines_and_a_status_line_without_reason():
    outcome = exchange([b"HTTP/1.1 404\nContent-Length: 2\n\nno"])
    assert (outcome.status, outcome.body) == (404, b"no")


def test_informational_answers_before_the_final_one_are_skipped():
    outcome = exchange([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n" + SIMPLE])
    assert (outcome.status, outcome.body, outcome.reusable) == (200, b"hello", True)


def test_a_length_beside_a_transfer_coding_is_ignored_and_the_connection_not_kept():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    outcome = exchange([head + b"5\r\nhello\r\n0\r\n\r\n"])
    assert (outcome.body, outcome.reusable) == (b"hello", False)


def test_repeated_lengths_that_agree_are_one_length():
    outcome = exchange([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nok"])
    assert outcome.body == b"ok"


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nFolded: a\r\n  b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: no name\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
    ],
)
def test_malformed_responses_are_bad_responses(response):
    assert isinstance(failure([response]), BadResponse)


def test_the_head_and_its_fields_are_bounded():
    huge = b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD
    assert "head over" in str(failure([huge]))
    many = b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEADERS + 1) + b"\r\n"
    assert "header fields" in str(failure([many]))
    long_line = b"HTTP/1.1 200 OK\r\nX: " + b"a" * 9000 + b"\r\n\r\n"
    assert isinstance(failure([long_line]), BadResponse)


@pytest.mark.parametrize(
    ("pieces", "error"),
    [
        ([], TransientFetchError),  # closed without a byte: nothing was answered
        ([b"HTTP/1.1 200 OK\r\nContent-"], BrokenTransfer),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"], BrokenTransfer),
        ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"], BrokenTransfer),
        ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"], BrokenTransfer),
    ],
)
def test_a_response_cut_short_fails(pieces, error):
    caught = failure(pieces, close=True)
    assert type(caught) is error


def test_a_body_without_a_length_ends_with_the_connection():
    outcome = exchange([b"HTTP/1.1 200 OK\r\n\r\nall of ", b"it"], close=True)
    assert (outcome.body, outcome.reusable) == (b"all of it", False)


def test_bytes_after_the_response_keep_the_connection_from_the_pool():
    outcome = exchange([SIMPLE + b"HTTP/1.1 200 OK\r\n"])
    assert (outcome.body, outcome.reusable) == (b"hello", False)


@pytest.mark.parametrize(
    ("response", "head_request"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", True),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", False),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", False),
    ],
)
def test_answers_without_a_body(response, head_request):
    outcome = exchange([response], head_request=head_request)
    assert (outcome.body, outcome.reusable) == (b"", True)


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok",
    ],
)
def test_a_server_that_closes_does_not_get_the_connection_back(response):
    outcome = exchange([response])
    assert (outcome.body, outcome.reusable) == (b"ok", False)


def test_reading_stops_while_the_reader_is_behind_and_nothing_is_lost():
    size = 4 * HIGH_WATER
    piece = 64 * 1024

    async def main() -> tuple[int, int, int]:
        connection = Http1Connection()
        transport = FakeTransport()
        connection.connection_made(transport)
        connection.send(b"GET / HTTP/1.1\r\n\r\n", head_request=False)
        connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        body = bytearray(b"x" * size)
        for start in range(0, size, piece):
            connection.data_received(bytes(body[start : start + piece]))
        paused = transport.paused
        read = b""
        while chunk := await connection.chunk():
            read += chunk
        assert read == bytes(body) and connection.reusable
        return paused, transport.resumed, len(read)

    paused, resumed, read = asyncio.run(main())
    assert (paused, resumed, read) == (1, 1, size)


def test_a_closed_connection_refuses_to_send():
    connection = Http1Connection()
    connection.connection_made(FakeTransport())
    connection.connection_lost(None)
    with pytest.raises(TransientFetchError):
        connection.send(b"GET / HTTP/1.1\r\n\r\n", head_request=False)


def test_trailers_are_bounded_in_all():
    line = b"X-T: " + b"a" * 1000 + b"\r\n"
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" + line * 100
    assert "trailers over" in str(failure([response]))


@pytest.mark.parametrize("value", [b"a\rb", b"a\x00"])
def test_a_lone_cr_or_a_nul_in_the_head_is_refused(value):
    assert isinstance(failure([b"HTTP/1.1 200 OK\r\nX: " + value + b"\r\n\r\n"]), BadResponse)


def test_an_empty_length_is_refused_not_read_as_none():
    assert isinstance(failure([b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nbody"]), BadResponse)


def test_a_reset_is_not_the_end_of_a_body_that_ends_with_the_connection():
    async def main() -> None:
        connection = Http1Connection()
        connection.connection_made(FakeTransport())
        connection.send(b"GET / HTTP/1.1\r\n\r\n", head_request=False)
        connection.data_received(b"HTTP/1.1 200 OK\r\n\r\npart of it")
        connection.connection_lost(ConnectionResetError(104, "reset"))
        await connection.head()
        assert await connection.chunk() == b"part of it"
        with pytest.raises(BrokenTransfer):
            await connection.chunk()

    asyncio.run(main())


def test_a_body_not_read_to_its_end_keeps_the_connection_from_the_pool():
    """All of it arrived, but its reader stopped early (a robots.txt prefix, the size
    cap): the unread rest must not become the start of the next response."""

    async def main() -> bool:
        connection = Http1Connection()
        connection.connection_made(FakeTransport())
        connection.send(b"GET / HTTP/1.1\r\n\r\n", head_request=False)
        connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab")
        connection.data_received(b"cdef")
        await connection.head()
        assert await connection.chunk() == b"ab"
        return connection.reusable

    assert asyncio.run(main()) is False


def test_a_head_that_trickles_in_is_searched_once():
    """A byte at a time: each byte is looked at a bounded number of times (a server
    dripping a 60 KB head once cost seconds of the event loop)."""
    head = b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 100 + b"Content-Length: 0\r\n\r\n"
    searched: list[int] = []

    class Counting(Http1Connection):
        def _take_head(self) -> bool:
            searched.append(len(self._buffer) - max(0, self._scanned - 3))
            return super()._take_head()

    async def main() -> None:
        connection = Counting()
        connection.connection_made(FakeTransport())
        connection.send(b"GET / HTTP/1.1\r\n\r\n", head_request=False)
        for byte in head:
            connection.data_received(bytes([byte]))
        assert (await connection.head())[0] == 200

    asyncio.run(main())
    assert max(searched) <= 4
