"""``crawl new``: the spider template runs as written."""

from __future__ import annotations

from pathlib import Path

import pytest

import crawler
from crawler.cli.new import DEFAULT_URL, class_name_of, main
from crawler.demo import demo_product_urls, serve_demo
from crawler.testing import fake_response, run_callback

from ..support.items import read_jsonl


def test_template_loads_and_crawls_the_demo_shop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["my-shop", "--dir", str(tmp_path)]) == 0
    path = tmp_path / "my-shop.py"
    assert str(path) in capsys.readouterr().out
    source = path.read_text()
    for hint in ("allowed_domains", "per_host", "rate", "depth", "sitemap_urls", "pipelines", "async def"):
        assert hint in source
    cls = crawler.load_spider(path)
    assert cls.__name__ == "MyShopSpider"
    assert cls.name == "my-shop"
    assert list(cls.start_urls) == [DEFAULT_URL]

    shop = serve_demo()
    try:
        stats = crawler.run(
            cls,
            spider_args={"start_urls": [shop.url + "/"]},
            output=str(tmp_path / "o.jsonl"),
            parse_workers=0,
        )
    finally:
        shop.stop()
    items = read_jsonl(tmp_path / "o.jsonl")
    assert stats["errors/callback"] == 0
    urls = {item["url"] for item in items}
    assert set(demo_product_urls(shop.url)) <= urls
    assert all(item["title"] for item in items)


def test_url_argument_and_default_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["books", "https://books.example/"]) == 0
    assert (tmp_path / "books.py").is_file()
    (tmp_path / "spiders").mkdir()
    assert main(["news_spider"]) == 0
    cls = crawler.load_spider(tmp_path / "spiders" / "news_spider.py")
    assert cls.__name__ == "NewsSpider"
    assert list(crawler.load_spider(tmp_path / "books.py").start_urls) == ["https://books.example/"]


def test_class_names() -> None:
    assert class_name_of("shop") == "ShopSpider"
    assert class_name_of("my_big-shop") == "MyBigShopSpider"


def test_generated_parse_offline(tmp_path: Path) -> None:
    assert main(["offline", "--dir", str(tmp_path)]) == 0
    spider = crawler.load_spider(tmp_path / "offline.py")()
    page = fake_response("<title> Hi </title><a href='/a'>a</a>", "http://site.test/")
    out = run_callback(spider, page, raise_errors=True)
    assert out.items == [{"url": "http://site.test/", "title": "Hi"}]
    assert [r.url for r in out.requests] == ["http://site.test/a"]


def test_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.py"
    path.write_text("# my work\n")
    assert main(["mine", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("crawl new: error: ")
    assert "already exists" in err and "--force" in err
    assert path.read_text() == "# my work\n"
    assert main(["mine", "--dir", str(tmp_path), "--force"]) == 0
    assert "class MineSpider(Spider)" in path.read_text()


@pytest.mark.parametrize("name", ["", "1abc", "has space", "../escape", "a.b", "x" * 65])
def test_bad_name(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    assert main([name, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "invalid spider name" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_bad_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ok", "ftp://x/", "--dir", str(tmp_path)]) == 2
    assert "http://" in capsys.readouterr().err
