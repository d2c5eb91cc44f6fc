"""Body decoding and HTML detection, tested from tables."""

# ruff: noqa: RUF001  (Greek and Cyrillic letters are the point)

from __future__ import annotations

import codecs
import encodings.aliases

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.charset import decode_body, detect_encoding, encoding_of_label, is_html
from crawler.charset.labels import CODEC_OF_ENCODING, ENCODING_OF_LABEL, ENCODINGS
from crawler.charset.prescan import prescan

from ..support.text_samples import SAMPLES, html_page

FRENCH = "Ceci est une page en français. Le café était délicieux, à Noël. " * 3
FRENCH_CP1252 = FRENCH.encode("cp1252")
CAFE_UTF8 = "café".encode()
CAFE_CP1252 = "café".encode("cp1252")
RUSSIAN_CP1251 = ("Привет, мир! Это тестовая страница о погоде в Москве. " * 40).encode("cp1251")


def meta(tag: str, body: bytes = CAFE_CP1252) -> bytes:
    return b"<html><head>" + tag.encode() + b"</head><body>" + body


# For each encoding of the standard, bytes and what its decoder (the standard's
# index for that encoding) makes of them: a character the narrower Python codec of
# the same name would get wrong where there is one.
DECODED_BY_ENCODING = {
    "UTF-8": (b"\xe2\x82\xac", "€"),
    "IBM866": (b"\x80\xef", "Ая"),
    "ISO-8859-2": (b"\xb1\xea", "ąę"),
    "ISO-8859-3": (b"\xa1\xfd", "Ħŭ"),
    "ISO-8859-4": (b"\xa1\xe0", "Ąā"),
    "ISO-8859-5": (b"\xb0\xef", "Ая"),
    "ISO-8859-6": (b"\xc7\xe4", "\u0627\u0644"),
    "ISO-8859-7": (b"\xa4\xe1", "€α"),
    "ISO-8859-8": (b"\xe0\xfa", "\u05d0\u05ea"),
    "ISO-8859-8-I": (b"\xe0\xfa", "\u05d0\u05ea"),
    "ISO-8859-10": (b"\xa1\xbd", "Ą\u2015"),
    "ISO-8859-13": (b"\xe0\xa1", "ą\u201d"),
    "ISO-8859-14": (b"\xa1\xff", "Ḃÿ"),
    "ISO-8859-15": (b"\xa4\xbd", "€œ"),
    "ISO-8859-16": (b"\xa4\xba", "€ș"),
    "KOI8-R": (b"\xc1\xf1", "аЯ"),
    "KOI8-U": (b"\xa4\xb4", "єЄ"),
    "macintosh": (b"\x8e\xdb", "é€"),
    "windows-874": (b"\x80\xa1", "€ก"),
    "windows-1250": (b"\x8a\xb9", "Šą"),
    "windows-1251": (b"\xc0\xff", "Ая"),
    "windows-1252": (b"\x80\x93\xe9", "€“é"),
    "windows-1253": (b"\xc1\xe1", "Αα"),
    "windows-1254": (b"\x80\xf0\xfd\xfe", "€ğış"),
    "windows-1255": (b"\xe0\xa4", "\u05d0₪"),
    "windows-1256": (b"\xc7\x81", "\u0627\u067e"),
    "windows-1257": (b"\xe0\xa8", "ąØ"),
    "windows-1258": (b"\xd5\xdd", "ƠƯ"),
    "x-mac-cyrillic": (b"\x80\xdf", "Ая"),
    "GBK": (b"\xd6\xec\xe9\x46\xbb\xf9", "朱镕基"),
    "gb18030": (b"\x949\xfc6", "\U0001f600"),
    "Big5": (b"\xa4\xa4\xa4\xe5\x88\x62", "中文\u00ca\u0304"),
    "EUC-JP": (b"\xc6\xfc\xcb\xdc", "日本"),
    "ISO-2022-JP": (b"\x1b$BF|K\\\x1b(B", "日本"),
    "Shift_JIS": (b"\x87\x40\x87\x41\xfb\xfc", "①②髙"),
    "EUC-KR": (b"\xc7\xd1\xb1\xb9\x81\x41", "한국갂"),
    "replacement": (b"<p>x</p>", "\ufffd"),
    "UTF-16BE": (b"\x00h\x00i", "hi"),
    "UTF-16LE": (b"h\x00i\x00", "hi"),
    "x-user-defined": (b"a\x80\xff", "a\uf780\uf7ff"),
}


