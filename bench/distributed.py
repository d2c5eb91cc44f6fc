"""One node against three on a shared Redis frontier, on a latency-bound crawl.

    python bench/distributed.py [--hosts 100] [--pages 80] [--delay-ms 50] [--nodes 3]
                                [--concurrency 16] [--per-host 2] [--rate 10]
                                [--redis redis://127.0.0.1:6379/0] [--timeout 35]

Starts ``--hosts`` SiteServers on 127.0.0.1 in one separate process (the server of
``bench/fairness.py``: one port per host, ``--pages`` small pages each, page ``i``
linking to ``2i+1``, ``2i+2``, ``i+1`` and ``/``, every answer held ``--delay-ms``),
then crawls them twice, each time with a fresh server process and a fresh crawl id:

1. one ``crawl bench/distributed_spider.py --frontier redis://...?crawl=<id>`` process;
2. ``--nodes`` such processes started together on another crawl id.

Every node runs with ``--concurrency 16`` (16 requests in flight over 50 ms answers:
at most 320 pages/s, so one node is bound by latency, not by the sites' limits) and
``--per-host 2 --rate 10``, the politeness the cluster as a whole must keep. The
politeness ceiling, ``hosts x rate``, is 1,000 requests/s with 100 hosts: just above
the 960/s three nodes can ask for, so with three nodes the busiest hosts do run into
their limits (the checks below test something) without the limits capping the run.
With 40 hosts the ceiling would be 400/s and no number of nodes could be 2.5x faster
than one; with 200 the limits are never reached (a host's worst second holds ~5).

From the servers' hit logs (``Hit.time``, when a request's head had arrived):

- **pages/s**: requests over the span from a run's first request to its last (the
  nodes' start-up, about a second of imports, is not counted); the goal is
  ``--nodes`` nodes at least ``MIN_SPEEDUP`` times one node;
- **complete**: the union of the nodes' ``-o part-N.jsonl`` files holds every page
  exactly once, the servers saw each page requested once and nothing else, and every
  node exited 0 by itself (the frontier empty and no lease outstanding);
- **politeness**: for every host, the most requests in any 1-second window
  ``[t, t + 1)`` (at most ``ceil(rate)``), the smallest gap between two consecutive
  requests (the crawler spaces starts ``1.05 / rate`` apart; at least
  ``MIN_GAP_SHARE`` of ``1 / rate`` at the server, which allows for jitter but not for two
  nodes starting requests to one host together), and the most requests a host was
  answering at once (arrivals within one answer delay of each other; at most
  ``per_host``; with a 100 ms interval and 50 ms answers it should be 1).

Three nodes, Redis and the servers need about 1.5 of the machine's 2 cores, so other
work on the machine slows the three-node run more than the one-node run: the CPU
that other processes used during each run is reported (``others CPU``), with a
warning when it exceeds ``BUSY_CORES``. Each run stops its nodes after ``--timeout``
seconds (about 40 s in all when nothing goes wrong, at most about 85 s).

Prints two tables and PASS or FAIL per criterion; the exit status is 1 on any FAIL.
The crawls' Redis keys are deleted at the end of each run. Everything goes to
``bench/results/distributed.json``; parts, node stderr and stats to
``bench/results/distributed-*``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import bench.fairness from the checkout
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import psutil
import redis

from bench.distributed_spider import URLS_ENV, DistributedSpider
from bench.fairness import Options, _start_servers, min_gap, page_path, window_counts
from bench.measure import RESULTS, save_report

SPIDER = Path(__file__).resolve().parent / "distributed_spider.py"
MIN_SPEEDUP = 2.5
MIN_GAP_SHARE = 0.5
AT_LIMIT = 1.2  # a gap under 1.2 intervals: the host was held back by its rate
WINDOW_S = 1.0
STOP_GRACE_S = 6.0  # a node stopped with SIGINT gives its requests 5 s
BUSY_CORES = 0.2  # other processes' load during a run above which the report warns


@dataclass(frozen=True, slots=True)
class Settings:
    hosts: int
    pages: int
    delay_ms: float
    nodes: int
    concurrency: int
    per_host: int
    rate: float
    redis: str
    timeout: float


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings(**vars(_parse_args(argv)))
    RESULTS.mkdir(exist_ok=True)
    runs = [_run(settings, 1, "one"), _run(settings, settings.nodes, "many")]
    report = _report(settings, runs)
    _print_report(report)
    save_report("distributed", report)
    return 0 if report["passed"] else 1


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--hosts", type=int, default=100, help="Servers, one host each [%(default)s].")
    add("--pages", type=int, default=80, help="Pages per host [%(default)s].")
    add("--delay-ms", type=float, default=50.0, help="Every answer is held this long [%(default)s].")
    add("--nodes", type=int, default=3, help="Nodes of the second run [%(default)s].")
    add("--concurrency", type=int, default=16, help="Each node's --concurrency [%(default)s].")
    add("--per-host", type=int, default=2, help="The nodes' --per-host [%(default)s].")
    add("--rate", type=float, default=10.0, help="The nodes' --rate [%(default)s].")
    add("--redis", default="redis://127.0.0.1:6379/0", help="The Redis of the frontier [%(default)s].")
    add("--timeout", type=float, default=35.0, help="Seconds to stop a run's nodes after [%(default)s].")
    return parser.parse_args(argv)


# --- one run ----------------------------------------------------------------------------


def _run(settings: Settings, nodes: int, label: str) -> dict[str, Any]:
    """A fresh server process and crawl id; ``nodes`` nodes started together."""
    delay = (settings.delay_ms, settings.delay_ms)
    options = Options(settings.hosts, settings.pages, settings.rate, settings.concurrency,
                      settings.per_host, delay, settings.timeout)  # fmt: skip
    crawl_id = f"bench-{uuid.uuid4().hex[:12]}"
    servers = _start_servers(options, RESULTS / f"distributed-{label}-hits.json")
    try:
        print(f"{label}: {nodes} node(s) on crawl {crawl_id}, {settings.hosts} hosts x {settings.pages}"
              " pages ...", flush=True)  # fmt: skip
        run = _crawl(settings, servers.urls, nodes, label, crawl_id)
    finally:
        served = servers.stop()
        run_keys = _delete_keys(settings.redis, crawl_id)
    return {**run, "crawl_id": crawl_id, "redis_keys_deleted": run_keys, "served": served}


def _crawl(settings: Settings, urls: list[str], nodes: int, label: str, crawl_id: str) -> dict[str, Any]:
    frontier = f"{settings.redis}?crawl={crawl_id}"
    env = {**os.environ, URLS_ENV: " ".join(urls)}
    redis_cpu, children_cpu, busy = _redis_cpu_s(settings.redis), _children_cpu_s(), _machine_busy_s()
    started = time.time()
    processes = [_start_node(settings, frontier, env, _node_paths(label, node)) for node in range(nodes)]
    codes = _wait_all(processes, started + settings.timeout)
    return {
        "nodes": nodes,
        "started": started,
        "wall_s": time.time() - started,
        "exit_codes": codes,
        "node_cpu_s": _children_cpu_s() - children_cpu,
        "redis_cpu_s": _redis_cpu_s(settings.redis) - redis_cpu,
        "machine_busy_s": _machine_busy_s() - busy,
        "parts": [_read_part(_node_paths(label, node)["output"]) for node in range(nodes)],
        "node_stats": [_read_stats(_node_paths(label, node)["stats"]) for node in range(nodes)],
    }


def _node_paths(label: str, node: int) -> dict[str, Path]:
    stem = RESULTS / f"distributed-{label}-part-{node}"
    return {"output": stem.with_suffix(".jsonl"), "stats": stem.with_suffix(".stats.json"),
            "stderr": stem.with_suffix(".stderr")}  # fmt: skip


def _start_node(
    settings: Settings, frontier: str, env: dict[str, str], paths: dict[str, Path]
) -> subprocess.Popen[bytes]:
    for path in paths.values():
        path.unlink(missing_ok=True)
    command = [str(Path(sys.executable).parent / "crawl"), str(SPIDER), "--frontier", frontier]
    command += ["--concurrency", str(settings.concurrency), "--per-host", str(settings.per_host)]
    command += ["--rate", f"{settings.rate:g}", "--no-obey-robots", "--allowed-domains", "127.0.0.1"]
    command += ["--allow-private", "--no-progress", "--parse-workers", "0"]
    command += ["-o", str(paths["output"]), "--stats", str(paths["stats"])]
    with paths["stderr"].open("wb") as stderr:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)


def _wait_all(processes: list[subprocess.Popen[bytes]], deadline: float) -> list[int | None]:
    """Each node's exit code; past the deadline, SIGINT (a clean stop, exit 130), then SIGKILL."""
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.time(), 0.0))
        except subprocess.TimeoutExpired:
            break
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return [process.returncode for process in processes]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_busy_s() -> float:
    """CPU time every core of the machine spent busy (not idle, not waiting for I/O)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _redis_cpu_s(url: str) -> float:
    """Redis's own CPU (the whole server: other clients of it count too)."""
    with redis.Redis.from_url(url) as client:
        info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _delete_keys(url: str, crawl_id: str) -> int:
    """Delete the crawl's keys: all of them carry the hash tag ``{crawler:<spider>:<id>}``."""
    pattern = f"{{crawler:{DistributedSpider.name}:{crawl_id}}}:*"
    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    return len(keys)


