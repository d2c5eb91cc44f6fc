"""Pages and small sites for `SiteServer`: an HTML page, a robots.txt, a chain of
pages, redirects."""

from __future__ import annotations

from crawler.sites.server import Hit, Page

TEXT = (("Content-Type", "text/plain"),)


def html(title: str, links: list[str] = (), body: str = "") -> Page:  # type: ignore[assignment]
    anchors = "".join(f'<a href="{href}">{i}</a>\n' for i, href in enumerate(links))
    return Page(f"<html><head><title>{title}</title></head><body>{body}\n{anchors}</body></html>".encode())


def robots(text: str) -> Page:
    return Page(text.encode(), headers=TEXT)


def chain_site(length: int) -> dict[str, Page]:
    """``/0`` links to ``/1``, and so on up to the last page."""
    return {f"/{i}": html(f"page {i}", [f"/{i + 1}"] if i + 1 < length else []) for i in range(length)}


def moved(target: str, status: int = 302) -> Page:
    return Page(status=status, headers=(("Location", target),))


def endless_redirects(hit: Hit) -> Page | None:
    """/chain/N redirects to /chain/N+1, for ever."""
    prefix, _, n = hit.target.rpartition("/")
    return moved(f"{prefix}/{int(n) + 1}") if prefix == "/chain" and n.isdigit() else None
