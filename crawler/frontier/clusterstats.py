"""`ClusterStats`: this node's share of a shared crawl's statistics."""

from __future__ import annotations

from collections import Counter

from .._stats import Stats
from .base import SharedFrontier


class ClusterStats:
    """Adds this node's counters to the crawl's totals in a `SharedFrontier`, as
    deltas (every node adds its own; none overwrites another's)."""

    def __init__(self, frontier: SharedFrontier) -> None:
        self._frontier = frontier
        self._added: Counter[str] = Counter()

    async def push(self, stats: Stats) -> None:
        delta = {
            key: value - self._added[key] for key, value in stats.counts.items() if value != self._added[key]
        }
        await self._frontier.add_stats(delta)
        self._added.update(delta)
