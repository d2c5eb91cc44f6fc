"""The httpx transport every request goes through: our own HTTP/1.1 connection pool.

httpx is the client API: the fetcher builds an ``httpx.Request`` and reads an
``httpx.Response``. Underneath, httpcore 1.0's pool does O(connections^2) work per
request, and aiohttp's, measured in its place, cost a tenth of a crawl's time in
imports alone (``bench/README.md``); `PoolTransport` keeps its own pool of asyncio
connections (`crawler.fetch.http1`), and keeps the promises of the README's
hostile-web table on the way:

- every address a host name resolves to is checked by the address guard
  (`GuardedResolver`) before a connection is made, and the connection goes to
  exactly the checked addresses; IP literals are checked here;
- the body is handed up raw: the fetcher reads it under the size cap and decodes it
  with the bounded decoders, and the parser (`crawler.fetch.http1`) bounds the
  response head, its lines and its fields;
- nothing is re-sent unseen: a request is written once, on one connection, and a
  connection that breaks fails the attempt, so a retry is always the engine's,
  bounded and counted;
- the request head is written only if every part of it is well formed: a CR, LF or
  NUL in a header, or a method that is not a token, is refused before a connection
  is even taken;
- TLS certificates are verified (the system's store, loaded in a thread the first
  time a crawl speaks HTTPS), and proxy variables in the environment are ignored:
  only the ``proxy`` setting routes through a proxy (`crawler.fetch.proxied`, on
  aiohttp's pool, which speaks to proxies; aiohttp loads only then);
- ``connect_timeout`` bounds each connection attempt; the fetcher adds the
  first-byte and total deadlines of each request. No cookies are kept (README).

File descriptors: at most ``connections`` connections are busy (requests wait for
one), idle keep-alive connections are bounded by what the descriptor limit leaves,
the least recently used closed first, and a connect that fails for want of
descriptors (EMFILE) raises `OutOfDescriptors`, which the fetcher waits out and
retries: the crawler's own limit is never a host's fault.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import os
import re
import resource
import socket
import ssl
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import aiohappyeyeballs
import httpx

from .._errors import FetchTimeout, TlsError, TransientFetchError
from .addressguard import AddressGuard, GuardedResolver
from .certificates import deferred_certificates
from .http1 import Http1Connection

if TYPE_CHECKING:
    from .proxied import ProxyTransport

Origin = tuple[str, str, int]  # scheme, host (ASCII), port
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]  # as getaddrinfo gives them

# Descriptors kept for everything but connections: the output, a job's database,
# the parse workers' pipes, Redis, logs, the resolver's threads.
RESERVED_DESCRIPTORS = 128
# Raising the soft limit further buys nothing a crawl can use.
WANTED_DESCRIPTORS = 1 << 16
DNS_CACHE_SECONDS = 300
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})
# Origins whose pool key is kept (a crawl of more hosts makes the rest again).
MAX_ORIGINS_KEPT = 4096

# aiohttp's keep-alive timeout: an idle connection older than this is not reused.
KEEPALIVE_SECONDS = 15.0
# RFC 8305's connection attempt delay, as aiohttp has it: the next address is tried
# this long after the last, while that attempt goes on.
HAPPY_EYEBALLS_DELAY = 0.25
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


class PoolTransport(httpx.AsyncBaseTransport):
    """An httpx transport over our own pool of HTTP/1.1 connections (see the module
    docstring); through aiohttp's when there is a ``proxy``.

    ``connections``: busy connections at most (requests wait for a free one, first
    come first served). ``proxy``: an ``http://`` or ``https://`` proxy URL for every
    request. Create and use it inside a running event loop."""

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
        self._connect_timeout = connect_timeout
        self._proxied: ProxyTransport | None = None
        if proxy:
            with deferred_certificates():  # aiohttp loads here, its CA store in a thread
                from .proxied import ProxyTransport  # noqa: PLC0415  (only with a proxy)

            self._proxied = ProxyTransport(
                guard, connections=connections, connect_timeout=connect_timeout, proxy=proxy
            )
        self._lookups = GuardedLookups(guard)
        self._literals_checked: set[bytes] = set()
        self._places = Places(connections)
        self._idle = IdleConnections(connections)
        self._all: set[Http1Connection] = set()
        self._tls: asyncio.Future[ssl.SSLContext] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"cannot fetch {url.scheme}: URLs")
        if url.netloc not in self._literals_checked:
            self._guard.check_url(str(url))  # IP literals: no lookup checks them
            if len(self._literals_checked) >= MAX_ORIGINS_KEPT:
                self._literals_checked.clear()
            self._literals_checked.add(url.netloc)  # the same verdict next time
        if self._proxied is not None:
            return await self._proxied.handle_async_request(request)
        head = request_head(request, url.netloc.decode("ascii"))  # refused unsent
        # the host in ASCII (IDNA 2008, as httpx encodes it): the system's lookup and
        # TLS would encode a Unicode name by IDNA 2003, another host for some names
        host = url.raw_host.decode("ascii")
        origin = (url.scheme, host, url.port or (443 if url.scheme == "https" else 80))
        await self._places.take()
        connection = None
        try:
            connection = self._idle.reuse(origin, self._drop) or await self._connect(origin)
            connection.send(head + request.content, head_request=request.method == "HEAD")
            status, raw_headers = await connection.head()
        except BaseException:
            if connection is not None:
                self._drop(connection)  # half an exchange: the connection cannot be reused
            self._places.leave()
            raise
        return httpx.Response(
            status,
            headers=raw_headers,
            stream=_Body(self, connection, origin),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    def release(self, connection: Http1Connection, origin: Origin) -> None:
        """The exchange on ``connection`` is over: keep it for the next request to
        ``origin`` if it can carry one, close it otherwise."""
        if connection.reusable and not self._places.closed:
            for expired in self._idle.keep(connection, origin):
                self._drop(expired)
        else:
            self._drop(connection)
        self._places.leave()

    def _drop(self, connection: Http1Connection) -> None:
        connection.close()
        self._all.discard(connection)

    def close_idle(self, count: int) -> None:
        """Close up to ``count`` idle connections, least recently used first."""
        for connection in self._idle.oldest(count):
            self._drop(connection)

    # -- new connections ------------------------------------------------------------

    async def _connect(self, origin: Origin) -> Http1Connection:
        scheme, host, port = origin
        tls = await self._tls_context() if scheme == "https" else None
        try:
            addresses = await self._lookups.addresses(host, port)
        except OutOfDescriptors:
            self._shed_idle()
            raise
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                sock = await aiohappyeyeballs.start_connection(
                    addresses, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1
                )
                try:
                    _, connection = await loop.create_connection(
                        Http1Connection, sock=sock, ssl=tls, server_hostname=host.rstrip(".") if tls else None
                    )
                except BaseException:
                    sock.close()
                    raise
        except TimeoutError:
            raise FetchTimeout(f"cannot connect to {host}:{port} within {self._connect_timeout:g}s") from None
        except ssl.SSLError as exc:  # before OSError: it is one
            raise TlsError(f"TLS with {host}:{port} failed: {exc}") from None
        except OSError as exc:
            self._out_of_descriptors(exc)
            raise TransientFetchError(f"cannot connect to {host}:{port}: {failure_reason(exc)}") from None
        except RuntimeError as exc:  # aiohappyeyeballs: uvloop may raise these for OSErrors
            raise TransientFetchError(f"cannot connect to {host}:{port}: {exc}") from None
        self._all.add(connection)
        return connection

    def _out_of_descriptors(self, exc: OSError) -> None:
        """Turn EMFILE into `OutOfDescriptors`, after closing half the idle connections."""
        if exc.errno in _OUT_OF_DESCRIPTORS:
            self._shed_idle()
            raise OutOfDescriptors(str(exc)) from exc

    def _shed_idle(self) -> None:
        """Out of descriptors: close half the idle connections (at least one)."""
        self.close_idle(max(1, len(self._idle) // 2))

    async def _tls_context(self) -> ssl.SSLContext:
        """The verifying TLS context, its certificates loaded once, in a thread. A
        request cancelled while it loads does not cancel the load for the others."""
        if self._tls is None:
            self._tls = asyncio.get_running_loop().run_in_executor(None, _verifying_context)
        loading = self._tls
        try:
            return await asyncio.shield(loading)
        finally:
            if loading.done() and (loading.cancelled() or loading.exception() is not None):
                self._tls = None  # the next request tries again

    async def aclose(self) -> None:
        if self._proxied is not None:
            await self._proxied.aclose()
        self._places.close()
        for connection in self._all:
            connection.close()
        self._all.clear()
        self._idle.clear()
        await self._lookups.close()


class Places:
    """At most ``size`` exchanges at once; the others wait, first come first served:
    a place that is left is handed to the longest waiter, not taken back by whoever
    runs next."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._busy = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def take(self) -> None:
        if self._closed:
            raise TransientFetchError("the transport is closed")
        if self._busy < self._size and not self._waiting:
            self._busy += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter  # the place is ours when it is set: handed over in `leave`
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # handed a place, then cancelled: the next one gets it
            else:
                with contextlib.suppress(ValueError):  # taken out by `leave` already
                    self._waiting.remove(waiter)
            raise
        if self._closed:
            self.leave()
            raise TransientFetchError("the transport is closed")

    def leave(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # handed over: busy stays as it is
                return
        self._busy -= 1

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Refuse new takers; those waiting give up."""
        self._closed = True
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._busy += 1  # given back in take


class IdleConnections:
    """Kept-alive connections by origin: at most what the descriptor limit leaves
    beside ``connections`` busy ones (the least recently used closed first), each
    for at most ``KEEPALIVE_SECONDS``."""

    def __init__(self, connections: int) -> None:
        self._connections = connections
        self._lru: OrderedDict[Http1Connection, Origin] = OrderedDict()  # oldest first
        self._of: dict[Origin, list[Http1Connection]] = {}
        self._max: int | None = None

    def __len__(self) -> int:
        return len(self._lru)

    def keep(self, connection: Http1Connection, origin: Origin) -> list[Http1Connection]:
        """Keep ``connection``; return those to close now (over the bound, or expired)."""
        if self._max is None:
            self._max = idle_connection_budget(raise_descriptor_limit(), self._connections)
        self._lru[connection] = origin
        self._of.setdefault(origin, []).append(connection)
        now = asyncio.get_running_loop().time()
        dropped = []
        while self._lru and (len(self._lru) > self._max or _expired(next(iter(self._lru)), now)):
            dropped.append(self._forget(*self._lru.popitem(last=False)))
        return dropped

    def reuse(self, origin: Origin, drop: Callable[[Http1Connection], None]) -> Http1Connection | None:
        """The most recently used idle connection to ``origin`` that can carry an
        exchange; those that cannot are given to ``drop`` on the way."""
        kept = self._of.get(origin)
        now = asyncio.get_running_loop().time()
        while kept:
            connection = kept.pop()
            del self._lru[connection]
            if connection.reusable and not _expired(connection, now):
                break
            drop(connection)
        else:
            connection = None
        if kept is not None and not kept:
            del self._of[origin]
        return connection

    def oldest(self, count: int) -> list[Http1Connection]:
        """Take up to ``count`` of the least recently used connections out."""
        return [self._forget(*self._lru.popitem(last=False)) for _ in range(min(count, len(self._lru)))]

    def clear(self) -> None:
        self._lru.clear()
        self._of.clear()

    def _forget(self, connection: Http1Connection, origin: Origin) -> Http1Connection:
        kept = self._of.get(origin, [])
        if connection in kept:
            kept.remove(connection)
        if not kept:
            self._of.pop(origin, None)
        return connection


def _expired(connection: Http1Connection, now: float) -> bool:
    return now - connection.idle_since >= KEEPALIVE_SECONDS


class GuardedLookups:
    """The addresses of host names, every one checked by the guard, as
    ``aiohappyeyeballs`` takes them; kept for ``DNS_CACHE_SECONDS``, and looked up
    once for all the requests that ask at the same time."""

    def __init__(self, guard: AddressGuard) -> None:
        self._resolver = GuardedResolver(guard)
        self._known: dict[tuple[str, int], tuple[float, list[AddrInfo]]] = {}
        self._pending: dict[tuple[str, int], asyncio.Future[list[AddrInfo]]] = {}

    async def addresses(self, host: str, port: int) -> list[AddrInfo]:
        literal = _literal_family(host)
        if literal is not None:  # an IP literal is its own address (checked already)
            return [(literal, socket.SOCK_STREAM, 0, "", _sockaddr(literal, host, port))]
        key, now = (host, port), asyncio.get_running_loop().time()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            return known[1]
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(self._look_up(host, port))
            pending.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(pending)

    def _settled(self, key: tuple[str, int], done: asyncio.Future[list[AddrInfo]]) -> None:
        self._pending.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every asker may have given up meanwhile

    async def _look_up(self, host: str, port: int) -> list[AddrInfo]:
        try:
            results = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
        except OSError as exc:
            if exc.errno in _OUT_OF_DESCRIPTORS:  # ours, not the host's: waited out, tried again
                raise OutOfDescriptors(str(exc)) from exc
            raise TransientFetchError(f"cannot connect to {host}:{port}: {failure_reason(exc)}") from None
        found: list[AddrInfo] = [
            (r["family"], socket.SOCK_STREAM, 0, "", _sockaddr(r["family"], r["host"], port)) for r in results
        ]
        if len(self._known) >= MAX_ORIGINS_KEPT:
            self._known.clear()
        self._known[(host, port)] = (asyncio.get_running_loop().time() + DNS_CACHE_SECONDS, found)
        return found

    async def close(self) -> None:
        await self._resolver.close()


def _sockaddr(family: int, address: str, port: int) -> tuple[Any, ...]:
    """``address`` (an IPv6 one may carry a zone) as ``connect`` takes it."""
    return socket.getaddrinfo(address, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)[0][4]


def _verifying_context() -> ssl.SSLContext:
    context = ssl.create_default_context()  # verifies certificates and host names
    context.set_alpn_protocols(["http/1.1"])
    return context


def _literal_family(host: str) -> int | None:
    """``AF_INET``/``AF_INET6`` when ``host`` is an IP address, else ``None``."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


def failure_reason(exc: OSError) -> str:
    """Why a connection failed, in the system's words: ``Connection refused``, not
    asyncio's ``Connect call failed`` or ``Multiple exceptions: [Errno 111] ...``."""
    if exc.errno is not None and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__


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


def proxy_authorization(proxy: str) -> str:
    """``Proxy-Authorization`` for ``http://user:password@proxy/``; ``""`` without credentials."""
    userinfo, at, _ = urlsplit(proxy).netloc.rpartition("@")
    return _basic_auth(quote(userinfo, safe="%:").encode("ascii")) if at and userinfo else ""


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


class _Body(httpx.AsyncByteStream):
    """The undecoded body as the connection reads it; closing it hands the
    connection back to the pool (which closes it when it cannot carry another
    exchange: the body was not read to its end, or the server asked to close)."""

    def __init__(self, pool: PoolTransport, connection: Http1Connection, origin: Origin) -> None:
        self._pool = pool
        self._connection: Http1Connection | None = connection
        self._origin = origin

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        assert connection is not None
        while chunk := await connection.chunk():
            yield chunk

    async def aclose(self) -> None:
        if self._connection is not None:
            self._pool.release(self._connection, self._origin)
            self._connection = None
