"""``crawl new NAME [URL] [--dir DIR] [--force]``: write a spider template to start from."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from .logs import print_error
from .options import run_command, with_default

DEFAULT_URL = "http://127.0.0.1:8000/"
DEFAULT_DIR_SHOWN = "./spiders if it exists, else ."
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")

TEMPLATE = '''"""The {name!r} spider. Run it with:

    crawl {filename} -o {name}.jsonl

Try it on the demo shop: `crawl demo --serve` in another terminal. If the shop
says it serves on another port, point the spider there without editing it:

    crawl {filename} -o {name}.jsonl -a start_urls=http://127.0.0.1:8001/
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crawler import Request, Response, Spider


class {class_name}(Spider):
    name = {name!r}
    start_urls = [{url!r}]

    # Only these hosts are crawled (default: the hosts of start_urls):
    # allowed_domains = ["example.com"]

    # Any setting can be a class attribute; command-line flags override them:
    # per_host = 4        # requests in flight per host
    # rate = 2.0          # at most 2 requests per second per host
    # depth = 3           # follow links at most 3 levels from the start URLs
    # max_pages = 1000

    # Read a sitemap (or robots.txt's Sitemap: lines); pages go to sitemap_callback:
    # sitemap_urls = ["http://127.0.0.1:8000/robots.txt"]
    # sitemap_callback = "parse"

    # Objects with process_item(item, spider) -> item, or None to drop it:
    # pipelines = [DropEmptyTitles()]

    def parse(self, response: Response) -> Iterator[dict[str, Any] | Request]:
        """Called with each page. Yield items (dicts or dataclasses) and Requests."""
        title = response.css_first("title")
        yield {{"url": response.url, "title": title.text(strip=True) if title is not None else None}}
        # Follow every link; off-site, duplicate and non-http links are dropped for you.
        yield from response.follow_all("a")
        # Or send some pages to another callback:
        # yield from response.follow_all("li.product h3 a", callback=self.parse_product)

    # An `async def` callback runs in the crawl's own process and may await an extra
    # request (checked against robots.txt and scope, and paced like any other):
    # async def parse_product(self, response: Response) -> dict[str, Any]:
    #     api = await self.fetch(response.urljoin("/api/products.json"))
    #     return {{"url": response.url, "products": len(api.json())}}

    # Try a callback on one page:   crawl parse URL {filename} --callback parse
    # Explore a page's selectors:   crawl shell URL


# class DropEmptyTitles:
#     def process_item(self, item: dict[str, Any], spider: Spider) -> dict[str, Any] | None:
#         return item if item.get("title") else None
'''


def class_name_of(name: str) -> str:
    """``my-shop`` and ``my_shop`` give ``MyShopSpider``; ``shop_spider`` gives ``ShopSpider``."""
    words = [word for word in re.split(r"[-_]+", name) if word]
    stem = "".join(word[:1].upper() + word[1:] for word in words)
    return stem if stem.endswith("Spider") else stem + "Spider"


def render(name: str, url: str | None = None, filename: str | None = None) -> str:
    """The source of a spider named ``name`` starting at ``url``."""
    return TEMPLATE.format(
        name=name,
        class_name=class_name_of(name),
        url=url or DEFAULT_URL,
        filename=filename or f"{name}.py",
    )


def new_command(
    name: Annotated[
        str,
        typer.Argument(metavar="NAME", help="Spider name: letters, digits, - and _, starting with a letter."),
    ],
    url: Annotated[
        str | None, typer.Argument(metavar="URL", help=with_default("Start URL.", DEFAULT_URL))
    ] = None,
    folder: Annotated[
        Path | None,
        typer.Option("--dir", metavar="DIR", help=with_default("Where to write NAME.py.", DEFAULT_DIR_SHOWN)),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> int:
    """Write a spider template to start from.

    Exit code: 0 written; 1 the file exists or cannot be written; 2 a usage error."""
    problem = _name_problem(name) or _url_problem(url)
    if problem:
        print_error("crawl new", problem)
        return 2
    folder = folder if folder is not None else _default_dir()
    path = folder / f"{name}.py"
    if path.exists() and not force:
        print_error("crawl new", f"{path} already exists; use --force to overwrite it")
        return 1
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(render(name, url, str(path)), encoding="utf-8")
    except OSError as exc:
        print_error("crawl new", f"cannot write {path}: {exc.strerror or exc}")
        return 1
    print(f"wrote {path}; run it with: crawl {path} -o {name}.jsonl")
    return 0


def _name_problem(name: str) -> str | None:
    if NAME_PATTERN.fullmatch(name):
        return None
    return (
        f"invalid spider name {name!r}: use letters, digits, '-' and '_', "
        "starting with a letter (at most 64 characters)"
    )


def _url_problem(url: str | None) -> str | None:
    if url is None or re.match(r"https?://", url, re.IGNORECASE):
        return None
    return f"start URL must begin with http:// or https://, not {url!r}"


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(new_command, sys.argv[1:] if argv is None else argv, "crawl new")


def _default_dir() -> Path:
    spiders = Path("spiders")
    return spiders if spiders.is_dir() else Path(".")
