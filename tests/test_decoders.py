"""Content-Encoding decoding: cut streams are broken transfers, never shorter pages,
and many-member bodies decode in bounded memory.

The decoders are tested from tables; the end-to-end tests crawl real servers that
cut their compressed bodies, both by closing the connection and with a
Content-Length that matches the cut body.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard

from crawler._decoders import decode_content
from crawler._errors import BrokenTransfer, DecodingError, ResponseTooLarge
from crawler.sites.server import Page

from .support.hostile_crawls import FAST, MiB, crawl_in_subprocess
from .support.hostile_servers import OK_HTML, Behaviour, Connection, HostileServer
from .support.items import urls
from .support.spiders import PageSpider

PAGE = (
    b"<html><head><title>list</title></head><body><ul>"
    + b"".join(b"<li>item %d</li>" % i for i in range(2000))
    + b"</ul></body></html>"
)


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ZSTD = zstandard.ZstdCompressor().compress

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "raw-deflate": raw_deflate,
    "br": lambda data: brotli.compress(data, quality=5),
    "zstd": ZSTD,
}


def header(encoder: str) -> str:
    return "deflate" if encoder == "raw-deflate" else encoder


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_a_whole_body_decodes(encoder: str) -> None:
    assert decode_content(ENCODERS[encoder](PAGE), header(encoder), 1 * MiB) == PAGE


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("keep", [0.01, 0.25, 0.5, 0.9, -1])
def test_a_cut_body_is_a_broken_transfer(encoder: str, keep: float) -> None:
    """Wherever the stream is cut, even one byte before its end."""
    encoded = ENCODERS[encoder](PAGE)
    cut = encoded[:-1] if keep == -1 else encoded[: max(1, int(len(encoded) * keep))]
    with pytest.raises(BrokenTransfer, match="cut short"):
        decode_content(cut, header(encoder), 1 * MiB)


@pytest.mark.parametrize(
    ("body", "encoding", "expected"),
    [
        (b"", "gzip", b""),  # HEAD, 204, 304: the header of a body not sent
        (b"", "zstd", b""),
        (gzip.compress(b"one ") + gzip.compress(b"two"), "gzip", b"one two"),
        (gzip.compress(b"padded") + b"\0" * 100, "gzip", b"padded"),  # gzip(1)'s zero padding
        (gzip.compress(b"") * 3 + gzip.compress(b"last"), "gzip", b"last"),
        (ZSTD(b"a") + ZSTD(b"b"), "zstd", b"ab"),
        (gzip.compress(brotli.compress(b"stacked")), "br, gzip", b"stacked"),
        (b"plain", "identity", b"plain"),
        (b"plain", None, b"plain"),
    ],
    ids=[
        "empty-gzip",
        "empty-zstd",
        "two-members",
        "zero-padding",
        "empty-members",
        "two-frames",
        "stacked",
        "identity",
        "none",
    ],
)
def test_decode_content(body: bytes, encoding: str | None, expected: bytes) -> None:
    assert decode_content(body, encoding, 1 * MiB) == expected


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (b"definitely not gzip", "gzip"),
        (gzip.compress(b"good") + b"trailing garbage", "gzip"),
        (b"not zstd at all", "zstd"),
        (b"\xff" * 50, "br"),
        (b"not deflate", "deflate"),
        (b"anything", "compress"),
    ],
)
def test_corrupt_or_unknown_data_is_a_decoding_error(body: bytes, encoding: str) -> None:
    with pytest.raises(DecodingError):
        decode_content(body, encoding, 1 * MiB)


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_a_bomb_stops_at_the_cap(encoder: str) -> None:
    bomb = ENCODERS[encoder](bytes(64 * MiB))
    assert len(bomb) < 1 * MiB
    with pytest.raises(ResponseTooLarge):
        decode_content(bomb, header(encoder), 4 * MiB)


def test_a_zstd_window_over_8_mib_is_refused() -> None:
    """RFC 9659: HTTP's zstd windows are at most 8 MiB, so a frame cannot make the
    decoder allocate a larger one."""
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=24)
    wide = zstandard.ZstdCompressor(compression_params=params).compress(bytes(32 * MiB))
    with pytest.raises(DecodingError):
        decode_content(wide, "zstd", 64 * MiB)


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_a_body_at_the_cap_decodes_and_one_byte_more_does_not(encoder: str) -> None:
    encode = ENCODERS[encoder]
    assert decode_content(encode(b"x" * 1000), header(encoder), 1000) == b"x" * 1000
    with pytest.raises(ResponseTooLarge):
        decode_content(encode(b"x" * 1001), header(encoder), 1000)


# -- end to end: servers that cut their compressed bodies ------------------------------


def closes_after(head: bytes, body: bytes) -> Behaviour:
    """Answer with ``head`` (no length), ``body``, then close the connection: the end
    of the body is where the connection ends, as in HTTP/1.0."""

    async def behave(conn: Connection) -> None:
        if await conn.read_request() is not None:
            await conn.send(OK_HTML + head + b"\r\n" + body)

    return behave


def cut_body(encoder: str) -> bytes:
    encoded = ENCODERS[encoder](PAGE)
    return encoded[: len(encoded) // 2]


@pytest.mark.parametrize("encoder", ["gzip", "deflate", "br", "zstd"])
def test_a_cut_body_on_a_closed_connection_is_retried_and_never_parsed(encoder, crawl_items):
    head = f"Content-Encoding: {encoder}\r\n".encode()
    with HostileServer(closes_after(head, cut_body(encoder))) as server:
        items, stats = crawl_items(PageSpider, [server.url + "/"], **FAST)
        assert server.wait_idle()
        assert server.requests == 1 + FAST["retries"]
    assert items == [] and stats.pages == 0
    assert stats["errors/broken_transfer"] == 1 and stats.errors == 1
    assert stats["retries"] == FAST["retries"]


@pytest.mark.parametrize("encoder", ["gzip", "deflate", "br", "zstd"])
def test_a_cut_body_with_a_matching_content_length_is_retried_and_never_parsed(encoder, serve, crawl_items):
    headers = (("Content-Type", "text/html"), ("Content-Encoding", encoder))
    server = serve({"/cut": Page(cut_body(encoder), headers=headers), "/ok": html_page()})
    items, stats = crawl_items(PageSpider, [server.url + "/cut", server.url + "/ok"], **FAST)
    assert urls(items) == {server.url + "/ok"}
    assert stats["errors/broken_transfer"] == 1 and stats.errors == 1
    assert len(server.hits_for("/cut")) == 1 + FAST["retries"]


def html_page() -> Page:
    return Page(gzip.compress(PAGE), headers=(("Content-Type", "text/html"), ("Content-Encoding", "gzip")))


# -- many tiny gzip members --------------------------------------------------------------

MEMBERS_BODY = 8 * MiB
MEMBERS_GROWTH_BOUND = 96 * MiB  # measured: see the README's hostile-web table


def many_members(size: int) -> tuple[bytes, int]:
    """A gzip body of about ``size`` bytes in members of one ``<p>`` each (28 bytes
    apiece), and the number of paragraphs."""
    head = gzip.compress(b"<html><head><title>members</title></head><body>", mtime=0)
    member = gzip.compress(b"<p>x</p>", mtime=0)
    count = size // len(member)
    return head + member * count + gzip.compress(b"</body></html>", mtime=0), count


def test_many_tiny_gzip_members_decode_in_bounded_memory(serve, tmp_path):
    body, count = many_members(MEMBERS_BODY)
    headers = (("Content-Type", "text/html"), ("Content-Encoding", "gzip"))
    server = serve({"/members": Page(body, headers=headers)})
    result = crawl_in_subprocess(
        [server.url + "/members"],
        tmp_path / "items.jsonl",
        deadline=60,
        obey_robots=False,
        timeout=30,
        max_size=32 * MiB,
        parse_workers=0,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.items == [{"url": server.url + "/members", "title": "members"}]
    assert result.report["counts"].get("errors/decoding_error") is None and count > 250_000
    growth = (result.report["after_kib"] - result.report["before_kib"]) * 1024
    print(f"peak RSS growth {growth / MiB:.1f} MiB for {count:,} members in {len(body) / MiB:.1f} MiB")
    assert growth < MEMBERS_GROWTH_BOUND, f"peak RSS grew by {growth / MiB:.1f} MiB"
