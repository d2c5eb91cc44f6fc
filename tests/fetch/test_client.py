"""Tests for the fetcher: one HTTP exchange per call, through httpx, errors translated
at the boundary.

Most tests mock with respx at the entry of the real transport
(``PoolTransport.handle_async_request``): the request is built, sent, read under the
cap and decoded by the same code as in a crawl, and only the network is replaced.
The last ones use the real transport against a `SiteServer` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import brotli
import httpx
import pytest
import respx
import zstandard
from aiohttp.client_reqrep import ConnectionKey
from hypothesis import given
from hypothesis import strategies as st
from respx.mocks import AbstractRequestMocker

from crawler import FetchError, Request, Settings
from crawler._errors import BrokenTransfer, FetchTimeout, HostDeferred, ResponseTooLarge, TransientFetchError
from crawler.fetch.client import ACCEPT, Fetched, Fetcher, httpx_url, translate_error
from crawler.sites.server import Page, SiteServer

URL = "http://shop.test/page"
Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class PoolTransportMocker(AbstractRequestMocker):
    """respx's mocker for the crawler's transport: ``respx.mock(using="crawler")``
    answers at ``PoolTransport.handle_async_request``, under everything the fetcher does."""

    name = "crawler"
    targets = ["crawler.fetch.transport.PoolTransport"]
    target_methods = ["handle_async_request"]

    @classmethod
    def to_httpx_request(cls, **kwargs: Any) -> httpx.Request:
        request: httpx.Request = kwargs["request"]
        return request

    @classmethod
    async def from_async_httpx_response(
        cls, httpx_response: httpx.Response, target: Any, **kwargs: Any
    ) -> httpx.Response:
        return httpx_response


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(using="crawler", assert_all_mocked=True, assert_all_called=False) as mocked:
        yield mocked


def fetch(handler: Handler, request: Request | None = None, **settings: Any) -> Fetched:
    """Fetch ``request`` (default: GET URL) once, answered by ``handler`` through respx,
    and close the fetcher."""

    async def main() -> Fetched:
        with respx.mock(using="crawler") as router:
            router.route().mock(side_effect=handler)
            return await fetch_once(request or Request(URL), **settings)

    return asyncio.run(main())


async def fetch_once(request: Request, **settings: Any) -> Fetched:
    fetcher = Fetcher(Settings(**settings))
    try:
        return await fetcher.fetch(request)
    finally:
        await fetcher.close()


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


def test_does_not_follow_redirects(router: respx.MockRouter) -> None:
    router.get(URL).respond(301, headers={"Location": "/elsewhere"})
    target = router.get("http://shop.test/elsewhere").respond(200, text="moved")

    fetched = asyncio.run(fetch_once(Request(URL)))
    assert fetched.status == 301
    assert fetched.headers["location"] == "/elsewhere"
    assert not target.called


def test_every_fetch_sends_an_httpx_request_and_reads_an_httpx_response(router: respx.MockRouter) -> None:
    route = router.get(URL).respond(200, headers={"Set-Cookie": "a=1", "X-Two": "b"}, text="ok")
    fetched = asyncio.run(fetch_once(Request(URL, headers={"X-Trace": "t"})))
    sent = route.calls.last.request
    assert isinstance(sent, httpx.Request) and isinstance(route.calls.last.response, httpx.Response)
    assert (sent.method, str(sent.url), sent.headers["x-trace"]) == ("GET", URL, "t")
    assert fetched.headers["set-cookie"] == "a=1" and fetched.body == b"ok"


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


# -- building httpx requests -----------------------------------------------------------

CANONICAL_URLS = [
    "http://shop.test/",
    "http://shop.test/a/b.html?x=1&y=%20z",
    "https://shop.test:8443/p;a=b/c,d/~e?q=a/b?c",
    "http://127.0.0.1:8080/item-1.html",
    "http://[::1]:8080/x?",
    "https://shop.test:443/default-port",
    "http://xn--caf-dma.test/caf%C3%A9",
    "http://shop.test/.well-known/x/../y",
    "http://shop.test/a b",
    "http://shop.test/%zz",
    "http://shop.test/p?q={}|^`",
    "http://user@shop.test/",
]


@pytest.mark.parametrize("url", CANONICAL_URLS)
def test_httpx_url_is_what_httpx_parses(url: str) -> None:
    assert httpx_url(url)._uri_reference == httpx.URL(url)._uri_reference


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40))
def test_httpx_url_is_what_httpx_parses_for_any_path(tail: str) -> None:
    url = "http://shop.test/" + tail
    try:
        expected = httpx.URL(url)
    except httpx.InvalidURL:
        with pytest.raises(httpx.InvalidURL):
            httpx_url(url)
        return
    assert httpx_url(url)._uri_reference == expected._uri_reference


def test_the_network_stack_loads_after_the_parse_workers_fork() -> None:
    """httpx (and aiohttp, behind a proxy) load in ``_open_network``, once the parse
    workers exist: importing the package and the CLI loads neither."""
    code = (
        "import sys, crawler, crawler.cli.main, crawler._engine, crawler.fetch.single;"
        "print(sorted({'httpx', 'aiohttp'} & set(sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


# -- hosts that never answered ---------------------------------------------------------


def test_hosts_that_never_answered_hold_at_most_half_the_concurrency(router: respx.MockRouter) -> None:
    release = asyncio.Event()

    async def silent(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200)

    router.route(host__regex=r"silent\d").mock(side_effect=silent)
    router.get("http://known.test/").respond(200)

    async def main() -> None:
        fetcher = Fetcher(Settings(concurrency=4))
        await fetcher.fetch(Request("http://known.test/"))  # answered once: never deferred
        waiting = [asyncio.create_task(fetcher.fetch(Request(f"http://silent{i}.test/"))) for i in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(HostDeferred):
            await fetcher.fetch(Request("http://silent9.test/"))
        assert (await fetcher.fetch(Request("http://known.test/"))).status == 200
        release.set()
        await asyncio.gather(*waiting)
        assert (await fetcher.fetch(Request("http://silent0.test/"))).status == 200
        await fetcher.close()

    asyncio.run(main())


# -- file descriptors ------------------------------------------------------------------


def test_out_of_descriptors_waits_and_tries_again(router: respx.MockRouter) -> None:
    from crawler.fetch.transport import OutOfDescriptors

    emfile = OutOfDescriptors("[Errno 24] Too many open files")
    router.get(URL).mock(side_effect=[emfile, emfile, httpx.Response(200)])
    fetched = asyncio.run(fetch_once(Request(URL)))
    assert fetched.status == 200
    assert router.routes[0].call_count == 3
