"""``crawl parse URL SPIDER.py [--callback NAME]``: one page through one callback.

The page is fetched as a crawl would fetch it (robots.txt, scope, address guard,
redirects, retries), the callback runs in this process, and what it yields is
printed: the items as JSON, then the follow-up requests a crawl would queue, then
what was dropped and why. A callback error is shown with its full traceback and
makes the exit code 1. ``--json`` prints one JSON object instead, for scripts.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from .._counters import short
from .._errors import UsageError
from .._request import Request
from .._response import Response
from .._settings import Settings, resolve_settings
from .._spider import (
    Spider,
    bind_fetch,
    check_allowed_domains,
    load_spider,
    missing_callback,
    parse_spider_args,
    spider_kwargs,
)
from .._urls import default_allowed_domains, vet_url
from ..fetch import single_fetcher
from ..output import encode_items
from ..parse import CallbackRunner, LinkRules, ParseResult, ParseTask, is_async_callback
from .logs import configure_logging, exit_quietly_on_a_closed_pipe, print_error
from .options import (
    LogFormat,
    QuietLogLevel,
    SpiderArgs,
    SpiderFile,
    SpiderName,
    run_command,
    setting_options,
)

PROG = "crawl parse"


# The settings ``crawl parse`` and ``crawl shell`` take as flags: how to fetch.
FETCH_SETTINGS = ("obey_robots", "user_agent", "timeout", "cache", "render", "wait_for")


def fetch_settings(spider_cls: type[Spider] | type[Any], flags: dict[str, Any]) -> Settings:
    """The spider's settings with the command line's flags; callbacks run here."""
    settings = resolve_settings(spider_cls, {**flags, "parse_workers": 0})
    check_allowed_domains(settings.allowed_domains)
    return settings


def load_with_settings(
    spider_file: Path, spider_name: str | None, spider_args: list[str], flags: dict[str, Any]
) -> tuple[Spider, Settings]:
    """The spider of ``spider_file``, made with its ``-a`` arguments, and its settings."""
    spider_cls = load_spider(spider_file, spider_name)
    settings = fetch_settings(spider_cls, flags)
    return spider_cls(**spider_kwargs(parse_spider_args(spider_args))), settings


def checked_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL; a `UsageError` otherwise."""
    verdict, _ = vet_url(url, LinkRules((), None, max_url_length=1 << 16))
    if verdict is not None:
        raise UsageError(f"{url!r} is not an http(s) URL ({short(verdict).replace('_', ' ')})")
    return url


def scope_for(spider: Spider | None, settings: Settings, url: str) -> tuple[str, ...]:
    """What a crawl of ``spider`` would treat as on-site, and ``url``'s host."""
    if settings.allowed_domains:
        return settings.allowed_domains
    start_urls = list(getattr(spider, "start_urls", ()) or ())
    return default_allowed_domains([url, *start_urls])


@dataclass
class ParseReport:
    """What one callback made of one page."""

    response: Response
    callback: str
    result: ParseResult
    skipped: str | None = None  # why the callback was not called

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.response.url,
            "status": self.response.status,
            "redirects": list(self.response.redirect_urls),
            "callback": self.callback,
            "skipped": self.skipped,
            "items": self.result.items,
            "requests": [describe_request(r) for r in self.result.requests],
            "dropped": self.result.dropped(),
            "errors": self.result.errors,
        }


def describe_request(request: Request) -> dict[str, Any]:
    described: dict[str, Any] = {
        "url": request.url,
        "callback": request.callback or "parse",
        "method": request.method,
        "depth": request.depth,
    }
    if request.meta:
        described["meta"] = dict(request.meta)
    if request.priority:
        described["priority"] = request.priority
    return described


