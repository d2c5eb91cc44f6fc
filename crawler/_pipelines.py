"""Item pipelines: objects with ``process_item(item, spider)`` (sync or async)
returning the item, a changed item, or ``None`` to drop it; optional ``open(spider)``
and ``close(spider)``. They run in the main process, in order."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

from ._spider import Spider
from ._stats import Stats

log = logging.getLogger("crawler.pipelines")


async def _call(obj: Any, name: str, *args: Any) -> Any:
    method = getattr(obj, name, None)
    if method is None:
        return None
    result = method(*args)
    return await result if inspect.isawaitable(result) else result


class Pipelines:
    def __init__(self, pipelines: Sequence[Any], spider: Spider, stats: Stats) -> None:
        self._pipelines = [p() if isinstance(p, type) else p for p in pipelines]
        self._spider = spider
        self._stats = stats

    def __bool__(self) -> bool:
        return bool(self._pipelines)

    async def open(self) -> None:
        for pipeline in self._pipelines:
            await _call(pipeline, "open", self._spider)

    async def close(self) -> None:
        for pipeline in self._pipelines:
            await _call(pipeline, "close", self._spider)

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
            try:
                item = await _call(pipeline, "process_item", item, self._spider)
            except Exception as exc:
                self._stats.inc("errors/pipeline")
                log.error(
                    "pipeline %s failed on an item of %s: %s: %s",
                    type(pipeline).__name__,
                    url,
                    type(exc).__name__,
                    exc,
                )
                return None
            if item is None:
                self._stats.inc("dropped/pipeline")
                return None
        return item
