"""Item sinks: JSON Lines files (or stdout) and the in-process stream of ``crawl()``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any, Protocol

from ._callbacks import encode_items
from ._errors import OutputError

FLUSH_BYTES = 256 * 1024


class ItemSink(Protocol):
    """Where items go. ``wants_lines``: the sink takes items pre-encoded as JSON
    Lines (encoded in the parse workers); otherwise it takes the objects."""

    wants_lines: bool

    @property
    def buffered(self) -> int:
        """Bytes written but not flushed yet."""
        ...

    async def write(self, lines: bytes, items: list[Any]) -> None: ...

    def repair(self) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """A file (or stdout, ``-``) that grows only by whole units: data is buffered and
    written by ``flush`` (which the engine calls); ``_good_size`` is where the last
    whole unit ends, and a write that fails half-way (disk full) is cut back to it
    before ``OutputError`` is raised. Subclasses say what a unit is."""

    def __init__(self, target: str, *, overwrite: bool = False) -> None:
        self.target = target
        self._buffer = bytearray()
        self._fd: int | None
        self._fd, self._good_size = _open(target, overwrite)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def _encode_unit(self, data: bytes) -> bytes:
        """What one flush writes for the buffered ``data``."""
        return data

    def _after_failure(self) -> None:
        """Called when a write failed and was cut back."""

    def flush(self) -> None:
        if not self._buffer or self._fd is None:
            return
        data = self._encode_unit(bytes(self._buffer))
        self._buffer = bytearray()
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            if self.target != "-":
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._good_size)
            self._after_failure()
            raise OutputError(f"cannot write to {self.target}: {exc.strerror or exc}") from None
        self._good_size += len(data)

    def _truncate_to(self, end: int) -> int:
        """Cut the file at ``end``; return how many bytes went."""
        assert self._fd is not None
        removed = self._good_size - end
        if removed:
            os.ftruncate(self._fd, end)
            self._good_size = end
        return removed

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._fd is not None and self.target != "-":
                os.close(self._fd)
            self._fd = None


class JsonLinesSink(FileSink):
    """JSON Lines appended (or, with ``overwrite``, truncating first) to ``target``;
    ``-`` is stdout. A unit is a run of whole lines."""

    wants_lines = True

    async def write(self, lines: bytes, items: list[Any]) -> None:
        if items:
            encoded, failures = encode_items(items)
            if failures:
                raise OutputError(failures[0])
            lines += encoded
        self._buffer += lines

    def repair(self) -> int:
        """Cut a partial last line (left by a crash mid-write) off the file; return how
        many bytes went. Its request was never acknowledged, so it is crawled again."""
        if self._fd is None or self.target == "-" or self._good_size == 0:
            return 0
        tail_start = max(0, self._good_size - 65536)
        tail = os.pread(self._fd, self._good_size - tail_start, tail_start)
        if tail.endswith(b"\n"):
            return 0
        cut = tail.rfind(b"\n") + 1 + tail_start if b"\n" in tail else self._whole_lines_end()
        return self._truncate_to(cut)

    def _whole_lines_end(self) -> int:
        """Where the last whole line ends, for a partial line longer than 64 KiB."""
        assert self._fd is not None
        end, position = 0, 0
        while chunk := os.pread(self._fd, 1 << 20, position):
            if (newline := chunk.rfind(b"\n")) >= 0:
                end = position + newline + 1
            position += len(chunk)
        return end


def _open(target: str, overwrite: bool) -> tuple[int | None, int]:
    if target == "-":
        return sys.stdout.fileno(), 0
    flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_APPEND)  # read: for repair()
    try:
        fd = os.open(target, flags, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot open output {target}: {exc.strerror or exc}") from None
    return fd, os.fstat(fd).st_size


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class _NoFile:
    """The file-keeping part of a sink that has no file."""

    buffered = 0

    def repair(self) -> int:
        return 0

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class StreamSink(_NoFile):
    """Hands items to ``crawler.crawl()``'s async iterator through a bounded queue,
    so a slow consumer slows the crawl instead of growing memory."""

    wants_lines = False

    def __init__(self, maxsize: int = 1024) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)

    async def write(self, lines: bytes, items: list[Any]) -> None:
        for item in items:
            await self.queue.put(item)


class NullSink(_NoFile):
    """Discards items (a crawl run for its side effects or its stats)."""

    wants_lines = True

    async def write(self, lines: bytes, items: list[Any]) -> None:
        pass
