"""What Scrapy-style selectors (parsel, on lxml) cost per page against the fast
selectolax path, on the same pages and the same fields.

    python bench/scrapy_selectors.py [--rounds 5] [--pages 40] [--real PATH]...

(Not ``bench/selectors.py``: scripts run from ``bench/`` would import it as the
standard library's ``selectors``.)

For each page, three ways a callback can extract the same item and links, each
from a fresh `Response` (so every way parses the page once, as in a crawl):

- ``fast``: ``css_first(...).text()`` / ``.attributes`` and ``follow_all("a")``
  (selectolax, what ``bench/bench_spider.py`` does);
- ``scrapy-fields``: ``response.css("...::text").get()`` / ``::attr()`` for the
  fields, the fast ``follow_all("a")`` for links (a ported Scrapy spider);
- ``scrapy-all``: the fields as above and ``follow_all(css="a")`` (parsel for links too).

Pages: the benchmark site's 30 KB pages (``bench/site.py``), the demo shop's product
page, and real documentation pages (``--real``; by default two pages of Debian's
``python3.11-doc``: ``apt-get install python3.11-doc``). Rounds interleave the
ways; the report gives the median milliseconds per page and each way's ratio to
``fast``, and the memory one parse worker gains when parsel and lxml load. Written to
``bench/results/scrapy_selectors.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the package, not bench/site.py as "site"
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import gc
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import Any

from bench.fields import ATTRIBUTE_FIELDS, TEXT_FIELDS
from bench.measure import RESULTS, save_report
from bench.site import build_site, page_path
from crawler import Request, Response
from crawler.demo.site import build_demo_site

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
DEFAULT_REAL = (PYTHON_DOCS / "library" / "json.html", PYTHON_DOCS / "library" / "stdtypes.html")
REAL_TEXT = {"title": "title", "heading": "h1", "first_paragraph": "div.body p"}
REAL_ATTRIBUTES = {"next": ("link[rel=next]", "href")}
DEMO_TEXT = {"name": "h1.title", "price": "p.price", "sku": "span.sku", "availability": "p.availability"}
DEMO_ATTRIBUTES = {"rating": ("p.rating", "data-rating")}
HTML = {"content-type": "text/html; charset=utf-8"}

Fields = tuple[dict[str, str], dict[str, tuple[str, str]]]
Way = Callable[[Response, Fields], int]


def fast(response: Response, fields: Fields) -> int:
    item = {}
    for name, css in fields[0].items():
        node = response.css_first(css)
        item[name] = node.text(deep=True).strip() if node is not None else ""
    for name, (css, attribute) in fields[1].items():
        node = response.css_first(css)
        item[name] = (node.attributes.get(attribute) or "") if node is not None else ""
    return len(item) + len(list(response.follow_all("a")))


def _scrapy_item(response: Response, fields: Fields) -> dict[str, str]:
    item = {name: response.css(f"{css}::text").get("").strip() for name, css in fields[0].items()}
    for name, (css, attribute) in fields[1].items():
        item[name] = response.css(f"{css}::attr({attribute})").get("")
    return item


def scrapy_fields(response: Response, fields: Fields) -> int:
    return len(_scrapy_item(response, fields)) + len(list(response.follow_all("a")))


def scrapy_all(response: Response, fields: Fields) -> int:
    return len(_scrapy_item(response, fields)) + len(list(response.follow_all(css="a")))


WAYS: dict[str, Way] = {"fast": fast, "scrapy-fields": scrapy_fields, "scrapy-all": scrapy_all}


def page_sets(pages: int, real: Iterable[Path]) -> dict[str, tuple[list[Response], Fields]]:
    """Name -> (responses, fields to extract)."""
    base = "http://127.0.0.1:8000"
    site = build_site(pages, base)
    bench = [_response(base + page_path(i), site.routes[page_path(i)].body) for i in range(pages)]
    product = "/product/highland-espresso.html"
    demo = [_response(base + product, build_demo_site(base)[product].body)]
    sets = {
        f"bench site ({len(bench[0].body) // 1000} KB pages)": (bench, (TEXT_FIELDS, ATTRIBUTE_FIELDS)),
        "demo shop product page": (demo, (DEMO_TEXT, DEMO_ATTRIBUTES)),
    }
    for path in real:
        if not path.is_file():
            print(f"skipped {path}: not found (apt-get install python3.11-doc)", file=sys.stderr)
            continue
        body = path.read_bytes()
        name = f"real page {path.name} ({len(body) // 1000} KB)"
        url = f"https://docs.python.org/3/library/{path.name}"
        sets[name] = ([_response(url, body)], (REAL_TEXT, REAL_ATTRIBUTES))
    return sets


def _response(url: str, body: bytes) -> Response:
    return Response(url, 200, HTML, body, Request(url))


def time_way(way: Way, responses: list[Response], fields: Fields, minimum: float = 0.3) -> float:
    """Milliseconds per page: fresh responses (nothing parsed yet), repeated for at least ``minimum`` s."""
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < minimum or done == 0:
        for response in responses:
            way(response.replace(), fields)
        done += len(responses)
    return elapsed * 1000 / done


def measure(sets: dict[str, tuple[list[Response], Fields]], rounds: int) -> dict[str, dict[str, Any]]:
    timings: dict[str, dict[str, list[float]]] = {name: {way: [] for way in WAYS} for name in sets}
    for way in WAYS.values():  # warm-up: imports, caches
        for responses, fields in sets.values():
            way(responses[0].replace(), fields)
    for _ in range(rounds):
        for name, (responses, fields) in sets.items():
            for way_name, way in WAYS.items():
                gc.collect()
                timings[name][way_name].append(time_way(way, responses, fields))
    return {name: _summary(ways) for name, ways in timings.items()}


def _summary(ways: dict[str, list[float]]) -> dict[str, Any]:
    medians = {way: statistics.median(times) for way, times in ways.items()}
    return {
        "ms_per_page": {way: round(value, 4) for way, value in medians.items()},
        "ratio_to_fast": {way: round(value / medians["fast"], 2) for way, value in medians.items()},
        "runs_ms": {way: [round(t, 4) for t in times] for way, times in ways.items()},
    }


LOAD_COST = """
from crawler import Request, Response
def rss():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))
r = Response("http://a.test/", 200, {"content-type": "text/html"}, b"<h1>x</h1>", Request("http://a.test/"))
r.css_first("h1")
before = rss()
r.css("h1::text").get()
print(before, rss())
"""


def parsel_memory_kb() -> int:
    """RSS a process gains when its first ``response.css`` loads parsel and lxml."""
    out = subprocess.run([sys.executable, "-c", LOAD_COST], capture_output=True, text=True, check=True)
    before, after = map(int, out.stdout.split())
    return after - before


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pages", type=int, default=40, help="bench site pages per round")
    parser.add_argument("--real", type=Path, action="append", help="a saved HTML page (repeatable)")
    args = parser.parse_args(argv)
    sets = page_sets(args.pages, args.real or DEFAULT_REAL)
    results = measure(sets, args.rounds)
    print(f"{'page':<42} " + " ".join(f"{way:>22}" for way in WAYS))
    for name, result in results.items():
        cells = [f"{result['ms_per_page'][w]:8.3f} ms ({result['ratio_to_fast'][w]:4.1f}x)" for w in WAYS]
        print(f"{name:<42} " + " ".join(f"{cell:>22}" for cell in cells))
    memory = parsel_memory_kb()
    print(f"loading parsel and lxml in a process: +{memory / 1024:.1f} MB RSS")
    RESULTS.mkdir(exist_ok=True)
    save_report("scrapy_selectors", {"rounds": args.rounds, "pages": results, "parsel_load_rss_kb": memory})


if __name__ == "__main__":
    main()
