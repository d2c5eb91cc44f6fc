"""What Scrapy users reach for: settings by Scrapy's names, ``cb_kwargs``, spider hooks,
per-request DEBUG lines, and the habits of ``scrapy runspider``."""

from __future__ import annotations

import logging
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from crawler import Request, Response, Spider, UsageError
from crawler._settings import resolve_settings
from crawler.testing import fake_response, run_callback

from .support.cli import CRAWL
from .support.items import read_jsonl
from .support.sites import html


def crawl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CRAWL, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def write_spider(folder: Path, body: str, name: str = "spider.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


# -- settings by Scrapy's names ---------------------------------------------------------


@pytest.mark.parametrize(
    ("custom", "expected"),
    [
        ({"DOWNLOAD_DELAY": 0.5}, {"rate": 2.0}),
        ({"DOWNLOAD_DELAY": 0}, {"rate": None}),
        ({"CONCURRENT_REQUESTS": 3, "CONCURRENT_REQUESTS_PER_DOMAIN": 2}, {"concurrency": 3, "per_host": 2}),
        ({"ROBOTSTXT_OBEY": False, "USER_AGENT": "bot/1"}, {"obey_robots": False, "user_agent": "bot/1"}),
        ({"DEPTH_LIMIT": 2, "CLOSESPIDER_PAGECOUNT": 50}, {"depth": 2, "max_pages": 50}),
        ({"DEPTH_LIMIT": 0, "CLOSESPIDER_PAGECOUNT": 0}, {"depth": None, "max_pages": None}),
        ({"DOWNLOAD_TIMEOUT": 7, "RETRY_TIMES": 5}, {"timeout": 7, "retries": 5}),
        ({"RETRY_ENABLED": False}, {"retries": 0}),
        ({"DOWNLOAD_MAXSIZE": 1024}, {"max_size": 1024}),
        ({"HTTPCACHE_ENABLED": True}, {"cache": ".scrapy/httpcache"}),
        ({"HTTPCACHE_ENABLED": True, "HTTPCACHE_DIR": "c"}, {"cache": "c"}),
        ({"HTTPCACHE_DIR": "c"}, {"cache": None}),  # as in Scrapy: the folder alone is not enough
        ({"JOBDIR": "crawls/1"}, {"job": "crawls/1"}),
        ({"REDIRECT_MAX_TIMES": 3, "URLLENGTH_LIMIT": 100}, {"max_redirects": 3, "max_url_length": 100}),
        ({"per_host": 3, "rate": 1.5}, {"per_host": 3, "rate": 1.5}),  # our names work there too
        ({"LOG_LEVEL": "DEBUG", "ITEM_PIPELINES": {}}, {}),  # for the command and the pipelines
    ],
)
def test_custom_settings_take_scrapy_names(custom: dict[str, Any], expected: dict[str, Any]) -> None:
    spider = type("Custom", (Spider,), {"custom_settings": custom})
    settings = resolve_settings(spider, {})
    assert {name: getattr(settings, name) for name in expected} == expected


def test_precedence_flags_then_custom_settings_then_attributes() -> None:
    class Layered(Spider):
        per_host = 5
        concurrency = 9
        custom_settings = {"CONCURRENT_REQUESTS_PER_DOMAIN": 2, "DOWNLOAD_DELAY": 1}

    settings = resolve_settings(Layered, {"rate": 4})
    assert (settings.per_host, settings.concurrency, settings.rate) == (2, 9, 4)


def test_scrapys_download_delay_attribute_is_a_rate() -> None:
    assert resolve_settings(type("Slow", (Spider,), {"download_delay": 0.25}), {}).rate == 4.0


@pytest.mark.parametrize(
    ("custom", "message"),
    [
        (
            {"CONCURENT_REQUESTS": 2},
            r"unknown setting\(s\) CONCURENT_REQUESTS \(did you mean CONCURRENT_REQUESTS\?\)$",
        ),
        ({"SPEED": 2}, r"unknown setting\(s\) SPEED; supported: .*DOWNLOAD_DELAY"),
        ({"DOWNLOADER_MIDDLEWARES": {}}, "DOWNLOADER_MIDDLEWARES is not supported: there are no middlewares"),
        ({"FEEDS": {}}, "FEEDS is not supported: write items with -o/-O"),
        ({"DOWNLOAD_DELAY": "soon"}, "DOWNLOAD_DELAY: not a number: 'soon'"),
        ({"DOWNLOAD_MAXSIZE": 0}, "DOWNLOAD_MAXSIZE=0 \\(no limit\\) is not supported"),
        ({"CONCURRENT_REQUESTS": 0}, "concurrency must be a whole number at least 1"),
    ],
)
def test_bad_custom_settings_are_one_clear_error(custom: dict[str, Any], message: str) -> None:
    spider = type("Bad", (Spider,), {"custom_settings": custom})
    with pytest.raises(UsageError, match=message):
        resolve_settings(spider, {})


def test_names_without_meaning_here_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    spider = type("Project", (Spider,), {"custom_settings": {"BOT_NAME": "x", "TELNETCONSOLE_ENABLED": 0}})
    resolve_settings(spider, {})
    assert "Project.custom_settings: BOT_NAME is ignored: the spider's name" in caplog.text
    assert "TELNETCONSOLE_ENABLED is ignored: there is no telnet console" in caplog.text


def test_a_misspelt_setting_attribute_warns(caplog: pytest.LogCaptureFixture) -> None:
    class Typo(Spider):
        per_hots = 1
        max_page = 10
        catalogue = "books"  # nothing like a setting: no warning

    settings = resolve_settings(Typo, {})
    assert settings.per_host == 8
    assert "spider attribute 'per_hots' of Typo is not a setting: did you mean per_host?" in caplog.text
    assert "'max_page' of Typo is not a setting: did you mean max_pages?" in caplog.text
    assert "catalogue" not in caplog.text


# -- the command line ----------------------------------------------------------------------

LISTING = """
from crawler import Spider

class ListingSpider(Spider):
    name = "listing"
    base_url = "http://127.0.0.1:9"
    custom_settings = {"CLOSESPIDER_PAGECOUNT": 1}

    def start_requests(self):
        from crawler import Request
        yield Request(self.base_url + "/0")

    def parse(self, response):
        yield {"url": response.url}
        yield from response.follow_all("a")
"""


@pytest.fixture
def chain(serve: Any) -> Any:
    return serve({f"/{i}": html(f"page {i}", [f"/{i + 1}"] if i < 4 else []) for i in range(5)})


def test_dash_s_overrides_custom_settings_by_either_name(tmp_path: Path, chain: Any) -> None:
    spider = write_spider(tmp_path, LISTING)
    out = tmp_path / "items.jsonl"
    base = ["-a", f"base_url={chain.url}", "-O", str(out), "--no-progress"]
    assert crawl(str(spider), *base).returncode == 0
    assert len(read_jsonl(out)) == 1  # custom_settings CLOSESPIDER_PAGECOUNT
    result = crawl(str(spider), *base, "-s", "CLOSESPIDER_PAGECOUNT=3", "-s", "ROBOTSTXT_OBEY=False")
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(out)) == 3
    result = crawl(str(spider), *base, "-s", "max_pages=2", "-s", "per_host=1")
    assert len(read_jsonl(out)) == 2, result.stderr


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("SPEED=3", "crawl: error: -s: unknown setting(s) SPEED; supported: allow_private"),
        ("CONCURRENT_REQUESTS", "crawl: error: -s takes NAME=VALUE, not 'CONCURRENT_REQUESTS'"),
        ("CONCURRENT_REQUESTS=many", "crawl: error: -s CONCURRENT_REQUESTS: not a whole number: 'many'"),
        ("ITEM_PIPELINES={}", "crawl: error: -s ITEM_PIPELINES: set it in the spider's custom_settings"),
    ],
)
def test_bad_dash_s_is_one_line_and_exit_2(tmp_path: Path, pair: str, message: str) -> None:
    result = crawl(str(write_spider(tmp_path, LISTING)), "-s", pair)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1


