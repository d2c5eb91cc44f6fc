"""`crawler.testing`: unit-testing spider callbacks offline, on the demo shop's pages."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from crawler import Request, Response, Spider
from crawler.demo.site import PAGE_SIZE, build_demo_site, catalog
from crawler.demo.spider import CatalogSpider
from crawler.testing import CallbackOutput, fake_response, response_from_file, run_callback

BASE = "http://shop.test"
SITE = build_demo_site(BASE)
PRODUCT = catalog()[0]
LISTING = "/category/coffee-tea/"


def page(path: str, callback: str | None = None) -> Response:
    return fake_response(SITE[path].body, BASE + path, callback=callback)


def test_fake_response_defaults() -> None:
    response = fake_response("<p>café</p>", meta={"k": 1}, depth=3, headers={"X-Test": "yes"})
    assert response.url == "http://example.com/"
    assert response.status == 200
    assert response.headers == {"content-type": "text/html; charset=utf-8", "x-test": "yes"}
    assert response.body == "<p>café</p>".encode()
    assert response.css_first("p").text() == "café"  # type: ignore[union-attr]
    assert (response.meta, response.depth, response.request.callback) == ({"k": 1}, 3, None)


def test_fake_response_keeps_given_content_type_and_request() -> None:
    request = Request("http://example.com/data", callback="parse_data", depth=1)
    response = fake_response(
        '{"a": 1}', "http://example.com/data", headers={"Content-Type": "application/json"}, request=request
    )
    assert response.json() == {"a": 1}
    assert not response.is_html
    assert response.request is request


def test_product_page_gives_one_complete_item() -> None:
    out = run_callback(CatalogSpider(), page(PRODUCT.path, "parse_product"), raise_errors=True)
    assert isinstance(out, CallbackOutput)
    assert out.requests == [] and out.errors == [] and out.dropped == {}
    [item] = out.items
    assert item["url"] == BASE + PRODUCT.path
    assert item["title"] == PRODUCT.name
    assert item["sku"] == PRODUCT.sku
    assert item["currency"] == "£" and item["price"] > 0
    assert item["category"] == PRODUCT.category.name
    assert isinstance(item["in_stock"], bool) and 1 <= item["rating"] <= 5
    assert all(value is not None and value != "" for value in item.values())


def test_listing_page_gives_products_and_next_page() -> None:
    response = page(LISTING)  # the request names no callback: pass it explicitly
    out = run_callback(CatalogSpider(), response, "parse_listing", raise_errors=True)
    assert out.items == [] and out.errors == []
    *products, next_page = out.requests
    assert len(products) == PAGE_SIZE
    assert {r.callback for r in products} == {"parse_product"}
    assert all(r.url.startswith(BASE + "/product/") and r.url.endswith(".html") for r in products)
    assert all(r.depth == 1 for r in out.requests)
    assert next_page.url == BASE + LISTING + "page/2/"
    assert next_page.callback == "parse_listing"


def test_home_page_links_are_canonical_and_deduplicated() -> None:
    class Everything(Spider):
        def parse(self, response: Response) -> Iterator[Request]:
            yield from response.follow_all("a")
            yield response.follow("http://elsewhere.test/")
            yield response.follow("mailto:shop@shop.test")
            yield response.follow(response.url)  # the same page again

    out = run_callback(Everything(), page("/"))
    urls = [r.url for r in out.requests]
    assert len(urls) == len(set(urls))
    assert BASE + "/product/velvet-oolong.html" in urls  # from the upper-case HTTP://SHOP.TEST
    assert BASE + "/product/silent-garden.html" in urls  # fragment removed
    assert out.dropped["offsite"] == 1
    assert out.dropped["unsupported_scheme"] == 1
    assert out.dropped["duplicate"] >= 1


def test_spider_scope_and_depth_apply() -> None:
    class Limited(Spider):
        allowed_domains = ["other.test"]
        depth = 1

        def parse(self, response: Response) -> Iterator[Request]:
            yield response.follow("http://other.test/a")
            yield response.follow("/local")

    assert run_callback(Limited(), fake_response("", BASE + "/")).dropped == {"offsite": 1}
    deep = run_callback(Limited(), fake_response("", BASE + "/", depth=1))
    assert deep.requests == [] and deep.dropped == {"offsite": 1, "depth_limited": 1}


def test_async_callback() -> None:
    class AsyncSpider(Spider):
        async def parse(self, response: Response) -> AsyncIterator[Any]:
            yield {"title": response.css_first("h1.title").text(strip=True)}  # type: ignore[union-attr]
            yield response.follow("/next", callback="parse")

    out = run_callback(AsyncSpider(), page(PRODUCT.path), raise_errors=True)
    assert out.items == [{"title": PRODUCT.name}]
    assert [(r.url, r.callback, r.depth) for r in out.requests] == [(BASE + "/next", "parse", 1)]


def test_async_def_returning_a_list() -> None:
    class Returns(Spider):
        async def parse(self, response: Response) -> list[dict[str, str]]:
            return [{"url": response.url}]

    assert run_callback(Returns(), fake_response("")).items == [{"url": "http://example.com/"}]


def test_errors_are_reported_not_raised() -> None:
    class Broken(Spider):
        def parse(self, response: Response) -> Iterator[Any]:
            yield {"ok": 1}
            raise ValueError("selector changed")

    out = run_callback(Broken(), fake_response("<p>x</p>"))
    assert out.items == [{"ok": 1}]
    [error] = out.errors
    assert "ValueError: selector changed" in error and "Traceback" in error


def test_raise_errors_gives_assertion_error_with_traceback() -> None:
    not_html = fake_response(b"%PDF-1.4", BASE + "/manual.pdf", headers={"content-type": "application/pdf"})
    with pytest.raises(AssertionError, match=r"(?s)'parse_product' failed:.*Traceback.*NotHtmlError"):
        run_callback(CatalogSpider(), not_html, "parse_product", raise_errors=True)


def test_missing_callback_is_an_error() -> None:
    [error] = run_callback(CatalogSpider(), page("/"), "no_such_callback").errors
    assert "has no callback 'no_such_callback'" in error


def test_bad_output_is_an_error() -> None:
    class Strings(Spider):
        def parse(self, response: Response) -> Iterator[str]:
            yield "not an item"

    out = run_callback(Strings(), fake_response(""))
    assert out.items == [] and out.errors == ["callback yielded a str; yield dicts, dataclasses or Requests"]


def test_dataclass_items_are_kept_as_objects() -> None:
    @dataclasses.dataclass
    class Item:
        url: str

    class Dataclassy(Spider):
        def parse(self, response: Response) -> Item:
            return Item(response.url)

    assert run_callback(Dataclassy(), fake_response("")).items == [Item("http://example.com/")]


def test_response_from_file(tmp_path: Any) -> None:
    saved = tmp_path / "product.html"
    saved.write_bytes(SITE[PRODUCT.path].body)
    response = response_from_file(saved, BASE + PRODUCT.path, callback="parse_product")
    assert response.encoding == "utf-8"
    out = run_callback(CatalogSpider(), response, raise_errors=True)
    assert [item["sku"] for item in out.items] == [PRODUCT.sku]


def test_response_from_file_in_a_legacy_encoding(tmp_path: Any) -> None:
    saved = tmp_path / "latin1.html"
    saved.write_bytes('<html><head><meta charset="iso-8859-1"></head><h1>Crème</h1></html>'.encode("latin-1"))
    response = response_from_file(saved)
    assert response.css_first("h1").text() == "Crème"  # type: ignore[union-attr]
