"""Fair scheduling across many rate-limited hosts, checked from the servers' side.

    python bench/fairness.py [--hosts 20] [--pages 60] [--rate 5] [--concurrency 8]
                             [--per-host N] [--delay-ms 20 50] [--timeout 45]
                             [--robots] [--links tree|random]
                             [--frontier memory|sqlite|redis] [--nodes 3] [--redis URL]
                             [--spacing-margin 1.05]

Starts ``--hosts`` SiteServers on 127.0.0.1 in one separate process (one port each,
and the politeness key is ``host:port``, so each is a host of its own), crawls them
all at once with ``crawler.run`` in this process (``--nodes`` forked processes on one
Redis frontier with ``--frontier redis``; a job database with ``--frontier sqlite``),
then reads every server's hit log and checks the criteria of "Polite by default":

1. efficiency: over the whole crawl, from its first request to its last, and in the
   steady state, from the first request until the first host runs out of pages, the
   crawl sends at least 90% of ``hosts x rate`` requests/s; in the steady state also
   at least 90% of the most requests the limits allow in that window (the stricter
   figure: a host may start ``ceil(rate x span)`` requests in a span, one more than
   ``rate x span`` when it starts at both ends);
2. no host ever gets more than ``rate`` requests in a 1-second window ``[t, t + 1)``,
   checked with ``t`` at every request of that host;
3. the smallest gap between two requests of a host is at least ``1 / rate`` minus
   ``GAP_TOLERANCE_S``.

``--robots``: every host serves a robots.txt that disallows ``/cart`` and ``/login``,
every page links to one URL under each (as real sites do), and the crawl obeys
robots.txt; robots.txt requests count as requests of their host. ``--links random``:
a random link graph, so that pages are discovered while the crawl runs: page ``i``
links to ``i + 1``, to ``RANDOM_LINKS`` random pages of its host and to one random
page of another host.

All times are the servers' (``Hit.time``: when the request head had arrived), so
they include the network stack's jitter and the server process's own delays (its
event loop's lag is reported). The crawler's side is reported too: each node records
when it handed each request to its fetcher (inside the host's limiter), and the
report gives the worst 1-second window and the smallest gap of those starts. Exit
status 1 if a criterion fails, the crawl did not fetch every page exactly once, or
it ran out of time. Everything, per-host arrival times included, goes to ``bench/results/fairness.json``.
``--spacing-margin`` replaces the crawler's ``SPACING_MARGIN`` (how much wider than
the rate it spaces starts), to measure whether it is still needed.

``--serve HITS.json`` is the server process itself: it prints ``{"urls": [...]}``
once listening and writes the hit logs to HITS.json on SIGTERM or SIGINT, with how late
its event loop woke up (a probe sleeps ``LAG_PROBE_S`` at a time), which bounds the
jitter that the servers themselves add to the arrival times.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

if __package__ in (None, ""):  # run as a script: make the bench package importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import crawler
import crawler.fetch.politeness
from bench.measure import RESULTS, save_report
from crawler import Request, Response, Spider
from crawler.fetch.client import Fetched, Fetcher
from crawler.sites.server import Page, SiteServer

MIN_EFFICIENCY = 0.90
GAP_TOLERANCE_S = 0.010
RANDOM_LINKS = 3
ROBOTS_TXT = b"User-agent: *\nDisallow: /cart\nDisallow: /login\n"
WINDOW_S = 1.0
SEED = 2026
LAG_PROBE_S = 0.005


@dataclass(frozen=True, slots=True)
class Options:
    hosts: int
    pages: int
    rate: float
    concurrency: int
    per_host: int | None
    delay_ms: tuple[float, float]
    timeout: float
    robots: bool = False
    links: str = "tree"
    frontier: str = "memory"
    nodes: int = 1
    redis: str = "redis://127.0.0.1:6379/0"
    spacing_margin: float | None = None


class FairnessSpider(Spider):
    """Follows every link; ``start_urls`` come from ``spider_args``."""

    name = "fairness"

    def parse(self, response: Response) -> Iterator[Request]:
        yield from response.follow_all("a")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    options = Options(
        args.hosts, args.pages, args.rate, args.concurrency, args.per_host, tuple(args.delay_ms),
        args.timeout, args.robots, args.links, args.frontier, args.nodes, args.redis, args.spacing_margin,
    )  # fmt: skip
    if args.serve is not None:
        asyncio.run(_serve(options, args.serve))
        return 0
    RESULTS.mkdir(exist_ok=True)
    servers = _start_servers(options, RESULTS / "fairness-hits.json")
    try:
        crawl = _crawl(servers.urls, options)
    finally:
        served = servers.stop()
    report = _analyse(options, crawl, served)
    _print_report(report)
    save_report("fairness", report)
    return 0 if report["passed"] else 1


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20, help="Servers, one host each [%(default)s].")
    parser.add_argument("--pages", type=int, default=60, help="Pages per host [%(default)s].")
    parser.add_argument("--rate", type=float, default=5.0, help="The crawl's rate per host [%(default)s].")
    parser.add_argument("--concurrency", type=int, default=8, help="The crawl's concurrency [%(default)s].")
    parser.add_argument("--per-host", type=int, help="The crawl's per_host [the crawler's default].")
    parser.add_argument(
        "--delay-ms", type=float, nargs=2, default=(20.0, 50.0), metavar=("MIN", "MAX"),
        help="Each page answers after a fixed delay drawn from [MIN, MAX] ms [20 50].",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=45.0, help="Seconds to stop the crawl after [45].")
    parser.add_argument("--robots", action="store_true", help="robots.txt on; disallowed links everywhere.")
    parser.add_argument("--links", choices=("tree", "random"), default="tree", help="The link graph [tree].")
    parser.add_argument("--frontier", choices=("memory", "sqlite", "redis"), default="memory",
                        help="The crawl's frontier [memory].")  # fmt: skip
    parser.add_argument("--nodes", type=int, default=1, help="Crawl processes, with --frontier redis [1].")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis of --frontier redis.")
    parser.add_argument("--spacing-margin", type=float, help="Replace the crawler's SPACING_MARGIN.")
    parser.add_argument("--serve", type=Path, metavar="HITS", help="Be the server process (see above).")
    return parser.parse_args(argv)


# --- the sites --------------------------------------------------------------------------


def page_path(index: int) -> str:
    return "/" if index == 0 else f"/page/{index}.html"


def site_routes(host: int, options: Options, urls: Sequence[str]) -> dict[str, Page]:
    """Host ``host``'s pages (``urls``: every host's root). In the tree, page ``i`` links
    to ``2i+1``, ``2i+2``, ``i+1`` and ``/``, so all are reachable from ``/`` and a host
    has pages queued soon after its first; for the random graph see above."""
    rng = random.Random(SEED * 1000 + host)
    low, high = options.delay_ms
    routes = {
        page_path(index): Page(
            _html(index, _links(host, index, options, urls, rng)), delay=rng.uniform(low, high) / 1000
        )
        for index in range(options.pages)
    }
    if options.robots:
        routes["/robots.txt"] = Page(ROBOTS_TXT, headers=(("Content-Type", "text/plain"),))
    return routes


def _links(host: int, index: int, options: Options, urls: Sequence[str], rng: random.Random) -> list[str]:
    pages = options.pages
    if options.links == "tree":
        targets = [2 * index + 1, 2 * index + 2, index + 1, 0]
    else:
        targets = [index + 1, *(rng.randrange(pages) for _ in range(RANDOM_LINKS))]
    links = [page_path(target) for target in targets if target < pages]
    if options.links == "random" and len(urls) > 1:
        other = rng.choice([url for number, url in enumerate(urls) if number != host])
        links.append(other.rstrip("/") + page_path(rng.randrange(pages)))
    if options.robots:  # disallowed, and a new URL on every page
        links += [f"/cart/add/{index}", f"/login?next=/page/{index}.html"]
    return links


def _html(index: int, links: list[str]) -> bytes:
    anchors = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
    return f"<html><head><title>page {index}</title></head><body><ul>{anchors}</ul></body></html>".encode()


async def _serve(options: Options, hits_path: Path) -> None:
    """The server process: all hosts on one event loop until SIGTERM/SIGINT, then the hit logs."""
    servers = [SiteServer({}) for _ in range(options.hosts)]
    for server in servers:
        await server.start_async()
    urls = [server.url for server in servers]
    for host, server in enumerate(servers):
        server.routes = site_routes(host, options, urls)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    lags: list[tuple[float, float]] = []
    probe = asyncio.create_task(_probe_lag(lags))
    print(json.dumps({"urls": [server.url for server in servers]}), flush=True)
    await stop.wait()
    probe.cancel()
    for server in servers:
        await server.stop_async()
    logs = {server.url: [[hit.time, hit.target, hit.method] for hit in server.hits] for server in servers}
    served = {"hits": logs, "loop_lag_ms": _lag_summary([lag for _, lag in lags]), "lags": lags}
    hits_path.write_text(json.dumps(served) + "\n", encoding="utf-8")


async def _probe_lag(lags: list[tuple[float, float]]) -> None:
    """Record how late each ``LAG_PROBE_S`` sleep ends (the event loop's lag), and when."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + LAG_PROBE_S
        await asyncio.sleep(LAG_PROBE_S)
        lags.append((time.time(), loop.time() - due))


def _lag_summary(lags: list[float]) -> dict[str, float]:
    ordered = sorted(lags) or [0.0]
    shares = {"median": 0.5, "p99": 0.99, "p999": 0.999, "max": 1.0}
    return {
        name: round(1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)
        for name, share in shares.items()
    }


@dataclass(frozen=True, slots=True)
class Servers:
    process: subprocess.Popen[bytes]
    urls: list[str]
    hits_path: Path
    cpu_at_ready: float

    def stop(self) -> dict[str, Any]:
        """Stop the server process; return its hit logs, loop lag and CPU used since it was ready."""
        cpu = _cpu_s(self.process.pid) - self.cpu_at_ready
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return {**json.loads(self.hits_path.read_text(encoding="utf-8")), "cpu_s": round(cpu, 2)}


def _start_servers(options: Options, hits_path: Path) -> Servers:
    hits_path.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--serve", str(hits_path), "--hosts", str(options.hosts)]
    command += ["--pages", str(options.pages), "--delay-ms", *map(str, options.delay_ms)]
    command += ["--links", options.links] + (["--robots"] if options.robots else [])
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"the server process exited with {process.wait()} before it was ready")
    return Servers(process, json.loads(line)["urls"], hits_path, _cpu_s(process.pid))


