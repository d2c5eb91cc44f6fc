"""Settings by name: ours (``per_host``) and Scrapy's (``CONCURRENT_REQUESTS_PER_DOMAIN``).

``custom_settings = {...}`` on a spider, ``-s NAME=VALUE`` on the command line and
the library's keyword arguments all go through `translate`: a Scrapy name becomes
the setting that means the same thing, with its value converted (``DOWNLOAD_DELAY``
seconds become a ``rate``); a string value (from ``-s``) is parsed as the setting's
type. A name we do not support is a `UsageError` that says why, or lists the names
we do support; never silence. The README's porting guide is the table of this file.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._errors import UsageError

log = logging.getLogger("crawler")

Convert = Callable[[Any], Any]


def _number(kind: type) -> Convert:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return kind(value.strip())
            except ValueError:
                raise UsageError(f"not a {'whole number' if kind is int else 'number'}: {value!r}") from None
        return value

    return convert


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        words = {"true": True, "1": True, "yes": True, "on": True}
        words |= {"false": False, "0": False, "no": False, "off": False}
        if value.strip().lower() not in words:
            raise UsageError(f"not a true/false value: {value!r}")
        return words[value.strip().lower()]
    return value


def _text(value: Any) -> Any:
    return value


def _words(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _codes(value: Any) -> Any:
    return tuple(_number(int)(code) for code in _words(value)) if isinstance(value, str) else value


def _zero_is_none(value: Any) -> Any:
    """Scrapy's 0 means "no limit"; ours is None."""
    value = _number(int)(value)
    return None if value == 0 else value


def _delay_to_rate(value: Any) -> Any:
    delay = _number(float)(value)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise UsageError(f"DOWNLOAD_DELAY must be zero or more seconds, not {value!r}")
    return None if delay == 0 else 1 / delay


def _max_size(value: Any) -> Any:
    size = _number(int)(value)
    if size == 0:
        raise UsageError("DOWNLOAD_MAXSIZE=0 (no limit) is not supported: bodies are always capped")
    return size


def _retry_enabled(value: Any) -> Any:
    return None if _flag(value) else 0


# Scrapy's name -> (our setting, conversion of the value).
SCRAPY_SETTINGS: dict[str, tuple[str, Convert]] = {
    "CONCURRENT_REQUESTS": ("concurrency", _number(int)),
    "CONCURRENT_REQUESTS_PER_DOMAIN": ("per_host", _number(int)),
    "DOWNLOAD_DELAY": ("rate", _delay_to_rate),
    "ROBOTSTXT_OBEY": ("obey_robots", _flag),
    "ROBOTSTXT_USER_AGENT": ("robots_user_agent", _text),
    "USER_AGENT": ("user_agent", _text),
    "DEPTH_LIMIT": ("depth", _zero_is_none),
    "CLOSESPIDER_PAGECOUNT": ("max_pages", _zero_is_none),
    "DOWNLOAD_TIMEOUT": ("timeout", _number(float)),
    "RETRY_TIMES": ("retries", _number(int)),
    "RETRY_ENABLED": ("retries", _retry_enabled),
    "DOWNLOAD_MAXSIZE": ("max_size", _max_size),
    "REDIRECT_MAX_TIMES": ("max_redirects", _number(int)),
    "URLLENGTH_LIMIT": ("max_url_length", _number(int)),
    "AUTOTHROTTLE_ENABLED": ("autothrottle", _flag),
    "HTTPCACHE_DIR": ("cache", _text),  # used only with HTTPCACHE_ENABLED, as in Scrapy
    "HTTPCACHE_EXPIRATION_SECS": ("cache_expiry", _number(float)),
    "HTTPCACHE_IGNORE_HTTP_CODES": ("cache_ignore_status", _codes),
    "JOBDIR": ("job", _text),
}
HTTPCACHE_ENABLED = "HTTPCACHE_ENABLED"
SCRAPY_CACHE_DIR = ".scrapy/httpcache"  # Scrapy's HTTPCACHE_DIR inside its project data folder
# Read by the `crawl` command, which sets up logging; a library user sets up their own.
LOGGING_SETTINGS = {"LOG_LEVEL": "log_level", "LOG_FILE": "log_file"}

