"""The fetcher: one HTTP exchange per call, translated into the crawler's terms.

By default requests go straight to aiohttp's connection pool. httpx's default
transport (httpcore 1.0) does O(connections^2) work per request (150-350 pages/s
where aiohttp fetched 3,600-6,000 here), and even on httpx_aiohttp's transport the
httpx layers cost 0.4 ms of CPU per request against aiohttp's 0.15 ms (bench
``fetch``), which was most of the main process's time per page. When a test or a
user passes an httpx transport (``httpx.MockTransport``, a proxy transport), the
same exchange runs through an httpx client instead.

Either way the raw body is read under the size cap and decoded here, by bounded
decoders (``_decoding``), so a decompression bomb stops at the cap. Redirects are
*not* followed here: the engine follows them so every hop is checked for scope,
robots.txt and dedup. httpx, aiohttp and OS errors become the crawler's own
(``FetchError`` tree) here and nowhere else.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from ._addressguard import AddressGuard, GuardedResolver, unwrap_blocked
from ._budget import charge_body_chunk
from ._decoding import decode_content
from ._errors import (
    BadResponse,
    BrokenTransfer,
    DecodingError,
    FetchError,
    FetchTimeout,
    ResponseTooLarge,
    TlsError,
    TransientFetchError,
)
from ._request import Request
from ._settings import Settings

if TYPE_CHECKING:  # httpx loads only for an injected transport (30 ms saved at start)
    import httpx

ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ACCEPT_ENCODING = "gzip, deflate, br, zstd"

Exchange = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True, slots=True)
class Fetched:
    """A complete response: decoded body, header names in lower case."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes


class Fetcher:
    """Fetches requests under ``settings`` (user agent, timeout, size cap).

    ``transport`` routes requests through httpx instead (``httpx.MockTransport`` in
    tests). Create and use it inside a running event loop."""

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        guard: AddressGuard | None = None,
    ) -> None:
        self._settings = settings
        self._guard = guard or AddressGuard((), allow_private=True)
        self._resolver: GuardedResolver | None = None
        self._headers = {
            "User-Agent": settings.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        self._session: aiohttp.ClientSession | None = None
        self._client = _httpx_client(transport, settings.timeout) if transport else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._resolver is not None:
            await self._resolver.close()
        if self._client is not None:
            await self._client.aclose()

    async def fetch(self, request: Request) -> Fetched:
        """Fetch once; raise a ``FetchError`` subclass on failure. Any HTTP status
        is a response, not an error."""
        try:
            async with asyncio.timeout(self._settings.timeout):
                status, headers, raw = await self._exchange(request)
        except FetchError:
            raise
        except TimeoutError:
            raise FetchTimeout(f"no complete response within {self._settings.timeout:g}s") from None
        except Exception as exc:
            if not isinstance(exc, (aiohttp.ClientError, OSError, ValueError, *_httpx_errors())):
                raise
            raise unwrap_blocked(exc) or translate_error(exc) from exc
        body = decode_content(raw, headers.get("content-encoding"), self._settings.max_size)
        return Fetched(request.url, status, headers, body)

    def _exchange(self, request: Request) -> Awaitable[Exchange]:
        self._guard.check_url(request.url)  # IP literals: aiohttp does not resolve them
        if self._client is not None:
            return self._via_httpx(self._client, request)
        return self._via_aiohttp(request)

    async def _via_aiohttp(self, request: Request) -> Exchange:
        session = self._session or self._open_session()
        async with session.request(
            request.method,
            URL(request.url, encoded=True),  # canonical already: no re-quoting
            headers={**self._headers, **request.headers},
            data=request.body or None,
            allow_redirects=False,
        ) as response:
            headers = merge_headers(response.headers.items())
            raw = await self._read_capped(headers, response.content.iter_any())
            return response.status, headers, raw

    def _open_session(self) -> aiohttp.ClientSession:
        # Every resolved address is checked, and aiohttp connects to exactly those.
        self._resolver = GuardedResolver(self._guard)
        connector = aiohttp.TCPConnector(
            limit=self._settings.concurrency, limit_per_host=0, ttl_dns_cache=300, resolver=self._resolver
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # keep cookies of IP-address hosts too
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(self._settings.timeout, 10.0)),
            trust_env=False,
        )
        # aiohttp re-sends an idempotent request once, unseen, when the connection
        # breaks (meant for stale keep-alive connections). A server that resets every
        # connection would then get twice the attempts: the engine's own bounded,
        # counted retries cover stale connections too.
        self._session._retry_connection = False
        return self._session

    async def _via_httpx(self, client: httpx.AsyncClient, request: Request) -> Exchange:
        outgoing = client.build_request(
            request.method,
            request.url,
            headers={**self._headers, **request.headers},
            content=request.body or None,
        )
        response = await client.send(outgoing, stream=True)
        try:
            headers = merge_headers(response.headers.multi_items())
            raw = await self._read_capped(headers, _raw_chunks(response, headers))
        finally:
            await response.aclose()
        return response.status_code, headers, raw

    async def _read_capped(self, headers: Mapping[str, str], chunks: AsyncIterator[bytes]) -> bytes:
        """The raw body; refuse it as soon as its declared or actual size passes the cap."""
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


