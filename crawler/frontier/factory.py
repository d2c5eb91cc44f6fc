"""Which frontier the settings ask for: in memory, in a job directory (SQLite), or in Redis.

A job directory keeps a crawl across runs: ``--job DIR`` (SQLite, one machine) holds
the queue, the seen-set, the leases and the job's metadata (see `Job`).
``--frontier redis://...`` shares one crawl between processes and machines. What
each backend can do is declared by the protocols it implements (``frontier/base.py``),
not by this choice: a backend the caller built gets the same treatment.

A new backend is one module implementing `Frontier` (and `DurableFrontier` or
`SharedFrontier` if it is one) plus one branch in ``open_frontier``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._errors import OutputError, UsageError
from .._settings import Settings
from .base import Frontier, HostPolicy
from .memory import MemoryFrontier

JOB_DATABASE = "frontier.sqlite"
DEFAULT_LEASE = 30.0


def job_exists(directory: str | Path) -> bool:
    return (Path(directory) / JOB_DATABASE).exists()


def refuse_overwriting_a_job(job: str | Path | None, overwrite: bool) -> None:
    """``-O`` with an existing job would throw away the items of its earlier runs."""
    if job is not None and overwrite and job_exists(job):
        raise UsageError(f"job {job} has run before: -O would discard its items; use -o to append")


def open_frontier(settings: Settings, spider_name: str, policy: HostPolicy) -> Frontier:
    """The frontier the settings ask for (not connected yet: ``open`` does that)."""
    if settings.frontier is not None:
        from .redis import RedisFrontier  # noqa: PLC0415  (redis loads only when used)

        url, crawl_id, lease = _frontier_url(settings.frontier)
        namespace = f"crawler:{spider_name}" + (f":{crawl_id}" if crawl_id else "")
        return RedisFrontier(url, namespace, policy, lease_seconds=lease)
    if settings.job is not None:
        from .sqlite import SqliteFrontier  # noqa: PLC0415

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


def _job_directory(job: str) -> Path:
    directory = Path(job)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create job directory {job}: {exc.strerror or exc}") from None
    return directory
