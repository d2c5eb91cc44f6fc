"""``crawler.__all__`` is the public surface: complete, importable, and nothing more."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess

import pytest

import crawler

from .support.cli import CRAWL

EXPECTED = {
    "CrawlerError", "DurableFrontier", "FetchError", "Frontier", "FrontierError", "FrontierStatus",
    "HostPolicy", "MemoryFrontier", "NotHtmlError", "OutputError", "RedisFrontier", "Request",
    "RequestRefused", "Response", "SelectorError", "Settings", "SharedFrontier", "SitemapEntry", "Spider",
    "SpiderLoadError", "SqliteFrontier", "Stats", "UsageError", "__version__", "crawl", "load_spider", "run",
}  # fmt: skip


def test_all_is_the_public_surface():
    assert set(crawler.__all__) == EXPECTED
    assert len(crawler.__all__) == len(set(crawler.__all__))


def test_every_public_name_exists_and_nothing_public_is_missing():
    for name in crawler.__all__:
        assert hasattr(crawler, name), name
    public = {
        name
        for name, value in vars(crawler).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public <= set(crawler.__all__), public - set(crawler.__all__)


@pytest.mark.parametrize("name", sorted(EXPECTED - {"__version__"}))
def test_public_names_are_documented(name):
    assert inspect.getdoc(getattr(crawler, name)), f"{name} has no docstring"


def test_request_is_an_immutable_value_changed_by_copy():
    request = crawler.Request("http://example.com/", meta={"a": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.url = "http://other.example/"  # type: ignore[misc]
    moved = dataclasses.replace(request, url="http://other.example/", priority=5)
    assert (moved.url, moved.priority, moved.meta) == ("http://other.example/", 5, {"a": 1})
    assert request.url == "http://example.com/"


def test_library_settings_have_the_same_names_as_cli_options():
    help_text = subprocess.run([CRAWL, "--help"], capture_output=True, text=True, check=True).stdout
    for field in dataclasses.fields(crawler.Settings):
        assert "--" + field.name.replace("_", "-") in help_text, field.name


def test_public_classes_functions_and_methods_have_docstrings():
    import crawler.testing

    missing = []
    for module in (crawler, crawler.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if obj.__doc__ is None:
                missing.append(name)
            members = vars(obj).items() if inspect.isclass(obj) else ()
            for attr, value in members:
                # a method that implements a protocol's may leave its contract to the protocol
                method = inspect.isfunction(value) or isinstance(value, property)
                documented = not method or inspect.getdoc(value)
                if not attr.startswith("_") and not documented:
                    missing.append(f"{name}.{attr}")
    assert missing == []
