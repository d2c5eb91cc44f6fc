"""Content-Encoding decoders that never produce more than a cap of bytes.

A 1 MiB gzip can hold 1 GiB of zeros. Every decoder here stops at ``cap + 1``
bytes of output and raises ``ResponseTooLarge``, so a decompression bomb costs at
most the cap in memory, whatever the compression ratio.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import brotli
import zstandard

from ._errors import DecodingError, ResponseTooLarge

STEP = 1 << 20


def decode_content(raw: bytes, content_encoding: str | None, cap: int) -> bytes:
    """Undo ``content_encoding`` (``gzip``, ``deflate``, ``br``, ``zstd``, ``identity``;
    stacked encodings are undone last-applied first). Raises ``ResponseTooLarge``
    past ``cap`` decoded bytes and ``DecodingError`` for unknown or corrupt data."""
    body = raw
    for name in reversed(_encodings(content_encoding)):
        decoder = _DECODERS.get(name)
        if decoder is None:
            raise DecodingError(f"unsupported Content-Encoding {name!r}")
        try:
            body = decoder(body, cap)
        except (zlib.error, brotli.error, zstandard.ZstdError) as exc:
            raise DecodingError(f"corrupt {name} body: {exc}") from None
    if len(body) > cap:
        raise ResponseTooLarge(f"body exceeds the {cap}-byte cap")
    return body


def _encodings(header: str | None) -> list[str]:
    if not header:
        return []
    names = (name.strip().lower() for name in header.split(","))
    return [name for name in names if name and name != "identity"]


def _gunzip(data: bytes, cap: int) -> bytes:
    """gzip, including several members one after another (rare: no copy otherwise)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = _inflate_bounded(inflater, data, cap)
    rest = inflater.unused_data if inflater.eof else b""
    return out + _gunzip(rest, cap - len(out)) if rest else out


def _inflate(data: bytes, cap: int) -> bytes:
    """``deflate`` is zlib-wrapped by the standard, raw deflate by many servers."""
    try:
        return _inflate_bounded(zlib.decompressobj(zlib.MAX_WBITS), data, cap)
    except zlib.error:
        return _inflate_bounded(zlib.decompressobj(-zlib.MAX_WBITS), data, cap)


def _inflate_bounded(inflater: zlib._Decompress, data: bytes, cap: int) -> bytes:
    out = bytearray(inflater.decompress(data, STEP))
    while inflater.unconsumed_tail and len(out) <= cap:
        out += inflater.decompress(inflater.unconsumed_tail, STEP)
    if len(out) > cap:
        raise ResponseTooLarge(f"decoded body exceeds the {cap}-byte cap")
    out += inflater.flush()
    return bytes(out)


def _unbrotli(data: bytes, cap: int) -> bytes:
    """In steps of at most ``STEP`` bytes of output (brotli 1.2's bounded API)."""
    decompressor = brotli.Decompressor()
    out = bytearray(decompressor.process(data, output_buffer_limit=STEP))
    while not decompressor.can_accept_more_data() and len(out) <= cap:
        out += decompressor.process(b"", output_buffer_limit=STEP)
    if len(out) > cap:
        raise ResponseTooLarge(f"decoded body exceeds the {cap}-byte cap")
    return bytes(out)


def _unzstd(data: bytes, cap: int) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    out = bytearray()
    while len(out) <= cap and (chunk := reader.read(STEP)):
        out += chunk
    if len(out) > cap:
        raise ResponseTooLarge(f"decoded body exceeds the {cap}-byte cap")
    return bytes(out)


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "br": _unbrotli,
    "zstd": _unzstd,
}
