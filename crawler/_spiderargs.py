"""Checks of what a user hands a spider: ``-a NAME=VALUE`` strings where the spider
expects a list, and ``allowed_domains`` entries that could never match a link."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._errors import UsageError
from ._urls import InvalidURL, canonicalize, hostname

# Spider attributes that hold lists of strings. A string given for one (``-a
# start_urls=http://host/``) would be iterated letter by letter.
LIST_ATTRIBUTES = ("start_urls", "sitemap_urls", "allowed_domains")


def spider_kwargs(args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` with a string for a list attribute split on whitespace: ``-a
    start_urls="http://a/ http://b/"`` is two URLs (URLs and domains never contain
    whitespace, while commas are legal in URLs)."""
    return {
        name: value.split() if name in LIST_ATTRIBUTES and isinstance(value, str) else value
        for name, value in args.items()
    }


def check_allowed_domains(domains: Iterable[str] | None) -> None:
    """Refuse an ``allowed_domains`` entry that can never match: empty, a URL, a path."""
    for entry in domains or ():
        problem = _domain_problem(entry)
        if problem is not None:
            raise UsageError(f"allowed domain {entry!r} {problem}: every link would be offsite")


def _domain_problem(entry: object) -> str | None:
    if not isinstance(entry, str):
        return "is not a string"
    if not entry.strip():
        return "is empty"
    if "://" in entry or "/" in entry:
        host = _host_of(entry if "://" in entry else f"http://{entry}")
        hint = f" (use {host!r})" if host else ""
        return f"is a URL, not a host name{hint}"
    if not _host_of(f"http://{entry.strip()}/"):
        return "is not a host name"
    return None


def _host_of(url: str) -> str:
    try:
        return hostname(canonicalize(url))
    except InvalidURL:
        return ""
