"""The library entry points: ``run`` (blocking) and ``crawl`` (async item stream)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from ._engine import Engine, Ticker
from ._settings import resolve_settings
from ._spider import Spider, check_allowed_domains, spider_kwargs
from ._stats import Stats
from .frontier import Frontier, refuse_overwriting_a_job
from .output import ItemSink, NullSink, StreamSink, count_dropped_fields, open_sink

if TYPE_CHECKING:
    import httpx

_DONE = object()


def build_engine(
    spider_cls: type[Spider],
    sink: ItemSink,
    *,
    spider_args: Mapping[str, Any] | None = None,
    backend: Frontier | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    client_factory: Callable[[httpx.AsyncBaseTransport], httpx.AsyncClient] | None = None,
    parse_executor: Executor | None = None,
    on_tick: Ticker | None = None,
    overwrite: bool = False,
    **settings: Any,
) -> Engine:
    """An engine for ``spider_cls`` with ``settings`` over the spider's defaults."""
    resolved = resolve_settings(spider_cls, settings)
    check_allowed_domains(resolved.allowed_domains)
    spider_args = spider_kwargs(spider_args or {})
    spider = spider_cls(**spider_args)
    return Engine(
        spider,
        resolved,
        sink,
        spider_args=spider_args,
        frontier=backend,
        transport=transport,
        client_factory=client_factory,
        parse_executor=parse_executor,
        on_tick=on_tick,
        overwrite=overwrite,
    )


def run(
    spider_cls: type[Spider],
    *,
    output: str | None = None,
    overwrite: bool = False,
    **settings: Any,
) -> Stats:
    """Crawl to the end and return the statistics. Items go to ``output`` (JSON
    Lines; ``.jsonl.gz`` compressed; ``.csv``; appended unless ``overwrite``) and
    through the spider's pipelines. With ``overwrite``, a crawl where not one request
    answered (``stats.nothing_answered``) or that was stopped before its first item
    leaves the old file as it was.

    Keyword arguments are settings (``concurrency=16``, ``max_pages=100``, ...) plus
    ``spider_args``, ``backend`` (a `Frontier` object to use instead of the one the
    ``job`` and ``frontier`` settings choose; a `DurableFrontier` or
    `SharedFrontier` is treated as the settings' would be), ``transport`` (an httpx
    transport that replaces the network), ``client_factory`` (given the transport,
    returns the ``httpx.AsyncClient`` every request is sent through: event hooks,
    auth) and ``parse_executor`` (a ``concurrent.futures.Executor``, such as a
    ``ProcessPoolExecutor``, to parse in instead of the crawl's own worker
    processes; it stays open afterwards)."""
    refuse_overwriting_a_job(settings.get("job"), overwrite)
    sink: ItemSink = open_sink(output, overwrite=overwrite) if output else NullSink()
    try:
        engine = build_engine(spider_cls, sink, overwrite=overwrite, **settings)
        stats = asyncio.run(engine.run())
        count_dropped_fields(sink, stats)
        return stats
    finally:
        sink.close()  # after a failed start-up: removes a temporary file, keeps the old one


async def crawl(spider_cls: type[Spider], **settings: Any) -> AsyncIterator[Any]:
    """Yield items as the crawl produces them, inside the caller's event loop.

    A slow consumer slows the crawl (the item queue is bounded). Leaving the loop
    early stops the crawl."""
    sink = StreamSink()
    engine = build_engine(spider_cls, sink, **settings)
    task = asyncio.create_task(_run_then_close(engine, sink))
    try:
        while (item := await sink.queue.get()) is not _DONE:
            yield item
        await task
    finally:
        if not task.done():
            engine.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await _drain_until_done(sink, task)


async def _run_then_close(engine: Engine, sink: StreamSink) -> Stats:
    try:
        return await engine.run()
    finally:
        await sink.queue.put(_DONE)


async def _drain_until_done(sink: StreamSink, task: asyncio.Task[Stats]) -> None:
    """After an early exit, discard items until the engine has stopped."""
    while not task.done():
        getter = asyncio.ensure_future(sink.queue.get())
        await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        getter.cancel()
    task.result()
