"""The demo shop: a deterministic catalog for examples, tests and benchmarks.

``serve_demo()`` runs it in a background thread; ``crawl demo`` (or ``python -m crawler.demo``) serves
it in the foreground. The pages are described in `crawler.demo.site`.
"""

from __future__ import annotations

from ..sites import SiteServer
from .site import DEMO_PRODUCT_COUNT, build_demo_site, demo_product_urls

__all__ = [
    "DEMO_PRODUCT_COUNT",
    "build_demo_site",
    "demo_product_urls",
    "install_demo",
    "serve_demo",
]


def serve_demo(host: str = "127.0.0.1", port: int = 0) -> SiteServer:
    """Start the shop in a background thread and return the server; call ``stop()``.

    Absolute links, robots.txt and the sitemap name the server's real URL.
    """
    server = SiteServer(host=host, port=port).start()
    install_demo(server)
    return server


def install_demo(server: SiteServer) -> None:
    """Point a started ``server`` at the shop's pages, built for ``server.url``."""
    server.routes = build_demo_site(server.url)
