"""The demo shop's pages, generated deterministically from ``random.Random(42)``.

Routes built by `build_demo_site`:

    /                              home: categories, a few featured products
    /category/<slug>/              first page of a category, 10 products per page
    /category/<slug>/page/<n>/     later pages; pages link rel="next" and rel="prev"
    /product/<slug>.html           one product: exactly one each of h1.title, p.price,
                                   p.availability ("In stock" or "Out of stock": the
                                   count is only in the API), span.sku; div.description,
                                   breadcrumbs, related products, add-to-cart link
    /robots.txt                    disallows /cart/ and /admin/; names the sitemap
    /sitemap.xml                   every product URL
    /api/products.json             the catalog as JSON
    /api/products/<sku>.json       one product's record, plus its number of ``reviews``
    /live/                         the live catalogue: an empty ``ol.live-products`` that
                                   its script fills from /api/products.json, one
                                   ``li.product`` per product (h3 a, p.price,
                                   p.availability, span.sku); only a browser sees them
    /cart/, /cart/add?sku=<sku>, /admin/
                                   exist (200), for crawlers that ignore robots.txt
    /old-sale/                     301 to /sale/, which is gone (404)

Broken links, for link checkers: every page's footer links to /delivery/, which
does not exist (404); the first Kitchen listing page links to /old-sale/; the
description of product KT-0001 links off-site to http://example.invalid/manual.pdf.

Product links are spelled in equivalent ways (root-relative, ``../`` and ``./``
relative, absolute, absolute with an upper-case scheme and host, with a
``#reviews`` fragment, padded with whitespace); after stripping whitespace,
``urljoin`` and removing the fragment, each is the product's canonical URL.
"""

from __future__ import annotations

import functools
import json
import posixpath
import random
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html import escape

from ..sites import Page

__all__ = [
    "DEMO_PRODUCT_COUNT",
    "PAGE_SIZE",
    "Category",
    "Product",
    "build_demo_site",
    "catalog",
    "demo_product_urls",
]

PAGE_SIZE = 10
_TEXT = (("Content-Type", "text/plain; charset=utf-8"),)
_XML = (("Content-Type", "application/xml; charset=utf-8"),)
_JSON = (("Content-Type", "application/json; charset=utf-8"),)
_MOVED = (("Location", "/sale/"), ("Content-Type", "text/plain; charset=utf-8"))
_SALE_CATEGORY = "kitchen"  # its first listing page links to /old-sale/
_MANUAL_SKU = "KT-0001"  # its description links off-site
_MANUAL_URL = "http://example.invalid/manual.pdf"


