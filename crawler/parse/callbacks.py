"""Running spider callbacks: everything CPU-bound about a fetched page.

This module runs inside parse worker processes (and in the main process for
``parse_workers=0`` and for ``async def`` callbacks). It builds the ``Response``,
runs the callback, canonicalises and filters the requests it yields (scheme,
length, scope, depth) and encodes its items with the encoder the crawl hands it
(JSON Lines, from the output side), so that the main process receives compact
results and only has to write and enqueue them.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import multiprocessing
import os
import pickle
import traceback
from collections import Counter
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._counters import (
    DROPPED,
    DROPPED_DEPTH_LIMITED,
    DROPPED_DUPLICATE,
    DROPPED_OFFSITE,
    ERRORS_CALLBACK,
    ERRORS_ITEM,
    ERRORS_NOT_HTML,
    ERRORS_PARSE_TIMEOUT,
    ERRORS_WORKER_CRASH,
    short,
)
from .._errors import MissingCallback, NotHtmlError
from .._pickling import fast_pickle
from .._request import Request, relocated
from .._response import Response
from .._spider import AttributeWatch, Spider, SpiderRef, missing_callback
from .._urls import cache_key, fingerprint_canonical, in_scope, vet_url

log = logging.getLogger("crawler.callbacks")

SENT_MEMORY = 65_536

# Items to bytes for the sink: (encoded items, a description of each item left out).
ItemEncoder = Callable[[Iterable[Any]], tuple[bytes, list[str]]]


@dataclass(frozen=True, slots=True)
class ParseTask:
    """A fetched page to hand to a callback.

    Under pickle protocol 5 the body travels as an out-of-band buffer: a sender that
    collects buffers (the parse executor) writes it to the pipe from its own memory,
    where copying it into the pickle would cost the main process a copy per page."""

    request: Request
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        body = pickle.PickleBuffer(self.body) if protocol >= 5 else self.body
        return _rebuild_task, (self.request, self.url, self.status, self.headers, body)


def _rebuild_task(
    request: Request, url: str, status: int, headers: Mapping[str, str], body: bytes | memoryview
) -> ParseTask:
    """The receiving end: an out-of-band body arrives as a view into the message."""
    return ParseTask(request, url, status, headers, body if isinstance(body, bytes) else bytes(body))


@dataclass(frozen=True, slots=True)
class LinkRules:
    """What a worker needs to know to vet the requests and items a callback yields.
    ``encode``: how to encode items for the sink, in the worker (a module-level
    function, so that it pickles by reference); ``None`` keeps them as objects."""

    allowed_domains: tuple[str, ...]
    max_depth: int | None
    max_url_length: int
    encode: ItemEncoder | None = None
    strip_session_ids: bool = False


@fast_pickle
@dataclass(slots=True)
class ParseResult:
    """What a callback produced. ``lines`` holds the items encoded when the rules
    have an encoder; ``items`` holds them as objects otherwise."""

    requests: list[Request] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)
    lines: bytes = b""
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def dropped(self) -> dict[str, int]:
        """How many requests were dropped, by reason (``offsite``, ``duplicate``, ...)."""
        return {short(key): count for key, count in sorted(self.counts.items()) if key.startswith(DROPPED)}


def make_response(task: ParseTask) -> Response:
    return Response(task.url, task.status, task.headers, task.body, task.request)


def callback_of(spider: Spider, request: Request) -> Any:
    name = request.callback or "parse"
    if (missing := missing_callback(spider, name)) is not None:
        raise MissingCallback(missing)
    return getattr(spider, name)


def call_callback(spider: Spider, response: Response) -> Any:
    """The callback of the response's request, called with the response and ``cb_kwargs``."""
    return callback_of(spider, response.request)(response, **response.request.cb_kwargs)


def is_async_callback(spider: Spider, request: Request) -> bool:
    return is_async_method(spider, request.callback)


def is_async_method(spider: Spider, callback: str | None) -> bool:
    """Whether ``spider``'s ``callback`` (``parse`` when ``None``) is ``async``."""
    method = getattr(spider, callback or "parse", None)
    return inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method)


