"""A typical Scrapy spider runs here with only its import line changed, and yields
the same items as under Scrapy.

``spiders/ported.py`` crawls the demo shop with ``::text``/``::attr()`` CSS, XPath,
``.get()``/``.getall()``, ``cb_kwargs``, ``custom_settings`` (``DOWNLOAD_DELAY``,
``CONCURRENT_REQUESTS_PER_DOMAIN``, ``ITEM_PIPELINES``), a Scrapy pipeline and
``closed()``. Scrapy is not a test dependency (it is in the ``bench`` extra), so
the items it yields are checked in (``tests/data/ported_shop_items.jsonl``, from
``scrapy runspider`` 2.19 on the same file with ``from scrapy import Request, Spider``);
when Scrapy is installed, the second test runs it side by side.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crawler import Settings
from crawler._scrapynames import IGNORED, UNSUPPORTED, field_types, supported_names
from crawler.demo import serve_demo

from .support.cli import CRAWL
from .support.items import read_jsonl

REPO = Path(__file__).resolve().parents[1]
PORTED = REPO / "spiders" / "ported.py"
EXPECTED = Path(__file__).parent / "data" / "ported_shop_items.jsonl"
OUR_IMPORT = "from crawler import Request, Spider"


@pytest.fixture(scope="module")
def shop() -> Any:
    server = serve_demo()
    yield server
    server.stop()


def by_url(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: item["url"])


def crawl_ported(shop: Any, tmp_path: Path) -> tuple[list[dict[str, Any]], str]:
    out, log = tmp_path / "ours.jsonl", tmp_path / "ours.log"
    command = [CRAWL, "runspider", str(PORTED), "-a", f"base_url={shop.url}", "-O", str(out)]
    result = subprocess.run(
        [*command, "--logfile", str(log)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return by_url(read_jsonl(out)), log.read_text(encoding="utf-8")


def test_the_ported_spider_yields_what_scrapy_yielded(shop: Any, tmp_path: Path) -> None:
    items, log = crawl_ported(shop, tmp_path)
    expected = [json.loads(line.replace("{base}", shop.url)) for line in EXPECTED.read_text().splitlines()]
    assert len(items) == 60
    assert items == by_url(expected)
    assert "PricePipeline kept 60 products" in log  # the pipeline's close_spider
    assert "spider closed: finished" in log  # the spider's closed(reason)
    assert " WARNING " not in log and " ERROR " not in log, log


@pytest.mark.skipif(importlib.util.find_spec("scrapy") is None, reason="Scrapy is not installed")
def test_scrapy_and_crawler_yield_the_same_items_from_the_same_file(shop: Any, tmp_path: Path) -> None:
    source = PORTED.read_text(encoding="utf-8")
    assert source.count(OUR_IMPORT) == 1
    scrapy_dir = tmp_path / "scrapy"
    scrapy_dir.mkdir()
    (scrapy_dir / "ported.py").write_text(source.replace(OUR_IMPORT, "from scrapy import Request, Spider"))
    command = [sys.executable, "-m", "scrapy", "runspider", "ported.py", "-a", f"base_url={shop.url}"]
    result = subprocess.run(
        [*command, "-O", "items.jsonl", "-L", "INFO"],
        cwd=scrapy_dir, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scrapy_items = by_url(read_jsonl(scrapy_dir / "items.jsonl"))
    ours, _ = crawl_ported(shop, tmp_path)
    assert len(scrapy_items) == 60
    assert ours == scrapy_items


README = (REPO / "README.md").read_text(encoding="utf-8")


def test_the_readmes_scrapy_spider_is_the_ported_file_with_scrapys_import() -> None:
    match = re.search(r"<!-- porting: scrapy -->\n```python\n(.*?)```", README, re.S)
    assert match is not None, "the README has no porting block"
    body = PORTED.read_text(encoding="utf-8").split('"""', 2)[2].lstrip("\n")
    scrapy_line = "from scrapy import Request, Spider"
    assert match.group(1) == body.replace(OUR_IMPORT + "  # Scrapy: " + scrapy_line, scrapy_line)


def test_the_porting_guide_names_every_scrapy_setting_the_code_knows() -> None:
    guide = README.split("## Porting a Scrapy spider", 1)[1].split("\n## ", 1)[0]
    fields = field_types(Settings)
    names = {*supported_names(fields), *IGNORED, *UNSUPPORTED} - set(fields)
    missing = sorted(name for name in names if f"`{name}`" not in guide)
    assert missing == []