@dataclass(frozen=True, slots=True)
class Category:
    """A product category; its products' names pair ``adjectives`` with ``nouns``."""

    slug: str
    name: str
    sku_prefix: str
    size: int
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]

    def listing_path(self, page: int = 1) -> str:
        """The path of listing page ``page`` (1-based)."""
        base = f"/category/{self.slug}/"
        return base if page == 1 else f"{base}page/{page}/"

    def pages(self) -> int:
        return -(-self.size // PAGE_SIZE)


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    slug: str
    category: Category
    price_pence: int
    stock: int
    rating: int
    description: str
    reviews: int

    @property
    def path(self) -> str:
        return f"/product/{self.slug}.html"

    @property
    def price(self) -> str:
        """The price as shown, e.g. ``£12.34``."""
        return f"£{self.price_pence // 100}.{self.price_pence % 100:02d}"

    @property
    def availability(self) -> str:
        return "In stock" if self.stock else "Out of stock"


CATEGORIES = (
    Category(
        "coffee-tea",
        "Coffee & Tea",
        "CT",
        24,
        ("Café", "Highland", "Smoky", "Velvet", "Morning", "Golden"),
        ("Crème Blend", "Espresso", "Oolong", "Darjeeling", "Rooibos", "Chai"),
    ),
    Category(
        "books",
        "Books",
        "BK",
        21,
        ("Silent", "Last", "Forgotten", "Crimson", "Northern", "Naïve"),
        ("Fjord", "Garden", "Cartographer", "Émigré", "Lighthouse", "Orchard"),
    ),
    Category(
        "kitchen",
        "Kitchen",
        "KT",
        15,
        ("Cast-Iron", "Enamel", "Copper", "Bamboo", "Ceramic"),
        ("Skillet", "Casserole", "Whisk", "Teapot", "Crêpe Pan"),
    ),
)
DEMO_PRODUCT_COUNT = sum(category.size for category in CATEGORIES)
_WORDS = (
    "handmade",
    "small-batch",
    "smooth",
    "rich",
    "delicate",
    "robust",
    "everyday",
    "classic",
    "generous",
    "balanced",
    "crafted",
    "seasonal",
    "durable",
    "timeless",
    "gentle",
    "bright",
    "à-la-carte",
)


@functools.cache
def catalog() -> tuple[Product, ...]:
    """Every product, category by category; the same on every call and every run."""
    rng = random.Random(42)
    return tuple(product for cat in CATEGORIES for product in _products(cat, rng))


def _products(category: Category, rng: random.Random) -> list[Product]:
    pairs = [f"{adj} {noun}" for adj in category.adjectives for noun in category.nouns]
    names = rng.sample(pairs, category.size)
    return [_product(category, i, name, rng) for i, name in enumerate(names, 1)]


def _product(category: Category, index: int, name: str, rng: random.Random) -> Product:
    stock = 0 if rng.random() < 0.15 else rng.randint(1, 25)
    sku = f"{category.sku_prefix}-{index:04d}"
    return Product(
        sku=sku,
        name=name,
        slug=_slugify(name),
        category=category,
        price_pence=rng.randint(250, 4999),
        stock=stock,
        rating=rng.randint(1, 5),
        description=_describe(name, rng),
        reviews=random.Random(sku).randint(0, 120),  # its own generator: the catalog stays as it was
    )


def _describe(name: str, rng: random.Random) -> str:
    first, second, third = rng.sample(_WORDS, 3)
    return f"A {first}, {second} {name.lower()}. {third.capitalize()} and made to last."


def _slugify(name: str) -> str:
    """``Café Crème Blend`` -> ``cafe-creme-blend``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def demo_product_urls(base_url: str) -> list[str]:
    """The canonical URL of every product, in catalog order."""
    base = base_url.rstrip("/")
    return [base + product.path for product in catalog()]


def build_demo_site(base_url: str = "http://127.0.0.1:8000") -> dict[str, Page]:
    """Every route of the shop served at ``base_url`` (an origin: scheme, host, port)."""
    base = base_url.rstrip("/")
    products = catalog()
    routes = {"/": _html("Home", _home(products, base))}
    for category in CATEGORIES:
        routes.update(_listings(category, _in(category, products), base))
    for product in products:
        routes[product.path] = _html(product.name, _product_page(product, base))
        routes[f"/api/products/{product.sku}.json"] = Page(_json(_detail(product, base)), headers=_JSON)
        routes[f"/cart/add?sku={product.sku}"] = _html("Basket", _added(product))
    routes.update(_service_routes(products, base))
    return routes


def _in(category: Category, products: Sequence[Product]) -> list[Product]:
    return [product for product in products if product.category == category]


def _service_routes(products: Sequence[Product], base: str) -> dict[str, Page]:
    return {
        "/robots.txt": Page(_robots(base).encode(), headers=_TEXT),
        "/sitemap.xml": Page(_sitemap(products, base).encode(), headers=_XML),
        "/api/products.json": Page(_json([_record(p, base) for p in products]), headers=_JSON),
        "/live/": _html("Live catalogue", _LIVE_CATALOGUE),
        "/cart/": _html("Basket", "<h1>Your basket</h1>\n<p>Your basket is empty.</p>"),
        "/admin/": _html("Staff", "<h1>Staff area</h1>\n<p>Staff only.</p>"),
        "/old-sale/": Page(b"moved to /sale/", 301, _MOVED),
    }


# The page a browser must render: the list is built by the script, from the API.
_LIVE_CATALOGUE = """<h1>Live catalogue</h1>
<ol class="live-products"></ol>
<noscript><p>The live catalogue needs JavaScript.</p></noscript>
<script>
const money = (pounds) => "\u00a3" + pounds.toFixed(2);
function productItem(record) {
  const item = document.createElement("li");
  item.className = "product";
  item.innerHTML = '<h3><a></a></h3><p class="price"></p><p class="availability"></p>'
    + '<span class="sku"></span>';
  const link = item.querySelector("a");
  link.href = new URL(record.url).pathname;
  link.textContent = record.name;
  item.querySelector(".price").textContent = money(record.price);
  item.querySelector(".availability").textContent = record.stock ? "In stock" : "Out of stock";
  item.querySelector(".sku").textContent = record.sku;
  return item;
}
fetch("/api/products.json")
  .then((answer) => answer.json())
  .then((records) => document.querySelector("ol.live-products").append(...records.map(productItem)));
</script>"""


def _html(title: str, main: str) -> Page:
    """A full HTML document around ``main``, with the shop's header and footer."""
    document = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)} | Demo Shop</title>
