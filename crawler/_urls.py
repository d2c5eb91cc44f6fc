"""URL logic as small pure functions: join, canonicalise, scope, politeness key, dedup.

The crawl's URL pipeline is ``join_url`` (an ``href`` as a browser resolves it), then
``canonicalize`` (one spelling per resource, so that dedup works), then
``is_followable`` / ``in_scope`` / ``is_too_long`` (whether to queue it; ``vet_url``
does all but the scope check in one call), then
``fingerprint`` (the dedup key) and ``host_key`` (the politeness key).

``canonicalize`` raises ``InvalidURL`` (a ``ValueError``) and nothing else, for any
text; ``join_url`` never raises. ``host_key``, ``hostname`` and ``in_scope`` expect a
URL that ``canonicalize`` returned, and raise ``InvalidURL`` for one without a host.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Collection, Iterable
from functools import lru_cache
from hashlib import blake2b
from typing import Protocol
from urllib.parse import unquote, urljoin

import idna

from ._counters import DROPPED_INVALID_URL, DROPPED_UNSUPPORTED_SCHEME, DROPPED_URL_TOO_LONG

MAX_URL_LENGTH = 2083
"""The longest URL worth fetching (Internet Explorer's limit; sitemaps allow 2048)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_DEFAULT_PORT_SUFFIXES = {scheme: f":{port}" for scheme, port in _DEFAULT_PORTS.items()}
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
_TAB_AND_NEWLINES = str.maketrans("", "", "\t\r\n")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
# Page encodings whose links keep a UTF-8 query (URL standard: UTF-16 pages too).
_UTF8_QUERIES = frozenset({"utf-8", "utf-16-le", "utf-16-be", "replacement"})
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
# The URL standard's userinfo percent-encode set: C0, space, "#<>?`{}/:;=@[\]^|, DEL, non-ASCII;
# spelled as the complement of what is left, which compiles in a tenth of the time
# (a class up to U+10FFFF is a large charset; tests/test_urls.py checks they agree).
_USERINFO_UNSAFE = re.compile(r"[^!$%&'()*+,\-.0-9A-Z_a-z~]")

# RFC 3986 appendix B, with a strict scheme; the fragment is left unmatched.
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?")
_AUTHORITY = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://(?:[^/?#]*@)?([^/?#]*)")
_HOST_AND_PORT = re.compile(r"(\[[^\]]*\]|[^:]*)(?::(.*))?", re.DOTALL)
_QUERY_OR_FRAGMENT = re.compile(r"[?#]")
_BASE_PARTS = re.compile(r"((?:https?|HTTPS?)://[^/?#]*)([^?#]*)")
_PATH_START = re.compile(r"[A-Za-z0-9_.~/%-]")
_REG_NAME = re.compile(r"[a-z0-9\-._~!$&'()*+,;=]+")  # RFC 3986 reg-name, no escapes
_IPV4_DIGITS = {10: re.compile("[0-9]+"), 8: re.compile("[0-7]+"), 16: re.compile("[0-9a-f]+")}
# Anything that is neither unreserved nor reserved, and every "%": needs a look.
_NOT_PLAIN = re.compile(r"%[0-9A-Fa-f]{2}|[^A-Za-z0-9\-._~!$&'()*+,;=:@/?\[\]]")


class InvalidURL(ValueError):
    """A text that is not an absolute URL, or an http(s) URL without a usable host."""


def join_url(base: str, href: str, encoding: str = "utf-8") -> str:
    """Resolve ``href`` against the absolute URL ``base`` as a browser does.

    Leading and trailing C0 controls and spaces of ``href`` are stripped, tabs and
    newlines anywhere in it removed, and for http(s) (the URL standard's special
    schemes) a backslash before the query counts as a slash, slashes after the
    scheme or at the start of ``href`` beyond two are ignored (``///host/p``), and
    ``https:host`` on a page of another scheme names a host. Non-ASCII characters
    of an http(s) query are percent-encoded in ``encoding``, the page's (a Python
    codec name), as the URL standard says for links in a document; characters it
    cannot encode become ``%26%23NNNN%3B``. An empty ``href`` is ``base`` without
    its fragment. The result is not canonical. Never raises: an ``href`` that
    cannot be resolved (a broken IPv6 host such as ``//[x``) is returned cleaned,
    for ``canonicalize`` to refuse.
    """
    href = _without_tabs_and_newlines(href.strip(_C0_AND_SPACE))
    if not href:
        return base.partition("#")[0]
    if "\\" in href and _is_http_reference(base, href):
        href = _backslashes_to_slashes(href)
    joined = _fast_join(base, href)
    if joined is None:  # the fast path takes no href that the special-authority rules change
        joined = _slow_join(base, _special_authority(base, href))
    if encoding == "utf-8" or joined.isascii() or encoding in _UTF8_QUERIES:
        return joined
    return _encode_query(joined, encoding)


def _without_tabs_and_newlines(text: str) -> str:
    if "\t" in text or "\n" in text or "\r" in text:  # three memchr scans beat one translate
        return text.translate(_TAB_AND_NEWLINES)
    return text


def _slow_join(base: str, href: str) -> str:
    try:
        return urljoin(base, href)
    except ValueError:
        return href


def _special_authority(base: str, href: str) -> str:
    """``href`` with the URL standard's special-authority rules applied: extra
    slashes before an http(s) host are ignored, and ``https:host`` names a host
    unless the base has the same scheme (then it is a relative reference)."""
    if href.startswith("///"):
        return "//" + href.lstrip("/") if is_followable(base) else href
    colon = href.find(":", 0, 6)  # "https:" at the longest
    if colon < 4:
        return href
    scheme, rest = href[:colon].lower(), href[colon + 1 :]
    if scheme not in _DEFAULT_PORTS or (rest.startswith("//") and not rest.startswith("///")):
        return href
    if not rest.startswith("//") and base[: len(scheme) + 1].lower() == scheme + ":":
        return href
    return f"{scheme}://{rest.lstrip('/')}"


def _encode_query(url: str, encoding: str) -> str:
    """``url`` with the non-ASCII characters of its query percent-encoded in ``encoding``."""
    if not is_followable(url):
        return url
    head, question, rest = url.partition("?")
    query, hash_mark, fragment = rest.partition("#")
    if not question or query.isascii():
        return url
    return (
        head
        + question
        + _NON_ASCII.sub(lambda run: _percent_encoded(run[0], encoding), query)
        + hash_mark
        + fragment
    )


def _percent_encoded(text: str, encoding: str) -> str:
    """``text`` encoded and percent-encoded; a character ``encoding`` lacks becomes
    the escaped HTML reference ``%26%23NNNN%3B`` (the URL standard's HTML mode)."""
    try:
        return percent_bytes(text.encode(encoding))
    except UnicodeEncodeError:
        if len(text) > 1:
            return "".join(_percent_encoded(char, encoding) for char in text)
        return f"%26%23{ord(text)}%3B"
    except LookupError:
        return text  # canonicalize encodes it as UTF-8


def _fast_join(base: str, href: str) -> str | None:
    """``urljoin`` for the shapes most hrefs have (an http(s) URL, an absolute or a
    relative path), several times faster; ``None`` for every other shape."""
    if href.startswith(("http://", "https://")):
        return None if "/." in href or "///" in href[:9] else href
    if href.startswith("//") or ":" in href.split("/", 1)[0] or not _PATH_START.match(href):
        return None
    parts = _BASE_PARTS.match(base)
    if parts is None:
        return None
    origin, base_path = parts[1], parts[2] or "/"
    if not href.startswith("/"):
        href = base_path[: base_path.rfind("/") + 1] + href
    split = _QUERY_OR_FRAGMENT.search(href)
    path, rest = (href[: split.start()], href[split.start() :]) if split else (href, "")
    return origin + (_remove_dot_segments(path) if "." in path else path) + rest


def _is_http_reference(base: str, href: str) -> bool:
    """Whether ``href`` resolved against ``base`` is an http(s) URL."""
    match = _URL.match(href) or _URL.match(base)
    return match is not None and match[1].lower() in _DEFAULT_PORTS


def _backslashes_to_slashes(href: str) -> str:
    """Turn backslashes into slashes up to the query or fragment."""
    head = _QUERY_OR_FRAGMENT.split(href, maxsplit=1)[0]
    return head.replace("\\", "/") + href[len(head) :]


def canonicalize(url: str) -> str:
    """Return the one spelling of ``url`` that dedup compares; raise ``InvalidURL``.

    http(s): surrounding C0 controls and spaces stripped; scheme and host lower-case;
    an IDN host in punycode, without a trailing dot; an IPv4 host in dotted decimal
    whichever spelling a browser accepts (``2130706433``, ``127.1``, ``0x7f.1``,
    ``0177.0.0.1``), and a host whose last label is a number but that is no IPv4
    address (``1.2.3.4.5``, ``256.0.0.1``, ``a.1``) refused, as by WHATWG's host
    parser; an IPv6 host compressed, in brackets; no default port; no fragment; no
    empty query (``?``); escapes of unreserved characters decoded, others upper-cased;
    a lone ``%``, spaces, other characters that are neither unreserved nor reserved,
    and non-ASCII percent-encoded as UTF-8 in path and query; dot segments resolved,
    empty path ``/``; userinfo percent-encoded as the URL standard says, and dropped
    when empty. The case of path and query and the order of query parameters are
    kept. Tabs and newlines anywhere are removed, as browsers remove them (so a
    start URL is cleaned as a link is). Other schemes (``mailto:``,
    ``javascript:``...) only get a lower-case scheme.
    Idempotent: ``canonicalize(canonicalize(u)) == canonicalize(u)``.
    """
    url = _without_tabs_and_newlines(url.strip(_C0_AND_SPACE))
    match = _URL.match(url)
    if match is None:
        raise InvalidURL(f"not an absolute URL: {url!r}")
    scheme = match[1].lower()
    if scheme not in _DEFAULT_PORTS:
        return scheme + url[len(scheme) :]
    authority, path, query = match.group(2, 3, 4)
    if authority is None:
        raise InvalidURL(f"no host in {url!r}")
    return _canonical_authority(scheme, authority) + _canonical_path(path) + _canonical_query(query)


def cache_key(url: str) -> str:
    """``url`` (absolute, or a link relative to one page) without its fragment, which
    ``canonicalize`` drops: URLs with one key have one canonical URL (or none).
    Whitespace before the ``#`` is part of the path, not trailing, so such a URL
    keeps its fragment."""
    head = url.partition("#")[0]
    return head if head[-1:] > " " else url


@lru_cache(maxsize=4096)  # a site's links share a few hosts: parse each one once
def _canonical_authority(scheme: str, authority: str) -> str:
    """``scheme://[userinfo@]host[:port]`` with the host and port canonical."""
    userinfo, _, host_and_port = authority.rpartition("@")
    match = _HOST_AND_PORT.fullmatch(host_and_port)
    if match is None:
        raise InvalidURL(f"bad host in {authority!r}")
    port = _canonical_port(match[2], _DEFAULT_PORTS[scheme])
    userinfo = _canonical_userinfo(userinfo) if userinfo else ""
    return f"{scheme}://{userinfo}{_canonical_host(match[1])}{port}"


def _canonical_userinfo(userinfo: str) -> str:
    """``user[:password]@`` percent-encoded with the URL standard's userinfo set (an
    ``@`` or ``:`` inside becomes ``%40``/``%3A``); ``""`` when both are empty, and
    no ``:`` for an empty password."""
    user, _, password = userinfo.partition(":")
    user, password = _USERINFO_UNSAFE.sub(_escape_match, user), _USERINFO_UNSAFE.sub(_escape_match, password)
    if password:
        return f"{user}:{password}@"
    return f"{user}@" if user else ""


def _canonical_port(port: str | None, default: int) -> str:
    """``:port``, or ``""`` when it is missing, empty or the default."""
    if not port:
        return ""
    digits = port.isascii() and port.isdigit() and len(port.lstrip("0")) <= 5
    if not digits or int(port) > 65535:  # no int() of a huge string
        raise InvalidURL(f"bad port {port!r}")
    number = int(port)
    return "" if number == default else f":{number}"


def _canonical_host(host: str) -> str:
    """A lower-case ASCII host name without trailing dots, a dotted-decimal IPv4
    address, or a bracketed IPv6 address."""
    if host.startswith("["):
        return _canonical_ipv6(host)
    if "%" in host:
        host = unquote(host)
    if not host.isascii():
        host = _punycode(host)
    host = host.lower().rstrip(".")
    if _ends_in_number(host):
        return _canonical_ipv4(host)
    if not _REG_NAME.fullmatch(host):
        raise InvalidURL(f"bad host {host!r}")
    return host


def _ends_in_number(host: str) -> bool:
    """WHATWG's "ends in a number" test: whether the last label is all digits or a
    number ``_ipv4_number`` accepts (``0x7f``), making the host an IPv4 address."""
    last = host.rpartition(".")[2]
    return (last.isascii() and last.isdigit()) or _ipv4_number(last) is not None


def _canonical_ipv4(host: str) -> str:
    """WHATWG's IPv4 parser: one to four numbers (decimal, ``0x`` hex or ``0`` octal),
    the last filling the remaining bytes (``127.1``, ``2130706433``), in dotted decimal."""
    parts = host.split(".")
    numbers = [_ipv4_number(part) for part in parts]
    *leading, last = numbers
    if len(parts) > 4 or last is None or any(n is None or n > 255 for n in leading):
        raise InvalidURL(f"bad IPv4 host {host!r}")
    if last >= 256 ** (5 - len(parts)):
        raise InvalidURL(f"bad IPv4 host {host!r}")
    value = sum(n << 8 * (3 - i) for i, n in enumerate(leading) if n) + last
    return str(ipaddress.IPv4Address(value))


def _ipv4_number(part: str) -> int | None:
    """WHATWG's IPv4 number parser for a lower-case label, or ``None`` for failure.
    A number of more than 11 significant digits is out of range whatever its base,
    so it is returned as 2**32 instead of converted (no ``int()`` of a huge string)."""
    if not part:
        return None
    radix = 10
    if len(part) > 1 and part.startswith("0x"):
        part, radix = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        part, radix = part[1:], 8
    if not part:
        return 0
    if not _IPV4_DIGITS[radix].fullmatch(part):
        return None
    part = part.lstrip("0") or "0"
    return int(part, radix) if len(part) <= 11 else 2**32


def _canonical_ipv6(host: str) -> str:
    """``[address]`` compressed and lower-case; zone identifiers are refused. An
    IPv4-mapped address is spelled in hex (``[::ffff:7f00:1]``) as WHATWG and Python
    before 3.13 spell it (3.13's ``ipaddress`` writes ``::ffff:127.0.0.1``)."""
    if not host.endswith("]") or "%" in host:
        raise InvalidURL(f"bad IPv6 host {host!r}")
    try:
        address = ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        raise InvalidURL(f"bad IPv6 host {host!r}") from None
    if address.ipv4_mapped is None:
        return f"[{address.compressed}]"
    low = int(address) & 0xFFFFFFFF
    return f"[::ffff:{low >> 16:x}:{low & 0xFFFF:x}]"


def _punycode(host: str) -> str:
    """The ASCII form of an internationalised host: IDNA 2008 with UTS 46 mapping as
    browsers do, falling back to IDNA 2003 (which allows e.g. emoji)."""
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError:  # idna.IDNAError is one
        pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidURL(f"bad international host {host!r}") from None


def _canonical_path(path: str) -> str:
    """Escapes normalised, then dot segments resolved; ``/`` for an empty path."""
    return _remove_dot_segments(_normalize_escapes(path)) if path else "/"


def _canonical_query(query: str | None) -> str:
    """``?query`` with escapes normalised, or ``""`` for a missing or empty query."""
    return f"?{_normalize_escapes(query)}" if query else ""


def _normalize_escapes(text: str) -> str:
    """Decode escaped unreserved characters, upper-case other escapes, escape the rest
    that is neither unreserved nor reserved (a lone ``%`` becomes ``%25``)."""
    return _NOT_PLAIN.sub(_normalize_escape, text) if _NOT_PLAIN.search(text) else text


def _normalize_escape(match: re.Match[str]) -> str:
    """One ``%XX`` escape or one character that needs escaping."""
    text = match[0]
    if len(text) == 3:
        char = chr(int(text[1:], 16))
        return char if char in _UNRESERVED else text.upper()
    return _escape_match(match)


def _escape_match(match: re.Match[str]) -> str:
    """The matched characters percent-encoded as UTF-8."""
    return percent_bytes(match[0].encode("utf-8", "surrogatepass"))


def percent_bytes(data: bytes) -> str:
    """Every byte of ``data`` as ``%XX``."""
    return "".join(f"%{byte:02X}" for byte in data)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 for an absolute path: ``/a/./b/../c`` is ``/a/c``."""
    if "/." not in path:
        return path
    segments = path.split("/")
    kept: list[str] = []
    for segment in segments[1:]:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")
    return "/" + "/".join(kept)


def is_followable(url: str) -> bool:
    """Whether a crawler fetches ``url``: only ``http://`` and ``https://`` URLs."""
    return url[:8].lower().startswith(("http://", "https://"))


def is_http_url(url: str) -> bool:
    """Whether ``url`` is an http(s) URL that ``canonicalize`` accepts."""
    if not is_followable(url):
        return False
    try:
        canonicalize(url)
    except InvalidURL:
        return False
    return True


def host_key(url: str) -> str:
    """The politeness key: lower-case ``host``, or ``host:port`` for a port that is
    not the scheme's default (IPv6 hosts keep their brackets)."""
    scheme, host_and_port = _scheme_and_host_port(url)
    default = _DEFAULT_PORT_SUFFIXES.get(scheme)
    if default and host_and_port.endswith(default):
        return host_and_port[: -len(default)]
    return host_and_port


def hostname(url: str) -> str:
    """The lower-case host without port; an IPv6 address without its brackets, as
    ``ipaddress`` and ``urllib`` spell it."""
    host_and_port = _scheme_and_host_port(url)[1]
    if host_and_port.startswith("["):
        return host_and_port[1:].partition("]")[0]
    return host_and_port.partition(":")[0]


@lru_cache(maxsize=4096)  # the engine asks for one request's host key many times
def _scheme_and_host_port(url: str) -> tuple[str, str]:
    """Lower-case scheme and ``host[:port]`` of a URL with an authority."""
    match = _AUTHORITY.match(url)
    if match is None:
        raise InvalidURL(f"no host in {url!r}")
    return match[1].lower(), match[2].lower()


def in_scope(url: str, allowed_domains: Collection[str]) -> bool:
    """Whether the host of ``url`` is an allowed domain or a subdomain of one.

    Allowed entries are compared without case, port, brackets or trailing dot, IDN
    entries in punycode; an entry that is not a host name matches nothing. IP
    addresses match only themselves. No allowed domains: nothing is in scope.
    """
    host = hostname(url)
    is_ip = _is_ip_address(host)
    for entry in allowed_domains:
        domain = _allowed_domain(entry)
        if domain and (host == domain or (not is_ip and host.endswith(f".{domain}"))):
            return True
    return False


@lru_cache(maxsize=1024)
def _allowed_domain(entry: str) -> str:
    """An ``allowed_domains`` entry spelled as ``hostname`` spells hosts, or ``""``."""
    entry = entry.strip()
    if entry.count(":") > 1 and not entry.startswith("["):
        entry = f"[{entry}]"  # a bare IPv6 address
    try:
        return hostname(canonicalize(f"http://{entry}/"))
    except InvalidURL:
        return ""


def _is_ip_address(host: str) -> bool:
    """Whether ``host`` (as ``hostname`` returns it) is an IPv4 or IPv6 address."""
    return ":" in host or host.rpartition(".")[2].isdigit()


SESSION_PARAMETERS = frozenset(
    {
        "jsessionid",
        "phpsessid",
        "sessionid",
        "session_id",
        "sid",
        "aspsessionid",
        "cfid",
        "cftoken",
        "zenid",
        "oscsid",
    }
)
_PATH_SESSION = re.compile(r";(?:jsessionid|phpsessid|sessionid)=[^/?#]*", re.IGNORECASE)


def strip_session_ids(url: str) -> str:
    """``url`` without session-id query parameters (``?PHPSESSID=...``, ``sid=``...) or
    path parameters (``;jsessionid=...``): one page, one URL, whatever the session.
    Parameter order is kept; a query left empty goes."""
    base, hash_mark, fragment = url.partition("#")
    path, question, query = base.partition("?")
    path = _PATH_SESSION.sub("", path)
    if question:
        kept = [part for part in query.split("&") if part.partition("=")[0].lower() not in SESSION_PARAMETERS]
        query = "&".join(kept)
    return path + ("?" + query if query else "") + hash_mark + fragment


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a canonical http(s) URL."""
    return url[: url.index("/", url.index("//") + 2)]


def default_allowed_domains(start_urls: Iterable[str]) -> tuple[str, ...]:
    """The hostnames of ``start_urls`` (canonicalised), de-duplicated, in order."""
    return tuple(dict.fromkeys(hostname(canonicalize(url)) for url in start_urls))


def fingerprint(method: str, url: str, body: bytes = b"") -> int:
    """A 64-bit dedup key of a request, the same in every process and run.

    BLAKE2b over the upper-case method and canonical URL (as netstrings, so that no
    two requests share an input) and the body. Raises ``InvalidURL`` like
    ``canonicalize``.
    """
    return fingerprint_canonical(method.upper(), canonicalize(url), body)


def fingerprint_canonical(method: str, url: str, body: bytes = b"") -> int:
    """``fingerprint`` for an upper-case method and a URL that is canonical already
    (the crawl's hot path: no second canonicalisation)."""
    head = f"{len(method)}:{method}{len(url)}:{url}".encode("utf-8", "surrogatepass")
    digest = blake2b(head, digest_size=8)
    digest.update(body)
    return int.from_bytes(digest.digest(), "big")


def is_too_long(url: str, limit: int = MAX_URL_LENGTH) -> bool:
    """Whether ``url`` is longer than ``limit`` characters."""
    return len(url) > limit


class UrlLimits(Protocol):
    """What ``vet_url`` needs of a crawl's rules (`Settings` has both)."""

    @property
    def max_url_length(self) -> int: ...

    @property
    def strip_session_ids(self) -> bool: ...


def vet_url(url: str, limits: UrlLimits) -> tuple[str | None, str]:
    """Canonicalise ``url``; return (why it is refused, as its ``dropped/`` counter, or
    None; the canonical URL)."""
    try:
        canonical = canonicalize(url)
    except InvalidURL:
        return DROPPED_INVALID_URL, url
    if not is_followable(canonical):
        return DROPPED_UNSUPPORTED_SCHEME, canonical
    if limits.strip_session_ids:
        canonical = strip_session_ids(canonical)
    if is_too_long(canonical, limits.max_url_length):
        return DROPPED_URL_TOO_LONG, canonical
    return None, canonical
