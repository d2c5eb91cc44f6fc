"""The parse stage: spider callbacks, run in a process pool through run_in_executor."""

from __future__ import annotations

from .callbacks import (
    CallbackRunner,
    LinkRules,
    ParseResult,
    ParseTask,
    SpiderParser,
    is_async_callback,
    parse_failure,
)
from .executor import YOUNG_THRESHOLD, ParseExecutor

__all__ = [
    "YOUNG_THRESHOLD",
    "CallbackRunner",
    "LinkRules",
    "ParseExecutor",
    "ParseResult",
    "ParseTask",
    "SpiderParser",
    "is_async_callback",
    "parse_failure",
]
