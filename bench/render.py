"""Rendering in a browser against plain fetching, on the demo shop.

    python bench/render.py [--repeat 3] [--pages 1 2 4 8 16] [--timeout 300]

Serves the demo shop in a child process and crawls it with ``spiders/listing.py``
(the home page, 8 listing pages, 60 product pages: 69 pages), once with plain
fetching and once rendering every page in Chromium (``--render``) for each number
of browser pages in ``--pages``, ``--per-host`` high enough not to be the limit.
Each crawl is a ``crawl`` process measured as a whole process tree (the browser's
processes included): wall time, CPU, peak RSS and PSS (``bench/measure.py``).
Rounds are interleaved (every variant once per round) and medians reported, with
each variant's ratio to plain fetching; a crawl that does not write 60 items is an
error (exit status 1). Needs Playwright, a Chromium and psutil
(``pip install -e '.[browser,test]'``). Results go to ``bench/results/render.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import MB, RESULTS, run_measured, save_report
from crawler.demo.cli import demo_site

ROOT = Path(__file__).resolve().parents[1]
CRAWL = str(Path(sys.executable).parent / "crawl")
SPIDER = ROOT / "spiders" / "listing.py"
PRODUCTS = 60


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    flags: tuple[str, ...]


def variants(browser_pages: Sequence[int]) -> list[Variant]:
    rendered = [
        Variant(f"render, {n} page{'s' if n > 1 else ''}", ("--render", "--browser-pages", str(n)))
        for n in browser_pages
    ]
    # The default wait (networkidle) costs 500 ms of quiet per page; "load" does not.
    on_load = Variant("render, 4, load", ("--render", "--browser-pages", "4", "--wait-for", "load"))
    return [Variant("plain", ()), *rendered, on_load]


def crawl_once(variant: Variant, url: str, workdir: Path, timeout: float) -> dict[str, Any]:
    """One measured crawl of the shop; its figures."""
    out, stats_path = workdir / "items.jsonl", workdir / "stats.json"
    command = [CRAWL, str(SPIDER), "-a", f"base_url={url}", "-O", str(out), "--stats", str(stats_path)]
    command += ["--no-progress", "--per-host", "32", "--log-level", "WARNING", *variant.flags]
    with (workdir / "stderr.txt").open("wb") as stderr:
        measured = run_measured(
            command, env=os.environ, cwd=ROOT, stdout=stderr, stderr=stderr, timeout=timeout
        )
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    items = len(out.read_text().splitlines()) if out.exists() else 0
    render = stats.get("render", {})
    return {
        "ok": measured.returncode == 0 and items == PRODUCTS and not measured.timed_out,
        "items": items,
        "pages": stats.get("pages", 0),
        "pages_per_s": stats.get("pages", 0) / measured.wall_s,
        "wall_s": measured.wall_s,
        "cpu_s": measured.cpu_s,
        "cpu_ms_per_page": measured.cpu_s * 1000 / max(stats.get("pages", 0), 1),
        "peak_rss_mb": measured.peak_rss / MB,
        "peak_pss_mb": measured.peak_pss / MB,
        "processes": measured.max_processes,
        "render_ms_per_page": render.get("ms_per_page"),
        "render_crashes": render.get("crashes", 0),
    }


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Medians per variant, and each one's ratio to plain fetching."""
    keys = ("pages_per_s", "wall_s", "cpu_s", "cpu_ms_per_page", "peak_rss_mb", "peak_pss_mb", "processes")
    medians = {
        name: {key: statistics.median(run[key] for run in rounds) for key in keys}
        for name, rounds in runs.items()
    }
    for name, rounds in runs.items():
        per_page = [run["render_ms_per_page"] for run in rounds if run["render_ms_per_page"]]
        medians[name]["render_ms_per_page"] = statistics.median(per_page) if per_page else None
    plain = medians["plain"]
    for figures in medians.values():
        figures["speed_vs_plain"] = figures["pages_per_s"] / plain["pages_per_s"]
        figures["rss_vs_plain"] = figures["peak_rss_mb"] / plain["peak_rss_mb"]
    return medians


def print_table(medians: dict[str, dict[str, Any]], repeat: int) -> None:
    print(f"\nmedians of {repeat} interleaved round(s), whole process tree")
    header = ("variant", "pages/s", "vs plain", "CPU ms/page", "ms/render", "peak RSS", "vs plain")
    header += ("peak PSS",)
    print("{:<18} {:>8} {:>9} {:>11} {:>10} {:>10} {:>9} {:>9}".format(*header))
    for name, m in medians.items():
        per_render = f"{m['render_ms_per_page']:.0f}" if m["render_ms_per_page"] else "-"
        print(
            f"{name:<18} {m['pages_per_s']:>8.1f} {m['speed_vs_plain']:>8.3f}x "
            f"{m['cpu_ms_per_page']:>11.0f} {per_render:>10} "
            f"{m['peak_rss_mb']:>7.0f} MB {m['rss_vs_plain']:>8.2f}x {m['peak_pss_mb']:>6.0f} MB"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds [3]")
    parser.add_argument("--pages", type=int, nargs="+", default=[2, 4, 8, 16], help="browser_pages")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per crawl [300]")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {}
    with demo_site() as url, tempfile.TemporaryDirectory() as scratch:
        for round_number in range(args.repeat):
            for variant in variants(args.pages):
                result = crawl_once(variant, url, Path(scratch), args.timeout)
                runs.setdefault(variant.name, []).append(result)
                status = "ok" if result["ok"] else f"FAILED ({result['items']} items)"
                print(f"round {round_number + 1} {variant.name:<18} {result['pages_per_s']:6.1f} pages/s "
                      f"{result['peak_rss_mb']:6.0f} MB {status}", flush=True)  # fmt: skip
    medians = summarise(runs)
    print_table(medians, args.repeat)
    RESULTS.mkdir(exist_ok=True)
    save_report("render", {"repeat": args.repeat, "medians": medians, "runs": runs})
    return 0 if all(run["ok"] for rounds in runs.values() for run in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
