"""The HTTP/1.1 exchange `PoolTransport` does itself, on aiohttp's connections, against
a server that records every request head byte for byte and answers from a script:
what goes on the wire, which connections are kept, and what is refused unsent."""

from __future__ import annotations

import asyncio
import base64
import errno
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crawler import Request, Settings
from crawler._errors import BadResponse, BlockedAddress, FetchError, TlsError
from crawler.fetch import transport as transport_module
from crawler.fetch.addressguard import AddressGuard
from crawler.fetch.client import Fetched, Fetcher
from crawler.fetch.robots import READ_PREFIX
from crawler.fetch.transport import Places

from ..support.threaded import ThreadedServer
from ..support.tls import self_signed_certificate

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

Answer = Callable[[bytes], bytes]  # the request head -> the whole response


class ScriptedServer(ThreadedServer):
    """Reads keep-alive requests on 127.0.0.1 and answers each with ``answer(head)``;
    records every head with the number of the connection it came on. An answer that
    ends with ``CLOSE`` is sent and the connection closed."""

    CLOSE = b"<close>"

    def __init__(self, answer: Answer = lambda head: OK, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(tls)
        self.answer = answer
        self.heads: list[tuple[int, bytes]] = []
        self.connections = 0
        self.delay = 0.0  # before each answer
        self.open = self.most_open = 0

    def __enter__(self) -> ScriptedServer:
        scheme = "https" if self._tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._start('127.0.0.1', timeout=5)[0][1]}"
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = _content_length(head)
                self.heads.append((number, head + (await reader.readexactly(length) if length else b"")))
                await asyncio.sleep(self.delay)
                answer = self.answer(head)
                writer.write(answer.removesuffix(self.CLOSE))
                await writer.drain()
                if answer.endswith(self.CLOSE):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # cancelled: the test is over (``ThreadedServer._shut_down``)
        finally:
            self.open -= 1
            writer.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return int(value)
    return 0


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(answer: Answer = lambda head: OK) -> ScriptedServer:
        servers.append(ScriptedServer(answer).__enter__())
        return servers[-1]

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def fetch_at_once(requests: list[Request], settings: Settings) -> list[Fetched | BaseException]:
    """Fetch the first of ``requests`` (its host has answered then: see
    ``FirstContactGate``), then the others all at once, through one fetcher."""

    async def main() -> list[Fetched | BaseException]:
        fetcher = Fetcher(settings)
        try:
            first = await fetcher.fetch(requests[0])
            rest = await asyncio.gather(*(fetcher.fetch(r) for r in requests[1:]), return_exceptions=True)
            return [first, *rest]
        finally:
            await fetcher.close()

    return asyncio.run(main())


def fetch_all(*requests: Request) -> list[Fetched | Exception]:
    """Fetch ``requests`` one after another through one fetcher (one pool)."""

    async def main() -> list[Fetched | Exception]:
        fetcher = Fetcher(Settings(user_agent="probe/1"))
        results: list[Fetched | Exception] = []
        try:
            for request in requests:
                try:
                    results.append(await fetcher.fetch(request))
                except FetchError as exc:
                    results.append(exc)
        finally:
            await fetcher.close()
        return results

    return asyncio.run(main())


def test_a_get_goes_on_the_wire_as_one_plain_head(scripted):
    server = scripted()
    [fetched] = fetch_all(Request(server.url + "/a/b?q=1&r=%C3%A9", headers={"X-Mine": "m"}))
    assert isinstance(fetched, Fetched) and fetched.status == 200 and fetched.body == b"ok"
    [(_, head)] = server.heads
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "GET /a/b?q=1&r=%C3%A9 HTTP/1.1"
    assert lines[1] == "Host: " + server.url.removeprefix("http://")
    assert {"User-Agent: probe/1", "X-Mine: m", "Accept-Encoding: gzip, deflate, br, zstd"} <= set(lines)
    assert not any(line.lower().startswith(("content-length", "content-type", "cookie")) for line in lines)


