"""Benchmark our crawler against Scrapy on the same generated site, side by side.

    python bench/run.py [--pages 5000] [--only ours|scrapy] [--parse-workers N] [--repeat K]

For each run: a fresh site server in its own process, then the crawler as a
subprocess, measured over its whole process tree (see ``bench/measure.py``). Prints a
table and the ours/scrapy ratios, and writes everything to ``bench/results/latest.json``.
A run whose output or hit log looks wrong (missing or duplicate pages, a
``/private/`` request, a crash) gets a loud warning.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import importlib.metadata
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

if __package__ in (None, ""):  # run as a script: import the package, not bench/site.py as "site"
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.fields import FIELD_NAMES, URL_ENV
from bench.measure import MB, RESULTS, Measurement, run_measured, save_report
from bench.site import DEFAULT_PAGES, page_path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CRAWLERS = ("ours", "scrapy")
CONCURRENCY = 64
STDERR_TAIL = 25  # lines shown when a crawler fails


@dataclass(frozen=True, slots=True)
class Options:
    pages: int
    crawlers: tuple[str, ...]
    parse_workers: int | None
    repeat: int
    timeout: float


@dataclass(frozen=True, slots=True)
class Server:
    process: subprocess.Popen[bytes]
    url: str
    ready: dict[str, Any]
    summary_path: Path
    cpu_at_ready: float

    def stop(self) -> dict[str, Any]:
        """Stop the server; return its hit summary and the CPU it used since it was ready."""
        cpu = _cpu_s(self.process.pid) - self.cpu_at_ready
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        summary = json.loads(self.summary_path.read_text(encoding="utf-8"))
        return {**summary, "cpu_s": round(cpu, 2)}


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def main(argv: list[str] | None = None) -> int:
    options = _parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    compile_crawler()
    started = time.time()
    runs = [_run_one(name, rep, options) for rep in range(options.repeat) for name in _order(options, rep)]
    report = _report(options, runs, started)
    _print_report(report)
    save_report("latest", report)
    return 1 if any(run["problems"] for run in runs) else 0


def _parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=DEFAULT_PAGES, help="Site size [%(default)s].")
    parser.add_argument("--only", choices=CRAWLERS, help="Run one crawler only.")
    parser.add_argument("--parse-workers", type=int, help="Our --parse-workers [its default].")
    parser.add_argument("--repeat", type=int, default=1, help="Runs per crawler, interleaved [1].")
    parser.add_argument("--timeout", type=float, default=900, help="Seconds before a run is killed [900].")
    args = parser.parse_args(argv)
    crawlers = (args.only,) if args.only else CRAWLERS
    return Options(args.pages, crawlers, args.parse_workers, args.repeat, args.timeout)


def _order(options: Options, rep: int) -> tuple[str, ...]:
    """Alternate which crawler goes first, so drift in machine load favours neither."""
    return options.crawlers if rep % 2 == 0 else options.crawlers[::-1]


# --- one run ---------------------------------------------------------------------------


def _run_one(name: str, rep: int, options: Options) -> dict[str, Any]:
    stem = RESULTS / f"{name}-{rep}"
    output, stats_path = stem.with_suffix(".jsonl"), stem.with_suffix(".stats.json")
    server = _start_server(options.pages, stem.with_suffix(".hits.json"))
    load_before = os.getloadavg()
    print(f"[{name} #{rep}] crawling {server.url} ({options.pages} pages) ...", flush=True)
    try:
        command = _command(name, output, stats_path, options)
        with stem.with_suffix(".stdout").open("wb") as out, stem.with_suffix(".stderr").open("wb") as err:
            env = _crawler_env(server.url)
            measurement = run_measured(
                command, env=env, cwd=ROOT, stdout=out, stderr=err, timeout=options.timeout
            )
    finally:
        hits = server.stop()
    output_check = _check_output(output, options.pages)
    run = _describe_run(name, rep, command=command, measurement=measurement, output=output_check, hits=hits)
    run["load_average_before"] = load_before
    run["crawler_stats"] = _read_json(stats_path) if name == "ours" else None
    run["problems"] = _problems(run, server.ready, stem.with_suffix(".stderr"))
    _warn(run)
    return run


def _start_server(pages: int, summary_path: Path) -> Server:
    command = [sys.executable, "-m", "bench.serve", "--pages", str(pages), "--summary", str(summary_path)]
    process = subprocess.Popen(command, cwd=ROOT, env=_python_env(), stdout=subprocess.PIPE)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"the site server exited with {process.wait()} before it was ready")
    ready = json.loads(line)
    return Server(process, ready["url"], ready, summary_path, _cpu_s(process.pid))


def compile_crawler() -> None:
    """Our bytecode, cached before the first run (as ``pip install`` caches it)."""
    compileall.compile_dir(ROOT / "crawler", quiet=1)


def _python_env() -> dict[str, str]:
    """Our environment, with the repository root importable (for ``bench.*``), and
    bytecode cached as an installed package has it: with ``PYTHONDONTWRITEBYTECODE``
    set, every run of ours would compile the crawler from source while Scrapy's
    installed bytecode is ready."""
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _crawler_env(url: str) -> dict[str, str]:
    return {**_python_env(), URL_ENV: url}


def _command(name: str, output: Path, stats_path: Path, options: Options) -> list[str]:
    spiders = ("bench_spider.py", "scrapy_spider.py")
    return crawler_command(name, spiders, output, stats_path, options.parse_workers)


def crawler_command(
    name: str, spiders: tuple[str, str], output: Path, stats_path: Path, parse_workers: int | None
) -> list[str]:
    """The command line of one run: ``name`` is ``scrapy`` or ours; ``spiders`` are
    the two spider files in ``bench/`` (ours, Scrapy's)."""
    if name == "scrapy":
        spider = BENCH / spiders[1]
        return [sys.executable, "-m", "scrapy", "runspider", str(spider), "-O", str(output)]
    crawl = Path(sys.executable).parent / "crawl"
    command = [str(crawl), str(BENCH / spiders[0]), "-O", str(output)]
    command += ["--concurrency", str(CONCURRENCY), "--per-host", str(CONCURRENCY)]
    command += ["--stats", str(stats_path), "--no-progress", "--log-level", "WARNING"]
    if parse_workers is not None:
        command += ["--parse-workers", str(parse_workers)]
    return command


def _describe_run(
    name: str,
    rep: int,
    *,
    command: list[str],
    measurement: Measurement,
    output: dict[str, Any],
    hits: dict[str, Any],
) -> dict[str, Any]:
    pages = output["items"]
    wall = measurement.wall_s
    return {
        "crawler": name,
        "rep": rep,
        "command": command,
        **asdict(measurement),
        "pages": pages,
        "pages_per_s": pages / wall if wall else 0.0,
        "cpu_ms_per_page": 1000 * measurement.cpu_s / pages if pages else None,
        "peak_rss_mb": measurement.peak_rss / MB,
        "peak_pss_mb": measurement.peak_pss / MB,
        "output": output,
        "server": hits,
    }


# --- checks ----------------------------------------------------------------------------


def _check_output(path: Path, pages: int) -> dict[str, Any]:
    """Count the items and compare the pages they came from with the site's pages."""
    items = _read_items(path)
    counts = Counter(item["url"] for item in items)
    expected = {page_path(index) for index in range(pages)}
    canonical = json.dumps(sorted(items, key=lambda item: item["url"]), sort_keys=True)
    return {
        "items": len(items),
        "distinct_pages": len(counts),
        "missing_pages": len(expected - counts.keys()),
        "unexpected_pages": len(counts.keys() - expected),
        "incomplete_items": sum(not all(item.get(name) for name in FIELD_NAMES) for item in items),
        "items_digest": hashlib.sha256(canonical.encode()).hexdigest()[:16],
    }


def _read_items(path: Path) -> list[dict[str, Any]]:
    """The items in a JSON Lines file, their ``url`` cut to its path (the server's port varies)."""
    if not path.exists():
        return []
    with path.open("rb") as lines:
        items = [json.loads(line) for line in lines if line.strip()]
    return [{**item, "url": urlsplit(item.get("url", "")).path} for item in items]


def _problems(run: dict[str, Any], ready: dict[str, Any], stderr: Path) -> list[str]:
    output, hits = run["output"], run["server"]
    checks = [
        (run["timed_out"], "killed after the timeout"),
        (run["returncode"] != 0, f"exit code {run['returncode']}"),
        (run["pages"] != ready["reachable"], f"{run['pages']} items, expected {ready['reachable']}"),
        (output["items"] != output["distinct_pages"], "some pages yielded more than one item"),
        (output["missing_pages"], f"{output['missing_pages']} pages missing from the output"),
        (output["incomplete_items"], f"{output['incomplete_items']} items with empty fields"),
        (hits["private_hits"], f"{hits['private_hits']} requests for /private/ (robots.txt ignored)"),
        (hits["not_found_hits"], f"{hits['not_found_hits']} requests for unknown paths"),
        (hits["repeated_hits"], f"{hits['repeated_hits']} repeated requests (dedup failed?)"),
    ]
    problems = [message for failed, message in checks if failed]
    if run["returncode"] != 0 or run["timed_out"]:
        problems.append("stderr tail:\n" + _tail(stderr))
    return problems


def _tail(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-STDERR_TAIL:])


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _warn(run: dict[str, Any]) -> None:
    if not run["problems"]:
        return
    bar = "!" * 78
    print(f"{bar}\n!!! WARNING: {run['crawler']} run #{run['rep']} looks wrong:", file=sys.stderr)
    for problem in run["problems"]:
        print(f"!!!   {problem}", file=sys.stderr)
    print(bar, file=sys.stderr, flush=True)


