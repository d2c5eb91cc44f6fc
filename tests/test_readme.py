"""The README's tutorial, followed step by step against the demo shop as a new user would."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.demo import serve_demo
from crawler.sites.server import SiteServer

from .support.cli import crawl
from .support.items import read_jsonl

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
DOCUMENTED_URL = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def shop() -> Iterator[SiteServer]:
    server = serve_demo()
    yield server
    server.stop()


def tutorial_file(name: str, shop: SiteServer) -> str:
    """The code block the README marks ``<!-- tutorial: NAME -->``, pointed at ``shop``."""
    match = re.search(rf"<!-- tutorial: {re.escape(name)} -->\n```python\n(.*?)```", README, re.S)
    assert match is not None, f"the README has no tutorial block for {name}"
    return match.group(1).replace(DOCUMENTED_URL, shop.url)


def shell_session() -> tuple[str, list[str]]:
    """The tutorial's ``crawl shell`` URL, and its ``>>>`` lines with their outputs."""
    match = re.search(r"```sh\ncrawl shell (\S+)\n(.*?)```", README, re.S)
    assert match is not None
    return match.group(1), match.group(2).splitlines()


@pytest.fixture
def workdir(tmp_path: Path, shop: SiteServer) -> Path:
    for name in ("shop.py", "test_shop.py"):
        (tmp_path / name).write_text(tutorial_file(name, shop), encoding="utf-8")
    return tmp_path


def test_the_template_runs_as_written(tmp_path: Path, shop: SiteServer) -> None:
    assert crawl("new", "shop", cwd=tmp_path).returncode == 0
    template = tmp_path / "shop.py"
    template.write_text(template.read_text().replace(DOCUMENTED_URL, shop.url))
    result = crawl("shop.py", "-O", "pages.jsonl", "--max-pages", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(tmp_path / "pages.jsonl")) == 5


def test_the_shell_session_prints_what_the_readme_shows(shop: SiteServer) -> None:
    url, lines = shell_session()
    commands = [line.removeprefix(">>> ") for line in lines if line.startswith(">>> ")]
    expected = [line for line in lines if not line.startswith(">>> ")]
    stdin = "\n".join(commands).replace(DOCUMENTED_URL, shop.url) + "\n"
    result = crawl("shell", url.replace(DOCUMENTED_URL, shop.url), "--no-ipython", input=stdin)
    assert result.returncode == 0, result.stderr
    printed = [line for line in result.stdout.replace(">>> ", "\n").splitlines() if line.strip()]
    assert printed == [line.replace(DOCUMENTED_URL, shop.url) for line in expected]


def test_crawl_parse_shows_the_product_item(workdir: Path, shop: SiteServer) -> None:
    url = shop.url + "/product/highland-espresso.html"
    result = crawl("parse", url, "shop.py", "--callback", "parse_product", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert '"name": "Highland Espresso"' in result.stdout and '"in_stock": true' in result.stdout
    listing = crawl("parse", shop.url + "/category/books/", "shop.py", cwd=workdir)
    assert "# 11 request(s) a crawl would queue" in listing.stdout  # as the README says


def test_the_tutorial_tests_pass(workdir: Path) -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_shop.py"]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout
    assert "2 passed" in result.stdout


def test_the_crawl_writes_60_products_then_replays_them_from_the_cache(
    workdir: Path, shop: SiteServer
) -> None:
    hits_before_replay = 0
    for run in ("live", "replay"):
        if run == "replay":
            hits_before_replay = len(shop.hits)
        result = crawl("shop.py", "-O", "products.jsonl", "--cache", ".cache", cwd=workdir)
        assert result.returncode == 0, result.stderr
        products = read_jsonl(workdir / "products.jsonl")
        assert len(products) == 60 and len({p["url"] for p in products}) == 60
    assert len(shop.hits) == hits_before_replay  # the replay asked the shop nothing
