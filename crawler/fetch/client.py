"""The fetcher: one HTTP exchange per call, through httpx, translated into the crawler's terms.

Every request the crawler sends (pages, robots.txt, sitemaps, ``Spider.fetch``,
``crawl parse``, ``crawl shell``, ``crawl bench``, cache misses) is an
``httpx.Request`` handed to an httpx transport, and every response it reads is an
``httpx.Response``. The transport is `PoolTransport` (our own HTTP/1.1 connection
pool under the address guard, see ``transport``) unless a test or a user passes another
(``httpx.MockTransport``). By default requests go to the transport's
``handle_async_request`` directly: ``httpx.AsyncClient``'s own layers (auth,
redirects, cookies, hooks) cost main-process CPU on every request and the engine
does redirects itself (bench ``fetchpath``). A library user who wants them passes
``client_factory``: it gets the transport and returns the ``httpx.AsyncClient``
every request is then sent through (event hooks to add headers or sign requests,
``auth=``).

The raw body is read under the size cap and decoded here, by bounded decoders
(``_decoding``), so a decompression bomb stops at the cap. Redirects are *not*
followed here: the engine follows them so every hop is checked for scope,
robots.txt and dedup. httpx, aiohttp and OS errors become the crawler's own
(``FetchError`` tree) here and nowhere else.

Hosts that have not answered yet (a first robots.txt, a start URL) may hold at
most half of ``concurrency`` attempts at once; past that `fetch` raises
`HostDeferred` at once, and the caller puts the request back for a moment. So
hosts that accept connections and never answer cannot take every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import re
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from httpx._urlparse import MAX_URL_LENGTH, PATH_SAFE, QUERY_SAFE, UNRESERVED_CHARACTERS

from .._decoders import decode_content
from .._errors import (
    BadResponse,
    BrokenTransfer,
    DecodingError,
    FetchError,
    FetchTimeout,
    HostDeferred,
    ResponseTooLarge,
    TlsError,
    TransientFetchError,
)
from .._request import Request
from .._settings import Settings
from .._urls import host_key, hostname
from .addressguard import AddressGuard, unwrap_blocked
from .budget import charge_body_chunk
from .robots import READ_PREFIX
from .transport import OutOfDescriptors, PoolTransport, failure_reason

ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ACCEPT_ENCODING = "gzip, deflate, br, zstd"
# Waits between tries when the process is out of file descriptors (EMFILE).
DESCRIPTOR_WAITS = (0.05, 0.1, 0.2, 0.5, 1.0)

# Seconds before a request deferred by `FirstContactGate` is tried again.
FIRST_CONTACT_DEFERRAL = 0.1
SILENT_DEFERRAL = 1.0

ClientFactory = Callable[[httpx.AsyncBaseTransport], httpx.AsyncClient]


@dataclass(frozen=True, slots=True)
class Fetched:
    """A complete response: decoded body, header names in lower case."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes


def httpx_url(url: str) -> httpx.URL:
    """``httpx.URL(url)``, without parsing again what is already in httpx's normal form.

    ``httpx.URL`` validates and normalises every component of every URL, the largest
    cost of building an ``httpx.Request``. The crawler's URLs are canonical already:
    for one whose path and query hold only characters httpx leaves as they are, and
    no dot segment, the parsed form is its origin's (parsed by httpx, once per
    origin) with that path and query. Anything else goes through ``httpx.URL``.
    ``tests/fetch/test_client.py`` checks that both ways give equal URLs."""
    parts = _NORMAL_URL.match(url)
    if parts is None or "/." in parts["path"] or len(url) > MAX_URL_LENGTH:
        return httpx.URL(url)
    made = httpx.URL.__new__(httpx.URL)
    origin = _origin_reference(parts["origin"])
    made._uri_reference = origin._replace(path=parts["path"], query=parts["query"])
    return made


@functools.lru_cache(maxsize=4096)
def _origin_reference(origin: str) -> Any:
    return httpx.URL(origin + "/")._uri_reference


def _char_class(chars: str) -> str:
    return "[" + re.escape("".join(sorted(set(UNRESERVED_CHARACTERS + chars)))) + "]"


