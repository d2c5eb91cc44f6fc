"""Item pipelines: objects with ``process_item(item, spider)`` (sync or async)
returning the item, a changed item, or ``None`` to drop it; optional ``open(spider)``
and ``close(spider)`` (Scrapy's ``open_spider`` and ``close_spider`` too). They run
in the main process, in order: the spider's ``pipelines``, or else the classes its
``custom_settings["ITEM_PIPELINES"]`` names, by their order numbers (as in Scrapy)."""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from .._counters import DROPPED_PIPELINE, ERRORS_PIPELINE
from .._errors import CrawlerError, SpiderLoadError
from .._spider import Spider, import_spider_file
from .._stats import Stats

log = logging.getLogger("crawler.pipelines")


async def _call(obj: Any, name: str, *args: Any) -> Any:
    method = getattr(obj, name, None)
    if method is None:
        return None
    function = getattr(method, "__func__", method)
    takes_spider = _TAKES_SPIDER.get(function)
    if takes_spider is None:
        takes_spider = _TAKES_SPIDER[function] = _takes_spider(method)
    if not takes_spider:  # Scrapy 2.13+ pipelines may leave out the spider argument
        args = args[:-1]
    result = method(*args)
    return await result if inspect.isawaitable(result) else result


_TAKES_SPIDER: dict[Any, bool] = {}


def _takes_spider(method: Any) -> bool:
    """Whether ``method`` accepts the ``spider`` argument that comes last."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: pass everything
        return True
    kinds = [p.kind for p in parameters]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    wanted = 2 if getattr(method, "__name__", "") == "process_item" else 1
    return inspect.Parameter.VAR_POSITIONAL in kinds or sum(k in positional for k in kinds) >= wanted


class PipelineError(CrawlerError):
    """A pipeline's ``open`` or ``close`` raised: the crawl cannot go on (exit 1)."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def scrapy_pipelines(spider: Spider) -> list[Any]:
    """The classes ``custom_settings["ITEM_PIPELINES"]`` names (``{"module.Class": 300}``),
    lowest number first. A module named like the spider's file is that file."""
    custom = getattr(spider, "custom_settings", None) or {}
    named: Mapping[str, int] = custom.get("ITEM_PIPELINES") or {}
    ordered = sorted(named.items(), key=lambda pair: pair[1])
    return [_import_pipeline(type(spider), path) for path, _ in ordered]


def _import_pipeline(spider_cls: type, path: str) -> Any:
    module_name, _, class_name = path.rpartition(".")
    spider_file = getattr(spider_cls, "__crawler_path__", None)
    try:
        if spider_file is not None and module_name == spider_file.rsplit("/", 1)[-1].removesuffix(".py"):
            module = import_spider_file(spider_file)
        else:
            module = importlib.import_module(module_name)
        return getattr(module, class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SpiderLoadError(f"ITEM_PIPELINES: cannot load {path!r}: {exc}") from None


class Pipelines:
    def __init__(self, pipelines: Sequence[Any], spider: Spider, stats: Stats) -> None:
        pipelines = pipelines or scrapy_pipelines(spider)
        self._pipelines = [p() if isinstance(p, type) else p for p in pipelines]
        self._spider = spider
        self._stats = stats

    def __bool__(self) -> bool:
        return bool(self._pipelines)

    async def open(self) -> None:
        """Open each pipeline in order; one that fails stops the crawl (`PipelineError`)."""
        for pipeline in self._pipelines:
            await self._call_hook(pipeline, ("open", "open_spider"))

    async def close(self) -> None:
        """Close every pipeline, even after one failed; then raise the first failure."""
        failures = []
        for pipeline in self._pipelines:
            try:
                await self._call_hook(pipeline, ("close", "close_spider"))
            except PipelineError as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    async def _call_hook(self, pipeline: Any, names: tuple[str, str]) -> None:
        """Our hook name, or else Scrapy's (``open_spider``, ``close_spider``)."""
        name = names[0] if hasattr(pipeline, names[0]) else names[1]
        try:
            await _call(pipeline, name, self._spider)
        except Exception as exc:
            log.debug("pipeline %s.%s() failed", type(pipeline).__name__, name, exc_info=True)
            what = f"{type(pipeline).__name__}.{name}()"
            raise PipelineError(f"pipeline {what} failed: {_describe(exc)}") from exc

    async def process(self, items: list[Any], url: str) -> list[Any]:
        """Items that went through every pipeline; dropped and failed ones are counted."""
        kept = []
        for item in items:
            result = await self._process_one(item, url)
            if result is not None:
                kept.append(result)
        return kept

    async def _process_one(self, item: Any, url: str) -> Any:
        for pipeline in self._pipelines:
            if not hasattr(pipeline, "process_item"):  # only open/close: items pass through
                continue
            try:
                item = await _call(pipeline, "process_item", item, self._spider)
            except Exception as exc:
                self._stats.inc(ERRORS_PIPELINE)
                name = type(pipeline).__name__
                log.error("pipeline %s failed on an item of %s: %s", name, url, _describe(exc))
                return None
            if item is None:
                self._stats.inc(DROPPED_PIPELINE)
                return None
        return item
