"""Tests for loading spiders from files, `SpiderRef`, the `Spider` base class and
settings resolution."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

import crawler
from crawler import Request, Spider, SpiderLoadError, UsageError, load_spider
from crawler._settings import DEFAULT_USER_AGENT, Settings, resolve_settings
from crawler._spider import SpiderRef, spider_kwargs

GOOD = """\
from crawler import Spider


class BookSpider(Spider):
    name = "books"
    start_urls = ["http://shop.test/"]

    def parse(self, response):
        yield {"url": response.url}
"""

TWO = """\
from crawler import Spider


class BookSpider(Spider):
    name = "books"


class AuthorSpider(Spider):
    name = "authors"
"""


def write(tmp_path: Path, source: str, filename: str = "spider.py") -> Path:
    path = tmp_path / filename
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


class ModuleSpider(Spider):
    """A spider importable by module name (this test module)."""

    name = "module-spider"
    start_urls = ("http://a.test/", "http://b.test/x")
    concurrency = 5
    per_host = 3
    rate = 2.5
    obey_robots = False
    user_agent = "spider-ua"


# -- load_spider -----------------------------------------------------------------------


def test_load_a_good_spider(tmp_path: Path) -> None:
    cls = load_spider(write(tmp_path, GOOD))
    assert issubclass(cls, Spider)
    assert cls.__name__ == "BookSpider"
    assert cls.name == "books"
    assert list(cls().parse(_FakeResponse("http://x.test/"))) == [{"url": "http://x.test/"}]


def test_load_accepts_a_string_path(tmp_path: Path) -> None:
    assert load_spider(str(write(tmp_path, GOOD))).name == "books"


def test_loading_twice_returns_the_same_class(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert load_spider(path) is load_spider(path)


@pytest.mark.parametrize("make_path", [lambda p: p / "missing.py", lambda p: p])
def test_missing_file_or_directory(tmp_path: Path, make_path: Any) -> None:
    path = make_path(tmp_path)
    with pytest.raises(SpiderLoadError, match="spider file not found") as info:
        load_spider(path)
    assert str(path) in str(info.value)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "from crawler import Spider\n\nclass Broken(Spider)\n    pass\n")
    with pytest.raises(SpiderLoadError) as info:
        load_spider(path)
    message = str(info.value)
    assert message.startswith(f"{path.resolve()}:3: syntax error")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("source", "line", "described"),
    [
        ("import os\n\nraise RuntimeError('no config')\n", 3, "RuntimeError: no config"),
        ("x = 1\ny = {}\nz = y['missing']\n", 3, "KeyError: 'missing'"),
        ("import crawler_module_that_does_not_exist\n", 1, "ModuleNotFoundError"),
        ("import sys\n\n\nsys.exit(3)\n", 4, "SystemExit: 3"),
    ],
)
def test_error_at_import_names_exception_and_line(
    tmp_path: Path, source: str, line: int, described: str
) -> None:
    path = write(tmp_path, source)
    with pytest.raises(SpiderLoadError) as info:
        load_spider(path)
    message = str(info.value)
    assert message.startswith(f"{path.resolve()}:{line}: ")
    assert described in message


def test_error_raised_in_a_function_called_at_import_points_at_the_file(tmp_path: Path) -> None:
    source = "def setup():\n    return 1 / 0\n\n\nsetup()\n"
    with pytest.raises(SpiderLoadError) as info:
        load_spider(write(tmp_path, source))
    # The innermost frame in the spider file: inside setup(), line 2.
    assert ":2: ZeroDivisionError" in str(info.value)


def test_a_file_fixed_after_a_failed_load_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "raise ValueError('not yet')\n")
    with pytest.raises(SpiderLoadError, match="not yet"):
        load_spider(path)
    write(tmp_path, GOOD)
    assert load_spider(path).name == "books"


def test_file_without_spider_subclass(tmp_path: Path) -> None:
    path = write(tmp_path, "class NotASpider:\n    name = 'x'\n")
    with pytest.raises(SpiderLoadError, match="no Spider subclass found"):
        load_spider(path)


def test_two_spiders_are_listed_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(SpiderLoadError, match=r"several spiders \(BookSpider, AuthorSpider\)"):
        load_spider(write(tmp_path, TWO))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("books", "BookSpider"), ("authors", "AuthorSpider"), ("AuthorSpider", "AuthorSpider")],
)
def test_choose_one_of_two_spiders_by_name_or_class_name(tmp_path: Path, name: str, expected: str) -> None:
    assert load_spider(write(tmp_path, TWO), name=name).__name__ == expected


def test_choosing_an_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(SpiderLoadError, match="no Spider subclass named 'poems' found"):
        load_spider(write(tmp_path, TWO), name="poems")


def test_spider_imported_only_is_not_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "from crawler import Spider\nfrom crawler import Spider as Base\n")
    with pytest.raises(SpiderLoadError, match="no Spider subclass found"):
        load_spider(path)


def test_spider_subclass_imported_from_another_module_is_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, GOOD.replace("BookSpider", "SharedSpider"), filename="crawler_test_shared_spiders.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = """\
        from crawler_test_shared_spiders import SharedSpider


        class LocalSpider(SharedSpider):
            name = "local"
        """
    cls = load_spider(write(tmp_path, source, filename="local.py"))
    assert cls.__name__ == "LocalSpider"
    assert cls.start_urls == ["http://shop.test/"]


# -- SpiderRef -------------------------------------------------------------------------


def test_spider_ref_of_a_file_spider_loads_the_same_class(tmp_path: Path) -> None:
    cls = load_spider(write(tmp_path, TWO), name="authors")
    ref = SpiderRef.of(cls)
    assert ref == SpiderRef("AuthorSpider", path=str((tmp_path / "spider.py").resolve()))
    assert ref.importable
    assert ref.load() is cls


def test_spider_ref_of_an_importable_class() -> None:
    ref = SpiderRef.of(ModuleSpider)
    assert ref == SpiderRef("ModuleSpider", module=__name__)
    assert ref.load() is ModuleSpider


def test_spider_ref_of_a_nested_class() -> None:
    ref = SpiderRef.of(Outer.Inner)
    assert ref.qualname == "Outer.Inner"
    assert ref.load() is Outer.Inner


def test_spider_ref_of_a_local_class_is_not_importable() -> None:
    class Local(Spider):
        pass

    assert not SpiderRef.of(Local).importable
    assert SpiderRef.of(ModuleSpider).importable


class Outer:
    class Inner(Spider):
        pass


# -- Spider ----------------------------------------------------------------------------


def test_constructor_keywords_become_attributes() -> None:
    spider = ModuleSpider(category="poetry", start_urls=["http://c.test/"])
    assert spider.category == "poetry"  # type: ignore[attr-defined]
    assert spider.start_urls == ["http://c.test/"]
    assert ModuleSpider.start_urls == ("http://a.test/", "http://b.test/x")


def test_start_requests_yields_one_request_per_start_url() -> None:
    assert list(ModuleSpider().start_requests()) == [Request("http://a.test/"), Request("http://b.test/x")]
    assert list(Spider().start_requests()) == []


def test_base_parse_is_not_implemented() -> None:
    with pytest.raises(NotImplementedError, match=r"ModuleSpider\.parse"):
        ModuleSpider().parse(_FakeResponse("http://a.test/"))


# -- resolve_settings ------------------------------------------------------------------


def test_defaults_when_nothing_is_set() -> None:
    settings = resolve_settings(Spider, {})
    assert settings == Settings()
    assert settings.concurrency == 64
    assert settings.user_agent == DEFAULT_USER_AGENT
    assert settings.parse_workers == max(1, (os.cpu_count() or 2) - 1)


def test_spider_attributes_override_defaults() -> None:
    settings = resolve_settings(ModuleSpider, {})
    assert (settings.concurrency, settings.per_host, settings.rate) == (5, 3, 2.5)
    assert settings.obey_robots is False
    assert settings.user_agent == "spider-ua"
    assert settings.depth is None
    assert settings.timeout == Settings().timeout


@pytest.mark.parametrize(
    ("overrides", "field", "expected"),
    [
        ({"concurrency": 7}, "concurrency", 7),
        ({"concurrency": None}, "concurrency", 5),
        ({"rate": None}, "rate", 2.5),
        ({"rate": 10}, "rate", 10),
        ({"obey_robots": True}, "obey_robots", True),
        ({"depth": 0}, "depth", 0),
        ({"depth": None}, "depth", None),
        ({"max_pages": 3}, "max_pages", 3),
        ({"timeout": 1.5}, "timeout", 1.5),
        ({"user_agent": "flag-ua"}, "user_agent", "flag-ua"),
        ({"allowed_domains": ["a.test", "b.test"]}, "allowed_domains", ("a.test", "b.test")),
    ],
)
def test_overrides_beat_spider_attributes(overrides: dict[str, Any], field: str, expected: Any) -> None:
    assert getattr(resolve_settings(ModuleSpider, overrides), field) == expected


def test_falsy_override_beats_truthy_spider_attribute() -> None:
    class Robots(Spider):
        obey_robots = True
        depth = 4

    settings = resolve_settings(Robots, {"obey_robots": False, "depth": 0})
    assert (settings.obey_robots, settings.depth) == (False, 0)


def test_spider_allowed_domains_list_becomes_a_tuple() -> None:
    class Scoped(Spider):
        allowed_domains = ["shop.test"]

    assert resolve_settings(Scoped, {}).allowed_domains == ("shop.test",)


def test_unknown_setting_names_are_a_usage_error() -> None:
    message = r"unknown setting\(s\) speed, concurency \(did you mean concurrency\?\); supported: allow"
    with pytest.raises(UsageError, match=message):
        resolve_settings(Spider, {"speed": 1, "concurency": 2, "rate": 1})


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"per_host": -2}, "per_host"),
        ({"rate": -1}, "rate"),
        ({"rate": 0}, "rate"),
        ({"depth": "x"}, "depth"),
        ({"depth": -1}, "depth"),
        ({"max_pages": 2.5}, "max_pages"),
        ({"concurrency": True}, "concurrency"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_invalid_values_are_a_usage_error(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as info:
        resolve_settings(Spider, overrides)
    assert info.value.exit_code == 2


def test_non_numeric_rate_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        resolve_settings(Spider, {"rate": "fast"})


@pytest.mark.parametrize("name", ["rate", "timeout"])
def test_non_numeric_value_message_names_the_setting(name: str) -> None:
    with pytest.raises(UsageError, match=name):
        resolve_settings(Spider, {name: "fast"})


def test_invalid_spider_attribute_is_a_usage_error() -> None:
    class Bad(Spider):
        per_host = 0

    with pytest.raises(UsageError, match="per_host must be a whole number at least 1, not 0"):
        resolve_settings(Bad, {})


def test_valid_override_fixes_invalid_spider_attribute() -> None:
    class Bad(Spider):
        per_host = 0

    assert resolve_settings(Bad, {"per_host": 2}).per_host == 2


def test_usage_error_is_a_crawler_error() -> None:
    assert issubclass(UsageError, crawler.CrawlerError)
    assert issubclass(SpiderLoadError, crawler.CrawlerError)


class _FakeResponse:
    def __init__(self, url: str) -> None:
        self.url = url


@pytest.mark.parametrize(
    ("name", "value", "entries"),
    [
        ("start_urls", "http://a/ http://b/", ["http://a/", "http://b/"]),
        ("start_urls", "http://a/,https://b/", ["http://a/", "https://b/"]),  # the usual slip
        ("start_urls", "http://a/?ids=1,2 http://b/", ["http://a/?ids=1,2", "http://b/"]),  # a comma in a URL
        ("sitemap_urls", " http://a/sitemap.xml\n", ["http://a/sitemap.xml"]),
        ("allowed_domains", "a.com,b.com c.com", ["a.com", "b.com", "c.com"]),
    ],
)
def test_a_list_attribute_given_as_a_string_is_split(name: str, value: str, entries: list[str]) -> None:
    assert spider_kwargs({name: value, "category": "a,b"}) == {name: entries, "category": "a,b"}
