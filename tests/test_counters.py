"""The statistics counters: one registry (crawler/_counters.py), the README's table
of it, code that counts only through its constants, and ``--stats`` nesting."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

import crawler
from crawler import _counters, _errors
from crawler._counters import COUNTERS
from crawler._stats import Stats
from crawler.sites.server import Page

from .support.items import unregistered
from .support.sites import html

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SOURCES = sorted((ROOT / "crawler").rglob("*.py"))
NAMESPACES = {name.partition("/")[0] for name in COUNTERS if "/" in name}
TABLE_ROW = re.compile(r"^\| `([^`]+)` \| (.+) \|$")


def readme_table() -> dict[str, str]:
    """The rows of the README's table under "## Statistics": counter -> meaning."""
    section = README.split("\n## Statistics\n", 1)[1].split("\n## ", 1)[0]
    return {m[1]: m[2] for line in section.splitlines() if (m := TABLE_ROW.match(line))}


def test_the_readme_table_lists_every_counter_and_nothing_else() -> None:
    table = readme_table()
    missing = [f"| `{name}` | {meaning} |" for name, meaning in COUNTERS.items() if name not in table]
    assert not missing, "add to the README's Statistics table:\n" + "\n".join(missing)
    unknown = sorted(set(table) - set(COUNTERS))
    assert not unknown, f"not in crawler/_counters.py: {unknown}"


def test_the_readme_table_says_what_the_registry_says() -> None:
    differing = {name: meaning for name, meaning in COUNTERS.items() if readme_table()[name] != meaning}
    assert not differing, "README rows that differ from crawler/_counters.py: " + repr(differing)


def test_every_counter_the_readme_names_elsewhere_exists() -> None:
    pattern = rf"`((?:{'|'.join(NAMESPACES)})/[a-z_*]+)`"
    named = set(re.findall(pattern, README))
    assert named, "the README names counters outside its table (the hostile web's)"
    for name in named:
        prefix = name.removesuffix("*")
        assert name in COUNTERS or (name.endswith("*") and any(c.startswith(prefix) for c in COUNTERS)), name


def test_each_counter_has_a_constant_that_code_uses() -> None:
    constants = {
        value: key for key, value in vars(_counters).items() if isinstance(value, str) and value in COUNTERS
    }
    unnamed = set(COUNTERS) - set(constants) - {"status/CODE"}  # status/<code> is STATUS + the code
    assert not unnamed
    text = "\n".join(path.read_text(encoding="utf-8") for path in SOURCES)
    unused = [key for key in constants.values() if len(re.findall(rf"\b{key}\b", text)) < 2]
    assert not unused, f"counters nothing counts: {unused}"


def _literal_counter_names(tree: ast.AST) -> list[str]:
    """String literals (or f-string parts) that begin with a counter namespace."""
    prefixes = tuple(f"{namespace}/" for namespace in NAMESPACES)
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(prefixes)
    ]


def _counted_literals(tree: ast.AST) -> list[str]:
    """``x.inc(<literal>)`` and ``x.counts[<literal>]``: bare names spelled out."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "inc":
            key = node.args[0] if node.args else None
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
            key = node.slice if node.value.attr == "counts" else None
        else:
            continue
        if isinstance(key, (ast.Constant, ast.JoinedStr, ast.BinOp)):
            found.append(ast.unparse(key))
    return found


@pytest.mark.parametrize(
    "path", [p for p in SOURCES if p.name != "_counters.py"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_code_counts_through_the_registrys_constants(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    spelled = _literal_counter_names(tree) + _counted_literals(tree)
    allowed = [name for name in spelled if name == "f'{STATUS}{fetched.status}'"]  # the one open family
    assert spelled == allowed, f"counter names written out instead of crawler._counters constants: {spelled}"


def test_a_fetch_errors_kind_is_its_counters_name() -> None:
    counted = [
        error
        for error in vars(_errors).values()
        if isinstance(error, type) and issubclass(error, _errors.FetchError)
        if error is not _errors.RequestRefused  # raised to a single fetch's caller, never counted
    ]
    assert len(counted) == 9
    for error in counted:
        assert error.counter in COUNTERS and error.counter == "errors/" + error.kind


def test_stats_nest_every_namespace_and_keep_the_main_three() -> None:
    stats = Stats()
    for name in (_counters.PAGES, _counters.POLITENESS_RETRY_AFTER, _counters.PARSE_MAIN_PROCESS):
        stats.inc(name)
    stats.inc(_counters.STATUS + "200", 2)
    written = stats.to_dict()
    assert written["pages"] == 1 and written["status"] == {"200": 2}
    assert written["politeness"] == {"retry_after": 1} and written["parse"] == {"main_process": 1}
    assert written["errors"] == {} and written["dropped"] == {}
    assert "cache" not in written and "render" not in written
    assert not [key for key in written if "/" in key]


class Following(crawler.Spider):
    def parse(self, response: crawler.Response) -> Any:
        yield {"url": response.url}
        yield from response.follow_all("a")


def test_a_crawls_counters_are_all_registered(serve: Any, crawl_items: Any) -> None:
    links = ["/a", "mailto:x@y.z", "http://elsewhere.test/", "/gone", "/loop"]
    server = serve(
        {
            "/": html("home", links),
            "/a": html("a", ["/"]),
            "/gone": Page(b"", 404),
            "/loop": Page(b"", 302, (("Location", "/loop"),)),
        }
    )
    _, stats = crawl_items(Following, [server.url + "/"], obey_robots=False)
    assert stats["dropped/duplicate"] and stats["dropped/offsite"] and stats["dropped/unsupported_scheme"]
    assert stats["dropped/http_status"] == 1 and stats["dropped/redirect_loop"] == 1
    assert stats["status/404"] == 1 and stats["status/302"] == 1
    assert not unregistered(stats)  # crawl_items checks it too; here on purpose
    stats.inc("errors/made_up")
    assert unregistered(stats) == ["errors/made_up"]


def test_nothing_answered_is_about_this_run_of_a_job():
    from crawler._stats import Stats

    resumed = Stats()
    resumed.carry_over({"counts": {"errors/connection_error": 1}})  # the first run failed
    assert not resumed.nothing_answered  # this run tried nothing
    resumed.inc("errors/connection_error")
    assert resumed.nothing_answered and resumed.failed_this_run == 1
    answered_before = Stats()
    answered_before.carry_over({"counts": {"responses": 3}})
    answered_before.inc("errors/timeout")
    assert answered_before.nothing_answered  # earlier answers do not count for this run
