"""The fetcher: one HTTP exchange per call, with httpx's API on aiohttp's transport.

httpx's default transport (httpcore 1.0) does O(connections^2) work per request
and fetched 150-350 pages/s here where aiohttp fetched 3,600-6,000, so the client
runs on ``httpx_aiohttp.AiohttpTransport``. Redirects are *not* followed here: the
engine follows them so every hop is checked for scope, robots.txt and dedup.
httpx and aiohttp errors become the crawler's own (``FetchError`` tree) here and
nowhere else.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from ._errors import FetchError, FetchTimeout, ResponseTooLarge, TransientFetchError
from ._request import Request
from ._settings import Settings

ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@dataclass(frozen=True, slots=True)
class Fetched:
    """A complete response: decoded body, header names in lower case."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes


class TlsError(FetchError):
    kind = "tls_error"


class DecodingError(FetchError):
    kind = "decoding_error"


class Fetcher:
    """Fetches requests under ``settings`` (user agent, timeout, size cap).

    ``transport`` replaces the network for tests (``httpx.MockTransport``)."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._client = httpx.AsyncClient(
            transport=transport or _aiohttp_transport(settings.concurrency),
            headers={"User-Agent": settings.user_agent, "Accept": ACCEPT},
            timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0)),
            follow_redirects=False,
            trust_env=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch(self, request: Request) -> Fetched:
        """Fetch once; raise a ``FetchError`` subclass on failure. Any HTTP status
        is a response, not an error."""
        try:
            async with asyncio.timeout(self._settings.timeout):
                return await self._exchange(request)
        except FetchError:
            raise
        except TimeoutError:
            raise FetchTimeout(f"no complete response within {self._settings.timeout:g}s") from None
        except (httpx.HTTPError, httpx.InvalidURL, aiohttp.ClientError, OSError, ValueError) as exc:
            raise translate_error(exc) from exc

    async def _exchange(self, request: Request) -> Fetched:
        outgoing = self._client.build_request(
            request.method, request.url, headers=dict(request.headers), content=request.body or None
        )
        response = await self._client.send(outgoing, stream=True)
        try:
            self._check_declared_size(response)
            body = await self._read_body(response)
        finally:
            await response.aclose()
        return Fetched(request.url, response.status_code, dict(response.headers.items()), body)

    def _check_declared_size(self, response: httpx.Response) -> None:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._settings.max_size:
            raise ResponseTooLarge(
                f"Content-Length {declared} exceeds the {self._settings.max_size}-byte cap"
            )

    async def _read_body(self, response: httpx.Response) -> bytes:
        cap = self._settings.max_size
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise ResponseTooLarge(f"body exceeds the {cap}-byte cap")
            chunks.append(chunk)
        return b"".join(chunks)


def _aiohttp_transport(connections: int) -> AiohttpTransport:
    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=connections, limit_per_host=0, ttl_dns_cache=300)
        # httpx keeps the cookies; a second jar in aiohttp would send them twice.
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    return AiohttpTransport(client=session)


def translate_error(exc: BaseException) -> FetchError:
    """Map an httpx/aiohttp/OS error onto the crawler's tree (see ``_errors``).

    httpx_aiohttp maps every aiohttp connection error to ``httpx.ConnectTimeout``,
    so the aiohttp cause, when there is one, says more than the httpx error."""
    if isinstance(exc, httpx.DecodingError):
        return DecodingError(str(exc))
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
    message = str(cause) or type(cause).__name__
    if isinstance(cause, (ssl.SSLError, aiohttp.ClientSSLError)):
        return TlsError(message)
    if isinstance(cause, (httpx.TimeoutException, aiohttp.ServerTimeoutError, TimeoutError)):
        return FetchTimeout(message)
    if isinstance(cause, (httpx.UnsupportedProtocol, httpx.InvalidURL, aiohttp.InvalidURL)):
        return FetchError(message)
    if isinstance(cause, (httpx.TransportError, aiohttp.ClientError, OSError)):
        return TransientFetchError(message)
    return FetchError(message)
