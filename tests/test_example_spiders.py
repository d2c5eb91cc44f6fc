"""The example spiders in ``spiders/``, each crawling the demo shop to the end as a user would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import crawler
from crawler.demo import serve_demo
from crawler.demo.site import CATEGORIES, Product, catalog
from crawler.sites.server import SiteServer

from .support.cli import CRAWL
from .support.items import read_jsonl

SPIDERS = Path(__file__).resolve().parents[1] / "spiders"
EXAMPLES = ("listing", "sitemap", "api", "linkcheck", "stock", "live")
PRODUCT_PATHS = {product.path for product in catalog()}


@pytest.fixture
def shop() -> Iterator[SiteServer]:
    """The demo shop on a free port of 127.0.0.1."""
    server = serve_demo()
    yield server
    server.stop()


def crawl_cli(example: str, shop: SiteServer, out: Path) -> list[dict[str, Any]]:
    """``crawl spiders/EXAMPLE.py -a base_url=... -O out``; the items written."""
    command = [CRAWL, str(SPIDERS / f"{example}.py"), "-a", f"base_url={shop.url}", "-O", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return read_jsonl(out)


def crawl_run(example: str, shop: SiteServer, out: Path) -> list[dict[str, Any]]:
    """The same crawl through ``crawler.run``, parsing in-process."""
    spider = crawler.load_spider(SPIDERS / f"{example}.py")
    crawler.run(spider, output=str(out), overwrite=True, spider_args={"base_url": shop.url}, parse_workers=0)
    return read_jsonl(out)


def by_sku(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: str(item["sku"]))


def products(shop: SiteServer, **fields: Callable[[Product], Any]) -> list[dict[str, Any]]:
    """The catalog as items: ``url``, ``sku``, ``name``, then ``fields`` in order."""
    return [
        {
            "url": shop.url + product.path,
            "sku": product.sku,
            "name": product.name,
            **{name: value(product) for name, value in fields.items()},
        }
        for product in catalog()
    ]


def fetched(shop: SiteServer) -> set[str]:
    return {hit.target for hit in shop.hits}


def test_listing_follows_pagination_to_every_product(shop: SiteServer, tmp_path: Path) -> None:
    items = crawl_cli("listing", shop, tmp_path / "products.jsonl")
    expected = products(
        shop,
        price=lambda p: p.price,
        in_stock=lambda p: p.stock > 0,
        category=lambda p: p.category.name,
    )
    assert by_sku(items) == by_sku(expected)
    listings = {target for target in fetched(shop) if target.startswith("/category/")}
    assert listings == {cat.listing_path(n) for cat in CATEGORIES for n in range(1, cat.pages() + 1)}


def test_sitemap_fetches_only_the_pages_it_lists(shop: SiteServer, tmp_path: Path) -> None:
    items = crawl_run("sitemap", shop, tmp_path / "products.jsonl")
    expected = products(shop, price=lambda p: p.price)
    assert by_sku(items) == by_sku(expected)
    assert fetched(shop) == {"/robots.txt", "/sitemap.xml", *PRODUCT_PATHS}


def test_api_reads_the_catalog_in_one_request(shop: SiteServer, tmp_path: Path) -> None:
    items = crawl_run("api", shop, tmp_path / "products.jsonl")
    expected = products(
        shop,
        category=lambda p: p.category.slug,
        price=lambda p: p.price_pence / 100,
        stock=lambda p: p.stock,
    )
    assert items == expected  # one response: the records in order
    assert fetched(shop) == {"/robots.txt", "/api/products.json"}


def test_stock_awaits_the_api_record_of_each_product(shop: SiteServer, tmp_path: Path) -> None:
    items = crawl_cli("stock", shop, tmp_path / "stock.jsonl")
    expected = products(shop, stock=lambda p: p.stock, reviews=lambda p: p.reviews)
    assert by_sku(items) == by_sku(expected)
    api_calls = [hit.target for hit in shop.hits if hit.target.startswith("/api/products/")]
    assert sorted(api_calls) == sorted(f"/api/products/{product.sku}.json" for product in catalog())


def test_linkcheck_reports_exactly_the_broken_links(shop: SiteServer, tmp_path: Path) -> None:
    reports = crawl_cli("linkcheck", shop, tmp_path / "broken.jsonl")
    base = shop.url
    assert sorted(reports, key=lambda report: report["url"]) == [
        {
            "url": base + "/delivery/",
            "status": 404,
            "found_on": base + "/",  # in every footer; the start page links to it first
            "redirect_chain": [],
            "note": "",
        },
        {
            "url": base + "/old-sale/",
            "status": 404,
            "found_on": base + "/category/kitchen/",
            "redirect_chain": [base + "/old-sale/", base + "/sale/"],
            "note": "",
        },
        {
            "url": "http://example.invalid/manual.pdf",
            "status": None,
            "found_on": base + "/product/enamel-casserole.html",
            "redirect_chain": [],
            "note": "off-site, not checked",
        },
    ]
    assert fetched(shop) >= PRODUCT_PATHS  # the whole site was checked...
    assert not any(target.startswith(("/cart/", "/admin/")) for target in fetched(shop))  # ...politely


def test_linkcheck_reports_each_url_once() -> None:
    module = sys.modules[crawler.load_spider(SPIDERS / "linkcheck.py").__module__]
    pipeline = module.FirstReportOnly()
    first, again = (module.LinkReport("http://elsewhere.test/", None, page) for page in ("/a", "/b"))
    assert pipeline.process_item(first, None) is first
    assert pipeline.process_item(again, None) is None


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_say_how_to_run_them_against_the_demo(example: str) -> None:
    spider = crawler.load_spider(SPIDERS / f"{example}.py")
    docstring = sys.modules[spider.__module__].__doc__ or ""
    assert "crawl demo --serve" in docstring
    assert f"crawl spiders/{example}.py" in docstring and "-a base_url=" in docstring
    assert spider().base_url == "http://127.0.0.1:8000"  # type: ignore[attr-defined]
