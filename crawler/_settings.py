"""Typed crawl settings with their defaults in one place.

Precedence: explicit overrides (CLI flags, library keyword arguments) beat the
spider's class attributes, which beat the defaults below. Every setting has the
same name in the CLI (``--per-host``), the spider (``per_host``) and the library
(``crawler.run(Spider, per_host=4)``).

Each field carries its own help text and check (`SettingInfo`, in the field's
metadata): `Settings` runs the checks, and the commands build their flags, with the
defaults they show, from the same fields (see ``crawler/cli/options.py``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import UsageError
from ._request import DEFAULT_RENDER_RESOURCES, RESOURCE_TYPES, parse_wait
from ._scrapynames import LOGGING_SETTINGS, field_types, translate
from ._urls import MAX_URL_LENGTH
from ._version import __version__

log = logging.getLogger("crawler")

DEFAULT_USER_AGENT = f"crawler/{__version__} (+https://github.com/crawler-project/crawler)"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Answers worth asking again (timeouts, rate limits, server errors): retried up to
``retries`` times, counted as failures by the adaptive throttle, and not kept by the
HTTP cache (next run asks again) unless ``cache_ignore_status`` says otherwise."""
DEFAULT_CACHE_IGNORE_STATUS = tuple(sorted(RETRY_STATUSES))

Check = Callable[[str, Any], None]  # (setting name, value); raises UsageError


def default_parse_workers() -> int:
    """One core for the event loop, the others for parsing: on two cores one worker
    crawled as fast as two, with less memory."""
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """What a command line needs to know of a setting besides its name and type.

    ``shown``: the default as help shows it, where the value itself would not say it
    (``None`` shows the value; ``""`` shows nothing); ``off``: the flag that turns a
    true/false setting off (``--no-NAME`` unless given); ``metavar``: the value's
    name in help."""

    help: str
    check: Check | None = None
    shown: str | None = None
    off: str | None = None
    metavar: str | None = None


def setting(default: Any = dataclasses.MISSING, help: str = "", **info: Any) -> Any:
    """A `Settings` field: its default (a callable: computed per instance), its help,
    and the `SettingInfo` keywords."""
    metadata = {"setting": SettingInfo(help, **info)}
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


def setting_info(spec: dataclasses.Field[Any]) -> SettingInfo:
    info: SettingInfo = spec.metadata["setting"]
    return info


def at_least(lowest: int, optional: bool = False) -> Check:
    """A whole number of at least ``lowest`` (zero or one), or also None."""

    def check(name: str, value: Any) -> None:
        if value is None and optional:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
            bound = "zero or more" if lowest == 0 else "at least 1"
            raise UsageError(f"{name} must be a whole number {bound}, not {value!r}")

    return check


def positive_number(name: str, value: Any) -> None:
    if value is not None and not (_is_number(value) and value > 0):
        raise UsageError(f"{name} must be a positive number, not {value!r}")


def one_of(*choices: str) -> Check:
    def check(name: str, value: Any) -> None:
        if value not in choices:
            allowed = " or ".join(repr(choice) for choice in choices)
            raise UsageError(f"{name} must be {allowed}, not {value!r}")

    return check


def _check_proxy(name: str, proxy: Any) -> None:
    if proxy is None:
        return
    scheme, _, rest = proxy.partition("://") if isinstance(proxy, str) else ("", "", "")
    if scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise UsageError(f"{name} must be an http:// or https:// URL, not {proxy!r}")


