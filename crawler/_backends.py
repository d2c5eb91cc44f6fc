"""Where the frontier lives: in memory, in a job directory (SQLite), or in Redis.

A job directory keeps a crawl across runs: ``--job DIR`` (SQLite, one machine) holds
the queue, the seen-set, the leases and the job's metadata (the spider it belongs
to, how many runs it had, the statistics so far). ``--frontier redis://...`` shares
one crawl between processes and machines.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._counters import ITEMS
from ._errors import OutputError, UsageError
from ._frontier import Frontier, HostPolicy
from ._memory_frontier import MemoryFrontier
from ._output import ItemSink, NullSink
from ._settings import Settings
from ._stats import Stats

log = logging.getLogger("crawler.job")

JOB_DATABASE = "frontier.sqlite"
DEFAULT_LEASE = 30.0


def job_exists(directory: str | Path) -> bool:
    return (Path(directory) / JOB_DATABASE).exists()


def refuse_overwriting_a_job(job: str | Path | None, overwrite: bool) -> None:
    """``-O`` with an existing job would throw away the items of its earlier runs."""
    if job is not None and overwrite and job_exists(job):
        raise UsageError(f"job {job} has run before: -O would discard its items; use -o to append")


def open_frontier(settings: Settings, spider_name: str, policy: HostPolicy) -> Frontier:
    """The frontier the settings ask for (not connected yet: ``Job.open`` or the
    first call does that)."""
    if settings.frontier is not None:
        from ._redis_frontier import RedisFrontier  # noqa: PLC0415  (redis loads only when used)

        url, crawl_id, lease = _frontier_url(settings.frontier)
        namespace = f"crawler:{spider_name}" + (f":{crawl_id}" if crawl_id else "")
        return RedisFrontier(url, namespace, policy, lease_seconds=lease)
    if settings.job is not None:
        from ._sqlite_frontier import SqliteFrontier  # noqa: PLC0415

        return SqliteFrontier(_job_directory(settings.job) / JOB_DATABASE, policy)
    return MemoryFrontier(policy)


def _frontier_url(url: str) -> tuple[str, str | None, float]:
    """``redis://host:port/db?crawl=ID&lease=SECONDS``: the Redis URL, the crawl id
    (several crawls of one spider side by side) and the lease time (default 30 s)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    crawl_id = query.pop("crawl", None)
    try:
        lease = float(query.pop("lease", DEFAULT_LEASE))
    except ValueError:
        raise UsageError(f"lease in {url!r} must be a number of seconds") from None
    if not lease > 0:
        raise UsageError(f"lease in {url!r} must be positive")
    return urlunsplit(parts._replace(query=urlencode(query))), crawl_id, lease


class ClusterStats:
    """Adds this node's counters to the crawl's totals in Redis, as deltas."""

    def __init__(self, frontier: Any) -> None:
        self._frontier = frontier
        self._added: Counter[str] = Counter()

    async def push(self, stats: Stats) -> None:
        delta = {
            key: value - self._added[key] for key, value in stats.counts.items() if value != self._added[key]
        }
        await self._frontier.add_stats(delta)
        self._added.update(delta)


def _job_directory(job: str) -> Path:
    directory = Path(job)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create job directory {job}: {exc.strerror or exc}") from None
    return directory


class Job:
    """The bookkeeping of one run of a job: which spider, which run, what so far."""

    def __init__(self, frontier: Any, directory: str, spider_name: str) -> None:
        self._frontier = frontier
        self._directory = directory
        self._spider_name = spider_name
        self._sink: ItemSink = NullSink()

    async def open(self, stats: Stats, sink: ItemSink) -> None:
        """Check the job belongs to this spider, count the run, carry the statistics
        over, and cut a partial last line a crash left in the output."""
        self._sink = sink
        recovered = await self._frontier.open()
        stored = await self._frontier.get_meta("spider")
        if stored is not None and stored != self._spider_name:
            raise UsageError(f"job {self._directory} belongs to spider {stored!r}, not {self._spider_name!r}")
        runs = int(await self._frontier.get_meta("runs") or 0)
        await self._frontier.set_meta("spider", self._spider_name)
        await self._frontier.set_meta("runs", str(runs + 1))
        if runs:
            earlier = json.loads(await self._frontier.get_meta("stats") or "{}")
            stats.carry_over(earlier)
            cut = sink.repair()
            stats.inc(ITEMS, self._items_since(earlier))
            message = (
                "resuming job %s (run %d): %d requests in flight put back, %d bytes of a partial line cut"
            )
            log.info(message, self._directory, runs + 1, recovered, cut)

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
