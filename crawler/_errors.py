"""The crawler's exception tree.

    CrawlerError
     +-- UsageError            bad settings or option values (CLI exit 2)
     +-- SpiderLoadError       a spider file that is missing, broken, or has no Spider (exit 1)
     +-- OutputError           the output cannot be opened or written (exit 1)
     +-- FrontierError         the frontier backend is unreachable or corrupt (exit 1)
     +-- BrowserUnavailable    rendering asked for, but Playwright or Chromium is missing (exit 1)
     +-- FetchError            one fetch failed; counted per page, never fatal to a crawl
     |    +-- TransientFetchError  worth retrying (connection refused or reset)
     |    |    +-- FetchTimeout       no complete response within the deadline
     |    |    +-- BrokenTransfer     the body was cut short
     |    +-- ResponseTooLarge     the decoded body passed the size cap
     |    +-- DecodingError        a Content-Encoding that is unknown or corrupt
     |    +-- BadResponse          not HTTP as it should be (oversized or malformed headers)
     |    +-- TlsError             certificate or handshake failure
     |    +-- BlockedAddress       the host resolved to an address the user did not allow
     |    +-- RequestRefused       a single fetch (``Spider.fetch``, ``crawl parse``) the
     |                             crawl's rules forbid: robots.txt, scope, a bad URL
     +-- NotHtmlError          `Response.css` called on a body that is not HTML
     +-- SelectorError         a CSS or XPath selector that does not parse (also a ValueError)

Foreign errors (httpx, aiohttp, OSError) are translated into this tree once, at the
boundary where they occur (the fetcher, the output sink, the spider loader).
"""

from __future__ import annotations

from typing import ClassVar

from ._counters import (
    ERRORS_BAD_RESPONSE,
    ERRORS_BLOCKED_ADDRESS,
    ERRORS_BROKEN_TRANSFER,
    ERRORS_CONNECTION_ERROR,
    ERRORS_DECODING_ERROR,
    ERRORS_FETCH_ERROR,
    ERRORS_TIMEOUT,
    ERRORS_TLS_ERROR,
    ERRORS_TOO_LARGE,
)


class CrawlerError(Exception):
    """Base of every error the crawler raises on purpose."""

    exit_code = 1


class UsageError(CrawlerError):
    """A bad setting or option value."""

    exit_code = 2


class SpiderLoadError(CrawlerError):
    """A spider file that is missing, does not import, or holds no (or several) spiders."""


class OutputError(CrawlerError):
    """The output (or stats file, or cache directory) cannot be opened or written."""


class FrontierError(CrawlerError):
    """The frontier backend (a job's database, Redis) is unreachable, locked or corrupt."""


class BrowserUnavailable(CrawlerError):
    """A request asks to be rendered, but Playwright or a Chromium to drive is missing
    (or does not start): the message says what to install."""


class FetchError(CrawlerError):
    """A single fetch failed. A crawl counts it under ``counter``; ``kind`` is that
    counter's name within ``errors/``, for messages."""

    kind: ClassVar[str] = "fetch_error"
    counter: ClassVar[str] = ERRORS_FETCH_ERROR


class TransientFetchError(FetchError):
    kind = "connection_error"
    counter = ERRORS_CONNECTION_ERROR


class FetchTimeout(TransientFetchError):
    kind = "timeout"
    counter = ERRORS_TIMEOUT


class BrokenTransfer(TransientFetchError):
    kind = "broken_transfer"
    counter = ERRORS_BROKEN_TRANSFER


class DecodingError(FetchError):
    kind = "decoding_error"
    counter = ERRORS_DECODING_ERROR


class BadResponse(FetchError):
    kind = "bad_response"
    counter = ERRORS_BAD_RESPONSE


class TlsError(FetchError):
    kind = "tls_error"
    counter = ERRORS_TLS_ERROR


class ResponseTooLarge(FetchError):
    kind = "too_large"
    counter = ERRORS_TOO_LARGE


class BlockedAddress(FetchError):
    kind = "blocked_address"
    counter = ERRORS_BLOCKED_ADDRESS


class RequestRefused(FetchError):
    """A single fetch the crawl's rules forbid: robots.txt, scope, a bad URL, too many
    redirects. Raised to the caller of the single fetch; a crawl never counts it."""

    kind = "refused"


class HostDeferred(CrawlerError):
    """Not a failure: the fetch was not attempted, because attempts on hosts that
    never answered already hold their share of ``concurrency``. The caller puts the
    request back for ``retry_in`` seconds; no attempt is counted against the host."""

    def __init__(self, message: str, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class MissingCallback(CrawlerError, AttributeError):
    """A request names a callback its spider does not have (or the spider has no
    ``parse`` for requests without one)."""


class NotHtmlError(CrawlerError):
    """``Response.css`` on a body that is not HTML: use ``.text`` or ``.json()``."""


class SelectorError(CrawlerError, ValueError):
    """A CSS selector or XPath expression that does not parse; the message names it."""
