"""``crawl bench [--pages N] [options] [--json]``: how fast this machine crawls.

Like ``scrapy bench``: serves the built-in benchmark site (`crawler.sites.bench`) in a
child process on a free port, crawls all of it with `BenchSpider` and the default
settings (robots.txt obeyed, autothrottle on), and prints pages per second, CPU per
page and peak memory, so that machines and settings can be compared.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer

from .._api import build_engine
from .._errors import CrawlerError
from .._request import Request
from .._response import Response
from .._settings import Settings
from .._spider import Spider
from .._stats import Stats
from ..output import NullSink
from ..sites import child_server
from .main import run_on_our_loop, run_with_signals
from .options import run_command, setting_options

DEFAULT_PAGES = 2000
MB = 1024 * 1024
SITE_MODULE = ("crawler.sites.bench", "--port", "0", "--stop-with-parent")
RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, KiB on Linux


class BenchSpider(Spider):
    """Follows every link and yields a small item per product page."""

    name = "bench"

    def parse(self, response: Response) -> Iterator[dict[str, str] | Request]:
        if response.css_first(".product") is not None:
            yield {
                "url": response.url,
                "name": _text(response, ".product h1"),
                "sku": _text(response, ".sku"),
            }
        yield from response.follow_all("a")


def _text(response: Response, selector: str) -> str:
    node = response.css_first(selector)
    return node.text(strip=True) if node is not None else ""


@dataclass(frozen=True, slots=True)
class BenchSite:
    """A running benchmark site: its URL, and how many pages a complete crawl fetches
    (all of them but the ones robots.txt disallows)."""

    url: str
    pages: int


@dataclass(frozen=True, slots=True)
class BenchResult:
    pages: int
    expected_pages: int
    seconds: float
    pages_per_second: float
    cpu_seconds: float
    cpu_ms_per_page: float
    peak_rss_mb: float
    parse_worker_peak_rss_mb: float
    concurrency: int
    per_host: int
    parse_workers: int
    autothrottle: bool


def _site_size(pages: int) -> int:
    if pages < 1:
        raise typer.BadParameter(f"must be a whole number of at least 1, not {pages}")
    return pages


@setting_options("concurrency", "per_host", "parse_workers", "autothrottle")
def bench_command(
    pages: Annotated[
        int, typer.Option("--pages", metavar="N", callback=_site_size, help="Pages of the site.")
    ] = DEFAULT_PAGES,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    *,
    settings: dict[str, Any],
) -> int:
    """Crawl a built-in local site and print pages/s and CPU per page. The flags not
    given keep the defaults."""
    return bench(pages, settings, as_json=json_output)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(bench_command, sys.argv[1:] if argv is None else argv, "crawl bench")


def bench(pages: int, settings: dict[str, Any], *, as_json: bool) -> int:
    """Serve the site, crawl it with ``settings``, print the result; the exit code.
    An incomplete crawl raises `CrawlerError`: its numbers would mislead."""
    with bench_site(pages) as site:
        result = crawl_site(site, settings)
    if result.pages != result.expected_pages:
        raise CrawlerError(_incomplete(result))
    print(json.dumps(asdict(result)) if as_json else report(result))
    return 0


def _incomplete(result: BenchResult) -> str:
    return (
        f"the crawl fetched {result.pages:,} pages, not the site's {result.expected_pages:,}"
        " (all but the ones robots.txt disallows): its numbers would mislead"
    )


@contextmanager
def bench_site(pages: int) -> Iterator[BenchSite]:
    """The site in a child process on a free port, so that its CPU is not the crawl's.

    In a session of its own, so that Ctrl-C stops the crawl cleanly while the site
    still answers; it stops when we end it, or soon after we die."""
    with child_server([*SITE_MODULE, "--pages", str(pages)], own_session=True) as announced:
        yield _announced_site(announced)


def _announced_site(line: str) -> BenchSite:
    """The site from the JSON line its server prints once listening."""
    try:
        ready = json.loads(line)
        return BenchSite(ready["url"], ready["reachable"])
    except (ValueError, KeyError):
        raise CrawlerError("the benchmark site did not start") from None


def crawl_site(site: BenchSite, settings: dict[str, Any]) -> BenchResult:
    """Crawl ``site`` to the end with ``BenchSpider``; measure the crawl's process and its parse workers."""
    start = {"start_urls": [site.url + "/"]}
    engine = build_engine(BenchSpider, NullSink(), spider_args=start, allow_private=True, **settings)
    cpu_before, started = _cpu_seconds(), time.perf_counter()
    stats, interrupted = run_on_our_loop(run_with_signals(engine))
    if interrupted:
        raise KeyboardInterrupt  # the crawl stopped cleanly; main exits with 130
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    return _result(site, stats, seconds, cpu, engine.settings)


def _cpu_seconds() -> float:
    """CPU time of this process and of its reaped children.

    A child's time counts in RUSAGE_CHILDREN only once it has been waited for. The
    parse workers (forked from this process, which runs no other thread, so they are
    its children) are reaped when ``engine.run()`` returns, while the site server, also
    a child, runs until ``bench_site`` ends, after the last reading: so the readings
    include the workers and never the server."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_rss_mb(who: int) -> float:
    """The largest resident set of this process (RUSAGE_SELF) or of one reaped child."""
    return round(resource.getrusage(who).ru_maxrss * RSS_UNIT / MB, 1)


def _result(site: BenchSite, stats: Stats, seconds: float, cpu: float, settings: Settings) -> BenchResult:
    pages = stats.pages
    return BenchResult(
        pages=pages,
        expected_pages=site.pages,
        seconds=round(seconds, 3),
        pages_per_second=round(pages / seconds, 1),
        cpu_seconds=round(cpu, 3),
        cpu_ms_per_page=round(1000 * cpu / pages, 3) if pages else 0.0,
        peak_rss_mb=_peak_rss_mb(resource.RUSAGE_SELF),
        parse_worker_peak_rss_mb=_peak_rss_mb(resource.RUSAGE_CHILDREN) if settings.parse_workers else 0.0,
        concurrency=settings.concurrency,
        per_host=settings.per_host,
        parse_workers=settings.parse_workers,
        autothrottle=settings.autothrottle,
    )


def report(result: BenchResult) -> str:
    """The result for people: a few short lines."""
    workers = result.parse_workers
    parsing = f"crawler and its {workers} parse worker{'s' if workers > 1 else ''}" if workers else "crawler"
    memory = f"peak RSS {result.peak_rss_mb:.0f} MB"
    if workers:
        memory += f", {result.parse_worker_peak_rss_mb:.0f} MB in the largest parse worker"
    autothrottle = "on" if result.autothrottle else "off"
    return "\n".join(
        [
            f"crawl bench: {result.pages:,} pages in {result.seconds:.1f} s",
            f"  {result.pages_per_second:,.0f} pages/s",
            f"  {result.cpu_ms_per_page:.2f} ms CPU per page ({parsing})",
            f"  {memory}",
            f"  concurrency {result.concurrency}, per host {result.per_host}, autothrottle {autothrottle}",
        ]
    )