# Scrapy names with no meaning here: accepted with a warning saying why.
IGNORED: dict[str, str] = {
    "BOT_NAME": "the spider's name is its `name` attribute",
    "SPIDER_MODULES": "crawl runs one spider file",
    "NEWSPIDER_MODULE": "crawl new writes the template",
    "TELNETCONSOLE_ENABLED": "there is no telnet console",
    "REQUEST_FINGERPRINTER_IMPLEMENTATION": "requests are fingerprinted one way",
    "TWISTED_REACTOR": "the crawler runs on asyncio",
    "FEED_EXPORT_ENCODING": "items are always written as UTF-8",
    "COOKIES_ENABLED": "no cookies are kept between requests",
    "RANDOMIZE_DOWNLOAD_DELAY": "requests to a host are paced evenly",
    "LOG_ENABLED": "use --log-level",
}
# Scrapy names we deliberately do not support: an error saying what to do instead.
UNSUPPORTED: dict[str, str] = {
    "ITEM_PIPELINES": "supported in custom_settings only (or set pipelines = [...] on the spider)",
    "DOWNLOADER_MIDDLEWARES": "there are no middlewares: do it in the callback or a pipeline",
    "SPIDER_MIDDLEWARES": "there are no middlewares: do it in the callback or a pipeline",
    "EXTENSIONS": "there are no extensions",
    "FEEDS": "write items with -o/-O PATH (.jsonl, .jsonl.gz, .csv) or a pipeline",
    "FEED_URI": "write items with -o/-O PATH",
    "FEED_FORMAT": "the format follows the -o/-O file name",
    "CONCURRENT_REQUESTS_PER_IP": (
        "concurrency is per host (CONCURRENT_REQUESTS_PER_DOMAIN); politeness_key = 'ip' paces rate per IP"
    ),
    "DEFAULT_REQUEST_HEADERS": "set headers on each Request",
    "HTTPERROR_ALLOWED_CODES": "set handle_httpstatus_list on the spider",
    "DUPEFILTER_CLASS": "deduplication is part of the frontier",
    "SCHEDULER": "choose a frontier with --job DIR or --frontier redis://",
    "CLOSESPIDER_ITEMCOUNT": "not implemented: use CLOSESPIDER_PAGECOUNT (max_pages)",
    "CLOSESPIDER_TIMEOUT": "not implemented: stop the crawl with Ctrl-C or SIGTERM",
    "AUTOTHROTTLE_TARGET_CONCURRENCY": "the adaptive throttle has no targets to tune",
    "AUTOTHROTTLE_START_DELAY": "the adaptive throttle has no targets to tune",
    "AUTOTHROTTLE_MAX_DELAY": "the adaptive throttle has no targets to tune",
    "DEPTH_PRIORITY": "requests are ordered by priority within each host",
}


def supported_names(ours: Iterable[str]) -> list[str]:
    """Every name `translate` accepts: ours, then Scrapy's that map onto ours."""
    known = set(ours)
    scrapy = [name for name, (target, _) in SCRAPY_SETTINGS.items() if target in known]
    return sorted(known) + sorted([*scrapy, HTTPCACHE_ENABLED, *LOGGING_SETTINGS])


def translate(values: Mapping[str, Any], fields: Mapping[str, str], where: str) -> dict[str, Any]:
    """``values`` by our setting names. ``fields`` maps our names to their annotated
    types (for parsing strings); ``where`` names the source in errors (``-s``,
    ``custom_settings``)."""
    _refuse_unknown(values, fields, where)
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in IGNORED:
            log.warning("%s: %s is ignored: %s", where, name, IGNORED[name])
            continue
        if name in LOGGING_SETTINGS or name == HTTPCACHE_ENABLED:
            continue
        target, converted = _one(name, value, fields, where)
        if converted is not None or target not in out:
            out[target] = converted
    if _flag(values.get(HTTPCACHE_ENABLED, False)):
        out["cache"] = values.get("HTTPCACHE_DIR") or SCRAPY_CACHE_DIR
    elif "HTTPCACHE_DIR" in values:
        del out["cache"]  # as in Scrapy: the folder alone does not turn the cache on
    return out


def _one(name: str, value: Any, fields: Mapping[str, str], where: str) -> tuple[str, Any]:
    if name in fields:
        return name, _parse(value, fields[name], name, where)
    target, convert = SCRAPY_SETTINGS[name]  # _refuse_unknown let only these through
    try:
        return target, convert(value)
    except UsageError as exc:
        raise UsageError(f"{where} {name}: {exc}") from None


def _refuse_unknown(values: Mapping[str, Any], fields: Mapping[str, str], where: str) -> None:
    known = {*fields, *LOGGING_SETTINGS, *IGNORED, HTTPCACHE_ENABLED}
    known |= {name for name, (target, _) in SCRAPY_SETTINGS.items() if target in fields}
    for name in values:
        if name in UNSUPPORTED:
            raise UsageError(f"{where}: {name} is not supported: {UNSUPPORTED[name]}")
    unknown = [name for name in values if name not in known]
    if unknown:
        guesses = [difflib.get_close_matches(name, known, n=1) for name in unknown]
        hint = "".join(f" (did you mean {guess[0]}?)" for guess in guesses if guess)
        names = ", ".join(unknown)
        if all(guesses):  # a guess for each: the list of every setting would bury it
            raise UsageError(f"{where}: unknown setting(s) {names}{hint}")
        supported = ", ".join(supported_names(fields))
        raise UsageError(f"{where}: unknown setting(s) {names}{hint}; supported: {supported}")


def _parse(value: Any, annotation: str, name: str, where: str) -> Any:
    """A string from ``-s`` as the type of our setting ``name``."""
    if not isinstance(value, str) or annotation.startswith("str"):
        return value
    kind = annotation.split("|", maxsplit=1)[0].strip()
    parsers: dict[str, Convert] = {
        "int": _number(int),
        "float": _number(float),
        "bool": _flag,
        "tuple[str, ...]": _words,
        "tuple[int, ...]": _codes,
    }
    try:
        return parsers.get(kind, _text)(value)
    except UsageError as exc:
        raise UsageError(f"{where} {name}: {exc}") from None


def field_types(settings_cls: type) -> dict[str, str]:
    """Our setting names and their annotations (as written: ``int | None``)."""
    return {spec.name: str(spec.type) for spec in dataclasses.fields(settings_cls)}
