"""``crawl demo``: crawl the demo shop, or serve it.

``crawl demo [-o|-O PATH] [crawl options]`` starts the shop on a free port (in a
child process, so the crawl's numbers are its own), crawls it with
``crawler/demo/spider.py`` and stops it. ``crawl demo --serve [--port 8000]``
serves it in the foreground until Ctrl-C, for your own spiders.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ..cli import print_error, run_command, with_default
from ..demo import install_demo
from ..sites import SiteServer, child_server

SPIDER = Path(__file__).with_name("spider.py")


DEFAULT_PORT = 8000
PORTS_TRIED = 20  # without --port: 8000, or the first free one of the next 19

HELP = """usage: crawl demo [crawl options]
       crawl demo --serve [--host HOST] [--port PORT]

Crawl the demo shop that ships with crawler, or serve it for your own spiders.

  crawl demo [crawl options]  start the shop on a free port, crawl it with
                              crawler/demo/spider.py, stop it; takes every
                              option of `crawl SPIDER.py` (see crawl --help),
                              e.g. crawl demo -O items.jsonl
  --serve                     serve the shop until Ctrl-C instead (see
                              crawl demo --serve --help)
"""


def main(argv: Sequence[str] | None = None, prog: str = "crawl demo") -> int | None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--serve" in args:
        args.remove("--serve")
        return serve(args, prog)
    if "-h" in args or "--help" in args:
        print(HELP, end="")
        return 0
    from ..cli.main import main as crawl_main  # noqa: PLC0415  (the CLI imports this module)

    with demo_site() as url:
        crawl_main([str(SPIDER), "-a", f"base_url={url}", *args])
    return 0


def _port(port: int | None) -> int | None:
    if port is not None and not 0 <= port <= 65535:
        raise typer.BadParameter(f"{port} is not a port number (0 to 65535)")
    return port


Host = Annotated[str, typer.Option(metavar="HOST", help="The address to listen on.")]
Port = Annotated[
    int | None,
    typer.Option(
        metavar="PORT",
        callback=_port,
        help=with_default("0 picks any free port.", f"{DEFAULT_PORT}, or the next free one"),
    ),
]


def serve(argv: Sequence[str], prog: str) -> int:
    """Serve in the foreground until SIGINT or SIGTERM; 1 if it cannot listen."""

    def serve_demo(host: Host = "127.0.0.1", port: Port = None) -> int:
        """Serve the demo shop until Ctrl-C."""
        try:
            chosen = port if port is not None else _first_free_port(host)
            if port is None and chosen != DEFAULT_PORT:  # the tutorial's spiders name 8000
                print(f"port {DEFAULT_PORT} is busy: serving on {chosen}", file=sys.stderr, flush=True)
            server = SiteServer(host=host, port=chosen, record_hits=False)
            server.serve_forever(on_ready=_announce)
        except OSError as exc:
            print_error(prog, _cannot_listen(host, port, exc))
            return 1
        return 0

    return run_command(serve_demo, argv, f"{prog} --serve")


def _first_free_port(host: str) -> int:
    """8000 if it is free, else the next free port (the server then says which)."""
    for port in range(DEFAULT_PORT, DEFAULT_PORT + PORTS_TRIED):
        try:
            with socket.create_server((host, port), family=_family(host)):
                return port
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"ports {DEFAULT_PORT} to {DEFAULT_PORT + PORTS_TRIED - 1} are busy")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _cannot_listen(host: str, port: int | None, exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host!r}: unknown host ({exc.strerror})"
    where = f"{host}:{port}" if port is not None else host
    if exc.errno == errno.EADDRINUSE and port is not None:
        return f"cannot listen on {where}: the port is busy (choose another with --port, or 0 for any)"
    reason = str(exc.strerror or exc).split(" (while attempting")[0]
    return f"cannot listen on {where}: {reason}"


def _announce(server: SiteServer) -> None:
    install_demo(server)
    print(f"Demo shop serving at {server.url}/ (Ctrl-C to stop)", flush=True)


@contextmanager
def demo_site() -> Iterator[str]:
    """The shop in a child process on a free port; yields its URL."""
    with child_server(["crawler.demo", "--port", "0"]) as announced:
        if " serving at " not in announced:
            raise SystemExit("crawl: error: the demo shop did not start")
        yield announced.split(" serving at ", 1)[1].split()[0].rstrip("/")
