"""Tests for `Response`: decoding, CSS selection, URL joining and following links."""

from __future__ import annotations

import codecs
import dataclasses
from typing import Any

import pytest

import crawler
from crawler import Request, Response

URL = "http://shop.test/books/index.html"
HTML = "text/html; charset=utf-8"

PAGE = b"""<!doctype html>
<html><head><title>Books</title></head>
<body>
  <ul>
    <li class="book"><a href="/b/1">One</a></li>
    <li class="book"><a href="two.html">Two</a></li>
    <li class="book"><a href="http://other.test/3">Three</a></li>
    <li class="book"><a name="anchor-without-href">Four</a></li>
  </ul>
  <img src="/img/cover.png">
  <p id="empty"></p>
</body></html>"""


def make(
    body: bytes = PAGE,
    content_type: str | None = HTML,
    url: str = URL,
    request: Request | None = None,
    status: int = 200,
) -> Response:
    headers = {} if content_type is None else {"content-type": content_type}
    return Response(url, status, headers, body, request or Request(url))


class BookSpider(crawler.Spider):
    name = "books"

    def parse_item(self, response: Response) -> Any:
        return None


# -- css ------------------------------------------------------------------------------


def test_css_nodes_returns_every_matching_node_in_document_order() -> None:
    nodes = make().css_nodes("li.book a")
    assert [node.text() for node in nodes] == ["One", "Two", "Three", "Four"]


def test_css_first_returns_first_match_or_none() -> None:
    response = make()
    first = response.css_first("li.book a")
    assert first is not None
    assert first.attributes["href"] == "/b/1"
    assert response.css_first("title").text() == "Books"
    assert response.css_first("table") is None
    assert response.css_nodes("table") == []
    assert response.css("table") == []


def test_html_is_sniffed_when_there_is_no_content_type() -> None:
    assert make(content_type=None).css_first("title").text() == "Books"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"a": 1}'),
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ("text/plain; charset=utf-8", b"<html><body>plain after all</body></html>"),
        (None, b'{"looks": "like json"}'),
    ],
)
def test_css_on_non_html_raises_not_html_error(content_type: str | None, body: bytes) -> None:
    response = make(body, content_type)
    with pytest.raises(crawler.NotHtmlError, match="not HTML"):
        response.css("a")
    with pytest.raises(crawler.NotHtmlError):
        response.css_first("a")
    with pytest.raises(crawler.NotHtmlError):
        response.xpath("//a")


# -- text and encoding ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "text"),
    [
        pytest.param("<p>café €</p>".encode(), HTML, "utf-8", "<p>café €</p>", id="utf-8-header"),
        pytest.param("<p>café €</p>".encode(), "text/html", "utf-8", "<p>café €</p>", id="utf-8-sniffed"),
        pytest.param(
            "<p>café €</p>".encode("cp1252"),
            "text/html; charset=windows-1252",
            "cp1252",
            "<p>café €</p>",
            id="cp1252-header",
        ),
        pytest.param(
            "<p>café €</p>".encode("cp1252"),
            "text/html; charset=ISO-8859-1",
            "cp1252",
            "<p>café €</p>",
            id="latin1-label-means-cp1252",
        ),
        pytest.param(
            '<meta charset="windows-1252"><p>café</p>'.encode("cp1252"),
            "text/html",
            "cp1252",
            '<meta charset="windows-1252"><p>café</p>',
            id="cp1252-meta-only",
        ),
        pytest.param(
            '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>мир</p>'.encode("koi8-r"),
            "text/html",
            "koi8-r",
            '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>мир</p>',
            id="koi8-r-meta-http-equiv",
        ),
        pytest.param(
            codecs.BOM_UTF8 + "<p>café</p>".encode(),
            "text/html; charset=windows-1252",
            "utf-8",
            "<p>café</p>",
            id="utf-8-bom-beats-header",
        ),
        pytest.param(
            codecs.BOM_UTF16_LE + "<p>café</p>".encode("utf-16-le"),
            "text/html",
            "utf-16-le",
            "<p>café</p>",
            id="utf-16-le-bom",
        ),
        pytest.param(
            "<p>café</p>".encode("cp1252"),
            "text/html; charset=utf-8",
            "utf-8",
            "<p>caf\ufffd</p>",
            id="bad-bytes-replaced",
        ),
    ],
)
def test_text_and_encoding(body: bytes, content_type: str, encoding: str, text: str) -> None:
    response = make(body, content_type)
    assert response.encoding == encoding
    assert response.text == text


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param("<title>t</title><p>café</p>".encode(), HTML, id="utf-8"),
        pytest.param(
            "<title>t</title><p>café</p>".encode("cp1252"),
            "text/html; charset=windows-1252",
            id="cp1252-header",
        ),
        pytest.param(
            '<meta charset="windows-1252"><title>t</title><p>café</p>'.encode("cp1252"),
            "text/html",
            id="cp1252-meta",
        ),
        pytest.param(
            codecs.BOM_UTF16_LE + "<title>t</title><p>café</p>".encode("utf-16-le"), "text/html", id="utf-16"
        ),
    ],
)
def test_non_utf8_pages_parse_with_correct_text(body: bytes, content_type: str) -> None:
    response = make(body, content_type)
    assert response.css_first("p").text() == "café"
    assert response.css_first("title").text() == "t"


