"""Rendering in a browser: the wait conditions and settings, and end-to-end crawls
with a real Chromium (Playwright) against local servers.

The browser tests skip, saying why, when Playwright or Chromium is missing;
``.ci/run`` installs both so CI runs them."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler import Request, Response, Spider
from crawler._errors import BrowserUnavailable, UsageError
from crawler._request import DEFAULT_RENDER_RESOURCES, Wait, parse_wait
from crawler._settings import Settings, resolve_settings
from crawler.demo import serve_demo
from crawler.demo.site import catalog
from crawler.fetch.render import wants_render
from crawler.sites.server import Hit, Page, SiteServer

from ..support.cli import CRAWL
from ..support.items import read_jsonl
from ..support.sites import TEXT

SPIDERS = Path(__file__).resolve().parents[2] / "spiders"
JSON = (("Content-Type", "application/json"),)


def _browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None if they can."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed: pip install -e '.[browser]'"
    from crawler.fetch.browser import find_chromium

    try:
        find_chromium(None)
    except BrowserUnavailable as exc:
        return f"no Chromium: {exc}"
    return None


needs_browser = pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))


# --- wait conditions and settings -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wait"),
    [
        ("networkidle", Wait("networkidle")),
        ("load", Wait("load")),
        (" domcontentloaded ", Wait("domcontentloaded")),
        (2, Wait("load", seconds=2.0)),
        (0.5, Wait("load", seconds=0.5)),
        ("1.5", Wait("load", seconds=1.5)),
        ("ol.products li", Wait("load", selector="ol.products li")),
        ("#late", Wait("load", selector="#late")),
    ],
)
def test_wait_for_reads_events_seconds_and_selectors(value: str | float, wait: Wait) -> None:
    assert parse_wait(value) == wait


@pytest.mark.parametrize("value", ["", "  ", -1, "-2", float("nan"), float("inf"), True, None])
def test_wait_for_refuses_what_is_neither(value: Any) -> None:
    with pytest.raises(ValueError, match="wait_for"):
        parse_wait(value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"browser_pages": 0}, "browser_pages"),
        ({"wait_for": ""}, "wait_for"),
        ({"wait_for": -3}, "wait_for"),
        ({"render_resources": ("script", "pictures")}, "render_resources"),
    ],
)
def test_bad_render_settings_are_usage_errors(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Settings(**settings)


def test_a_request_with_a_bad_wait_for_or_render_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="wait_for"):
        Request("http://a.test/", render=True, wait_for=-1)
    with pytest.raises(TypeError, match="render"):
        Request("http://a.test/", render="yes")  # type: ignore[arg-type]


def test_fonts_media_and_images_are_blocked_by_default() -> None:
    assert {"image", "media", "font"}.isdisjoint(DEFAULT_RENDER_RESOURCES)
    assert {"document", "script", "xhr", "fetch", "stylesheet"} <= set(DEFAULT_RENDER_RESOURCES)


def test_a_request_renders_if_it_says_so_else_as_the_spider_says() -> None:
    plain, rendering = Settings(), Settings(render=True)
    assert not wants_render(Request("http://a.test/"), plain)
    assert wants_render(Request("http://a.test/", render=True), plain)
    assert wants_render(Request("http://a.test/"), rendering)
    assert not wants_render(Request("http://a.test/", render=False), rendering)


def test_follow_passes_render_and_wait_for_on() -> None:
    response = Response("http://a.test/", 200, {}, b"", Request("http://a.test/"))
    request = response.follow("/next", render=True, wait_for="li.product")
    assert (request.url, request.render, request.wait_for) == ("http://a.test/next", True, "li.product")


def test_spider_attributes_set_the_render_settings() -> None:
    class Rendering(Spider):
        render = True
        wait_for = "div.ready"
        render_resources = ["document", "script", "xhr", "image"]

    resolved = resolve_settings(Rendering, {})
    assert (resolved.render, resolved.wait_for) == (True, "div.ready")
    assert resolved.render_resources == ("document", "script", "xhr", "image")
    assert resolve_settings(Rendering, {"render": False}).render is False  # --no-render


# --- without a browser: one clear error --------------------------------------------


def _spider_file(tmp_path: Path, url: str, *, render_setting: bool) -> Path:
    path = tmp_path / "spider.py"
    path.write_text(
        textwrap.dedent(
            f"""
            from crawler import Request, Spider

            class One(Spider):
                render = {render_setting}

                def start_requests(self):
                    yield Request({url!r}, render=True)

                def parse(self, response):
                    yield {{"url": response.url}}
            """
        )
    )
    return path


def _without_playwright(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``import playwright`` fails, as when it is not installed."""
    shadow = tmp_path / "shadow" / "playwright"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError('no playwright', name='playwright')\n")
    return {**os.environ, "PYTHONPATH": str(shadow.parent)}