_NORMAL_URL = re.compile(
    rf"(?P<origin>https?://[^/?#@\\]+)(?P<path>/{_char_class(PATH_SAFE)}*)"
    rf"(?:\?(?P<query>{_char_class(QUERY_SAFE)}*))?\Z"
)


_HELD: contextvars.ContextVar[str | None] = contextvars.ContextVar("first_contact_held", default=None)
"""The host whose first-contact place the current task holds (`Fetcher.first_contact`)."""


class FirstContactGate:
    """Bounds the attempts on hosts that have not answered yet, so that hosts that
    accept connections and never answer cannot take every worker.

    Attempts on such hosts may hold at most half of ``concurrency``; those on hosts
    that already failed without ever answering (silent), at most an eighth. Past
    either bound an attempt raises `HostDeferred` at once, and the caller puts the
    request back: a silent host's for longer than a new host's, so that a new host's
    first contact takes the next free place."""

    def __init__(self, concurrency: int) -> None:
        self._answered: set[str] = set()
        self._silent: set[str] = set()
        self._limit = max(1, concurrency // 2)
        self._silent_limit = max(1, concurrency // 8)
        self._unproven = self._silent_in_flight = 0

    def answered(self, host: str) -> bool:
        return host in self._answered

    @contextlib.contextmanager
    def place(self, host: str) -> Iterator[None]:
        """Hold a place for an attempt on ``host`` (which never answered) while it
        runs, or raise `HostDeferred` at once if its share is taken."""
        silent = host in self._silent
        if self._unproven >= self._limit or (silent and self._silent_in_flight >= self._silent_limit):
            raise HostDeferred(
                f"{self._unproven} attempts already wait on hosts that never answered",
                retry_in=SILENT_DEFERRAL if silent else FIRST_CONTACT_DEFERRAL,
            )
        self._unproven += 1
        self._silent_in_flight += silent
        try:
            yield
        finally:
            self._unproven -= 1
            self._silent_in_flight -= silent

    def learn(self, host: str, failed: bool) -> None:
        """An attempt on ``host`` got an answer, or failed without one."""
        if failed:
            self._silent.add(host)
        else:
            self._answered.add(host)
            self._silent.discard(host)


def network_guard(settings: Settings, named_hosts: Iterable[str]) -> AddressGuard:
    """The address guard of a crawl or a single-fetch session: ``named_hosts`` and
    the proxy's host may be private addresses."""
    named = (*named_hosts, hostname(settings.proxy)) if settings.proxy else tuple(named_hosts)
    return AddressGuard(named, allow_private=settings.allow_private)


class Fetcher:
    """Fetches requests under ``settings`` (user agent, deadlines, size cap, proxy).

    ``transport`` replaces `PoolTransport` (``httpx.MockTransport`` in tests);
    ``client_factory`` wraps the transport in the user's ``httpx.AsyncClient``.
    Create and use it inside a running event loop."""

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        guard: AddressGuard | None = None,
        client_factory: ClientFactory | None = None,
    ) -> None:
        self._settings = settings
        self._guard = guard or AddressGuard((), allow_private=True)
        self._transport = transport or PoolTransport(
            self._guard,
            connections=settings.concurrency,
            connect_timeout=settings.connect_timeout,
            proxy=settings.proxy,
        )
        self._client = client_factory(self._transport) if client_factory else None
        self._headers = httpx.Headers(
            {"User-Agent": settings.user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING}
        )
        self._gate = FirstContactGate(settings.concurrency)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        await self._transport.aclose()

    async def fetch(self, request: Request) -> Fetched:
        """Fetch once; raise a ``FetchError`` subclass on failure, `HostDeferred`
        when too many attempts wait on hosts that never answered. Any HTTP status
        is a response, not an error."""
        outgoing = self._build(request)
        host = host_key(request.url)
        if self._gate.answered(host):
            return await self._attempt(request, outgoing)
        with contextlib.nullcontext() if _HELD.get() == host else self._gate.place(host):
            try:
                fetched = await self._attempt(request, outgoing)
            except FetchError:
                self._gate.learn(host, failed=True)
                raise
        self._gate.learn(host, failed=False)
        return fetched

    @contextlib.contextmanager
    def first_contact(self, request: Request) -> Iterator[None]:
        """Hold ``request``'s place among the attempts on hosts that never answered
        (if its host never did) around its start and fetch, or raise `HostDeferred`
        at once: entered before the request takes its host's start, so that a
        deferred request costs its host no slot."""
        try:
            host = host_key(request.url)
        except ValueError:  # the fetch itself says what is wrong with the URL
            host = ""
        if not host or self._gate.answered(host):
            yield
            return
        with self._gate.place(host):
            token = _HELD.set(host)
            try:
                yield
            finally:
                _HELD.reset(token)

    def _build(self, request: Request) -> httpx.Request:
        try:
            outgoing = self._new_request(request)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as exc:
            with contextlib.suppress(ValueError):  # a host the guard refuses is refused
                self._guard.check_url(request.url)  # (BlockedAddress), however httpx spells it
            raise FetchError(f"cannot send to {request.url!r}: {exc}") from None
        if not outgoing.url.is_absolute_url:
            raise FetchError(f"cannot send to {request.url!r}: not an absolute URL")
        return outgoing

    def _new_request(self, request: Request) -> httpx.Request:
        headers = self._headers
        if request.headers:
            headers = headers.copy()
            headers.update(request.headers)
        content = request.body or None
        if self._client is not None:
            return self._client.build_request(request.method, request.url, headers=headers, content=content)
        # A ready stream spares httpx's body encoding and header rebuilding (Host and
        # Content-Length are the transport's to add); ``read`` makes ``.content`` available.
        outgoing = httpx.Request(
            request.method, httpx_url(request.url), headers=headers, stream=httpx.ByteStream(request.body)
        )
        outgoing.read()
        return outgoing

    async def _attempt(self, request: Request, outgoing: httpx.Request) -> Fetched:
        """One attempt under the total deadline, tried again (unsent) while the
        process is out of file descriptors."""
        for wait in (*DESCRIPTOR_WAITS, None):
            try:
                return await self._deadline(request, outgoing)
            except OutOfDescriptors:
                if wait is None:
                    raise TransientFetchError("out of file descriptors") from None
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _deadline(self, request: Request, outgoing: httpx.Request) -> Fetched:
        """One attempt: the response must begin within ``first_byte_timeout`` of the
        start, and be complete within ``timeout``. One timer serves both."""
        settings = self._settings
        started = asyncio.get_running_loop().time()
        first_byte = min(settings.first_byte_timeout, settings.timeout)
        prefix = request.meta.get(READ_PREFIX)
        response: httpx.Response | None = None
        try:
            async with asyncio.timeout(first_byte) as deadline:
                response = await self._send(outgoing)
                deadline.reschedule(started + settings.timeout)  # the headers are in
                status, headers, raw = await self._read(response, prefix)
        except (FetchError, OutOfDescriptors):
            raise
        except TimeoutError:
            if response is None:
                raise FetchTimeout(f"no response within {first_byte:g}s") from None
            raise FetchTimeout(f"no complete response within {settings.timeout:g}s") from None
        except _library_errors() as exc:
            raise unwrap_blocked(exc) or translate_error(exc) from exc
        body = decode_content(raw, headers.get("content-encoding"), prefix or settings.max_size)
        return Fetched(request.url, status, headers, body)

    def _send(self, outgoing: httpx.Request) -> Awaitable[httpx.Response]:
        if self._client is not None:
            return self._client.send(outgoing, stream=True)
        return self._transport.handle_async_request(outgoing)

    async def _read(self, response: httpx.Response, prefix: int | None) -> tuple[int, dict[str, str], bytes]:
        stream = response.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            response.close()
            raise FetchError("the transport returned a synchronous body")
        try:
            headers = response_headers(response.headers)
            raw = await self._read_capped(headers, stream, prefix)
        finally:
            # the transport's own stream closes as it is (httpx's close adds only a
            # mapping of httpcore's errors); a client's stream goes through the client
            await (response.aclose() if self._client is not None else stream.aclose())
        return response.status_code, headers, raw

    async def _read_capped(
        self, headers: Mapping[str, str], chunks: httpx.AsyncByteStream, prefix: int | None = None
    ) -> bytes:
        """The raw body (the stream itself, never httpx's decoding); refuse it as soon
        as its declared or actual size passes the cap. A request that asks for a
        ``prefix`` (robots.txt) gets at most that many bytes, and the rest is not read."""
        if prefix is not None:
            return await _read_prefix(chunks, prefix)
        cap = self._settings.max_size
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise ResponseTooLarge(f"Content-Length {declared} exceeds the {cap}-byte cap")
        parts: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > cap:
                raise ResponseTooLarge(f"body exceeds the {cap}-byte cap")
            parts.append(chunk)
            await charge_body_chunk(len(chunk))  # waits while the crawl's body budget is spent
        return b"".join(parts)


async def _read_prefix(chunks: httpx.AsyncByteStream, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)[:limit]


def response_headers(headers: httpx.Headers) -> dict[str, str]:
    """``merge_headers`` of an httpx response's headers, decoded as httpx decodes them."""
    encoding = headers.encoding
    return merge_headers((name.decode(encoding), value.decode(encoding)) for name, value in headers.raw)


def merge_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased; repeated headers joined with ``, `` (RFC 9110 5.3)."""
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _library_errors() -> tuple[type[BaseException], ...]:
    """The errors of the libraries under the fetcher, which `translate_error` maps
    (aiohttp's only once it is loaded: behind a proxy, or a user's own client)."""
    aiohttp = sys.modules.get("aiohttp")
    errors = (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError)
    return (*errors, aiohttp.ClientError) if aiohttp is not None else errors


def translate_error(exc: BaseException) -> FetchError:
    """Map an httpx/aiohttp/OS error onto the crawler's tree (see ``_errors``).
    Where an httpx error wraps an aiohttp one, the aiohttp cause says more."""
    if isinstance(exc, httpx.DecodingError):
        return DecodingError(str(exc))
    aiohttp = sys.modules.get("aiohttp")  # no aiohttp loaded: no aiohttp error to see
    cause = exc.__cause__ if aiohttp and isinstance(exc.__cause__, aiohttp.ClientError) else exc
    message = (aiohttp and _cannot_connect(aiohttp, cause)) or str(cause) or type(cause).__name__
    for types, error in _translations(aiohttp):
        if isinstance(cause, types):
            return error(message)
    return FetchError(message)


def _cannot_connect(aiohttp: Any, exc: BaseException) -> str | None:
    """``cannot connect to HOST:PORT: Connection refused`` for a connection that failed
    (aiohttp's own words add ``ssl:default`` even to plain HTTP); ``None`` otherwise."""
    if not isinstance(exc, aiohttp.ClientConnectorError) or isinstance(exc, aiohttp.ClientSSLError):
        return None
    return f"cannot connect to {exc.host}:{exc.port}: {failure_reason(exc.os_error)}"


Translations = tuple[tuple[tuple[type[BaseException], ...], type[FetchError]], ...]


def _translations(aiohttp: Any) -> Translations:
    """Error types and what they become, first match wins: httpx's first (none is an
    aiohttp or OS error), then aiohttp's when it is loaded, then the OS's."""
    extra: dict[str, tuple[type[BaseException], ...]] = dict.fromkeys(
        ("tls", "timeout", "payload", "response", "url", "client"), ()
    )
    if aiohttp is not None:
        extra = {
            "tls": (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch),
            "timeout": (aiohttp.ServerTimeoutError,),
            "payload": (aiohttp.ClientPayloadError,),
            "response": (aiohttp.ClientResponseError,),
            "url": (aiohttp.InvalidURL,),
            "client": (aiohttp.ClientError,),
        }
    return (
        ((httpx.TimeoutException,), FetchTimeout),
        ((httpx.RemoteProtocolError, httpx.ReadError), BrokenTransfer),
        ((httpx.UnsupportedProtocol, httpx.InvalidURL), FetchError),
        ((httpx.TransportError,), TransientFetchError),
        ((ssl.SSLError, *extra["tls"]), TlsError),
        ((*extra["timeout"], TimeoutError), FetchTimeout),
        (extra["payload"], BrokenTransfer),
        (extra["response"], BadResponse),
        (extra["url"], FetchError),
        ((*extra["client"], OSError), TransientFetchError),
    )
