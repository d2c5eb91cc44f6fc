"""Every mistake a user can make gets one clear line and the right exit code, and no
run damages a file the user already had (issue 12). Each test runs ``crawl`` as a
subprocess against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from crawler.demo import DEMO_PRODUCT_COUNT, serve_demo
from crawler.sites.server import Page

from ..support.cli import CRAWL
from ..support.items import read_jsonl
from ..support.sites import html

REPO = Path(__file__).resolve().parents[2]
KEEP = '{"kept": true}\n'

SPIDER = """
from crawler import Spider

class PlainSpider(Spider):
    name = "plain"
    start_urls = []{extra}

    def parse(self, response):
        yield {{"url": response.url, "title": response.css_first("title").text()}}
        yield from response.follow_all("a")
"""


def write_spider(tmp_path: Path, extra: str = "", name: str = "spider.py") -> Path:
    path = tmp_path / name
    path.write_text(SPIDER.format(extra=extra))
    return path


def crawl(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [CRAWL, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if ": error: " in line]


@pytest.fixture
def site(serve):
    return serve({f"/{i}": html(f"page {i}", [f"/{i + 1}"] if i < 4 else []) for i in range(5)})


@pytest.fixture
def keep(tmp_path: Path) -> Path:
    path = tmp_path / "keep.jsonl"
    path.write_text(KEEP)
    return path


def start(site) -> list[str]:
    return ["-a", f"start_urls={site.url}/0", "--no-obey-robots", "--no-progress"]


# -- 1. -O never damages the old file ---------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        ["--stats", "/nonexistent/s.json"],
        ["--frontier", "redis://127.0.0.1:1/0"],
        ["-o", "x.jsonl"],  # a usage error: -o and -O
    ],
)
def test_a_failed_start_leaves_the_old_file_whole(tmp_path, site, keep, failure):
    result = crawl(str(write_spider(tmp_path)), *start(site), "-O", str(keep), *failure, cwd=tmp_path)
    assert result.returncode in (1, 2), result.stderr
    assert len(error_lines(result)) == 1
    assert keep.read_text() == KEEP
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.jsonl", "spider.py"]  # no temporary file


@pytest.mark.parametrize(
    "extra",
    [["--no-obey-robots"], [], ["--no-obey-robots", "--job", "job"]],
    ids=["page refused", "robots.txt refused", "a durable job"],
)
def test_a_crawl_where_nothing_answers_fails_and_leaves_the_old_file(tmp_path, keep, unused_port, extra):
    """A wrong port: every request fails. One line, exit 1, the old file whole."""
    spider = str(write_spider(tmp_path))
    args = ["-a", f"start_urls=http://127.0.0.1:{unused_port}/", "--no-progress", "-s", "retries=0", *extra]
    result = crawl(spider, *args, "-O", str(keep), cwd=tmp_path, timeout=90)
    assert result.returncode == 1, result.stderr
    assert error_lines(result) == ["crawl: error: nothing answered: 1 request(s) failed (see above)"]
    assert f"cannot connect to 127.0.0.1:{unused_port}: Connection refused" in result.stderr
    assert "ssl:default" not in result.stderr and "Traceback" not in result.stderr
    assert keep.read_text() == KEEP
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]  # no temporary file


def test_ctrl_c_before_the_first_item_leaves_the_old_file(tmp_path, serve, keep):
    slow = serve({"/": Page(b"<title>slow</title>", delay=20)})
    command = [
        CRAWL,
        str(write_spider(tmp_path)),
        "-a",
        f"start_urls={slow.url}/",
        "--no-obey-robots",
        "-O",
        str(keep),
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not slow.hits and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert keep.read_text() == KEEP  # not replaced by this run's empty output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.jsonl", "spider.py"]


def crawl_with_broken_pipeline(tmp_path, site, keep, hook: str, error: str):
    """Crawl into ``keep`` (-O) with a pipeline whose ``hook`` raises ``error``."""
    pipeline = f"\nclass Broken:\n    def {hook}(self, spider):\n        raise {error}\n"
    spider = write_spider(tmp_path, "\n    pipelines = [Broken]")
    spider.write_text(pipeline + spider.read_text())
    return crawl(str(spider), *start(site), "-O", str(keep))


def test_a_pipeline_whose_open_fails_leaves_the_file_and_is_named(tmp_path, site, keep):
    result = crawl_with_broken_pipeline(tmp_path, site, keep, "open", "OSError('no database')")
    assert result.returncode == 1
    assert error_lines(result) == ["crawl: error: pipeline Broken.open() failed: OSError: no database"]
    assert "crawl failed" in result.stderr  # the summary is still printed
    assert keep.read_text() == KEEP


def test_a_pipeline_whose_close_fails_is_named_after_the_summary(tmp_path, site, keep):
    result = crawl_with_broken_pipeline(tmp_path, site, keep, "close", "ValueError('flush')")
    assert result.returncode == 1
    assert error_lines(result) == ["crawl: error: pipeline Broken.close() failed: ValueError: flush"]
    assert "pages" in result.stderr
    assert len(read_jsonl(keep)) == 5  # the crawl's items were all written


def test_overwrite_replaces_the_file_only_at_the_end_and_a_kill_keeps_it(tmp_path, serve, keep):
    slow = serve({f"/{i}": Page(html(f"p{i}", [f"/{i + 1}"]).body, delay=0.05) for i in range(400)})
    command = [CRAWL, str(write_spider(tmp_path)), *start(slow), "-O", str(keep), "--concurrency", "1"]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(slow.hits) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert keep.read_text() == KEEP  # still the old file while the crawl runs
    process.kill()
    process.wait(timeout=10)
    assert keep.read_text() == KEEP  # a crash leaves the old file whole
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".keep.jsonl.")


def test_overwrite_replaces_the_file_when_the_crawl_finishes(tmp_path, site, keep):
    result = crawl(str(write_spider(tmp_path)), *start(site), "-O", str(keep))
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(keep)) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.jsonl", "spider.py"]


# -- 2. CSV: other columns are refused, new keys counted --------------------------------


def test_appending_other_columns_to_a_csv_is_refused(tmp_path, site):
    out = tmp_path / "mix.csv"
    assert crawl(str(write_spider(tmp_path)), *start(site), "-O", str(out)).returncode == 0
    before = out.read_bytes()
    other = write_spider(tmp_path, name="other.py")
    other.write_text(other.read_text().replace('"title":', '"heading":'))
    result = crawl(str(other), *start(site), "-o", str(out))
    assert result.returncode == 1
    assert error_lines(result) == [
        f"crawl: error: cannot append to {out}: its columns are url, title, and these items add heading; "
        "write them to another file, or replace it with -O"
    ]
    assert out.read_bytes() == before


def test_keys_a_later_item_adds_to_a_csv_are_counted_and_named(tmp_path, site):
    spider = write_spider(tmp_path)
    spider.write_text(spider.read_text().replace('"title":', '"title" if "/0" in response.url else "other":'))
    out, stats = tmp_path / "items.csv", tmp_path / "stats.json"
    result = crawl(str(spider), *start(site), "-O", str(out), "--stats", str(stats))
    assert result.returncode == 0, result.stderr
    assert "key 'other' is not in the CSV header (url, title)" in result.stderr
    assert json.loads(stats.read_text())["dropped"]["csv_field"] == 4


# -- 3, 15, 18. the demo shop ------------------------------------------------------------


def test_demo_serve_on_a_busy_port_out_of_range_or_unknown_host(unused_port):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = crawl("demo", "--serve", "--port", str(port))
    assert result.returncode == 1
    assert error_lines(result) == [
        f"crawl demo: error: cannot listen on 127.0.0.1:{port}: the port is busy "
        "(choose another with --port, or 0 for any)"
    ]
    result = crawl("demo", "--serve", "--port", "70000")
    assert result.returncode == 2 and "70000 is not a port number" in result.stderr
    result = crawl("demo", "--serve", "--host", "no-such-host.invalid", "--port", "0")
    assert result.returncode == 1
    assert error_lines(result)[0].startswith("crawl demo: error: cannot listen on 'no-such-host.invalid'")


def test_demo_serve_takes_the_next_free_port_when_8000_is_busy():
    try:
        holder = socket.create_server(("127.0.0.1", 8000))
    except OSError:
        holder = None  # busy already: the demo has to move all the same
    try:
        command = [CRAWL, "demo", "--serve"]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as server:
            assert server.stdout is not None
            announced = server.stdout.readline()
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=10) == 0
            assert server.stderr is not None
            said = server.stderr.read()
    finally:
        if holder is not None:
            holder.close()
    url = announced.split(" serving at ")[1].split()[0]
    assert url.startswith("http://127.0.0.1:80") and not url.startswith("http://127.0.0.1:8000/")
    port = url.removeprefix("http://127.0.0.1:").rstrip("/")
    assert f"port 8000 is busy: serving on {port}" in said  # the tutorial's spiders name 8000


def test_demo_help_and_version():
    result = crawl("demo", "--help")
    assert result.returncode == 0
    assert all(option in result.stdout for option in ("--serve", "--port", "--host"))
    result = crawl("--version")
    assert result.returncode == 0 and result.stdout.startswith("crawler ")


def test_catalog_honours_base_url(tmp_path):
    shop = serve_demo()
    try:
        out = tmp_path / "products.jsonl"
        result = crawl(str(REPO / "spiders" / "catalog.py"), "-a", f"base_url={shop.url}", "-O", str(out))
    finally:
        shop.stop()
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(out)) == DEMO_PRODUCT_COUNT


# -- 5-8. crawl parse, crawl shell, crawl job -------------------------------------------


@pytest.mark.parametrize("command", ["parse", "shell"])
def test_ctrl_c_while_parse_or_shell_fetches_exits_130(tmp_path, serve, command):
    slow = serve({"/": Page(b"<title>slow</title>", delay=20)})
    args = [CRAWL, command, slow.url + "/"]
    args += [str(write_spider(tmp_path)), "--no-obey-robots"] if command == "parse" else ["-c", "1"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not slow.hits and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 130
    assert "Traceback" not in stderr


def test_parse_with_an_unknown_callback_is_one_line(tmp_path, site):
    result = crawl("parse", site.url + "/0", str(write_spider(tmp_path)), "--callback", "nope")
    assert result.returncode == 2
    assert result.stderr.strip() == "crawl parse: error: spider PlainSpider has no callback 'nope'"


def closed_pipe_run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose reader is gone, as in ``crawl ... | head -1``."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            args, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, check=False
        )
    finally:
        os.close(write_end)


def test_a_closed_pipe_ends_job_and_parse_quietly(tmp_path, site):
    spider = write_spider(tmp_path)
    assert crawl(str(spider), *start(site), "--job", str(tmp_path / "job")).returncode == 0
    for args in (["job", str(tmp_path / "job")], ["parse", site.url + "/0", str(spider), "--no-obey-robots"]):
        result = closed_pipe_run([CRAWL, *args])
        assert result.returncode == 141, result.stderr
        assert result.stderr == ""


def test_a_closed_pipe_stops_a_crawl_to_stdout_quietly(tmp_path, serve):
    pages = serve({f"/{i}": html(f"p{i}", [f"/{i + 1}"], "x" * 20_000) for i in range(300)})
    result = closed_pipe_run([CRAWL, str(write_spider(tmp_path)), *start(pages), "-o", "-"])
    assert result.returncode == 141, result.stderr
    assert "error" not in result.stderr and "Traceback" not in result.stderr


def test_shell_shows_a_syntax_error_once(site):
    result = crawl("shell", site.url + "/0", "-c", 'css("h1')
    assert result.returncode == 1
    assert result.stderr.count("SyntaxError") == 1


# -- 9. items JSON cannot carry ----------------------------------------------------------


def test_items_json_cannot_carry_are_named_and_counted(tmp_path, site):
    spider = tmp_path / "odd.py"
    spider.write_text(
        "from decimal import Decimal\nfrom crawler import Spider\n\n"
        "class Odd(Spider):\n"
        "    name = 'odd'\n"
        "    def parse(self, response):\n"
        "        yield {'big': 2**70, 'price': Decimal('19.99'), 'tags': {'b', 'a'}}\n"
        "        yield {'score': float('nan')}\n"
        "        yield {(1, 2): 'tuple key'}\n"
    )
    out, stats = tmp_path / "odd.jsonl", tmp_path / "stats.json"
    result = crawl(str(spider), *start(site), "-o", str(out), "--stats", str(stats), "--max-pages", "1")
    assert result.returncode == 0, result.stderr
    assert out.read_text() == '{"big":1180591620717411303424,"price":"19.99","tags":["a","b"]}\n'
    assert "field 'score' is nan, which JSON cannot carry" in result.stderr
    assert "has a tuple key (1, 2)" in result.stderr
    assert json.loads(stats.read_text())["errors"]["item"] == 2


# -- 10, 11, 16. what is crawled --------------------------------------------------------


def test_no_start_url_is_a_usage_error(tmp_path, keep):
    result = crawl(str(write_spider(tmp_path)), "-O", str(keep))
    assert result.returncode == 2
    assert error_lines(result) == [
        "crawl: error: nothing to crawl: the spider has no start URL (set start_urls or -a start_urls=URL)"
    ]
    assert keep.read_text() == KEEP


def test_every_start_url_refused_is_a_usage_error(tmp_path):
    result = crawl(str(write_spider(tmp_path)), "-a", "start_urls=ftp://example.com/ mailto:a@b.c")
    assert result.returncode == 2
    assert "all 2 start URL(s) were refused" in result.stderr
    assert "finished already" not in result.stderr


def test_a_start_urls_string_is_split_on_whitespace(tmp_path, site):
    out = tmp_path / "items.jsonl"
    urls = f"{site.url}/3 {site.url}/4"
    result = crawl(
        str(write_spider(tmp_path)), "-a", f"start_urls={urls}", "--no-obey-robots", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "refused" not in result.stderr
    assert sorted(item["title"] for item in read_jsonl(out)) == ["page 3", "page 4"]


@pytest.mark.parametrize(
    ("flag", "attribute", "message"),
    [
        (["--allowed-domains", ""], "", "allowed domain '' is empty"),
        ([], '\n    allowed_domains = ["http://127.0.0.1/"]', "is a URL, not a host name (use '127.0.0.1')"),
    ],
)
def test_a_domain_that_can_never_match_is_refused(tmp_path, site, flag, attribute, message):
    result = crawl(str(write_spider(tmp_path, attribute)), *start(site), *flag)
    assert result.returncode == 2
    assert message in result.stderr and len(error_lines(result)) == 1


# -- 12, 13. outputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "x.json"], "a .json file would have to hold one JSON array"),
        (["-O", "x.csv.gz"], "CSV is written uncompressed"),
        (["-o", "a.jsonl", "-o", "b.jsonl"], "one output per crawl, not 2: a.jsonl, b.jsonl"),
        (["-o", "-", "--stats", "-"], "--stats - and -o - would share stdout"),
    ],
)
def test_outputs_that_would_mislead_are_refused(tmp_path, site, args, message):
    result = crawl(str(write_spider(tmp_path)), *start(site), *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(error_lines(result)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spider.py"]


def test_stats_dash_is_stdout(tmp_path, site):
    result = crawl(str(write_spider(tmp_path)), *start(site), "--stats", "-", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pages"] == 5
    assert not (tmp_path / "-").exists()


# -- 14. JSON logs --------------------------------------------------------------------------


def test_json_logs_make_every_stderr_line_json(tmp_path, site):
    spider = write_spider(tmp_path)
    spider.write_text(spider.read_text().replace("yield {", "1 / (len(response.url) % 1)\n        yield {"))
    command = [CRAWL, str(spider), *start(site), "--log-format", "json", "--max-pages", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    records = [json.loads(line) for line in result.stderr.splitlines()]
    failure = next(r for r in records if "callback parse failed" in r["message"])
    assert "ZeroDivisionError" in failure["exception"] and "Traceback" not in failure["message"]
    for args in (["--concurrency", "many"], ["-o", "x.json"], ["--stats", "/nonexistent/s.json"]):
        result = crawl(str(spider), *start(site), "--log-format", "json", *args, cwd=tmp_path)
        assert result.returncode in (1, 2)
        records = [json.loads(line) for line in result.stderr.splitlines()]
        assert records[-1]["level"] == "ERROR" and records[-1]["message"].startswith("crawl: error: ")


# -- a spider's callbacks -----------------------------------------------------------


MISSPELT_CALLBACK = """
from crawler import Spider

class Shop(Spider):
    name = "shop"

    def parse(self, response):
        yield from response.follow_all("a", callback="parse_itme")

    def parse_item(self, response):
        yield {"url": response.url}
"""


@pytest.mark.parametrize(
    ("source", "line"),
    [
        (MISSPELT_CALLBACK, "spider Shop has no callback 'parse_itme' (did you mean parse_item?)"),
        (
            "from crawler import Spider\nclass Bare(Spider):\n    name = 'bare'\n",
            "spider Bare has no parse(): define it, or give its requests a callback",
        ),
    ],
    ids=["misspelt callback", "no parse"],
)
def test_a_missing_callback_is_one_line_once_not_a_traceback_per_page(tmp_path, site, source, line):
    spider = tmp_path / "spider.py"
    spider.write_text(source)
    result = crawl(str(spider), *start(site), "-o", str(tmp_path / "out.jsonl"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # callback errors are counted, not fatal
    assert [text for text in result.stderr.splitlines() if "ERROR" in text] == [
        text for text in result.stderr.splitlines() if text.endswith(line)
    ]
    assert result.stderr.count(line) == 1 and "errors/callback" in result.stderr
