"""Tests for the demo shop: its pages, its links, and serving it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit
from xml.etree import ElementTree

import httpx
import pytest
from selectolax.lexbor import LexborHTMLParser as Selectolax

from crawler.demo import DEMO_PRODUCT_COUNT, build_demo_site, demo_product_urls, serve_demo
from crawler.sites.server import Page

BASE = "http://127.0.0.1:8000"
SITE = build_demo_site(BASE)


def is_html(page: Page) -> bool:
    return dict(page.headers)["Content-Type"].startswith("text/html")


HTML_PAGES = {path: page for path, page in SITE.items() if is_html(page)}
PRODUCT_PATHS = sorted(path for path in SITE if path.startswith("/product/"))
RECORDS = json.loads(SITE["/api/products.json"].body)
MANUAL = "http://example.invalid/manual.pdf"
BROKEN_LINKS = {BASE + "/delivery/", BASE + "/old-sale/", MANUAL}  # for link checkers


def canonical(page_path: str, href: str) -> str:
    """Resolve ``href`` as a browser would, then lower-case scheme and host."""
    url, _ = urldefrag(urljoin(BASE + page_path, href.strip()))
    parts = urlsplit(url)
    return parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()).geturl()


def links(page_path: str) -> Iterator[tuple[str, str]]:
    """(raw href, canonical URL) of every link on an HTML page."""
    tree = Selectolax(SITE[page_path].body.decode())
    for anchor in tree.css("a[href]"):
        href = anchor.attributes["href"] or ""
        yield href, canonical(page_path, href)


def test_site_is_deterministic() -> None:
    again = build_demo_site(BASE)
    assert again == SITE
    assert list(again) == list(SITE)


def test_product_count_and_urls_agree() -> None:
    urls = demo_product_urls(BASE)
    assert len(urls) == len(set(urls)) == len(PRODUCT_PATHS) == DEMO_PRODUCT_COUNT == 60
    assert sorted(url.removeprefix(BASE) for url in urls) == PRODUCT_PATHS


def test_every_product_link_resolves_to_a_product_route() -> None:
    product_links = [url for path in HTML_PAGES for _, url in links(path) if "/product/" in url]
    assert len(product_links) > DEMO_PRODUCT_COUNT
    assert {url.removeprefix(BASE) for url in product_links} == set(PRODUCT_PATHS)


def serves_a_page(url: str) -> bool:
    page = SITE.get(url.removeprefix(BASE)) if url.startswith(BASE + "/") else None
    return page is not None and page.status == 200


def test_every_link_resolves_to_a_page_except_the_broken_ones() -> None:
    unserved = {url for path in HTML_PAGES for _, url in links(path) if not serves_a_page(url)}
    assert unserved == BROKEN_LINKS


def referrers(url: str) -> set[str]:
    return {path for path in HTML_PAGES for _, link in links(path) if link == url}


def test_broken_links_are_where_the_docstring_says() -> None:
    assert referrers(BASE + "/delivery/") == set(HTML_PAGES)  # every footer
    assert referrers(BASE + "/old-sale/") == {"/category/kitchen/"}
    assert referrers(MANUAL) == {"/product/enamel-casserole.html"}  # KT-0001
    moved = SITE["/old-sale/"]
    assert (moved.status, dict(moved.headers)["Location"]) == (301, "/sale/")
    assert "/sale/" not in SITE and "/delivery/" not in SITE


@pytest.mark.parametrize(
    ("spelling", "matches"),
    [
        ("relative ../", lambda href: href.startswith("../")),
        ("relative ./", lambda href: href.startswith("./")),
        ("absolute", lambda href: href.startswith(BASE)),
        ("upper-case scheme and host", lambda href: href.startswith(BASE.upper())),
        ("fragment", lambda href: href.endswith(".html#reviews")),
        ("whitespace", lambda href: href != href.strip()),
    ],
)
def test_product_links_use_varied_spellings(spelling: str, matches: Callable[[str], bool]) -> None:
    hrefs = [href for path in HTML_PAGES for href, url in links(path) if "/product/" in url]
    assert any(matches(href) for href in hrefs), spelling


@pytest.mark.parametrize("path", PRODUCT_PATHS)
def test_product_page_has_one_of_each_field(path: str) -> None:
    tree = Selectolax(SITE[path].body.decode())
    for selector in ("h1.title", "p.price", "p.availability", "span.sku", "div.description"):
        assert len(tree.css(selector)) == 1, selector
    assert tree.css_first("p.price").text().startswith("£")  # type: ignore[union-attr]
    assert tree.css_first("a.add-to-cart[href^='/cart/add?sku=']") is not None
    assert len(tree.css("nav.breadcrumb a")) == 2
    assert len(tree.css("section.related li a")) >= 3


def test_product_pages_show_availability_but_not_the_stock_count() -> None:
    for record in RECORDS:
        tree = Selectolax(SITE[record["url"].removeprefix(BASE)].body.decode())
        availability = tree.css_first("p.availability").text()  # type: ignore[union-attr]
        assert availability == ("In stock" if record["stock"] else "Out of stock")
    assert {record["stock"] > 0 for record in RECORDS} == {True, False}


def test_pagination_reaches_every_product_of_a_category() -> None:
    for slug in ("coffee-tea", "books", "kitchen"):
        expected = [record["url"] for record in RECORDS if record["category"] == slug]
        assert follow_pages(f"/category/{slug}/") == expected


def follow_pages(path: str | None) -> list[str]:
    """The product URLs on a listing page and the pages its rel=next links lead to."""
    seen: list[str] = []
    while path is not None:
        tree = Selectolax(SITE[path].body.decode())
        on_page = [canonical(path, a.attributes["href"] or "") for a in tree.css("li a")]
        assert 1 <= len(on_page) <= 10
        seen += on_page
        next_link = tree.css_first('a[rel="next"].next')
        href = next_link.attributes["href"] if next_link else None
        path = canonical(path, href).removeprefix(BASE) if href else None
    return seen


def test_previous_links_go_back() -> None:
    tree = Selectolax(SITE["/category/books/page/2/"].body.decode())
    previous = tree.css_first('a[rel="prev"].previous')
    assert previous is not None and previous.attributes["href"] == "/category/books/"
    assert Selectolax(SITE["/category/books/"].body.decode()).css_first("a.previous") is None


def test_robots_txt_disallows_cart_and_admin_and_names_sitemap() -> None:
    lines = SITE["/robots.txt"].body.decode().splitlines()
    assert lines[0] == "User-agent: *"
    assert {"Disallow: /cart/", "Disallow: /admin/"} <= set(lines)
    assert f"Sitemap: {BASE}/sitemap.xml" in lines


def test_sitemap_lists_exactly_the_product_urls() -> None:
    root = ElementTree.fromstring(SITE["/sitemap.xml"].body)
    namespace = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
    locs = [loc.text for loc in root.iter(f"{namespace}loc")]
    assert locs == demo_product_urls(BASE)


def test_json_api_lists_every_product() -> None:
    assert [record["url"] for record in RECORDS] == demo_product_urls(BASE)
    assert {"sku", "name", "price", "stock", "rating", "category"} <= set(RECORDS[0])


def test_json_api_has_each_product_with_its_reviews() -> None:
    for record in RECORDS:
        page = SITE[f"/api/products/{record['sku']}.json"]
        detail = json.loads(page.body)
        assert detail == {**record, "reviews": detail["reviews"]}
        assert isinstance(detail["reviews"], int) and 0 <= detail["reviews"] <= 120
        assert dict(page.headers)["Content-Type"].startswith("application/json")
    assert len({json.loads(SITE[f"/api/products/{r['sku']}.json"].body)["reviews"] for r in RECORDS}) > 10


def test_disallowed_pages_exist() -> None:
    assert "/cart/" in SITE and "/admin/" in SITE
    assert sum(path.startswith("/cart/add?sku=") for path in SITE) == DEMO_PRODUCT_COUNT


class TagBalance(HTMLParser):
    """Checks that every non-void element is closed in order."""

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack.pop() == tag


@pytest.mark.parametrize("path", sorted(HTML_PAGES))
def test_html_is_well_formed_with_title_and_charset(path: str) -> None:
    text = SITE[path].body.decode("utf-8")
    checker = TagBalance()
    checker.feed(text)
    checker.close()
    assert checker.stack == []
    assert text.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in text
    assert Selectolax(text).css_first("title") is not None


def test_pages_carry_non_ascii_text() -> None:
    assert "Café crème" in SITE["/"].body.decode()
    assert any("é" in page.body.decode() for page in SITE.values())


def test_served_demo_uses_the_real_url() -> None:
    server = serve_demo()
    try:
        robots = httpx.get(server.url + "/robots.txt").text
        assert f"Sitemap: {server.url}/sitemap.xml" in robots
        first = demo_product_urls(server.url)[0]
        tree = Selectolax(httpx.get(first).text)
        assert tree.css_first("span.sku").text() == "CT-0001"  # type: ignore[union-attr]
        assert httpx.get(server.url + "/nope").status_code == 404
        gone = httpx.get(server.url + "/old-sale/", follow_redirects=True)
        assert gone.status_code == 404 and [r.status_code for r in gone.history] == [301]
        assert gone.url == server.url + "/sale/"
    finally:
        server.stop()
    assert server.hits_for("/robots.txt")


@contextlib.contextmanager
def demo_process() -> Iterator[subprocess.Popen[str]]:
    """``python -m crawler.demo --port 0``, killed on the way out if still running."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "crawler.demo", "--port", "0"]
    out = subprocess.PIPE
    process = subprocess.Popen(command, cwd=root, env=env, stdout=out, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_module_serves_in_the_foreground_until_sigterm() -> None:
    with demo_process() as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Demo shop serving at http://127.0.0.1:")
        url = line.split()[4].rstrip("/")
        assert httpx.get(url + "/sitemap.xml").text.count("<loc>") == DEMO_PRODUCT_COUNT
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
