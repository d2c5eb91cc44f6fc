"""Shared fixtures: real HTTP servers on 127.0.0.1 and a way to crawl them."""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import crawler
from crawler._counters import COUNTERS, STATUS
from crawler.sites.server import Handler, Page, SiteServer

# The console script of this environment, as a user runs it.
CRAWL = str(Path(sys.executable).parent / "crawl")

TEXT = (("Content-Type", "text/plain"),)


def html(title: str, links: list[str] = (), body: str = "") -> Page:  # type: ignore[assignment]
    anchors = "".join(f'<a href="{href}">{i}</a>\n' for i, href in enumerate(links))
    return Page(f"<html><head><title>{title}</title></head><body>{body}\n{anchors}</body></html>".encode())


def robots(text: str) -> Page:
    return Page(text.encode(), headers=TEXT)


@pytest.fixture
def serve() -> Iterator[Callable[..., SiteServer]]:
    """Start a SiteServer in a background thread; stopped after the test."""
    servers: list[SiteServer] = []

    def start(routes: dict[str, Page] | None = None, handler: Handler | None = None) -> SiteServer:
        server = SiteServer(routes, handler=handler).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def crawl_items(tmp_path: Path) -> Callable[..., tuple[list[dict[str, Any]], crawler.Stats]]:
    """Run a spider to the end with ``crawler.run`` and return (items, stats)."""

    def run(spider_cls: type[crawler.Spider], start_urls: list[str], **settings: Any) -> Any:
        output = tmp_path / "items.jsonl"
        args = {"start_urls": start_urls, **settings.pop("spider_args", {})}
        settings.setdefault("parse_workers", 0)
        stats = crawler.run(spider_cls, output=str(output), overwrite=True, spider_args=args, **settings)
        assert not unregistered(stats), "counters missing from crawler/_counters.py"
        return read_jsonl(output), stats

    return run


def unregistered(stats: crawler.Stats) -> list[str]:
    """What a crawl counted that crawler/_counters.py does not name (``status/<code>`` aside)."""
    status = re.escape(STATUS) + r"\d{3}"
    return [key for key in stats.counts if key not in COUNTERS and not re.fullmatch(status, key)]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spaced(times: Sequence[float], interval: float) -> bool:
    """Were these arrivals (a server's) of starts that the crawler spaced ``interval``
    apart (5% more, in fact)? Their whole span holds nearly one interval per gap, and
    no gap is under half an interval. The server stamps each arrival with its own
    jitter, which on a loaded machine moves a single gap by tens of milliseconds, but
    the span only at its two ends."""
    ordered = sorted(times)
    gaps = [later - earlier for earlier, later in itertools.pairwise(ordered)]
    return ordered[-1] - ordered[0] >= 0.9 * interval * len(gaps) and min(gaps) >= interval / 2
