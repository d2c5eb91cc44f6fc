"""Response bodies to text: which encoding, decoding that never fails, and "is it HTML?".

The encoding comes from the first of these that names a usable one, as in browsers
(WHATWG Encoding Standard, HTML standard 13.2.3): a byte order mark, the
``charset`` of the Content-Type header, a ``<meta>`` found by the HTML prescan in
the first 2048 bytes, then sniffing (strict UTF-8, else ``charset_normalizer``
among the encodings browsers know, else windows-1252). Labels mean what the
Encoding Standard's table makes them mean (``_encoding_labels``): ``gb2312`` is
GBK, ``shift_jis`` is windows-31J, ``iso-8859-1`` is windows-1252, and a label
outside the table (``utf-7``, ``latin-1``) is ignored as browsers ignore it.
Returned names are Python codec names (``codecs.lookup(...).name``).
"""

from __future__ import annotations

import codecs
import re

from .labels import CODEC_OF_ENCODING, ENCODING_OF_LABEL
from .prescan import prescan

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_FALLBACK = "cp1252"
# Browsers scan the first 1024 bytes at least; Blink goes on through the head.
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
# What a guess of charset_normalizer means as a browser's encoding (the wider one).
_SNIFFED_AS = {"iso8859-1": "cp1252", "iso8859-9": "cp1254", "iso8859-11": "cp874"}
# Tags say nothing of a page's language and drown its words for the guesser.
_MARKUP = re.compile(rb"<[^<>]*>")
_ASCII_WHITESPACE = "\t\n\x0c\r "

_HEADER_CHARSET = re.compile(r"""\bcharset\s*=\s*["']?\s*([^\s"';,]+)""", re.IGNORECASE)
_HTML_MEDIA_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# WHATWG MIME sniffing's HTML patterns, followed by whitespace or ">".
_HTML_START = re.compile(
    rb"[\t\n\x0c\r ]*<(?:!doctype html|html|head|body|script|iframe|h1|div|font|table|"
    rb"a|style|title|b|br|p|!--)[\t\n\x0c\r >]",
    re.IGNORECASE,
)


def encoding_of_label(label: str) -> str | None:
    """The Encoding Standard's "get an encoding": the name of the encoding a label
    means (``" Latin1 "`` -> ``"windows-1252"``), or ``None`` for an unknown label."""
    return ENCODING_OF_LABEL.get(label.strip(_ASCII_WHITESPACE).lower())


def detect_encoding(body: bytes, content_type: str | None) -> str:
    """The codec name to decode ``body`` with; see the module docstring for the order.

    A label outside the Encoding Standard's table is skipped; a ``<meta>`` naming
    UTF-16 means UTF-8, and one naming ``x-user-defined`` windows-1252 (HTML).
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
    """The codec of the encoding the HTML prescan finds declared in ``head``."""
    encoding = prescan(head, encoding_of_label)
    return CODEC_OF_ENCODING[encoding] if encoding is not None else None


def _sniffed_encoding(body: bytes) -> str:
    """UTF-8 when ``body`` is valid UTF-8, else ``charset_normalizer``'s guess from
    the text of the first 64 KiB (tags left out), else cp1252."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        guess = _guess_legacy_encoding(_MARKUP.sub(b" ", body[:_SNIFF_BYTES]))
        name = codecs.lookup(guess).name if guess else _FALLBACK
        return _SNIFFED_AS.get(name, name)
    return "utf-8"


def _guess_legacy_encoding(sample: bytes) -> str | None:
    """``charset_normalizer``'s guess among the encodings browsers know: the least
    chaos, then the most coherence; among encodings that tie (or decode the sample
    alike) windows-1252, the browsers' default, wins."""
    import charset_normalizer  # noqa: PLC0415  (slow to load; rarely needed)

    matches = list(charset_normalizer.from_bytes(sample, cp_isolation=_SNIFF_CANDIDATES))
    if not matches:
        return None
    best = min(matches, key=lambda match: (match.chaos, -match.coherence))
    score = (best.chaos, best.coherence)
    tied = {
        encoding
        for match in matches
        if (match.chaos, match.coherence) == score
        for encoding in match.could_be_from_charset
    }
    return _FALLBACK if _FALLBACK in tied else best.encoding


def _usable_encoding(label: str) -> str | None:
    """The Python codec of the encoding ``label`` means, or ``None``."""
    encoding = encoding_of_label(label)
    return CODEC_OF_ENCODING[encoding] if encoding is not None else None