def test_utf8_bom_is_not_part_of_the_document() -> None:
    body = (
        codecs.BOM_UTF8
        + b"<!doctype html><html><head><title>T</title></head><body><p>caf\xc3\xa9</p></body></html>"
    )
    response = make(body, "text/html")
    assert response.css_first("head > title") is not None
    assert response.css_first("body").text() == "café"


def test_undeclared_cp1252_text_is_sniffed_correctly() -> None:
    sentence = "Le café est très bon, et la crème brûlée aussi. Où êtes-vous allé à Noël? Garçon!"
    response = make(f"<html><body><p>{sentence}</p></body></html>".encode("cp1252"), "text/html")
    assert response.css_first("p").text() == sentence


def test_json_decodes_the_body_text() -> None:
    response = make('{"title": "café", "n": [1, 2]}'.encode(), "application/json")
    assert response.json() == {"title": "café", "n": [1, 2]}


def test_json_uses_the_declared_encoding() -> None:
    body = '{"title": "café"}'.encode("cp1252")
    assert make(body, "application/json; charset=windows-1252").json() == {"title": "café"}


# -- request-derived attributes --------------------------------------------------------


def test_meta_depth_and_redirect_urls_come_from_the_request() -> None:
    request = Request(
        URL, meta={"category": "poetry"}, depth=3, redirects=("http://shop.test/old", "http://shop.test/mid")
    )
    response = make(request=request)
    assert response.request is request
    assert response.meta == {"category": "poetry"}
    assert response.depth == 3
    assert response.redirect_urls == ("http://shop.test/old", "http://shop.test/mid")


def test_defaults_of_a_plain_request() -> None:
    response = make()
    assert (response.meta, response.depth, response.redirect_urls) == ({}, 0, ())


# -- urljoin ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("two.html", "http://shop.test/books/two.html"),
        ("/b/1", "http://shop.test/b/1"),
        ("../up", "http://shop.test/up"),
        ("?page=2", "http://shop.test/books/index.html?page=2"),
        ("//cdn.test/x.js", "http://cdn.test/x.js"),
        ("https://other.test/a", "https://other.test/a"),
        ("  spaced.html \n", "http://shop.test/books/spaced.html"),
    ],
)
def test_urljoin_against_the_response_url(href: str, expected: str) -> None:
    assert make().urljoin(href) == expected


