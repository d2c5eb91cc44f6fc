"""The ``crawl`` command, run as a user runs it: a subprocess of the installed script."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from crawler.sites.server import Page

from ..support.cli import CRAWL, SPIDER, crawl
from ..support.items import read_jsonl
from ..support.sites import html

CONTRACT_OPTIONS = (
    *("-o", "-O", "-a", "--concurrency", "--per-host", "--rate", "--depth", "--max-pages"),
    *("--job", "--frontier", "--parse-workers", "--stats", "--log-level", "--no-progress"),
)


@pytest.fixture
def spider_file(tmp_path: Path) -> Path:
    path = tmp_path / "cli_spider.py"
    path.write_text(SPIDER)
    return path


@pytest.fixture
def site(serve):
    return serve({f"/{i}": html(f"page {i}", [f"/{i + 1}"] if i < 4 else []) for i in range(5)})


def test_append_then_overwrite(spider_file, site, tmp_path):
    out = tmp_path / "items.jsonl"
    args = [str(spider_file), "-a", f"start={site.url}/0", "--no-obey-robots"]
    assert crawl(*args, "-o", str(out)).returncode == 0
    assert crawl(*args, "-o", str(out)).returncode == 0
    assert len(read_jsonl(out)) == 10
    result = crawl(*args, "-O", str(out))
    assert result.returncode == 0, result.stderr
    items = read_jsonl(out)
    assert len(items) == 5 and items[0]["note"] == "café"
    assert "café".encode() in out.read_bytes()  # UTF-8, not \\u escapes


def test_stdout_output_keeps_logs_on_stderr(spider_file, site):
    result = crawl(str(spider_file), "-a", f"start={site.url}/0", "-o", "-", "--no-obey-robots")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sorted(json.loads(line)["title"] for line in lines) == [f"page {i}" for i in range(5)]
    assert "pages" in result.stderr


def test_stats_file_and_flags(spider_file, site, tmp_path):
    stats_path = tmp_path / "stats.json"
    result = crawl(
        str(spider_file), "-a", f"start={site.url}/0", "--stats", str(stats_path),
        "--max-pages", "3", "--concurrency", "2", "--parse-workers", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["pages"] == 3 and stats["items"] == 3
    assert stats["finish_reason"] == "max_pages"
    assert stats["status"]["200"] == 3


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (None, "spider file not found"),
        ("def broken(:\n", "syntax error"),
        ("import nonexistent_module_xyz\n", "ModuleNotFoundError"),
        ("x = 1\n", "no Spider subclass"),
    ],
)
def test_bad_spider_files_exit_1_with_one_line(tmp_path, contents, message):
    path = tmp_path / "bad_spider.py"
    if contents is not None:
        path.write_text(contents)
    result = crawl(str(path), "-o", str(tmp_path / "out.jsonl"))
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--concurrency", "0"],
        ["--concurrency", "many"],
        ["--rate", "-1"],
        ["-a", "no_equals_sign"],
        ["-o", "a.jsonl", "-O", "b.jsonl"],
        ["--log-level", "LOUD"],
        ["--no-such-option"],
    ],
)
def test_usage_errors_exit_2(spider_file, args, tmp_path):
    result = crawl(str(spider_file), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_output_exits_1(spider_file, tmp_path):
    result = crawl(str(spider_file), "-o", str(tmp_path / "missing" / "dir" / "out.jsonl"))
    assert result.returncode == 1
    assert "cannot open output" in result.stderr
    assert "Traceback" not in result.stderr


def test_full_disk_stops_the_crawl_with_a_clear_message(spider_file, site):
    result = crawl(str(spider_file), "-a", f"start={site.url}/0", "-o", "/dev/full", "--no-obey-robots")
    assert result.returncode == 1
    assert "No space left" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_log_level_shows_the_traceback(tmp_path):
    path = tmp_path / "bad_spider.py"
    path.write_text("raise RuntimeError('boom')\n")
    result = crawl(str(path), "--log-level", "DEBUG")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "boom" in result.stderr


def test_ctrl_c_stops_cleanly_with_exit_130(spider_file, serve, tmp_path):
    slow = serve({f"/{i}": Page(html(f"p{i}", [f"/{i + 1}"]).body, delay=0.3) for i in range(1000)})
    out = tmp_path / "items.jsonl"
    args = [
        str(spider_file),
        "-a",
        f"start={slow.url}/0",
        "-o",
        str(out),
        "--no-obey-robots",
        "--no-progress",
    ]
    process = subprocess.Popen([CRAWL, *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(slow.hits) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert time.monotonic() - started < 6
    items = read_jsonl(out)  # every line is whole JSON
    assert 3 <= len(items) < 1000
    assert "stopped" in stderr


def test_help_lists_the_contract_options():
    result = crawl("--help")
    assert result.returncode == 0
    for option in CONTRACT_OPTIONS:
        assert option in result.stdout, option


def test_progress_line_is_drawn_on_a_terminal(spider_file, serve, tmp_path):
    import pty

    slow = serve(
        {f"/{i}": Page(html(f"p{i}", [f"/{i + 1}"] if i < 5 else []).body, delay=0.25) for i in range(6)}
    )
    primary, secondary = pty.openpty()
    args = [
        str(spider_file),
        "-a",
        f"start={slow.url}/0",
        "-o",
        str(tmp_path / "o.jsonl"),
        "--no-obey-robots",
    ]
    process = subprocess.Popen([CRAWL, *args], stderr=secondary, stdout=subprocess.DEVNULL)
    os.close(secondary)
    seen = _read_all(primary)
    assert process.wait(timeout=30) == 0
    # the live line: pages, rate, items, errors, queue, hosts
    assert "pages (" in seen and "queued" in seen and "1 hosts" in seen
    assert "crawl finished" in seen


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("name", ["items.jsonl.gz", "items.csv"])
def test_output_format_follows_the_file_name(spider_file, site, tmp_path, name):
    import csv
    import gzip

    out = tmp_path / name
    for flag in ("-O", "-o"):  # written, then appended to
        result = crawl(str(spider_file), "-a", f"start={site.url}/0", flag, str(out), "--no-obey-robots")
        assert result.returncode == 0, result.stderr
    if name.endswith(".gz"):
        with gzip.open(out, "rt", encoding="utf-8") as lines:
            rows = [json.loads(line) for line in lines]
    else:
        with out.open(encoding="utf-8", newline="") as table:
            rows = list(csv.DictReader(table))
    assert len(rows) == 10 and {row["note"] for row in rows} == {"café"}


def test_new_writes_a_spider_that_runs(tmp_path, site):
    result = crawl("new", "quick-shop", f"{site.url}/0", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "items.jsonl"
    result = crawl(str(tmp_path / "quick-shop.py"), "-o", str(out), "--no-obey-robots")
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(out)) == 5
    again = crawl("new", "quick-shop", "--dir", str(tmp_path))
    assert again.returncode == 1 and "already exists" in again.stderr


def test_parse_workers_die_with_a_crawl_killed_by_sigkill(spider_file, serve):
    slow = serve({f"/{i}": Page(html(f"p{i}", [f"/{i + 1}"]).body, delay=0.3) for i in range(50)})
    args = [str(spider_file), "-a", f"start={slow.url}/0", "--no-obey-robots", "--parse-workers", "2"]
    process = subprocess.Popen([CRAWL, *args, "--no-progress"], stderr=subprocess.DEVNULL)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    deadline = time.monotonic() + 20
    while len(workers := children.read_text().split()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers) == 2
    process.kill()
    process.wait()
    deadline = time.monotonic() + 5
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if _running(pid)]  # no orphan waits on its pipe forever


def _running(pid: str) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# -- one framework, flags made from the settings' fields ------------------------------


def flat(text: str) -> str:
    """Help text with click's line wrapping undone."""
    return " ".join(text.split())


