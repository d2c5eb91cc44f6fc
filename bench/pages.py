"""Per-page CPU cost of reading a fetched page: decoding, parsing, link extraction and
canonicalisation, the work a parse worker does for every page before the callback's own.

Pages are the bench site's (30 KB, 20 links), served three ways: as the site serves them
(``text/html; charset=utf-8``), without a charset in the header (the ``<meta>`` prescan
decides), and declared windows-1251 (a legacy page: decoded to text, parsed from text).

``--vs DIR`` measures another checkout's ``crawler`` package (DIR holds it; e.g. made
with ``git archive main crawler | tar -x -C DIR``) side by side: each round runs both in
fresh processes, in alternating order, and the report gives medians and ratios.

    python bench/pages.py --vs /tmp/main-tree --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VARIANTS = {
    "utf8_header": "text/html; charset=utf-8",
    "utf8_meta": "text/html",
    "cp1251_header": "text/html; charset=windows-1251",
}
ROOT = Path(__file__).resolve().parent.parent


def measure(pages: int, passes: int) -> dict[str, float]:
    """Microseconds per page for each variant: the best of ``passes`` passes."""
    from crawler.sites.bench import build_site  # the tree PYTHONPATH names, in a worker

    site = build_site(pages, "http://127.0.0.1:8000")
    bodies = [(path, page.body) for path, page in site.routes.items() if path.endswith((".html", "/"))]
    return {
        name: min(_pass(bodies, content_type) for _ in range(passes)) / len(bodies) * 1e6
        for name, content_type in VARIANTS.items()
    }


def _pass(bodies: list[tuple[str, bytes]], content_type: str) -> float:
    from crawler._request import Request
    from crawler._response import Response
    from crawler._urls import canonicalize

    headers = {"content-type": content_type}
    start = time.process_time()  # CPU time: the machine may be busy with other work
    for path, body in bodies:
        url = "http://127.0.0.1:8000" + path
        response = Response(url, 200, headers, body, Request(url))
        for request in response.follow_all("a"):
            canonicalize(request.url)
        response.css_first("h1")
    return time.process_time() - start


def run_worker(tree: Path, pages: int, passes: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, __file__, "--worker", "--pages", str(pages), "--passes", str(passes)]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd="/")
    return json.loads(output.stdout)  # type: ignore[no-any-return]


def compare(trees: dict[str, Path], rounds: int, pages: int, passes: int) -> dict[str, Any]:
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    names = list(trees)
    for round_number in range(rounds):
        for name in names if round_number % 2 == 0 else reversed(names):
            samples[name].append(run_worker(trees[name], pages, passes))
    medians = {
        name: {variant: statistics.median(run[variant] for run in runs) for variant in VARIANTS}
        for name, runs in samples.items()
    }
    return {"rounds": rounds, "pages": pages, "us_per_page": medians}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=300, help="Bench-site pages per pass [300].")
    parser.add_argument("--passes", type=int, default=3, help="Passes per process; the best counts [3].")
    parser.add_argument("--rounds", type=int, default=5, help="Processes per tree, interleaved [5].")
    parser.add_argument("--vs", type=Path, help="A directory holding another crawler package to compare.")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.pages, args.passes)))
        return
    trees = {"this": ROOT, **({"vs": args.vs.resolve()} if args.vs else {})}
    report = compare(trees, args.rounds, args.pages, args.passes)
    medians = report["us_per_page"]
    for variant in VARIANTS:
        cells = [f"{name} {medians[name][variant]:7.1f} us" for name in trees]
        ratio = f"  this/vs {medians['this'][variant] / medians['vs'][variant]:.3f}" if args.vs else ""
        print(f"{variant:14} " + "   ".join(cells) + ratio)


if __name__ == "__main__":
    main()
