"""Tests for the fetcher: one HTTP exchange per call, errors translated at the boundary.

Most tests inject an ``httpx.MockTransport``; the last ones use the real default
(aiohttp) transport against a `SiteServer` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import brotli
import httpx
import pytest
import respx
import zstandard
from aiohttp.client_reqrep import ConnectionKey

from crawler import FetchError, Request, Settings
from crawler._errors import BrokenTransfer, FetchTimeout, ResponseTooLarge, TransientFetchError
from crawler._fetcher import ACCEPT, Fetched, Fetcher, translate_error
from crawler._siteserver import Page, SiteServer

URL = "http://shop.test/page"
Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def fetch(
    handler: Handler | httpx.AsyncBaseTransport, request: Request | None = None, **settings: Any
) -> Fetched:
    """Fetch ``request`` (default: GET URL) once through ``handler`` and close the fetcher."""
    transport = handler if isinstance(handler, httpx.AsyncBaseTransport) else httpx.MockTransport(handler)

    async def main() -> Fetched:
        fetcher = Fetcher(Settings(**settings), transport=transport)
        try:
            return await fetcher.fetch(request or Request(URL))
        finally:
            await fetcher.close()

    return asyncio.run(main())


class TrackedStream(httpx.AsyncByteStream):
    """A response body that records how much of it was read and whether it was closed."""

    def __init__(self, chunks: list[bytes], delay: float = 0.0) -> None:
        self.chunks = chunks
        self.delay = delay
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            if self.delay:
                await asyncio.sleep(self.delay)
            self.sent += 1
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


# -- responses -------------------------------------------------------------------------


def test_returns_status_lowercase_headers_and_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Type": "text/html", "X-Custom-Header": "yes"}, content=b"<p>hi</p>"
        )

    fetched = fetch(handler)
    assert fetched.url == URL
    assert fetched.status == 200
    assert fetched.body == b"<p>hi</p>"
    assert fetched.headers["content-type"] == "text/html"
    assert fetched.headers["x-custom-header"] == "yes"
    assert all(name == name.lower() for name in fetched.headers)


@pytest.mark.parametrize("status", [204, 404, 410, 500, 503])
def test_any_http_status_is_a_response(status: int) -> None:
    assert fetch(lambda request: httpx.Response(status)).status == status


def test_sends_configured_user_agent_and_accept() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    fetch(handler, user_agent="TestBot/1.0 (+http://bot.test)")
    assert seen[0].headers["user-agent"] == "TestBot/1.0 (+http://bot.test)"
    assert seen[0].headers["accept"] == ACCEPT


def test_sends_method_body_and_request_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201)

    request = Request(URL, method="post", headers={"X-Token": "t1"}, body=b"a=1")
    assert fetch(handler, request).status == 201
    assert seen[0].method == "POST"
    assert seen[0].content == b"a=1"
    assert seen[0].headers["x-token"] == "t1"


def test_does_not_follow_redirects() -> None:
    router = respx.Router(assert_all_called=False)
    router.get(URL).respond(301, headers={"Location": "/elsewhere"})
    target = router.get("http://shop.test/elsewhere").respond(200, text="moved")

    fetched = fetch(httpx.MockTransport(router.async_handler))
    assert fetched.status == 301
    assert fetched.headers["location"] == "/elsewhere"
    assert not target.called


PLAIN = b"<html>" + b"caf\xc3\xa9 " * 2000 + b"</html>"


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("br", brotli.compress),
        ("deflate", zlib.compress),
        ("zstd", zstandard.ZstdCompressor().compress),
    ],
)
def test_content_encoded_bodies_are_decoded(encoding: str, encode: Callable[[bytes], bytes]) -> None:
    encoded = encode(PLAIN)
    assert len(encoded) < len(PLAIN)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": encoding}, content=encoded)

    assert fetch(handler).body == PLAIN


def test_corrupt_encoded_body_is_a_decoding_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"definitely not gzip")

    with pytest.raises(FetchError) as info:
        fetch(handler)
    assert info.value.kind == "decoding_error"
    assert not isinstance(info.value, TransientFetchError)


# -- size cap --------------------------------------------------------------------------


def test_declared_content_length_over_cap_raises_without_reading() -> None:
    stream = TrackedStream([b"x" * 1000])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "1000"}, stream=stream)

    with pytest.raises(ResponseTooLarge, match="Content-Length 1000"):
        fetch(handler, max_size=999)
    assert stream.sent == 0
    assert stream.closed


def test_body_exactly_at_cap_is_accepted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 1000)

    assert len(fetch(handler, max_size=1000).body) == 1000


def test_streamed_body_over_cap_raises_and_stops_reading() -> None:
    stream = TrackedStream([b"x" * 100] * 50)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=stream)  # no Content-Length

    with pytest.raises(ResponseTooLarge, match="1000-byte cap"):
        fetch(handler, max_size=1000)
    assert stream.sent == 11
    assert stream.closed


def test_decoded_size_counts_against_the_cap() -> None:
    bomb = gzip.compress(b"\0" * 1_000_000)
    assert len(bomb) < 10_000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=bomb)

    with pytest.raises(ResponseTooLarge):
        fetch(handler, max_size=64 * 1024)


def test_response_too_large_is_not_transient() -> None:
    assert not issubclass(ResponseTooLarge, TransientFetchError)
    assert ResponseTooLarge.kind == "too_large"


# -- errors and timeouts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected", "kind"),
    [
        (httpx.ConnectError("connection refused"), TransientFetchError, "connection_error"),
        (httpx.RemoteProtocolError("peer closed"), BrokenTransfer, "broken_transfer"),
        (httpx.ReadTimeout("read timed out"), FetchTimeout, "timeout"),
        (httpx.ConnectTimeout("connect timed out"), FetchTimeout, "timeout"),
        (
            httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'"),
            FetchError,
            "fetch_error",
        ),
        (ConnectionResetError(104, "Connection reset by peer"), TransientFetchError, "connection_error"),
        (aiohttp.ServerDisconnectedError(), TransientFetchError, "connection_error"),
    ],
)
def test_transport_errors_are_translated(raised: Exception, expected: type[FetchError], kind: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    with pytest.raises(FetchError) as info:
        fetch(handler)
    assert type(info.value) is expected
    assert info.value.kind == kind
    assert str(info.value)


@pytest.mark.parametrize("url", ["/relative", "http://ü.com/\ud800"])
def test_unsendable_url_is_a_fetch_error(url: str) -> None:
    with pytest.raises(FetchError):
        fetch(lambda request: httpx.Response(200), Request(url))


@pytest.mark.parametrize("url", ["http://[::1/", "http://a.test/\x00", "http://exa\u200bmple.test/"])
def test_invalid_url_is_a_fetch_error(url: str) -> None:
    with pytest.raises(FetchError):
        fetch(lambda request: httpx.Response(200), Request(url))


def test_slow_transport_hits_the_total_deadline() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    started = time.monotonic()
    with pytest.raises(FetchTimeout, match=r"within 0\.2s"):
        fetch(handler, timeout=0.2)
    assert time.monotonic() - started < 2


def test_trickling_body_hits_the_total_deadline() -> None:
    stream = TrackedStream([b"x"] * 20, delay=0.05)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=stream)

    started = time.monotonic()
    with pytest.raises(FetchTimeout):
        fetch(handler, timeout=0.3)
    assert time.monotonic() - started < 1
    assert 0 < stream.sent < 20
    assert stream.closed


# -- translate_error -------------------------------------------------------------------

KEY = ConnectionKey("shop.test", 443, True, True, None, None, None, None)


def caused(outer: BaseException, cause: BaseException) -> BaseException:
    """``outer`` raised ``from cause``, as httpx_aiohttp raises its httpx errors."""
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("error", "expected", "kind"),
    [
        pytest.param(
            caused(
                httpx.ConnectTimeout("refused"),
                aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "Connection refused")),
            ),
            TransientFetchError,
            "connection_error",
            id="connector-error-under-connect-timeout",
        ),
        pytest.param(
            caused(httpx.ConnectTimeout("gone"), aiohttp.ServerDisconnectedError()),
            TransientFetchError,
            "connection_error",
            id="server-disconnected-under-connect-timeout",
        ),
        pytest.param(
            caused(httpx.ReadError("cut"), aiohttp.ClientPayloadError("Response payload is not completed")),
            BrokenTransfer,
            "broken_transfer",
            id="payload-error-under-read-error",
        ),
        pytest.param(
            caused(httpx.ConnectTimeout("slow"), aiohttp.ServerTimeoutError("Timeout on reading data")),
            FetchTimeout,
            "timeout",
            id="server-timeout-under-connect-timeout",
        ),
        pytest.param(aiohttp.ServerTimeoutError("t"), FetchTimeout, "timeout", id="server-timeout"),
        pytest.param(
            aiohttp.ServerDisconnectedError(), TransientFetchError, "connection_error", id="disconnected"
        ),
        pytest.param(TimeoutError(), FetchTimeout, "timeout", id="builtin-timeout"),
        pytest.param(ssl.SSLError(1, "bad handshake"), FetchError, "tls_error", id="ssl-error"),
        pytest.param(
            caused(
                httpx.ConnectTimeout("tls"),
                aiohttp.ClientConnectorCertificateError(KEY, ssl.SSLCertVerificationError(1, "bad cert")),
            ),
            FetchError,
            "tls_error",
            id="certificate-error-under-connect-timeout",
        ),
        pytest.param(
            caused(
                httpx.ConnectTimeout("tls"),
                aiohttp.ClientConnectorSSLError(KEY, ssl.SSLError(1, "wrong version")),
            ),
            FetchError,
            "tls_error",
            id="connector-ssl-error-under-connect-timeout",
        ),
        pytest.param(httpx.DecodingError("bad gzip"), FetchError, "decoding_error", id="decoding"),
        pytest.param(httpx.UnsupportedProtocol("ftp"), FetchError, "fetch_error", id="unsupported-protocol"),
        pytest.param(
            caused(httpx.UnsupportedProtocol("bad"), aiohttp.InvalidUrlClientError("http://[x")),
            FetchError,
            "fetch_error",
            id="invalid-url-under-unsupported-protocol",
        ),
        pytest.param(httpx.ConnectError("refused"), TransientFetchError, "connection_error", id="connect"),
        pytest.param(httpx.ReadTimeout("t"), FetchTimeout, "timeout", id="read-timeout"),
        pytest.param(ConnectionResetError(), TransientFetchError, "connection_error", id="reset"),
        pytest.param(ValueError("odd"), FetchError, "fetch_error", id="other"),
    ],
)
def test_translate_error(error: BaseException, expected: type[FetchError], kind: str) -> None:
    translated = translate_error(error)
    assert isinstance(translated, expected)
    assert translated.kind == kind
    assert str(translated)
    if kind in ("tls_error", "decoding_error", "fetch_error"):
        assert not isinstance(translated, TransientFetchError)


def test_translate_error_prefers_the_aiohttp_cause_message() -> None:
    cause = aiohttp.ServerDisconnectedError("Server disconnected early")
    assert str(translate_error(caused(httpx.ConnectTimeout(""), cause))) == "Server disconnected early"


# -- the real default transport --------------------------------------------------------


def fetch_real(url: str, **settings: Any) -> Fetched:
    async def main() -> Fetched:
        fetcher = Fetcher(Settings(**settings))
        try:
            return await fetcher.fetch(Request(url))
        finally:
            await fetcher.close()

    return asyncio.run(main())


def test_real_transport_against_a_local_server() -> None:
    routes = {
        "/": Page(b"hi"),
        "/gz": Page(
            gzip.compress(PLAIN), headers=(("Content-Type", "text/html"), ("Content-Encoding", "gzip"))
        ),
        "/moved": Page(b"", 301, (("Location", "/"),)),
    }
    with SiteServer(routes) as server:
        home = fetch_real(server.url + "/", user_agent="RealBot/2")
        unzipped = fetch_real(server.url + "/gz")
        moved = fetch_real(server.url + "/moved")
        targets = [hit.target for hit in server.hits]
        agent = server.hits[0].headers["user-agent"]

    assert (home.status, home.body) == (200, b"hi")
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    assert home.headers["content-length"] == "2"
    assert agent == "RealBot/2"
    assert unzipped.body == PLAIN
    assert (moved.status, moved.headers["location"]) == (301, "/")
    assert targets == ["/", "/gz", "/moved"]


def test_real_transport_connection_refused_is_transient_not_timeout(unused_port: int) -> None:
    with pytest.raises(FetchError) as info:
        fetch_real(f"http://127.0.0.1:{unused_port}/", timeout=5)
    assert type(info.value) is TransientFetchError


def test_real_transport_cut_body_is_transient() -> None:
    cut = Page(b"0123456789", headers=(("Content-Length", "100"),))
    with SiteServer({"/cut": cut}) as server, pytest.raises(FetchError) as info:
        fetch_real(server.url + "/cut", timeout=5)
    assert type(info.value) is BrokenTransfer
    assert isinstance(info.value, TransientFetchError)


def test_real_transport_slow_server_times_out() -> None:
    with SiteServer({"/slow": Page(b"late", delay=2.0)}) as server:
        started = time.monotonic()
        with pytest.raises(FetchTimeout):
            fetch_real(server.url + "/slow", timeout=0.3)
        assert time.monotonic() - started < 1.5


def test_real_transport_declared_size_over_cap() -> None:
    with SiteServer({"/big": Page(b"x" * 5000)}) as server, pytest.raises(ResponseTooLarge):
        fetch_real(server.url + "/big", max_size=4096)
