"""`FetchStage`, the crawl's fetch stage, through its interface to the engine:
against a real server on 127.0.0.1, with a memory frontier, one request taken at a
time as the dispatcher takes it."""

from __future__ import annotations

import ast
import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import crawler.fetch.network
import crawler.fetch.single
import crawler.fetch.stage
from crawler._request import Request
from crawler._settings import Settings
from crawler._stats import Stats
from crawler.fetch.network import Network
from crawler.fetch.politeness import default_host_policy
from crawler.fetch.stage import FetchStage, Page
from crawler.frontier.memory import MemoryFrontier
from crawler.sites.server import Page as Route

from ..support.sites import TEXT, html, robots

Step = Callable[[FetchStage, MemoryFrontier], Awaitable[Any]]


def through_the_stage(url: str, step: Step, **settings: Any) -> tuple[Any, Stats, MemoryFrontier]:
    """Run ``step`` on a fetch stage of a crawl that started at ``url``."""
    options = Settings(**{"allow_private": True, "retries": 1, **settings})
    stats = Stats()
    frontier = MemoryFrontier(default_host_policy(options))

    async def go() -> Any:
        network = Network(options, stats, frontier, ["127.0.0.1"])
        stage = FetchStage(
            network,
            options,
            stats,
            frontier,
            scope=("127.0.0.1",),
            handled_statuses=[404],
            on_start=lambda: None,
        )
        try:
            await frontier.add([Request(url)])
            return await step(stage, frontier)
        finally:
            await stage.close()

    return asyncio.run(go()), stats, frontier


async def fetch_next(stage: FetchStage, frontier: MemoryFrontier) -> Page | None:
    (request,) = await frontier.take(1)
    return await stage.fetch(request)


def test_a_page_is_handed_on_with_its_response_counted(serve):
    server = serve({"/": html("home"), "/robots.txt": robots("")})
    page, stats, _ = through_the_stage(server.url + "/", fetch_next)
    assert page is not None and page[0].url == server.url + "/" and page[1].status == 200
    assert (stats["responses"], stats["pages"], stats["status/200"]) == (1, 1, 1)


def test_a_redirect_becomes_a_new_request_in_the_frontier(serve):
    server = serve({"/": Route(status=301, headers=(("Location", "/new"),)), "/new": html("new")})

    async def step(stage: FetchStage, frontier: MemoryFrontier) -> list[Page | None]:
        return [await fetch_next(stage, frontier), await fetch_next(stage, frontier)]

    (redirect, page), stats, _ = through_the_stage(server.url + "/", step, obey_robots=False)
    assert redirect is None and page is not None
    assert page[0].url == server.url + "/new" and page[0].redirects == (server.url + "/",)
    assert (stats["status/301"], stats["pages"]) == (1, 1)


def test_a_retry_status_goes_back_to_the_frontier_then_the_answer_is_the_page(serve):
    server = serve(handler=lambda hit: Route(b"busy", 503, TEXT))

    async def step(stage: FetchStage, frontier: MemoryFrontier) -> Page | None:
        assert await fetch_next(stage, frontier) is None  # retried: back after a backoff
        while not (taken := await frontier.take(1)):
            await asyncio.sleep(0.05)
        return await stage.fetch(taken[0])

    page, stats, _ = through_the_stage(server.url + "/", step, obey_robots=False, autothrottle=False)
    assert page is None  # a 503 after its last retry: not 2xx, not handled by the spider
    assert (stats["retries"], stats["dropped/http_status"], len(server.hits)) == (1, 1, 2)


def test_a_handled_error_status_is_a_page_and_refused_links_are_kept_out(serve):
    server = serve({"/robots.txt": robots("User-agent: *\nDisallow: /private\n")})

    async def step(stage: FetchStage, frontier: MemoryFrontier) -> Any:
        page = await fetch_next(stage, frontier)
        links = [Request(server.url + "/private/1"), Request(server.url + "/open")]
        return page, stage.unrefused(links)

    (page, kept), stats, _ = through_the_stage(server.url + "/", step)
    assert page is not None and page[1].status == 404  # handled_statuses
    assert [request.url for request in kept] == [server.url + "/open"] and stats["dropped/robots"] == 1


@pytest.mark.parametrize("module", [crawler.fetch.stage, crawler.fetch.network, crawler.fetch.single])
def test_the_fetch_modules_set_attributes_only_in_init(module: Any) -> None:
    tree = ast.parse(inspect.getsource(module))
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        for method in (node for node in cls.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)):
            if method.name != "__init__":
                assigned = [
                    target.attr
                    for node in ast.walk(method)
                    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign)
                    for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(target, ast.Attribute) and ast.unparse(target.value) == "self"
                ]
                assert not assigned, f"{cls.name}.{method.name} sets {assigned}"


@pytest.mark.parametrize("obey_robots", [False, True], ids=["robots off", "robots.txt not fetched"])
def test_a_request_deferred_as_a_first_contact_costs_its_host_no_start(serve, obey_robots: bool):
    """When attempts on hosts that never answered hold their share of the
    concurrency, a request to another such host is put back before it (or its
    robots.txt) takes its host's start: the host's next request may start at once,
    not an interval later."""
    server = serve({"/": html("home"), "/robots.txt": robots("")})

    async def step(stage: FetchStage, frontier: MemoryFrontier) -> tuple[Page | None, bool, Any]:
        gate = stage._network._fetcher._gate  # the share, taken by another host
        with gate.place("elsewhere.test"):
            (request,) = await frontier.take(1)
            page = await stage.fetch(request)
        key = server.url.removeprefix("http://")
        return page, frontier.limiters.has_capacity(key), await frontier.status()

    (page, has_capacity, status), _, _ = through_the_stage(
        server.url + "/", step, obey_robots=obey_robots, rate=1.0, concurrency=2
    )
    assert page is None and server.hits == []  # deferred, not attempted
    assert has_capacity  # the host's start is still there
    assert status.pending == 1 and status.in_flight == 0  # back in the frontier


def test_a_request_the_known_rules_refuse_is_dropped_even_when_first_contacts_are_full(serve):
    """A host given up on (or a page cap reached, or a path its known robots.txt
    disallows) needs no first-contact place: its requests are dropped, not put back."""
    server = serve({"/": html("home")})

    async def step(stage: FetchStage, frontier: MemoryFrontier) -> tuple[Page | None, Any]:
        stage._politeness._given_up.add(server.url.removeprefix("http://"))  # the circuit breaker's verdict
        with stage._network._fetcher._gate.place("elsewhere.test"):  # the share, taken by another host
            (request,) = await frontier.take(1)
            page = await stage.fetch(request)
        return page, await frontier.status()

    (page, status), stats, _ = through_the_stage(server.url + "/", step, obey_robots=False, concurrency=2)
    assert page is None and server.hits == []
    assert stats["dropped/host_failing"] == 1
    assert status.pending == 0 and status.in_flight == 0  # dropped, not back in the queue
