"""Content-Encoding decoders that never produce more than a cap of bytes, and never
take a cut stream for a whole one.

A 1 MiB gzip can hold 1 GiB of zeros. Every decoder here stops soon after ``cap``
bytes of output and raises ``ResponseTooLarge``, so a decompression bomb costs about
the cap in memory, whatever the compression ratio.

A compressed body that ends before its end marker (gzip's trailer, the last deflate
or brotli block, the end of a zstd frame) was cut in transit, even when its length
matched a Content-Length: it raises ``BrokenTransfer``, so the page is retried, never
parsed as a shorter page.

Streams of several members (gzip) or frames (zstd) are decoded in a loop, member
after member, over one ``memoryview`` of the body: no recursion, and no copy of the
rest of the body per member. Input goes to each decoder in pieces that start small
and double, so what a decoder copies when its member ends (``unused_data``) is at
most twice that member's size: a body of a million tiny members decodes in time
and extra memory proportional to its size.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli
import zstandard

from ._errors import BrokenTransfer, DecodingError, ResponseTooLarge

STEP = 1 << 20  # most output a decoder may produce per call
FIRST_PIECE = 256  # input pieces per member start this small...
LAST_PIECE = 64 * 1024  # ...and double up to this
ZSTD_RATIO = 1 << 15  # most zstd output per input byte: a 4-byte block holds 128 KiB
ZSTD_WINDOW = 8 << 20  # RFC 9659: HTTP's zstd windows are at most 8 MiB


def decode_content(raw: bytes, content_encoding: str | None, cap: int) -> bytes:
    """Undo ``content_encoding`` (``gzip``, ``deflate``, ``br``, ``zstd``, ``identity``;
    stacked encodings are undone last-applied first). Raises ``ResponseTooLarge``
    past ``cap`` decoded bytes, ``BrokenTransfer`` for a stream cut before its end,
    and ``DecodingError`` for unknown or corrupt data. An empty body stays empty
    (a HEAD, 204 or 304 answer keeps the header of the body it does not send)."""
    body = raw
    for name in reversed(_encodings(content_encoding)):
        decoder = _DECODERS.get(name)
        if decoder is None:
            raise DecodingError(f"unsupported Content-Encoding {name!r}")
        if not body:
            return body
        try:
            body = decoder(memoryview(body), cap)
        except (zlib.error, brotli.error, zstandard.ZstdError) as exc:
            raise DecodingError(f"corrupt {name} body: {exc}") from None
    _check_cap(len(body), cap)
    return body


def _encodings(header: str | None) -> list[str]:
    if not header:
        return []
    names = (name.strip().lower() for name in header.split(","))
    return [name for name in names if name and name != "identity"]


def _check_cap(size: int, cap: int) -> None:
    if size > cap:
        raise ResponseTooLarge(f"decoded body exceeds the {cap}-byte cap")


def _cut(name: str, received: int) -> BrokenTransfer:
    return BrokenTransfer(f"{name} body cut short: {received} bytes end before its end marker")


def _gunzip(data: memoryview, cap: int) -> bytes:
    """gzip, member after member (RFC 1952 2.2); zero bytes after the last member are
    padding, as gzip(1) treats them."""
    out = bytearray()
    start = 0
    while start < len(data) and not (data[start] == 0 and _all_zero(data[start:])):
        start = _inflate_member(zlib.decompressobj(16 + zlib.MAX_WBITS), data, start, out, cap)
    return bytes(out)


def _all_zero(data: memoryview) -> bool:
    return data.tobytes().count(0) == len(data)  # checked once, at the end of the stream


def _inflate(data: memoryview, cap: int) -> bytes:
    """``deflate`` is zlib-wrapped by the standard, raw deflate by many servers."""
    try:
        return _inflate_once(zlib.MAX_WBITS, data, cap)
    except zlib.error:
        return _inflate_once(-zlib.MAX_WBITS, data, cap)


def _inflate_once(wbits: int, data: memoryview, cap: int) -> bytes:
    out = bytearray()
    _inflate_member(zlib.decompressobj(wbits), data, 0, out, cap, name="deflate")
    return bytes(out)


def _inflate_member(
    inflater: zlib._Decompress, data: memoryview, start: int, out: bytearray, cap: int, *, name: str = "gzip"
) -> int:
    """Inflate the member at ``data[start:]`` onto ``out``; returns where it ends."""
    size = FIRST_PIECE
    while start < len(data):
        piece = data[start : start + size]
        start += len(piece)
        _inflate_piece(inflater, piece, out, cap)
        if inflater.eof:
            return start - len(inflater.unused_data)
        size = min(2 * size, LAST_PIECE)
    raise _cut(name, len(data))


def _inflate_piece(inflater: zlib._Decompress, piece: memoryview | bytes, out: bytearray, cap: int) -> None:
    """All of ``piece``'s output, ``STEP`` bytes at a time, checked against ``cap``."""
    while True:
        chunk = inflater.decompress(piece, STEP)
        out += chunk
        _check_cap(len(out), cap)
        piece = inflater.unconsumed_tail
        if not piece and len(chunk) < STEP:
            return


def _unbrotli(data: memoryview, cap: int) -> bytes:
    """In steps of at most ``STEP`` bytes of output (brotli 1.2's bounded API)."""
    decompressor = brotli.Decompressor()
    out = bytearray(decompressor.process(data, output_buffer_limit=STEP))
    while not decompressor.can_accept_more_data():
        _check_cap(len(out), cap)
        out += decompressor.process(b"", output_buffer_limit=STEP)
    _check_cap(len(out), cap)
    if not decompressor.is_finished():
        raise _cut("br", len(data))
    return bytes(out)


def _unzstd(data: memoryview, cap: int) -> bytes:
    """zstd, frame after frame (RFC 8878 3.1)."""
    out = bytearray()
    start = 0
    while start < len(data):
        start = _unzstd_frame(data, start, out, cap)
    return bytes(out)


def _unzstd_frame(data: memoryview, start: int, out: bytearray, cap: int) -> int:
    """Decode the frame at ``data[start:]`` onto ``out``; returns where it ends.
    zstandard's streaming decoder has no output limit per call, so the input pieces
    shrink as ``out`` nears ``cap``: one piece cannot expand far past it."""
    frame = zstandard.ZstdDecompressor(max_window_size=ZSTD_WINDOW).decompressobj()
    size = FIRST_PIECE
    while start < len(data):
        size = min(size, (cap - len(out)) // ZSTD_RATIO + 16)
        piece = data[start : start + size]
        start += len(piece)
        out += frame.decompress(piece)
        _check_cap(len(out), cap)
        if frame.eof:
            return start - len(frame.unused_data)
        size = min(2 * size, LAST_PIECE)
    raise _cut("zstd", len(data))


_DECODERS: dict[str, Callable[[memoryview, int], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "br": _unbrotli,
    "zstd": _unzstd,
}
