"""Sitemaps (sitemaps.org): the entries of a sitemap, a sitemap index or a robots.txt.

XML sitemaps are parsed as XML with namespaces, by expat, streamed: the body is fed
in chunks and entries come out as they close, so memory stays near the size of the
body, never the multiple of it that a tree takes. Only the protocol's own elements count: ``<loc>`` of
a ``<url>`` in a ``<urlset>`` is a page, of a ``<sitemap>`` in a ``<sitemapindex>``
a sitemap, whatever comes first in the file. Extension elements (Google's
``image:``, ``news:`` and ``video:`` namespaces, ``xhtml:link`` alternates) are not
pages; comments are comments, and names are case-sensitive (``<LOC>`` is no
``<loc>``). The protocol's namespace is expected, or none, or Google's older ones.

Safety: a document with a DOCTYPE is refused, so no entity can be declared (no
"billion laughs", no external entities), and gzipped sitemaps are decompressed
under the spider's size cap. A document that is not well-formed yields the entries
before the fault, then raises `SitemapError`.

The encoding comes from a byte order mark or the XML declaration, and labels mean
what the Encoding Standard says; without either, UTF-8. A plain-text sitemap (one
URL a line) and a robots.txt's ``Sitemap:`` lines are read line by line (CR, LF or
CRLF); a line that is not UTF-8 is skipped.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from xml.parsers import expat

from ._decoders import decode_content
from .charset import encoding_of_label
from .charset.labels import CODEC_OF_ENCODING

GZIP_MAGIC = b"\x1f\x8b"
SITEMAP_NAMESPACES = frozenset(
    {
        "http://www.sitemaps.org/schemas/sitemap/0.9",
        "",  # no namespace: common, and what the protocol's examples reduce to
        "http://www.google.com/schemas/sitemap/0.84",
        "http://www.google.com/schemas/sitemap/0.9",
    }
)
XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"
_CHUNK = 256 * 1024
_ROOTS = {"urlset": "page", "sitemapindex": "sitemap"}
_ENTRY_ELEMENTS = {"page": "url", "sitemap": "sitemap"}
_FIELDS = frozenset({"loc", "lastmod", "changefreq", "priority"})
_KEYS = _FIELDS | {"kind", "alternates"}
_XML_DECLARATION = re.compile(rb"""<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:\-]{1,40})["']""")
_UTF16_WITHOUT_BOM = {b"<\x00?\x00": "utf-16-le", b"\x00<\x00?": "utf-16-be"}
_URL_LINE = re.compile(rb"https?://\S+", re.IGNORECASE)


MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309 2.5: crawlers parse at least 500 KiB of a robots.txt
_SITEMAP_FIELDS = frozenset({b"sitemap", b"sitemaps", b"site-map"})


def robots_sitemaps(body: bytes) -> tuple[str, ...]:
    """The URLs of a robots.txt's ``Sitemap:`` lines, in its first 500 KiB (RFC 9309
    lines end in CR, LF or CRLF); a URL that is not UTF-8 is skipped."""
    found = []
    for line in body[:MAX_ROBOTS_BYTES].splitlines():
        name, colon, value = line.partition(b":")
        words = value.split()
        if colon and words and name.strip().lower() in _SITEMAP_FIELDS:
            url = utf8_or_none(words[0])
            if url is not None:
                found.append(url)
    return tuple(found)


def utf8_or_none(raw: bytes) -> str | None:
    """``raw`` decoded as UTF-8, or ``None`` when it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


class SitemapError(ValueError):
    """A sitemap that is not well-formed XML, or not a sitemap at all."""


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    """One ``<url>`` (``kind="page"``) or ``<sitemap>`` (``kind="sitemap"``) entry.

    Fields are the text of the protocol's elements, as written (``None`` when
    absent); ``alternates`` are the ``xhtml:link rel="alternate"`` URLs of a page.
    ``entry["loc"]`` works too, as in Scrapy's ``sitemap_filter``."""

    loc: str
    kind: str = "page"
    lastmod: str | None = None
    changefreq: str | None = None
    priority: str | None = None
    alternates: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Any:
        value = getattr(self, name) if name in _KEYS else None
        if value is None:
            raise KeyError(name)
        return value

    @property
    def lastmod_datetime(self) -> datetime | None:
        """``lastmod`` as an aware datetime (W3C Datetime: ``2024``, ``2024-05``,
        ``2024-05-01``, ``2024-05-01T10:30:00+02:00``...; UTC where no zone is
        given), or ``None`` when it is missing or unreadable."""
        return parse_w3c_datetime(self.lastmod) if self.lastmod else None


def parse_w3c_datetime(text: str) -> datetime | None:
    """A W3C Datetime (the profile of ISO 8601 sitemaps use) as an aware datetime."""
    text = text.strip()
    if len(text) in (4, 7):  # YYYY and YYYY-MM, which fromisoformat refuses
        text += "-01-01" if len(text) == 4 else "-01"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def sitemap_entries(body: bytes, url: str, max_size: int) -> Iterator[SitemapEntry]:
    """The entries of a sitemap, sitemap index, text sitemap or robots.txt fetched
    from ``url``, in document order."""
    if urlsplit(url).path == "/robots.txt":
        return (SitemapEntry(loc, kind="sitemap") for loc in robots_sitemaps(body))
    if body.startswith(GZIP_MAGIC):
        body = decode_content(body, "gzip", max_size)
    if not _looks_like_xml(body):
        return (SitemapEntry(loc) for loc in _text_sitemap(body))
    return _XmlSitemap(_xml_codec(body)).entries(body)


