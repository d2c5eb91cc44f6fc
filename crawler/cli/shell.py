"""``crawl shell URL [SPIDER.py]``: try selectors on a live page.

Opens an interactive Python shell (IPython when it is installed, the standard one
otherwise) with the page fetched as a crawl would fetch it::

    response            the current `Response` (``response.css("h1")``, ``.json()``)
    fetch(url)          fetch another page (or a `Request`), make it ``response``
    css(selector)       ``response.css(selector)``; ``css_first`` likewise
    text(selector)      the stripped text of the first match, or None
    spider, run(name)   with SPIDER.py: the spider, and its callback ``name`` run
                        on ``response`` (a `crawler.testing.CallbackOutput`)

``-c CODE`` runs CODE in that namespace instead, prints the value of an
expression, and exits (1 if it raised): for scripts and quick checks.
"""

from __future__ import annotations

import asyncio
import code
import contextlib
import importlib
import pprint
import sys
import traceback
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from .._request import Request
from .._response import Response
from .._settings import Settings
from .._spider import Spider, bind_fetch
from .._urls import hostname
from ..fetch import SingleFetcher, single_fetcher
from ..parse import ParseResult
from ..testing import CallbackOutput
from .logs import configure_logging, exit_quietly_on_a_closed_pipe
from .options import (
    EXIT_INTERRUPTED,
    LogFormat,
    QuietLogLevel,
    SpiderArgs,
    SpiderName,
    run_command,
    setting_options,
)
from .parse import FETCH_SETTINGS, checked_url, fetch_settings, load_with_settings, run_on, scope_for

PROG = "crawl shell"


class ShellSession:
    """The shell's namespace and the event loop its fetches run on. Every URL typed
    into ``fetch`` is one the user named, so the address guard lets its host
    through; redirects elsewhere are guarded as in a crawl. The fetchers stay open
    for the whole session (one per named host, one per spider scope), so robots.txt
    is fetched once per origin and repeated fetches keep the host's pace."""

    def __init__(self, settings: Settings, spider: Spider | None) -> None:
        self.settings = settings
        self.spider = spider
        self.loop = asyncio.new_event_loop()
        self._open = contextlib.AsyncExitStack()
        self._fetchers: dict[tuple[tuple[str, ...], tuple[str, ...] | None], SingleFetcher] = {}
        self.namespace: dict[str, Any] = {
            "fetch": self.fetch,
            "css": self.css,
            "css_first": self.css_first,
            "text": self.text,
            "Request": Request,
            "spider": spider,
        }
        if spider is not None:
            self.namespace["run"] = self.run

    @property
    def response(self) -> Response:
        response: Response = self.namespace["response"]
        return response

    def fetch(self, target: str | Request, **fields: Any) -> Response:
        """Fetch ``target`` (checked as in a crawl); it becomes ``response``."""
        response = self.loop.run_until_complete(self._fetch(target, fields))
        self.namespace["response"] = response
        return response

    async def _fetch(self, target: str | Request, fields: dict[str, Any]) -> Response:
        url = target.url if isinstance(target, Request) else target
        direct = await self._fetcher((hostname(url),), None)
        return await direct.fetch(target, **fields)

    async def _fetcher(self, named: tuple[str, ...], scope: tuple[str, ...] | None) -> SingleFetcher:
        """The session's fetcher for these named hosts and this scope, opened once."""
        key = (named, scope)
        if key not in self._fetchers:
            fetcher = single_fetcher(self.settings, named, scope)
            self._fetchers[key] = await self._open.enter_async_context(fetcher)
        return self._fetchers[key]

    def css(self, selector: str) -> list[Any]:
        """``response.css(selector)`` of the current response."""
        return self.response.css(selector)

    def css_first(self, selector: str) -> Any:
        """``response.css_first(selector)`` of the current response."""
        return self.response.css_first(selector)

    def text(self, selector: str) -> str | None:
        """The stripped text of the first element matching ``selector``, or None."""
        node = self.response.css_first(selector)
        return node.text(strip=True) if node is not None else None

    def run(self, callback: str = "parse") -> CallbackOutput:
        """Run the spider's ``callback`` on ``response``, vetted as a crawl would
        vet it; ``await self.fetch(...)`` in it fetches for real."""
        response = self.response
        response = response.replace(request=replace(response.request, callback=callback))
        result = self.loop.run_until_complete(self._run(response))
        for error in result.errors:
            print(f"callback {callback} failed:\n{error}", file=sys.stderr)
        return CallbackOutput(result.items, result.requests, result.errors, result.dropped())

    async def _run(self, response: Response) -> ParseResult:
        assert self.spider is not None
        scope = scope_for(self.spider, self.settings, response.url)
        direct = await self._fetcher(scope, scope)
        bind_fetch(self.spider, direct.fetch)
        return await run_on(self.spider, self.settings, scope, response)

    def close(self) -> None:
        """Close the fetchers; a fetch that Ctrl-C interrupted is cancelled first."""
        try:
            if pending := asyncio.all_tasks(self.loop):
                for task in pending:
                    task.cancel()
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self._open.aclose())
        finally:
            self.loop.close()