@pytest.mark.parametrize(
    ("base", "href", "expected"),
    [
        ("http://cdn.test/root/", "a.html", "http://cdn.test/root/a.html"),
        ("/other/dir/", "a.html", "http://shop.test/other/dir/a.html"),
        ("sub/", "a.html", "http://shop.test/books/sub/a.html"),
        ("http://cdn.test/root/", "/abs", "http://cdn.test/abs"),
    ],
)
def test_urljoin_honours_base_href(base: str, href: str, expected: str) -> None:
    body = f'<html><head><base href="{base}"></head><body></body></html>'.encode()
    response = make(body)
    assert response.urljoin(href) == expected


def test_urljoin_on_non_html_ignores_the_body() -> None:
    response = make(b'{"base": "<base href=http://x.test/>"}', "application/json")
    assert response.urljoin("a") == "http://shop.test/books/a"


def test_empty_base_href_is_ignored() -> None:
    response = make(b'<html><head><base href=""></head></html>')
    assert response.urljoin("a") == "http://shop.test/books/a"


# -- follow ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("two.html", "http://shop.test/books/two.html"),
        ("/b/9", "http://shop.test/b/9"),
        ("https://other.test/x?y=1", "https://other.test/x?y=1"),
    ],
)
def test_follow_a_url(target: str, expected: str) -> None:
    request = make(request=Request(URL, depth=2)).follow(target)
    assert request == Request(expected, depth=3, headers={"Referer": URL})


@pytest.mark.parametrize(
    ("page", "target", "headers", "sent"),
    [
        ("http://a.test/", "/x", None, {"Referer": "http://a.test/"}),
        ("https://a.test/", "https://b.test/", {"X": "1"}, {"Referer": "https://a.test/", "X": "1"}),
        ("http://a.test/", "/x", {"referer": "mine"}, {"referer": "mine"}),
        ("https://a.test/", "http://a.test/", None, {}),  # no referer on a downgrade to http
    ],
)
def test_followed_links_carry_the_page_as_referer(
    page: str, target: str, headers: dict[str, str] | None, sent: dict[str, str]
) -> None:
    response = make(request=Request(page)).replace(url=page)
    assert response.follow(target, headers=headers).headers == sent


def test_follow_an_anchor_node() -> None:
    response = make()
    anchor = response.css_nodes("li.book a")[1]
    assert response.follow(anchor).url == "http://shop.test/books/two.html"


def test_follow_an_img_node_uses_src() -> None:
    response = make()
    assert response.follow(response.css_first("img")).url == "http://shop.test/img/cover.png"


def test_follow_a_node_without_link_raises_value_error() -> None:
    response = make()
    with pytest.raises(ValueError, match="<p> has no href or src"):
        response.follow(response.css_first("p#empty"))


def test_follow_resolves_against_base_href() -> None:
    response = make(b'<html><head><base href="http://cdn.test/r/"></head><a href="x">x</a></html>')
    assert response.follow(response.css_first("a")).url == "http://cdn.test/r/x"


def test_follow_depth_is_one_more_than_the_response() -> None:
    response = make(request=Request(URL, depth=4))
    assert response.follow("a").depth == 5
    assert response.follow("a", depth=0).depth == 0


def test_follow_bound_method_callback_becomes_its_name() -> None:
    spider = BookSpider()
    request = make().follow("/b/1", callback=spider.parse_item)
    assert request.callback == "parse_item"
    assert make().follow("/b/1", callback="parse_other").callback == "parse_other"
    assert make().follow("/b/1").callback is None


def test_follow_passes_extra_keywords_through() -> None:
    request = make().follow("/b/1", meta={"k": "v"}, priority=7, dont_filter=True, method="post")
    assert request.meta == {"k": "v"}
    assert request.priority == 7
    assert request.dont_filter is True
    assert request.method == "POST"


def test_follow_does_not_inherit_the_parents_meta() -> None:
    response = make(request=Request(URL, meta={"parent": 1}))
    assert response.follow("x").meta == {}


# -- follow_all ------------------------------------------------------------------------

