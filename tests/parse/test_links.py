"""Links as browsers send them, end to end: the query in the page's encoding, a
<base href> that is no http(s) URL ignored, start URLs cleaned like links."""

from __future__ import annotations

import pytest

from crawler.sites.server import Page
from crawler.testing import fake_response

from ..support.sites import html
from ..support.spiders import TitleSpider


def legacy_page(title: str, links: list[str], charset: str, head: str = "") -> Page:
    anchors = "".join(f'<a href="{href}">{i}</a>' for i, href in enumerate(links))
    text = f"<html><head>{head}<title>{title}</title></head><body>{anchors}</body></html>"
    return Page(text.encode(charset), headers=(("Content-Type", f"text/html; charset={charset}"),))


def test_a_legacy_pages_search_link_is_sent_in_its_encoding(serve, crawl_items):
    """issue 14: a cp1251 page's ?q=привет must reach the server as cp1251 bytes."""
    server = serve(
        {
            "/": legacy_page("Главная", ["/search?q=привет", "/каталог?раздел=книги"], "windows-1251"),
            "/search?q=%EF%F0%E8%E2%E5%F2": html("found"),
            "/%D0%BA%D0%B0%D1%82%D0%B0%D0%BB%D0%BE%D0%B3?%F0%E0%E7%E4%E5%EB=%EA%ED%E8%E3%E8": html("books"),
        }
    )
    items, stats = crawl_items(TitleSpider, [server.url + "/"])
    assert sorted(item["title"] for item in items) == ["books", "found", "Главная"]
    assert stats["status/404"] == 0


@pytest.mark.parametrize("base", ["javascript:void(0)", "data:text/html,x", "mailto:a@b.c", "http://[broken"])
def test_a_base_href_that_is_no_http_url_falls_back_to_the_page(base: str) -> None:
    page = f'<html><head><base href="{base}"></head><body><a href="next?p=2">n</a></body></html>'
    response = fake_response(page, url="http://a.test/dir/page")
    assert response.base_url == "http://a.test/dir/page"
    assert [request.url for request in response.follow_all("a")] == ["http://a.test/dir/next?p=2"]


def test_an_http_base_href_still_counts() -> None:
    page = '<html><head><base href="https://cdn.a.test/x/"></head><body><a href="y">n</a></body></html>'
    response = fake_response(page, url="http://a.test/dir/page")
    assert [request.url for request in response.follow_all("a")] == ["https://cdn.a.test/x/y"]


def test_response_urljoin_encodes_the_query_as_the_page_is_encoded() -> None:
    body = "<html><body>Москва</body></html>".encode("koi8-r")
    response = fake_response(
        body, url="http://a.test/", headers={"content-type": "text/html; charset=koi8-r"}
    )
    assert response.urljoin("/s?город=Москва") == "http://a.test/s?%C7%CF%D2%CF%C4=%ED%CF%D3%CB%D7%C1"


def test_start_urls_are_cleaned_like_links(serve, crawl_items):
    server = serve({"/0": html("zero", ["/1"]), "/1": html("one")})
    dirty = [f"  {server.url}/0\t\n", f"\n{server.url}/\t1 "]
    items, stats = crawl_items(TitleSpider, dirty)
    assert sorted(item["title"] for item in items) == ["one", "zero"]
    assert stats["dropped/invalid_url"] == 0 and stats["status/404"] == 0