</head>
<body>
<header><a class="brand" href="/">Demo Shop</a> <a class="cart" href="/cart/">Basket</a></header>
<main>
{main}
</main>
<footer><p>© Demo Shop · prices in £ · <a href="/delivery/">Delivery</a>
· <a href="/admin/">Staff</a></p></footer>
</body>
</html>
"""
    return Page(document.encode())


def _product_href(product: Product, variant: int, page_path: str, base: str) -> str:
    """One of seven equivalent spellings of a link to ``product`` from ``page_path``."""
    path = product.path
    spellings = (
        path,
        _relative(path, page_path),
        base + path,
        base.upper() + path,
        path + "#reviews",
        f"  {path}\n  ",
        "../" * page_path.count("/", 1) + path[1:],
    )
    return spellings[variant % len(spellings)]


def _relative(path: str, page_path: str) -> str:
    """``path`` relative to the directory of ``page_path``, always starting with a dot."""
    relative = posixpath.relpath(path, posixpath.dirname(page_path))
    return relative if relative.startswith(".") else f"./{relative}"


def _link(product: Product, variant: int, page_path: str, base: str) -> str:
    href = escape(_product_href(product, variant, page_path, base))
    return f'<a href="{href}">{escape(product.name)}</a>'


def _home(products: Sequence[Product], base: str) -> str:
    categories = "\n".join(
        f'<li><a href="{cat.listing_path()}">{escape(cat.name)}</a> ({cat.size})</li>' for cat in CATEGORIES
    )
    featured = "\n".join(
        f"<li>{_link(product, i, '/', base)}</li>" for i, product in enumerate(products[::10])
    )
    return f"""<h1>Welcome to the Demo Shop</h1>
<p>Fresh Café crème every morning, naïve novels and crêpe pans.</p>
<h2>Categories</h2>
<ul class="categories">
{categories}
</ul>
<h2>Featured</h2>
<ul class="featured">
{featured}
</ul>
<p class="live"><a href="/live/">The live catalogue</a> (needs JavaScript)</p>"""


def _listings(category: Category, products: Sequence[Product], base: str) -> Iterator[tuple[str, Page]]:
    for number in range(1, category.pages() + 1):
        chunk = products[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
        page_path = category.listing_path(number)
        main = _listing(category, number, chunk, page_path, base)
        yield page_path, _html(f"{category.name} (page {number})", main)


def _listing(
    category: Category,
    number: int,
    products: Sequence[Product],
    page_path: str,
    base: str,
) -> str:
    items = "\n".join(
        f'<li class="product"><h3>{_link(product, i, page_path, base)}</h3> '
        f'<p class="price">{product.price}</p></li>'
        for i, product in enumerate(products, number)
    )
    return f"""{_breadcrumbs(category)}
