"""Tests for `SiteServer`, with httpx and raw sockets as clients."""

from __future__ import annotations

import asyncio
import io
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from crawler.sites.server import Hit, Page, SiteServer

TEXT = (("Content-Type", "text/plain"),)
ROUTES = {
    "/": Page(b"<h1>home</h1>"),
    "/p?id=1": Page(b"product one", headers=TEXT),
    "/slow": Page(b"slow", headers=TEXT, delay=0.6),
    "/gone": Page(b"gone", 410, TEXT),
    "/empty": Page(status=204, headers=()),
    "/cut": Page(b"0123456789", headers=(("Content-Length", "100"),)),
}


def dynamic(hit: Hit) -> Page | None:
    """Echo POST bodies and greet /hello/<name>; everything else falls through."""
    if hit.method == "POST":
        return Page(b"echo:" + hit.body, headers=TEXT)
    if hit.target.startswith("/hello/"):
        return Page(f"hello {hit.target[7:]}".encode(), headers=TEXT)
    if hit.target == "/boom":
        raise ValueError("boom")
    return None


@pytest.fixture
def server() -> Iterator[SiteServer]:
    with SiteServer(ROUTES, handler=dynamic) as running:
        yield running


def connect(server: SiteServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def get(target: str, extra: str = "", method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


Response = tuple[int, dict[str, str], bytes]


def read_responses(sock: socket.socket, count: int) -> list[Response]:
    """Read ``count`` responses framed by Content-Length."""
    with sock.makefile("rb") as reader:
        return [read_response(reader) for _ in range(count)]


def read_response(reader: io.BufferedReader, head_only: bool = False) -> Response:
    """Read one response from ``reader``; after a HEAD (``head_only``) expect no body."""
    status = int(reader.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := reader.readline().decode().rstrip("\r\n")) != "":
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    length = 0 if head_only else int(headers.get("content-length", "0"))
    return status, headers, reader.read(length)


def test_route_is_served_with_length_and_headers(server: SiteServer) -> None:
    response = httpx.get(server.url + "/")
    assert response.status_code == 200
    assert response.content == b"<h1>home</h1>"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-length"] == "13"
    assert response.headers["connection"] == "keep-alive"
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_route_lookup_is_by_exact_target_including_query(server: SiteServer) -> None:
    assert httpx.get(server.url + "/p?id=1").text == "product one"
    assert httpx.get(server.url + "/p?id=2").status_code == 404
    assert httpx.get(server.url + "/p").status_code == 404


def test_unknown_target_is_plain_404(server: SiteServer) -> None:
    response = httpx.get(server.url + "/nowhere")
    assert (response.status_code, response.content) == (404, b"not found")
    assert response.headers["content-type"].startswith("text/plain")


def test_status_has_reason_phrase(server: SiteServer) -> None:
    with connect(server) as sock:
        sock.sendall(get("/gone"))
        with sock.makefile("rb") as reader:
            assert reader.readline() == b"HTTP/1.1 410 Gone\r\n"


def test_handler_answers_and_none_falls_through(server: SiteServer) -> None:
    assert httpx.get(server.url + "/hello/ann").text == "hello ann"
    assert httpx.post(server.url + "/anything", content=b"abc").text == "echo:abc"
    assert httpx.get(server.url + "/other").status_code == 404


def test_handler_error_is_500(server: SiteServer) -> None:
    response = httpx.get(server.url + "/boom")
    assert response.status_code == 500
    assert "boom" in response.text


def test_keep_alive_serves_three_requests_on_one_socket(server: SiteServer) -> None:
    statuses = []
    with connect(server) as sock:
        for target in ("/", "/p?id=1", "/missing"):
            sock.sendall(get(target))
            [(status, headers, _)] = read_responses(sock, 1)
            assert headers["connection"] == "keep-alive"
            statuses.append(status)
    assert statuses == [200, 200, 404]
    assert [hit.target for hit in server.hits] == ["/", "/p?id=1", "/missing"]
    assert server.connections == 1


def test_pipelined_requests_in_one_write_are_answered_in_order(
    server: SiteServer,
) -> None:
    post = get("/echo", "Content-Length: 5\r\n", method="POST") + b"hello"
    with connect(server) as sock:
        sock.sendall(get("/") + post + get("/slow") + get("/p?id=1"))
        bodies = [body for _, _, body in read_responses(sock, 4)]
    assert bodies == [b"<h1>home</h1>", b"echo:hello", b"slow", b"product one"]


def test_request_split_across_reads(server: SiteServer) -> None:
    request = get("/echo", "Content-Length: 6\r\n", method="POST") + b"abcdef"
    with connect(server) as sock:
        for i in range(0, len(request), 7):
            sock.sendall(request[i : i + 7])
            time.sleep(0.005)
        [(status, _, body)] = read_responses(sock, 1)
    assert (status, body) == (200, b"echo:abcdef")


def test_head_sends_headers_only(server: SiteServer) -> None:
    with connect(server) as sock:
        sock.sendall(get("/", method="HEAD") + get("/p?id=1"))
        with sock.makefile("rb") as reader:
            status, headers, _ = read_response(reader, head_only=True)
            _, _, body = read_response(reader)
    assert (status, headers["content-length"]) == (200, "13")
    assert body == b"product one"


def test_no_content_has_no_length_or_body(server: SiteServer) -> None:
    response = httpx.get(server.url + "/empty")
    assert (response.status_code, response.content) == (204, b"")
    assert "content-length" not in response.headers


@pytest.mark.parametrize(
    ("version", "extra", "keeps"),
    [
        ("HTTP/1.1", "Connection: close\r\n", False),
        ("HTTP/1.0", "", False),
        ("HTTP/1.0", "Connection: keep-alive\r\n", True),
    ],
)
def test_connection_close_rules(server: SiteServer, version: str, extra: str, keeps: bool) -> None:
    with connect(server) as sock:
        sock.sendall(f"GET / {version}\r\n{extra}\r\n".encode())
        [(_, headers, _)] = read_responses(sock, 1)
        sock.settimeout(0.3)
        closed = _closed_by_peer(sock)
    assert headers["connection"] == ("keep-alive" if keeps else "close")
    assert closed is not keeps


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


def test_page_with_own_content_length_is_cut_short(server: SiteServer) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(server.url + "/cut")


def test_delay_does_not_block_other_clients(server: SiteServer) -> None:
    async def timed(client: httpx.AsyncClient, target: str) -> float:
        await client.get(server.url + target)
        return time.monotonic()

    async def main() -> tuple[float, float, float]:
        start = time.monotonic()
        async with httpx.AsyncClient() as client:
            slow = asyncio.create_task(timed(client, "/slow"))
            await asyncio.sleep(0.05)
            fast = await timed(client, "/")
            return start, fast, await slow

    start, fast, slow = asyncio.run(main())
    assert fast - start < 0.4
    assert slow - start >= 0.6


def test_hits_record_method_target_headers_time_and_body(server: SiteServer) -> None:
    before = time.time()
    httpx.get(server.url + "/p?id=1", headers={"X-Test": "yes"})
    httpx.post(server.url + "/form", content=b"a=1")
    after = time.time()
    [first, second] = server.hits
    assert (first.method, first.target, first.body) == ("GET", "/p?id=1", b"")
    assert first.headers["x-test"] == "yes"
    assert before <= first.time <= second.time <= after
    assert (second.method, second.body) == ("POST", b"a=1")
    assert server.hits_for("/form") == [second]


def test_hits_not_recorded_when_disabled() -> None:
    with SiteServer(ROUTES, record_hits=False) as server:
        assert httpx.get(server.url + "/").status_code == 200
    assert server.hits == []


def test_connections_are_counted(server: SiteServer) -> None:
    with httpx.Client() as client:
        for _ in range(3):
            client.get(server.url + "/")
    httpx.get(server.url + "/")
    assert server.connections == 2


@pytest.mark.parametrize(
    "request_line",
    [b"GARBAGE\r\n\r\n", b"GET /\r\n\r\n", b"GET / SPDY/3\r\n\r\n", b"GET / HTTP/1.1\r\nno colon\r\n\r\n"],
)
def test_bad_request_gets_400_and_close(server: SiteServer, request_line: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(request_line + get("/"))
        [(status, headers, body)] = read_responses(sock, 1)
        assert sock.recv(1) == b""
    assert (status, headers["connection"], body) == (400, "close", b"bad request")


def test_chunked_request_body_is_not_implemented(server: SiteServer) -> None:
    with connect(server) as sock:
        sock.sendall(get("/", "Transfer-Encoding: chunked\r\n", method="POST"))
        [(status, _, _)] = read_responses(sock, 1)
    assert status == 501


def test_start_and_stop_in_thread_twice() -> None:
    server = SiteServer(ROUTES)
    for _ in range(2):
        with server:
            assert httpx.get(server.url + "/").status_code == 200
        server.stop()  # idempotent
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/")
    assert server.connections == 2


def test_stop_drops_open_and_pending_connections() -> None:
    server = SiteServer(ROUTES).start()
    with connect(server) as idle, connect(server) as waiting:
        waiting.sendall(get("/slow"))
        time.sleep(0.1)
        server.stop()
        assert idle.recv(1) == b""
        assert waiting.recv(1) == b""


def test_routes_can_be_replaced_while_running(server: SiteServer) -> None:
    server.routes = {"/new": Page(b"new")}
    assert httpx.get(server.url + "/new").text == "new"
    assert httpx.get(server.url + "/").status_code == 404


def test_start_async_runs_in_the_current_loop() -> None:
    async def main() -> int:
        server = SiteServer(ROUTES)
        await server.start_async()
        async with httpx.AsyncClient() as client:
            response = await client.get(server.url + "/")
        await server.stop_async()
        await server.stop_async()
        return response.status_code

    assert asyncio.run(main()) == 200


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_loopback() -> None:
    with SiteServer(ROUTES, host="::1") as server:
        assert server.url == f"http://[::1]:{server.port}"
        assert httpx.get(server.url + "/").text == "<h1>home</h1>"
