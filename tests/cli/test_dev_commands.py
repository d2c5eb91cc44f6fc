"""``crawl parse``, ``crawl shell`` and ``--log-format json``, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from crawler.sites.server import Page

from ..support.cli import CRAWL, crawl
from ..support.sites import html, robots

SPIDER = """
from crawler import Spider

class ShopSpider(Spider):
    name = "shop"
    start_urls = ["http://127.0.0.1:9/"]

    def parse(self, response):
        yield {"title": response.css_first("title").text()}
        yield from response.follow_all("a")

    def parse_product(self, response):
        yield {"name": response.css_first("h1").text(), "price": float(response.css_first(".price").text())}

    async def parse_stock(self, response):
        api = await self.fetch(response.urljoin("/api/stock.json"))
        return {"name": response.css_first("h1").text(), "stock": api.json()["stock"]}
"""


@pytest.fixture
def spider_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.py"
    path.write_text(SPIDER)
    return path


@pytest.fixture
def shop(serve):
    product = Page(b'<html><title>Kettle</title><h1>Kettle</h1><p class="price">oops</p></html>')
    return serve(
        {
            "/": html(
                "Home", ["/", "/p/1", "/p/1#reviews", "/admin/", "http://other.test/x", "mailto:a@b.c"]
            ),
            "/p/1": Page(b'<html><title>Kettle</title><h1>Kettle</h1><p class="price">12.5</p></html>'),
            "/p/2": product,
            "/old": Page(b"", 301, (("Location", "/p/1"),)),
            "/api/stock.json": Page(b'{"stock": 7}', headers=(("Content-Type", "application/json"),)),
            "/robots.txt": robots("User-agent: *\nDisallow: /admin/\n"),
            "/admin/": html("Staff"),
        }
    )


def test_parse_prints_items_and_the_requests_a_crawl_would_queue(spider_file, shop):
    result = crawl("parse", shop.url + "/", str(spider_file))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"# {shop.url}/: HTTP 200" in out
    assert '"title": "Home"' in out
    assert f"GET {shop.url}/p/1 -> parse (depth 1)" in out
    assert f"GET {shop.url}/admin/ -> parse (depth 1)" in out  # robots.txt is checked when it is fetched
    # "/" is a duplicate; "/p/1#reviews" is "/p/1" to follow_all, which follows it once
    assert "1 duplicate" in out and "1 offsite" in out and "1 unsupported_scheme" in out


def test_parse_json_runs_the_named_callback_after_redirects(spider_file, shop):
    result = crawl("parse", shop.url + "/old", str(spider_file), "--callback", "parse_product", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["url"] == shop.url + "/p/1" and report["redirects"] == [shop.url + "/old"]
    assert report["items"] == [{"name": "Kettle", "price": 12.5}]
    assert report["requests"] == [] and report["errors"] == []


def test_parse_shows_a_callback_error_in_full_and_fails(spider_file, shop):
    result = crawl("parse", shop.url + "/p/2", str(spider_file), "-c", "parse_product")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: could not convert string to float: 'oops'" in result.stderr
    assert 'shop.py", line' in result.stderr and "in parse_product" in result.stderr


def test_parse_runs_an_async_callback_that_fetches(spider_file, shop):
    result = crawl("parse", shop.url + "/p/1", str(spider_file), "-c", "parse_stock", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["items"] == [{"name": "Kettle", "stock": 7}]


def test_parse_obeys_robots_txt(spider_file, shop):
    result = crawl("parse", shop.url + "/admin/", str(spider_file))
    assert result.returncode == 1
    assert result.stderr.strip() == f"crawl parse: error: {shop.url}/admin/ refused: robots.txt disallows it"
    assert not shop.hits_for("/admin/")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://127.0.0.1:9/", "missing.py"], "crawl parse: error: spider file not found: missing.py"),
        (
            ["http://127.0.0.1:9/", "{spider}", "-c", "nope"],
            "crawl parse: error: spider ShopSpider has no callback 'nope'",
        ),
        (["not a url", "{spider}"], "crawl parse: error: 'not a url' is not an http(s) URL (invalid url)"),
    ],
)
def test_parse_bad_input_gets_one_clear_line(spider_file, args, message):
    result = crawl("parse", *(arg.format(spider=spider_file) for arg in args))
    assert result.returncode in (1, 2)
    assert result.stderr.strip().splitlines() == [message]


def test_parse_refuses_a_status_the_spider_does_not_handle(spider_file, shop):
    result = crawl("parse", shop.url + "/missing", str(spider_file))
    assert result.returncode == 1
    assert "not called: HTTP 404 is not in the spider's handle_httpstatus_list" in result.stdout


def test_shell_evaluates_code_against_the_fetched_page(shop):
    result = crawl("shell", shop.url + "/p/1", "-c", "text('h1'), response.status, len(css('p'))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "('Kettle', 200, 1)"


def test_shell_runs_a_spider_callback_with_fetches(spider_file, shop):
    code = "run('parse_stock').items"
    result = crawl("shell", shop.url + "/p/1", str(spider_file), "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[{'name': 'Kettle', 'stock': 7}]"


def test_shell_reads_commands_from_stdin_and_fetch_replaces_the_response(shop):
    commands = (
        f"print(response.status)\n_ = fetch('{shop.url}/api/stock.json')\nprint(response.json()['stock'])\n"
    )
    result = crawl("shell", shop.url + "/", "--no-ipython", input=commands)
    assert result.returncode == 0, result.stderr
    assert result.stdout.replace(">>>", "").split() == ["200", "7"]  # prompts go to stdout too
    assert len(shop.hits_for("/robots.txt")) == 1  # one fetcher per host for the whole session


def test_shell_code_that_raises_exits_1_with_its_traceback(shop):
    result = crawl("shell", shop.url + "/", "-c", "response.json()")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "JSONDecodeError" in result.stderr


def test_shell_unreachable_url_is_one_clear_line(unused_port):
    result = crawl("shell", f"http://127.0.0.1:{unused_port}/", "-c", "1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"crawl shell: error: http://127.0.0.1:{unused_port}/ refused: its robots.txt")
    assert f"cannot connect to 127.0.0.1:{unused_port}: Connection refused" in lines[0]


def test_log_format_json_writes_one_object_per_line(spider_file, shop, tmp_path):
    spider_file.write_text(SPIDER.replace("http://127.0.0.1:9/", shop.url + "/"))
    result = crawl(str(spider_file), "-o", str(tmp_path / "o.jsonl"), "--log-format", "json", "--depth", "1")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    final = records[-1]
    assert final["message"] == "crawl finished" and final["stats"]["pages"] == 2


def test_a_bad_log_format_is_a_usage_error(spider_file):
    result = crawl(str(spider_file), "--log-format", "xml")
    assert result.returncode == 2
    assert result.stderr.strip() == "crawl: error: --log-format must be one of text, json, not 'xml'"


def test_help_names_every_subcommand_and_each_has_help():
    from crawler.cli.main import SUBCOMMANDS

    listing = crawl("--help").stdout
    for name in SUBCOMMANDS:
        assert f"crawl {name}" in listing, name
        result = crawl(name, "--help")
        assert result.returncode == 0 and "usage" in result.stdout.lower(), name


TWO_SPIDERS = """
from crawler import Spider