def _cpu_s(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:  # already gone (a Ctrl-C reaches the server process too)
        return 0.0
    return float(times.user + times.system)


# --- the crawl --------------------------------------------------------------------------


def _crawl(urls: list[str], options: Options) -> dict[str, Any]:
    """Crawl every host from its ``/``; after ``timeout`` s a SIGINT stops the crawl cleanly."""
    settings: dict[str, Any] = {
        "concurrency": options.concurrency,
        "rate": options.rate,
        "obey_robots": options.robots,
        "allowed_domains": ["127.0.0.1"],
        "allow_private": True,  # the servers are on loopback
    }
    if options.nodes > 1:  # several nodes on this machine: each parses in its own process
        settings["parse_workers"] = 0
    if options.per_host is not None:
        settings["per_host"] = options.per_host
    if options.spacing_margin is not None:
        crawler.fetch.politeness.SPACING_MARGIN = options.spacing_margin
    with tempfile.TemporaryDirectory(prefix="fairness-") as scratch:
        if options.frontier == "sqlite":
            settings["job"] = str(Path(scratch) / "job")
        elif options.frontier == "redis":
            settings["frontier"] = f"{options.redis}?crawl=fairness-{uuid.uuid4().hex[:12]}"
        print(f"crawling {len(urls)} hosts x {options.pages} pages, {_describe(settings)} ...", flush=True)
        started = time.time()
        try:
            stats, starts = _run_nodes(urls, options, settings, Path(scratch))
        finally:
            if options.frontier == "redis":
                _delete_keys(options.redis, settings["frontier"].rpartition("crawl=")[2])
    return {"settings": settings, "started": started, "ended": time.time(), "stats": stats, "starts": starts}


def _run_nodes(
    urls: list[str], options: Options, settings: dict[str, Any], scratch: Path
) -> tuple[dict[str, Any] | None, list[list[Any]]]:
    """Run ``nodes`` crawls at once (forked processes; one runs in this process), stopped
    with SIGINT after ``timeout`` s; their statistics summed (``None`` if any was
    stopped), and every node's starts ``[time, url]``."""
    children = []
    for node in range(1, options.nodes):
        pid = os.fork()
        if pid == 0:  # a node: crawl, write its results, and leave without cleanup
            (scratch / f"node-{node}.json").write_text(json.dumps(_run_one(urls, options, settings)))
            os._exit(0)
        children.append(pid)
    results = [_run_one(urls, options, settings)]
    for node, pid in enumerate(children, start=1):
        os.waitpid(pid, 0)
        results.append(json.loads((scratch / f"node-{node}.json").read_text()))
    starts = [start for result in results for start in result["starts"]]
    if any(result["stats"] is None for result in results):
        return None, starts
    totals = [result["stats"] for result in results]
    errors = _sum_counts(stats["errors"] for stats in totals)
    return {"pages": sum(stats["pages"] for stats in totals), "errors": errors}, starts


def _run_one(urls: list[str], options: Options, settings: dict[str, Any]) -> dict[str, Any]:
    """One node's crawl: its statistics (``None`` if stopped) and its starts."""
    starts: list[list[Any]] = []
    fetch = Fetcher.fetch

    async def recorded(self: Fetcher, request: Request) -> Fetched:
        starts.append([time.time(), request.url])
        return await fetch(self, request)

    Fetcher.fetch = recorded  # type: ignore[method-assign]
    previous = signal.signal(signal.SIGALRM, lambda *_: signal.raise_signal(signal.SIGINT))
    signal.setitimer(signal.ITIMER_REAL, options.timeout)
    try:
        stats = crawler.run(FairnessSpider, spider_args={"start_urls": urls}, **settings).to_dict()
    except KeyboardInterrupt:
        stats = None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        Fetcher.fetch = fetch  # type: ignore[method-assign]
    return {"stats": stats, "starts": starts}


def _sum_counts(counts: Iterator[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for count in counts:
        total.update(count)
    return dict(total)


def _delete_keys(url: str, crawl_id: str) -> None:
    import redis  # only --frontier redis needs it

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"*{crawl_id}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _describe(settings: dict[str, Any]) -> str:
    shown = ("concurrency", "rate", "per_host", "obey_robots", "job", "frontier")
    return ", ".join(f"{name}={settings.get(name, 'default')}" for name in shown)


# --- analysis ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostResult:
    url: str
    requests: int
    robots: int  # of which robots.txt
    distinct: int  # pages
    unknown: int
    first: float
    last: float
    min_gap: float | None
    worst_window: int
    over_limit: tuple[int, ...]  # indexes of the requests whose window holds more than the limit
    tightest: float | None  # the shortest time in which limit + 1 consecutive requests arrived

    @property
    def own_rate(self) -> float:
        """Requests per second over this host's own span (``n - 1`` gaps)."""
        span = self.last - self.first
        return (self.requests - 1) / span if span > 0 else 0.0


def window_counts(times: Sequence[float], width: float = WINDOW_S) -> list[int]:
    """For each of ``times`` (sorted), how many of them fall in ``[t, t + width)``."""
    counts, end = [], 0
    for start, moment in enumerate(times):
        while end < len(times) and times[end] < moment + width:
            end += 1
        counts.append(end - start)
    return counts


def min_gap(times: Sequence[float]) -> float | None:
    return min((later - earlier for earlier, later in itertools.pairwise(times)), default=None)


def tightest(times: Sequence[float], count: int) -> float | None:
    """The shortest time from one request to the one ``count - 1`` later."""
    spans = (later - earlier for earlier, later in zip(times, times[count - 1 :], strict=False))
    return min(spans, default=None)


def host_result(url: str, log: list[list[Any]], paths: set[str], limit: int) -> HostResult:
    times = sorted(entry[0] for entry in log)
    targets = [entry[1] for entry in log]
    counts = window_counts(times)
    return HostResult(
        url,
        len(log),
        targets.count("/robots.txt"),
        len(set(targets) - {"/robots.txt"}),
        sum(target not in paths for target in targets),
        times[0] if times else math.nan,
        times[-1] if times else math.nan,
        min_gap(times),
        max(counts, default=0),
        tuple(index for index, count in enumerate(counts) if count > limit),
        tightest(times, limit + 1),
    )


def _analyse(options: Options, crawl: dict[str, Any], served: dict[str, Any]) -> dict[str, Any]:
    hits: dict[str, list[list[Any]]] = served["hits"]
    paths = {page_path(index) for index in range(options.pages)}
    if options.robots:
        paths.add("/robots.txt")
    window_limit = math.ceil(options.rate)  # starts 1/rate apart: t, t + 0.2, ... t + 0.8 for rate 5
    hosts = [host_result(url, log, paths, window_limit) for url, log in hits.items()]
    times = sorted(entry[0] for log in hits.values() for entry in log)
    ceiling = options.hosts * options.rate
    whole = _whole_run(times, crawl, ceiling)
    steady = _steady_state(hosts, times, options)
    worst = max((host.worst_window for host in hosts), default=0)
    spans = [host.tightest for host in hosts if host.tightest is not None]
    gaps = [host.min_gap for host in hosts if host.min_gap is not None]
    problems = _problems(options, crawl, hosts)
    criteria = {
        "whole": whole["efficiency"] >= MIN_EFFICIENCY,
        "efficiency": min(steady["efficiency"], steady["of_max_starts"]) >= MIN_EFFICIENCY,
        "window": worst <= window_limit,
        "gap": min(gaps, default=math.inf) >= 1 / options.rate - GAP_TOLERANCE_S,
    }
    return {
        "options": asdict(options),
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg(), "python": sys.version.split()[0]},
        "ceiling_per_s": ceiling,
        "whole_run": whole,
        "steady_state": steady,
        "worst_window": worst,
        "window_limit": window_limit,
        "min_gap_s": min(gaps, default=None),
        "crawler_side": _crawler_side(crawl["starts"]),
        "tightest_s": min(spans, default=None),
        "over_limit": _over_limit_windows(hosts, hits, window_limit, served["lags"]),
        "per_second": _per_second(times),
        "server_cpu_s": served["cpu_s"],
        "server_loop_lag_ms": served["loop_lag_ms"],
        "crawl": crawl,
        "hosts": [{**asdict(host), "own_rate": host.own_rate} for host in hosts],
        "criteria": criteria,
        "problems": problems,
        "passed": all(criteria.values()) and not problems,
        "arrivals": {url: [entry[0] for entry in log] for url, log in hits.items()},
    }


def _crawler_side(starts: list[list[Any]]) -> dict[str, Any]:
    """The worst 1-second window and the smallest gap of the starts the nodes recorded."""
    by_host: dict[str, list[float]] = {}
    for moment, url in starts:
        parts = urlsplit(url)
        by_host.setdefault(f"{parts.scheme}://{parts.netloc}", []).append(moment)
    ordered = [sorted(times) for times in by_host.values()]
    gaps = [gap for times in ordered if (gap := min_gap(times)) is not None]
    return {
        "worst_window": max((max(window_counts(times)) for times in ordered if times), default=0),
        "min_gap_s": min(gaps, default=None),
    }


def _over_limit_windows(
    hosts: list[HostResult], hits: dict[str, list[list[Any]]], limit: int, lags: list[list[float]]
) -> list[dict[str, Any]]:
    """Each window over the limit: where it starts, how much shorter than 1 s its
    ``limit + 1`` requests were, and how late the server's event loop was around its
    first arrival (a late loop stamps that arrival late, which shortens the window)."""
    windows = []
    for host in hosts:
        times = sorted(entry[0] for entry in hits[host.url])
        for index in host.over_limit:
            short = WINDOW_S - (times[index + limit] - times[index])
            near = (lag for moment, lag in lags if abs(moment - times[index]) <= LAG_PROBE_S)
            lag = max(near, default=0.0)
            windows.append({"host": host.url, "request": index + 1, "short_by_s": short, "server_lag_s": lag})
    return windows


def _whole_run(times: list[float], crawl: dict[str, Any], ceiling: float) -> dict[str, Any]:
    """From the first request to the last, and from ``crawler.run`` called to returned."""
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    wall = crawl["ended"] - crawl["started"]
    return {
        "requests": len(times),
        "span_s": span,
        "efficiency": len(times) / span / ceiling if span else 0.0,
        "wall_s": wall,
        "wall_efficiency": len(times) / wall / ceiling if wall else 0.0,
        "start_delay_s": times[0] - crawl["started"] if times else math.nan,
    }


def _steady_state(hosts: list[HostResult], times: list[float], options: Options) -> dict[str, Any]:
    """``[first request, the first host's last request)``: the time every host still had
    pages left. ``max_starts`` is the most the limits allow there (every host starting
    at the window's start), so ``requests / max_starts`` is a stricter figure."""
    start, end = (times[0], min(host.last for host in hosts)) if times else (0.0, 0.0)
    span = end - start
    requests = sum(start <= moment < end for moment in times)
    max_starts = options.hosts * math.ceil(options.rate * span - 1e-9)
    return {
        "start": start,
        "end": end,
        "span_s": span,
        "requests": requests,
        "per_s": requests / span if span > 0 else 0.0,
        "efficiency": requests / span / (options.hosts * options.rate) if span > 0 else 0.0,
        "max_starts": max_starts,
        "of_max_starts": requests / max_starts if max_starts else 0.0,
    }


def _per_second(times: list[float]) -> list[int]:
    """Requests in each whole second since the first request."""
    if not times:
        return []
    counts = Counter(int(moment - times[0]) for moment in times)
    return [counts[second] for second in range(max(counts) + 1)]


def _problems(options: Options, crawl: dict[str, Any], hosts: list[HostResult]) -> list[str]:
    stats = crawl["stats"]
    expected = options.hosts * options.pages
    if stats is None:
        return [f"the crawl was stopped (timeout {options.timeout:g} s or Ctrl-C)"]
    checks = [
        (stats["pages"] != expected, f"crawled {stats['pages']} pages, expected {expected}"),
        (any(stats["errors"].values()), f"crawl errors: {stats['errors']}"),
        (len(hosts) != options.hosts, f"{len(hosts)} hit logs, expected {options.hosts}"),
    ]
    problems = [message for failed, message in checks if failed]
    for host in hosts:
        pages = host.requests - host.robots
        if pages != options.pages or host.distinct != options.pages or host.unknown:
            counts = f"{pages} page requests, {host.distinct} distinct, {host.unknown} unknown paths"
            problems.append(f"{host.url}: {counts}")
    return problems


# --- report -----------------------------------------------------------------------------


def _print_report(report: dict[str, Any]) -> None:
    header = f"{'host':<24}{'reqs':>6}{'first s':>9}{'last s':>9}{'req/s':>8}{'min gap ms':>12}"
    over = f"{report['window_limit'] + 1} in ms"
    header += f"{'worst 1s':>10}{over:>10}"
    print(f"\n{header}\n{'-' * len(header)}")
    origin = report["steady_state"]["start"] or 0.0
    for host in report["hosts"]:
        print(_host_row(host, origin))
    _print_summary(report)


def _host_row(host: dict[str, Any], origin: float) -> str:
    gap = f"{1000 * host['min_gap']:.1f}" if host["min_gap"] is not None else "-"
    row = f"{host['url'].removeprefix('http://'):<24}{host['requests']:>6}"
    row += f"{host['first'] - origin:>9.2f}{host['last'] - origin:>9.2f}{host['own_rate']:>8.2f}"
    return row + f"{gap:>12}{host['worst_window']:>10}{_ms(host['tightest']):>10}"


def _ms(seconds: float | None) -> str:
    return f"{1000 * seconds:.1f}" if seconds is not None else "-"


def _print_summary(report: dict[str, Any]) -> None:
    whole, steady, ceiling = report["whole_run"], report["steady_state"], report["ceiling_per_s"]
    options = report["options"]
    print(
        f"\nceiling: {options['hosts']} hosts x {options['rate']:g} req/s = {ceiling:g} req/s"
        f"\nwhole run: {whole['requests']} requests in {whole['span_s']:.2f} s from first to last request"
        f" = {100 * whole['efficiency']:.1f}% of the ceiling; {whole['wall_s']:.2f} s from crawler.run()"
        f" to its return = {100 * whole['wall_efficiency']:.1f}%"
        f" (first request after {whole['start_delay_s']:.2f} s)"
        f"\nsteady state (first request until the first host ran out, {steady['span_s']:.2f} s):"
        f" {steady['requests']} requests = {steady['per_s']:.1f} req/s = {100 * steady['efficiency']:.1f}%"
        f" of the ceiling ({100 * steady['of_max_starts']:.1f}% of the {steady['max_starts']} starts"
        " the limits allow in that window)"
        f"\nrequests per second since the first: {' '.join(map(str, report['per_second']))}"
        f"\nserver process: {report['server_cpu_s']:.2f} s CPU over {whole['wall_s']:.1f} s; its event loop"
        f" woke late by {_lag_text(report['server_loop_lag_ms'])}"
    )
    for problem in report["problems"]:
        print(f"!!! {problem}", file=sys.stderr)
    _print_over_limit(report)
    limit = report["window_limit"]
    print(
        f"\n{_verdict(report, 'whole')}  whole-run efficiency {100 * whole['efficiency']:.1f}% of the"
        f" ceiling >= {100 * MIN_EFFICIENCY:.0f}%"
        f"\n{_verdict(report, 'efficiency')}  steady-state efficiency {100 * steady['efficiency']:.1f}%"
        f" of the ceiling and {100 * steady['of_max_starts']:.1f}% of the starts allowed, both"
        f" >= {100 * MIN_EFFICIENCY:.0f}%"
        f"\n{_verdict(report, 'window')}  worst 1-s window of any host {report['worst_window']} <= {limit}"
        f" (smallest gap between two requests of a host {_ms(report['min_gap_s'])} ms, interval"
        f" {1000 / options['rate']:.0f} ms; {limit + 1} requests of one host within"
        f" {_ms(report['tightest_s'])} ms)"
        f"\ncrawler's side (when each node handed each request to its fetcher): worst 1-s window"
        f" {report['crawler_side']['worst_window']}, smallest gap"
        f" {_ms(report['crawler_side']['min_gap_s'])} ms"
        f"\n{_verdict(report, 'gap')}  smallest gap {_ms(report['min_gap_s'])} ms >= the interval"
        f" {1000 / options['rate']:.0f} ms minus {1000 * GAP_TOLERANCE_S:.0f} ms"
    )
    if report["problems"]:
        print("FAIL  the crawl itself (see the !!! lines above)")


def _print_over_limit(report: dict[str, Any]) -> None:
    """Where the windows over the limit start, by how much, and how many the server's lag explains."""
    windows = report["over_limit"]
    if not windows:
        return
    hosts = len({window["host"] for window in windows})
    starts = Counter(window["request"] for window in windows)
    where = ", ".join(f"#{request} ({count})" for request, count in sorted(starts.items()))
    short = [window["short_by_s"] for window in windows]
    explained = sum(window["server_lag_s"] >= window["short_by_s"] for window in windows)
    print(
        f"windows over the limit: {len(windows)} on {hosts} hosts, starting at a host's request {where};"
        f" {report['window_limit'] + 1} requests within 1 s minus {_ms(min(short))}-{_ms(max(short))} ms;"
        f" in {explained} of them the server's loop was at least that late at the first arrival"
    )


def _lag_text(lag: dict[str, float]) -> str:
    return ", ".join(f"{value:.1f} ms ({name})" for name, value in lag.items())


def _verdict(report: dict[str, Any], criterion: str) -> str:
    return "PASS" if report["criteria"][criterion] else "FAIL"


if __name__ == "__main__":
    sys.exit(main())
