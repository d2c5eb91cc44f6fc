"""`Response`: what a spider callback receives."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from ._errors import NotHtmlError, SelectorError
from ._request import Request
from ._urls import cache_key, is_http_url, join_url
from .charset import decode_body, is_html

if TYPE_CHECKING:  # parsel (and lxml) load on the first css()/xpath() call
    import parsel

    from ._selectors import Selector

LINK_ATTRIBUTES = ("href", "src")


class Response:
    """A fetched page. ``headers`` has lower-case names.

    Two ways to select: ``css`` / ``xpath`` return Scrapy's selector lists (parsel:
    ``::text``, ``::attr(name)``, ``.get()``, ``.getall()``), and ``css_nodes`` /
    ``css_first`` return selectolax's lexbor nodes (``.text()``, ``.attributes``),
    several times faster. Each parser runs lazily, on the first call that needs
    it, once per response."""

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
    def cb_kwargs(self) -> Mapping[str, Any]:
        """The ``cb_kwargs`` of the request (also passed to the callback as keyword arguments)."""
        return self.request.cb_kwargs

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
            raise self._not_html()
        if self.encoding == "utf-8":
            return LexborHTMLParser(self.body.removeprefix(codecs.BOM_UTF8))
        return LexborHTMLParser(self.text)

    def _not_html(self) -> NotHtmlError:
        kind = self.headers.get("content-type", "unknown type")
        return NotHtmlError(f"{self.url} is not HTML ({kind}); use .text or .json()")

    @cached_property
    def base_url(self) -> str:
        """The URL relative links resolve against: ``<base href>`` if present and
        http(s), else the page's URL."""
        if self.is_html:
            base = self._tree.css_first("base[href]")
            href = base.attributes.get("href") if base is not None else None
            base_url = join_url(self.url, href, self.encoding) if href else ""
            if is_http_url(base_url):  # a javascript:, data: or broken base: the page's URL
                return base_url
        return self.url

    @cached_property
    def selector(self) -> Selector:
        """The page as a Scrapy (parsel) ``Selector``; HTML, or XML for an XML body.
        Raises `NotHtmlError` for other bodies."""
        from ._selectors import page_selector  # noqa: PLC0415  (lxml loads only if used)

        kind = "html" if self.is_html else "xml" if _is_xml(self.headers.get("content-type")) else None
        if kind is None:
            raise self._not_html()
        return page_selector(self.text, self.url, kind)

    def css(self, query: str) -> parsel.SelectorList[Selector]:
        """Scrapy's ``response.css``: a selector list of the elements matching the CSS
        ``query``; ``::text`` and ``::attr(name)`` select text and attribute values::

            response.css("h1::text").get()              # first match or None
            response.css("li a::attr(href)").getall()   # every match
        """
        return self.selector.css(query)

    def xpath(self, query: str, namespaces: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        """Scrapy's ``response.xpath``: a selector list of what the XPath ``query``
        selects; ``kwargs`` are XPath variables (``$name``)."""
        return self.selector.xpath(query, namespaces, **kwargs)

    def css_nodes(self, selector: str) -> list[LexborNode]:
        """The fast path: every element matching the CSS ``selector`` as selectolax
        lexbor nodes (``.text()``, ``.attributes``, ``.css()``). No pseudo-elements:
        use ``.text()`` and ``.attributes["href"]``."""
        try:
            return self._tree.css(selector)
        except SelectolaxError as exc:
            raise _bad_css(selector, exc) from None

    def css_first(self, selector: str) -> LexborNode | None:
        """The fast path: the first element matching ``selector`` (a selectolax node),
        or ``None``; check for ``None`` before calling ``.text()``."""
        try:
            node = self._tree.css_first(selector)
        except SelectolaxError as exc:
            raise _bad_css(selector, exc) from None
        if node is None:
            self.__dict__["_missed"] = selector  # named if the callback then trips on None
        return node

    def _hint_for(self, exc: BaseException) -> str | None:
        """A hint for a callback error that came from using a ``css_first`` miss."""
        missed = self.__dict__.get("_missed")
        if missed is None or not isinstance(exc, AttributeError) or "'NoneType'" not in str(exc):
            return None
        return (
            f"css_first({missed!r}) matched nothing on {self.url} and returned None: check for "
            f"None, or use response.css({missed!r}).get(), which returns None instead of raising"
        )

    def urljoin(self, href: str) -> str:
        """``href`` made absolute against this page (its ``<base href>`` if it has
        one), a non-ASCII query percent-encoded in the page's encoding as browsers do."""
        return join_url(self.base_url, href, self._decoded[1])  # [1]: the encoding, cached

    def follow(self, target: Any, callback: Any = None, **kwargs: Any) -> Request:
        """A request for ``target`` (a URL, relative or absolute; a selectolax node or a
        parsel selector of an element with ``href``/``src``; or a selector of an
        ``::attr(href)`` value), one level deeper than this response. ``kwargs`` are
        `Request` fields (``meta``, ``cb_kwargs``, ``priority``, ...)."""
        href = target if isinstance(target, str) else _required_link(target)
        kwargs.setdefault("depth", self.depth + 1)
        url = self.urljoin(href)
        kwargs["headers"] = self._with_referer(url, kwargs.get("headers"))
        return Request(url, callback=callback, **kwargs)

    @cached_property
    def _referer(self) -> Mapping[str, str]:
        # One mapping shared by every request this page yields: pickled once per batch.
        return {"Referer": self.url}

    def _with_referer(self, url: str, headers: Mapping[str, str] | None) -> Mapping[str, str]:
        """The headers of a followed link: ``Referer`` is this page, as browsers and
        Scrapy send it, except from https to http (no-referrer-when-downgrade)."""
        if url.startswith("http:") and self.url.startswith("https:"):
            return headers or {}
        if headers is None:
            return self._referer
        if any(name.lower() == "referer" for name in headers):
            return headers
        return {**self._referer, **headers}

    def follow_all(
        self,
        targets: str | Iterable[Any] | None = None,
        callback: Any = None,
        *,
        css: str | None = None,
        xpath: str | None = None,
        **kwargs: Any,
    ) -> Iterator[Request]:
        """Requests for every link of ``targets``: a CSS selector (its elements'
        ``href``/``src``, on the fast path), or an iterable of URLs, nodes and
        selectors. As in Scrapy, ``css=`` or ``xpath=`` select the links with parsel
        instead (``css="a.next::attr(href)"`` works). Elements without a link are
        skipped. Links that differ only in their ``#fragment`` are one page: each is
        followed once per call (all of them with ``dont_filter=True``)."""
        followed: set[str] | None = None if kwargs.get("dont_filter") else set()
        for item in self._link_sources(targets, css, xpath):
            href = item if isinstance(item, str) else _link_of(item)
            if not href:
                continue
            if followed is not None:  # a doc page links to one page dozens of times
                page = cache_key(href)
                if page in followed:
                    continue
                followed.add(page)
            yield self.follow(href, callback, **kwargs)

    def _link_sources(self, targets: str | Iterable[Any] | None, css: str | None, xpath: str | None) -> Any:
        if sum(source is not None for source in (targets, css, xpath)) != 1:
            raise TypeError("follow_all() takes one of: links (or a CSS selector), css=, xpath=")
        if css is not None:
            return self.css(css)
        if xpath is not None:
            return self.xpath(xpath)
        return self.css_nodes(targets) if isinstance(targets, str) else targets

    def replace(self, **changes: Any) -> Response:
        """A copy with some of ``url``, ``status``, ``headers``, ``body``, ``request`` changed."""
        names = ("url", "status", "headers", "body", "request")
        values = {name: changes.pop(name, getattr(self, name)) for name in names}
        if changes:
            raise TypeError(f"Response.replace() got unknown fields: {', '.join(changes)}")
        return Response(**values)


def _required_link(target: Any) -> str:
    href = _link_of(target)
    if href is None:
        raise ValueError(f"{_describe(target)} has no href or src to follow")
    return href


def _link_of(target: Any) -> str | None:
    if isinstance(target, LexborNode):
        attributes = target.attrs  # a lazy view: cheaper than building .attributes
        for name in LINK_ATTRIBUTES:
            value = attributes.get(name)
            if value:
                return value
        return None
    from ._selectors import link_of_selector  # noqa: PLC0415  (a parsel selector: parsel is loaded)

    return link_of_selector(target)


def _describe(target: Any) -> str:
    if isinstance(target, LexborNode):
        return f"element <{target.tag}>"
    from ._selectors import describe_selector  # noqa: PLC0415

    return f"selector {describe_selector(target)}"


def _bad_css(selector: str, exc: Exception) -> SelectorError:
    hint = ""
    if "::" in selector:  # Scrapy's pseudo-elements are parsel's, not selectolax's
        hint = " (the fast nodes have no ::text or ::attr(): use .text() and .attributes, or response.css())"
    return SelectorError(f"invalid CSS selector {selector!r} for css_nodes/css_first: {exc}{hint}")


def _is_xml(content_type: str | None) -> bool:
    media = (content_type or "").partition(";")[0].strip().lower()
    return media.endswith(("/xml", "+xml"))