# --- report ----------------------------------------------------------------------------

METRICS = ("wall_s", "pages_per_s", "cpu_s", "cpu_ms_per_page", "peak_rss_mb", "peak_pss_mb")
RATIOS = {
    "pages_per_s": "pages/s (higher is better)",
    "cpu_ms_per_page": "CPU per page (lower is better)",
    "peak_rss_mb": "peak RSS (lower is better)",
    "peak_pss_mb": "peak PSS (lower is better)",
}


def _report(options: Options, runs: list[dict[str, Any]], started: float) -> dict[str, Any]:
    medians = {name: _medians([run for run in runs if run["crawler"] == name]) for name in options.crawlers}
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "options": asdict(options),
        "machine": _machine(),
        "runs": runs,
        "medians": medians,
        "ratios_ours_over_scrapy": _ratios(medians),
        "same_items": len({run["output"]["items_digest"] for run in runs}) == 1,
    }


def _medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {metric: statistics.median(run[metric] or 0.0 for run in runs) for metric in METRICS}


def _ratios(medians: dict[str, dict[str, float]]) -> dict[str, float]:
    if set(medians) != set(CRAWLERS):
        return {}
    ours, scrapy = medians["ours"], medians["scrapy"]
    return {metric: ours[metric] / scrapy[metric] for metric in RATIOS if scrapy[metric]}


