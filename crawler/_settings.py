"""Typed crawl settings with their defaults in one place.

Precedence: explicit overrides (CLI flags, library keyword arguments) beat the
spider's class attributes, which beat the defaults below. Every setting has the
same name in the CLI (``--per-host``), the spider (``per_host``) and the library
(``crawler.run(Spider, per_host=4)``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import UsageError
from ._request import DEFAULT_RENDER_RESOURCES, RESOURCE_TYPES, parse_wait
from ._scrapynames import LOGGING_SETTINGS, field_types, translate
from ._version import __version__

log = logging.getLogger("crawler")

DEFAULT_USER_AGENT = f"crawler/{__version__} (+https://github.com/crawler-project/crawler)"
# The HTTP cache does not keep server errors and rate limits: next run asks again.
DEFAULT_CACHE_IGNORE_STATUS = (408, 429, 500, 502, 503, 504)


def default_parse_workers() -> int:
    """One core for the event loop, the others for parsing. On 2 cores one worker
    crawled as fast as two (2,070 against 2,090 pages/s) with 26% less memory."""
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of a crawl with its default; the README's settings table says
    what each does. Invalid values raise `UsageError` on construction."""

    concurrency: int = 64
    per_host: int = 8
    rate: float | None = None
    depth: int | None = None
    max_pages: int | None = None
    obey_robots: bool = True
    user_agent: str = DEFAULT_USER_AGENT
    robots_user_agent: str | None = None  # the robots.txt product token; None: from user_agent
    timeout: float = 30.0
    connect_timeout: float = 5.0
    first_byte_timeout: float = 10.0
    retries: int = 2
    max_redirects: int = 20
    max_size: int = 32 * 1024 * 1024
    max_body_memory: int = 256 * 1024 * 1024
    max_url_length: int = 2083
    parse_workers: int = field(default_factory=default_parse_workers)
    allowed_domains: tuple[str, ...] | None = None
    allow_private: bool = False
    max_pages_per_host: int | None = None
    strip_session_ids: bool = False
    max_crawl_delay: float = 30.0
    autothrottle: bool = True
    politeness_key: str = "host"
    job: str | None = None
    frontier: str | None = None
    parse_timeout: float = 30.0
    cache: str | None = None
    cache_expiry: float = 0.0
    cache_ignore_status: tuple[int, ...] = DEFAULT_CACHE_IGNORE_STATUS
    proxy: str | None = None
    render: bool = False
    wait_for: str | float = "networkidle"
    browser_pages: int = 4
    browser_path: str | None = None
    render_resources: tuple[str, ...] = DEFAULT_RENDER_RESOURCES

    def __post_init__(self) -> None:
        if self.job is not None and self.frontier is not None:
            raise UsageError("use --job (one machine) or --frontier (shared), not both")
        if self.cache is not None and (self.job is not None or self.frontier is not None):
            # A job's or a shared frontier keeps per-host policies across runs, and with
            # the cache their intervals are 0 (the cache paces what reaches the network).
            raise UsageError("--cache is for development runs: it does not mix with --job or --frontier")
        _check_positive("concurrency", self.concurrency)
        _check_positive("per_host", self.per_host)
        _check_positive("max_redirects", self.max_redirects, allow_zero=True)
        _check_positive("retries", self.retries, allow_zero=True)
        _check_positive("max_url_length", self.max_url_length)
        _check_positive("max_size", self.max_size)
        _check_positive("max_body_memory", self.max_body_memory)
        _check_positive("parse_workers", self.parse_workers, allow_zero=True)
        for name in (
            "rate",
            "timeout",
            "connect_timeout",
            "first_byte_timeout",
            "max_crawl_delay",
            "parse_timeout",
        ):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and value > 0):
                raise UsageError(f"{name} must be a positive number, not {value!r}")
        for name in ("depth", "max_pages", "max_pages_per_host"):
            value = getattr(self, name)
            if value is not None:
                _check_positive(name, value, allow_zero=True)
        _check_cache(self.cache_expiry, self.cache_ignore_status)
        _check_proxy(self.proxy)
        if self.politeness_key not in ("host", "ip"):
            raise UsageError(f"politeness_key must be 'host' or 'ip', not {self.politeness_key!r}")
        _check_render(self)


def _check_proxy(proxy: str | None) -> None:
    scheme, _, rest = (proxy or "http://x").partition("://")
    if scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise UsageError(f"proxy must be an http:// or https:// URL, not {proxy!r}")


def _check_render(settings: Settings) -> None:
    _check_positive("browser_pages", settings.browser_pages)
    try:
        parse_wait(settings.wait_for)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    resources = settings.render_resources
    if not (isinstance(resources, tuple) and set(resources) <= RESOURCE_TYPES):
        known = ", ".join(sorted(RESOURCE_TYPES))
        raise UsageError(f"render_resources must be resource types ({known}), not {resources!r}")


def _check_cache(expiry: float, ignore_status: tuple[int, ...]) -> None:
    if not (_is_number(expiry) and expiry >= 0):
        raise UsageError(f"cache_expiry must be zero or more seconds, not {expiry!r}")
    if not (isinstance(ignore_status, tuple) and all(_is_status(code) for code in ignore_status)):
        raise UsageError(f"cache_ignore_status must be HTTP status codes, not {ignore_status!r}")


