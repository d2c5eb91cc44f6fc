"""The live progress line (stderr, terminals only) and the end-of-crawl summary."""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .._counters import BYTES, DROPPED, ERRORS, RETRIES, STATUS
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

    @staticmethod
    def print_summary(stats: Stats) -> None:
        """A short table of the main counters, on stderr."""
        table = Table(title=f"crawl {stats.finish_reason}", show_header=False, box=None)
        for key, value in summary_rows(stats):
            table.add_row(key, value)
        Console(stderr=True, force_terminal=False, width=100, color_system=None).print(table)


def summary_rows(stats: Stats) -> list[tuple[str, str]]:
    this_run = f" ({stats.pages_this_run:,} this run)" if stats.resumed else ""
    rows = [
        ("pages", f"{stats.pages:,}{this_run} in {stats.elapsed:.1f}s ({stats.pages_per_second:,.1f}/s)"),
        ("items", f"{stats.items:,}"),
        ("bytes", f"{stats[BYTES]:,}"),
        ("retries", f"{stats[RETRIES]:,}"),
    ]
    for key in sorted(stats.counts):
        if key.startswith((ERRORS, DROPPED, STATUS)):
            rows.append((key, f"{stats.counts[key]:,}"))
    return rows