class CallbackRunner:
    """Runs callbacks of one spider instance under one set of ``LinkRules``.

    It remembers the fingerprints of the requests it has already sent on (up to
    ``SENT_MEMORY``): those are in the frontier's seen-set, so a repeat would only
    be pickled, sent and dropped there. On a typical site most links are repeats."""

    def __init__(self, spider: Spider, rules: LinkRules) -> None:
        self.spider = spider
        self.rules = rules
        self._sent: set[int] = set()
        self._vetted: dict[str, tuple[str | None, str, int]] = {}
        # In a parse worker the spider is a copy of its own: changes stay in this process.
        self._watch = AttributeWatch(spider) if multiprocessing.parent_process() is not None else None
        self._told_duplicates = False
        self._told: set[str] = set()  # missing callbacks reported by this process

    def mark_seen(self, request: Request) -> None:
        """Treat ``request`` (and the URLs it was redirected from) as queued already,
        as a crawl's frontier would: a link back to it is a duplicate."""
        self._already_sent(request.fingerprint)
        for url in request.redirects:
            self._already_sent(fingerprint_canonical("GET", url))

    def run(self, task: ParseTask) -> ParseResult:
        result = ParseResult()
        response = make_response(task)
        try:
            outputs = call_callback(self.spider, response)
            self._collect(task.request, _as_iterable(outputs), result)
        except Exception as exc:
            self._callback_failed(exc, result, response)
        if self._watch is not None:
            self._watch.check(task.request.callback or "parse")
        return self._finish(result)

    async def run_async(self, task: ParseTask) -> ParseResult:
        """Run an ``async def`` callback (or async generator) on the current loop."""
        result = ParseResult()
        response = make_response(task)
        try:
            outputs = call_callback(self.spider, response)
            if inspect.isawaitable(outputs):
                outputs = await outputs
            if isinstance(outputs, AsyncIterable):
                outputs = [output async for output in outputs]
            self._collect(task.request, _as_iterable(outputs), result)
        except Exception as exc:
            self._callback_failed(exc, result, response)
        return self._finish(result)

    def _callback_failed(self, exc: Exception, result: ParseResult, response: Response) -> None:
        """Count the error; describe it, with its traceback, except a callback the spider
        lacks, which is one line and said once by this process: every page would repeat it."""
        result.counts[ERRORS_NOT_HTML if isinstance(exc, NotHtmlError) else ERRORS_CALLBACK] += 1
        if isinstance(exc, MissingCallback):
            if str(exc) not in self._told:
                self._told.add(str(exc))
                result.errors.append(str(exc))
            return
        hint = response._hint_for(exc)
        result.errors.append(_describe(exc) + (f"\nhint: {hint}" if hint else ""))

    def _collect(self, parent: Request, outputs: Iterable[Any], result: ParseResult) -> None:
        for output in outputs:
            if isinstance(output, Request):
                self._add_request(parent, output, result)
            elif isinstance(output, dict) or _is_dataclass_instance(output):
                result.items.append(output)
            elif output is not None:
                result.counts[ERRORS_ITEM] += 1
                kind = type(output).__name__
                result.errors.append(f"callback yielded a {kind}; yield dicts, dataclasses or Requests")

    def _add_request(self, parent: Request, request: Request, result: ParseResult) -> None:
        verdict, url, get_fingerprint = self._vet(request.url)
        depth = parent.depth + 1
        if verdict is None and self.rules.max_depth is not None and depth > self.rules.max_depth:
            verdict = DROPPED_DEPTH_LIMITED
        if verdict is not None:
            result.counts[verdict] += 1
            log.debug("Dropped <%s %s> (%s) found on %s", request.method, url, short(verdict), parent.url)
            return
        plain_get = request.method == "GET" and not request.body
        fingerprint = get_fingerprint if plain_get else None
        if not request.dont_filter and self._already_sent(
            fingerprint or relocated(request, url, depth).fingerprint
        ):
            result.counts[DROPPED_DUPLICATE] += 1
            self._log_duplicate(request, url)
            return
        result.requests.append(relocated(request, url, depth, fingerprint))

    def _log_duplicate(self, request: Request, url: str) -> None:
        """Most links of a site are repeats: only the first is logged (as Scrapy does)."""
        if not self._told_duplicates and log.isEnabledFor(logging.DEBUG):
            self._told_duplicates = True
            log.debug("Dropped <%s %s> (duplicate); no more duplicates will be shown", request.method, url)

    def _vet(self, url: str) -> tuple[str | None, str, int]:
        """(reason to refuse or None, canonical URL, fingerprint of a GET of it), from
        a bounded cache: most links on a site are repeats, many of them with another
        ``#fragment``, which canonical URLs drop."""
        url = cache_key(url)
        vetted = self._vetted.get(url)
        if vetted is None:
            verdict, canonical = vet_url(url, self.rules)
            canonical = url if canonical == url else canonical  # one string object, not two
            if verdict is None and not in_scope(canonical, self.rules.allowed_domains):
                verdict = DROPPED_OFFSITE
            vetted = (verdict, canonical, fingerprint_canonical("GET", canonical) if verdict is None else 0)
            if len(self._vetted) >= SENT_MEMORY:
                self._vetted.clear()
            self._vetted[url] = vetted
        return vetted

    def _already_sent(self, fingerprint: int) -> bool:
        if fingerprint in self._sent:
            return True
        if len(self._sent) >= SENT_MEMORY:
            self._sent.clear()
        self._sent.add(fingerprint)
        return False

    def _finish(self, result: ParseResult) -> ParseResult:
        if self.rules.encode is not None and result.items:
            result.lines, failures = self.rules.encode(result.items)
            result.errors.extend(failures)
            if failures:
                result.counts[ERRORS_ITEM] += len(failures)
            result.items = []
        return result


