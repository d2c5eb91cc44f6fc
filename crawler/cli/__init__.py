"""The ``crawl`` command line: one module per command."""

from __future__ import annotations

from .logs import print_error
from .options import run_command, with_default

__all__ = ["print_error", "run_command", "with_default"]