async def _raw_chunks(response: httpx.Response, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """The undecoded body. A transport that read the body itself (``MockTransport``)
    leaves only httpx's decoded content, so its encoding header goes."""
    if response.is_stream_consumed:
        headers.pop("content-encoding", None)
        yield response.content
        return
    async for chunk in response.aiter_raw():
        yield chunk


def merge_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased; repeated headers joined with ``, `` (RFC 9110 5.3)."""
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def translate_error(exc: BaseException) -> FetchError:
    """Map an httpx/aiohttp/OS error onto the crawler's tree (see ``_errors``).

    Where httpx wraps an aiohttp error, the aiohttp cause says more. httpx's errors
    are only looked at when httpx is loaded: otherwise none can have been raised."""
    httpx_module: Any = sys.modules.get("httpx")
    if httpx_module is not None and isinstance(exc, httpx_module.DecodingError):
        return DecodingError(str(exc))
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
    message = str(cause) or type(cause).__name__
    translations = _httpx_translations(httpx_module) if httpx_module is not None else ()
    for types, error in (*translations, *_TRANSLATIONS):
        if isinstance(cause, types):
            return error(message)
    return FetchError(message)


Translations = tuple[tuple[tuple[type[BaseException], ...], type[FetchError]], ...]

_TRANSLATIONS: Translations = (
    ((ssl.SSLError, aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch), TlsError),
    ((aiohttp.ServerTimeoutError, TimeoutError), FetchTimeout),
    ((aiohttp.ClientPayloadError,), BrokenTransfer),
    ((aiohttp.ClientResponseError,), BadResponse),
    ((aiohttp.InvalidURL,), FetchError),
    ((aiohttp.ClientError, OSError), TransientFetchError),
)


def _httpx_translations(httpx: Any) -> Translations:
    """The same for httpx's errors (checked first: none is an aiohttp or OS error)."""
    return (
        ((httpx.TimeoutException,), FetchTimeout),
        ((httpx.RemoteProtocolError, httpx.ReadError), BrokenTransfer),
        ((httpx.UnsupportedProtocol, httpx.InvalidURL), FetchError),
        ((httpx.TransportError,), TransientFetchError),
    )


def _httpx_errors() -> tuple[type[BaseException], ...]:
    httpx_module: Any = sys.modules.get("httpx")
    return (httpx_module.HTTPError, httpx_module.InvalidURL) if httpx_module is not None else ()


def _httpx_client(transport: httpx.AsyncBaseTransport, timeout: float) -> httpx.AsyncClient:
    import httpx  # noqa: PLC0415

    return httpx.AsyncClient(transport=transport, trust_env=False, timeout=httpx.Timeout(timeout))
