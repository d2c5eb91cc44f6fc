"""`Request`: an immutable description of one fetch to make."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Request:
    """One fetch to make. Change it with ``dataclasses.replace``.

    ``callback`` is the *name* of a spider method (``None`` means ``parse``), so a
    request can cross process boundaries and be stored in a durable frontier.
    ``priority``: higher runs first within its host. ``depth``: link distance from a
    start URL. ``dont_filter`` skips duplicate filtering. ``retries`` and
    ``redirects`` are the engine's bookkeeping (attempts so far, URLs redirected from).
    """

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

    def __post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise TypeError(f"Request url must be str, not {type(self.url).__name__}")
        if self.callback is not None and not isinstance(self.callback, str):
            name = getattr(self.callback, "__name__", None)
            if not isinstance(name, str):
                raise TypeError("Request callback must be a method name or a spider method")
            object.__setattr__(self, "callback", name)
        object.__setattr__(self, "method", self.method.upper())
