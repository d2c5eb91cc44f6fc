"""A link checker: crawl a site and report its broken links.

It follows every link on the site and yields one report per link that ends in an
HTTP error (4xx or 5xx), with the page it was found on and, for a link that
redirects, the whole redirect chain. Links to other hosts are reported as not
checked rather than fetched: checking them would crawl other people's sites.
Against the demo shop:

    crawl demo --serve &                           # serves http://127.0.0.1:8000/
    crawl spiders/linkcheck.py -O broken.jsonl     # 3 reports: 2 broken, 1 off-site
    crawl spiders/linkcheck.py -a base_url=http://127.0.0.1:8001 -O broken.csv

Pages that robots.txt disallows are not fetched, so links to them are not checked
(the summary counts them as ``dropped/robots``); on your own site, add
``--no-obey-robots`` to check them too. A link that redirects to a URL the crawl
has already fetched is not fetched again, so it is not reported on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from crawler import Request, Response, Spider

OFFSITE = "off-site, not checked"


@dataclass(frozen=True, slots=True)
class LinkReport:
    """A broken or unchecked link. As a dataclass, every report has the same fields
    (so a CSV report has one header that fits every row)."""

    url: str  # the link, as an absolute URL
    status: int | None  # the HTTP status it ended with; None: not checked
    found_on: str | None  # the first page seen linking to it (None for a start URL)
    redirect_chain: tuple[str, ...] = ()  # a link that redirects: each URL fetched, in order
    note: str = ""


class FirstReportOnly:
    """A pipeline: keep the first report of each URL, drop the rest.

    The crawl fetches each URL once, so a broken link is reported once however many
    pages have it. Off-site links are not fetched: every page that has one reports
    it, and pipelines, which run in the main process and see every item, can remove
    the repeats.
    """

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def process_item(self, item: LinkReport, spider: Spider) -> LinkReport | None:
        if item.url in self.seen:
            return None
        self.seen.add(item.url)
        return item


class LinkCheckSpider(Spider):
    name = "linkcheck"
    base_url = "http://127.0.0.1:8000"  # `-a base_url=...` points the spider elsewhere
    handle_httpstatus_list = range(400, 600)  # error pages reach `parse` too (by default only 2xx)
    pipelines = [FirstReportOnly]

    def start_requests(self) -> Iterator[Request]:
        yield Request(self.base_url.rstrip("/") + "/")

    def parse(self, response: Response) -> Iterator[LinkReport | Request]:
        """Every page: report it if it failed, else check the links on it."""
        if response.status >= 400:
            yield broken(response)
        elif response.is_html:  # a PDF or an image has no links to follow
            yield from self.check_links(response)

    def check_links(self, response: Response) -> Iterator[LinkReport | Request]:
        """Follow the links to this host; report the others as not checked."""
        host = urlsplit(response.url).hostname
        for anchor in response.css_nodes("a[href]"):
            url = response.urljoin(anchor.attributes["href"] or "")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https"):
                continue  # mailto:, tel:, javascript: are not pages
            if parts.hostname != host:
                yield LinkReport(url, None, response.url, note=OFFSITE)
                continue
            # A URL is fetched once however many pages link to it (the crawl
            # deduplicates requests), so the referrer carried in meta is the first
            # page that linked to it; the reports name that one.
            yield response.follow(url, meta={"found_on": response.url})


def broken(response: Response) -> LinkReport:
    """The report for an error page. The engine follows redirects itself and keeps the
    URLs it was redirected from: the link as found is the first of them."""
    redirected_from = response.redirect_urls
    link = redirected_from[0] if redirected_from else response.url
    chain = (*redirected_from, response.url) if redirected_from else ()
    return LinkReport(link, response.status, response.meta.get("found_on"), chain)