def _read_part(path: Path) -> list[str]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line)["url"] for line in lines if line.strip()]


def _read_stats(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


# --- analysis ---------------------------------------------------------------------------


def _report(settings: Settings, runs: list[dict[str, Any]]) -> dict[str, Any]:
    results = [_analyse(settings, run) for run in runs]
    one, many = results
    speedup = many["pages_per_s"] / one["pages_per_s"] if one["pages_per_s"] else 0.0
    steady = many["steady_pages_per_s"] / one["steady_pages_per_s"] if one["steady_pages_per_s"] else 0.0
    criteria = {
        "speedup": speedup >= MIN_SPEEDUP,
        "complete": all(not result["problems"] for result in results),
        "window": all(result["worst_window"] <= result["window_limit"] for result in results),
        "gap": all(result["min_gap_s"] >= MIN_GAP_SHARE / settings.rate for result in results),
        "at_once": all(result["most_at_once"] <= settings.per_host for result in results),
    }
    return {
        "settings": asdict(settings),
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg(), "python": sys.version.split()[0]},
        "speedup": speedup,
        "steady_speedup": steady,
        "runs": results,
        "criteria": criteria,
        "passed": all(criteria.values()),
    }


def _analyse(settings: Settings, run: dict[str, Any]) -> dict[str, Any]:
    hits: dict[str, list[list[Any]]] = run["served"]["hits"]
    fetched = Counter((url, entry[1]) for url, log in hits.items() for entry in log)
    items = Counter(url for part in run["parts"] for url in part)
    return {
        "nodes": run["nodes"],
        "crawl_id": run["crawl_id"],
        **_throughput(settings, run),
        **_cpu(run),
        "server_loop_lag_ms": run["served"]["loop_lag_ms"],
        "exit_codes": run["exit_codes"],
        "duplicate_items": sum(count - 1 for count in items.values()),
        "duplicate_fetches": sum(count - 1 for count in fetched.values()),
        **_politeness(settings, hits),
        "redis_keys_deleted": run["redis_keys_deleted"],
        "problems": _problems(settings, run, items, fetched),
        "node_stats": run["node_stats"],
    }