<h1>{escape(category.name)}</h1>{_sale_banner(category, number)}
<ol class="products">
{items}
</ol>
{_pager(category, number)}"""


def _sale_banner(category: Category, number: int) -> str:
    """A stale promotion on one listing page: its link redirects to a page that is gone."""
    if category.slug != _SALE_CATEGORY or number != 1:
        return ""
    return '\n<p class="promo"><a href="/old-sale/">Summer sale: up to 30% off</a></p>'


def _pager(category: Category, number: int) -> str:
    links = [f'<span class="current">Page {number} of {category.pages()}</span>']
    if number > 1:
        href = category.listing_path(number - 1)
        links.insert(0, f'<a rel="prev" class="previous" href="{href}">previous</a>')
    if number < category.pages():
        href = category.listing_path(number + 1)
        links.append(f'<a rel="next" class="next" href="{href}">next</a>')
    return f'<nav class="pager">{" ".join(links)}</nav>'


def _breadcrumbs(category: Category, product: Product | None = None) -> str:
    crumbs = ['<a href="/">Home</a>']
    crumbs.append(f'<a href="{category.listing_path()}">{escape(category.name)}</a>')
    if product is not None:
        crumbs.append(f"<span>{escape(product.name)}</span>")
    return f'<nav class="breadcrumb">{" &gt; ".join(crumbs)}</nav>'


def _product_page(product: Product, base: str) -> str:
    stars = "★" * product.rating + "☆" * (5 - product.rating)
    return f"""{_breadcrumbs(product.category, product)}
<article class="product">
<h1 class="title">{escape(product.name)}</h1>
<p class="price">{product.price}</p>
<p class="availability">{product.availability}</p>
<p>SKU: <span class="sku">{product.sku}</span></p>
<div class="description"><p>{escape(product.description)}</p>{_manual(product)}</div>
<p><a class="add-to-cart" rel="nofollow" href="/cart/add?sku={product.sku}">Add to basket</a>
<a href="#reviews">Reviews</a></p>
<section id="reviews"><h2>Reviews</h2>
<p class="rating" data-rating="{product.rating}">{stars} ({product.rating} of 5)</p>
</section>
</article>
{_related(product, base)}"""


def _manual(product: Product) -> str:
    """An off-site link in one product's description."""
    if product.sku != _MANUAL_SKU:
        return ""
    return f'\n<p><a class="manual" href="{_MANUAL_URL}">Care guide (PDF)</a></p>'


def _related(product: Product, base: str) -> str:
    siblings = _in(product.category, catalog())
    start = siblings.index(product)
    picks = [siblings[(start + step) % len(siblings)] for step in range(1, 7)]
    items = "\n".join(
        f"<li>{_link(other, variant, product.path, base)}</li>" for variant, other in enumerate(picks, 1)
    )
    return f'<section class="related"><h2>Related products</h2>\n<ul>\n{items}\n</ul>\n</section>'


def _added(product: Product) -> str:
    return f"""<h1>Added to your basket</h1>
<p><a href="{product.path}">{escape(product.name)}</a> ({product.sku})</p>"""


def _robots(base: str) -> str:
    return f"""User-agent: *
Disallow: /cart/
Disallow: /admin/

Sitemap: {base}/sitemap.xml
"""


def _sitemap(products: Sequence[Product], base: str) -> str:
    urls = "\n".join(f"<url><loc>{escape(base + p.path)}</loc></url>" for p in products)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
{urls}
</urlset>
"""


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2).encode()


def _record(product: Product, base: str) -> dict[str, object]:
    return {
        "sku": product.sku,
        "name": product.name,
        "category": product.category.slug,
        "price": product.price_pence / 100,
        "currency": "GBP",
        "stock": product.stock,
        "rating": product.rating,
        "description": product.description,
        "url": base + product.path,
    }


def _detail(product: Product, base: str) -> dict[str, object]:
    """``/api/products/<sku>.json``: the catalog record and the number of reviews."""
    return {**_record(product, base), "reviews": product.reviews}
