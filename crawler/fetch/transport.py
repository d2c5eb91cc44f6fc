"""The httpx transport every request goes through: aiohttp's connection pool, hardened.

httpx is the client API: the fetcher builds an ``httpx.Request`` and reads an
``httpx.Response``. Underneath, httpcore 1.0's pool does O(connections^2) work per
request, so `PoolTransport` takes its connections from aiohttp's pool instead and
does the HTTP/1.1 exchange on them itself: it writes the request head, and reads the
response through the connection's own protocol (aiohttp's llhttp parser, with its
limits on lines and headers). ``aiohttp.ClientSession`` is not on the path: its
per-request machinery (request and response objects, cookies, tracing, redirects)
cost more main-process CPU than the exchange itself (bench ``fetchpath``), and the
crawler keeps no cookies (README). It keeps the promises of the README's
hostile-web table on the way:

- every address a host name resolves to is checked by the address guard at connect
  time (`GuardedResolver`), and aiohttp connects to exactly the checked addresses;
  IP literals, which aiohttp connects to without resolving, are checked here;
- the body is handed up raw (``auto_decompress`` off): the fetcher reads it under
  the size cap and decodes it with the bounded decoders;
- nothing is re-sent unseen: a request is written once, on one connection, and a
  connection that breaks fails the attempt, so a retry is always the engine's,
  bounded and counted;
- the request head is written only if every part of it is well formed: a CR, LF or
  NUL in a header, or a method that is not a token, is refused, never sent;
- TLS certificates are verified (aiohttp's default context, whose certificates
  `certificates` loads in a thread: HTTPS waits for them), and proxy variables in
  the environment are ignored: only the ``proxy`` setting routes through a proxy;
- ``connect_timeout`` bounds each connection attempt; the fetcher adds the
  first-byte and total deadlines of each request.

File descriptors: idle keep-alive connections are bounded (`BoundedConnector`),
the least recently used closed first, and a connect that fails for want of
descriptors (EMFILE) raises `OutOfDescriptors`, which the fetcher waits out and
retries: the crawler's own limit is never a host's fault.

With a ``proxy``, the proxy resolves the target, so the target's addresses are
checked here first (the proxy's own host counts as named). A proxy that resolves
differently from us is outside what the guard can see.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import re
import resource
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import aiohttp
import httpx
from aiohttp import hdrs
from aiohttp.client_reqrep import ClientRequest, RequestInfo
from aiohttp.connector import Connection
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .addressguard import AddressGuard, GuardedResolver
from .certificates import certificates_loaded

# Descriptors kept for everything but connections: the output, a job's database,
# the parse workers' pipes, Redis, logs, the resolver's threads.
RESERVED_DESCRIPTORS = 128
# Raising the soft limit further buys nothing a crawl can use.
WANTED_DESCRIPTORS = 1 << 16
DNS_CACHE_SECONDS = 300
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})
# Origins whose pool key is kept (a crawl of more hosts makes the rest again).
MAX_ORIGINS_KEPT = 4096

RawHeaders = tuple[tuple[bytes, bytes], ...]
# Header names the request head sets itself, whatever the request says.
_SET_HERE = frozenset({b"content-length", b"transfer-encoding", b"proxy-authorization"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # aiohttp's: these take a body
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 5.6.2
_TOKEN_BYTES = re.compile(_TOKEN.pattern.encode())
_NOT_IN_TARGET = re.compile(rb"[\x00-\x20\x7f]")
_NOT_IN_VALUE = re.compile(rb"[\x00\r\n]")
_VALID_NAMES: set[bytes] = set()  # header names found to be tokens, in lower case
MAX_NAMES_KEPT = 1024


class OutOfDescriptors(Exception):
    """A connection could not be opened: this process has no file descriptor left.
    Nothing was sent; the host is not at fault."""


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard one where permitted; return
    the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = WANTED_DESCRIPTORS if hard == resource.RLIM_INFINITY else min(hard, WANTED_DESCRIPTORS)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):  # some systems refuse what getrlimit allowed
            return soft
        return wanted
    return soft


def idle_connection_budget(descriptors: int, connections: int) -> int:
    """How many idle keep-alive connections fit beside ``connections`` busy ones and
    the reserve in ``descriptors``."""
    return max(0, descriptors - connections - RESERVED_DESCRIPTORS)


class BoundedConnector(aiohttp.TCPConnector):
    """A `TCPConnector` that keeps at most ``max_idle`` idle keep-alive connections,
    across all hosts, closing the least recently used first. (aiohttp's ``limit``
    counts busy connections only: with many hosts, idle ones would pile up for the
    keep-alive timeout until the process runs out of descriptors.)"""

    def __init__(self, *, max_idle: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_idle = max_idle
        self._idle: OrderedDict[Any, Any] = OrderedDict()  # protocol -> ConnectionKey, oldest first

    def _release(self, key: Any, protocol: Any, *args: Any, **kwargs: Any) -> None:
        super()._release(key, protocol, *args, **kwargs)
        if protocol.is_connected() and not self._closed:
            self._idle[protocol] = key
            while len(self._idle) > self._max_idle:
                self._close_idle(*self._idle.popitem(last=False))

    async def _get(self, key: Any, *args: Any) -> Any:
        connection = await super()._get(key, *args)
        if connection is not None:
            self._idle.pop(connection.protocol, None)
        return connection

    def _cleanup(self) -> None:
        super()._cleanup()
        self._idle = OrderedDict((p, k) for p, k in self._idle.items() if p.is_connected())

    def _close_idle(self, protocol: Any, key: Any) -> None:
        pool = self._conns.get(key)
        kept = [entry for entry in pool or () if entry[0] is not protocol]
        if pool is not None and len(kept) < len(pool):
            pool.clear()
            pool.extend(kept)
            if not pool:
                del self._conns[key]
        protocol.close()

    def close_idle(self, count: int) -> None:
        """Close up to ``count`` idle connections, least recently used first."""
        for _ in range(min(count, len(self._idle))):
            self._close_idle(*self._idle.popitem(last=False))


class PoolTransport(httpx.AsyncBaseTransport):
    """An httpx transport over aiohttp's connection pool (see the module docstring).

    ``connections``: busy connections at most (requests wait for a free one).
    ``proxy``: an ``http://`` or ``https://`` proxy URL for every request. Create and
    use it inside a running event loop."""

    def __init__(
        self,
        guard: AddressGuard,
        *,
        connections: int,
        connect_timeout: float,
        proxy: str | None = None,
    ) -> None:
        self._guard = guard
        self._connections = connections
        self._proxy = URL(proxy) if proxy else None
        self._proxy_tls = self._proxy is not None and self._proxy.scheme == "https"
        # "" through a proxy without credentials; None without a proxy
        self._proxy_authorization = _proxy_authorization(self._proxy) if self._proxy else None
        self._certificates_pending = True  # see .certificates
        # The fetcher keeps the first-byte and total deadlines (one timer for both);
        # a read timeout here would cost a timer per chunk.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._connector: BoundedConnector | None = None
        self._resolver: GuardedResolver | None = None
        self._origins: dict[tuple[str, bytes], ClientRequest] = {}
        self._checked_targets: dict[str, float] = {}
        self._literals_checked: set[bytes] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.netloc not in self._literals_checked:
            self._guard.check_url(str(url))  # IP literals: aiohttp does not resolve them
            self._literals_checked.add(url.netloc)  # the same verdict next time
        connector = self._connector or self._open_pool()
        if self._certificates_pending and (url.scheme == "https" or self._proxy_tls):
            await certificates_loaded()
            self._certificates_pending = False
        if self._proxy is not None:
            await self._check_target(url)
        origin = self._origin(url)
        head = request_head(request, origin.headers[hdrs.HOST], self._proxy_authorization)  # refused unsent
        try:
            connection = await connector.connect(origin, [], self._timeout)
        except aiohttp.ClientConnectorError as exc:
            self._out_of_descriptors(exc)
            raise
        try:
            status, raw_headers, body = await _exchange(connection, request, head)
        except BaseException:
            connection.close()  # half an exchange: the connection cannot be reused
            raise
        return httpx.Response(
            status,
            headers=raw_headers,
            stream=_RawBody(connection, body),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    def _origin(self, url: httpx.URL) -> ClientRequest:
        """The request aiohttp's pool knows ``url``'s origin by: it picks the
        connection (and the proxy), and says the ``Host``. One per origin, kept."""
        key = (url.scheme, url.netloc)
        origin = self._origins.get(key)
        if origin is None:
            if len(self._origins) >= MAX_ORIGINS_KEPT:
                self._origins.clear()
            root = URL.build(scheme=url.scheme, authority=url.netloc.decode("ascii"), encoded=True)
            origin = ClientRequest("GET", root, proxy=self._proxy, loop=asyncio.get_running_loop())
            self._origins[key] = origin
        return origin

    def _open_pool(self) -> BoundedConnector:
        self._resolver = GuardedResolver(self._guard)  # checks every resolved address
        descriptors = raise_descriptor_limit()
        self._connector = BoundedConnector(
            max_idle=idle_connection_budget(descriptors, self._connections),
            limit=self._connections,
            limit_per_host=0,
            ttl_dns_cache=DNS_CACHE_SECONDS,
            resolver=self._resolver,
        )
        return self._connector

    def _out_of_descriptors(self, exc: aiohttp.ClientConnectorError) -> None:
        """Turn EMFILE into `OutOfDescriptors`, after closing half the idle connections."""
        if exc.os_error.errno in _OUT_OF_DESCRIPTORS and self._connector is not None:
            self._connector.close_idle(max(1, len(self._connector._idle) // 2))
            raise OutOfDescriptors(str(exc)) from exc

    async def _check_target(self, url: httpx.URL) -> None:
        """Through a proxy: resolve the target here and let the guard check it."""
        host = url.host
        if self._guard.is_exempt(host) or self._checked_targets.get(host, 0.0) > time.monotonic():
            return
        assert self._resolver is not None
        await self._resolver.resolve(host, url.port or 0, socket.AF_UNSPEC)
        self._checked_targets[host] = time.monotonic() + DNS_CACHE_SECONDS

    async def aclose(self) -> None:
        if self._connector is not None:
            await self._connector.close()
        if self._resolver is not None:
            await self._resolver.close()


async def _exchange(
    connection: Connection, request: httpx.Request, head: bytes
) -> tuple[int, RawHeaders, StreamReader]:
    """Send ``request`` (its ``head`` made already) on ``connection``; return the
    response's status, raw headers and body stream, once its head is in (informational
    1xx answers skipped)."""
    protocol = connection.protocol
    transport = protocol.transport if protocol is not None else None
    if protocol is None or transport is None or transport.is_closing():
        raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")
    method = request.method
    protocol.set_response_params(skip_payload=method == "HEAD", read_until_eof=True, auto_decompress=False)
    transport.write(head + request.content)
    while True:
        try:
            message, body = await protocol.read()
        except HttpProcessingError as exc:
            info = RequestInfo(URL(str(request.url), encoded=True), method, CIMultiDictProxy(CIMultiDict()))
            raise aiohttp.ClientResponseError(info, (), status=exc.code, message=exc.message) from exc
        if not 100 <= message.code <= 199 or message.code == 101:
            return message.code, message.raw_headers, body


def request_head(request: httpx.Request, host: str, proxy_authorization: str | None = None) -> bytes:
    """The request line and header block of ``request``, as aiohttp would write them:
    ``host`` (unless the request names its own ``Host``), a ``Content-Length``
    of the body for requests that have one or that take one, and a ``Content-Type``
    for those when the request gives none; the URL's ``user:password@`` as basic
    auth, unless the request has its own ``Authorization``. With a proxy
    (``proxy_authorization`` its credentials, if any), plain-HTTP targets are in
    absolute form with the proxy's credentials. Refuses (``ValueError``) a method,
    target or header that would break the block (a CR, LF or NUL, a space in a name)."""
    url, method, body = request.url, request.method, request.content
    proxied = proxy_authorization is not None and url.scheme == "http"
    lines = [_request_line(method, str(url).encode("ascii") if proxied else url.raw_path)]
    given = _header_lines(request.headers.raw, lines)
    if b"host" not in given:
        lines.insert(1, b"Host: %s\r\n" % host.encode("ascii"))
    if url.userinfo and b"authorization" not in given:
        lines.append(b"Authorization: %s\r\n" % _basic_auth(url.userinfo).encode("latin-1"))
    if body or method in _BODY_METHODS:
        lines.append(b"Content-Length: %d\r\n" % len(body))
        if b"content-type" not in given:
            lines.append(b"Content-Type: application/octet-stream\r\n")
    if proxied and proxy_authorization:
        lines.append(b"Proxy-Authorization: %s\r\n" % proxy_authorization.encode("latin-1"))
    lines.append(b"\r\n")
    return b"".join(lines)


def _proxy_authorization(proxy: URL) -> str:
    """``Proxy-Authorization`` for ``http://user:password@proxy/``; ``""`` without credentials."""
    userinfo = proxy.raw_user or ""
    if proxy.raw_password is not None:
        userinfo += ":" + proxy.raw_password
    return _basic_auth(userinfo.encode("ascii")) if userinfo else ""


