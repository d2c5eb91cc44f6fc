"""``--stats PATH``: the final statistics as one JSON object, in a file or on stdout
(``-``). The path is checked before the crawl starts and written at the end, whole
(a temporary file renamed over it), so a failed run never leaves half a file."""

from __future__ import annotations

import json
import os
import sys
import tempfile

from .._errors import OutputError, UsageError
from .._stats import Stats


def check_stats_target(path: str | None, output: str | None) -> None:
    """Refuse, before anything starts, a stats path that cannot be written."""
    if path is None or path == "-":
        if path == "-" and output == "-":
            raise UsageError("--stats - and -o - would share stdout: send one of them to a file")
        return
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OutputError(f"cannot write stats to {path}: Is a directory")
    if not os.path.isdir(directory):
        raise OutputError(f"cannot write stats to {path}: No such directory {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write stats to {path}: Permission denied")


def write_stats(path: str | None, stats: Stats) -> None:
    if path is None:
        return
    text = json.dumps(stats.to_dict(), indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        _replace(path, text)
    except OSError as exc:
        raise OutputError(f"cannot write stats to {path}: {exc.strerror or exc}") from None


def _replace(path: str, text: str) -> None:
    directory, name = os.path.split(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