def _machine() -> dict[str, Any]:
    versions = {package: importlib.metadata.version(package) for package in ("crawler", "scrapy", "psutil")}
    return {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": sys.version.split()[0],
        **versions,
    }


def _print_report(report: dict[str, Any]) -> None:
    _print_runs(report["runs"])
    for metric, label in RATIOS.items():
        if metric in report["ratios_ours_over_scrapy"]:
            print(f"ours/scrapy {label:<32} {report['ratios_ours_over_scrapy'][metric]:8.2f}")
    if not report["same_items"]:
        print("!!! WARNING: the runs did not all extract the same items (see items_digest)", file=sys.stderr)


def _print_runs(runs: list[dict[str, Any]]) -> None:
    header = f"{'crawler':<8}{'run':>4}{'pages':>7}{'wall s':>9}{'pages/s':>9}{'CPU s':>8}"
    header += f"{'CPU ms/pg':>10}{'RSS MB':>8}{'PSS MB':>8}{'procs':>6}{'srv CPU':>8}  ok"
    print(f"\n{header}\n{'-' * len(header)}")
    for run in runs:
        print(_row(run))


def _row(run: dict[str, Any]) -> str:
    per_page = run["cpu_ms_per_page"] or 0.0
    ok = "yes" if not run["problems"] else "NO"
    row = (
        f"{run['crawler']:<8}{run['rep']:>4}{run['pages']:>7}{run['wall_s']:>9.2f}{run['pages_per_s']:>9.1f}"
    )
    row += f"{run['cpu_s']:>8.2f}{per_page:>10.2f}{run['peak_rss_mb']:>8.0f}{run['peak_pss_mb']:>8.0f}"
    return row + f"{run['max_processes']:>6}{run['server']['cpu_s']:>8.2f}  {ok}"


if __name__ == "__main__":
    sys.exit(main())