def test_custom_settings_log_level_and_log_file(tmp_path: Path, chain: Any) -> None:
    spider = write_spider(tmp_path, LISTING.replace('{"CLOSESPIDER_PAGECOUNT": 1}', '{"LOG_LEVEL": "DEBUG"}'))
    log = tmp_path / "crawl.log"
    result = crawl(str(spider), "-a", f"base_url={chain.url}", "-s", f"LOG_FILE={log}", "--no-progress")
    assert result.returncode == 0, result.stderr
    text = log.read_text(encoding="utf-8")
    assert f"DEBUG   crawler.engine: Crawled (200) <GET {chain.url}/0> (referer: None)" in text
    assert f"Crawled (200) <GET {chain.url}/1> (referer: {chain.url}/0)" in text
    assert "Crawled" not in result.stderr
    quiet_log = tmp_path / "quiet.log"  # --log-level beats the spider's LOG_LEVEL
    args = ["-a", f"base_url={chain.url}", "--log-level", "INFO", "--logfile", str(quiet_log)]
    quiet = crawl(str(spider), *args)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet_log.exists() and "Crawled" not in quiet_log.read_text(encoding="utf-8")


def test_an_unwritable_log_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = crawl(str(write_spider(tmp_path, LISTING)), "--logfile", str(tmp_path / "no" / "x.log"))
    assert result.returncode == 1
    assert result.stderr.startswith(f"crawl: error: cannot write the log to {tmp_path / 'no' / 'x.log'}: ")