def test_help_shows_each_setting_default_once_from_the_field():
    from crawler._settings import SETTING_FIELDS, setting_info
    from crawler.cli.options import shown_default

    listing = flat(crawl("--help").stdout)
    for spec in SETTING_FIELDS:
        info, shown = setting_info(spec), shown_default(spec)
        assert info.help and not re.search(r"\[.*\]\.?$", info.help), spec.name  # no default restated
        described = f"{info.help} [default: {shown}]" if shown else info.help
        assert listing.count(described) == 1, (spec.name, described)


@pytest.mark.parametrize(
    ("command", "settings"),
    [
        (["parse"], ("obey_robots", "user_agent", "timeout", "cache", "render", "wait_for")),
        (["shell"], ("obey_robots", "user_agent", "timeout", "cache", "render", "wait_for")),
        (["bench"], ("concurrency", "per_host", "parse_workers", "autothrottle")),
    ],
)
def test_other_commands_describe_their_setting_flags_as_crawl_does(command, settings):
    from crawler._settings import SETTING_FIELDS, setting_info
    from crawler.cli.options import shown_default

    listing = flat(crawl(*command, "--help").stdout)
    for spec in SETTING_FIELDS:
        flag = "--" + spec.name.replace("_", "-")
        shown = shown_default(spec)
        described = f"{setting_info(spec).help} [default: {shown}]" if shown else setting_info(spec).help
        assert (flag in listing and described in listing) == (spec.name in settings), spec.name


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ([], "crawl: error: Missing argument 'SPIDER.py'; see 'crawl --help'"),
        (["{spider}", "--concurency", "3"], "crawl: error: No such option: --concurency (Possible"),
        (["{spider}", "-o"], "crawl: error: Option '-o' requires an argument; see 'crawl --help'"),
        (["parse", "http://127.0.0.1:9/"], "crawl parse: error: Missing argument 'SPIDER.py'"),
        (["shell", "http://127.0.0.1:9/", "--timout", "1"], "crawl shell: error: No such option: --timout"),
        (["bench", "--per-host", "many"], "crawl bench: error: Invalid value for '--per-host': "),
        (["new"], "crawl new: error: Missing argument 'NAME'; see 'crawl new --help'"),
        (["job", "a", "b"], "crawl job: error: Got unexpected extra argument"),
        (["demo", "--serve", "--port", "-1"], "crawl demo --serve: error: Invalid value for '--port'"),
    ],
)  # fmt: skip
def test_each_command_reports_a_usage_error_in_one_line(spider_file, args, line):
    result = crawl(*(arg.format(spider=spider_file) for arg in args))
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(line), result.stderr