def _check_wait(name: str, value: Any) -> None:
    try:
        parse_wait(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _check_resources(name: str, resources: Any) -> None:
    if not (isinstance(resources, tuple) and set(resources) <= RESOURCE_TYPES):
        known = ", ".join(sorted(RESOURCE_TYPES))
        raise UsageError(f"{name} must be resource types ({known}), not {resources!r}")


def _check_expiry(name: str, expiry: Any) -> None:
    if not (_is_number(expiry) and expiry >= 0):
        raise UsageError(f"{name} must be zero or more seconds, not {expiry!r}")


def _check_statuses(name: str, codes: Any) -> None:
    if not (isinstance(codes, tuple) and all(_is_status(code) for code in codes)):
        raise UsageError(f"{name} must be HTTP status codes, not {codes!r}")


def _is_status(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


MiB = 1024 * 1024
SECONDS = "SECONDS"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of a crawl with its default; the README's settings table says
    more of what each does. Invalid values raise `UsageError` on construction."""

    concurrency: int = setting(64, "Requests in flight in total.", check=at_least(1))
    per_host: int = setting(8, "Requests in flight per host.", check=at_least(1))
    rate: float | None = setting(
        None, "Requests per second per host.", metavar="R", check=positive_number, shown="no cap"
    )
    depth: int | None = setting(
        None, "Maximum link depth from a start URL.", check=at_least(0, optional=True)
    )
    max_pages: int | None = setting(None, "Stop after this many pages.", check=at_least(0, optional=True))
    obey_robots: bool = setting(True, "Obey robots.txt.")
    user_agent: str = setting(DEFAULT_USER_AGENT, "User-Agent header.", shown="crawler/VERSION")
    robots_user_agent: str | None = setting(
        None, "Product token robots.txt groups match.", shown="the User-Agent's", metavar="TOKEN"
    )
    timeout: float = setting(30.0, "Deadline per fetch attempt.", check=positive_number, metavar=SECONDS)
    connect_timeout: float = setting(
        5.0, "Deadline to open a connection.", check=positive_number, metavar=SECONDS
    )
    first_byte_timeout: float = setting(
        10.0, "Wait for the server's first byte, or between reads.", check=positive_number, metavar=SECONDS
    )
    retries: int = setting(2, "Retries of a failed fetch.", check=at_least(0))
    max_redirects: int = setting(20, "Redirect hops per request.", check=at_least(0))
    max_size: int = setting(32 * MiB, "Largest decoded body in bytes.", check=at_least(1), shown="32 MiB")
    max_body_memory: int = setting(
        256 * MiB, "Bytes of bodies read or waiting to be parsed.", check=at_least(1), shown="256 MiB"
    )
    max_url_length: int = setting(MAX_URL_LENGTH, "Longest URL followed.", check=at_least(1))
    parse_workers: int = setting(
        default_parse_workers, "Parse processes; 0 parses in-process.", check=at_least(0), shown="CPUs - 1"
    )
    allowed_domains: tuple[str, ...] | None = setting(
        None, "Domain in scope (repeat it).", shown="hosts of the start URLs", metavar="DOMAIN"
    )
    allow_private: bool = setting(False, "Fetch private and loopback addresses.")
    max_pages_per_host: int | None = setting(
        None, "Stop a host after this many pages.", check=at_least(0, optional=True)
    )
    strip_session_ids: bool = setting(False, "Drop session-id query parameters.", off="--keep-session-ids")
    max_crawl_delay: float = setting(
        30.0, "Cap on robots.txt Crawl-delay.", check=positive_number, metavar=SECONDS
    )
    autothrottle: bool = setting(True, "Adapt per-host concurrency to latency.")
    politeness_key: str = setting(
        "host", "Rate per host:port, or per resolved IP.", check=one_of("host", "ip"), metavar="host|ip"
    )
    job: str | None = setting(None, "Keep crawl state in DIR to resume later.", metavar="DIR")
    frontier: str | None = setting(None, "Shared frontier URL (redis://HOST:PORT/DB).", metavar="URL")
    parse_timeout: float = setting(
        30.0, "Seconds one page may take in a parse worker.", check=positive_number, metavar=SECONDS
    )
    cache: str | None = setting(
        None, "Store responses in DIR and replay them on later runs.", shown="off", metavar="DIR"
    )
    cache_expiry: float = setting(
        0.0, "Refetch cached responses older than this; 0: never.", check=_check_expiry, metavar=SECONDS
    )
    cache_ignore_status: tuple[int, ...] = setting(
        DEFAULT_CACHE_IGNORE_STATUS, "Status never cached (repeat it).", check=_check_statuses, metavar="CODE"
    )
    proxy: str | None = setting(
        None, "Send requests through this HTTP(S) proxy.", check=_check_proxy, metavar="URL"
    )
    render: bool = setting(False, "Render pages in a browser (needs crawler[browser]).")
    wait_for: str | float = setting(
        "networkidle",
        "Page settled: networkidle, load, SECONDS, a selector.",
        check=_check_wait,
        metavar="WHEN",
    )
    browser_pages: int = setting(4, "Browser pages rendering at once.", check=at_least(1))
    browser_path: str | None = setting(
        None, "Chromium to drive.", shown="chromium on PATH, or Playwright's", metavar="PATH"
    )
    render_resources: tuple[str, ...] = setting(
        DEFAULT_RENDER_RESOURCES,
        "Resource type a page may load (repeat it).",
        check=_check_resources,
        shown="all but image, font, media",
        metavar="TYPE",
    )

    def __post_init__(self) -> None:
        if self.job is not None and self.frontier is not None:
            raise UsageError("use --job (one machine) or --frontier (shared), not both")
        if self.cache is not None and (self.job is not None or self.frontier is not None):
            # A job's or a shared frontier keeps per-host policies across runs, and with
            # the cache their intervals are 0 (the cache paces what reaches the network).
            raise UsageError("--cache is for development runs: it does not mix with --job or --frontier")
        for spec in SETTING_FIELDS:
            check = setting_info(spec).check
            if check is not None:
                check(spec.name, getattr(self, spec.name))


SETTING_FIELDS = dataclasses.fields(Settings)
SETTING_NAMES = frozenset(f.name for f in SETTING_FIELDS)


def _tuples_of_lists(values: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if isinstance(values.get(name), list | set | frozenset):  # a list on a spider
            values[name] = tuple(values[name])


def resolve_settings(spider_cls: type, overrides: dict[str, Any]) -> Settings:
    """Merge defaults, the spider's settings (class attributes, then its
    ``custom_settings``) and explicit overrides. Names may be ours or Scrapy's."""
    explicit = translate(overrides, _FIELD_TYPES, "setting")
    warn_misspelt_attributes(spider_cls)  # here, not in spider_settings: once per crawl
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
