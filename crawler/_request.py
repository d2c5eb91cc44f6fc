"""`Request`: an immutable description of one fetch to make."""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._pickling import fast_pickle, from_slots
from ._urls import fingerprint_canonical


@fast_pickle
@dataclass(frozen=True, slots=True)
class Request:
    """One fetch to make. Change it with ``dataclasses.replace``.

    ``callback`` is the *name* of a spider method (``None`` means ``parse``), so a
    request can cross process boundaries and be stored in a durable frontier.
    ``priority``: higher runs first within its host. ``depth``: link distance from a
    start URL. ``dont_filter`` skips duplicate filtering. ``retries`` and
    ``redirects`` are the engine's bookkeeping (attempts so far, URLs redirected from).
    ``cb_kwargs`` are passed to the callback as keyword arguments (as in Scrapy).
    ``render``: load the page in a browser and hand the callback the DOM once the
    page settled (``None``: the spider's ``render`` setting); ``wait_for`` says when
    it settled: ``"networkidle"``, ``"load"``, ``"domcontentloaded"``, a number of
    seconds after load, or a CSS selector that must appear (``None``: the spider's
    ``wait_for`` setting).
    """

    # The stored layout before fields were named (see crawler/_pickling.py).
    _format1_fields: ClassVar[tuple[str, ...]] = (
        "url", "callback", "method", "headers", "body", "meta", "priority", "depth",
        "dont_filter", "retries", "redirects", "_fingerprint",
    )  # fmt: skip

    url: str
    callback: str | None = None
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    meta: Mapping[str, Any] = field(default_factory=dict)
    priority: int = 0
    depth: int = 0
    dont_filter: bool = False
    retries: int = 0
    redirects: tuple[str, ...] = ()
    cb_kwargs: Mapping[str, Any] = field(default_factory=dict)
    render: bool | None = None
    wait_for: str | float | None = None
    _fingerprint: int | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise TypeError(f"Request url must be str, not {type(self.url).__name__}")
        if self.callback is not None and not isinstance(self.callback, str):
            name = getattr(self.callback, "__name__", None)
            if not isinstance(name, str):
                raise TypeError("Request callback must be a method name or a spider method")
            object.__setattr__(self, "callback", name)
        if type(self.cb_kwargs) is not dict and not isinstance(self.cb_kwargs, Mapping):
            raise TypeError("Request cb_kwargs must be a mapping of keyword arguments")
        if not self.method.isupper():
            object.__setattr__(self, "method", self.method.upper())
        if self.render is not None or self.wait_for is not None:
            _check_rendering(self.render, self.wait_for)

    @property
    def fingerprint(self) -> int:
        """The 64-bit dedup key of method, URL (taken as canonical) and body; computed
        once per request, and carried along when the request is pickled."""
        value = self._fingerprint
        if value is None:
            value = fingerprint_canonical(self.method, self.url, self.body)
            object.__setattr__(self, "_fingerprint", value)
        return value


def _check_rendering(render: object, wait_for: str | float | None) -> None:
    if render is not None and not isinstance(render, bool):
        raise TypeError(f"Request render must be True, False or None, not {render!r}")
    if wait_for is not None:
        parse_wait(wait_for)  # a ValueError names what it takes


def relocated(request: Request, url: str, depth: int, fingerprint: int | None = None) -> Request:
    """``replace(request, url=url, depth=depth)`` for the hot path of link extraction:
    a copy without re-validation (the other fields were valid already), with the
    new URL's fingerprint if the caller knows it."""
    values = list(_field_values(request))
    values[_URL], values[_DEPTH], values[_FINGERPRINT] = url, depth, fingerprint
    return from_slots(Request, tuple(values))


_FIELDS: tuple[str, ...] = Request._pickled_fields  # type: ignore[attr-defined]
_URL, _DEPTH, _FINGERPRINT = (_FIELDS.index(name) for name in ("url", "depth", "_fingerprint"))
_field_values = operator.attrgetter(*_FIELDS)


# --- rendering options: when a rendered page has settled, what it may load ---------

LOAD_EVENTS = ("networkidle", "load", "domcontentloaded")
# Playwright's resource types; fonts, media and images are not loaded by default.
RESOURCE_TYPES = frozenset(
    {"document", "stylesheet", "image", "media", "font", "script", "texttrack", "xhr", "fetch",
     "eventsource", "websocket", "manifest", "other"}
)  # fmt: skip
DEFAULT_RENDER_RESOURCES = tuple(sorted(RESOURCE_TYPES - {"image", "media", "font"}))


@dataclass(frozen=True, slots=True)
class Wait:
    """When a rendered page has settled: after the ``event`` of its navigation, then
    ``selector`` present (if set), then ``seconds`` more."""

    event: str
    selector: str | None = None
    seconds: float = 0.0


def parse_wait(value: str | float) -> Wait:
    """A ``wait_for`` value: a load event name, a number of seconds after load, or a
    CSS selector that must appear. Raises ``ValueError`` for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        if value.strip() in LOAD_EVENTS:
            return Wait(value.strip())
        number = _number(value)
        if number is None:
            return Wait("load", selector=value.strip())
        seconds = number
    else:
        raise ValueError(f"wait_for must be a load event, seconds or a CSS selector, not {value!r}")
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"wait_for must be zero or more seconds, not {value!r}")
    return Wait("load", seconds=seconds)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
