"""`PoolTransport` through a proxy: aiohttp's connection pool, which speaks to HTTP(S)
proxies (``CONNECT`` tunnels for HTTPS targets, TLS to an ``https://`` proxy).

aiohttp loads only when a crawl sets ``proxy``. Its pool hands out the connections
(to the proxy); the exchange on them is `PoolTransport`'s own request head, and the
response is read through the connection's aiohttp protocol (llhttp, with its limits
on lines and headers); ``aiohttp.ClientSession`` is not used. The promises of
`crawler.fetch.transport` hold here too: the target's addresses are resolved and
checked here first (the proxy resolves it again; a proxy that resolves differently
is outside what the guard can see), the proxy's own host counts as named, the body
goes up raw, nothing is re-sent, TLS is verified (aiohttp's default context, whose
certificates `certificates` loads in a thread), proxy variables in the environment
are ignored, idle connections are bounded (`BoundedConnector`) and EMFILE raises
`OutOfDescriptors`.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

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
from .transport import (
    _OUT_OF_DESCRIPTORS,
    DNS_CACHE_SECONDS,
    MAX_ORIGINS_KEPT,
    OutOfDescriptors,
    idle_connection_budget,
    proxy_authorization,
    raise_descriptor_limit,
    request_head,
)

RawHeaders = tuple[tuple[bytes, bytes], ...]


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


class ProxyTransport(httpx.AsyncBaseTransport):
    """`PoolTransport`'s way through a ``proxy`` (an ``http://`` or ``https://`` URL):
    aiohttp's pool, which speaks to proxies, with the exchange done as `PoolTransport`
    does it (see the module docstring). Create and use it inside a running event loop."""

    def __init__(
        self,
        guard: AddressGuard,
        *,
        connections: int,
        connect_timeout: float,
        proxy: str,
    ) -> None:
        self._guard = guard
        self._connections = connections
        # aiohttp gets the proxy without its credentials: it would send them in
        # latin-1 and show them in its errors; ours go in as headers (utf-8, unseen)
        self._proxy = URL(proxy).with_user(None)
        self._proxy_tls = self._proxy.scheme == "https"
        self._proxy_authorization = proxy_authorization(proxy)
        self._certificates_pending = True  # see .certificates
        # The fetcher keeps the first-byte and total deadlines (one timer for both);
        # a read timeout here would cost a timer per chunk.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._connector: BoundedConnector | None = None
        self._resolver: GuardedResolver | None = None
        self._origins: dict[tuple[str, bytes], ClientRequest] = {}
        self._checked_targets: dict[str, float] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url  # its scheme and any IP literal checked by `PoolTransport`
        connector = self._connector or self._open_pool()
        if self._certificates_pending:  # the first request: aiohttp's certificates are in
            await certificates_loaded()
            self._certificates_pending = False
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
            auth = self._proxy_authorization
            credentials = {"Proxy-Authorization": auth} if auth else None
            origin = ClientRequest(  # its proxy headers go on CONNECT requests (HTTPS targets)
                "GET", root, proxy=self._proxy, proxy_headers=credentials, loop=asyncio.get_running_loop()
            )
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
        host = url.raw_host.decode("ascii")  # as the proxy is asked for it (IDNA 2008)
        if self._guard.is_exempt(host) or self._checked_targets.get(host, 0.0) > time.monotonic():
            return
        assert self._resolver is not None
        await self._resolver.resolve(host, url.port or 0, socket.AF_UNSPEC)
        if len(self._checked_targets) >= MAX_ORIGINS_KEPT:
            self._checked_targets.clear()
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
