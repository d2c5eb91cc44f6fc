"""Benchmark our crawler against Scrapy on real sites served locally, side by side.

    python bench/realsites.py [--site python|postgres] [--repeat K] [--parse-workers N]

The sites are documentation sets Debian packages as static HTML:

- ``python``: the Python 3.11 documentation (``apt-get install python3.11-doc``),
  about 530 pages, 54 KB at the median, up to 2.5 MB;
- ``postgres``: the PostgreSQL 15 manual (``apt-get install postgresql-doc-15``),
  about 1,170 pages, 7 KB at the median, up to 440 KB.

Real pages are larger and more varied than the generated site of ``run.py``, so
parsing weighs more. Each run gets a fresh server process serving the site's HTML
files from memory; the crawlers run ``doc_spider.py`` and ``scrapy_doc_spider.py``
(title and first heading of each page, every link to an HTML page followed) and are
measured over their whole process tree. Prints a table and the ours/scrapy ratios,
and writes everything to ``bench/results/realsite-SITE.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

if __package__ in (None, ""):  # run as a script: import the package, not bench/site.py as "site"
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.fields import URL_ENV
from bench.measure import RESULTS, run_measured, save_report
from bench.run import (
    ROOT,
    _cpu_s,
    _machine,
    _medians,
    _print_runs,
    _python_env,
    _ratios,
    compile_crawler,
    crawler_command,
)

SITES = {
    "python": ("/usr/share/doc/python3.11/html", "python3.11-doc"),
    "postgres": ("/usr/share/doc/postgresql-doc-15/html", "postgresql-doc-15"),
}
HTML_HEADERS = (("Content-Type", "text/html; charset=utf-8"),)


SPIDERS = ("doc_spider.py", "scrapy_doc_spider.py")  # ours, Scrapy's


@dataclass(frozen=True, slots=True)
class Options:
    sites: tuple[str, ...]
    parse_workers: int | None
    repeat: int
    timeout: float


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        serve(Path(args[1]))
        return 0
    options = _parse_args(args)
    RESULTS.mkdir(exist_ok=True)
    compile_crawler()
    problems = 0
    for site in options.sites:
        runs = [_run_one(site, name, rep, options) for rep in range(options.repeat) for name in _order(rep)]
        report = _report(site, options, runs)
        _print_report(report)
        save_report(f"realsite-{site}", report)
        problems += sum(bool(run["problems"]) for run in runs) + (not report["same_pages"])
    return 1 if problems else 0


def _parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", choices=SITES, help="One site only [both].")
    parser.add_argument("--parse-workers", type=int, help="Our --parse-workers [its default].")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per crawler and site, interleaved [3].")
    parser.add_argument("--timeout", type=float, default=600, help="Seconds before a run is killed [600].")
    args = parser.parse_args(argv)
    sites = (args.site,) if args.site else tuple(SITES)
    missing = [SITES[site][1] for site in sites if not Path(SITES[site][0]).is_dir()]
    if missing:
        parser.error(f"install the documentation first: apt-get install {' '.join(missing)}")
    return Options(sites, args.parse_workers, args.repeat, args.timeout)


def _order(rep: int) -> tuple[str, ...]:
    """Alternate which crawler goes first, so drift in machine load favours neither."""
    return ("ours", "scrapy") if rep % 2 == 0 else ("scrapy", "ours")


# --- the server ------------------------------------------------------------------------


def serve(root: Path) -> None:
    """Serve the HTML files under ``root`` until SIGTERM; print one JSON line once listening."""
    from crawler.sites.server import Page, SiteServer

    routes = {path: Page(body, headers=HTML_HEADERS) for path, body in html_files(root)}
    routes["/"] = routes["/index.html"]

    def on_ready(server: SiteServer) -> None:
        print(json.dumps({"url": server.url, "pages": len(routes) - 1}), flush=True)

    SiteServer(routes).serve_forever(on_ready=on_ready)


def html_files(root: Path) -> Iterator[tuple[str, bytes]]:
    """(URL path, content) of each HTML file under ``root``."""
    for path in sorted(root.rglob("*.html")):
        yield "/" + quote(path.relative_to(root).as_posix()), path.read_bytes()


def _start_server(site: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    command = [sys.executable, "-m", "bench.realsites", "serve", SITES[site][0]]
    process = subprocess.Popen(command, cwd=ROOT, env=_python_env(), stdout=subprocess.PIPE)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"the site server exited with {process.wait()} before it was ready")
    return process, json.loads(line)


# --- one run ---------------------------------------------------------------------------


def _run_one(site: str, name: str, rep: int, options: Options) -> dict[str, Any]:
    stem = RESULTS / f"realsite-{site}-{name}-{rep}"
    output = stem.with_suffix(".jsonl")
    server, ready = _start_server(site)
    print(f"[{site} {name} #{rep}] crawling {ready['url']} ({ready['pages']} pages) ...", flush=True)
    cpu_at_ready = _cpu_s(server.pid)
    try:
        with stem.with_suffix(".stderr").open("wb") as err:
            env = {**_python_env(), URL_ENV: ready["url"]}
            stats = stem.with_suffix(".stats.json")
            command = crawler_command(name, SPIDERS, output, stats, options.parse_workers)
            measurement = run_measured(
                command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, timeout=options.timeout
            )
    finally:
        server_cpu = _cpu_s(server.pid) - cpu_at_ready
        server.terminate()
        server.wait(timeout=60)
    pages = _page_paths(output)
    wall = measurement.wall_s
    run = {
        "crawler": name,
        "rep": rep,
        "command": command,
        **asdict(measurement),
        "pages": len(pages),
        "pages_per_s": len(pages) / wall if wall else 0.0,
        "cpu_ms_per_page": 1000 * measurement.cpu_s / len(pages) if pages else None,
        "peak_rss_mb": measurement.peak_rss / (1 << 20),
        "peak_pss_mb": measurement.peak_pss / (1 << 20),
        "server": {"cpu_s": round(server_cpu, 2)},
        "page_paths": sorted(pages),
    }
    run["problems"] = _problems(run, len(pages), measurement.returncode, measurement.timed_out)
    return run


def _page_paths(output: Path) -> list[str]:
    """The path of each item's page (the server's port varies from run to run)."""
    if not output.exists():
        return []
    with output.open("rb") as lines:
        return [urlsplit(json.loads(line)["url"]).path for line in lines if line.strip()]


def _problems(run: dict[str, Any], pages: int, returncode: int, timed_out: bool) -> list[str]:
    checks = [
        (timed_out, "killed after the timeout"),
        (returncode != 0, f"exit code {returncode}"),
        (pages != len(set(run["page_paths"])), "some pages yielded more than one item"),
        (pages == 0, "no items"),
    ]
    return [message for failed, message in checks if failed]


# --- report ----------------------------------------------------------------------------


def _report(site: str, options: Options, runs: list[dict[str, Any]]) -> dict[str, Any]:
    medians = {name: _medians([run for run in runs if run["crawler"] == name]) for name in ("ours", "scrapy")}
    page_sets = {tuple(run.pop("page_paths")) for run in runs}
    return {
        "site": site,
        "package": SITES[site][1],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "options": {"parse_workers": options.parse_workers, "repeat": options.repeat},
        "machine": _machine(),
        "runs": runs,
        "medians": medians,
        "ratios_ours_over_scrapy": _ratios(medians),
        "same_pages": len(page_sets) == 1,
    }


def _print_report(report: dict[str, Any]) -> None:
    print(f"\n{report['site']} ({report['package']})", end="")
    _print_runs(report["runs"])
    for metric, ratio in report["ratios_ours_over_scrapy"].items():
        print(f"ours/scrapy {metric:<16} {ratio:8.2f}")
    if not report["same_pages"]:
        print("!!! WARNING: the runs did not all crawl the same pages", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
