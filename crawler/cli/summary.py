"""The end-of-crawl summary on stderr: a two-column table of the main counters.

Plain text, laid out as rich lays out a box-less table of this width
(``tests/cli/test_summary.py`` compares the two), so that a crawl need not load
rich just to say how it went. A row wider than a terminal is not folded, as rich
would fold it: the counters' names and figures are short."""

from __future__ import annotations

import sys

from .._counters import BYTES, DROPPED, ERRORS, RETRIES, STATUS
from .._stats import Stats


def print_summary(stats: Stats) -> None:
    sys.stderr.write(summary_table(stats))
    sys.stderr.flush()


def summary_table(stats: Stats) -> str:
    """``crawl finished`` centred over the rows ``pages``, ``items``, ... , each cell
    padded by one space on either side."""
    rows = summary_rows(stats)
    keys = max(len(key) for key, _ in rows)
    values = max(len(value) for _, value in rows)
    width = keys + values + 4
    title = f"crawl {stats.finish_reason}"
    left = (width - len(title)) // 2
    lines = [" " * left + title + " " * (width - len(title) - left)]
    lines += [f" {key.ljust(keys)}  {value.ljust(values)} " for key, value in rows]
    return "\n".join(lines) + "\n"


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