@setting_options(*FETCH_SETTINGS)
def shell_command(  # noqa: PLR0917  (typer maps parameters to options)
    url: Annotated[str, typer.Argument(metavar="URL", help="The page to fetch.")],
    spider_file: Annotated[
        Path | None, typer.Argument(metavar="SPIDER.py", help="A spider to try callbacks of.")
    ] = None,
    code: Annotated[
        str | None, typer.Option("-c", metavar="CODE", help="Run CODE, print its value, and exit.")
    ] = None,
    no_ipython: Annotated[
        bool, typer.Option("--no-ipython", help="The standard Python shell, even with IPython.")
    ] = False,
    log_level: QuietLogLevel = "ERROR",
    log_format: LogFormat = "text",
    spider_arg: SpiderArgs = None,
    spider_name: SpiderName = None,
    *,
    settings: dict[str, Any],
) -> int:
    """Fetch a page and explore it in Python. Flags beat the spider's own settings."""
    configure_logging(log_level, log_format)
    session = _open_session(url, spider_file, spider_name, spider_arg or [], settings)
    try:
        if code is not None:
            return run_code(code, session.namespace)
        interact(session.namespace, use_ipython=not no_ipython)
        return 0
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return exit_quietly_on_a_closed_pipe()
    finally:
        session.close()


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(shell_command, sys.argv[1:] if argv is None else argv, PROG)


def _open_session(
    url: str, spider_file: Path | None, spider_name: str | None, spider_args: list[str], flags: dict[str, Any]
) -> ShellSession:
    spider: Spider | None = None
    if spider_file is None:
        settings = fetch_settings(Spider, flags)
    else:
        spider, settings = load_with_settings(spider_file, spider_name, spider_args, flags)
    session = ShellSession(settings, spider)
    try:
        session.fetch(checked_url(url))
    except BaseException:
        session.close()
        raise
    return session


def run_code(source: str, namespace: dict[str, Any]) -> int:
    """Evaluate an expression and print its value, or execute statements. A syntax
    error is shown once, as Python shows it; an error the code raises is shown with
    the code's own frames, not the shell's."""
    try:
        compiled, is_expression = _compile(source)
    except SyntaxError as exc:
        sys.stderr.write("".join(traceback.format_exception_only(exc)))
        return 1
    try:
        value = eval(compiled, namespace)
    except Exception as exc:
        traceback.print_exception(
            exc.with_traceback(exc.__traceback__.tb_next if exc.__traceback__ else None)
        )
        return 1
    if is_expression and value is not None:
        pprint.pprint(value, width=100, sort_dicts=False)
    return 0


def _compile(source: str) -> tuple[Any, bool]:
    """``source`` compiled as an expression if it is one, as statements otherwise."""
    try:
        return compile(source, "<crawl shell -c>", "eval"), True
    except SyntaxError:
        pass
    return compile(source, "<crawl shell -c>", "exec"), False


def interact(namespace: dict[str, Any], *, use_ipython: bool) -> None:
    banner = f"crawl shell: {namespace['response']!r}\n" + (__doc__ or "").split("::")[1].split("``-c")[0]
    if use_ipython:
        with contextlib.suppress(ImportError):
            ipython = importlib.import_module("IPython")
            print(banner)
            ipython.start_ipython(argv=["--no-banner"], user_ns=namespace)
            return
    code.interact(banner=banner, local=namespace, exitmsg="")
