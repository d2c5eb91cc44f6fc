"""Scrapy-style selectors: parsel (Scrapy's own selector library, on lxml).

``Response.css`` and ``Response.xpath`` return parsel ``SelectorList`` s, so
``::text``, ``::attr(name)``, ``.get()``, ``.getall()``, ``.attrib``, ``.re()`` and
nested ``.css()`` / ``.xpath()`` behave as in Scrapy. The only change: a bad
selector raises `SelectorError` naming the selector and the page, at any depth of
nesting. This module (and lxml with it) loads on the first such call, so a crawl
whose callbacks use only the selectolax nodes never pays for it.
"""

from __future__ import annotations

from typing import Any

import parsel
from cssselect import SelectorError as CssSelectorError

from ._errors import SelectorError

# What selectolax nodes have and parsel selectors do not, with the parsel way to say it.
_NODE_HABITS = {
    "text": ".css('::text').get() (or .xpath('string()').get() for nested text)",
    "attributes": ".attrib",
    "tag": ".root.tag",
}


class Selector(parsel.Selector):
    """parsel's ``Selector`` whose errors name the selector that caused them."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        # Before parsel, response.css() returned selectolax nodes: say what changed.
        if name in _NODE_HABITS:
            raise AttributeError(
                f"a Scrapy selector has no .{name}: use {_NODE_HABITS[name]}, or "
                f"response.css_nodes() for selectolax nodes (response.css() returns "
                f"Scrapy selectors)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def css(self, query: str) -> parsel.SelectorList[Any]:
        try:
            return super().css(query)
        except CssSelectorError as exc:
            raise SelectorError(f"invalid CSS selector {query!r}: {exc}") from None

    def xpath(self, query: str, namespaces: Any = None, **kwargs: Any) -> parsel.SelectorList[Any]:
        try:
            return super().xpath(query, namespaces, **kwargs)
        except ValueError as exc:
            message = str(exc).removeprefix("XPath error: ")
            raise SelectorError(f"invalid XPath {query!r}: {message}") from None


class SelectorList(parsel.SelectorList[Selector]):
    """parsel's ``SelectorList`` of our `Selector` s."""


# parsel types this attribute as its own SelectorList class, not a subclass of it.
Selector.selectorlist_cls = SelectorList  # type: ignore[assignment]


def page_selector(text: str, url: str, kind: str) -> Selector:
    """The root selector of a page whose decoded text is ``text`` (``kind``: html or xml)."""
    return Selector(text=text, type=kind, base_url=url)


def link_of_selector(selector: parsel.Selector) -> str | None:
    """The URL a selector stands for: the value of ``::attr(href)``/``::text`` results,
    else the element's ``href`` or ``src`` (as Scrapy's ``response.follow``)."""
    if not isinstance(selector, parsel.Selector):
        kind = type(selector).__name__
        raise TypeError(f"a link is a URL, a selectolax node or a parsel selector, not {kind}")
    root = selector.root
    if isinstance(root, str):
        return root.strip() or None
    get = getattr(root, "get", None)
    if get is None:
        return None
    value: str | None = get("href") or get("src")
    return value.strip() if value else None


def describe_selector(selector: parsel.Selector) -> str:
    root = selector.root
    return f"<{root.tag}>" if hasattr(root, "tag") else repr(selector.get())