async def parse_page(spider: Spider, settings: Settings, url: str, callback: str) -> ParseReport:
    """Fetch ``url`` through the crawl's gates and run ``callback`` on it."""
    scope = scope_for(spider, settings, url)
    async with single_fetcher(settings, scope, scope) as direct:
        response = await direct.fetch(Request(url, callback=callback))
        bind_fetch(spider, direct.fetch)
        result = ParseResult()
        wanted = 200 <= response.status < 300 or response.status in spider.handle_httpstatus_list
        if not wanted:
            skipped = f"HTTP {response.status} is not in the spider's handle_httpstatus_list"
            return ParseReport(response, callback, result, skipped)
        return ParseReport(response, callback, await run_on(spider, settings, scope, response))


async def run_on(
    spider: Spider, settings: Settings, scope: tuple[str, ...], response: Response
) -> ParseResult:
    """Run the callback of ``response.request`` in this process, vetting what it
    yields as a crawl of ``scope`` would; items stay objects, and any that a crawl
    could not write as JSON is reported in ``errors``."""
    rules = LinkRules(scope, settings.depth, settings.max_url_length, None, settings.strip_session_ids)
    runner = CallbackRunner(spider, rules)
    request = response.request
    runner.mark_seen(request)
    task = ParseTask(request, response.url, response.status, response.headers, response.body)
    result = await runner.run_async(task) if is_async_callback(spider, request) else runner.run(task)
    result.errors.extend(encode_items(result.items)[1])
    return result


def print_report(report: ParseReport, out: Any) -> None:
    response = report.response
    chain = "".join(f"{url} -> " for url in response.redirect_urls)
    kind = response.headers.get("content-type", "no Content-Type")
    out.write(f"# {chain}{response.url}: HTTP {response.status}, {kind}, {len(response.body):,} bytes\n")
    if report.skipped:
        out.write(f"# callback {report.callback} not called: {report.skipped}\n")
        return
    items = report.result.items
    out.write(f"# callback {report.callback}: {len(items)} item(s)\n")
    out.write(_json(items) + "\n")
    requests = report.result.requests
    out.write(f"# {len(requests)} request(s) a crawl would queue\n")
    for request in requests:
        out.write(
            f"{request.method} {request.url} -> {request.callback or 'parse'} (depth {request.depth})\n"
        )
    dropped = report.result.dropped()
    if dropped:
        out.write("# dropped: " + ", ".join(f"{n} {reason}" for reason, n in dropped.items()) + "\n")


def _json(value: Any) -> str:
    import orjson  # noqa: PLC0415

    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(value, option=option, default=repr).decode()


@setting_options(*FETCH_SETTINGS)
def parse_command(  # noqa: PLR0917  (typer maps parameters to options)
    url: Annotated[str, typer.Argument(metavar="URL", help="The page to fetch.")],
    spider_file: SpiderFile,
    callback: Annotated[
        str, typer.Option("--callback", "-c", metavar="NAME", help="Callback method name.")
    ] = "parse",
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    spider_arg: SpiderArgs = None,
    spider_name: SpiderName = None,
    log_level: QuietLogLevel = "ERROR",
    log_format: LogFormat = "text",
    *,
    settings: dict[str, Any],
) -> int:
    """Fetch one URL, run one spider callback on it, print what it yields.

    Exit code: 0 the callback ran cleanly; 1 it failed, or the page could not be
    fetched or was not handed to it; 2 a usage error. Flags beat the spider's own
    settings."""
    configure_logging(log_level, log_format)
    spider, fetching = load_with_settings(spider_file, spider_name, spider_arg or [], settings)
    report = asyncio.run(_parse(spider, fetching, url, callback))
    try:
        _print(report, as_json=json)
    except BrokenPipeError:
        return exit_quietly_on_a_closed_pipe()
    for error in report.result.errors:
        print_error(PROG, f"callback {report.callback} failed:\n{error}")
    return 1 if report.result.errors or report.skipped else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(parse_command, sys.argv[1:] if argv is None else argv, PROG)


def _print(report: ParseReport, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(_json(report.to_dict()) + "\n")
    else:
        print_report(report, sys.stdout)
    sys.stdout.flush()


async def _parse(spider: Spider, settings: Settings, url: str, callback: str) -> ParseReport:
    if (missing := missing_callback(spider, callback)) is not None:
        raise UsageError(missing)
    return await parse_page(spider, settings, checked_url(url), callback)