def test_a_usage_error_is_a_json_line_with_log_format_json(spider_file):
    result = crawl(str(spider_file), "--log-format", "json", "--rate", "fast")
    assert result.returncode == 2
    record = json.loads(result.stderr)
    assert record["message"].startswith("crawl: error: Invalid value for '--rate': ")


def test_setting_flags_reach_the_crawl(spider_file, site, tmp_path):
    """Flags made from the fields: a repeated one becomes a tuple, a bool pair turns a
    setting off, and values are checked by the setting's own check."""
    stats_path = tmp_path / "stats.json"
    result = crawl(
        str(spider_file), "-a", f"start={site.url}/0", "--stats", str(stats_path), "--no-obey-robots",
        "--allowed-domains", "example.com", "--allowed-domains", "127.0.0.1", "--keep-session-ids",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(stats_path.read_text())["pages"] == 5
    offsite = ["--allowed-domains", "example.com", "--no-obey-robots", "--stats", str(stats_path)]
    assert crawl(str(spider_file), "-a", f"start={site.url}/0", *offsite).returncode == 0
    stats = json.loads(stats_path.read_text())
    assert stats["pages"] == 1 and stats["dropped"]["offsite"] == 1  # the start URL, not its link
    bad = crawl(str(spider_file), "--politeness-key", "port")
    assert bad.returncode == 2
    assert bad.stderr == "crawl: error: politeness_key must be 'host' or 'ip', not 'port'\n"


def test_the_readme_names_every_setting_in_the_synopsis_and_the_table():
    from crawler._settings import SETTING_FIELDS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    synopsis = readme.split("## Command line\n\n```\n", 1)[1].split("```", 1)[0]
    table = readme.split("## Settings\n", 1)[1].split("\n## ", 1)[0]
    for spec in SETTING_FIELDS:
        flag = spec.name.replace("_", "-")
        assert re.search(rf"\[--(no-)?{flag}[ \]/]", synopsis), flag  # or --no-NAME, if on by default
        assert f"| `{spec.name}` |" in table, spec.name


def test_a_misspelt_setting_attribute_is_warned_about_once(site, tmp_path):
    spider = tmp_path / "typo.py"
    spider.write_text(SPIDER.replace('    name = "cli"\n', '    name = "cli"\n    per_hots = 2\n'))
    out = str(tmp_path / "out.jsonl")
    result = crawl(str(spider), "-a", f"start={site.url}/0", "-o", out, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("'per_hots' of CliSpider is not a setting: did you mean per_host?") == 1
