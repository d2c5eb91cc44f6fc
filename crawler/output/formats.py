"""Output formats chosen by the path's ending: JSON Lines (the default, and ``-``),
gzip-compressed JSON Lines (``.jsonl.gz``, ``.ndjson.gz``) and CSV (``.csv``).

Every file sink keeps the file whole at all times: data is buffered and written by
``flush`` in complete units (a gzip member, whole CSV rows), and a write that fails
half-way is cut back to the last complete unit before ``OutputError`` is raised."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import logging
import os
import zlib
from collections.abc import Mapping
from typing import Any

from .._counters import DROPPED_CSV_FIELD, ERRORS_ITEM, ITEMS
from .._errors import OutputError, UsageError
from .._stats import Stats
from .itemjson import encode_value
from .sinks import FileSink, ItemSink, JsonLinesSink

GZIP_SUFFIXES = (".jsonl.gz", ".ndjson.gz", ".jl.gz")
CSV_SUFFIX = ".csv"
_CHUNK = 1 << 16

log = logging.getLogger("crawler.output")


# Names that promise a format these sinks do not write: refused rather than filled with
# JSON Lines. Any other name (``items.txt``, ``/dev/null``) gets JSON Lines.
UNSUPPORTED = {
    ".json": "a .json file would have to hold one JSON array; name it .jsonl for JSON Lines",
    ".csv.gz": "CSV is written uncompressed; name it .csv, or .jsonl.gz for compressed JSON Lines",
    ".gz": "only JSON Lines are written compressed; name it .jsonl.gz",
    ".bz2": "only gzip compression is supported (.jsonl.gz)",
    ".xz": "only gzip compression is supported (.jsonl.gz)",
    ".zst": "only gzip compression is supported (.jsonl.gz)",
    ".zip": "only gzip compression is supported (.jsonl.gz)",
    ".xml": "items are written as JSON Lines (.jsonl) or CSV (.csv)",
    ".tsv": "items are written as JSON Lines (.jsonl) or CSV (.csv)",
    ".xlsx": "items are written as JSON Lines (.jsonl) or CSV (.csv)",
    ".parquet": "items are written as JSON Lines (.jsonl) or CSV (.csv)",
}


def check_output_name(target: str) -> None:
    """Refuse a name whose ending promises a format that would not be written."""
    lowered = target.lower()
    if target == "-" or lowered.endswith(GZIP_SUFFIXES):
        return
    for suffix, advice in UNSUPPORTED.items():
        if lowered.endswith(suffix):
            raise UsageError(f"cannot write items to {target}: {advice}")


def open_sink(target: str, *, overwrite: bool) -> ItemSink:
    """The sink for ``-o/-O target``, chosen by how the path ends (case-insensitive)."""
    check_output_name(target)
    lowered = target.lower()
    if target != "-" and lowered.endswith(GZIP_SUFFIXES):
        return GzipJsonLinesSink(target, overwrite=overwrite)
    if target != "-" and lowered.endswith(CSV_SUFFIX):
        return CsvSink(target, overwrite=overwrite)
    return JsonLinesSink(target, overwrite=overwrite)


def count_dropped_fields(sink: ItemSink, stats: Stats) -> None:
    """Count what a CSV sink left out: values it had no column for, items it refused."""
    if isinstance(sink, CsvSink):
        stats.inc(DROPPED_CSV_FIELD, sink.dropped_fields)
        stats.inc(ERRORS_ITEM, sink.refused_items)
        stats.inc(ITEMS, -sink.refused_items)


class GzipJsonLinesSink(JsonLinesSink):
    """JSON Lines in a multi-member gzip file: each flush appends one complete member,
    so ``zcat`` or ``gzip.open`` reads every flushed line whatever happens later."""

    def _encode_unit(self, data: bytes) -> bytes:
        return gzip.compress(data, mtime=0)

    def _count_items(self, offset: int) -> int:
        """Lines in the members from ``offset`` (where a member starts) to the end."""
        assert self._fd is not None
        count, position = 0, offset
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while position < self._good_size and (chunk := os.pread(self._fd, _CHUNK, position)):
            position += len(chunk)
            while chunk:
                count += member.decompress(chunk).count(b"\n")
                chunk = member.unused_data
                if member.eof:
                    member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return count

    def repair(self) -> int:
        """Cut a partial or corrupt trailing member off the file; return how many bytes went."""
        if self._fd is None or self._good_size == 0:
            return 0
        return self._truncate_to(_complete_members_end(self._fd, self._good_size))


def _complete_members_end(fd: int, size: int) -> int:
    """Where the last complete gzip member ends, reading members from the start."""
    end, position = 0, 0
    member = zlib.decompressobj(16 + zlib.MAX_WBITS)
    while position < size:
        data = os.pread(fd, min(_CHUNK, size - position), position)
        if not data:
            break
        position += len(data)
        while data:
            try:
                member.decompress(data, _CHUNK)
                while member.unconsumed_tail and not member.eof:
                    member.decompress(member.unconsumed_tail, _CHUNK)
            except zlib.error:
                return end
            if not member.eof:
                break
            data = member.unused_data
            end = position - len(data)
            member = zlib.decompressobj(16 + zlib.MAX_WBITS)
    return end


class CsvSink(FileSink):
    """Items (dicts or dataclasses) as CSV rows, UTF-8. The header is the first item's
    keys, or the existing header when appending to a non-empty file; missing keys are
    empty cells, and lists and dicts are JSON-encoded into their cell.

    Appending items with keys the existing header lacks is refused (`OutputError`,
    nothing written): their values would have no column. A key that a later item
    adds to a file this crawl started cannot get a column either: its values are
    left out, a warning names the key once, and ``dropped_fields`` counts them."""

    wants_lines = False

    def __init__(self, target: str, *, overwrite: bool = False) -> None:
        super().__init__(target, overwrite=overwrite)
        self.dropped_fields = 0
        self.refused_items = 0
        self._fieldnames: list[str] | None = None
        self._unknown: set[str] = set()

    async def write(self, lines: bytes, items: list[Any]) -> None:
        if not items:
            return
        rows = [_as_row(item) for item in items]
        text = io.StringIO()
        writer = csv.writer(text)
        if self._fieldnames is None:
            self._fieldnames = self._header_for(rows[0])
            if self._good_size == 0:
                writer.writerow(self._fieldnames)
        known = set(self._fieldnames)
        for row in rows:
            self._count_unknown(row, known)
            self._write_row(writer, row)
        self._buffer += text.getvalue().encode("utf-8")

    def _write_row(self, writer: Any, row: Mapping[str, Any]) -> None:
        """One row; an item whose nested value JSON cannot carry is refused and counted."""
        assert self._fieldnames is not None
        try:
            cells = [_cell(row.get(name)) for name in self._fieldnames]
        except ValueError as exc:
            self.refused_items += 1
            log.error("%s: item not written: %s", self.target, exc)
            return
        writer.writerow(cells)

    def _header_for(self, first: Mapping[str, Any]) -> list[str]:
        existing = self._existing_header()
        if existing is None:
            return list(first)
        extra = [key for key in first if key not in existing]
        if extra:
            raise OutputError(
                f"cannot append to {self.target}: its columns are {', '.join(existing)}, and these "
                f"items add {', '.join(extra)}; write them to another file, or replace it with -O"
            )
        return existing

    def _count_unknown(self, row: Mapping[str, Any], known: set[str]) -> None:
        for key in row:
            if key not in known:
                self.dropped_fields += 1
                if key not in self._unknown:
                    self._unknown.add(key)
                    log.warning(
                        "%s: key %r is not in the CSV header (%s), which the first item set: "
                        "its values are left out (counted in dropped/csv_field)",
                        self.target,
                        key,
                        ", ".join(self._fieldnames or ()),
                    )

    def _count_items(self, offset: int) -> int:
        """Rows from ``offset`` (where a row starts) to the end, less the header."""
        assert self._fd is not None
        data = os.pread(self._fd, self._good_size - offset, offset)
        rows = sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline="")))
        return rows - 1 if offset == 0 and rows else rows

    def _existing_header(self) -> list[str] | None:
        if self._fd is None or self._good_size == 0:
            return None
        head = os.pread(self._fd, min(self._good_size, 1 << 20), 0)
        text = head.decode("utf-8-sig", errors="replace")
        try:
            return next(csv.reader(io.StringIO(text, newline="")), None) or None
        except csv.Error as exc:
            raise OutputError(f"cannot read the CSV header of {self.target}: {exc}") from None

    def repair(self) -> int:
        """Cut a partial last row off the file; return how many bytes went."""
        if self._fd is None or self._good_size == 0:
            return 0
        return self._truncate_to(_whole_rows_end(self._fd, self._good_size))


def _whole_rows_end(fd: int, size: int) -> int:
    """Where the last whole CSV row ends: the last newline outside quotes. Every quote
    character belongs to a quoted field, so a newline is outside quotes exactly when
    an even number of quotes come before it."""
    end, position, quoted = 0, 0, False
    while position < size:
        data = os.pread(fd, min(1 << 20, size - position), position)
        if not data:
            break
        offset = position
        for piece in data.split(b'"'):
            if not quoted and (newline := piece.rfind(b"\n")) >= 0:
                end = offset + newline + 1
            offset += len(piece) + 1
            quoted = not quoted
        quoted = not quoted  # the split adds one toggle too many per chunk
        position += len(data)
    return end


def _as_row(item: Any) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        return item
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    raise OutputError(f"item is not a dict or dataclass, cannot write it as CSV: {type(item).__name__}")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict | set | frozenset):
        return encode_value(value).decode("utf-8")
    return value
