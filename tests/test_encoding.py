"""Body decoding and HTML detection, tested from tables."""

from __future__ import annotations

import codecs
import encodings.aliases

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler._encoding import decode_body, detect_encoding, is_html

FRENCH = "Ceci est une page en français. Le café était délicieux, à Noël. " * 3
FRENCH_CP1252 = FRENCH.encode("cp1252")
CAFE_UTF8 = "café".encode()
CAFE_CP1252 = "café".encode("cp1252")
RUSSIAN_CP1251 = ("Привет, мир! Это тестовая страница о погоде в Москве. " * 40).encode("cp1251")  # noqa: RUF001


def meta(tag: str, body: bytes = CAFE_CP1252) -> bytes:
    return b"<html><head>" + tag.encode() + b"</head><body>" + body


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        # 1. a byte order mark beats everything
        (codecs.BOM_UTF8 + CAFE_UTF8, "text/html; charset=iso-8859-2", "utf-8"),
        (codecs.BOM_UTF16_LE + "hi".encode("utf-16-le"), "text/html; charset=utf-8", "utf-16-le"),
        (codecs.BOM_UTF16_BE + "hi".encode("utf-16-be"), None, "utf-16-be"),
        (codecs.BOM_UTF8 + meta('<meta charset="koi8-r">'), None, "utf-8"),
        # 2. the header's charset, in any spelling
        (CAFE_UTF8, "text/html; charset=iso-8859-2", "iso8859-2"),
        (CAFE_UTF8, "text/html; charset=ISO-8859-2", "iso8859-2"),
        (CAFE_UTF8, 'text/html; charset="koi8-r"', "koi8-r"),
        (CAFE_UTF8, "text/html; charset='koi8-r'", "koi8-r"),
        (CAFE_UTF8, "text/html;charset = Shift_JIS ", "shift_jis"),
        (CAFE_UTF8, "TEXT/HTML; CHARSET=WINDOWS-1251", "cp1251"),
        (CAFE_UTF8, "text/html; format=flowed; charset=utf8", "utf-8"),
        (CAFE_UTF8, 'text/html; charset="utf-8"; foo=bar', "utf-8"),
        (meta('<meta charset="koi8-r">'), "text/html; charset=iso-8859-2", "iso8859-2"),
        # WHATWG: ASCII and Latin-1 labels mean windows-1252
        (CAFE_UTF8, "text/html; charset=iso-8859-1", "cp1252"),
        (CAFE_UTF8, "text/html; charset=latin-1", "cp1252"),
        (CAFE_UTF8, "text/html; charset=us-ascii", "cp1252"),
        (CAFE_UTF8, "text/html; charset=ascii", "cp1252"),
        # garbage labels are skipped for the next source
        (CAFE_UTF8, "text/html; charset=foo-bar", "utf-8"),
        (meta('<meta charset="koi8-r">'), "text/html; charset=foo-bar", "koi8-r"),
        (CAFE_UTF8, "text/html; charset=hex", "utf-8"),  # not a text encoding
        (CAFE_UTF8, "text/html; charset=idna", "utf-8"),  # cannot replace errors
        (CAFE_UTF8, "text/html; charset=unicode_escape", "utf-8"),  # no charset
        (CAFE_UTF8, "text/html; charset=", "utf-8"),
        (CAFE_UTF8, "text/html; charset=\x00", "utf-8"),
        (CAFE_UTF8, "text/html; xcharset=koi8-r", "utf-8"),
        (CAFE_UTF8, "", "utf-8"),
        # 3. <meta> in the first 2048 bytes
        (meta('<meta charset="koi8-r">'), None, "koi8-r"),
        (meta("<meta charset=koi8-r>"), "text/html", "koi8-r"),
        (meta("<META CHARSET='Windows-1251'>"), None, "cp1251"),
        (meta('<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'), None, "koi8-r"),
        (meta('<meta content="text/html;charset=iso-8859-1" http-equiv="content-type">'), None, "cp1252"),
        (meta('<meta charset="utf-16le">', CAFE_UTF8), None, "utf-8"),  # WHATWG
        (meta('<meta charset="nonsense">', FRENCH_CP1252), None, "cp1252"),
        (b" " * 2048 + meta('<meta charset="koi8-r">', CAFE_UTF8), None, "utf-8"),
        # 4. sniffing
        (b"", None, "utf-8"),
        (b"plain ascii", None, "utf-8"),
        (CAFE_UTF8, None, "utf-8"),
        (FRENCH_CP1252, None, "cp1252"),
        (RUSSIAN_CP1251, None, "cp1251"),
        (bytes(range(256)), None, "cp1252"),  # charset_normalizer gives up
        (b"\x00\xff" * 50, None, "cp1252"),
        (RUSSIAN_CP1251, "text/html; charset=bogus", "cp1251"),
    ],
)
def test_detect_encoding(body: bytes, content_type: str | None, expected: str) -> None:
    assert detect_encoding(body, content_type) == expected


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (CAFE_UTF8, "text/html; charset=utf-8", ("café", "utf-8")),
        (CAFE_CP1252, "text/html; charset=windows-1252", ("café", "cp1252")),
        (CAFE_CP1252, "text/html; charset=latin-1", ("café", "cp1252")),
        (b"\x80", "text/html; charset=iso-8859-1", ("€", "cp1252")),
        (codecs.BOM_UTF8 + CAFE_UTF8, None, ("café", "utf-8")),
        (codecs.BOM_UTF16_LE + "café".encode("utf-16-le"), None, ("café", "utf-16-le")),
        (codecs.BOM_UTF16_BE + "café".encode("utf-16-be"), None, ("café", "utf-16-be")),
        (b"caf\xc3", "text/html; charset=utf-8", ("caf\ufffd", "utf-8")),
        (b"", None, ("", "utf-8")),
        ("привет".encode("koi8-r"), "text/plain; charset=koi8-r", ("привет", "koi8-r")),
    ],
)
def test_decode_body(body: bytes, content_type: str | None, expected: tuple[str, str]) -> None:
    assert decode_body(body, content_type) == expected