ALL_LABELS = [(label, name) for name, _, labels in ENCODINGS for label in labels.split()]


def test_the_table_is_the_standards() -> None:
    """encodings.json has 40 encodings (with replacement) and 228 distinct labels,
    all lower-case ASCII without surrounding space."""
    assert len(ENCODINGS) == 40
    assert len(ALL_LABELS) == len(ENCODING_OF_LABEL) == 228
    assert all(label.isascii() and label == label.lower().strip() for label, _ in ALL_LABELS)
    assert set(DECODED_BY_ENCODING) == set(CODEC_OF_ENCODING)


@pytest.mark.parametrize(("label", "name"), ALL_LABELS)
def test_every_label_decodes_as_its_encoding(label: str, name: str) -> None:
    body, expected = DECODED_BY_ENCODING[name]
    for spelling in (label, label.upper(), f" {label}\t"):
        assert encoding_of_label(spelling) == name
        assert decode_body(body, f"text/plain; charset={spelling}")[0] == expected


@pytest.mark.parametrize(
    "label",
    ["utf-7", "utf7", "latin-1", "utf-32", "utf8mb4", "iso-8859-1x", "x-unknown", "hex", "idna", "", "\x00"],
)
def test_labels_outside_the_table_are_ignored(label: str) -> None:
    assert encoding_of_label(label) is None
    assert detect_encoding(b"+AGEAYgBj- caf\xc3\xa9", f"text/html; charset={label}") == "utf-8"


@pytest.mark.parametrize(
    ("body", "label", "expected"),
    [
        # issue 14's quoted bugs: each legacy label means the browsers' wider encoding
        ("朱镕基".encode("gbk"), "gb2312", "朱镕基"),
        ("朱镕基".encode("gbk"), "x-gbk", "朱镕基"),
        (b"\x88\x62", "big5", "\u00ca\u0304"),  # Big5-HKSCS
        ("똠방각하".encode("cp949"), "euc-kr", "똠방각하"),  # windows-949 only
        ("①②③ 髙橋".encode("cp932"), "shift_jis", "①②③ 髙橋"),
        ("①②③ 髙橋".encode("cp932"), "windows-31j", "①②③ 髙橋"),
        ("①②③ 髙橋".encode("cp932"), "x-sjis", "①②③ 髙橋"),
        ("“Türkçe” 5 €".encode("cp1254"), "iso-8859-9", "“Türkçe” 5 €"),
        ("“Türkçe” 5 €".encode("cp1254"), "latin5", "“Türkçe” 5 €"),
        ("€ ภาษาไทย".encode("cp874"), "tis-620", "€ ภาษาไทย"),
        ("€ ภาษาไทย".encode("cp874"), "iso-8859-11", "€ ภาษาไทย"),
        ("“café” €".encode("cp1252"), "iso-8859-1", "“café” €"),
        ("“café” €".encode("cp1252"), "ascii", "“café” €"),
        ("“café” €".encode("cp1252"), "iso88591", "“café” €"),
        ("Café crème".encode("cp1252"), "x-cp1252", "Café crème"),
        ("Привет".encode("koi8-r"), "koi", "Привет"),
        ("Привет".encode("mac-cyrillic"), "x-mac-cyrillic", "Привет"),
        ("ünïcödé".encode("utf-16-le"), "utf-16", "ünïcödé"),  # a header's utf-16 is UTF-16LE
        (b"+AGEAYgBj-", "utf-7", "+AGEAYgBj-"),  # never honoured by browsers
        (b"<p>\x1b$)C\x0e\x21\x21</p>", "iso-2022-kr", "\ufffd"),  # replacement
        (b"", "iso-2022-kr", ""),
    ],
)
def test_quoted_label_bugs(body: bytes, label: str, expected: str) -> None:
    assert decode_body(body, f"text/html; charset={label}")[0] == expected


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
        (CAFE_UTF8, "text/html;charset = Shift_JIS ", "cp932"),
        (CAFE_UTF8, "TEXT/HTML; CHARSET=WINDOWS-1251", "cp1251"),
        (CAFE_UTF8, "text/html; format=flowed; charset=utf8", "utf-8"),
        (CAFE_UTF8, 'text/html; charset="utf-8"; foo=bar', "utf-8"),
        (meta('<meta charset="koi8-r">'), "text/html; charset=iso-8859-2", "iso8859-2"),
        (CAFE_UTF8, "text/html; charset=x-user-defined", "x-user-defined"),  # only a meta's means 1252
        # garbage labels are skipped for the next source
        (CAFE_UTF8, "text/html; charset=foo-bar", "utf-8"),
        (meta('<meta charset="koi8-r">'), "text/html; charset=foo-bar", "koi8-r"),
        (CAFE_UTF8, "text/html; charset=", "utf-8"),
        (CAFE_UTF8, "text/html; charset=\x00", "utf-8"),
        (CAFE_UTF8, "text/html; xcharset=koi8-r", "utf-8"),
        (CAFE_UTF8, "", "utf-8"),
        # 3. <meta> found by the prescan in the first 2048 bytes
        (meta('<meta charset="koi8-r">'), None, "koi8-r"),
        (meta("<meta charset=koi8-r>"), "text/html", "koi8-r"),
        (meta("<META CHARSET='Windows-1251'>"), None, "cp1251"),
        (meta('<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'), None, "koi8-r"),
        (meta('<meta content="text/html;charset=iso-8859-1" http-equiv="content-type">'), None, "cp1252"),
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


