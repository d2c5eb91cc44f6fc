"""The README's quick start, as a user runs it: the demo shop crawled to JSONL."""

from __future__ import annotations

import subprocess
from pathlib import Path

import crawler
from crawler.demo import DEMO_PRODUCT_COUNT, demo_product_urls, serve_demo
from crawler.demo.site import catalog

from ..support.cli import CRAWL
from ..support.items import read_jsonl

REPO = Path(__file__).resolve().parents[2]


def test_crawl_demo_writes_one_item_per_product(tmp_path):
    out = tmp_path / "items.jsonl"
    result = subprocess.run(
        [CRAWL, "demo", "-O", str(out)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    items = read_jsonl(out)
    assert len(items) == DEMO_PRODUCT_COUNT
    assert len({item["sku"] for item in items}) == DEMO_PRODUCT_COUNT
    for item in items:
        assert item["title"] and item["currency"] == "£" and item["price"] > 0
        assert isinstance(item["in_stock"], bool) and item["category"]
    in_stock = {product.sku: product.stock > 0 for product in catalog()}
    assert {item["sku"]: item["in_stock"] for item in items} == in_stock


def test_catalog_example_spider_finds_every_product_and_respects_robots(tmp_path):
    spider = crawler.load_spider(REPO / "spiders" / "catalog.py")
    shop = serve_demo()
    try:
        stats = crawler.run(
            spider, output=str(tmp_path / "products.jsonl"), spider_args={"base_url": shop.url}
        )
    finally:
        shop.stop()
    fetched = {hit.target for hit in shop.hits}
    items = read_jsonl(tmp_path / "products.jsonl")
    assert sorted(item["url"] for item in items) == sorted(demo_product_urls(shop.url))
    assert not any(target.startswith(("/cart/", "/admin/")) for target in fetched)
    assert stats["dropped/robots"] > 0
