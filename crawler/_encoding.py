"""Response bodies to text: which encoding, decoding that never fails, and "is it HTML?".

The encoding comes from the first of these that names a usable one, as in browsers:
a byte order mark, the ``charset`` of the Content-Type header, a ``<meta>`` charset
in the first 2048 bytes, then sniffing (strict UTF-8, else ``charset_normalizer``,
else cp1252). Names are Python codec names (``codecs.lookup(...).name``).
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_FALLBACK = "cp1252"
# WHATWG: these labels mean windows-1252.
_AS_CP1252 = frozenset({"ascii", "iso8859-1"})
_META_SCAN_BYTES = 2048
_SNIFF_BYTES = 64 * 1024
# The legacy encodings a browser can pick (WHATWG), as Python codecs: sniffing only
# chooses among these (faster, and never a guess like cp1006 or UTF-16 without BOM).
_SNIFF_CANDIDATES = [
    "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257",
    "cp1258", "cp874", "cp866", "koi8_r", "koi8_u", "mac_roman", "mac_cyrillic",
    "iso8859_2", "iso8859_3", "iso8859_4", "iso8859_5", "iso8859_6", "iso8859_7",
    "iso8859_8", "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16",
    "gb18030", "big5hkscs", "euc_jp", "iso2022_jp", "cp932", "cp949",
]  # fmt: skip
# Python codecs that decode, but are no charset of a web page.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode"})

_HEADER_CHARSET = re.compile(r"""\bcharset\s*=\s*["']?\s*([^\s"';,]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta\s[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9_:.\-]+)""", re.IGNORECASE)
_HTML_MEDIA_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# WHATWG MIME sniffing's HTML patterns, followed by whitespace or ">".
_HTML_START = re.compile(
    rb"[\t\n\x0c\r ]*<(?:!doctype html|html|head|body|script|iframe|h1|div|font|table|"
    rb"a|style|title|b|br|p|!--)[\t\n\x0c\r >]",
    re.IGNORECASE,
)


def detect_encoding(body: bytes, content_type: str | None) -> str:
    """The codec name to decode ``body`` with; see the module docstring for the order.

    A label Python does not know, or that is no text encoding, is skipped. ASCII and
    Latin-1 labels mean cp1252, and a ``<meta>`` naming UTF-16 means UTF-8 (WHATWG).
    """
    return (
        _bom_encoding(body)
        or _header_encoding(content_type)
        or _meta_encoding(body[:_META_SCAN_BYTES])
        or _sniffed_encoding(body)
    )


def decode_body(body: bytes, content_type: str | None) -> tuple[str, str]:
    """``(text, encoding)``: ``body`` decoded, bad bytes replaced by U+FFFD, without a
    byte order mark. Never raises."""
    encoding = detect_encoding(body, content_type)
    text = body.decode(encoding, "replace")
    return text.removeprefix("\ufeff"), encoding


def is_html(content_type: str | None, body: bytes) -> bool:
    """Whether the response is HTML: a ``text/html`` or ``application/xhtml+xml``
    Content-Type; without one (``None`` or blank), a body that starts, after a UTF-8
    BOM and whitespace, with a common HTML tag (``<!doctype html``, ``<html``...)."""
    if content_type and content_type.strip():
        return content_type.partition(";")[0].strip().lower() in _HTML_MEDIA_TYPES
    start = len(codecs.BOM_UTF8) if body.startswith(codecs.BOM_UTF8) else 0
    return _HTML_START.match(body, start) is not None


def _bom_encoding(body: bytes) -> str | None:
    """The encoding a byte order mark at the start of ``body`` names."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return encoding
    return None


def _header_encoding(content_type: str | None) -> str | None:
    """The usable encoding the ``charset`` parameter of a Content-Type names."""
    match = _HEADER_CHARSET.search(content_type) if content_type else None
    return _usable_encoding(match[1]) if match else None


def _meta_encoding(head: bytes) -> str | None:
    """The usable encoding the first ``<meta>`` charset in ``head`` names."""
    match = _META_CHARSET.search(head)
    encoding = _usable_encoding(match[1].decode("ascii")) if match else None
    return "utf-8" if encoding and encoding.startswith("utf-16") else encoding


def _sniffed_encoding(body: bytes) -> str:
    """UTF-8 when ``body`` is valid UTF-8, else ``charset_normalizer``'s guess from
    the first 64 KiB, else cp1252."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        sample = body[:_SNIFF_BYTES]
        if _looks_western(sample):
            return _FALLBACK
        guess = _guess_legacy_encoding(sample)
        return (_usable_encoding(guess) if guess else None) or _FALLBACK
    return "utf-8"


def _looks_western(sample: bytes) -> bool:
    """Whether ``sample`` reads as Western European cp1252 text: accented letters
    sparse among ASCII ones. (Cyrillic, Greek or CJK text in a legacy encoding is
    mostly high bytes, and statistical guessers confuse short French or German
    samples with Baltic or Central European code pages.)"""
    text = sample.decode(_FALLBACK, errors="replace")
    high = [ch for ch in text if ord(ch) >= 0x80]
    if "\ufffd" in text or not high:
        return False
    ascii_letters = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    return sum(ch.isalpha() for ch in high) >= 0.8 * len(high) and len(high) < 0.3 * ascii_letters


def _guess_legacy_encoding(sample: bytes) -> str | None:
    """``charset_normalizer``'s best guess among the encodings browsers know; a tie
    with cp1252 goes to cp1252, the browsers' default (cp1250 often ties on French)."""
    import charset_normalizer  # noqa: PLC0415  (50 ms to load; rarely needed)

    matches = charset_normalizer.from_bytes(sample, cp_isolation=_SNIFF_CANDIDATES)
    best = matches.best()
    if best is None:
        return None
    score = (best.chaos, best.coherence)
    tied = {match.encoding for match in matches if (match.chaos, match.coherence) == score}
    return _FALLBACK if _FALLBACK in tied else best.encoding


@lru_cache(maxsize=256)
def _usable_encoding(label: str) -> str | None:
    """The codec name of ``label`` if it is a charset that decodes any bytes with
    ``errors="replace"`` (not ``hex``, ``idna``, ``unicode_escape``...); ASCII and
    Latin-1 give cp1252."""
    try:
        name = codecs.lookup(label.strip()).name
        b"\x80".decode(name, "replace")
    except (LookupError, ValueError):  # ValueError: NUL or surrogate in the label
        return None
    if name in _NOT_CHARSETS:
        return None
    return _FALLBACK if name in _AS_CP1252 else name
