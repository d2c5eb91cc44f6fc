"""Helpers to unit-test spiders offline, without a server or a crawl.

Build a `Response` from a string, bytes or a saved HTML file, hand it to a spider
callback and look at what came out, vetted exactly as a crawl would vet it::

    from crawler.testing import fake_response, run_callback

    def test_product_page():
        response = fake_response(
            '<h1 class="title">Kettle</h1>', "http://shop.test/p/1.html", callback="parse_product"
        )
        out = run_callback(MySpider(), response, raise_errors=True)
        assert out.items == [{"url": "http://shop.test/p/1.html", "title": "Kettle"}]
        assert out.requests == []
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import FetchError
from ._request import Request
from ._response import Response
from ._settings import Settings
from ._spider import Spider, bind_fetch
from ._urls import default_allowed_domains
from .parse import CallbackRunner, LinkRules, ParseTask, is_async_callback

__all__ = ["CallbackOutput", "fake_response", "response_from_file", "run_callback"]

DEFAULT_URL = "http://example.com/"
_DEFAULTS = Settings(parse_workers=0)


def fake_response(
    body: str | bytes,
    url: str = DEFAULT_URL,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    request: Request | None = None,
    meta: Mapping[str, Any] | None = None,
    depth: int = 0,
    callback: Any = None,
    cb_kwargs: Mapping[str, Any] | None = None,
) -> Response:
    """A `Response` for ``url`` with ``body``, as if it had just been fetched.

    A ``str`` body is encoded as UTF-8. Unless ``headers`` name a Content-Type, the
    response is ``text/html; charset=utf-8`` for a ``str`` body and ``text/html``
    for ``bytes`` (the charset then comes from ``<meta charset>`` or sniffing).
    Header names are lower-cased. Without ``request``, one is made from ``url``,
    ``meta``, ``depth``, ``callback`` (a method name or a spider method) and
    ``cb_kwargs`` (the callback's keyword arguments)::

        >>> response = fake_response("<a href='/b'>b</a>", "http://example.com/a", depth=2)
        >>> response.follow(response.css_first("a")).url, response.depth
        ('http://example.com/b', 2)
    """
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    if isinstance(body, str):
        lowered.setdefault("content-type", "text/html; charset=utf-8")
        data = body.encode("utf-8")
    else:
        lowered.setdefault("content-type", "text/html")
        data = bytes(body)
    if request is None:
        kwargs = dict(cb_kwargs or {})
        request = Request(url, callback=callback, meta=dict(meta or {}), depth=depth, cb_kwargs=kwargs)
    return Response(url, status, lowered, data, request)


def response_from_file(path: str | Path, url: str = DEFAULT_URL, **kwargs: Any) -> Response:
    """A `Response` whose body is the bytes of ``path`` (a page saved to disk), as
    if fetched from ``url``. Other keyword arguments are those of `fake_response`::

        response = response_from_file("tests/pages/product.html", "https://shop.test/p/1.html")
    """
    return fake_response(Path(path).read_bytes(), url, **kwargs)


@dataclass(frozen=True, slots=True)
class CallbackOutput:
    """What one callback produced.

    ``items``: dicts and dataclasses, as yielded. ``requests``: the requests a crawl
    would enqueue (canonical URLs, ``depth`` one more than the response's, duplicates,
    off-site, too deep, too long and non-http links removed). ``errors``: the text
    of each callback error (a traceback) or bad output. ``dropped``: how many
    requests were removed, by reason (``offsite``, ``duplicate``, ``depth_limited``,
    ``invalid_url``, ``unsupported_scheme``, ``url_too_long``).
    """

    items: list[Any]
    requests: list[Request]
    errors: list[str]
    dropped: dict[str, int]


def run_callback(
    spider: Spider,
    response: Response,
    callback: str | None = None,
    *,
    raise_errors: bool = False,
    fetched: Mapping[str, Response | str | bytes] | None = None,
) -> CallbackOutput:
    """Run the callback of ``response.request`` (or the one named by ``callback``) on
    ``response``, and vet what it yields as a crawl would.

    The scope is the spider's ``allowed_domains``, or else the response's host; the
    spider's ``depth``, ``max_url_length`` and ``strip_session_ids`` apply. ``async
    def`` callbacks run with ``asyncio.run`` (so call this outside an event loop).
    Errors do not raise but appear in ``errors``; with ``raise_errors=True`` the
    first one raises ``AssertionError`` carrying its traceback text::

        out = run_callback(CatalogSpider(), listing_response, "parse_listing")
        assert [r.callback for r in out.requests][-1] == "parse_listing"

    ``fetched`` answers the callback's ``await self.fetch(url)`` calls offline: a
    `Response`, or a body for `fake_response`, per absolute URL. Fetching any other
    URL raises ``FetchError``.
    """
    request = response.request
    if callback is not None:
        request = dataclasses.replace(request, callback=callback)
        response = response.replace(request=request)
    bind_fetch(spider, _canned_fetch(fetched or {}))
    runner = CallbackRunner(spider, _rules_for(spider, response.url))
    task = ParseTask(request, response.url, response.status, response.headers, response.body)
    run_async = is_async_callback(spider, request)
    result = asyncio.run(runner.run_async(task)) if run_async else runner.run(task)
    if raise_errors and result.errors:
        raise AssertionError(f"callback {request.callback or 'parse'!r} failed:\n{result.errors[0]}")
    return CallbackOutput(list(result.items), list(result.requests), list(result.errors), result.dropped())


def _canned_fetch(responses: Mapping[str, Response | str | bytes]) -> Any:
    async def fetch(target: str | Request, **fields: Any) -> Response:
        url = target.url if isinstance(target, Request) else target
        answer = responses.get(url)
        if answer is None:
            raise FetchError(f"no response for {url} in run_callback(fetched=...)")
        return answer if isinstance(answer, Response) else fake_response(answer, url)

    return fetch


def _rules_for(spider: Spider, url: str) -> LinkRules:
    allowed = getattr(spider, "allowed_domains", None)
    scope = tuple(allowed) if allowed else default_allowed_domains([url])
    return LinkRules(
        allowed_domains=scope,
        max_depth=_setting(spider, "depth"),
        max_url_length=_setting(spider, "max_url_length"),
        strip_session_ids=bool(_setting(spider, "strip_session_ids")),
    )


def _setting(spider: Spider, name: str) -> Any:
    value = getattr(spider, name, None)
    return getattr(_DEFAULTS, name) if value is None else value