# The HTML standard's prescan (13.2.3.2), rule by rule: (head, declared encoding).
PRESCAN_RULES = [
    # <meta charset>, any case, any quoting, after other attributes
    (b'<meta charset="koi8-r">', "KOI8-R"),
    (b"<meta charset='koi8-r'>", "KOI8-R"),
    (b"<meta charset=koi8-r>", "KOI8-R"),
    (b"<MeTa ChArSeT=KOI8-R>", "KOI8-R"),
    (b'<meta name="x" charset="koi8-r">', "KOI8-R"),
    (b"<meta/charset=koi8-r>", "KOI8-R"),
    (b"<meta\x0c charset \t= \n koi8-r >", "KOI8-R"),
    (b'<meta charset="  koi8-r  ">', "KOI8-R"),  # the label is trimmed
    (b"<meta charset=koi8-r/>", None),  # "/" belongs to an unquoted value
    (b"<metacharset=koi8-r>", None),  # "<meta" needs a space or "/" after it
    # comments and other constructs are skipped
    (b'<!-- <meta charset="iso-8859-1"> --><meta charset="utf-8">', "UTF-8"),
    (b"<!--><meta charset=koi8-r>", "KOI8-R"),  # "<!-->" is a whole comment
    (b"<!---><meta charset=iso-8859-2>--><meta charset=koi8-r>", "ISO-8859-2"),
    (b"<!-- unterminated <meta charset=koi8-r>", None),
    (b"<!doctype html><meta charset=koi8-r>", "KOI8-R"),
    (b'<?xml version="1.0" encoding="koi8-r"?>', None),
    (b"<?php <meta charset=koi8-r> ?><meta charset=iso-8859-2>", "ISO-8859-2"),  # skipped to the first ">"
    (b"</p foo='<meta charset=koi8-r>'><meta charset=iso-8859-2>", "ISO-8859-2"),
    # other tags' attributes count for nothing, even when they hold markup
    (b'<div title="<meta charset=koi8-r>"></div>', None),
    (b"<a href='x?charset=koi8-r'>", None),
    (b'<div data-x="a>b" charset=koi8-r><meta charset=iso-8859-2>', "ISO-8859-2"),
    (b'<script src="a.js" charset="koi8-r"></script>', None),
    (b'<link rel=stylesheet charset="koi8-r">', None),
    # charset= in content counts only with http-equiv="content-type"
    (b'<meta content="text/html; charset=koi8-r">', None),
    (b'<meta name="x" content="text/html; charset=koi8-r">', None),
    (b'<meta http-equiv="refresh" content="0; charset=koi8-r">', None),
    (b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">', "KOI8-R"),
    (b'<meta content="text/html; charset=koi8-r" http-equiv="CONTENT-TYPE">', "KOI8-R"),
    (b"<meta http-equiv=content-type content=\"text/html;charset='koi8-r'\">", "KOI8-R"),
    (b'<meta http-equiv=content-type content="charset = koi8-r;x">', "KOI8-R"),
    (b'<meta http-equiv=content-type content="charsetcharset=koi8-r">', "KOI8-R"),
    (b'<meta http-equiv=content-type content="charset=\'koi8-r">', None),  # unmatched quote
    (b'<meta http-equiv=content-type content="text/html">', None),
    # charset beats content; the first of a repeated attribute wins
    (b'<meta http-equiv=content-type content="charset=koi8-r" charset=iso-8859-2>', "ISO-8859-2"),
    (b"<meta charset=koi8-r charset=iso-8859-2>", "KOI8-R"),
    (b'<meta http-equiv=content-type http-equiv=x content="charset=koi8-r">', "KOI8-R"),
    # an unusable label does not stop the scan
    (b'<meta charset="bogus"><meta charset="koi8-r">', "KOI8-R"),
    (b'<meta charset=""><meta charset="koi8-r">', "KOI8-R"),
    (b'<meta charset="utf-7"><meta charset="koi8-r">', "KOI8-R"),
    # UTF-16 in a meta means UTF-8, x-user-defined means windows-1252
    (b'<meta charset="utf-16le">', "UTF-8"),
    (b'<meta charset="utf-16">', "UTF-8"),
    (b'<meta charset="utf-16be">', "UTF-8"),
    (b'<meta charset="x-user-defined">', "windows-1252"),
    (b'<meta charset="iso-2022-kr">', "replacement"),
    # the end of the input ends the scan
    (b"<meta charset=koi8-r", None),
    (b'<meta charset="koi8-r', None),
    (b"<meta charset", None),
    (b"<div title='x", None),
    (b"<", None),
    (b"", None),
]


@pytest.mark.parametrize(("head", "expected"), PRESCAN_RULES)
def test_prescan(head: bytes, expected: str | None) -> None:
    assert prescan(head, encoding_of_label) == expected


@pytest.mark.parametrize(
    ("language", "codec", "text"), [(language, *sample) for language, sample in SAMPLES.items()]
)
def test_sniffing_reads_real_pages_in_their_language(language: str, codec: str, text: str) -> None:
    """No declaration at all: the guess must decode the page as it was written."""
    for body in (html_page(language, text).encode(codec), text.encode(codec)):
        text_read, _ = decode_body(body, "text/html")
        assert text_read == body.decode(codec)


@pytest.mark.parametrize(
    ("language", "label"),
    [("fr", "iso-8859-1"), ("tr", "iso-8859-9"), ("ru", "windows-1251"), ("ja", "shift_jis")],
)
def test_a_declared_meta_decodes_real_pages(language: str, label: str) -> None:
    codec, text = SAMPLES[language]
    body = html_page(language, text, f'<meta http-equiv="Content-Type" content="text/html; charset={label}">')
    assert decode_body(body.encode(codec), None)[0] == body


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (CAFE_UTF8, "text/html; charset=utf-8", ("café", "utf-8")),
        (CAFE_CP1252, "text/html; charset=windows-1252", ("café", "cp1252")),
        (CAFE_CP1252, "text/html; charset=latin1", ("café", "cp1252")),
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
    "label",
    [*LABELS, *ENCODING_OF_LABEL, "idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape"],
)
def test_decode_body_never_raises_for_any_label(label: str) -> None:
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


@given(st.binary(max_size=300))
def test_prescan_never_raises(head: bytes) -> None:
    found = prescan(b"<meta " + head, encoding_of_label)
    assert found is None or found in CODEC_OF_ENCODING


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
