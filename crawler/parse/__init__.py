"""The parse stage: spider callbacks, run in a process pool through run_in_executor."""

from __future__ import annotations

from .callbacks import (
    CallbackRunner,
    LinkRules,
    ParseResult,
    ParseTask,
    SpiderParser,
    is_async_callback,
    is_async_method,
    parse_failure,
)
from .executor import ParseExecutor, space_young_collections

__all__ = [
    "CallbackRunner",
    "LinkRules",
    "ParseExecutor",
    "ParseResult",
    "ParseTask",
    "SpiderParser",
    "is_async_callback",
    "is_async_method",
    "parse_failure",
    "space_young_collections",
]
