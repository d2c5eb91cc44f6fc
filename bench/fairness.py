"""Fair scheduling across many rate-limited hosts, checked from the servers' side.

    python bench/fairness.py [--hosts 20] [--pages 60] [--rate 5] [--concurrency 8]
                             [--per-host N] [--delay-ms 20 50] [--timeout 45]

Starts ``--hosts`` SiteServers on 127.0.0.1 in one separate process (one port each,
and the politeness key is ``host:port``, so each is a host of its own), crawls them
all at once with ``crawler.run`` in this process (robots.txt off), then reads every
server's hit log and checks the two criteria of "Polite by default":

1. efficiency: in the steady state, from the first request until the first host
   runs out of pages, the crawl sends at least 90% of ``hosts x rate`` requests/s,
   and at least 90% of the most requests the limits allow in that window (the stricter
   figure: a host may start ``ceil(rate x span)`` requests in a span, one more than
   ``rate x span`` when it starts at both ends);
2. no host ever gets more than ``rate`` requests in a 1-second window ``[t, t + 1)``,
   checked with ``t`` at every request of that host.

All times are the servers' (``Hit.time``: when the request head had arrived), so
they include the network stack's jitter; the smallest gap between two consecutive
requests of a host is printed next to the window check. Exit status 1 if a criterion
fails, the crawl did not fetch every page exactly once, or it ran out of time.
Everything, per-host arrival times included, goes to ``bench/results/fairness.json``.

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
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

if __package__ in (None, ""):  # run as a script: make the bench package importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import crawler
from bench.measure import RESULTS, save_report
from crawler import Request, Response, Spider
from crawler._siteserver import Page, SiteServer

MIN_EFFICIENCY = 0.90
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


class FairnessSpider(Spider):
    """Follows every link; ``start_urls`` come from ``spider_args``."""

    name = "fairness"

    def parse(self, response: Response) -> Iterator[Request]:
        yield from response.follow_all("a")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    options = Options(
        args.hosts, args.pages, args.rate, args.concurrency, args.per_host, tuple(args.delay_ms), args.timeout
    )
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
    parser.add_argument("--serve", type=Path, metavar="HITS", help="Be the server process (see above).")
    return parser.parse_args(argv)


# --- the sites --------------------------------------------------------------------------


def page_path(index: int) -> str:
    return "/" if index == 0 else f"/page/{index}.html"


def site_routes(host: int, options: Options) -> dict[str, Page]:
    """Host ``host``'s pages. Page ``i`` links to ``2i+1``, ``2i+2``, ``i+1`` and ``/``, so
    all are reachable from ``/`` and a host has pages queued soon after its first."""
    rng = random.Random(SEED * 1000 + host)
    low, high = options.delay_ms
    return {
        page_path(index): Page(_html(index, options.pages), delay=rng.uniform(low, high) / 1000)
        for index in range(options.pages)
    }


def _html(index: int, pages: int) -> bytes:
    targets = [target for target in (2 * index + 1, 2 * index + 2, index + 1, 0) if target < pages]
    links = "".join(f'<li><a href="{page_path(target)}">page {target}</a></li>' for target in targets)
    return f"<html><head><title>page {index}</title></head><body><ul>{links}</ul></body></html>".encode()


async def _serve(options: Options, hits_path: Path) -> None:
    """The server process: all hosts on one event loop until SIGTERM/SIGINT, then the hit logs."""
    servers = [SiteServer(site_routes(host, options)) for host in range(options.hosts)]
    for server in servers:
        await server.start_async()
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
        "obey_robots": False,
        "allowed_domains": ["127.0.0.1"],
        "allow_private": True,  # the servers are on loopback
    }
    if options.per_host is not None:
        settings["per_host"] = options.per_host
    previous = signal.signal(signal.SIGALRM, lambda *_: signal.raise_signal(signal.SIGINT))
    signal.setitimer(signal.ITIMER_REAL, options.timeout)
    print(f"crawling {len(urls)} hosts x {options.pages} pages, {_describe(settings)} ...", flush=True)
    started = time.time()
    try:
        stats: dict[str, Any] | None = crawler.run(
            FairnessSpider, spider_args={"start_urls": urls}, **settings
        ).to_dict()
    except KeyboardInterrupt:
        stats = None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return {"settings": settings, "started": started, "ended": time.time(), "stats": stats}


def _describe(settings: dict[str, Any]) -> str:
    shown = ("concurrency", "rate", "per_host")
    return ", ".join(f"{name}={settings.get(name, 'default')}" for name in shown)


# --- analysis ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostResult:
    url: str
    requests: int
    distinct: int
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
        len(set(targets)),
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
        "efficiency": min(steady["efficiency"], steady["of_max_starts"]) >= MIN_EFFICIENCY,
        "window": worst <= window_limit,
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
        if host.requests != options.pages or host.distinct != options.pages or host.unknown:
            counts = f"{host.requests} requests, {host.distinct} distinct, {host.unknown} unknown paths"
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
        f"\n{_verdict(report, 'efficiency')}  steady-state efficiency {100 * steady['efficiency']:.1f}%"
        f" of the ceiling and {100 * steady['of_max_starts']:.1f}% of the starts allowed, both"
        f" >= {100 * MIN_EFFICIENCY:.0f}%"
        f"\n{_verdict(report, 'window')}  worst 1-s window of any host {report['worst_window']} <= {limit}"
        f" (smallest gap between two requests of a host {_ms(report['min_gap_s'])} ms, interval"
        f" {1000 / options['rate']:.0f} ms; {limit + 1} requests of one host within"
        f" {_ms(report['tightest_s'])} ms)"
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
