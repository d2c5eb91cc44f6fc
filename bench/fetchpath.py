"""Main-process CPU per request on the fetch path, in microseconds.

    python bench/fetchpath.py [--requests 5000] [--concurrency 64] [--repeat 5]
                              [--tree LABEL=DIR]... [--via WAY]...

Serves one 30 KB page from a child process (``crawler.sites.server.SiteServer``, so
its CPU is not counted), then fetches it ``--requests`` times through
``crawler.fetch.client.Fetcher`` with ``--concurrency`` requests in flight, and reports
this process's CPU time (user + system) divided by the number of requests: the cost
of building the request, the client and transport layers, the connection pool, the
size-capped read and the bounded decoding, and nothing else.

``--via`` chooses how this tree's fetcher reaches the network (repeat it to compare):
``transport`` (the default path: ``PoolTransport.handle_async_request`` called
directly), ``client`` (the same transport under an ``httpx.AsyncClient``, as with
``client_factory``) or ``httpx-aiohttp`` (``httpx_aiohttp.AiohttpTransport`` under an
``httpx.AsyncClient``, from the ``bench`` extras; it has no address guard).

``--tree LABEL=DIR`` measures another checkout of the project as well (for example
the previous version: ``git archive HEAD | tar -x -C /tmp/before``), each run in a
fresh subprocess with ``PYTHONPATH=DIR``, the trees interleaved round by round; the
report gives each tree's median and the ratios of medians to the first tree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE_BYTES = 30_000
WAYS = ("transport", "client", "httpx-aiohttp")
SERVER = """
import sys, time
from crawler.sites.server import Page, SiteServer
with SiteServer({"/": Page(b"<p>" + b"x" * %d + b"</p>")}) as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.child:
        way = (args.via or [""])[0]
        print(json.dumps(asyncio.run(_measure(args.child, args.requests, args.concurrency, way))))
        return 0
    ways = args.via or ["transport"]
    runs = [(way, str(ROOT), way) for way in ways] + [
        (label, tree, "") for label, tree in map(_tree, args.tree)
    ]
    results: dict[str, list[float]] = {label: [] for label, _, _ in runs}
    with _server() as url:
        for _ in range(args.repeat):
            for label, directory, way in runs:
                results[label].append(_run_child(directory, url, way, args)["us_per_request"])
    _report(results, args)
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR")
    parser.add_argument("--via", action="append", choices=WAYS)
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _tree(spec: str) -> tuple[str, str]:
    label, _, directory = spec.partition("=")
    if not directory or not Path(directory, "crawler").is_dir():
        raise SystemExit(f"--tree {spec!r}: expected LABEL=DIR with DIR/crawler")
    return label, str(Path(directory).resolve())


class _server:
    """The page server in a child process; its URL while the ``with`` block runs."""

    def __enter__(self) -> str:
        code = SERVER % PAGE_BYTES
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def __exit__(self, *exc_info: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _run_child(directory: str, url: str, way: str, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", url, "--requests", str(args.requests)]
    command += ["--concurrency", str(args.concurrency), *(["--via", way] if way else [])]
    env = {**os.environ, "PYTHONPATH": directory}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=600)
    return dict(json.loads(done.stdout))


def _fetcher(concurrency: int, way: str) -> Any:
    """The fetcher under test; ``way`` empty: another tree's, as that tree builds it."""
    from crawler import Settings
    from crawler.fetch.client import Fetcher

    settings = Settings(concurrency=concurrency)
    if way in ("", "transport"):
        return Fetcher(settings)
    import httpx

    if way == "client":
        return Fetcher(settings, client_factory=lambda transport: httpx.AsyncClient(transport=transport))
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=concurrency)
    return Fetcher(
        settings, client_factory=lambda _: httpx.AsyncClient(transport=AiohttpTransport(limits=limits))
    )


async def _measure(url: str, requests: int, concurrency: int, way: str) -> dict[str, float]:
    from crawler import Request

    fetcher = _fetcher(concurrency, way)
    request = Request(url + "/")
    await fetcher.fetch(request)  # warm up: imports, the first connection
    queue = list(range(requests))

    async def worker() -> None:
        while queue:
            queue.pop()
            fetched = await fetcher.fetch(request)
            assert len(fetched.body) > PAGE_BYTES

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await fetcher.close()
    return {"us_per_request": round(1e6 * cpu / requests, 1), "requests_per_s": round(requests / wall)}


def _report(results: dict[str, list[float]], args: argparse.Namespace) -> None:
    print(f"main-process CPU per request, {args.requests} requests, {args.concurrency} in flight")
    medians = {label: statistics.median(runs) for label, runs in results.items()}
    first = next(iter(medians.values()))
    for label, runs in results.items():
        shown = ", ".join(f"{run:.0f}" for run in runs)
        print(f"  {label:>10}: median {medians[label]:.0f} us  ({shown})  ratio {medians[label] / first:.2f}")


if __name__ == "__main__":
    sys.exit(main())
