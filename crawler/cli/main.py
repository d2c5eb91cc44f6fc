"""The ``crawl`` command: ``crawl SPIDER.py -o items.jsonl`` and its subcommands.

Exit codes: 0 the crawl finished (failed pages are counted, not fatal); 1 a fatal
error; 2 a usage error; 130 interrupted by Ctrl-C. Bad input gets one line on
stderr, never a traceback (unless ``--log-level DEBUG``).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from .._api import build_engine
from .._engine import Engine
from .._errors import CrawlerError, OutputError, UsageError
from .._settings import SETTING_FIELDS, command_line_settings, logging_settings, spider_settings
from .._spider import Spider, load_spider, parse_spider_args
from .._stats import Stats
from .._version import __version__
from ..frontier import refuse_overwriting_a_job
from ..output import (
    ClosedPipe,
    ItemSink,
    NullSink,
    PipelineError,
    check_output_name,
    check_stats_target,
    count_dropped_fields,
    open_sink,
    write_stats,
)
from .logs import configure_logging, exit_quietly_on_a_closed_pipe, print_error
from .options import (
    EXIT_INTERRUPTED,
    LogFormat,
    SpiderArgs,
    SpiderFile,
    SpiderName,
    log_level_option,
    run_command,
    setting_options,
)
from .summary import print_summary

if TYPE_CHECKING:
    from .progress import Progress

log = logging.getLogger("crawler")
T = TypeVar("T")


@dataclass
class Invocation:
    """Everything one ``crawl`` command line asks for."""

    spider_cls: type[Spider]
    sink: ItemSink
    settings: dict[str, Any]
    spider_args: dict[str, str] = field(default_factory=dict)
    stats_path: str | None = None
    progress: bool = True
    json_logs: bool = False


@setting_options(*(spec.name for spec in SETTING_FIELDS))
def crawl_command(  # noqa: PLR0917  (typer maps parameters to options)
    spider_file: SpiderFile,
    output: Annotated[
        list[str] | None,
        typer.Option(
            "-o", "--output", metavar="PATH", help="Append items: .jsonl, .jsonl.gz or .csv ('-': stdout)."
        ),
    ] = None,
    overwrite_output: Annotated[
        list[str] | None,
        typer.Option(
            "-O",
            "--overwrite-output",
            metavar="PATH",
            help="Write items, replacing the file once the crawl ends.",
        ),
    ] = None,
    spider_arg: SpiderArgs = None,
    spider_name: SpiderName = None,
    set_setting: Annotated[
        list[str] | None,
        typer.Option("-s", "--set", metavar="NAME=VALUE", help="A setting by our name or Scrapy's."),
    ] = None,
    stats: Annotated[
        str | None, typer.Option(metavar="PATH", help="Write the final statistics as JSON ('-': stdout).")
    ] = None,
    log_level: Annotated[str | None, log_level_option("INFO")] = None,
    logfile: Annotated[
        Path | None, typer.Option(metavar="PATH", help="Write the log to this file, not stderr.")
    ] = None,
    log_format: LogFormat = "text",
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No live progress line.")] = False,
    *,
    settings: dict[str, Any],
) -> int:
    """Crawl with the spider in SPIDER.py."""
    flags_logging = {"LOG_LEVEL": log_level, "LOG_FILE": str(logfile) if logfile else None}
    debug = _setup_logging(log_level or "INFO", None, log_format)
    try:
        target, overwrite = _output_target(output or [], overwrite_output or [])
        check_stats_target(stats, target)
        overrides, pairs_logging = command_line_settings(set_setting or [])
        debug = _setup_logging(*logging_settings(flags_logging, pairs_logging), log_format)
        invocation = _prepare(
            spider_file,
            spider_name=spider_name,
            target=target,
            overwrite=overwrite,
            spider_args=spider_arg or [],
            settings={**overrides, **settings},
        )
        spider_custom = getattr(invocation.spider_cls, "custom_settings", None) or {}
        debug = _setup_logging(*logging_settings(flags_logging, pairs_logging, spider_custom), log_format)
        invocation.stats_path, invocation.progress = stats, not no_progress
        invocation.json_logs = log_format == "json"
        code = _execute(invocation)
    except ClosedPipe:
        code = exit_quietly_on_a_closed_pipe()
    except CrawlerError as exc:
        _report(exc, debug)
        code = exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C before the crawl's own handler was in place
        code = EXIT_INTERRUPTED
    return code


def _setup_logging(level: str, logfile: str | None, log_format: str) -> bool:
    try:
        configure_logging(level, log_format)
    except UsageError as exc:
        print_error("crawl", str(exc))
        raise typer.Exit(2) from None
    if logfile is not None:
        _log_to_file(logfile)
    return level.upper() == "DEBUG"


def _log_to_file(path: str) -> None:
    """``--logfile PATH`` (Scrapy's ``LOG_FILE``): the log goes to the end of PATH."""
    try:
        stream = open(path, "a", encoding="utf-8")  # noqa: SIM115  (logging owns it until exit)
    except OSError as exc:
        raise OutputError(f"cannot write the log to {path}: {exc.strerror or exc}") from None
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)


def _report(exc: BaseException, debug: bool) -> None:
    if debug:
        log.exception("fatal error")
    print_error("crawl", str(exc))


