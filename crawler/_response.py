"""`Response`: what a spider callback receives."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ._encoding import decode_body, is_html
from ._errors import NotHtmlError
from ._request import Request
from ._urls import join_url

LINK_ATTRIBUTES = ("href", "src")


class Response:
    """A fetched page. ``headers`` has lower-case names. Parsing happens lazily on
    the first ``css``/``css_first`` call, once per response."""

    __slots__ = ("__dict__", "body", "headers", "request", "status", "url")

    def __init__(
        self,
        url: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        request: Request,
    ) -> None:
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body
        self.request = request

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"

    @property
    def meta(self) -> Mapping[str, Any]:
        """The ``meta`` of the request: data a callback handed to the next one."""
        return self.request.meta

    @property
    def depth(self) -> int:
        """Link distance of this page from a start URL (0 for a start URL)."""
        return self.request.depth

    @property
    def redirect_urls(self) -> tuple[str, ...]:
        """The URLs this response was redirected from, oldest first."""
        return self.request.redirects

    @cached_property
    def _decoded(self) -> tuple[str, str]:
        return decode_body(self.body, self.headers.get("content-type"))

    @property
    def text(self) -> str:
        """The body decoded: BOM, then Content-Type charset, then ``<meta charset>``, then sniffing."""
        return self._decoded[0]

    @property
    def encoding(self) -> str:
        """The name of the encoding ``text`` was decoded with."""
        return self._decoded[1]

    def json(self) -> Any:
        """The body parsed as JSON (``json.JSONDecodeError`` if it is not)."""
        return json.loads(self.text)

    @cached_property
    def is_html(self) -> bool:
        return is_html(self.headers.get("content-type"), self.body)

    @cached_property
    def _tree(self) -> LexborHTMLParser:
        if not self.is_html:
            kind = self.headers.get("content-type", "unknown type")
            raise NotHtmlError(f"{self.url} is not HTML ({kind}); use .text or .json()")
        if self.encoding == "utf-8":
            return LexborHTMLParser(self.body.removeprefix(codecs.BOM_UTF8))
        return LexborHTMLParser(self.text)

    @cached_property
    def base_url(self) -> str:
        """The URL relative links resolve against (``<base href>`` if present)."""
        if self.is_html:
            base = self._tree.css_first("base[href]")
            href = base.attributes.get("href") if base is not None else None
            if href:
                return join_url(self.url, href)
        return self.url

    def css(self, selector: str) -> list[LexborNode]:
        """Every element matching the CSS ``selector`` (selectolax lexbor nodes: ``.text()``,
        ``.attributes``, ``.css()``); the page is parsed once, on the first call.
        Raises `NotHtmlError` when the body is not HTML."""
        return self._tree.css(selector)

    def css_first(self, selector: str) -> LexborNode | None:
        """The first element matching ``selector``, or ``None``."""
        return self._tree.css_first(selector)

    def urljoin(self, href: str) -> str:
        """``href`` made absolute against this page (its ``<base href>`` if it has one)."""
        return join_url(self.base_url, href)

    def follow(self, target: str | LexborNode, callback: Any = None, **kwargs: Any) -> Request:
        """A request for ``target`` (a URL, relative or absolute, or an element with
        ``href``/``src``), one level deeper than this response."""
        href = target if isinstance(target, str) else _required_link(target)
        kwargs.setdefault("depth", self.depth + 1)
        return Request(self.urljoin(href), callback=callback, **kwargs)

    def follow_all(
        self,
        targets: str | Iterable[str | LexborNode],
        callback: Any = None,
        **kwargs: Any,
    ) -> Iterator[Request]:
        """Requests for every link of ``targets``: a CSS selector (its elements'
        ``href``/``src``), or an iterable of URLs and elements. Elements without a
        link are skipped."""
        items = self.css(targets) if isinstance(targets, str) else targets
        for item in items:
            href = item if isinstance(item, str) else _link_of(item)
            if href:
                yield self.follow(href, callback, **kwargs)

    def replace(self, **changes: Any) -> Response:
        """A copy with some of ``url``, ``status``, ``headers``, ``body``, ``request`` changed."""
        names = ("url", "status", "headers", "body", "request")
        values = {name: changes.pop(name, getattr(self, name)) for name in names}
        if changes:
            raise TypeError(f"Response.replace() got unknown fields: {', '.join(changes)}")
        return Response(**values)


def _required_link(node: LexborNode) -> str:
    href = _link_of(node)
    if href is None:
        raise ValueError(f"element <{node.tag}> has no href or src to follow")
    return href


def _link_of(node: LexborNode) -> str | None:
    attributes = node.attributes
    for name in LINK_ATTRIBUTES:
        value = attributes.get(name)
        if value:
            return value
    return None
