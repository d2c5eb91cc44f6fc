"""Log set-up for the ``crawl`` commands: readable lines, or one JSON object per line
(``--log-format json``) for log shippers and ``jq``."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from .._errors import UsageError

EXIT_CLOSED_PIPE = 128 + 13  # 128 + SIGPIPE, what a shell reports for `yes | head -1`
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_TRACEBACK = "\nTraceback (most recent call last):"
# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"time": ISO 8601 UTC, "level", "logger", "message"}``, plus ``exception``
    (the traceback text) and any ``extra=`` fields of the record."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((key, value) for key, value in vars(record).items() if key not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif _TRACEBACK in entry["message"]:
            # A callback's traceback comes from a parse worker as text (traceback
            # objects do not cross processes), logged after its message.
            message, _, trace = entry["message"].partition(_TRACEBACK)
            entry["message"], entry["exception"] = message.rstrip(": \n"), _TRACEBACK.lstrip() + trace
        return json.dumps(entry, ensure_ascii=False, default=str)


class _Mode:
    json = False  # --log-format json: errors printed outside logging are JSON too


def print_error(prog: str, message: str) -> None:
    """One line on stderr, ``PROG: error: MESSAGE``: a JSON object in JSON mode (where
    a traceback after the message goes to ``exception``)."""
    line = f"{prog}: error: {message}"
    if _Mode.json:
        record = logging.makeLogRecord({"name": "crawler", "levelname": "ERROR", "levelno": 40, "msg": line})
        line = JsonFormatter().format(record)
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def exit_quietly_on_a_closed_pipe() -> int:
    """Output to a pipe whose reader went away (``crawl job DIR | head -1``) ends
    quietly, as other Unix tools do: no message, the exit code of a process killed
    by SIGPIPE. Stdout is pointed at /dev/null so the interpreter's last flush at
    exit does not complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_CLOSED_PIPE


def wants_json_logs(argv: list[str]) -> bool:
    """Whether a command line asks for ``--log-format json`` (read before parsing it,
    so that even a usage error is reported as JSON)."""
    pairs = zip(argv, [*argv[1:], ""][: len(argv)], strict=True)
    return any(arg == "--log-format=json" or (arg, value) == ("--log-format", "json") for arg, value in pairs)


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Send the crawler's logs to stderr at ``level`` in ``log_format``; a bad value
    raises `UsageError`."""
    name = level.upper()
    if name not in LOG_LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    if log_format not in LOG_FORMATS:
        raise UsageError(f"--log-format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    _Mode.json = log_format == "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=name, handlers=[handler], force=True)
