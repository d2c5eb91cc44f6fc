"""A deterministic benchmark site, generated in memory as a route table for `SiteServer`.

Page 0 is ``/``; page ``i`` lives at ``/<section>/<subsection>/item-<i>.html``. Each page
is about 30 KB of ordinary shop HTML (head with title and meta, nav, an article of
pseudo-random words, a product block with ``h1``, ``.price`` and ``.sku``) and links to
``LINKS_PER_PAGE`` pages, written in mixed styles (relative, ``./``, ``../``,
root-relative, absolute, some with fragments) so a crawler must canonicalise to avoid
fetching a page twice. Pages ``2i+1``, ``2i+2`` and ``i+1`` are always among page
``i``'s links, so every page is reachable from ``/`` in few hops.

Each page also links to exactly one ``/private/...`` page. ``/robots.txt`` disallows
``/private/``, but the private pages exist (and link on), so a crawler that ignores
robots.txt fetches them and the server's hit log shows it.

``python -m crawler.sites.bench [--pages N] [--port 0]`` serves it until SIGTERM or
SIGINT (``crawl bench`` runs it so in a child process; ``bench/serve.py`` too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import posixpath
import random
import signal
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from .server import Page, SiteServer

DEFAULT_PAGES = 5000
DEFAULT_SEED = 20240501
LINKS_PER_PAGE = 20
PAGE_BYTES = 30_800
PRIVATE_PREFIX = "/private/"
ROBOTS_TXT = b"User-agent: *\nDisallow: /private/\n"
TEXT_PLAIN = (("Content-Type", "text/plain; charset=utf-8"),)
PARENT_POLL_SECONDS = 1.0

SECTIONS = ("books", "garden", "kitchen", "toys", "music", "tools", "sports", "office")
SUBSECTIONS = ("new", "popular", "sale", "classic")
NAV_PAGES = (1, 2, 3)  # after "/", linked from every page's nav bar
FRAGMENTS = ("#reviews", "#specs", "#top", "#")
SYLLABLES = ("ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "an", "or", "el", "um", "is", "ba", "de")


@dataclass(frozen=True, slots=True)
class Site:
    """The routes to serve and, for checks, the page graph (page index -> linked indices)."""

    routes: dict[str, Page]
    links: list[list[int]]
    html_bytes: int

    @property
    def pages(self) -> int:
        return len(self.links)

    def reachable(self) -> int:
        """How many pages a crawler starting at ``/`` can reach (robots.txt obeyed)."""
        seen, queue = {0}, deque([0])
        while queue:
            for target in self.links[queue.popleft()]:
                if target not in seen:
                    seen.add(target)
                    queue.append(target)
        return len(seen)


def page_path(index: int) -> str:
    if index == 0:
        return "/"
    section = SECTIONS[index % len(SECTIONS)]
    subsection = SUBSECTIONS[index // len(SECTIONS) % len(SUBSECTIONS)]
    return f"/{section}/{subsection}/item-{index}.html"


def private_path(index: int) -> str:
    return f"{PRIVATE_PREFIX}orders/order-{index}.html"


def build_site(pages: int, base_url: str, seed: int = DEFAULT_SEED) -> Site:
    """The whole site for a server at ``base_url`` (absolute links need it); deterministic."""
    text = _TextPool(random.Random(seed))
    routes = {"/robots.txt": Page(ROBOTS_TXT, headers=TEXT_PLAIN)}
    links, total = [], 0
    for index in range(pages):
        rng = random.Random(seed * 1_000_003 + index)
        targets = _link_targets(index, pages, rng)
        html = _PageWriter(index, base_url.rstrip("/"), rng, text).render(targets)
        routes[page_path(index)] = Page(html)
        routes[private_path(index)] = Page(_private_html(index, pages))
        links.append(targets)
        total += len(html)
    return Site(routes, links, total)


def _link_targets(index: int, pages: int, rng: random.Random) -> list[int]:
    """Nav links, then the pages that keep the site connected, then random ones."""
    structural = [2 * index + 1, 2 * index + 2, index + 1]
    targets = [0, *NAV_PAGES, *structural]
    targets = [target for target in targets if target < pages]
    while len(targets) < LINKS_PER_PAGE:
        targets.append(rng.randrange(pages))
    return targets


def _private_html(index: int, pages: int) -> bytes:
    more = private_path((index + 1) % pages)
    return (
        f"<!DOCTYPE html><html><head><title>Order {index}</title></head><body>"
        f'<h1>Order {index}</h1><p><a href="{more}">next order</a> '
        f'<a href="{page_path(0)}">home</a></p></body></html>'
    ).encode()


class _TextPool:
    """Pseudo-random words and paragraphs, made once and shared by all pages."""

    def __init__(self, rng: random.Random, words: int = 3000, paragraphs: int = 600) -> None:
        self.words = ["".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))) for _ in range(words)]
        self.paragraphs = [self._paragraph(rng) for _ in range(paragraphs)]

    def _paragraph(self, rng: random.Random) -> str:
        words = rng.choices(self.words, k=rng.randint(40, 120))
        words[rng.randrange(len(words))] = f"<strong>{rng.choice(self.words)}</strong>"
        words[0] = words[0].capitalize()
        return f"<p>{' '.join(words)}.</p>"

    def phrase(self, rng: random.Random, count: int) -> str:
        return " ".join(rng.choices(self.words, k=count)).capitalize()


class _PageWriter:
    """Renders one product page; link styles and text are drawn from its own ``rng``."""

    def __init__(self, index: int, base: str, rng: random.Random, text: _TextPool) -> None:
        self.index, self.base, self.rng, self.text = index, base, rng, text
        self.path = page_path(index)
        self.title = f"{text.phrase(rng, 3)} {index}"

    def render(self, targets: list[int]) -> bytes:
        nav, body = targets[: 1 + len(NAV_PAGES)], targets[1 + len(NAV_PAGES) :]
        half = len(body) // 2
        parts = [
            self._head(),
            self._nav(nav),
            self._product(),
            self._article(body[:half]),
            self._related(body[half:]),
            self._footer(),
        ]
        return "".join(parts).encode()

    def href(self, target: str) -> str:
        """``target`` (a path) as a link from this page, in a randomly chosen style."""
        roll = self.rng.random()
        if roll < 0.15:
            href = self.base + target
        elif roll < 0.35:
            href = target
        else:
            href = _relative(self.path, target)
            if roll < 0.5 and not href.startswith("./"):
                href = "./" + href
        if self.rng.random() < 0.2:
            href += self.rng.choice(FRAGMENTS)
        return href

    def _link(self, index: int) -> str:
        label = "Home" if index == 0 else self.text.phrase(self.rng, 2)
        return f'<a href="{self.href(page_path(index))}">{label}</a>'

    def _head(self) -> str:
        description = self.text.phrase(self.rng, 18)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{self.title} | Bench Shop</title>"
            f'<meta name="description" content="{description}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="stylesheet" href="/static/site.css">'
            "<script>window.dataLayer = window.dataLayer || [];</script></head>\n<body>"
        )

    def _nav(self, targets: list[int]) -> str:
        items = "".join(f"<li>{self._link(target)}</li>" for target in targets)
        return f'<header><nav class="main-nav"><ul>{items}</ul></nav></header>\n'

    def _product(self) -> str:
        cents = self.rng.randrange(199, 99_999)
        features = "".join(f"<li>{self.text.phrase(self.rng, 5)}</li>" for _ in range(5))
        return (
            f'<main><section class="product" itemscope><h1>{self.title}</h1>'
            f'<p class="price">${cents // 100}.{cents % 100:02d}</p>'
            f'<p class="sku">SKU-{self.index:06d}</p><ul class="features">{features}</ul>'
            "</section>\n"
        )

    def _article(self, targets: list[int]) -> str:
        """Paragraphs up to about ``PAGE_BYTES``, with ``targets`` linked in between."""
        parts, size = ['<article class="description">'], 4000
        links = deque(targets)
        while size < PAGE_BYTES:
            if len(parts) % 8 == 1:
                parts.append(f"<h2>{self.text.phrase(self.rng, 4)}</h2>")
            paragraph = self.rng.choice(self.text.paragraphs)
            parts.append(paragraph)
            size += len(paragraph)
            if links and len(parts) % 3 == 0:
                parts.append(f"<p>See also {self._link(links.popleft())}.</p>")
        parts += [f"<p>See also {self._link(target)}.</p>" for target in links]
        return "".join(parts) + "</article>\n"

    def _related(self, targets: list[int]) -> str:
        items = "".join(f'<li class="related-item">{self._link(target)}</li>' for target in targets)
        return f'<aside class="related"><h2>Related products</h2><ul>{items}</ul></aside></main>\n'

    def _footer(self) -> str:
        private = self.href(private_path(self.index))
        return (
            f'<footer><p><a href="{private}">Your orders</a></p>'
            "<p>&copy; Bench Shop. All prices include tax.</p></footer></body></html>\n"
        )


def _relative(source: str, target: str) -> str:
    """The relative reference from page ``source`` to ``target``: ``item-3.html``,
    ``../sale/item-5.html``, ``../../`` (for ``/``)."""
    relative = posixpath.relpath(target, posixpath.dirname(source))
    if relative == ".":
        return "./"
    return relative + "/" if target.endswith("/") else relative


def serve_site(
    server: SiteServer, pages: int, seed: int = DEFAULT_SEED, *, stop_with_parent: bool = False
) -> None:
    """Serve the site on ``server`` until SIGTERM or SIGINT (or, with ``stop_with_parent``,
    until the process that started this one is gone). Once listening, print one JSON line:
    ``url``, ``pages``, ``reachable`` and ``html_bytes``."""

    def on_ready(server: SiteServer) -> None:
        site = build_site(pages, server.url, seed=seed)
        server.routes = site.routes
        ready = {"url": server.url, "pages": site.pages, "reachable": site.reachable()}
        print(json.dumps({**ready, "html_bytes": site.html_bytes}), flush=True)
        if stop_with_parent:
            _stop_with_parent(PARENT_POLL_SECONDS)

    server.serve_forever(on_ready=on_ready)


def _stop_with_parent(interval: float) -> None:
    """Stop as on SIGTERM once our parent has died (even by ``kill -9``) and we have
    been handed to another process; checked every ``interval`` seconds."""
    loop, parent = asyncio.get_running_loop(), os.getppid()

    def check() -> None:
        if os.getppid() != parent:
            signal.raise_signal(signal.SIGTERM)
        else:
            loop.call_later(interval, check)

    check()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.sites.bench", description="Serve the benchmark site until Ctrl-C."
    )
    parser.add_argument("--pages", type=int, default=DEFAULT_PAGES, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="default: %(default)s")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8000, help="default: %(default)s; 0 picks a free port")
    parser.add_argument("--stop-with-parent", action="store_true", help="also stop when the parent dies")
    args = parser.parse_args(argv)
    server = SiteServer(host=args.host, port=args.port, record_hits=False)
    serve_site(server, args.pages, args.seed, stop_with_parent=args.stop_with_parent)


if __name__ == "__main__":
    main()