@pytest.mark.parametrize("command", ["crawl --render", "crawl, render per request", "parse", "shell"])
def test_rendering_without_playwright_is_one_clear_error(
    tmp_path: Path, serve: Callable[..., SiteServer], command: str
) -> None:
    server = serve({"/": Page(b"<title>x</title>"), "/robots.txt": Page(b"", headers=TEXT)})
    spider = _spider_file(tmp_path, server.url + "/", render_setting=command == "crawl --render")
    arguments = {
        "parse": ["parse", server.url + "/", str(spider), "--render"],
        "shell": ["shell", server.url + "/", "--render", "-c", "response"],
    }.get(command, [str(spider), "--no-progress"])
    result = subprocess.run(
        [CRAWL, *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env=_without_playwright(tmp_path),
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("crawl") and "error:" in line]
    assert len(errors) == 1 and "pip install 'crawler[browser]'" in errors[0]


@needs_browser
def test_a_browser_path_that_is_not_there_is_one_clear_error(
    tmp_path: Path, serve: Callable[..., SiteServer]
) -> None:
    server = serve({"/": Page(b"<title>x</title>")})
    spider = _spider_file(tmp_path, server.url + "/", render_setting=True)
    result = subprocess.run(
        [CRAWL, str(spider), "--browser-path", str(tmp_path / "no-chromium"), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("crawl: error: browser_path")


# --- end to end, with a real Chromium --------------------------------------------


class Rendered(Spider):
    """Renders its start URLs; one item per page: what the callback saw."""

    render = True

    def parse(self, response: Response) -> Iterator[dict[str, Any]]:
        yield {
            "url": response.url,
            "status": response.status,
            "redirects": list(response.redirect_urls),
            "shop": response.headers.get("x-shop"),
            "items": response.css("#list li::text").getall(),
        }


FILL_LIST = """<ul id="list"></ul><script>
fetch("/api/items").then((a) => a.json()).then((names) => {
  for (const name of names) {
    const item = document.createElement("li"); item.textContent = name;
    document.getElementById("list").append(item);
  }
});
</script>"""


def _page(body: str, *headers: tuple[str, str]) -> Page:
    return Page(
        f"<!doctype html><html><head><title>t</title></head><body>{body}</body></html>".encode(),
        headers=(("Content-Type", "text/html; charset=utf-8"), *headers),
    )


def _site(**routes: Page) -> dict[str, Page]:
    return {
        "/robots.txt": Page(b"User-agent: *\nDisallow: /private\n", headers=TEXT),
        "/api/items": Page(b'["kettle", "teapot"]', headers=JSON),
        **{"/" + name.replace("_", "-"): page for name, page in routes.items()},
    }


@needs_browser
def test_the_example_spider_gets_every_product_of_the_live_catalogue(tmp_path: Path) -> None:
    shop = serve_demo()
    try:
        out = tmp_path / "live.jsonl"
        stats = tmp_path / "stats.json"
        command = [CRAWL, str(SPIDERS / "live.py"), "-a", f"base_url={shop.url}", "-O", str(out)]
        result = subprocess.run(
            [*command, "--stats", str(stats)], capture_output=True, text=True, timeout=90, check=False
        )
    finally:
        shop.stop()
    assert result.returncode == 0, result.stderr
    expected = {(shop.url + p.path, p.sku, p.name, p.price, p.availability == "In stock") for p in catalog()}
    items = read_jsonl(out)
    assert {(i["url"], i["sku"], i["name"], i["price"], i["in_stock"]) for i in items} == expected
    assert len(items) == len(expected) == 60
    render = crawler_stats(stats)["render"]
    assert render["pages"] == 1 and render["requests"] == 1 and render["ms_per_page"] > 0


def crawler_stats(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


@needs_browser
def test_the_callback_gets_the_dom_with_the_main_documents_status_headers_and_url(
    serve: Callable[..., SiteServer], crawl_items: Callable[..., Any]
) -> None:
    moved = Page(b"", 301, (("Location", "/shop"),))
    server = serve(_site(shop=_page(FILL_LIST, ("X-Shop", "demo")), old=moved))
    items, stats = crawl_items(Rendered, [server.url + "/old"])
    assert items == [
        {
            "url": server.url + "/shop",
            "status": 200,
            "redirects": [server.url + "/old"],
            "shop": "demo",
            "items": ["kettle", "teapot"],
        }
    ]
    assert stats["render/pages"] == 1 and stats["render/requests"] == 1
    assert [hit.target for hit in server.hits].count("/shop") == 1  # the browser fetched it not again


def _canary_page(canary: str) -> Page:
    """A page that tries every way a script has to reach ``canary``."""
    return _page(
        f"""{FILL_LIST}
<img src="{canary}/img.png"><iframe src="{canary}/frame"></iframe>
<link rel="stylesheet" href="{canary}/style.css"><script src="{canary}/script.js"></script>
<script>
fetch("{canary}/fetch").catch(() => 0);
fetch("/hop").catch(() => 0);
const request = new XMLHttpRequest(); request.open("GET", "{canary}/xhr"); request.send();
navigator.sendBeacon("{canary}/beacon", "x");
try {{ new WebSocket("{canary.replace("http", "ws")}/socket"); }} catch (e) {{}}
new EventSource("{canary}/events");
</script>"""
    )


@needs_browser
def test_a_script_never_reaches_a_loopback_address_nobody_named(
    serve: Callable[..., SiteServer], crawl_items: Callable[..., Any]
) -> None:
    canary = SiteServer({}, host="127.0.0.2").start()
    try:
        hop = Page(b"", 302, (("Location", canary.url + "/redirected"),))
        server = serve(_site(page=_canary_page(canary.url), hop=hop))
        items, stats = crawl_items(Rendered, [server.url + "/page"], retries=0)
        assert items[0]["items"] == ["kettle", "teapot"]  # the page did render
        assert canary.hits == []
        assert stats["render/blocked_requests"] >= 8
        # The same page, when the user allows private addresses: the canary is reachable.
        crawl_items(Rendered, [server.url + "/page"], retries=0, allow_private=True)
        assert {"/fetch", "/xhr", "/redirected"} <= {hit.target for hit in canary.hits}
    finally:
        canary.stop()


@needs_browser
def test_the_browsers_own_redirects_follow_the_crawls_rule(
    serve: Callable[..., SiteServer], crawl_items: Callable[..., Any]
) -> None:
    """A script's request that redirects in a loop is refused at its first repeat,
    as the crawl refuses one (``next_hop``), not fetched until ``max_redirects``."""
    page = _page('<ul id="list"></ul><script>fetch("/a").catch(() => 0);</script>')
    there = Page(b"", 302, (("Location", "/b"),))
    back = Page(b"", 302, (("Location", "/a"),))
    server = serve(_site(page=page, a=there, b=back))
    items, _ = crawl_items(Rendered, [server.url + "/page"], retries=0)
    assert items[0]["status"] == 200
    assert [hit.target for hit in server.hits].count("/a") == 1


@needs_browser
@pytest.mark.parametrize("limit", ["rate", "crawl_delay"])
def test_the_browsers_own_requests_keep_the_hosts_rate(
    serve: Callable[..., SiteServer], crawl_items: Callable[..., Any], limit: str
) -> None:
    calls = "".join(f'fetch("/api/items?n={n}");' for n in range(4))
    routes = _site(**{f"p{n}": _page(f"{FILL_LIST}<script>{calls}</script>") for n in range(3)})
    for n in range(4):
        routes[f"/api/items?n={n}"] = routes["/api/items"]
    settings: dict[str, Any] = {"rate": 4} if limit == "rate" else {}
    if limit == "crawl_delay":
        routes["/robots.txt"] = Page(b"User-agent: *\nCrawl-delay: 0.25\n", headers=TEXT)
    server = serve(routes)
    starts = [f"{server.url}/p{n}" for n in range(3)]
    items, stats = crawl_items(Rendered, starts, per_host=4, autothrottle=False, browser_pages=3, **settings)
    assert len(items) == 3 and all(item["items"] == ["kettle", "teapot"] for item in items)
    assert stats["render/requests"] == 15
    assert len(server.hits) == 19  # robots.txt, 3 pages, 15 of their scripts' calls
    # The server sees arrivals, with the machine's jitter on top of the spacing the
    # crawl keeps (1.05 / 4 s): unpaced, a page's four calls would arrive together.
    calls = sorted(hit.time for hit in server.hits if hit.target.startswith("/api/"))
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert min(gaps) > 0.15
    assert (len(calls) - 1) / (calls[-1] - calls[0]) <= 4


BUSY_THEN_ITEMS = """<ul id="list"></ul><script>
fetch("/api/busy").then(() => fetch("/api/items")).then((a) => a.json()).then((names) => {
  for (const name of names) {
    const item = document.createElement("li"); item.textContent = name;
    document.getElementById("list").append(item);
  }
});
</script>"""


@needs_browser
def test_a_retry_after_from_a_script_request_pauses_the_host(
    serve: Callable[..., SiteServer], crawl_items: Callable[..., Any]
) -> None:
    busy = Page(b"busy", 503, (("Retry-After", "1"), *TEXT))
    server = serve(_site(page=_page(BUSY_THEN_ITEMS), later=_page(FILL_LIST)))
    server.routes["/api/busy"] = busy
    items, stats = crawl_items(
        Rendered, [server.url + "/page", server.url + "/later"], autothrottle=False, browser_pages=1
    )
    assert sorted(len(item["items"]) for item in items) == [2, 2]
    assert stats["politeness/retry_after"] == 1
    arrived = {hit.target: hit.time for hit in server.hits if hit.target != "/api/items"}
    after = [hit.time for hit in server.hits if hit.time > arrived["/api/busy"]]
    assert after and min(after) - arrived["/api/busy"] >= 0.95  # nothing for the pause's second


class FollowsToRender(Spider):
    """A plain start page whose links are followed with ``render=True``."""

    def parse(self, response: Response) -> Iterator[Request]:
        yield from response.follow_all("a", callback="parse_rendered", render=True, wait_for="#list li")

    def parse_rendered(self, response: Response) -> Iterator[dict[str, Any]]:
        yield {"url": response.url, "items": response.css("#list li::text").getall()}


@needs_browser
def test_follow_render_true_through_a_job(
    tmp_path: Path, serve: Callable[..., SiteServer], crawl_items: Callable[..., Any]
) -> None:
    server = serve(_site(start=_page('<a href="/a">a</a> <a href="/b">b</a>'), a=_page(FILL_LIST)))
    server.routes["/b"] = server.routes["/a"]
    items, stats = crawl_items(FollowsToRender, [server.url + "/start"], job=str(tmp_path / "job"))
    assert sorted((i["url"], tuple(i["items"])) for i in items) == [
        (server.url + "/a", ("kettle", "teapot")),
        (server.url + "/b", ("kettle", "teapot")),
    ]
    assert stats["render/pages"] == 2 and stats["pages"] == 3


@needs_browser
def test_images_are_blocked_unless_render_resources_allows_them(
    serve: Callable[..., SiteServer], crawl_items: Callable[..., Any]
) -> None:
    picture = Page(b"GIF89a", headers=(("Content-Type", "image/gif"),))
    server = serve(_site(page=_page('<img src="/a.gif">' + FILL_LIST)))
    server.routes["/a.gif"] = picture
    _, stats = crawl_items(Rendered, [server.url + "/page"])
    assert "/a.gif" not in {hit.target for hit in server.hits}
    assert stats["render/blocked_requests"] == 1
    allowed = (*DEFAULT_RENDER_RESOURCES, "image")
    crawl_items(Rendered, [server.url + "/page"], render_resources=allowed)
    assert "/a.gif" in {hit.target for hit in server.hits}


LATE = """<div id="box"></div><script>
setTimeout(() => { document.getElementById("box").innerHTML = '<ul id="list"><li>late</li></ul>'; }, 800);
</script>"""


class WaitsPerRequest(Spider):
    def start_requests(self) -> Iterator[Request]:
        url = self.start_urls[0]
        yield Request(url, render=True, wait_for="#list li", meta={"wait": "selector"})
        yield Request(url + "?again", render=True, wait_for=1.5, meta={"wait": "seconds"})
        yield Request(url + "?plain", meta={"wait": "none"})

    def parse(self, response: Response) -> Iterator[dict[str, Any]]:
        yield {"wait": response.meta["wait"], "items": response.css("#list li::text").getall()}


@needs_browser
def test_wait_for_a_selector_or_seconds_per_request(
    serve: Callable[..., SiteServer], crawl_items: Callable[..., Any]
) -> None:
    server = serve(_site(late=_page(LATE)))
    server.routes["/late?again"] = server.routes["/late?plain"] = server.routes["/late"]
    items, stats = crawl_items(WaitsPerRequest, [server.url + "/late"], wait_for="load")
    assert sorted((i["wait"], i["items"]) for i in items) == [
        ("none", []),
        ("seconds", ["late"]),
        ("selector", ["late"]),
    ]
    assert stats["render/pages"] == 2


@needs_browser
def test_a_selector_that_never_appears_times_out(
    serve: Callable[..., SiteServer], crawl_items: Callable[..., Any]
) -> None:
    server = serve(_site(page=_page(FILL_LIST)))
    items, stats = crawl_items(Rendered, [server.url + "/page"], wait_for="#never", timeout=2, retries=0)
    assert items == [] and stats["errors/timeout"] == 1


@needs_browser
def test_a_cached_rendered_page_replays_without_a_browser(
    tmp_path: Path, serve: Callable[..., SiteServer], crawl_items: Callable[..., Any]
) -> None:
    server = serve(_site(page=_page(FILL_LIST)))
    cache = str(tmp_path / "cache")
    first, _ = crawl_items(Rendered, [server.url + "/page"], cache=cache)
    server.stop()
    # No site, and no browser: render=True per request, so nothing checks for one up front.
    again, stats = crawl_items(
        PerRequestRender, [server.url + "/page"], cache=cache, browser_path=str(tmp_path / "none")
    )
    assert again == first and first[0]["items"] == ["kettle", "teapot"]
    assert stats["cache/hit"] == 2 and "render/pages" not in stats.counts  # robots.txt and the page


class PerRequestRender(Rendered):
    render = False

    def start_requests(self) -> Iterator[Request]:
        yield from (Request(url, render=True) for url in self.start_urls)


def _kill_once(killed: list[int], only_renderers: bool) -> Callable[[Hit], Page | None]:
    """A handler whose first answer comes after killing this process's Chromium (all
    of it, or only its renderer processes: the page crashes, the browser lives)."""
    import psutil

    def doomed(process: psutil.Process) -> bool:
        if "chrom" not in process.name().lower():
            return False
        return not only_renderers or "--type=renderer" in process.cmdline()

    def handler(hit: Hit) -> Page | None:
        if hit.target != "/api/slow":
            return None
        if not killed:
            for child in filter(doomed, psutil.Process().children(recursive=True)):
                killed.append(child.pid)
                child.kill()
        return Page(b'["after", "restart"]', headers=JSON)

    return handler


@needs_browser
@pytest.mark.parametrize("only_renderers", [False, True], ids=["browser", "page"])
def test_a_crash_is_counted_and_the_page_rendered_again(
    serve: Callable[..., SiteServer], crawl_items: Callable[..., Any], only_renderers: bool
) -> None:
    killed: list[int] = []
    page = _page(FILL_LIST.replace("/api/items", "/api/slow"))
    server = serve(_site(page=page), _kill_once(killed, only_renderers))
    items, stats = crawl_items(Rendered, [server.url + "/page"])
    assert killed, "no Chromium process was found to kill"
    assert [item["items"] for item in items] == [["after", "restart"]]
    assert stats["render/crashes"] == 1 and stats["render/retries"] == 1


# --- crawl parse and crawl shell ----------------------------------------------------


@pytest.fixture
def demo_shop() -> Iterator[SiteServer]:
    server = serve_demo()
    yield server
    server.stop()


@needs_browser
def test_crawl_parse_render_runs_the_callback_on_the_rendered_page(demo_shop: SiteServer) -> None:
    spider = SPIDERS / "listing.py"
    command = [CRAWL, "parse", demo_shop.url + "/live/", str(spider), "--json", "--render"]
    command += ["--wait-for", "li.product", "--callback", "parse_listing"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    product_links = [r for r in report["requests"] if r["callback"] == "parse_product"]
    assert len(product_links) == 60


@needs_browser
def test_crawl_shell_render_sees_what_the_script_added(demo_shop: SiteServer) -> None:
    code = "len(css('ol.live-products li.product')), text('h1')"
    plain = [CRAWL, "shell", demo_shop.url + "/live/", "-c", code]
    rendered = subprocess.run([*plain, "--render"], capture_output=True, text=True, timeout=90, check=False)
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.strip() == "(60, 'Live catalogue')"
    unrendered = subprocess.run(plain, capture_output=True, text=True, timeout=90, check=False)
    assert unrendered.stdout.strip() == "(0, 'Live catalogue')"
