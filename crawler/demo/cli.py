"""``crawl demo``: crawl the demo shop, or serve it.

``crawl demo [-o|-O PATH] [crawl options]`` starts the shop on a free port (in a
child process, so the crawl's numbers are its own), crawls it with
``crawler/demo/spider.py`` and stops it. ``crawl demo --serve [--port 8000]``
serves it in the foreground until Ctrl-C, for your own spiders.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .._siteserver import SiteServer, child_server
from . import install_demo

SPIDER = Path(__file__).with_name("spider.py")


def main(argv: Sequence[str] | None = None, prog: str = "crawl demo") -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--serve" in args:
        args.remove("--serve")
        serve(args, prog)
        return
    from ..cli import main as crawl_main  # noqa: PLC0415  (the CLI imports this module)

    with demo_site() as url:
        crawl_main([str(SPIDER), "-a", f"base_url={url}", *args])


def serve(argv: Sequence[str], prog: str) -> None:
    """Serve in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog=f"{prog} --serve", description="Serve the demo shop until Ctrl-C.")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8000, help="default: %(default)s; 0 picks a free port")
    args = parser.parse_args(argv)
    server = SiteServer(host=args.host, port=args.port, record_hits=False)
    server.serve_forever(on_ready=_announce)


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
