"""The end-of-crawl summary: plain text laid out as rich lays out the same table."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from crawler._stats import Stats
from crawler.cli.summary import summary_rows, summary_table


def rich_table(stats: Stats) -> str:
    """What the summary looked like when rich drew it."""
    table = Table(title=f"crawl {stats.finish_reason}", show_header=False, box=None)
    for key, value in summary_rows(stats):
        table.add_row(key, value)
    out = io.StringIO()
    Console(file=out, force_terminal=False, width=100, color_system=None).print(table)
    return out.getvalue()


def stats_with(counts: dict[str, int], reason: str = "finished") -> Stats:
    stats = Stats()
    for key, count in counts.items():
        stats.inc(key, count)
    stats.finish(reason)  # stops the clock: both tables show the same rate
    return stats


@pytest.mark.parametrize(
    "stats",
    [
        stats_with({}),
        stats_with({"pages": 1170, "status/200": 1170, "dropped/duplicate": 10_033}),
        stats_with({"pages": 3, "errors/tls_error": 2, "status/404": 1}, reason="interrupted"),
        stats_with({"pages": 12_345_678, "items": 7, "dropped/robots": 1}, reason="max_pages"),
    ],
    ids=["empty", "typical", "errors", "large numbers"],
)
def test_the_summary_is_the_table_rich_would_draw(stats: Stats):
    assert summary_table(stats) == rich_table(stats)
