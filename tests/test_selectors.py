"""Scrapy-style selectors on `Response` (parsel) beside the fast selectolax nodes."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from crawler import Response, SelectorError, Spider
from crawler.testing import fake_response, run_callback

PAGE = """<html><head><title>Books</title></head><body>
<h1 class="title">Hello <b>world</b></h1>
<ul>
  <li class="product" data-sku="A-1"><a href="/p/a?x=1">Alpha</a> <span class="price">£1.50</span></li>
  <li class="product" data-sku="B-2"><a href="b.html">Beta</a> <span class="price">£12</span></li>
</ul>
<img src="/img/cover.png"><p id="empty">no link</p>
<a class="next" href="/page/2">next</a>
</body></html>"""
URL = "http://shop.test/list/"


def make() -> Response:
    return fake_response(PAGE, URL)


def test_text_and_attribute_pseudo_elements() -> None:
    response = make()
    assert response.css("h1::text").get() == "Hello "
    assert response.css("h1 ::text").getall() == ["Hello ", "world"]
    assert response.css("li.product a::attr(href)").getall() == ["/p/a?x=1", "b.html"]
    assert response.css("table::text").get() is None
    assert response.css("table::text").get(default="") == ""


def test_xpath_attrib_and_re() -> None:
    response = make()
    assert response.xpath("//title/text()").get() == "Books"
    assert response.xpath("//li/@data-sku").getall() == ["A-1", "B-2"]
    assert response.xpath("//li[@data-sku=$sku]/a/text()", sku="B-2").get() == "Beta"
    assert response.css("a.next").attrib == {"class": "next", "href": "/page/2"}
    assert response.css("span.price::text").re(r"[\d.]+") == ["1.50", "12"]
    assert response.css("span.price::text").re_first(r"£(\d+)") == "1"


def test_nested_selectors_are_relative_to_their_element() -> None:
    rows = [(li.css("a::text").get(), li.xpath("./span/text()").get()) for li in make().css("li.product")]
    assert rows == [("Alpha", "£1.50"), ("Beta", "£12")]


@pytest.mark.parametrize(
    ("select", "message"),
    [
        (lambda r: r.css("h1::tex"), "invalid CSS selector 'h1::tex': The pseudo-element ::tex is unknown"),
        (lambda r: r.css("p["), "invalid CSS selector 'p\\['"),
        (lambda r: r.xpath("//p["), "invalid XPath '//p\\[': Invalid expression"),
        (lambda r: r.css("li").css("a["), "invalid CSS selector 'a\\['"),
        (lambda r: r.css("li")[0].xpath("./@"), "invalid XPath './@'"),
        (lambda r: r.css_nodes("a::text"), "'a::text' for css_nodes/css_first.*no ::text or ::attr"),
        (lambda r: r.css_first("p["), "invalid CSS selector 'p\\[' for css_nodes/css_first"),
    ],
)
def test_a_bad_selector_is_named_in_the_error(select: Any, message: str) -> None:
    with pytest.raises(SelectorError, match=message) as caught:
        select(make())
    assert isinstance(caught.value, ValueError)  # code catching parsel's ValueError still does


def test_follow_takes_selectors_of_elements_and_of_attribute_values() -> None:
    response = make()
    assert response.follow(response.css("a.next")[0]).url == "http://shop.test/page/2"
    assert response.follow(response.css("a.next::attr(href)")[0]).url == "http://shop.test/page/2"
    assert response.follow(response.css("img")[0]).url == "http://shop.test/img/cover.png"
    with pytest.raises(ValueError, match="selector <p> has no href or src"):
        response.follow(response.css("p#empty")[0])
    with pytest.raises(TypeError, match="not int"):
        response.follow(3)


def test_follow_all_takes_selector_lists_and_scrapy_keywords() -> None:
    response = make()
    expected = ["http://shop.test/p/a?x=1", "http://shop.test/list/b.html"]
    assert [r.url for r in response.follow_all(response.css("li.product a"))] == expected
    assert [r.url for r in response.follow_all(css="li.product a")] == expected
    assert [r.url for r in response.follow_all(css="li.product a::attr(href)")] == expected
    assert [r.url for r in response.follow_all(xpath="//li/a")] == expected
    assert [r.url for r in response.follow_all("li.product a")] == expected  # the fast path
    with pytest.raises(TypeError, match="one of"):
        list(response.follow_all("a", css="a"))


def test_follow_passes_cb_kwargs() -> None:
    request = make().follow("/x", callback="parse_item", cb_kwargs={"page": 2})
    assert request.cb_kwargs == {"page": 2}
    assert fake_response("", request=request).cb_kwargs == {"page": 2}


def test_an_xml_body_gets_xml_selectors() -> None:
    sitemap = "<?xml version='1.0'?><urlset><url><loc>http://a.test/</loc></url></urlset>"
    response = fake_response(sitemap, headers={"Content-Type": "application/xml"})
    assert response.xpath("//loc/text()").getall() == ["http://a.test/"]


class MissSpider(Spider):
    def parse(self, response: Response) -> Any:
        yield {"title": response.css_first("h2.title").text()}  # type: ignore[union-attr]


def test_a_css_first_miss_that_breaks_a_callback_is_explained() -> None:
    out = run_callback(MissSpider(), make())
    assert "AttributeError: 'NoneType' object has no attribute 'text'" in out.errors[0]
    assert "hint: css_first('h2.title') matched nothing on http://shop.test/list/" in out.errors[0]
    assert "response.css('h2.title').get()" in out.errors[0]


def test_selectors_load_parsel_only_when_used() -> None:
    code = (
        "import sys\n"
        "from crawler.testing import fake_response\n"
        "r = fake_response('<h1>x</h1>')\n"
        "assert r.css_first('h1').text() == 'x' and list(r.follow_all('a')) == []\n"
        "assert 'parsel' not in sys.modules and 'lxml' not in sys.modules, 'loaded too early'\n"
        "assert r.css('h1::text').get() == 'x' and 'parsel' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_node_habits_on_a_scrapy_selector_say_what_to_use_instead() -> None:
    link = make().css("a.next")[0]
    with pytest.raises(AttributeError, match=r"no \.text: use \.css\('::text'\)\.get\(\).*css_nodes\(\)"):
        link.text()  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match=r"no \.attributes: use \.attrib"):
        link.attributes  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match="object has no attribute 'nothing'"):
        link.nothing  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(link, "nothing")
