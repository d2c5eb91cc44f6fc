"""CPU per page of the parse stage on real pages, in microseconds, in one process.

    python bench/parse_cpu.py [--site python|postgres] [--rounds 3]
    python bench/parse_cpu.py --against DIR [--site ...]   # this tree vs another checkout

The pages are the real-site benchmark's documentation sets (``bench/realsites.py``):
each HTML file becomes a response at its URL under ``http://127.0.0.1:8000``, and
the real-site spider (``bench/doc_spider.py``) parses it as a parse worker would:
the callback, link joining, vetting and dedup, items encoded as JSON Lines. One
worker sees every page, in file order, so its dedup memory fills as in a crawl.
Only CPU (``time.process_time``) is counted, the best of ``--rounds`` rounds, so
load on the machine barely moves it. ``--against DIR`` measures DIR's checkout and
this one in turn, round after round, and prints both and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import the package, not bench/site.py as "site"
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.measure import runs_on_trees

ROOT = Path(__file__).resolve().parent.parent
SITES = {"python": "/usr/share/doc/python3.11/html", "postgres": "/usr/share/doc/postgresql-doc-15/html"}
ORIGIN = "http://127.0.0.1:8000"


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.against:
        return _compare(args)
    sys.path.insert(0, str(args.tree or ROOT))
    os.environ["BENCH_URL"] = ORIGIN
    print(json.dumps(_measure(Path(SITES[args.site]), args.rounds)))
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", choices=SITES, default="python")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, help="Another checkout to compare with.")
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)  # the checkout to import
    args = parser.parse_args(argv)
    if not Path(SITES[args.site]).is_dir():
        parser.error(f"{SITES[args.site]} is missing: apt-get install the site's documentation package")
    return args


def _measure(root: Path, rounds: int) -> dict[str, Any]:
    from bench.realsites import html_files
    from crawler._request import Request
    from crawler.parse.callbacks import LinkRules, ParseTask, SpiderParser

    spider_cls = _doc_spider()
    pages = [(ORIGIN + path, body) for path, body in html_files(root)]
    headers = {"content-type": "text/html; charset=utf-8"}
    best = float("inf")
    for _ in range(rounds):
        rules = LinkRules(allowed_domains=("127.0.0.1",), max_depth=None, max_url_length=2083)
        parse = SpiderParser.of(spider_cls, {}, rules)  # a new crawl: empty dedup memory
        tasks = [ParseTask(Request(url, depth=1), url, 200, headers, body) for url, body in pages]
        started = time.process_time()
        links = sum(len(parse(task).requests) for task in tasks)
        best = min(best, time.process_time() - started)
    return {"pages": len(pages), "new_links": links, "us_per_page": round(1e6 * best / len(pages), 1)}


def _doc_spider() -> type[Any]:
    from bench.doc_spider import DocSpider

    return DocSpider


def _compare(args: argparse.Namespace) -> int:
    trees = {"other": args.against.resolve(), "this": ROOT}
    script = [sys.executable, __file__, "--site", args.site, "--rounds", "1"]
    runs = runs_on_trees(script, trees, args.rounds)
    figures = {name: [float(str(run["us_per_page"])) for run in results] for name, results in runs.items()}
    best = {name: min(values) for name, values in figures.items()}
    ratio = best["this"] / best["other"]
    print(json.dumps({"site": args.site, "us_per_page": figures, "best": best, "this/other": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
