"""`Job`: the bookkeeping a durable frontier keeps for the runs of one crawl.

A `DurableFrontier` (``--job DIR``, or one the caller built) holds the queue and
the seen-set across runs; its metadata holds the rest of the job: the spider it
belongs to (another spider is refused), how many runs it had, and the statistics
so far with where the output ended when they were taken, so that a resumed crawl
carries its counts over and cuts a partial last line a crash left in the output.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .._counters import ITEMS
from .._errors import UsageError
from .._stats import Stats
from ..output import ItemSink, NullSink
from .base import DurableFrontier

log = logging.getLogger("crawler.job")


class Job:
    """The bookkeeping of one run of a job: which spider, which run, what so far."""

    def __init__(self, frontier: DurableFrontier, spider_name: str, *, overwrite: bool = False) -> None:
        self._frontier = frontier
        self._spider_name = spider_name
        self._overwrite = overwrite  # the output replaces its file: the earlier runs' items would go
        self._sink: ItemSink = NullSink()

    async def open(self, stats: Stats, sink: ItemSink, recovered: int) -> None:
        """Check the job belongs to this spider, count the run, carry the statistics
        over, and cut a partial last line a crash left in the output. ``recovered``:
        the requests in flight that the frontier's ``open`` put back."""
        self._sink = sink
        runs = await self._claim()
        if runs:
            earlier = json.loads(await self._frontier.get_meta("stats") or "{}")
            stats.carry_over(earlier)
            cut = sink.repair()
            stats.inc(ITEMS, self._items_since(earlier))
            message = (
                "resuming job %s (run %d): %d requests in flight put back, %d bytes of a partial line cut"
            )
            log.info(message, self._frontier.location, runs + 1, recovered, cut)

    async def _claim(self) -> int:
        """Refuse a job of another spider, or an output that would discard the items
        of earlier runs; count this run; how many runs came before."""
        where = self._frontier.location
        stored = await self._frontier.get_meta("spider")
        if stored is not None and stored != self._spider_name:
            raise UsageError(f"job {where} belongs to spider {stored!r}, not {self._spider_name!r}")
        runs = int(await self._frontier.get_meta("runs") or 0)
        if runs and self._overwrite:
            raise UsageError(f"job {where} has run before: overwrite would discard its items; append instead")
        await self._frontier.set_meta("spider", self._spider_name)
        await self._frontier.set_meta("runs", str(runs + 1))
        return runs

    def _items_since(self, earlier: dict[str, Any]) -> int:
        """Items written after the last save (a kill -9 came before the next one):
        counted in the output itself, from where it ended at that save."""
        output = earlier.get("output")
        if output is None or output.get("target") != getattr(self._sink, "target", None):
            return 0
        return self._sink.items_after(int(output["end"]))

    async def save(self, stats: Stats) -> None:
        """The statistics so far, with where the output ended when they were taken
        (both change together, when items are written)."""
        counters = stats.counters()
        target = getattr(self._sink, "target", None)
        if target is not None:
            counters["output"] = {"target": target, "end": self._sink.size}
        await self._frontier.set_meta("stats", json.dumps(counters))