def test_a_post_says_its_length_and_a_default_type(scripted):
    server = scripted()
    plain = Request(server.url + "/form", method="POST", body=b"q=1")
    json_type = {"Content-Type": "application/json"}
    typed = Request(server.url + "/form", method="POST", body=b"{}", headers=json_type)
    lying = Request(server.url + "/form", method="POST", body=b"abc", headers={"Content-Length": "1"})
    fetch_all(plain, typed, lying)
    heads = [head.decode("latin-1") for _, head in server.heads]
    assert "Content-Length: 3\r\n" in heads[0] and "Content-Type: application/octet-stream\r\n" in heads[0]
    assert heads[0].endswith("\r\n\r\nq=1")
    assert "Content-Type: application/json\r\n" in heads[1] and "octet-stream" not in heads[1]
    assert "Content-Length: 1\r\n" not in heads[2] and "Content-Length: 3\r\n" in heads[2]
    assert heads[2].endswith("\r\n\r\nabc")


def test_credentials_in_the_url_are_sent_as_basic_auth(scripted):
    server = scripted()
    fetch_all(Request(server.url.replace("//", "//us%40er:p%3Ass@") + "/"))
    expected = base64.b64encode(b"us@er:p:ss").decode()
    assert f"Authorization: Basic {expected}\r\n" in server.heads[0][1].decode()


@pytest.mark.parametrize(
    "headers",
    [{"X-Evil": "a\r\nX-Injected: 1"}, {"X-Evil": "a\nb"}, {"X-Evil": "a\x00b"}, {"Bad Name": "v"}],
)
def test_a_header_that_would_break_the_head_is_refused_unsent(scripted, headers):
    server = scripted()
    [result] = fetch_all(Request(server.url + "/", headers=headers))
    assert isinstance(result, FetchError) and "cannot send" in str(result)
    assert server.heads == [] and server.connections == 0  # refused before any connection


def test_a_method_that_is_not_a_token_is_refused_unsent(scripted):
    server = scripted()
    [result] = fetch_all(Request(server.url + "/", method="GET / HTTP/1.1\r\nX:"))
    assert isinstance(result, FetchError)
    assert server.heads == []


