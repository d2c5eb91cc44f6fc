"""robots.txt parsing: the product token a User-Agent gives, the robots_user_agent
setting, and a robots.txt longer than the size cap (RFC 9309: parse its prefix)."""

# ruff: noqa: E501  (User-Agent strings quoted whole, as their crawlers document them)

from __future__ import annotations

import pytest

from crawler.fetch.robots import MAX_ROBOTS_BYTES, product_token

from ..support.cli import crawl
from ..support.items import read_jsonl
from ..support.sites import html, robots
from ..support.spiders import TitleSpider


@pytest.mark.parametrize(
    ("user_agent", "token"),
    [
        # the crawlers' own documentation: their User-Agent strings and the token they match
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "googlebot"),
        (
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/W.X.Y.Z Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "googlebot",
        ),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; "
            "+http://www.google.com/bot.html) Chrome/W.X.Y.Z Safari/537.36",
            "googlebot",
        ),
        ("Googlebot-Image/1.0", "googlebot-image"),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bingbot"),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
            "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
            "bingbot",
        ),
        ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", "yandexbot"),
        (
            "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
            "baiduspider",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
            "applebot",
        ),
        ("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", "duckduckbot"),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "facebookexternalhit"),
        # issue 14: a compatible User-Agent names its crawler inside the comment
        ("Mozilla/5.0 (compatible; Foobot/1.0)", "foobot"),
        ("crawler/0.1 (+https://github.com/crawler-project/crawler)", "crawler"),
        ("Scrapy/2.11 (+https://scrapy.org)", "scrapy"),
        ("Foobot", "foobot"),
        ("  FooBot/2 ", "foobot"),
        # a browser's User-Agent names no crawler: only the * group applies
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            "*",
        ),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0", "*"),
        ("", "*"),
    ],
)
def test_product_token(user_agent: str, token: str) -> None:
    assert product_token(user_agent) == token


GROUPS = (
    "User-agent: *\nDisallow: /\n\n"
    "User-agent: Foobot\nDisallow: /private\n\n"
    "User-agent: Barbot\nDisallow: /1\n"
)


def group_site(serve):
    server = serve({f"/{i}": html(f"page {i}", [f"/{i + 1}", "/private"]) for i in range(3)})
    server.routes = {**server.routes, "/robots.txt": robots(GROUPS), "/private": html("private")}
    return server


def test_a_compatible_user_agent_is_matched_by_its_crawlers_group(serve, crawl_items):
    server = group_site(serve)
    agent = "Mozilla/5.0 (compatible; Foobot/1.0)"
    items, stats = crawl_items(TitleSpider, [server.url + "/0"], user_agent=agent)
    assert sorted(item["title"] for item in items) == ["page 0", "page 1", "page 2"]
    assert not server.hits_for("/private") and stats["dropped/robots"] >= 1
    assert server.hits_for("/0")[0].headers["user-agent"] == agent


def test_robots_user_agent_names_the_group_and_leaves_the_header(serve, crawl_items):
    server = group_site(serve)
    items, _ = crawl_items(
        TitleSpider, [server.url + "/0"], user_agent="Foobot/1.0", robots_user_agent="BarBot"
    )
    assert sorted(item["title"] for item in items) == ["page 0", "private"]  # /1 is Barbot's to skip
    assert server.hits_for("/0")[0].headers["user-agent"] == "Foobot/1.0"


def test_the_cli_takes_robots_user_agent(serve, tmp_path):
    server = group_site(serve)
    spider = tmp_path / "spider.py"
    spider.write_text(
        "from crawler import Spider\n\nclass S(Spider):\n"
        f"    start_urls = ['{server.url}/0']\n\n"
        "    def parse(self, response):\n"
        "        yield {'title': response.css_first('title').text()}\n"
        "        yield from response.follow_all('a')\n"
    )
    output = tmp_path / "items.jsonl"
    result = crawl(
        str(spider), "--robots-user-agent", "barbot",
        "-O", str(output), "--parse-workers", "0", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(item["title"] for item in read_jsonl(output)) == ["page 0", "private"]


def test_a_robots_txt_over_the_size_cap_is_parsed_up_to_500_kib(serve, crawl_items):
    """issue 18 item 9: it made the whole site unreachable; RFC 9309 2.5 says to parse
    the first 500 KiB at least. Rules past the prefix do not count."""
    padding = "# " + "x" * 98 + "\n"
    text = "User-agent: *\nDisallow: /private\n" + padding * (MAX_ROBOTS_BYTES // len(padding) + 10)
    text += "Disallow: /2\n" + padding * 5000  # 1 MiB in all, past the 256 KiB cap
    server = group_site(serve)
    server.routes = {**server.routes, "/robots.txt": robots(text)}
    items, stats = crawl_items(TitleSpider, [server.url + "/0"], max_size=256 * 1024)
    assert sorted(item["title"] for item in items) == ["page 0", "page 1", "page 2"]
    assert not server.hits_for("/private")
    assert stats["dropped/robots"] >= 1 and stats["dropped/robots_unreachable"] == 0
