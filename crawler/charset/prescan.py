"""The HTML standard's prescan for a ``<meta>`` encoding declaration (13.2.3.2).

``prescan(head, get_encoding)`` walks the start of a document as a browser does
before it parses it: comments, ``<!...>``/``<?...>``/``</...>`` constructs and the
attributes of other tags are skipped (so a ``charset=`` inside them counts for
nothing), and a ``<meta>`` counts only through its ``charset`` attribute or a
``content`` attribute together with ``http-equiv="content-type"``. A label the
caller cannot use does not stop the scan; UTF-16 means UTF-8 and
``x-user-defined`` means windows-1252. Every step is a ``find`` or a regular
expression without nested quantifiers, so the scan is linear in its input.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# "Get an attribute" in one match: the end of the tag (1), or a name (2) and its value,
# quoted (3, 4), empty before ">", or unquoted (5). Each repetition is of one character
# class, so matching is linear; the cases where the standard stops at the end of the
# input are told apart after the match (``_attribute``).
_ATTRIBUTE = re.compile(
    rb"[\t\n\x0c\r /]*(?:(>)|([^\t\n\x0c\r />][^\t\n\x0c\r /=>]*)[\t\n\x0c\r ]*"
    rb"""(?:=[\t\n\x0c\r ]*(?:"([^"]*)"|'([^']*)'|(?=>)|"""
    rb"""([^\t\n\x0c\r >"'][^\t\n\x0c\r >]*)(?=[\t\n\x0c\r >])))?)"""
)
_META_TAG = re.compile(rb"<meta[\t\n\x0c\r /]", re.IGNORECASE)
_TAG_NAME_END = re.compile(rb"[\t\n\x0c\r >]")
_CONTENT_CHARSET = re.compile(rb"charset[\t\n\x0c\r ]*=[\t\n\x0c\r ]*")
_CONTENT_VALUE_END = re.compile(rb"[\t\n\x0c\r ;]")
_UTF16 = frozenset({"UTF-16BE", "UTF-16LE"})


class _Truncated(Exception):
    """The scan ran off the end of its input: the prescan gives up (no encoding)."""


def prescan(head: bytes, get_encoding: Callable[[str], str | None]) -> str | None:
    """The encoding the first usable ``<meta>`` of ``head`` declares, as
    ``get_encoding`` names it (it maps a label to a name, or ``None``)."""
    try:
        return _scan(head, get_encoding)
    except _Truncated:
        return None


def _scan(head: bytes, get_encoding: Callable[[str], str | None]) -> str | None:
    if _META_TAG.search(head) is None:
        return None  # only a <meta can declare anything
    position = head.find(b"<")
    while position != -1:
        position, found = _step(head, position, get_encoding)
        if found is not None:
            return found
        position = head.find(b"<", position + 1)
    return None


def _step(head: bytes, at: int, get_encoding: Callable[[str], str | None]) -> tuple[int, str | None]:
    """Handle the construct starting with the ``<`` at ``at``: ``(where it ends,
    the encoding a meta there declares)``."""
    after = head[at + 1 : at + 6].lower()
    if after.startswith(b"!--"):
        return _end_of(head, b"-->", at + 2) + 2, None
    if after[:4] == b"meta" and after[4:5] and after[4:5] in b"\t\n\x0c\r /":
        return _meta(head, at + 6, get_encoding)
    letter_at = at + 2 if after[:1] == b"/" else at + 1
    if head[letter_at : letter_at + 1].isalpha():
        return _skip_tag(head, letter_at), None
    if after[:1] and after[:1] in b"!/?":
        return _end_of(head, b">", at + 1), None
    return at, None


def _end_of(head: bytes, marker: bytes, start: int) -> int:
    found = head.find(marker, start)
    if found == -1:
        raise _Truncated
    return found


def _skip_tag(head: bytes, start: int) -> int:
    """Past a tag's name and attributes (their values may hold ``<`` or ``>``)."""
    name_end = _TAG_NAME_END.search(head, start)
    if name_end is None:
        raise _Truncated
    position = name_end.start()
    while (attribute := _attribute(head, position)) is not None:
        position = attribute[2]
    return position


def _meta(head: bytes, start: int, get_encoding: Callable[[str], str | None]) -> tuple[int, str | None]:
    """The prescan's ``<meta`` steps: attributes in order, first occurrence wins."""
    attributes: dict[bytes, bytes] = {}
    position = start
    while (attribute := _attribute(head, position)) is not None:
        name, value, position = attribute
        attributes.setdefault(name, value)
    return position, _declared(attributes, get_encoding)


def _declared(attributes: dict[bytes, bytes], get_encoding: Callable[[str], str | None]) -> str | None:
    """What a meta's attributes declare: ``charset`` beats ``content``, which needs
    ``http-equiv="content-type"``; a label ``get_encoding`` refuses is nothing."""
    if b"charset" in attributes:
        encoding = get_encoding(attributes[b"charset"].decode("latin-1"))
    elif b"content" in attributes and attributes.get(b"http-equiv") == b"content-type":
        label = charset_from_content(attributes[b"content"])
        encoding = get_encoding(label.decode("latin-1")) if label is not None else None
    else:
        return None
    if encoding in _UTF16:
        return "UTF-8"
    return "windows-1252" if encoding == "x-user-defined" else encoding


def charset_from_content(content: bytes) -> bytes | None:
    """ "Extracting a character encoding from a meta element": the label after the
    first ``charset=`` of a ``content`` value (lower-case already), or ``None``."""
    position = 0
    while (found := content.find(b"charset", position)) != -1:
        equals = _CONTENT_CHARSET.match(content, found)
        if equals is None:
            position = found + len(b"charset")
            continue
        return _content_value(content, equals.end())
    return None


def _content_value(content: bytes, start: int) -> bytes | None:
    quote = content[start : start + 1]
    if quote in (b'"', b"'"):
        end = content.find(quote, start + 1)
        return content[start + 1 : end] if end != -1 else None
    if start >= len(content):
        return None
    end_match = _CONTENT_VALUE_END.search(content, start)
    return content[start : end_match.start() if end_match else len(content)]


def _attribute(head: bytes, position: int) -> tuple[bytes, bytes, int] | None:
    """The standard's "get an attribute" at ``position``: ``(name, value, where it
    ends)``, names and values ASCII-lower-cased; ``None`` at a ``>``."""
    match = _ATTRIBUTE.match(head, position)
    if match is None:
        raise _Truncated
    last, end = match.lastindex, match.end()
    if last == 1:
        return None
    # The input ends in the attribute, or its "=" stayed unmatched: an unclosed quote.
    if end >= len(head) or (last == 2 and head[end] == 0x3D):
        raise _Truncated
    value = match[last] if last is not None and last > 2 else b""
    return match[2].lower(), value.lower(), end
