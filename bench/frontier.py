"""Frontier throughput and memory: the SQLite (job) backend against the memory backend.

    python bench/frontier.py [--count 1000000] [--hosts 1000] [--batch 1000] [--only sqlite|memory]

Each mode runs in its own subprocess, three times over:

* ``run``: add ``count`` distinct URLs (spread over ``hosts`` hosts) in batches of
  ``batch``, as link extraction does; add every batch a second time (all duplicates,
  the common case in a crawl); then drain the frontier with ``take(batch)`` and a
  ``done`` per request. Reports adds/s (new and duplicate), takes/s (take + done per
  request) and the child's peak RSS (``ru_maxrss``) once all ``count`` URLs have been
  discovered and queued, before any is taken.
* ``trace``: the same adds and drain under ``tracemalloc``, for the Python memory the
  frontier keeps per seen URL once the queue is empty (SQLite's own page cache is not
  traced: it is bounded by ``cache_size``). RSS cannot show this: freed requests
  leave the allocator's arenas fragmented.
* ``baseline``: the child's peak RSS after imports only.

Goals (from the issue): job mode under 200 MB peak RSS at 1M URLs; memory mode under
120 bytes per seen URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import the package from the checkout
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from crawler._request import Request
from crawler.frontier.base import Frontier, HostPolicy
from crawler.frontier.memory import MemoryFrontier
from crawler.frontier.sqlite import SqliteFrontier

MODES = ("sqlite", "memory")
MB = 1024 * 1024
POLICY = HostPolicy(concurrency=1_000_000)  # politeness off: this measures the data structures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="distinct URLs discovered")
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000, help="requests per add and per take")
    parser.add_argument("--only", choices=MODES)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PHASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, phase = args.child
        print(json.dumps(asyncio.run(child(mode, phase, args.count, args.hosts, args.batch))))
        return
    results = {mode: measure(mode, args) for mode in ([args.only] if args.only else MODES)}
    report(results, args.count)


def measure(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the three phases of ``mode``, each in a fresh subprocess."""
    result: dict[str, Any] = {}
    for phase in ("baseline", "run", "trace"):
        command = [sys.executable, __file__, "--child", mode, phase]
        command += ["--count", str(args.count), "--hosts", str(args.hosts), "--batch", str(args.batch)]
        print(f"{mode} {phase} ...", file=sys.stderr, flush=True)
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        result[phase] = json.loads(output)
    return result


async def child(mode: str, phase: str, count: int, hosts: int, batch: int) -> dict[str, Any]:
    if phase == "baseline":
        return {"peak_rss": peak_rss()}
    with tempfile.TemporaryDirectory() as tmp:
        frontier = make(mode, Path(tmp) / "job.db")
        if phase == "trace":
            tracemalloc.start()
        result = await exercise(frontier, count, hosts, batch)
        if phase == "trace":
            result["traced_after_drain"] = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
        await frontier.close()
        if mode == "sqlite":
            result["db_bytes"] = sum(p.stat().st_size for p in Path(tmp).iterdir())
    return result


def make(mode: str, path: Path) -> Frontier:
    return SqliteFrontier(path, POLICY) if mode == "sqlite" else MemoryFrontier(POLICY)


async def exercise(frontier: Frontier, count: int, hosts: int, batch: int) -> dict[str, Any]:
    started = time.perf_counter()
    for requests in batches(count, hosts, batch):
        await frontier.add(requests)
    added = time.perf_counter()
    for requests in batches(count, hosts, batch):
        await frontier.add(requests)
    duplicates = time.perf_counter()
    discovered_rss = peak_rss()  # and every one is queued: the high-water mark
    taken = await drain(frontier, batch)
    drained = time.perf_counter()
    assert taken == count, (taken, count)
    return {
        "adds_per_s": count / (added - started),
        "duplicate_adds_per_s": count / (duplicates - added),
        "takes_per_s": count / (drained - duplicates),
        "peak_rss_discovered": discovered_rss,
        "peak_rss": peak_rss(),
    }


def batches(count: int, hosts: int, batch: int) -> Iterator[list[Request]]:
    """``count`` distinct URLs, round-robin over ``hosts`` hosts, ``batch`` at a time."""
    for start in range(0, count, batch):
        stop = min(start + batch, count)
        yield [Request(f"http://h{i % hosts}.example/item/{i}.html") for i in range(start, stop)]


async def drain(frontier: Frontier, batch: int) -> int:
    """Take and finish everything, as the engine does (one ``done`` per request)."""
    taken = 0
    while requests := await frontier.take(batch):
        await asyncio.gather(*(frontier.done(r) for r in requests))
        taken += len(requests)
    return taken


def peak_rss() -> int:
    """This process's peak RSS in bytes (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def report(results: dict[str, dict[str, Any]], count: int) -> None:
    print(f"\n{count:,} distinct URLs\n")
    print(
        f"{'':8} {'adds/s':>10} {'dup adds/s':>11} {'takes/s':>10} {'peak RSS':>9} {'growth':>8}"
        f" {'RSS B/URL':>10} {'kept B/URL':>11} {'DB size':>8}"
    )
    for mode, r in results.items():
        run, base = r["run"], r["baseline"]["peak_rss"]
        growth = run["peak_rss_discovered"] - base
        kept = r["trace"]["traced_after_drain"] / count
        print(
            f"{mode:8} {run['adds_per_s']:>10,.0f} {run['duplicate_adds_per_s']:>11,.0f}"
            f" {run['takes_per_s']:>10,.0f} {run['peak_rss_discovered'] / MB:>7.0f}MB"
            f" {growth / MB:>6.0f}MB {growth / count:>10.0f} {kept:>11.1f}"
            f" {run.get('db_bytes', 0) / MB:>6.0f}MB"
        )
    print(
        "\npeak RSS: the child's ru_maxrss with every URL discovered and queued; growth: minus the"
        "\nbaseline (imports only); kept B/URL: Python memory traced after draining, per seen URL."
    )
    if os.environ.get("BENCH_JSON"):
        Path(os.environ["BENCH_JSON"]).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
