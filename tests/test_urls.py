"""URL functions, tested from tables."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler import _urls
from crawler._urls import (
    MAX_URL_LENGTH,
    InvalidURL,
    cache_key,
    canonicalize,
    default_allowed_domains,
    fingerprint,
    host_key,
    hostname,
    in_scope,
    is_followable,
    is_too_long,
    join_url,
    vet_url,
)

BASE = "http://a.com/b/c/d;p?q#f"


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("g", "http://a.com/b/c/g"),
        ("./g", "http://a.com/b/c/g"),
        ("g/", "http://a.com/b/c/g/"),
        ("/g", "http://a.com/g"),
        ("../g", "http://a.com/b/g"),
        ("../../../g", "http://a.com/g"),
        ("//other.host/x", "http://other.host/x"),
        ("?y", "http://a.com/b/c/d;p?y"),
        ("#frag", "http://a.com/b/c/d;p?q#frag"),
        ("g?y#s", "http://a.com/b/c/g?y#s"),
        ("https://x.org/", "https://x.org/"),
        ("HTTP://X.org/A", "http://X.org/A"),
        (" /p?q=1 ", "http://a.com/p?q=1"),
        ("\x00\x1f /p\x7f", "http://a.com/p\x7f"),  # only C0 and space are stripped
        ("\n\t/a\tb\r\nc\t", "http://a.com/abc"),
        ("/a b", "http://a.com/a b"),  # not canonicalised here
        ("", "http://a.com/b/c/d;p?q"),
        ("  ", "http://a.com/b/c/d;p?q"),
        ("\\\\other.host\\x?a\\b", "http://other.host/x?a\\b"),
        ("\\g", "http://a.com/g"),
        ("http:\\\\h\\x", "http://h/x"),
        ("javascript:void(0)", "javascript:void(0)"),
        ("mailto:x@y", "mailto:x@y"),
        ("tel:+1", "tel:+1"),
        ("data:text/html,<p>\\</p>", "data:text/html,<p>\\</p>"),
        ("//[x/y", "//[x/y"),  # unresolvable: returned for canonicalize to refuse
        (" http://[::1/ ", "http://[::1/"),
    ],
)
def test_join_url(href: str, expected: str) -> None:
    assert join_url(BASE, href) == expected


@given(st.text(), st.text())
def test_join_url_never_raises(base: str, href: str) -> None:
    assert isinstance(join_url(base, href), str)
    assert isinstance(join_url("http://a.com/b", href), str)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # scheme, host, port, fragment
        ("HTTP://Example.COM:80/a/../b/./c?x=1#frag", "http://example.com/b/c?x=1"),
        ("http://example.com", "http://example.com/"),
        ("https://example.com:443", "https://example.com/"),
        ("http://example.com:443/", "http://example.com:443/"),
        ("https://example.com:80/", "https://example.com:80/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("http://example.com:/x", "http://example.com/x"),
        ("http://example.com:0080/", "http://example.com/"),
        ("http://Example.com./x", "http://example.com/x"),
        ("http://example.com/x#", "http://example.com/x"),
        ("  http://example.com/x \n", "http://example.com/x"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/"),
        ("http://[::1]:8080/", "http://[::1]:8080/"),
        ("http://[::1]:80/", "http://[::1]/"),
        ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]/"),
        ("http://[FE80::A]/", "http://[fe80::a]/"),
        ("http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/"),  # hex on every Python
        ("http://[::FFFF:7F00:1]/", "http://[::ffff:7f00:1]/"),
        ("http://[0:0:0:0:0:ffff:0:0]/", "http://[::ffff:0:0]/"),
        ("http://[::127.0.0.1]/", "http://[::7f00:1]/"),
        # IPv4 as WHATWG parses it: 1-4 numbers, decimal, 0x hex or 0 octal
        ("http://2130706433/", "http://127.0.0.1/"),
        ("http://127.1/", "http://127.0.0.1/"),
        ("http://127.0.1/", "http://127.0.0.1/"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("http://0X7F.0X0.0X0.0X1:80/", "http://127.0.0.1/"),
        ("http://0x7f000001/", "http://127.0.0.1/"),
        ("http://0177.0.0.1/", "http://127.0.0.1/"),
        ("http://017700000001/", "http://127.0.0.1/"),
        ("http://00000177.0.0.1/", "http://127.0.0.1/"),
        ("http://127.0.0.1./", "http://127.0.0.1/"),
        ("http://127.0.0.1../", "http://127.0.0.1/"),
        ("http://%31%32%37.1/", "http://127.0.0.1/"),
        ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "http://127.0.0.1/"),  # full-width
        ("http://0/", "http://0.0.0.0/"),
        ("http://0x/", "http://0.0.0.0/"),
        ("http://00/", "http://0.0.0.0/"),
        ("http://4294967295/", "http://255.255.255.255/"),
        ("http://0xffffffff:8080/", "http://255.255.255.255:8080/"),
        ("http://1.2.65535/", "http://1.2.255.255/"),
        ("http://010.0x10.16/", "http://8.16.0.16/"),
        ("http://example.0x1g/", "http://example.0x1g/"),  # not a number: a domain
        ("http://1.example/", "http://1.example/"),
        ("http://ex%41mple.com/", "http://example.com/"),
        # IDN
        ("http://bücher.de/", "http://xn--bcher-kva.de/"),
        ("http://BÜCHER.de/", "http://xn--bcher-kva.de/"),
        ("http://xn--bcher-kva.de/", "http://xn--bcher-kva.de/"),
        ("http://bücher.de./", "http://xn--bcher-kva.de/"),
        ("http://faß.de/", "http://xn--fa-hia.de/"),  # IDNA 2008, as browsers
        ("http://☃.net/", "http://xn--n3h.net/"),  # IDNA 2003 fallback
        # userinfo
        ("http://User:Pa%2fss@Example.com/", "http://User:Pa%2fss@example.com/"),
        ("http://a@b@example.com/", "http://a%40b@example.com/"),
        # path: dot segments, empty path
        ("http://a.com/a/./b/../c", "http://a.com/a/c"),
        ("http://a.com/a/b/..", "http://a.com/a/"),
        ("http://a.com/a/b/.", "http://a.com/a/b/"),
        ("http://a.com/../../x", "http://a.com/x"),
        ("http://a.com/a//b", "http://a.com/a//b"),
        ("http://a.com/a/%2e%2E/b", "http://a.com/b"),
        ("http://a.com/.hidden/x", "http://a.com/.hidden/x"),
        ("http://a.com?x=1", "http://a.com/?x=1"),
        # escapes
        ("http://a.com/%7euser", "http://a.com/~user"),
        ("http://a.com/%7Euser", "http://a.com/~user"),
        ("http://a.com/%41%62%2D%5f%2e", "http://a.com/Ab-_."),
        ("http://a.com/a%2fb", "http://a.com/a%2Fb"),
        ("http://a.com/a%2Fb", "http://a.com/a%2Fb"),
        ("http://a.com/%3a%40%3f%e9", "http://a.com/%3A%40%3F%E9"),
        ("http://a.com/a b", "http://a.com/a%20b"),
        ("http://a.com/café", "http://a.com/caf%C3%A9"),
        ("http://a.com/caf%c3%a9", "http://a.com/caf%C3%A9"),
        ("http://a.com/100%", "http://a.com/100%25"),
        ("http://a.com/%zz", "http://a.com/%25zz"),
        ('http://a.com/|^{}`"<>\\', "http://a.com/%7C%5E%7B%7D%60%22%3C%3E%5C"),
        ("http://a.com/a\tb", "http://a.com/ab"),  # removed, as browsers do
        ("http://a.com/[x]:@!$&'()*+,;=", "http://a.com/[x]:@!$&'()*+,;="),
        ("http://a.com/Path/CASE", "http://a.com/Path/CASE"),
        # query
        ("http://a.com/b?", "http://a.com/b"),
        ("http://a.com/b?#x", "http://a.com/b"),
        ("http://a.com/b??", "http://a.com/b??"),
        ("http://a.com/?z=1&a=2&z=0", "http://a.com/?z=1&a=2&z=0"),
        ("http://a.com/?q=a b&r=é", "http://a.com/?q=a%20b&r=%C3%A9"),
        ("http://a.com/?q=%7e%2f%2B+x", "http://a.com/?q=~%2F%2B+x"),
        ("http://a.com/?Q=UPPER/../x", "http://a.com/?Q=UPPER/../x"),
        # other schemes: only the scheme changes
        ("javascript:void(0)", "javascript:void(0)"),
        ("JavaScript:alert('X')", "javascript:alert('X')"),
        ("MAILTO:X@Y.com", "mailto:X@Y.com"),
        ("tel:+1 555", "tel:+1 555"),
        ("data:text/html,<b>Hi</b>", "data:text/html,<b>Hi</b>"),
        ("ftp://Example.COM:21/a/../b", "ftp://Example.COM:21/a/../b"),
    ],
)
def test_canonicalize(url: str, expected: str) -> None:
    assert canonicalize(url) == expected
    assert canonicalize(expected) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "/relative/path",
        "example.com/x",
        "http://",
        "http:///x",
        "http:example.com",
        "http:/example.com",
        "http://exa mple.com/",
        "http://exa%20mple.com/",
        "http://a<b.com/",
        "http://u@/",
        "http://...:80/",
        "http://example.com:99999/",
        "http://example.com:65536/",
        "http://example.com:abc/",
        "http://example.com:-1/",
        "http://example.com:\uff18\uff10/",  # full-width digits
        "http://example.com:" + "1" * 5000 + "/",
        "http://a:1:2/",
        "http://[::1/",
        "http://[::1]x/",
        "http://[not-ipv6]/",
        "http://[fe80::1%25eth0]/",
        # last label numeric, but not an IPv4 address
        "http://1.2.3.4.5/",
        "http://256.0.0.1/",
        "http://1.2.3.256/",
        "http://1.2.65536/",
        "http://1.16777216/",
        "http://4294967296/",
        "http://0x100000000/",
        "http://0x100.0.0.1/",
        "http://09/",
        "http://0x1g.1/",
        "http://1..2.3/",
        "http://.1/",
        "http://a.1/",
        "http://foo.0x/",
        "http://example.com.123/",
        "http://" + "1" * 5000 + "/",
        "http://0x" + "f" * 5000 + "/",
        "http://a\ud800.com/",
        "http://xn--a.\u200b\u200b/",
    ],
)
def test_canonicalize_rejects(url: str) -> None:
    with pytest.raises(InvalidURL):
        canonicalize(url)


@given(st.text())
def test_canonicalize_raises_only_invalid_url_and_is_idempotent(text: str) -> None:
    for url in (text, "http://" + text, "https://a.com/" + text):
        try:
            canonical = canonicalize(url)
        except InvalidURL:
            continue
        assert canonicalize(canonical) == canonical


@given(st.text(), st.text())
def test_urls_with_one_cache_key_have_one_canonical_url(text: str, fragment: str) -> None:
    """Link vetting caches its verdicts by ``cache_key``: sound only if a fragment
    changes neither the canonical URL nor whether there is one."""
    for head in (text, "http://" + text, "https://a.com/" + text):
        url = head.partition("#")[0] + "#" + fragment
        key = cache_key(url)
        try:
            canonical = canonicalize(key)
        except InvalidURL:
            with pytest.raises(InvalidURL):
                canonicalize(url)
            continue
        if is_followable(canonical):
            assert canonicalize(url) == canonical


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://a.com/p#x", "http://a.com/p"),
        ("http://a.com/p?q=1#x#y", "http://a.com/p?q=1"),
        ("http://a.com/p", "http://a.com/p"),
        ("http://a.com/p #x", "http://a.com/p #x"),  # the space is inside the URL
        ("#x", "#x"),
    ],
)
def test_cache_key(url: str, key: str) -> None:
    assert cache_key(url) == key


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_canonical_urls_are_ascii_and_stripped(tail: str) -> None:
    canonical = canonicalize("http://a.com/" + tail)
    assert canonical.isascii()
    assert canonical == canonical.strip()
    assert "#" not in canonical


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://a.com/", True),
        ("https://a.com/", True),
        ("HTTPS://a.com/", True),
        ("mailto:x@y", False),
        ("javascript:void(0)", False),
        ("tel:+1", False),
        ("data:text/html,x", False),
        ("ftp://a.com/", False),
        ("file:///etc/passwd", False),
        ("httpx://a.com/", False),
        ("/relative", False),
    ],
)
def test_is_followable(url: str, expected: bool) -> None:
    assert is_followable(url) is expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://A.com:80/x", "a.com"),
        ("http://a.com/x", "a.com"),
        ("https://a.com:443/", "a.com"),
        ("http://a.com:443/", "a.com:443"),
        ("https://a.com:80/", "a.com:80"),
        ("http://a.com:8080", "a.com:8080"),
        ("http://127.0.0.1:8000/", "127.0.0.1:8000"),
        ("http://user:pw@a.com:81/", "a.com:81"),
        ("http://[::1]:8080/", "[::1]:8080"),
        ("http://[::1]/", "[::1]"),
        ("http://a.com?x", "a.com"),
    ],
)
def test_host_key(url: str, expected: str) -> None:
    assert host_key(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://A.com:8080/x", "a.com"),
        ("http://user@a.com/", "a.com"),
        ("http://127.0.0.1:8000/", "127.0.0.1"),
        ("http://[::1]:8080/", "::1"),
        ("http://xn--bcher-kva.de/", "xn--bcher-kva.de"),
    ],
)
def test_hostname(url: str, expected: str) -> None:
    assert hostname(url) == expected


@pytest.mark.parametrize("func", [host_key, hostname])
@pytest.mark.parametrize("url", ["mailto:x@y", "/relative", ""])
def test_host_functions_reject_urls_without_a_host(func: object, url: str) -> None:
    with pytest.raises(InvalidURL):
        func(url)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("url", "allowed", "expected"),
    [
        ("http://example.com/", ["example.com"], True),
        ("http://shop.example.com/", ["example.com"], True),
        ("http://a.b.example.com/", ["example.com"], True),
        ("http://badexample.com/", ["example.com"], False),
        ("http://example.com.evil.org/", ["example.com"], False),
        ("http://example.com/", ["shop.example.com"], False),
        ("http://example.com:8080/", ["example.com"], True),
        ("http://example.com/", ["EXAMPLE.com:8080"], True),
        ("http://example.com/", [" example.com. "], True),
        ("http://xn--bcher-kva.de/", ["bücher.de"], True),
        ("http://example.com/", ["other.org", "example.com"], True),
        ("http://example.com/", [], False),
        ("http://example.com/", [""], False),
        ("http://example.com/", ["not a host"], False),
        ("http://127.0.0.1:8000/", ["127.0.0.1"], True),
        ("http://127.0.0.1/", ["2130706433"], True),
        ("http://127.0.0.1/", ["127.1"], True),
        ("http://127.0.0.1/", ["0.0.1"], False),
        ("http://10.0.0.1/", ["0.1"], False),
        ("http://[::1]:8080/", ["::1"], True),
        ("http://[::1]/", ["[::1]:8080"], True),
        ("http://[::1]/", ["0:0::1"], True),
        ("http://[::2]/", ["::1"], False),
    ],
)
def test_in_scope(url: str, allowed: list[str], expected: bool) -> None:
    assert in_scope(url, allowed) is expected


def test_in_scope_accepts_any_collection() -> None:
    assert in_scope("http://a.example.com/", frozenset({"example.com"}))
    assert in_scope("http://a.example.com/", ("example.com",))


@pytest.mark.parametrize(
    ("start_urls", "expected"),
    [
        ([], ()),
        (["http://a.com/x"], ("a.com",)),
        (["http://B.com/", "http://a.com/", "https://b.com:8443/x"], ("b.com", "a.com")),
        (["http://bücher.de/"], ("xn--bcher-kva.de",)),
        (["http://127.0.0.1:8000/", "http://[::1]:8000/"], ("127.0.0.1", "::1")),
    ],
)
def test_default_allowed_domains(start_urls: list[str], expected: tuple[str, ...]) -> None:
    assert default_allowed_domains(start_urls) == expected
    assert all(in_scope(canonicalize(url), expected) for url in start_urls)


def test_default_allowed_domains_takes_an_iterator() -> None:
    assert default_allowed_domains(iter(["http://a.com/"])) == ("a.com",)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("GET", "http://a.com/x"), ("get", "HTTP://A.com:80/x#frag")),
        (("GET", "http://a.com/~u"), ("GET", "http://a.com/%7Eu")),
        (("POST", "http://a.com/", b"x"), ("post", "http://a.com", b"x")),
    ],
)
def test_fingerprint_equal_for_equivalent_requests(
    first: tuple[str, str] | tuple[str, str, bytes],
    second: tuple[str, str] | tuple[str, str, bytes],
) -> None:
    assert fingerprint(*first) == fingerprint(*second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("GET", "http://a.com/x"), ("POST", "http://a.com/x")),
        (("GET", "http://a.com/x"), ("GET", "http://a.com/y")),
        (("GET", "http://a.com/x"), ("GET", "https://a.com/x")),
        (("GET", "http://a.com/?a=1&b=2"), ("GET", "http://a.com/?b=2&a=1")),
        (("POST", "http://a.com/", b"x"), ("POST", "http://a.com/", b"y")),
        (("POST", "http://a.com/", b""), ("POST", "http://a.com/", b"\x00")),
    ],
)
def test_fingerprint_differs_for_different_requests(
    first: tuple[str, str] | tuple[str, str, bytes],
    second: tuple[str, str] | tuple[str, str, bytes],
) -> None:
    assert fingerprint(*first) != fingerprint(*second)


def test_fingerprint_is_a_stable_64_bit_unsigned_int() -> None:
    value = fingerprint("GET", "http://a.com/")
    assert value == 11630550357592739516
    assert 0 <= value < 2**64
    code = "from crawler._urls import fingerprint; print(fingerprint('GET', 'http://a.com/'))"
    other_process = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": ":".join(sys.path)},
    )
    assert int(other_process.stdout) == value


@pytest.mark.parametrize(
    ("url", "limit", "expected"),
    [
        ("http://a.com/", MAX_URL_LENGTH, False),
        ("http://a.com/" + "x" * (MAX_URL_LENGTH - 13), MAX_URL_LENGTH, False),
        ("http://a.com/" + "x" * (MAX_URL_LENGTH - 12), MAX_URL_LENGTH, True),
        ("http://a.com/", 13, False),
        ("http://a.com/", 12, True),
    ],
)
def test_is_too_long(url: str, limit: int, expected: bool) -> None:
    assert is_too_long(url, limit) is expected


def test_max_url_length() -> None:
    assert MAX_URL_LENGTH == 2083
    assert is_too_long("x" * 2084) and not is_too_long("x" * 2083)


# No empty segments: urljoin drops them ("a//b" -> "a/b"), unlike RFC 3986 and browsers,
# which the fast path follows.
_SEGMENT = st.sampled_from(["a", "b.html", ".", "..", "x%7e", "~u", "-d", "9"])
_SUFFIX = st.sampled_from(["", "?q=1", "#frag", "?a=./b#c"])


@given(
    base_path=st.lists(_SEGMENT, max_size=4).map("/".join),
    href=st.lists(_SEGMENT, min_size=1, max_size=5).map("/".join),
    absolute=st.booleans(),
    suffix=_SUFFIX,
)
def test_join_url_fast_path_agrees_with_urljoin(
    base_path: str, href: str, absolute: bool, suffix: str
) -> None:
    from urllib.parse import urljoin

    base = "http://h.test/" + base_path
    href = ("/" if absolute else "") + href + suffix
    assert join_url(base, href) == urljoin(base, href)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://a.test/p?PHPSESSID=abc", "http://a.test/p"),
        ("http://a.test/p?x=1&sid=9&y=2", "http://a.test/p?x=1&y=2"),
        ("http://a.test/p;jsessionid=ABC123?x=1", "http://a.test/p?x=1"),
        ("http://a.test/p;JSESSIONID=ABC/q", "http://a.test/p/q"),
        ("http://a.test/p?sidebar=1&session=2", "http://a.test/p?sidebar=1&session=2"),
        ("http://a.test/p?x=1#sid=3", "http://a.test/p?x=1#sid=3"),
        ("http://a.test/p", "http://a.test/p"),
    ],
)
def test_strip_session_ids(url: str, expected: str) -> None:
    from crawler._urls import strip_session_ids

    assert strip_session_ids(url) == expected


# The URL standard's special-scheme rules, as its web-platform tests (urltestdata.json)
# state them: (input, base, href after canonicalize).
SPECIAL_SCHEME_CASES = [
    ("///test", "http://example.org/", "http://test/"),
    ("///\\//\\//test", "http://example.org/", "http://test/"),
    ("///example.org/path", "http://example.org/", "http://example.org/path"),
    ("///example.org/../path", "http://example.org/", "http://example.org/path"),
    ("\\\\server\\file", "http://example.org/foo/bar", "http://server/file"),
    ("/\\server/file", "http://example.org/foo/bar", "http://server/file"),
    ("\\/server/file", "http://example.org/foo/bar", "http://server/file"),
    ("http:\\\\www.google.com\\foo", "http://example.org/foo/bar", "http://www.google.com/foo"),
    # another special scheme than the page's: slashes or not, what follows is the host
    ("https:example.com/", "http://example.org/foo/bar", "https://example.com/"),
    ("https:/example.com/", "http://example.org/foo/bar", "https://example.com/"),
    ("https:///example.com/", "http://example.org/foo/bar", "https://example.com/"),
    ("http:example.com/", "https://example.org/foo/bar", "http://example.com/"),
    ("HTTPS:example.com", "http://example.org/foo/bar", "https://example.com/"),
    # the page's own scheme without "//": a relative reference
    ("http:example.com/", "http://example.org/foo/bar", "http://example.org/foo/example.com/"),
    ("http:/example.com/", "http://example.org/foo/bar", "http://example.org/example.com/"),
    ("http::@c:29", "http://example.org/foo/bar", "http://example.org/foo/:@c:29"),
    ("http:///example.com/", "http://example.org/foo/bar", "http://example.com/"),
    # userinfo percent-encoding
    ("http://&a:foo(b]c@d:2/", "http://example.org/foo/bar", "http://&a:foo(b%5Dc@d:2/"),
    ("http://::@c@d:2", "http://example.org/foo/bar", "http://:%3A%40c@d:2/"),
    ("http://foo.com:b@d/", "http://example.org/foo/bar", "http://foo.com:b@d/"),
    ("http://@www.example.com", "http://example.org/foo/bar", "http://www.example.com/"),
    ("http://:@www.example.com", "http://example.org/foo/bar", "http://www.example.com/"),
    ("http://user:@www.example.com", "http://example.org/foo/bar", "http://user@www.example.com/"),
    ("http://`{}:`{}@h/", "http://example.org/foo/bar", "http://%60%7B%7D:%60%7B%7D@h/"),
    ("http://us er:pä ss@h/", "http://example.org/foo/bar", "http://us%20er:p%C3%A4%20ss@h/"),
    ("http://a/b:c@d/", "http://example.org/foo/bar", "http://a/b:c@d/"),  # "@" in the path
    # tabs and newlines go anywhere, also in an absolute URL
    ("ht\ttp://exa\nmple.com/p\rath", "http://example.org/", "http://example.com/path"),
]


@pytest.mark.parametrize(("href", "base", "expected"), SPECIAL_SCHEME_CASES)
def test_the_url_standards_special_scheme_cases(href: str, base: str, expected: str) -> None:
    assert canonicalize(join_url(base, href)) == expected


@pytest.mark.parametrize(
    "start_url",
    [
        "  http://example.com/p\n",
        "\thttp://example.com/p",
        "http://exam\tple.com/\r\np",
        "\x00http://example.com/p ",
    ],
)
def test_start_urls_are_cleaned_as_links_are(start_url: str) -> None:
    assert (
        canonicalize(start_url)
        == canonicalize(join_url("http://example.com/", start_url))
        == ("http://example.com/p")
    )


# Links of a page in a legacy encoding: the query in the page's encoding (URL standard,
# "encoding" of an HTML document), path and fragment in UTF-8.
QUERY_ENCODING_CASES = [
    ("?q=привет", "cp1251", "http://a.test/b/c?q=%EF%F0%E8%E2%E5%F2"),  # issue 14's example
    ("/search?q=привет&lang=ru", "koi8-r", "http://a.test/search?q=%D0%D2%C9%D7%C5%D4&lang=ru"),
    (
        "/каталог?раздел=книги",
        "cp1251",
        "http://a.test/%D0%BA%D0%B0%D1%82%D0%B0%D0%BB%D0%BE%D0%B3?%F0%E0%E7%E4%E5%EB=%EA%ED%E8%E3%E8",
    ),
    ("/s?q=café crème", "cp1252", "http://a.test/s?q=caf%E9%20cr%E8me"),
    ("/s?q=İstanbul şehri", "cp1254", "http://a.test/s?q=%DDstanbul%20%FEehri"),
    ("/s?q=日本語", "cp932", "http://a.test/s?q=%93%FA%96%7B%8C%EA"),
    ("/s?q=日本語", "euc_jp", "http://a.test/s?q=%C6%FC%CB%DC%B8%EC"),
    ("/s?q=中文", "gb18030", "http://a.test/s?q=%D6%D0%CE%C4"),
    ("/s?q=한국어", "cp949", "http://a.test/s?q=%C7%D1%B1%B9%BE%EE"),
    ("/s?q=ภาษาไทย", "cp874", "http://a.test/s?q=%C0%D2%C9%D2%E4%B7%C2"),
    ("/s?q=€ 😀", "cp1252", "http://a.test/s?q=%80%20%26%23128512%3B"),  # not in cp1252: &#128512;
    ("/s?q=привет#якорь", "cp1251", "http://a.test/s?q=%EF%F0%E8%E2%E5%F2"),
    ("/s?q=привет", "utf-8", "http://a.test/s?q=%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82"),
    ("/s?q=привет", "utf-16-le", "http://a.test/s?q=%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82"),
    ("/s?q=%EF%F0", "cp1251", "http://a.test/s?q=%EF%F0"),  # escapes stay as written
    ("mailto:пётр@example.com?subject=привет", "cp1251", "mailto:пётр@example.com?subject=привет"),
]


@pytest.mark.parametrize(("href", "encoding", "expected"), QUERY_ENCODING_CASES)
def test_link_queries_keep_the_pages_encoding(href: str, encoding: str, expected: str) -> None:
    assert canonicalize(join_url("http://a.test/b/c", href, encoding)) == expected


class _Limits:
    """Anything with the two attributes `vet_url` reads (a `Settings`, a `LinkRules`)."""

    def __init__(self, max_url_length: int = 2083, strip_session_ids: bool = False) -> None:
        self.max_url_length = max_url_length
        self.strip_session_ids = strip_session_ids


LONG = "http://example.com/" + "a" * 30
SESSION = "http://example.com/p;jsessionid=AB12?x=1"


@pytest.mark.parametrize(
    ("url", "limits", "expected"),
    [
        ("HTTP://Example.COM:80/a", _Limits(), (None, "http://example.com/a")),
        ("http://exa mple.com/", _Limits(), ("dropped/invalid_url", "http://exa mple.com/")),
        ("mailto:a@example.com", _Limits(), ("dropped/unsupported_scheme", "mailto:a@example.com")),
        (LONG, _Limits(max_url_length=40), ("dropped/url_too_long", LONG)),
        (SESSION, _Limits(strip_session_ids=True), (None, "http://example.com/p?x=1")),
        (SESSION, _Limits(), (None, SESSION)),
    ],
)
def test_vet_url_names_the_counter_of_a_refusal(url: str, limits: _Limits, expected: tuple[Any, str]) -> None:
    assert vet_url(url, limits) == expected


def test_the_userinfo_set_is_the_url_standards() -> None:
    """C0 controls, space, ``"#<>?`{}/:;=@[\\]^|``, DEL and every non-ASCII code point,
    and nothing else (the module spells it as the complement of what is left)."""
    spelled_out = re.compile(r"[\x00-\x20\"#<>?`{}/:;=@\[\\\]^|\x7f-\U0010ffff]")
    every_code_point = "".join(map(chr, range(0x110000)))
    matched = [m.start() for m in _urls._USERINFO_UNSAFE.finditer(every_code_point)]
    assert matched == [m.start() for m in spelled_out.finditer(every_code_point)]
