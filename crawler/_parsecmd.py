"""``crawl parse URL SPIDER.py [--callback NAME]``: one page through one callback.

The page is fetched as a crawl would fetch it (robots.txt, scope, address guard,
redirects, retries), the callback runs in this process, and what it yields is
printed: the items as JSON, then the follow-up requests a crawl would queue, then
what was dropped and why. A callback error is shown with its full traceback and
makes the exit code 1. ``--json`` prints one JSON object instead, for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._callbacks import (
    CallbackRunner,
    LinkRules,
    ParseResult,
    ParseTask,
    is_async_callback,
    vet_url,
)
from ._direct import standalone_fetcher
from ._errors import CrawlerError, UsageError
from ._itemjson import encode_items
from ._logs import LOG_FORMATS, LOG_LEVELS, configure_logging, exit_quietly_on_a_closed_pipe, print_error
from ._request import Request
from ._response import Response
from ._settings import Settings, resolve_settings
from ._spider import Spider, bind_fetch, load_spider, parse_spider_args
from ._spiderargs import check_allowed_domains, spider_kwargs
from ._urls import default_allowed_domains

PROG = "crawl parse"
EXIT_INTERRUPTED = 130


def add_fetch_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``crawl parse`` and ``crawl shell``: which spider, and how to fetch."""
    parser.add_argument("--spider", dest="spider_name", help="which spider, if the file has several")
    parser.add_argument(
        "-a",
        dest="spider_args",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a spider attribute",
    )
    parser.add_argument(
        "--obey-robots",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="obey robots.txt [on, or the spider's setting]",
    )
    parser.add_argument("--user-agent", help="User-Agent header [crawler/VERSION]")
    parser.add_argument("--timeout", type=float, help="deadline per fetch attempt in seconds [30]")
    parser.add_argument("--cache", metavar="DIR", help="HTTP cache directory (see crawl --help)")
    parser.add_argument(
        "--render",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="render pages in a browser (needs crawler[browser]) [off, or the spider's setting]",
    )
    parser.add_argument("--wait-for", metavar="WHEN", help="when a rendered page settled (see crawl --help)")
    parser.add_argument(  # a failed fetch is reported as an error with its cause: no warnings first
        "--log-level", default="ERROR", choices=LOG_LEVELS, type=str.upper, help="[ERROR]"
    )
    parser.add_argument("--log-format", default="text", choices=LOG_FORMATS)


def fetch_settings(spider_cls: type[Spider] | type[Any], args: argparse.Namespace) -> Settings:
    """The spider's settings with the command line's overrides; callbacks run here."""
    overrides = {
        "obey_robots": args.obey_robots,
        "user_agent": args.user_agent,
        "timeout": args.timeout,
        "cache": args.cache,
        "render": args.render,
        "wait_for": args.wait_for,
        "parse_workers": 0,
    }
    settings = resolve_settings(spider_cls, overrides)
    check_allowed_domains(settings.allowed_domains)
    return settings


def checked_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL; a `UsageError` otherwise."""
    verdict, _ = vet_url(url, LinkRules((), None, max_url_length=1 << 16))
    if verdict is not None:
        raise UsageError(f"{url!r} is not an http(s) URL ({verdict.replace('_', ' ')})")
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


def dropped_counts(result: ParseResult) -> dict[str, int]:
    return {
        k.removeprefix("dropped/"): n for k, n in sorted(result.counts.items()) if k.startswith("dropped/")
    }


async def parse_page(spider: Spider, settings: Settings, url: str, callback: str) -> ParseReport:
    """Fetch ``url`` through the crawl's gates and run ``callback`` on it."""
    scope = scope_for(spider, settings, url)
    async with standalone_fetcher(settings, scope, scope) as direct:
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
    rules = LinkRules(scope, settings.depth, settings.max_url_length, False, settings.strip_session_ids)
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Fetch one URL, run one spider callback on it, print what it yields."
    )
    parser.add_argument("url", metavar="URL")
    parser.add_argument("spider_file", metavar="SPIDER.py")
    parser.add_argument("--callback", "-c", default="parse", help="callback method name [parse]")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_fetch_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit code: 0 the callback ran cleanly; 1 it failed, or the page could not be
    fetched or was not handed to it; 2 a usage error."""
    args = _parser().parse_args(argv)
    try:
        configure_logging(args.log_level, args.log_format)
        report = asyncio.run(_parse_from_args(args))
    except CrawlerError as exc:
        print_error(PROG, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    try:
        _print(report, as_json=args.json)
    except BrokenPipeError:
        return exit_quietly_on_a_closed_pipe()
    for error in report.result.errors:
        print_error(PROG, f"callback {report.callback} failed:\n{error}")
    return 1 if report.result.errors or report.skipped else 0


def _print(report: ParseReport, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(_json(report.to_dict()) + "\n")
    else:
        print_report(report, sys.stdout)
    sys.stdout.flush()


async def _parse_from_args(args: argparse.Namespace) -> ParseReport:
    spider_cls = load_spider(args.spider_file, args.spider_name)
    settings = fetch_settings(spider_cls, args)
    spider = spider_cls(**spider_kwargs(parse_spider_args(args.spider_args)))
    if not callable(getattr(spider, args.callback, None)):
        raise UsageError(f"spider {spider_cls.__name__} has no callback {args.callback!r}")
    return await parse_page(spider, settings, checked_url(args.url), args.callback)
