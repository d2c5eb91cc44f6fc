"""``crawl demo`` / ``python -m crawler.demo``: serve the demo shop until Ctrl-C."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .._siteserver import SiteServer
from . import install_demo


def main(argv: Sequence[str] | None = None, prog: str = "crawl demo") -> None:
    """Parse ``argv``, then serve in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog=prog, description="Serve the demo shop until Ctrl-C.")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8000, help="default: %(default)s; 0 picks a free port")
    args = parser.parse_args(argv)
    server = SiteServer(host=args.host, port=args.port, record_hits=False)
    server.serve_forever(on_ready=_announce)


def _announce(server: SiteServer) -> None:
    install_demo(server)
    print(f"Demo shop serving at {server.url}/ (Ctrl-C to stop)", flush=True)