def _basic_auth(userinfo: bytes) -> str:
    """The ``Authorization`` of a URL's ``user:password@`` (RFC 7617, in UTF-8)."""
    user, _, password = userinfo.decode("ascii").partition(":")
    credentials = f"{unquote(user)}:{unquote(password)}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")


def _request_line(method: str, target: bytes) -> bytes:
    if not _TOKEN.fullmatch(method) or _NOT_IN_TARGET.search(target):
        raise ValueError(f"cannot send {method!r} {target[:200]!r}: not a valid request line")
    return b"%s %s HTTP/1.1\r\n" % (method.encode("ascii"), target)


def _header_lines(headers: list[tuple[bytes, bytes]], lines: list[bytes]) -> set[bytes]:
    """Append a line per header to ``lines`` (but those `request_head` sets itself);
    return the names given, in lower case."""
    given = set()
    for name, value in headers:
        lowered = name.lower()
        if lowered not in _VALID_NAMES:
            _check_name(name, lowered)
        given.add(lowered)
        if lowered not in _SET_HERE:
            lines.append(b"%s: %s\r\n" % (name, value))
    if _NOT_IN_VALUE.search(b"".join(value for _, value in headers)):
        bad = next((name, value) for name, value in headers if _NOT_IN_VALUE.search(value))
        raise ValueError(f"cannot send the header {bad[0][:100]!r}: {bad[1][:100]!r}")
    return given


def _check_name(name: bytes, lowered: bytes) -> None:
    """Raise ``ValueError`` unless ``name`` is a token; remember it if it is."""
    if not _TOKEN_BYTES.fullmatch(name):
        raise ValueError(f"cannot send the header name {name[:100]!r}: not a token")
    if len(_VALID_NAMES) < MAX_NAMES_KEPT:
        _VALID_NAMES.add(lowered)


class _RawBody(httpx.AsyncByteStream):
    """The undecoded body as aiohttp reads it; closing it hands the connection back
    to the pool, which closes it instead when the body was not read to its end or
    the server asked to close."""

    def __init__(self, connection: Connection, body: StreamReader) -> None:
        self._connection = connection
        self._body = body

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._body.iter_any()  # no generator of our own around it

    async def aclose(self) -> None:
        self._connection.release()