def _is_status(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_positive(name: str, value: object, allow_zero: bool = False) -> None:
    lowest = 0 if allow_zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
        bound = "zero or more" if allow_zero else "at least 1"
        raise UsageError(f"{name} must be a whole number {bound}, not {value!r}")


SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(Settings))


def _tuples_of_lists(values: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if isinstance(values.get(name), list | set | frozenset):  # a list on a spider
            values[name] = tuple(values[name])


def resolve_settings(spider_cls: type, overrides: dict[str, Any]) -> Settings:
    """Merge defaults, the spider's settings (class attributes, then its
    ``custom_settings``) and explicit overrides. Names may be ours or Scrapy's."""
    explicit = translate(overrides, _FIELD_TYPES, "setting")
    spider_level = spider_settings(spider_cls)
    values: dict[str, Any] = {}
    for name in SETTING_NAMES:
        if explicit.get(name) is not None:
            values[name] = explicit[name]
        elif spider_level.get(name) is not None:
            values[name] = spider_level[name]
    if values.get("allowed_domains") is not None:
        values["allowed_domains"] = tuple(values["allowed_domains"])
    _tuples_of_lists(values, ("cache_ignore_status", "render_resources"))
    try:
        return Settings(**values)
    except TypeError as exc:
        raise UsageError(str(exc)) from None


_FIELD_TYPES = field_types(Settings)
# Handled elsewhere: pipelines by the engine, logging by the `crawl` command.
SPIDER_ONLY_SETTINGS = ("ITEM_PIPELINES",)


def spider_settings(spider_cls: type) -> dict[str, Any]:
    """The settings a spider class sets: attributes named like settings, Scrapy's
    ``download_delay`` attribute, then ``custom_settings`` (our names or Scrapy's)."""
    warn_misspelt_attributes(spider_cls)
    values = {name: getattr(spider_cls, name) for name in SETTING_NAMES if hasattr(spider_cls, name)}
    delay = getattr(spider_cls, "download_delay", None)
    if delay is not None:
        values.update(translate({"DOWNLOAD_DELAY": delay}, _FIELD_TYPES, "download_delay"))
    custom = dict(getattr(spider_cls, "custom_settings", None) or {})
    for name in SPIDER_ONLY_SETTINGS:
        custom.pop(name, None)
    translated = translate(custom, _FIELD_TYPES, f"{spider_cls.__name__}.custom_settings")
    values.update((name, value) for name, value in translated.items() if value is not None)
    return values


# Attributes a spider may have that are not settings (Scrapy's included), so not typos.
_SPIDER_ATTRIBUTES = frozenset(
    {"name", "start_urls", "allowed_domains", "sitemap_urls", "sitemap_callback", "sitemap_rules",
     "pipelines", "handle_httpstatus_list", "custom_settings", "download_delay", "sitemap_max_size"}
)  # fmt: skip


def warn_misspelt_attributes(spider_cls: type) -> None:
    """A class attribute that looks like a misspelt setting (``per_hots = 1``) would be
    silently ignored: warn, naming the setting it resembles."""
    candidates = SETTING_NAMES | _SPIDER_ATTRIBUTES
    for name, value in _own_attributes(spider_cls):
        if name in candidates or callable(value) or isinstance(value, property | classmethod | staticmethod):
            continue
        guess = difflib.get_close_matches(name, candidates, n=1, cutoff=0.8)
        if guess:
            log.warning(
                "spider attribute %r of %s is not a setting: did you mean %s?",
                name, spider_cls.__name__, guess[0],
            )  # fmt: skip


def _own_attributes(spider_cls: type) -> list[tuple[str, Any]]:
    """Public class attributes of the user's classes (not of crawler's `Spider`)."""
    found: dict[str, Any] = {}
    for klass in reversed(inspect.getmro(spider_cls)):
        if klass is object or klass.__module__ == "crawler._spider":
            continue
        found.update((k, v) for k, v in vars(klass).items() if not k.startswith("_"))
    return list(found.items())


def command_line_settings(pairs: Iterable[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``-s NAME=VALUE`` pairs (our names or Scrapy's): the settings by our names, and
    the logging ones (``LOG_LEVEL``, ``LOG_FILE``) for the command to apply."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-s takes NAME=VALUE, not {pair!r}")
        values[name.strip()] = value
    for name in SPIDER_ONLY_SETTINGS:
        if name in values:
            raise UsageError(f"-s {name}: set it in the spider's custom_settings")
    logging_values = {name: values[name] for name in LOGGING_SETTINGS if name in values}
    return translate(values, _FIELD_TYPES, "-s"), logging_values


def logging_settings(*sources: Mapping[str, Any]) -> tuple[str, str | None]:
    """(level, log file) from the first source that names each: flags, ``-s``, then
    the spider's ``custom_settings``."""
    level = next((str(s["LOG_LEVEL"]) for s in sources if s.get("LOG_LEVEL")), "INFO")
    logfile = next((str(s["LOG_FILE"]) for s in sources if s.get("LOG_FILE")), None)
    return level, logfile