class First(Spider):
    name = "first"

class Second(Spider):
    name = "second"
    note = "default"

    def parse(self, response):
        yield {"note": self.note, "title": response.css_first("title").text()}
"""


def test_parse_options_choose_the_spider_and_how_to_fetch(tmp_path, shop):
    spider = tmp_path / "two.py"
    spider.write_text(TWO_SPIDERS)
    url = shop.url + "/admin/"
    args = ["--spider", "second", "-a", "note=from -a", "--no-obey-robots", "--user-agent", "tester/1.0"]
    result = crawl("parse", url, str(spider), *args, "--json", "--timeout", "5")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["items"] == [{"note": "from -a", "title": "Staff"}]
    assert shop.hits_for("/admin/")[0].headers["user-agent"] == "tester/1.0"
    several = crawl("parse", url, str(spider))
    assert "several spiders (First, Second); choose one with --spider NAME" in several.stderr


def test_shell_opens_ipython_when_it_is_installed(tmp_path, shop):
    fake = tmp_path / "IPython"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "def start_ipython(argv, user_ns):\n"
        "    print('ipython', argv, sorted(k for k in user_ns if not k.startswith('_')))\n"
        "    print(user_ns['response'].status)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [CRAWL, "shell", shop.url + "/"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    names = "['Request', 'css', 'css_first', 'fetch', 'response', 'spider', 'text']"
    assert f"ipython ['--no-banner'] {names}\n200\n" in result.stdout