LABELS = sorted(set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values()))
AWKWARD_BYTES = bytes(range(256)) * 2 + b"\\u12\\x+-&AB-\x1b$B\xff"


@pytest.mark.parametrize(
    "label", [*LABELS, "idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape"]
)
def test_decode_body_never_raises_for_any_python_codec_label(label: str) -> None:
    text, encoding = decode_body(AWKWARD_BYTES, f"text/html; charset={label}")
    assert isinstance(text, str)
    assert codecs.lookup(encoding).name == encoding


@given(st.binary(), st.one_of(st.none(), st.text()))
def test_decode_body_never_raises(body: bytes, content_type: str | None) -> None:
    text, encoding = decode_body(body, content_type)
    assert isinstance(text, str)
    assert codecs.lookup(encoding).name == encoding


@given(st.binary(), st.sampled_from(["", "text/html; charset=", "text/html; charset=utf-"]))
def test_decode_body_never_raises_with_charset_prefix(body: bytes, prefix: str) -> None:
    decode_body(body, prefix + body.decode("latin-1"))


@given(st.binary(max_size=200))
def test_decode_body_never_raises_with_meta(tail: bytes) -> None:
    decode_body(b"<meta charset=" + tail, None)


@given(st.text())
def test_utf8_text_round_trips(text: str) -> None:
    body = text.encode("utf-8", "replace")
    assert decode_body(body, None) == (body.decode("utf-8"), "utf-8")


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/html", b"", True),
        ("text/html; charset=utf-8", b"{}", True),
        ("TEXT/HTML;charset=utf-8", b"", True),
        (" text/html ", b"", True),
        ("application/xhtml+xml", b"", True),
        ("text/plain", b"<html>", False),
        ("application/json", b"<!doctype html>", False),
        ("text/htmlx", b"", False),
        ("image/png", b"\x89PNG", False),
        # no header: sniff
        (None, b"<!DOCTYPE html><html>", True),
        (None, b"<!doctype HTML PUBLIC", True),
        (None, b"  \r\n\t<html lang='en'>", True),
        (None, b"<HTML>", True),
        (None, b"<html\n>", True),
        (None, b"<head><title>x", True),
        (None, b"<body>", True),
        (None, b"<title>x</title>", True),
        (None, b"<div class=a>", True),
        (None, b"<p>hello", True),
        (None, b"<a href=/>", True),
        (None, b"<script>x</script>", True),
        (None, b"<table>", True),
        (None, b"<!-- comment -->", True),
        (None, codecs.BOM_UTF8 + b"<html>", True),
        ("", b"<html>", True),
        ("  ", b"<html>", True),
        (None, b"", False),
        (None, b"hello <html>", False),
        (None, b"<htmlx>", False),
        (None, b"<html", False),
        (None, b"<?xml version='1.0'?><rss>", False),
        (None, b'{"html": 1}', False),
        (None, b"<pre>", False),
        (None, b"\x89PNG\r\n", False),
    ],
)
def test_is_html(content_type: str | None, body: bytes, expected: bool) -> None:
    assert is_html(content_type, body) is expected


@given(st.one_of(st.none(), st.text()), st.binary())
def test_is_html_never_raises(content_type: str | None, body: bytes) -> None:
    assert isinstance(is_html(content_type, body), bool)