def _output_target(append: list[str], overwrite: list[str]) -> tuple[str | None, bool]:
    """The one output of ``-o`` or ``-O``, and whether it replaces the file."""
    if append and overwrite:
        raise UsageError("use -o (append) or -O (overwrite), not both")
    targets = append or overwrite
    if len(targets) > 1:
        raise UsageError(f"one output per crawl, not {len(targets)}: {', '.join(targets)}")
    if targets:
        check_output_name(targets[0])  # before the spider file is even loaded
    return (targets[0] if targets else None), bool(overwrite)


def _prepare(
    spider_file: Path,
    *,
    spider_name: str | None,
    target: str | None,
    overwrite: bool,
    spider_args: list[str],
    settings: dict[str, Any],
) -> Invocation:
    args = parse_spider_args(spider_args)
    spider_cls = load_spider(spider_file, spider_name)
    job = settings.get("job") or spider_settings(spider_cls).get("job")
    refuse_overwriting_a_job(job, overwrite)
    sink: ItemSink = open_sink(target, overwrite=overwrite) if target else NullSink()
    return Invocation(spider_cls, sink, {k: v for k, v in settings.items() if v is not None}, args)


def _execute(invocation: Invocation) -> int:
    try:
        return _run(invocation)
    finally:
        invocation.sink.close()  # after a failed start-up: removes a temporary file, keeps the old one


def _run(invocation: Invocation) -> int:
    """Crawl; the summary and ``--stats`` are written even when the crawl fails."""
    progress = _progress() if invocation.progress and sys.stderr.isatty() else None
    engine = build_engine(
        invocation.spider_cls,
        invocation.sink,
        spider_args=invocation.spider_args,
        on_tick=progress.update if progress else None,
        **invocation.settings,
    )
    error: CrawlerError | None = None
    try:
        interrupted = run_on_our_loop(run_with_signals(engine))[1]
    except CrawlerError as exc:
        error, interrupted = exc, False
    finally:
        if progress:
            progress.close()
    if error is None or _got_going(error, engine.stats):
        _finish(invocation, engine.stats)
    if error is None and not interrupted:
        error = _nothing_answered(engine.stats)
    if error is not None:
        raise error
    return EXIT_INTERRUPTED if interrupted else 0


def _nothing_answered(stats: Stats) -> CrawlerError | None:
    """A crawl whose every request failed (a wrong host or port, a server that is off)
    failed, whatever it counted: exit code 1 (the engine kept an ``-O`` file)."""
    if not stats.nothing_answered:
        return None
    return CrawlerError(f"nothing answered: {stats.failed_this_run:,} request(s) failed (see above)")


def _got_going(error: CrawlerError, stats: Stats) -> bool:
    """Whether a failed crawl has something to sum up: it failed mid-way, or a
    pipeline's open() or close() failed; a failed start-up has not."""
    return stats.finish_reason == "failed" or isinstance(error, PipelineError)


def _finish(invocation: Invocation, stats: Stats) -> None:
    count_dropped_fields(invocation.sink, stats)
    write_stats(invocation.stats_path, stats)
    if invocation.json_logs:
        log.info("crawl %s", stats.finish_reason, extra={"stats": stats.to_dict()})
    else:
        print_summary(stats)


def _progress() -> Progress:
    from .progress import Progress  # noqa: PLC0415  (rich loads only when there is a terminal to draw on)

    return Progress()


def run_on_our_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the CLI's event loop."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (see pyproject.toml); asyncio's own loop elsewhere."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return None
    return uvloop.new_event_loop


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
    except asyncio.CancelledError:  # a second Ctrl-C, or one that came before ours was set
        return engine.stats, True
    return stats, bool(signals_seen)


OTHER_COMMANDS = """Other commands (each has --help):

\b
  crawl new NAME [URL]             write a spider template that runs as written
  crawl shell URL [SPIDER.py]      explore a page in Python
  crawl parse URL SPIDER.py        run one callback on one page, print its output
  crawl bench                      pages/s and CPU per page on a local site
  crawl job DIR                    what a job holds, without running it
  crawl demo [--serve]             crawl (or serve) the demo shop
  crawl runspider SPIDER.py ...    the same as crawl SPIDER.py ... (as in Scrapy)
  crawl version, crawl --version   print the version
"""

SUBCOMMANDS: dict[str, str] = {
    "bench": "crawler.cli.bench",
    "demo": "crawler.demo.cli",
    "job": "crawler.cli.job",
    "new": "crawler.cli.new",
    "parse": "crawler.cli.parse",
    "shell": "crawler.cli.shell",
}


def main(argv: list[str] | None = None) -> None:
    """Console entry point. ``crawl demo ...`` and other subcommands dispatch by name;
    anything else is ``crawl SPIDER.py ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["-V"], ["version"]):
        print(f"crawler {__version__}")
        return
    if argv[:1] == ["runspider"]:  # Scrapy's name for running a spider file
        argv = argv[1:]
    if argv and argv[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[argv[0]])
        code = module.main(argv[1:])  # an exit code, or None for 0
        if code:
            raise SystemExit(code)
        return
    code = run_command(crawl_command, argv, "crawl", epilog=OTHER_COMMANDS)
    if code:
        raise SystemExit(code)
