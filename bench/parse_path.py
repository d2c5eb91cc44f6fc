"""Main-process CPU per page on the parse path, in microseconds: what it costs the
event loop to hand a page to a parse worker and take its result back.

    python bench/parse_path.py [--pages 3000] [--executor ours|process-pool]
    python bench/parse_path.py --against DIR [--repeat 5]   # this tree vs another checkout

Pages of the generated site (``bench/site.py``) go through ``loop.run_in_executor``
with the benchmark spider, 64 at a time as a crawl's fetch stage hands them on;
the worker processes do the parsing (the main process never parses here). Only the
main process's CPU is counted (``time.process_time``). ``--against DIR`` runs the
same measurement on the checkout in DIR (an older version: its ``ParsePool`` is
driven the way its engine drove it) and on this one, interleaved, and prints
medians and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import the package, not bench/site.py as "site"
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.measure import runs_on_trees

ROOT = Path(__file__).resolve().parent.parent
WAVE = 64  # pages in flight, as with --concurrency 64


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.against:
        return _compare(args)
    sys.path.insert(0, str(args.tree or ROOT))
    os.environ.setdefault("BENCH_URL", "http://127.0.0.1:8000")
    result = asyncio.run(_measure(args.pages, args.executor))
    print(json.dumps(result))
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--executor", choices=("ours", "process-pool"), default="ours")
    parser.add_argument("--against", type=Path, help="Another checkout to compare with.")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)  # the checkout to import
    return parser.parse_args(argv)


async def _measure(pages: int, executor_kind: str) -> dict[str, Any]:
    from bench.bench_spider import BenchSpider
    from bench.site import build_site
    from crawler import Request
    from crawler.output.itemjson import encode_items
    from crawler.parse.callbacks import LinkRules, ParseTask

    base = os.environ["BENCH_URL"]
    site = build_site(pages, base)
    headers = {"content-type": "text/html; charset=utf-8"}
    tasks = [
        ParseTask(Request(base + path), base + path, 200, headers, page.body)
        for path, page in site.routes.items()
        if path.endswith((".html", "/")) and "/private/" not in path
    ]
    # the encoder crawls use; an older checkout takes it for encode_items=True
    rules = LinkRules(("127.0.0.1",), None, 2083, encode_items)
    parse, close = await _open(executor_kind, BenchSpider, rules)
    try:
        started_cpu, started = time.process_time(), time.perf_counter()
        for start in range(0, len(tasks), WAVE):
            await asyncio.gather(*(parse(task) for task in tasks[start : start + WAVE]))
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    finally:
        await close()
    return {
        "pages": len(tasks),
        "main_cpu_us_per_page": 1e6 * cpu / len(tasks),
        "pages_per_s": len(tasks) / wall,
    }


async def _open(kind: str, spider_cls: Any, rules: Any) -> tuple[Any, Any]:
    """(parse a task, close) for the executor of this checkout."""
    from crawler.parse import executor as _pool

    if not hasattr(_pool, "ParseExecutor"):  # a version before the executor
        pool = _pool.ParsePool(spider_cls(), {}, rules, workers=1)
        await pool.start()
        return pool.parse, pool.close
    from crawler.parse.callbacks import SpiderParser

    parser = SpiderParser.of(spider_cls, {}, rules)
    executor: Any
    if kind == "ours":
        executor = _pool.ParseExecutor(1, initializer=parser.load)
        await executor.start()
        closing = executor.aclose
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"))

        async def closing() -> None:
            executor.shutdown()

    loop = asyncio.get_running_loop()
    return (lambda task: loop.run_in_executor(executor, parser, task)), closing


def _compare(args: argparse.Namespace) -> int:
    trees = {"other": args.against.resolve(), "this": ROOT}
    script = [sys.executable, __file__, "--pages", str(args.pages)]
    results = runs_on_trees(script, trees, args.repeat)
    medians = {
        name: {
            key: statistics.median(run[key] for run in runs)
            for key in ("main_cpu_us_per_page", "pages_per_s")
        }
        for name, runs in results.items()
    }
    print(
        json.dumps(
            {
                "medians": medians,
                "this_over_other": {
                    key: medians["this"][key] / medians["other"][key] for key in medians["this"]
                },
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