BOOK_URLS = ["http://shop.test/b/1", "http://shop.test/books/two.html", "http://other.test/3"]


def test_follow_all_with_a_selector_skips_elements_without_href() -> None:
    requests = list(make(request=Request(URL, depth=1)).follow_all("li.book a"))
    assert [r.url for r in requests] == BOOK_URLS
    assert {r.depth for r in requests} == {2}


def test_follow_all_selector_includes_src_links() -> None:
    urls = [r.url for r in make().follow_all("a, img")]
    assert urls == [*BOOK_URLS, "http://shop.test/img/cover.png"]


def test_follow_all_with_a_list_of_urls() -> None:
    urls = [r.url for r in make().follow_all(["/b/1", "two.html", "", "https://x.test/"])]
    assert urls == ["http://shop.test/b/1", "http://shop.test/books/two.html", "https://x.test/"]


def test_follow_all_with_a_list_of_nodes() -> None:
    response = make()
    nodes = [*response.css_nodes("li.book a"), response.css_first("img"), response.css_first("p")]
    urls = [r.url for r in response.follow_all(nodes)]
    assert urls == [*BOOK_URLS, "http://shop.test/img/cover.png"]


def test_follow_all_passes_callback_and_keywords_to_each_request() -> None:
    spider = BookSpider()
    requests = list(make().follow_all("li.book a", spider.parse_item, meta={"m": 1}, priority=-1))
    assert len(requests) == 3
    for request in requests:
        assert (request.callback, request.meta, request.priority) == ("parse_item", {"m": 1}, -1)


def test_follow_all_follows_each_page_once_whatever_its_fragments() -> None:
    hrefs = ["two.html#a", "two.html", "two.html#b", "/b/1", "/b/1#x", "/b/1?p=2#x"]
    urls = [r.url for r in make().follow_all(hrefs)]
    assert urls == ["http://shop.test/books/two.html#a", "http://shop.test/b/1", "http://shop.test/b/1?p=2#x"]


def test_follow_all_with_dont_filter_follows_every_link() -> None:
    hrefs = ["two.html#a", "two.html", "two.html#a"]
    assert len(list(make().follow_all(hrefs, dont_filter=True))) == 3


def test_follow_all_with_a_selector_that_matches_nothing() -> None:
    assert list(make().follow_all("table a")) == []


def test_follow_all_selector_on_non_html_raises() -> None:
    with pytest.raises(crawler.NotHtmlError):
        list(make(b"{}", "application/json").follow_all("a"))


# -- replace ---------------------------------------------------------------------------


def test_replace_makes_a_changed_copy() -> None:
    original = make()
    changed = original.replace(body=b"<p>new</p>", status=404)
    assert (changed.status, changed.body, changed.url) == (404, b"<p>new</p>", URL)
    assert changed.request is original.request
    assert changed.headers == original.headers
    assert (original.status, original.body) == (200, PAGE)


def test_replace_does_not_reuse_the_parsed_tree_or_text() -> None:
    original = make()
    assert original.css_first("title").text() == "Books"
    assert "Books" in original.text
    changed = original.replace(body=b"<title>Other</title>")
    assert changed.css_first("title").text() == "Other"
    assert changed.text == "<title>Other</title>"


def test_replace_url_changes_link_resolution() -> None:
    changed = make().replace(url="http://else.test/dir/page")
    assert changed.urljoin("x") == "http://else.test/dir/x"


def test_replace_request_changes_depth_and_meta() -> None:
    changed = make().replace(request=dataclasses.replace(Request(URL), depth=9, meta={"a": 1}))
    assert (changed.depth, changed.meta) == (9, {"a": 1})


def test_replace_rejects_unknown_fields() -> None:
    with pytest.raises(TypeError, match="unknown fields: colour"):
        make().replace(colour="red")


def test_repr_names_status_and_url() -> None:
    assert repr(make(status=404)) == f"<Response 404 {URL}>"
