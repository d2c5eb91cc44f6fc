"""Crawl statistics: flat counters with namespaced keys (``status/200``,
``errors/timeout``; every name is in `crawler._counters`), snapshotted as nested
JSON at the end."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ._counters import DROPPED_ROBOTS_UNREACHABLE, ERRORS, ITEMS, PAGES, RESPONSES

# Nested even when empty; every other namespace (cache, render, politeness, parse) appears once it counts.
NAMESPACES = ("status", "errors", "dropped")


@dataclass
class Stats:
    """Counters of one crawl. Attribute access for the common ones; ``to_dict`` for
    everything (written by ``--stats PATH``)."""

    counts: Counter[str] = field(default_factory=Counter)
    max_depth: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    finish_reason: str = "running"
    hosts: int = 0  # distinct hosts with a page fetched in this run
    _started_monotonic: float = field(default_factory=time.monotonic, repr=False)
    _elapsed: float | None = field(default=None, repr=False)
    _earlier: Counter[str] = field(default_factory=Counter, repr=False)  # earlier runs' counts

    def inc(self, key: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``key`` (``"pages"``, ``"errors/timeout"``, ...)."""
        if amount:  # a zero would still create the key and show up in reports
            self.counts[key] += amount

    def carry_over(self, earlier: dict[str, Any]) -> None:
        """Add the counters of earlier runs of the same job (``counters()`` of theirs)."""
        for key, value in earlier.get("counts", {}).items():
            self.counts[key] += int(value)
        self._earlier = Counter(self.counts)
        self.max_depth = max(self.max_depth, int(earlier.get("max_depth", 0)))

    def counters(self) -> dict[str, Any]:
        """What ``carry_over`` takes: the counters, as JSON-ready values."""
        return {"counts": dict(self.counts), "max_depth": self.max_depth}

    def finish(self, reason: str) -> None:
        """Stop the clock: the crawl ended because of ``reason`` (``finished``, ``max_pages``, ...)."""
        self.finished = time.time()
        self._elapsed = time.monotonic() - self._started_monotonic
        self.finish_reason = reason

    @property
    def elapsed(self) -> float:
        """Seconds this run took (so far, while it runs)."""
        if self._elapsed is not None:
            return self._elapsed
        return time.monotonic() - self._started_monotonic

    @property
    def pages(self) -> int:
        """Pages fetched (responses other than redirects), earlier runs of a job included."""
        return self.counts[PAGES]

    @property
    def items(self) -> int:
        """Items written."""
        return self.counts[ITEMS]

    @property
    def errors(self) -> int:
        """Failures of every kind: the sum of the ``errors/...`` counters."""
        return sum(n for key, n in self.counts.items() if key.startswith(ERRORS))

    @property
    def nothing_answered(self) -> bool:
        """This run tried requests and not one got a response: every start URL
        unreachable (or refused by the address guard, or its robots.txt unreachable)."""
        return self.failed_this_run > 0 and not self._this_run()[RESPONSES]

    @property
    def failed_this_run(self) -> int:
        """Requests of this run that failed, or were dropped because robots.txt was unreachable."""
        this_run = self._this_run()
        errors = sum(n for key, n in this_run.items() if key.startswith(ERRORS))
        return errors + this_run[DROPPED_ROBOTS_UNREACHABLE]

    def _this_run(self) -> Counter[str]:
        return self.counts - self._earlier

    @property
    def pages_this_run(self) -> int:
        """Pages of this run alone (``pages`` includes a job's earlier runs)."""
        return self.pages - self._earlier[PAGES]

    @property
    def resumed(self) -> bool:
        """Whether earlier runs of a job counted here too."""
        return self._earlier[PAGES] > 0

    @property
    def pages_per_second(self) -> float:
        """This run's rate (pages of earlier runs of a job are not this run's)."""
        return self.pages_this_run / self.elapsed if self.elapsed > 0 else 0.0

    def __getitem__(self, key: str) -> int:
        return self.counts[key]

    def to_dict(self) -> dict[str, Any]:
        """Every counter as JSON-ready values, each namespace nested (``errors/timeout``
        as ``{"errors": {"timeout": ...}}``): what ``--stats PATH`` writes."""
        result: dict[str, Any] = {name: {} for name in NAMESPACES}
        for key, value in sorted(self.counts.items()):
            namespace, _, name = key.partition("/")
            if name:
                result.setdefault(namespace, {})[name] = value
            else:
                result[key] = value
        if result.get("render", {}).get("pages"):  # time per render, from the total
            result["render"]["ms_per_page"] = round(result["render"].get("ms", 0) / result["render"]["pages"])
        result.update(
            max_depth=self.max_depth,
            hosts=self.hosts,
            elapsed_seconds=round(self.elapsed, 3),
            pages_per_second=round(self.pages_per_second, 1),
            started=self.started,
            finished=self.finished,
            finish_reason=self.finish_reason,
        )
        return result
