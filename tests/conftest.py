"""Shared fixtures: real HTTP servers on 127.0.0.1 and a way to crawl them. The
helpers tests import are in ``tests/support/``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import crawler
from crawler.sites.server import Handler, Page, SiteServer

from .support.items import read_jsonl, unregistered


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


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