def _throughput(settings: Settings, run: dict[str, Any]) -> dict[str, Any]:
    """Pages/s over the whole run, and while every node was fetching (``steady``: from
    the last node's first request to the first node's last)."""
    arrival = {url + entry[1]: entry[0] for url, log in run["served"]["hits"].items() for entry in log}
    times = sorted(arrival.values())
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    nodes = [sorted(arrival[url] for url in part if url in arrival) or [math.nan] for part in run["parts"]]
    start, end = max(node[0] for node in nodes), min(node[-1] for node in nodes)
    steady = sum(start <= moment <= end for moment in times)
    return {
        "requests": len(times),
        "span_s": span,
        "pages_per_s": len(times) / span if span else 0.0,
        "steady_s": end - start,
        "steady_pages_per_s": steady / (end - start) if end > start else 0.0,
        "ceiling_share": len(times) / span / (settings.hosts * settings.rate) if span else 0.0,
        "wall_s": run["wall_s"],
        "start_delay_s": times[0] - run["started"] if times else math.nan,
        "node_first_s": [node[0] - times[0] for node in nodes],
        "node_last_s": [node[-1] - times[0] for node in nodes],
        "items_per_node": [len(part) for part in run["parts"]],
    }


def _cpu(run: dict[str, Any]) -> dict[str, float]:
    """CPU seconds of the nodes, Redis and the server process during the run, and of
    everything else on the machine (other people's work competes with the nodes)."""
    ours = run["node_cpu_s"] + run["redis_cpu_s"] + run["served"]["cpu_s"]
    return {
        "node_cpu_s": run["node_cpu_s"],
        "redis_cpu_s": run["redis_cpu_s"],
        "server_cpu_s": run["served"]["cpu_s"],
        "machine_busy_s": run["machine_busy_s"],
        "others_cpu_s": max(run["machine_busy_s"] - ours, 0.0),
    }