def test_runspider_is_an_alias_and_the_spiders_folder_is_importable(tmp_path: Path, chain: Any) -> None:
    (tmp_path / "helpers.py").write_text("def shout(text):\n    return text.upper()\n")
    spider = write_spider(
        tmp_path,
        LISTING.replace("from crawler import Spider", "from crawler import Spider\nfrom helpers import shout")
        .replace('yield {"url": response.url}', 'yield {"title": shout(response.css("title::text").get())}'),
    )  # fmt: skip
    out = tmp_path / "items.jsonl"
    for workers in ("0", "1"):  # in the main process, and in a parse worker
        args = ["-a", f"base_url={chain.url}", "-O", str(out), "--parse-workers", workers]
        result = crawl("runspider", str(spider), *args, cwd=Path("/"))
        assert result.returncode == 0, result.stderr
        assert read_jsonl(out) == [{"title": "PAGE 0"}]


def test_a_missing_py_gets_a_hint(tmp_path: Path) -> None:
    write_spider(tmp_path, LISTING, name="shop.py")
    result = crawl("shop", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "crawl: error: spider file not found: shop (did you mean shop.py?)\n"
    result = crawl("nothing", cwd=tmp_path)
    assert "(crawl takes the path of a spider's .py file)" in result.stderr


def test_version_prints_one_line() -> None:
    from crawler import __version__

    result = crawl("version")
    assert (result.returncode, result.stdout) == (0, f"crawler {__version__}\n")


def test_an_item_pipeline_that_cannot_load_is_one_line(tmp_path: Path) -> None:
    spider = write_spider(
        tmp_path, LISTING.replace('"CLOSESPIDER_PAGECOUNT": 1', '"ITEM_PIPELINES": {"spider.Missing": 1}')
    )
    result = crawl(str(spider))
    assert result.returncode == 1
    assert result.stderr.startswith("crawl: error: ITEM_PIPELINES: cannot load 'spider.Missing': ")


# -- callbacks ---------------------------------------------------------------------------------

SHARED_STATE = """
from crawler import Spider, Request

class CountingSpider(Spider):
    name = "counting"
    base_url = "http://127.0.0.1:9"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = set()
        self._cache = {}  # private: a per-process cache is fine

    def start_requests(self):
        yield Request(self.base_url + "/0")

    def parse(self, response):
        self.seen.add(response.url)
        self._cache[response.url] = True
        yield {"url": response.url}
        yield from response.follow_all("a")
"""


def test_a_callback_changing_spider_state_in_a_worker_warns_once(tmp_path: Path, chain: Any) -> None:
    spider = write_spider(tmp_path, SHARED_STATE)
    result = crawl(str(spider), "-a", f"base_url={chain.url}", "--parse-workers", "1", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("changed spider attribute") == 1, result.stderr
    assert "callback parse changed spider attribute 'seen' in a parse worker" in result.stderr
    assert "_cache" not in result.stderr
    assert "Keep shared state in a pipeline, in an async def callback, or run with --parse-workers 0" in (
        result.stderr
    )
    in_process = crawl(str(spider), "-a", f"base_url={chain.url}", "--parse-workers", "0", "--no-progress")
    assert "changed spider attribute" not in in_process.stderr


class KwargsSpider(Spider):
    def parse(self, response: Response) -> Any:
        yield response.follow("/item", callback=self.parse_item, cb_kwargs={"category": "books", "page": 2})

    def parse_item(self, response: Response, category: str, page: int) -> Any:
        same = response.cb_kwargs == {"category": category, "page": page}
        yield {"category": category, "page": page, "same": same}


def test_cb_kwargs_are_keyword_arguments_of_the_callback() -> None:
    listing = run_callback(KwargsSpider(), fake_response("<p>x</p>", "http://shop.test/"), raise_errors=True)
    (request,) = listing.requests
    assert request.cb_kwargs == {"category": "books", "page": 2}
    response = fake_response("<p>x</p>", request.url, request=request)
    item = run_callback(KwargsSpider(), response, raise_errors=True)
    assert item.items == [{"category": "books", "page": 2, "same": True}]
    made = fake_response("<p>x</p>", callback="parse_item", cb_kwargs={"category": "toys", "page": 1})
    assert run_callback(KwargsSpider(), made).items == [{"category": "toys", "page": 1, "same": True}]


EVENTS: list[tuple[Any, ...]] = []


class HookSpider(Spider):
    name = "hooks"

    async def open(self) -> None:
        EVENTS.append(("open", os.getpid()))

    def closed(self, reason: str) -> None:
        EVENTS.append(("closed", reason, os.getpid()))

    async def start(self) -> Any:  # Scrapy 2.13's way to begin
        yield Request(self.base_url + "/0")

    def parse(self, response: Response) -> Any:
        yield {"url": response.url}


def test_open_and_closed_run_once_in_the_main_process(crawl_items: Any, chain: Any) -> None:
    EVENTS.clear()
    items, _ = crawl_items(HookSpider, [], spider_args={"base_url": chain.url}, parse_workers=1)
    assert items == [{"url": chain.url + "/0"}]
    pid = os.getpid()
    assert EVENTS == [("open", pid), ("closed", "finished", pid)]  # noqa: SIM300


class Broken(Spider):
    def parse(self, response: Response) -> Any:
        yield response.follow("http://elsewhere.test/x")
        yield response.follow("/missing")
        yield response.follow("/missing")
        yield response.follow("/missing")


def test_dropped_requests_are_logged_at_debug_with_their_reason(
    serve: Any, crawl_items: Any, caplog: pytest.LogCaptureFixture
) -> None:
    site = serve({"/": html("home")})
    with caplog.at_level(logging.DEBUG, logger="crawler"):
        crawl_items(Broken, [site.url + "/"])
    text = caplog.text
    assert f"Crawled (200) <GET {site.url}/> (referer: None)" in text
    assert f"Crawled (404) <GET {site.url}/missing> (referer: {site.url}/)" in text
    assert f"Dropped <GET http://elsewhere.test/x> (offsite) found on {site.url}/" in text
    assert f"Dropped <GET {site.url}/missing> (duplicate); no more duplicates will be shown" in text
    assert text.count("(duplicate)") == 1
    assert f"Dropped <404 {site.url}/missing> (http_status" in text