def _text_sitemap(body: bytes) -> Iterator[str]:
    """A text sitemap: one absolute http(s) URL a line, UTF-8."""
    for line in body.removeprefix(codecs.BOM_UTF8).splitlines():
        match = _URL_LINE.fullmatch(line.strip())
        url = utf8_or_none(match[0]) if match else None
        if url is not None:
            yield url


def _looks_like_xml(body: bytes) -> bool:
    """Whether ``body`` starts, after a BOM and whitespace, with markup."""
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, *_UTF16_WITHOUT_BOM)):
        return True
    return body.removeprefix(codecs.BOM_UTF8).lstrip()[:1] == b"<"


def _xml_codec(body: bytes) -> str:
    """The Python codec of an XML body: its BOM, else its declaration, else UTF-8."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if body.startswith(bom):
            return codec
    if (utf16 := _UTF16_WITHOUT_BOM.get(body[:4])) is not None:
        return utf16
    declaration = _XML_DECLARATION.match(body, 0, 256)
    encoding = encoding_of_label(declaration[1].decode("ascii")) if declaration else None
    return CODEC_OF_ENCODING[encoding] if encoding is not None else "utf-8"


@dataclass
class _Open:
    """The entry being read: its kind, the field whose text is being collected."""

    kind: str
    fields: dict[str, str] = field(default_factory=dict)
    alternates: list[str] = field(default_factory=list)
    collecting: str | None = None
    text: list[str] = field(default_factory=list)


class _XmlSitemap:
    """expat handlers that turn a sitemap into entries, element by element."""

    def __init__(self, codec: str) -> None:
        self._codec = codec
        self._depth = 0
        self._kind: str | None = None
        self._open: _Open | None = None
        self._done: list[SitemapEntry] = []
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.buffer_text = True
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._refuse_doctype
        parser.EntityDeclHandler = self._refuse_doctype
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        self._parser = parser

    def entries(self, body: bytes) -> Iterator[SitemapEntry]:
        """Feed ``body`` chunk by chunk, decoded (bad bytes replaced), and yield the
        entries each chunk closed."""
        decoder = codecs.getincrementaldecoder(self._codec)("replace")
        view = memoryview(body)
        for start in range(0, len(body), _CHUNK):
            last = start + _CHUNK >= len(body)
            yield from self._feed(decoder.decode(view[start : start + _CHUNK], final=last), last)
        if not body:
            yield from self._feed("", True)

    def _feed(self, text: str, last: bool) -> Iterator[SitemapEntry]:
        try:
            self._parser.Parse(text, last)
        except expat.ExpatError as exc:
            yield from self._take()
            raise SitemapError(f"not a well-formed sitemap: {exc}") from None
        yield from self._take()
        if last and self._kind is None:
            raise SitemapError("not a sitemap: the root is neither <urlset> nor <sitemapindex>")

    def _take(self) -> list[SitemapEntry]:
        done, self._done = self._done, []
        return done

    def _refuse_doctype(self, *_: Any) -> None:
        raise SitemapError("a sitemap has no DOCTYPE (refused: entities could expand without bound)")

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        self._depth += 1
        namespace, _, local = name.rpartition(" ")
        if self._depth == 1:
            self._kind = _ROOTS.get(local) if namespace in SITEMAP_NAMESPACES else None
        elif self._depth == 2 and self._kind is not None:
            if namespace in SITEMAP_NAMESPACES and local == _ENTRY_ELEMENTS[self._kind]:
                self._open = _Open(self._kind)
        elif self._depth == 3 and self._open is not None:
            self._start_field(namespace, local, attributes)

    def _start_field(self, namespace: str, local: str, attributes: dict[str, str]) -> None:
        assert self._open is not None
        if namespace in SITEMAP_NAMESPACES and local in _FIELDS:
            self._open.collecting, self._open.text = local, []
        elif namespace == XHTML_NAMESPACE and local == "link" and attributes.get("rel") == "alternate":
            href = attributes.get("href", "").strip()
            if href:
                self._open.alternates.append(href)

    def _text(self, data: str) -> None:
        if self._open is not None and self._open.collecting is not None:
            self._open.text.append(data)

    def _end(self, _name: str) -> None:
        entry = self._open
        if self._depth == 3 and entry is not None and entry.collecting is not None:
            entry.fields.setdefault(entry.collecting, "".join(entry.text).strip())
            entry.collecting = None
        elif self._depth == 2 and entry is not None:
            self._open = None
            if entry.fields.get("loc"):
                self._done.append(_entry(entry))
        self._depth -= 1


def _entry(entry: _Open) -> SitemapEntry:
    fields = entry.fields
    return SitemapEntry(
        fields["loc"],
        kind=entry.kind,
        lastmod=fields.get("lastmod") or None,
        changefreq=fields.get("changefreq") or None,
        priority=fields.get("priority") or None,
        alternates=tuple(entry.alternates),
    )
