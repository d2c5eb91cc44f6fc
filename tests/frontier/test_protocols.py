"""The frontier protocols name everything the crawler asks of a frontier, and each
backend declares which of them it is."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

import crawler
from crawler import DurableFrontier, Frontier, MemoryFrontier, SharedFrontier, SqliteFrontier

PACKAGE = Path(crawler.__file__).parent
BACKENDS = {"frontier/memory.py", "frontier/sqlite.py", "frontier/redis.py"}


def protocol_members(*protocols: type) -> set[str]:
    """Methods, properties and annotated attributes (``limiters``)."""
    names = {name for protocol in protocols for name in dir(protocol)}
    for protocol in protocols:
        for base in protocol.__mro__:
            names |= set(vars(base).get("__annotations__", {}))
    return {name for name in names if not name.startswith("_")}


def is_a_frontier(node: ast.expr) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    return name in ("frontier", "_frontier")


def frontier_calls(source: str) -> set[str]:
    """The attributes used on anything named ``frontier`` or ``_frontier``, directly
    or looked up by ``hasattr``/``getattr``."""
    used = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and is_a_frontier(node.value):
            used.add(node.attr)
        looked_up = isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("hasattr", "getattr")
        if looked_up and is_a_frontier(node.args[0]) and isinstance(node.args[1], ast.Constant):
            used.add(str(node.args[1].value))
    return used


def test_the_protocols_name_every_frontier_method_the_crawler_uses() -> None:
    declared = protocol_members(Frontier, DurableFrontier, SharedFrontier)
    modules = sorted(path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py"))
    used = {name: frontier_calls((PACKAGE / name).read_text(encoding="utf-8")) for name in modules}
    used = {name: calls for name, calls in used.items() if name not in BACKENDS}
    assert used["_engine.py"] >= {"open", "take", "done", "close"}  # the scan sees the engine's calls
    undeclared = {name: calls - declared for name, calls in used.items() if calls - declared}
    assert undeclared == {}


def test_each_backend_declares_what_it_is(tmp_path: Path) -> None:
    redis_frontier = crawler.RedisFrontier("redis://127.0.0.1:6379/0", "crawler-test:declared")
    kinds = {
        "memory": MemoryFrontier(),
        "sqlite": SqliteFrontier(tmp_path / "f.sqlite"),
        "redis": redis_frontier,
    }
    declared = {
        name: (isinstance(f, Frontier), isinstance(f, DurableFrontier), isinstance(f, SharedFrontier))
        for name, f in kinds.items()
    }
    assert declared == {
        "memory": (True, False, False),
        "sqlite": (True, True, False),
        "redis": (True, False, True),
    }
    asyncio.run(redis_frontier.close())  # it never connected


class JobInADict(MemoryFrontier):
    """A durable frontier a user might write: nothing of ours but the protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}

    @property
    def location(self) -> str:
        return "a dict"

    async def get_meta(self, key: str) -> str | None:
        return self.meta.get(key)

    async def set_meta(self, key: str, value: str) -> None:
        self.meta[key] = value


def test_a_users_backend_is_durable_by_what_it_implements() -> None:
    assert isinstance(JobInADict(), DurableFrontier)
    assert not isinstance(JobInADict(), SharedFrontier)


def test_importing_crawler_does_not_load_redis() -> None:
    loaded = "print('redis' in sys.modules)"
    code = f"import sys, crawler; {loaded}; crawler.RedisFrontier; {loaded}"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == ["False", "True"]
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        crawler.Nothing  # noqa: B018