def _politeness(settings: Settings, hits: dict[str, list[list[Any]]]) -> dict[str, Any]:
    hosts = [_host(log, settings) for log in hits.values()]
    return {
        "window_limit": math.ceil(settings.rate),
        "worst_window": max(host["worst_window"] for host in hosts),
        "min_gap_s": min(host["min_gap_s"] for host in hosts),
        "gaps": sum(host["gaps"] for host in hosts),
        "gaps_under_interval": sum(host["gaps_under_interval"] for host in hosts),
        "gaps_at_limit": sum(host["gaps_at_limit"] for host in hosts),
        "most_at_once": max(host["most_at_once"] for host in hosts),
    }


def _host(log: list[list[Any]], settings: Settings) -> dict[str, Any]:
    times = sorted(entry[0] for entry in log)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    return {
        "worst_window": max(window_counts(times, WINDOW_S), default=0),
        "min_gap_s": min_gap(times) if len(times) > 1 else math.inf,
        "gaps": len(gaps),
        "gaps_under_interval": sum(gap < 1 / settings.rate for gap in gaps),
        "gaps_at_limit": sum(gap < AT_LIMIT / settings.rate for gap in gaps),
        "most_at_once": max(window_counts(times, settings.delay_ms / 1000), default=0),
    }


def _problems(
    settings: Settings, run: dict[str, Any], items: Counter[str], fetched: Counter[tuple[str, str]]
) -> list[str]:
    served_urls = list(run["served"]["hits"])
    expected = {url + page_path(index) for url in served_urls for index in range(settings.pages)}
    paths = {page_path(index) for index in range(settings.pages)}
    checks = [
        (any(code != 0 for code in run["exit_codes"]), f"node exit codes {run['exit_codes']}"),
        (len(served_urls) != settings.hosts, f"{len(served_urls)} hit logs, expected {settings.hosts}"),
        (bool(expected - set(items)), f"{len(expected - set(items))} pages missing from the parts"),
        (bool(set(items) - expected), f"{len(set(items) - expected)} items of unknown pages"),
        (len(items) != sum(items.values()), f"{sum(items.values()) - len(items)} pages in two parts"),
        (any(count > 1 for count in fetched.values()), "pages fetched more than once"),
        (any(path not in paths for _, path in fetched), "requests for unknown paths"),
    ]
    return [message for failed, message in checks if failed]


# --- report -----------------------------------------------------------------------------


THROUGHPUT = (  # column title, width, key, format
    ("nodes", 6, "nodes", "d"), ("requests", 10, "requests", "d"), ("span s", 8, "span_s", ".2f"),
    ("pages/s", 9, "pages_per_s", ".1f"), ("steady/s", 10, "steady_pages_per_s", ".1f"),
    ("wall s", 8, "wall_s", ".2f"), ("nodes CPU", 11, "node_cpu_s", ".2f"),
    ("redis CPU", 11, "redis_cpu_s", ".2f"), ("server CPU", 12, "server_cpu_s", ".2f"),
    ("others CPU", 12, "others_cpu_s", ".2f"),
)  # fmt: skip
CHECKS = (
    ("nodes", 6, "nodes", "d"), ("dup items", 11, "duplicate_items", "d"),
    ("dup fetches", 13, "duplicate_fetches", "d"), ("worst 1s", 10, "worst_window", "d"),
    ("min gap ms", 12, "min_gap_ms", ".1f"), ("gaps<int", 10, "gaps_under_interval", "d"),
    ("at limit %", 12, "at_limit_pct", ".0f"), ("at once", 9, "most_at_once", "d"),
)  # fmt: skip


