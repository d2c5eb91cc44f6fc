"""The ``crawl`` command: ``crawl SPIDER.py -o items.jsonl`` and its subcommands.

Exit codes: 0 the crawl finished (failed pages are counted, not fatal); 1 a fatal
error; 2 a usage error; 130 interrupted by Ctrl-C. Bad input gets one line on
stderr, never a traceback (unless ``--log-level DEBUG``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from ._api import build_engine
from ._backends import refuse_overwriting_a_job
from ._engine import Engine
from ._errors import CrawlerError, OutputError, UsageError
from ._formats import open_sink
from ._logs import configure_logging
from ._output import ItemSink, NullSink
from ._settings import SETTING_NAMES
from ._spider import Spider, load_spider, parse_spider_args
from ._stats import Stats

log = logging.getLogger("crawler")

EXIT_INTERRUPTED = 130


@dataclass
class Invocation:
    """Everything one ``crawl`` command line asks for."""

    spider_cls: type[Spider]
    sink: ItemSink
    settings: dict[str, Any]
    spider_args: dict[str, str] = field(default_factory=dict)
    stats_path: Path | None = None
    progress: bool = True
    json_logs: bool = False


def crawl_command(  # noqa: PLR0917  (typer maps parameters to options)
    spider_file: Annotated[
        Path, typer.Argument(metavar="SPIDER.py", help="Python file with a Spider subclass.")
    ],
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="Append items as JSON Lines ('-': stdout).")
    ] = None,
    overwrite_output: Annotated[
        str | None, typer.Option("-O", "--overwrite-output", help="Write items, replacing the file.")
    ] = None,
    spider_arg: Annotated[
        list[str] | None, typer.Option("-a", help="Set a spider attribute: NAME=VALUE.")
    ] = None,
    spider_name: Annotated[
        str | None, typer.Option("--spider", help="Which spider, if the file has several.")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight in total [64].")] = None,
    per_host: Annotated[int | None, typer.Option(help="Requests in flight per host [8].")] = None,
    rate: Annotated[float | None, typer.Option(help="Requests per second per host [no cap].")] = None,
    depth: Annotated[int | None, typer.Option(help="Maximum link depth from a start URL.")] = None,
    max_pages: Annotated[int | None, typer.Option(help="Stop after this many pages.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Deadline per fetch attempt in seconds [30].")] = None,
    retries: Annotated[int | None, typer.Option(help="Retries of a failed fetch [2].")] = None,
    parse_workers: Annotated[
        int | None, typer.Option(help="Parse processes; 0 parses in-process [CPUs - 1].")
    ] = None,
    obey_robots: Annotated[
        bool | None, typer.Option("--obey-robots/--no-obey-robots", help="Obey robots.txt [on].")
    ] = None,
    user_agent: Annotated[str | None, typer.Option(help="User-Agent header [crawler/VERSION].")] = None,
    allowed_domains: Annotated[
        list[str] | None, typer.Option(help="Domain in scope (repeat it) [hosts of the start URLs].")
    ] = None,
    max_size: Annotated[int | None, typer.Option(help="Largest decoded body in bytes [32 MiB].")] = None,
    max_redirects: Annotated[int | None, typer.Option(help="Redirect hops per request [20].")] = None,
    max_url_length: Annotated[int | None, typer.Option(help="Longest URL followed [2083].")] = None,
    allow_private: Annotated[
        bool | None,
        typer.Option(
            "--allow-private/--no-allow-private", help="Fetch private and loopback addresses [off]."
        ),
    ] = None,
    max_pages_per_host: Annotated[int | None, typer.Option(help="Stop a host after this many pages.")] = None,
    strip_session_ids: Annotated[
        bool | None,
        typer.Option(
            "--strip-session-ids/--keep-session-ids", help="Drop session-id query parameters [off]."
        ),
    ] = None,
    max_crawl_delay: Annotated[
        float | None, typer.Option(help="Cap on robots.txt Crawl-delay in s [30].")
    ] = None,
    parse_timeout: Annotated[
        float | None, typer.Option(help="Seconds one page may take in a parse worker [30].")
    ] = None,
    autothrottle: Annotated[
        bool | None,
        typer.Option("--autothrottle/--no-autothrottle", help="Adapt per-host concurrency to latency [on]."),
    ] = None,
    politeness_key: Annotated[
        str | None, typer.Option(metavar="host|ip", help="Rate per host:port, or per resolved IP [host].")
    ] = None,
    job: Annotated[Path | None, typer.Option(help="Keep crawl state in DIR to resume later.")] = None,
    frontier: Annotated[str | None, typer.Option(help="Shared frontier URL (redis://HOST:PORT/DB).")] = None,
    cache: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Store responses in DIR and replay them on later runs [off]."),
    ] = None,
    cache_expiry: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="Refetch cached responses older than this; 0: never [0]."),
    ] = None,
    cache_ignore_status: Annotated[
        list[int] | None,
        typer.Option(metavar="CODE", help="Status never cached (repeat it) [408 429 500 502 503 504]."),
    ] = None,
    stats: Annotated[Path | None, typer.Option(help="Write the final statistics to this JSON file.")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    log_format: Annotated[str, typer.Option(help="text, or json: one JSON object per line.")] = "text",
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No live progress line.")] = False,
) -> None:
    """Crawl with the spider in SPIDER.py."""
    settings = {name: value for name, value in locals().items() if name in SETTING_NAMES}
    settings["job"] = str(job) if job is not None else None
    settings["cache"] = str(cache) if cache is not None else None
    settings["cache_ignore_status"] = tuple(cache_ignore_status) if cache_ignore_status else None
    debug = _setup_logging(log_level, log_format)
    try:
        refuse_overwriting_a_job(job, overwrite_output is not None)
        invocation = _prepare(
            spider_file,
            spider_name=spider_name,
            output=output,
            overwrite_output=overwrite_output,
            spider_args=spider_arg or [],
            settings=settings,
        )
        invocation.stats_path, invocation.progress = stats, not no_progress
        invocation.json_logs = log_format == "json"
        code = _execute(invocation)
    except CrawlerError as exc:
        _report(exc, debug)
        code = exc.exit_code
    raise typer.Exit(code)


def _setup_logging(level: str, log_format: str) -> bool:
    try:
        configure_logging(level, log_format)
    except UsageError as exc:
        typer.echo(f"crawl: error: {exc}", err=True)
        raise typer.Exit(2) from None
    return level.upper() == "DEBUG"


def _report(exc: BaseException, debug: bool) -> None:
    if debug:
        log.exception("fatal error")
    typer.echo(f"crawl: error: {exc}", err=True)


def _prepare(
    spider_file: Path,
    *,
    spider_name: str | None,
    output: str | None,
    overwrite_output: str | None,
    spider_args: list[str],
    settings: dict[str, Any],
) -> Invocation:
    if output is not None and overwrite_output is not None:
        raise UsageError("use -o (append) or -O (overwrite), not both")
    args = parse_spider_args(spider_args)
    spider_cls = load_spider(spider_file, spider_name)
    target = output if output is not None else overwrite_output
    sink: ItemSink = open_sink(target, overwrite=overwrite_output is not None) if target else NullSink()
    return Invocation(spider_cls, sink, {k: v for k, v in settings.items() if v is not None}, args)


def _execute(invocation: Invocation) -> int:
    stats_file = _open_stats_file(invocation.stats_path)
    from ._progress import Progress  # noqa: PLC0415  (rich loads only when there is a terminal to draw on)

    show_progress = invocation.progress and sys.stderr.isatty()
    progress = Progress() if show_progress else None
    engine = build_engine(
        invocation.spider_cls,
        invocation.sink,
        spider_args=invocation.spider_args,
        on_tick=progress.update if progress else None,
        **invocation.settings,
    )
    try:
        stats, interrupted = asyncio.run(run_with_signals(engine))
    finally:
        if progress:
            progress.close()
        _write_stats(stats_file, engine.stats)
    if invocation.json_logs:
        log.info("crawl %s", stats.finish_reason, extra={"stats": stats.to_dict()})
    else:
        Progress.print_summary(stats)
    return EXIT_INTERRUPTED if interrupted else 0


async def run_with_signals(engine: Engine) -> tuple[Stats, bool]:
    """Ctrl-C (or SIGTERM) stops cleanly; a second one gives up at once."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    signals_seen: list[int] = []

    def on_signal(signum: int) -> None:
        signals_seen.append(signum)
        if len(signals_seen) == 1:
            engine.stop()
        elif main is not None:
            main.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        stats = await engine.run()
    except asyncio.CancelledError:
        stats = engine.stats
    return stats, bool(signals_seen)


