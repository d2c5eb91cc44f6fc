"""The live progress line (stderr, terminals only)."""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.text import Text

from .._stats import Stats
from ..frontier import FrontierStatus


def progress_line(stats: Stats, status: FrontierStatus) -> str:
    """``1,234 pages (410/s)  5,678 items  3 errors  9,876 queued  64 in flight  12 hosts``."""
    return (
        f"{stats.pages:,} pages ({stats.pages_per_second:,.0f}/s)  {stats.items:,} items  "
        f"{stats.errors:,} errors  {status.pending:,} queued  {status.in_flight:,} in flight  "
        f"{stats.hosts:,} hosts"
    )


class Progress:
    """A single, refreshing status line on stderr."""

    def __init__(self) -> None:
        self._console = Console(stderr=True)
        self._live = Live(Text("starting..."), console=self._console, transient=True, auto_refresh=False)
        self._live.start()

    def update(self, stats: Stats, status: FrontierStatus) -> None:
        self._live.update(Text(progress_line(stats, status)), refresh=True)

    def close(self) -> None:
        self._live.stop()
