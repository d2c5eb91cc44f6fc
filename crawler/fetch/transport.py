"""The httpx transport every request goes through: aiohttp's connection pool, hardened.

httpx is the client API: the fetcher builds an ``httpx.Request`` and reads an
``httpx.Response``. Underneath, httpcore 1.0's pool does O(connections^2) work per
request, so `PoolTransport` hands the exchange to aiohttp's pool instead, and keeps
the promises of the README's hostile-web table on the way:

- every address a host name resolves to is checked by the address guard at connect
  time (`GuardedResolver`), and aiohttp connects to exactly the checked addresses;
  IP literals, which aiohttp connects to without resolving, are checked here;
- the body is handed up raw (``auto_decompress`` off): the fetcher reads it under
  the size cap and decodes it with the bounded decoders;
- nothing is re-sent unseen: aiohttp's own retry on a broken keep-alive connection
  is off, so a retry is always the engine's, bounded and counted;
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

import errno
import resource
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
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
        self._certificates_pending = True  # see .certificates
        # The fetcher keeps the first-byte and total deadlines (one timer for both);
        # a read timeout here would cost a timer per chunk.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None
        self._checked_targets: dict[str, float] = {}
        self._literals_checked: set[bytes] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if request.url.netloc not in self._literals_checked:
            self._guard.check_url(url)  # IP literals: aiohttp does not resolve them
            self._literals_checked.add(request.url.netloc)  # the same verdict next time
        session = self._session or self._open_session()
        if self._certificates_pending and (url.startswith("https:") or self._proxy_tls):
            await certificates_loaded()
            self._certificates_pending = False
        if self._proxy is not None:
            await self._check_target(request.url)
        try:
            response = await session.request(
                request.method,
                URL(url, encoded=True),  # httpx encoded it already: no re-quoting
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                proxy=self._proxy,
            )
        except aiohttp.ClientConnectorError as exc:
            self._out_of_descriptors(exc)
            raise
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_RawBody(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    def _open_session(self) -> aiohttp.ClientSession:
        self._resolver = GuardedResolver(self._guard)  # checks every resolved address
        descriptors = raise_descriptor_limit()
        connector = BoundedConnector(
            max_idle=idle_connection_budget(descriptors, self._connections),
            limit=self._connections,
            limit_per_host=0,
            ttl_dns_cache=DNS_CACHE_SECONDS,
            resolver=self._resolver,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # keep cookies of IP-address hosts too
            auto_decompress=False,
            timeout=self._timeout,
            trust_env=False,
        )
        # aiohttp re-sends an idempotent request once, unseen, when the connection
        # breaks (meant for stale keep-alive connections). A server that resets every
        # connection would then get twice the attempts: the engine's own bounded,
        # counted retries cover stale connections too.
        self._session._retry_connection = False
        return self._session

    def _out_of_descriptors(self, exc: aiohttp.ClientConnectorError) -> None:
        """Turn EMFILE into `OutOfDescriptors`, after closing half the idle connections."""
        if exc.os_error.errno in _OUT_OF_DESCRIPTORS and self._session is not None:
            connector = self._session.connector
            if isinstance(connector, BoundedConnector):
                connector.close_idle(max(1, len(connector._idle) // 2))
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
        if self._session is not None:
            await self._session.close()
        if self._resolver is not None:
            await self._resolver.close()


class _RawBody(httpx.AsyncByteStream):
    """The undecoded body as aiohttp reads it; closing it hands the connection back
    (or closes it, when the body was not read to its end)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._response.content.iter_any()  # no generator of our own around it

    async def aclose(self) -> None:
        self._response.release()
