"""`Spider`, the class users subclass, and loading spiders from files."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import re
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ._errors import SpiderLoadError, UsageError
from ._request import Request
from ._response import Response
from ._sitemaps import SitemapEntry, sitemap_entries
from ._urls import InvalidURL, canonicalize, hostname, join_url

log = logging.getLogger("crawler.spider")


class Spider:
    """Subclass it, set ``start_urls`` and write ``parse``.

    Class attributes named like settings (``concurrency``, ``per_host``, ``rate``,
    ``depth``, ``max_pages``, ``obey_robots``, ``user_agent``, ``allowed_domains``, ...)
    are the spider's defaults; CLI flags and library keyword arguments override
    them. ``custom_settings = {"DOWNLOAD_DELAY": 1, ...}`` takes our setting names and
    Scrapy's. Keyword arguments of the constructor (``-a NAME=VALUE``) become instance
    attributes.

    Callbacks run in parse worker processes, each with its own copy of the spider:
    state kept on ``self`` there is not shared (see the README's process model).
    ``open()`` and ``closed(reason)`` run in the main process, before the first request
    and after the last (sync or ``async def``).
    """

    name: ClassVar[str] = "spider"
    start_urls: Sequence[str] = ()
    sitemap_urls: Sequence[str] = ()
    sitemap_callback: str = "parse"
    pipelines: Sequence[Any] = ()
    handle_httpstatus_list: Sequence[int] = ()
    sitemap_max_size: int = 50 * 1024 * 1024  # the sitemaps.org limit for one sitemap
    custom_settings: Mapping[str, Any] | None = None
    sitemap_alternate_links: bool = False

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)

    @property
    def logger(self) -> logging.Logger:
        """A logger named after the spider (Scrapy's ``self.logger``)."""
        return logging.getLogger(type(self).name)

    def open(self) -> Any:
        """Called once in the main process before the crawl starts (may be ``async def``)."""

    def closed(self, reason: str) -> Any:
        """Called once in the main process after the crawl ends; ``reason`` is the
        statistics' ``finish_reason``: ``finished``, ``max_pages``, ``stopped`` or
        ``failed`` (may be ``async def``)."""

    def start_requests(self) -> Iterable[Request]:
        """``start_urls`` for ``parse``, and ``sitemap_urls`` for ``parse_sitemap``."""
        for url in self.start_urls:
            yield Request(url)
        for url in self.sitemap_urls:
            yield Request(url, callback="parse_sitemap")

    def parse_sitemap(self, response: Response) -> Iterator[Request]:
        """Follow a sitemap, a sitemap index (gzipped or not), a text sitemap or a
        robots.txt's ``Sitemap:`` lines; the entries ``sitemap_filter`` keeps are
        requested: listed pages for ``sitemap_callback`` (and their ``xhtml:link``
        alternates with ``sitemap_alternate_links``), listed sitemaps for this."""
        entries = sitemap_entries(response.body, response.url, self.sitemap_max_size)
        for entry in self.sitemap_filter(entries):
            if entry.kind == "sitemap":
                yield _listed(response, entry.loc, "parse_sitemap")
                continue
            yield _listed(response, entry.loc, self.sitemap_callback)
            for url in entry.alternates if self.sitemap_alternate_links else ():
                yield _listed(response, url, self.sitemap_callback)

    def sitemap_filter(self, entries: Iterable[SitemapEntry]) -> Iterable[SitemapEntry]:
        """The sitemap entries to request, as in Scrapy: override it to skip some
        before they are fetched, e.g. pages unchanged since a date::

            def sitemap_filter(self, entries):
                since = datetime(2024, 1, 1, tzinfo=UTC)
                for entry in entries:
                    if entry.kind == "sitemap" or (entry.lastmod_datetime or since) >= since:
                        yield entry

        It sees the entries of sitemap indexes (``kind="sitemap"``) and of sitemaps
        (``kind="page"``). The default keeps them all."""
        return entries

    def parse(self, response: Response) -> Any:
        """The default callback: called with each response of ``start_urls`` and of
        requests without a ``callback``. Yield (or return) items and `Request` s."""
        raise NotImplementedError(f"{type(self).__name__}.parse is not defined")

    async def fetch(self, target: str | Request, **fields: Any) -> Response:
        """Fetch another page from inside an ``async def`` callback and return its
        `Response` (of any HTTP status), for data a page needs from elsewhere::

            async def parse_product(self, response):
                api = await self.fetch(response.urljoin("/api/stock.json"))
                return {"url": response.url, "stock": api.json()["stock"]}

        ``target`` is an absolute URL or a `Request`; ``fields`` set `Request` fields
        (``headers``, ``method``, ``body``, ...). The request is checked like a
        crawled one (scope, robots.txt, address guard), follows redirects, is retried
        on transient errors and counts against its host's rate. It is not
        deduplicated and yields nothing by itself. A refusal or a failure raises a
        `FetchError` (``RequestRefused`` for robots.txt, scope or a bad URL). Works in
        ``async def`` callbacks only: they run in the crawl's own process.
        """
        fetch = self.__dict__.get(_FETCH_ATTRIBUTE)
        if fetch is None:
            raise RuntimeError(
                "Spider.fetch works only inside an async def callback of a running crawl "
                "(in tests: crawler.testing.run_callback(..., fetched={url: response}))"
            )
        response: Response = await fetch(target, **fields)
        return response


_FETCH_ATTRIBUTE = "_crawler_fetch"


async def start_requests_of(spider: Spider) -> AsyncIterator[Any]:
    """The spider's first requests: Scrapy 2.13's ``async def start()`` when it has
    one, else ``start_requests()``."""
    start = getattr(spider, "start", None)
    if start is not None and inspect.isasyncgenfunction(start):
        async for request in start():
            yield request
        return
    for request in spider.start_requests() or ():
        yield request


def missing_callback(spider: Spider, name: str) -> str | None:
    """What is wrong when ``spider`` has no callback ``name`` (with the name it
    probably meant), or ``None`` when it has."""
    method = getattr(spider, name, None)
    if name == "parse" and getattr(method, "__func__", None) is Spider.parse:
        return f"spider {type(spider).__name__} has no parse(): define it, or give its requests a callback"
    if callable(method):
        return None
    guess = difflib.get_close_matches(name, _own_methods(type(spider)), n=1, cutoff=0.8)
    hint = f" (did you mean {guess[0]}?)" if guess else ""
    return f"spider {type(spider).__name__} has no callback {name!r}{hint}"


def _own_methods(spider_cls: type) -> list[str]:
    """The methods the user's classes define (not crawler's `Spider`), read without
    running properties."""
    names: set[str] = set()
    for klass in spider_cls.__mro__:
        if klass is Spider:
            break
        names.update(attr for attr, value in vars(klass).items() if _is_method(attr, value))
    return sorted(names)


def _is_method(attr: str, value: object) -> bool:
    methodlike = inspect.isfunction(value) or isinstance(value, staticmethod | classmethod)
    return methodlike and not attr.startswith("_")


async def call_hook(spider: Spider, name: str, *args: Any) -> None:
    """Run the spider's ``open`` or ``closed`` hook; an error in it is logged, not fatal."""
    try:
        result = getattr(spider, name)(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("spider %s hook %s() failed", type(spider).__name__, name)


class AttributeWatch:
    """Notices a callback in a parse worker changing an attribute of its spider.

    Each worker has its own copy of the spider, so the change is invisible to the
    other workers and to the main process: a ``self.seen`` set silently splits in
    parts. One warning per attribute. Rebinding (``self.n += 1``) and changes of size
    (``self.seen.add(url)``) are noticed; an in-place change that keeps the size is not.
    Private attributes (``self._pattern``) are left alone: a per-process cache is fine.
    """

    def __init__(self, spider: Spider) -> None:
        self._spider = spider
        self._before = _attribute_signatures(spider)
        self._warned: set[str] = set()

    def check(self, callback: str) -> None:
        now = _attribute_signatures(self._spider)
        if now != self._before:
            for name, signature in now.items():
                if self._before.get(name) != signature and name not in self._warned:
                    self._warned.add(name)
                    log.warning(
                        "callback %s changed spider attribute %r in a parse worker (pid %d): each "
                        "worker has its own copy of the spider, so the main process and the other "
                        "workers never see it. Keep shared state in a pipeline, in an async def "
                        "callback, or run with --parse-workers 0",
                        callback,
                        name,
                        os.getpid(),
                    )
            self._before = now


def _attribute_signatures(spider: Spider) -> dict[str, tuple[int, int]]:
    return {name: (id(value), _size(value)) for name, value in vars(spider).items() if name[0] != "_"}


def _size(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return -1


def _listed(response: Response, loc: str, callback: str) -> Request:
    """A request for a URL a sitemap lists, with the sitemap as ``Referer`` as
    followed links have. Sitemap URLs are UTF-8 by the protocol, whatever the
    sitemap's own encoding, so they are not joined as a page's links are."""
    url = join_url(response.url, loc)
    headers = response._with_referer(url, None)
    return Request(url, callback=callback, depth=response.depth + 1, headers=headers)


def bind_fetch(spider: Spider, fetch: Callable[..., Awaitable[Response]]) -> None:
    """Give ``spider`` the function behind its ``fetch`` method."""
    setattr(spider, _FETCH_ATTRIBUTE, fetch)


@dataclass(frozen=True, slots=True)
class SpiderRef:
    """How a worker process finds the spider class: a file path or an importable
    module, plus the class's qualified name."""

    qualname: str
    module: str | None = None
    path: str | None = None

    @classmethod
    def of(cls, spider_cls: type[Spider]) -> SpiderRef:
        path = getattr(spider_cls, "__crawler_path__", None)
        if path is not None:
            return cls(spider_cls.__qualname__, path=path)
        return cls(spider_cls.__qualname__, module=spider_cls.__module__)

    @property
    def importable(self) -> bool:
        return "<locals>" not in self.qualname

    def load(self) -> type[Spider]:
        if self.path is not None:
            module = _import_file(Path(self.path))
        else:
            module = importlib.import_module(self.module or "__main__")
        found: Any = module
        for part in self.qualname.split("."):
            found = getattr(found, part)
        return found  # type: ignore[no-any-return]


def parse_spider_args(pairs: Iterable[str]) -> dict[str, str]:
    """``-a NAME=VALUE`` pairs as keyword arguments for the spider's constructor."""
    args = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"-a takes NAME=VALUE, not {pair!r}")
        args[name] = value
    return args


def load_spider(path: str | Path, name: str | None = None) -> type[Spider]:
    """Import a spider file and return its Spider class; one clear error otherwise.

    With several Spider classes in the file, ``name`` picks one by its ``name``
    attribute or class name.
    """
    path = Path(path)
    if not path.is_file():
        raise SpiderLoadError(f"spider file not found: {path}{_hint_for_missing(path)}")
    module = _import_file(path)
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Spider)
        and obj is not Spider
        and obj.__module__ == module.__name__
    ]
    return _pick_spider(path, found, name)


def _hint_for_missing(path: Path) -> str:
    """``crawl shop`` where ``shop.py`` (or ``spiders/shop.py``) exists: say so."""
    if path.suffix == ".py":
        return ""
    candidates = [path.with_name(path.name + ".py"), Path("spiders") / (path.name + ".py")]
    for candidate in candidates:
        if candidate.is_file():
            return f" (did you mean {candidate}?)"
    return " (crawl takes the path of a spider's .py file)"


def _pick_spider(path: Path, found: list[type[Spider]], name: str | None) -> type[Spider]:
    if name is not None:
        found = [cls for cls in found if name in (cls.name, cls.__name__)]
    if not found:
        wanted = f" named {name!r}" if name else ""
        raise SpiderLoadError(f"{path}: no Spider subclass{wanted} found")
    if len(found) > 1:
        names = ", ".join(cls.__name__ for cls in found)
        raise SpiderLoadError(f"{path}: several spiders ({names}); choose one with --spider NAME")
    return found[0]


def import_spider_file(path: str | Path) -> Any:
    """The module of a spider file, imported as ``crawl`` imports it (once per process)."""
    return _import_file(Path(path))


def _import_file(path: Path) -> Any:
    """Import a file as a module (once per process), translating every failure."""
    path = path.resolve()
    digest = hashlib.blake2b(str(path).encode(), digest_size=6).hexdigest()
    module_name = f"crawler_spider_{path.stem}_{digest}"  # the same in every process
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SpiderLoadError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    # Helper modules next to the spider import as they would for `python spider.py`.
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        del sys.modules[module_name]
        raise SpiderLoadError(_describe_import_error(path, exc)) from exc
    _tag_spiders(module, path)
    return module


def _tag_spiders(module: Any, path: Path) -> None:
    for obj in vars(module).values():
        if inspect.isclass(obj) and issubclass(obj, Spider) and obj.__module__ == module.__name__:
            obj.__crawler_path__ = str(path)  # type: ignore[attr-defined]


def _describe_import_error(path: Path, exc: Exception | SystemExit) -> str:
    if isinstance(exc, SyntaxError):
        return f"{path}:{exc.lineno}: syntax error: {exc.msg}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    where = f"{path}:{frames[-1].lineno}" if frames else str(path)
    return f"{where}: {type(exc).__name__}: {exc}"


# --- what a user hands a spider: -a NAME=VALUE strings, allowed_domains -------------

# Spider attributes that hold lists of strings. A string given for one (``-a
# start_urls=http://host/``) would be iterated letter by letter.
LIST_ATTRIBUTES = ("start_urls", "sitemap_urls", "allowed_domains")


def spider_kwargs(args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` with a string for a list attribute split into its entries: ``-a
    start_urls="http://a/ http://b/"`` is two URLs, and so is ``http://a/,http://b/``.
    URLs and domains never contain whitespace; a comma is legal in a URL, so URLs are
    split at a comma only where the next URL's scheme follows it, and domains (which
    never contain one) at every comma."""
    return {
        name: _entries(name, value) if name in LIST_ATTRIBUTES and isinstance(value, str) else value
        for name, value in args.items()
    }


_URL_SEPARATOR = re.compile(r"\s*,\s*(?=[A-Za-z][A-Za-z0-9+.\-]*://)|\s+")
_DOMAIN_SEPARATOR = re.compile(r"[\s,]+")


def _entries(name: str, value: str) -> list[str]:
    separator = _DOMAIN_SEPARATOR if name == "allowed_domains" else _URL_SEPARATOR
    return [entry for entry in separator.split(value) if entry]


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
