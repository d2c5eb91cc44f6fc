"""``crawl job DIR [--json]``: what a job holds, without running it."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from .._counters import ERRORS, ITEMS, PAGES, short
from ..frontier import JOB_DATABASE
from .logs import exit_quietly_on_a_closed_pipe
from .options import run_command

STATES = ("queued", "delayed", "leased")


def describe_job(directory: str | Path) -> dict[str, Any]:
    """Pending, in flight, done, failed and per-host counts of the job in ``directory``."""
    path = Path(directory) / JOB_DATABASE
    if not path.exists():
        raise SystemExit(f"crawl: error: no job in {directory}")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5) as db:
            return _describe(db, str(directory))
    except sqlite3.OperationalError as exc:
        reason = "a running crawl has it open" if "locked" in str(exc) else str(exc)
        raise SystemExit(f"crawl: error: cannot read job {directory}: {reason}") from None


def _describe(db: sqlite3.Connection, directory: str) -> dict[str, Any]:
    meta = dict(db.execute("SELECT key, value FROM meta"))
    states = dict(db.execute("SELECT state, COUNT(*) FROM requests GROUP BY state"))
    hosts = db.execute(
        "SELECT host, COUNT(*) FROM requests WHERE state != 'leased' GROUP BY host ORDER BY COUNT(*) DESC"
    ).fetchall()
    seen = db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]
    counts = json.loads(meta.get("stats", "{}")).get("counts", {})
    in_db = sum(states.get(state, 0) for state in STATES)
    return {
        "job": directory,
        "spider": meta.get("spider"),
        "runs": int(meta.get("runs", 0)),
        "pending": states.get("queued", 0) + states.get("delayed", 0),
        "retries_waiting": states.get("delayed", 0),
        "in_flight_when_stopped": states.get("leased", 0),
        "seen": seen,
        "done": seen - in_db,
        "failed": {short(key): n for key, n in counts.items() if key.startswith(ERRORS)},
        "pages": counts.get(PAGES, 0),
        "items": counts.get(ITEMS, 0),
        "hosts": dict(hosts),
    }


def job_command(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The job's directory (--job DIR).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> int:
    """Show what a job holds, without running it."""
    info = describe_job(directory)
    try:
        if json_output:
            print(json.dumps(info, indent=2))
        else:
            _print_summary(info)
        sys.stdout.flush()
    except BrokenPipeError:
        return exit_quietly_on_a_closed_pipe()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(job_command, sys.argv[1:] if argv is None else argv, "crawl job")


def _print_summary(info: dict[str, Any]) -> None:
    out = sys.stdout
    out.write(f"job {info['job']}: spider {info['spider']!r}, {info['runs']} run(s)\n")
    out.write(f"  pending   {info['pending']:,} ({info['retries_waiting']:,} retries waiting)\n")
    out.write(f"  in flight when last stopped {info['in_flight_when_stopped']:,} (crawled again on resume)\n")
    out.write(f"  done      {info['done']:,} of {info['seen']:,} seen; ")
    out.write(f"{info['pages']:,} pages, {info['items']:,} items\n")
    failed = ", ".join(f"{kind} {n:,}" for kind, n in sorted(info["failed"].items())) or "none"
    out.write(f"  failed    {failed}\n")
    for host, pending in list(info["hosts"].items())[:20]:
        out.write(f"  host {host}: {pending:,} pending\n")