def _open_stats_file(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write stats to {path}: {exc.strerror or exc}") from None


def _write_stats(stats_file: Any, stats: Stats) -> None:
    if stats_file is not None:
        with stats_file:
            json.dump(stats.to_dict(), stats_file, indent=2)
            stats_file.write("\n")


def _make_app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    settings = {"help_option_names": ["-h", "--help"]}
    app.command(context_settings=settings, epilog=OTHER_COMMANDS)(crawl_command)
    return app


OTHER_COMMANDS = """Other commands (each has --help):

\b
  crawl new NAME [URL]             write a spider template that runs as written
  crawl shell URL [SPIDER.py]      explore a page in Python
  crawl parse URL SPIDER.py        run one callback on one page, print its output
  crawl bench                      pages/s and CPU per page on a local site
  crawl job DIR                    what a job holds, without running it
  crawl demo [--serve]             crawl (or serve) the demo shop
"""

SUBCOMMANDS: dict[str, str] = {
    "bench": "crawler._benchcmd",
    "demo": "crawler.demo.cli",
    "job": "crawler._jobinfo",
    "new": "crawler._newspider",
    "parse": "crawler._parsecmd",
    "shell": "crawler._shellcmd",
}


def main(argv: list[str] | None = None) -> None:
    """Console entry point. ``crawl demo ...`` and other subcommands dispatch by name;
    anything else is ``crawl SPIDER.py ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[argv[0]])
        code = module.main(argv[1:])  # an exit code, or None for 0
        if code:
            raise SystemExit(code)
        return
    _make_app()(argv, prog_name="crawl")