# The callback runner of each crawl in this process, by crawl id, with the pid that
# built it: a forked child inherits its parent's entries, and must build its own.
_RUNNERS: dict[str, tuple[int, CallbackRunner]] = {}


@dataclass(frozen=True, slots=True)
class SpiderParser:
    """``parse_page`` for a parse executor: ``await loop.run_in_executor(executor,
    parser, task)`` runs the task's callback with this crawl's spider.

    It pickles as the spider's identity (a reference to its class, its arguments, the
    link rules), so any ``concurrent.futures`` executor can run it: each process builds
    the spider once, in ``load`` (a worker initializer) or on its first page."""

    crawl_id: str
    source: SpiderRef | type[Spider]
    args: Mapping[str, Any]
    rules: LinkRules

    @classmethod
    def of(cls, spider_cls: type[Spider], args: Mapping[str, Any], rules: LinkRules) -> SpiderParser:
        """Forked workers may get the class itself; other processes import it by
        reference (so a class defined inside a function needs ``fork``)."""
        ref = SpiderRef.of(spider_cls)
        source = ref if ref.importable else spider_cls
        return cls(os.urandom(8).hex(), source, dict(args), rules)

    def __call__(self, task: ParseTask) -> ParseResult:
        return self.runner().run(task)

    def runner(self) -> CallbackRunner:
        entry = _RUNNERS.get(self.crawl_id)
        if entry is None or entry[0] != os.getpid():
            return self.load()
        return entry[1]

    def load(self) -> CallbackRunner:
        """Build this process's spider (from the crawl's class and arguments)."""
        spider_cls = self.source.load() if isinstance(self.source, SpiderRef) else self.source
        return self.install(spider_cls(**self.args))

    def install(self, spider: Spider) -> CallbackRunner:
        """Use ``spider`` for this crawl's pages parsed in this process."""
        runner = CallbackRunner(spider, self.rules)
        _RUNNERS[self.crawl_id] = (os.getpid(), runner)
        return runner

    def forget(self) -> None:
        _RUNNERS.pop(self.crawl_id, None)


def parse_failure(exc: BaseException) -> ParseResult:
    """The result of a page whose parse executor gave up on it: its worker died, or
    it ran past the parse deadline."""
    result = ParseResult()
    result.errors.append(str(exc) or type(exc).__name__)
    result.counts[ERRORS_PARSE_TIMEOUT if isinstance(exc, TimeoutError) else ERRORS_WORKER_CRASH] += 1
    return result


def _as_iterable(outputs: Any) -> Iterable[Any]:
    if outputs is None:
        return ()
    if isinstance(outputs, (dict, Request)) or _is_dataclass_instance(outputs):
        return (outputs,)
    return outputs  # type: ignore[no-any-return]


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _describe(exc: Exception) -> str:
    return "".join(traceback.format_exception(exc)).rstrip()
