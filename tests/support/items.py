"""Reading what a crawl wrote and counted."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import crawler
from crawler._counters import COUNTERS, STATUS


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def urls(items: list[dict[str, Any]]) -> set[str]:
    return {item["url"] for item in items}


def unregistered(stats: crawler.Stats) -> list[str]:
    """What a crawl counted that crawler/_counters.py does not name (``status/<code>`` aside)."""
    status = re.escape(STATUS) + r"\d{3}"
    return [key for key in stats.counts if key not in COUNTERS and not re.fullmatch(status, key)]