def _print_report(report: dict[str, Any]) -> None:
    runs = [_derived(run) for run in report["runs"]]
    _print_table(THROUGHPUT, runs)
    _print_table(CHECKS, runs)
    settings = report["settings"]
    print(f"\npoliteness ceiling {settings['hosts']} hosts x {settings['rate']:g}/s; 'at limit': a host's"
          f" gaps under {AT_LIMIT:g} intervals; 'gaps<int': under 1/rate; CPU in seconds")  # fmt: skip
    for run in runs:
        print(_run_line(run))
        for problem in run["problems"]:
            print(f"!!! {problem}", file=sys.stderr)
        if run["others_cpu_s"] / run["wall_s"] > BUSY_CORES:
            print(f"!!! other processes kept {run['others_cpu_s'] / run['wall_s']:.2f} cores busy during the"
                  f" {run['nodes']}-node run: the machine was not idle", file=sys.stderr)  # fmt: skip
    _print_verdicts(report)


def _derived(run: dict[str, Any]) -> dict[str, Any]:
    at_limit = 100 * run["gaps_at_limit"] / max(run["gaps"], 1)
    return {**run, "min_gap_ms": 1000 * run["min_gap_s"], "at_limit_pct": at_limit}


def _print_table(columns: tuple[tuple[str, int, str, str], ...], runs: list[dict[str, Any]]) -> None:
    header = "".join(f"{title:>{width}}" for title, width, _, _ in columns)
    print(f"\n{header}\n{'-' * len(header)}")
    for run in runs:
        print("".join(f"{run[key]:>{width}{spec}}" for _, width, key, spec in columns))


def _run_line(run: dict[str, Any]) -> str:
    spans = zip(run["items_per_node"], run["node_first_s"], run["node_last_s"], strict=True)
    nodes = ", ".join(f"{count} ({first:.2f}-{last:.2f} s)" for count, first, last in spans)
    return (
        f"{run['nodes']} node(s): pages (first-last request) {nodes}; first request"
        f" {run['start_delay_s']:.2f} s after the start; {100 * run['ceiling_share']:.0f}% of the ceiling;"
        f" exit codes {run['exit_codes']}; server loop late by {run['server_loop_lag_ms']['p99']:.1f} ms"
        f" (p99); {run['redis_keys_deleted']} Redis keys deleted"
    )


def _print_verdicts(report: dict[str, Any]) -> None:
    settings, criteria, (one, many) = report["settings"], report["criteria"], report["runs"]
    verdict = {name: "PASS" if passed else "FAIL" for name, passed in criteria.items()}
    worst = max(one["worst_window"], many["worst_window"])
    gap, least = min(one["min_gap_s"], many["min_gap_s"]), MIN_GAP_SHARE / settings["rate"]
    steady = f"{report['steady_speedup']:.2f}x while all nodes were fetching"
    if many["steady_s"] <= 0:
        steady = "the nodes never all fetched at once"
    print(
        f"\n{verdict['speedup']}  {many['nodes']} nodes {many['pages_per_s']:.1f} pages/s = "
        f"{report['speedup']:.2f}x one node's {one['pages_per_s']:.1f} (goal >= {MIN_SPEEDUP:g}x; {steady})"
        f"\n{verdict['complete']}  every page in exactly one part, fetched once, every node exited 0"
        f"\n{verdict['window']}  worst 1-s window of any host {worst}"
        f" <= {one['window_limit']} (--rate {settings['rate']:g} for the whole cluster)"
        f"\n{verdict['gap']}  smallest gap between two requests of a host"
        f" {1000 * gap:.1f} ms >= {1000 * least:.0f}"
        f" ms (interval {1000 / settings['rate']:.0f} ms, starts spaced 5% wider; the rest is jitter)"
        f"\n{verdict['at_once']}  most requests of a host at the server at once"
        f" {max(one['most_at_once'], many['most_at_once'])} <= {settings['per_host']} (--per-host)"
    )


if __name__ == "__main__":
    sys.exit(main())
