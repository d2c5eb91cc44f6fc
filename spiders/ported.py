"""A Scrapy spider, ported: only the import line changed.

The README's porting guide walks through it. Under Scrapy it is the same file with
``from scrapy import Request, Spider``, run with ``scrapy runspider ported.py``;
here, ``crawl runspider spiders/ported.py -O products.jsonl`` (or ``crawl
spiders/ported.py ...``) against the demo shop (``crawl demo --serve``).
``tests/test_scrapy_port.py`` checks that both yield the same items.

It has what a typical Scrapy spider has: CSS with ``::text`` and ``::attr()``, XPath,
``.get()`` / ``.getall()``, ``cb_kwargs``, ``custom_settings`` with Scrapy's names,
an item pipeline named in ``ITEM_PIPELINES``, and a ``closed`` hook.
"""

from crawler import Request, Spider  # Scrapy: from scrapy import Request, Spider


class PricePipeline:
    """Prices as numbers; products without a price are dropped."""

    def open_spider(self, spider):
        self.kept = 0

    def process_item(self, item, spider):
        price = item.get("price")
        if not price:
            return None
        item["price"] = float(price.replace("£", "").replace(",", ""))
        self.kept += 1
        return item

    def close_spider(self, spider):
        spider.logger.info("PricePipeline kept %d products", self.kept)


class ShopSpider(Spider):
    name = "ported-shop"
    base_url = "http://127.0.0.1:8000"  # -a base_url=... points it elsewhere
    custom_settings = {
        "DOWNLOAD_DELAY": 0.01,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 4,
        "ROBOTSTXT_OBEY": True,
        "ITEM_PIPELINES": {"ported.PricePipeline": 300},
    }

    async def start(self):  # Scrapy 2.13+; older versions call start_requests()
        yield Request(self.base_url.rstrip("/") + "/", callback=self.parse)

    def parse(self, response):
        """The home page: one listing per category, named in cb_kwargs."""
        for link in response.css("ul.categories a"):
            category = link.css("::text").get()
            yield response.follow(link, callback=self.parse_listing, cb_kwargs={"category": category})

    def parse_listing(self, response, category):
        """A listing page: its products, then the next page of the same category."""
        for href in response.css("li.product h3 a::attr(href)").getall():
            yield response.follow(href.strip(), callback=self.parse_product, cb_kwargs={"category": category})
        next_page = response.xpath('//a[@rel="next"]/@href').get()
        if next_page is not None:
            yield response.follow(next_page, callback=self.parse_listing, cb_kwargs={"category": category})

    def parse_product(self, response, category):
        """A product page: one item."""
        yield {
            "sku": response.xpath('//span[@class="sku"]/text()').get(),
            "name": response.css("h1.title::text").get(default="").strip(),
            "price": response.css("p.price::text").get(),
            "in_stock": response.css("p.availability::text").get() == "In stock",
            "rating": int(response.css("p.rating::attr(data-rating)").get(default="0")),
            "category": category,
            "breadcrumb": response.css("nav.breadcrumb a::text").getall(),
            "url": response.url,
        }

    def closed(self, reason):
        self.logger.info("spider closed: %s", reason)