def test_connections_are_kept_alive_unless_the_server_says_close(scripted):
    answers = iter([OK, OK, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", OK])
    server = scripted(lambda head: next(answers))
    results = fetch_all(*(Request(f"{server.url}/{i}") for i in range(4)))
    assert all(isinstance(result, Fetched) and result.body == b"ok" for result in results)
    assert [number for number, _ in server.heads] == [1, 1, 1, 2]


def test_a_body_read_only_in_part_does_not_go_back_to_the_pool(scripted):
    """robots.txt reads a prefix: the rest of the body is still on the connection,
    which is closed, never handed to the next request."""
    size = 8 * 1024 * 1024  # more than the connection buffers before it stops reading
    server = scripted(lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
    robots = Request(server.url + "/robots.txt", meta={READ_PREFIX: 10})
    results = fetch_all(robots, Request(server.url + "/"))
    assert [len(result.body) for result in results if isinstance(result, Fetched)] == [10, size]
    assert [number for number, _ in server.heads] == [1, 2]


def test_informational_answers_are_skipped_and_close_delimited_bodies_read_to_the_end(scripted):
    answer = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\n\r\nall of it"
    server = scripted(lambda head: answer + ScriptedServer.CLOSE)
    [fetched] = fetch_all(Request(server.url + "/"))
    assert isinstance(fetched, Fetched) and (fetched.status, fetched.body) == (200, b"all of it")


def test_no_cookies_are_kept_between_requests(scripted):
    answers = iter([b"HTTP/1.1 200 OK\r\nSet-Cookie: session=s3cret\r\nContent-Length: 2\r\n\r\nok", OK])
    server = scripted(lambda head: next(answers))
    first, _ = fetch_all(Request(server.url + "/login"), Request(server.url + "/next"))
    assert isinstance(first, Fetched) and first.headers["set-cookie"] == "session=s3cret"
    assert b"cookie" not in server.heads[1][1].lower()


@pytest.mark.parametrize(
    "answer",
    [b"HTTP/1.1 abc OK\r\n\r\n", b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"],
)
def test_a_malformed_response_is_a_bad_response(scripted, answer):
    server = scripted(lambda head: answer + ScriptedServer.CLOSE)
    [result] = fetch_all(Request(server.url + "/"))
    assert isinstance(result, BadResponse)


def test_a_head_request_reads_no_body(scripted):
    server = scripted(lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    head = Request(server.url + "/", method="HEAD")
    first, second = fetch_all(head, head)
    assert isinstance(first, Fetched) and first.body == b"" and first.headers["content-length"] == "5"
    assert isinstance(second, Fetched)
    assert [number for number, _ in server.heads] == [1, 1]


# -- TLS ---------------------------------------------------------------------------------


class TlsScriptedServer(ScriptedServer):
    """`ScriptedServer` over TLS, with ``certificate`` and its key."""

    def __init__(self, certificate: tuple[Path, Path]) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*certificate)
        super().__init__(tls=context)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def test_https_to_a_certificate_the_system_trusts_is_fetched(certificate, monkeypatch):
    """The system's store (here ``SSL_CERT_FILE``) is what TLS verifies against: with
    the server's certificate in it the page is fetched, on one kept connection."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with TlsScriptedServer(certificate) as server:
        results = fetch_all(Request(server.url + "/a"), Request(server.url + "/b"))
    assert [result.body for result in results if isinstance(result, Fetched)] == [b"ok", b"ok"]
    assert [number for number, _ in server.heads] == [1, 1]


def test_https_checks_the_host_name_too(certificate, monkeypatch):
    """Trusted, but issued to 127.0.0.1: ``localhost`` is refused (TlsError), unsent."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with TlsScriptedServer(certificate) as server:
        [result] = fetch_all(Request(server.url.replace("127.0.0.1", "localhost") + "/"))
    assert isinstance(result, TlsError) and server.heads == []


# -- the pool ----------------------------------------------------------------------------


def test_at_most_concurrency_connections_at_once_and_the_rest_wait_their_turn(scripted):
    server = scripted()
    server.delay = 0.05
    requests = [Request(f"{server.url}/{i}") for i in range(12)]
    results = fetch_at_once(requests, Settings(concurrency=3))
    assert all(isinstance(result, Fetched) for result in results)
    assert server.most_open <= 3 and server.connections == 3  # kept, and used again


def test_a_request_that_gives_up_waiting_for_a_place_leaves_none_taken(scripted):
    """Cancelled while every place is taken (its deadline): the places are all there
    for the requests after it."""
    server = scripted()
    server.delay = 0.2

    async def main() -> list[int]:
        fetcher = Fetcher(Settings(concurrency=1))
        try:
            await fetcher.fetch(Request(server.url + "/answered"))  # see FirstContactGate
            busy = asyncio.ensure_future(fetcher.fetch(Request(server.url + "/busy")))
            await asyncio.sleep(0.05)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(fetcher.fetch(Request(server.url + "/gives-up")), 0.05)
            await busy
            after = await fetcher.fetch(Request(server.url + "/after"))
            return [after.status]
        finally:
            await fetcher.close()

    assert asyncio.run(main()) == [200]
    assert [head.split(b" ")[1] for _, head in server.heads] == [b"/answered", b"/busy", b"/after"]


def test_an_idle_connection_past_the_keep_alive_time_is_not_used(scripted, monkeypatch):
    monkeypatch.setattr("crawler.fetch.transport.KEEPALIVE_SECONDS", 0.0)
    server = scripted()
    fetch_all(Request(server.url + "/a"), Request(server.url + "/b"))
    assert [number for number, _ in server.heads] == [1, 2]


def test_a_connection_the_server_closed_while_idle_is_not_used(scripted):
    server = scripted(lambda head: OK + ScriptedServer.CLOSE)  # answers, then closes

    async def main() -> list[int]:
        fetcher = Fetcher(Settings())
        try:
            first = await fetcher.fetch(Request(server.url + "/a"))
            await asyncio.sleep(0.1)  # the close reaches us meanwhile
            second = await fetcher.fetch(Request(server.url + "/b"))
            return [first.status, second.status]
        finally:
            await fetcher.close()

    assert asyncio.run(main()) == [200, 200]
    assert [number for number, _ in server.heads] == [1, 2]


def _stub_lookups(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> list[str]:
    """Names resolve by ``table`` from now on; returns the names looked up, as asked."""
    lookups: list[str] = []

    class StubResolver:
        async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict[str, object]]:
            lookups.append(host)
            return [{"host": address, "port": port, "family": socket.AF_INET} for address in table[host]]

        async def close(self) -> None:
            pass

    monkeypatch.setattr("crawler.fetch.addressguard.SystemResolver", StubResolver)
    return lookups


def test_a_host_name_is_looked_up_once_and_every_address_checked(scripted, monkeypatch):
    """The answer is kept (``DNS_CACHE_SECONDS``); each lookup's addresses pass the guard."""
    server = scripted()
    lookups: list[str] = []

    class CountingResolver:
        async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict[str, object]]:
            lookups.append(host)
            return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET}]

        async def close(self) -> None:
            pass

    monkeypatch.setattr("crawler.fetch.addressguard.SystemResolver", CountingResolver)
    port = server.url.rsplit(":", 1)[1]
    named = Request(f"http://shop.test:{port}/a")
    unnamed = Request(f"http://evil.test:{port}/b")

    async def main() -> list[object]:
        guard = AddressGuard(["shop.test"])
        fetcher = Fetcher(Settings(), guard=guard)
        try:
            results: list[object] = [await fetcher.fetch(named), await fetcher.fetch(named)]
            with pytest.raises(BlockedAddress):
                await fetcher.fetch(unnamed)
            return results
        finally:
            await fetcher.close()

    assert [result.status for result in asyncio.run(main())] == [200, 200]  # type: ignore[attr-defined]
    assert lookups == ["shop.test", "evil.test"]
    assert [head.split(b" ")[1] for _, head in server.heads] == [b"/a", b"/a"]


def test_places_are_handed_over_first_come_first_served():
    """A place that is left goes to the longest waiter, even when another taker runs
    first in the same loop turn."""

    async def main() -> list[str]:
        places, order = Places(1), []

        async def take(name: str) -> None:
            await places.take()
            order.append(name)

        await take("holder")
        first, second = asyncio.create_task(take("first")), asyncio.create_task(take("second"))
        await asyncio.sleep(0)
        late = asyncio.create_task(take("late"))
        for _ in range(3):
            places.leave()
            await asyncio.sleep(0.01)
        await asyncio.gather(first, second, late)
        return order

    assert asyncio.run(main()) == ["holder", "first", "second", "late"]


@pytest.mark.parametrize("scheme", ["ftp", "ws", "gopher"])
def test_only_http_and_https_are_fetched(scripted, scheme):
    server = scripted()
    [result] = fetch_all(Request(server.url.replace("http", scheme, 1) + "/"))
    assert isinstance(result, FetchError) and server.connections == 0


def test_an_international_name_is_looked_up_in_its_ascii_form(scripted, monkeypatch):
    """The system would encode a Unicode name by IDNA 2003 (``faß`` as ``fass``, another
    domain); the lookup gets the name as the request sends it."""
    server = scripted()
    lookups = _stub_lookups(monkeypatch, {"xn--fa-hia.test": ["127.0.0.1"]})
    port = server.url.rsplit(":", 1)[1]
    [fetched] = fetch_all(Request(f"http://faß.test:{port}/"))
    assert isinstance(fetched, Fetched) and lookups == ["xn--fa-hia.test"]
    assert f"Host: xn--fa-hia.test:{port}\r\n".encode() in server.heads[0][1]


def test_an_address_that_does_not_answer_gives_way_to_the_next(scripted, monkeypatch):
    """Happy eyeballs: the first address of the name accepts no connection (a full
    accept queue); the second is tried a quarter of a second later, and answers."""
    server = scripted()
    port = int(server.url.rsplit(":", 1)[1])
    with socket.socket() as stuck:
        stuck.bind(("127.0.0.2", port))  # the name's first address, on the same port
        stuck.listen(0)
        filler = socket.create_connection(stuck.getsockname(), timeout=1)
        _stub_lookups(monkeypatch, {"dual.test": ["127.0.0.2", "127.0.0.1"]})
        try:
            [fetched] = fetch_all(Request(f"http://dual.test:{port}/"))
        finally:
            filler.close()
    assert isinstance(fetched, Fetched) and fetched.status == 200


@pytest.fixture
def slow_tls(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """``certificate`` trusted, and the TLS context a quarter of a second to load."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    quick = transport_module._verifying_context

    def slow_context() -> ssl.SSLContext:
        time.sleep(0.25)
        return quick()

    monkeypatch.setattr(transport_module, "_verifying_context", slow_context)
    return certificate


def test_a_request_cancelled_while_tls_loads_leaves_https_working(slow_tls):
    async def main(url: str) -> int:
        fetcher = Fetcher(Settings())
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(fetcher.fetch(Request(url + "/first")), 0.05)
            return (await fetcher.fetch(Request(url + "/second"))).status
        finally:
            await fetcher.close()

    with TlsScriptedServer(slow_tls) as server:
        assert asyncio.run(main(server.url)) == 200


def test_a_waiter_cancelled_as_a_place_is_left_gives_it_to_the_next():
    """Cancelled and passed over by `leave` in the same loop turn: its cancellation
    stands, and the place goes on (or back)."""

    async def main() -> tuple[bool, list[str]]:
        places, order = Places(1), []
        await places.take()
        cancelled = asyncio.create_task(places.take())
        await asyncio.sleep(0)

        async def next_one() -> None:
            await places.take()
            order.append("next")

        waiting = asyncio.create_task(next_one())
        await asyncio.sleep(0)
        cancelled.cancel()
        places.leave()
        await asyncio.gather(cancelled, waiting, return_exceptions=True)
        places.leave()
        await places.take()  # nothing was lost: a place is free again
        return cancelled.cancelled(), order

    assert asyncio.run(main()) == (True, ["next"])


def test_a_closed_transport_keeps_no_connection_it_finishes_with(slow_tls):
    """Closed while a request was still connecting (here: waiting for the TLS
    context): the connection it makes is closed when the request is done, not kept
    for nobody."""

    async def main(url: str) -> int:
        fetcher = Fetcher(Settings())
        connecting = asyncio.ensure_future(fetcher.fetch(Request(url + "/late")))
        await asyncio.sleep(0.05)
        await fetcher.close()
        status = (await connecting).status
        await asyncio.sleep(0.05)
        return status

    with TlsScriptedServer(slow_tls) as server:
        assert asyncio.run(main(server.url)) == 200
        assert server.open == 0


def test_a_lookup_out_of_descriptors_is_waited_out_not_blamed_on_the_host(monkeypatch):
    """EMFILE in the lookup is the crawler's limit: waited out and tried again, then
    said as such, never "cannot connect" to the host."""
    attempts: list[str] = []

    class Exhausted:
        async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict[str, object]]:
            attempts.append(host)
            raise OSError(errno.EMFILE, "Too many open files")

        async def close(self) -> None:
            pass

    monkeypatch.setattr("crawler.fetch.addressguard.SystemResolver", Exhausted)
    monkeypatch.setattr("crawler.fetch.client.DESCRIPTOR_WAITS", (0.01, 0.01))
    [result] = fetch_all(Request("http://busy.test/"))
    assert isinstance(result, FetchError) and "out of file descriptors" in str(result)
    assert attempts == ["busy.test"] * 3
