"""Item sinks: JSON Lines files (or stdout) and the in-process stream of ``crawl()``."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import stat
import sys
import tempfile
from typing import Any, Protocol

from .._errors import OutputError
from .itemjson import encode_items

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

    @property
    def size(self) -> int:
        """Bytes of whole items in the output."""
        ...

    def items_after(self, offset: int) -> int:
        """How many items the output holds past ``offset`` (a ``size`` of earlier)."""
        ...

    def begin(self, *, durable: bool) -> None:
        """Start-up succeeded: the crawl is under way (see `FileSink`)."""
        ...

    def flush(self) -> None: ...

    async def sync(self) -> None:
        """Make what was flushed durable before it is acknowledged."""
        ...

    def withdraw(self) -> None:
        """This crawl's output is not worth replacing the old file with: ``close``
        leaves it as it was (see `FileSink`)."""
        ...

    def close(self) -> None: ...


class ClosedPipe(OutputError):
    """``-o -`` into a pipe whose reader went away (``crawl ... -o - | head``): the
    crawl stops and ends quietly, as other Unix tools do."""


class FileSink:
    """A file (or stdout, ``-``) that grows only by whole units: data is buffered and
    written by ``flush`` (which the engine calls); ``_good_size`` is where the last
    whole unit ends, and a write that fails half-way (disk full) is cut back to it
    before ``OutputError`` is raised. The buffer is kept until a write succeeds, so a
    failed flush loses nothing and the next one tries again. Subclasses say what a
    unit is.

    A file that is replaced (``-O``) or created is written as a temporary file in the
    same directory and renamed over the target by ``close`` once the crawl got going
    (``begin``): a start-up failure, a fatal error or a crash leaves the old file (or
    no file) as it was, and so does a crawl whose output was withdrawn (``withdraw``:
    stopped before it wrote an item, or nothing it asked for answered). A durable
    crawl (``begin(durable=True)``) renames with its first write, because the requests
    it acknowledges must find their items in the target on resume; it also ``sync``s
    the file before acknowledging anything."""

    def __init__(self, target: str, *, overwrite: bool = False) -> None:
        self.target = target
        self._buffer = bytearray()
        self._fd: int | None
        self._fd, self._good_size, self._temporary = _open(target, overwrite)
        self._begun = self._publish_when_written = False
        self._flushes = self._synced = 0
        self._sync_lock = asyncio.Lock()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def size(self) -> int:
        return self._good_size

    def items_after(self, offset: int) -> int:
        if self._fd is None or self.target == "-" or not 0 <= offset <= self._good_size:
            return 0
        return self._count_items(offset)

    def _count_items(self, offset: int) -> int:
        """Items from ``offset`` to the end; JSON Lines: one newline per item."""
        assert self._fd is not None
        count, position = 0, offset
        while position < self._good_size and (chunk := os.pread(self._fd, 1 << 20, position)):
            count += chunk.count(b"\n")
            position += len(chunk)
        return count

    def _encode_unit(self, data: bytes) -> bytes:
        """What one flush writes for the buffered ``data``."""
        return data

    def begin(self, *, durable: bool) -> None:
        if not self._begun:
            self._begun = True
            self._publish_when_written = durable

    def flush(self) -> None:
        if not self._buffer or self._fd is None:
            return
        data = self._encode_unit(bytes(self._buffer))
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            if self.target != "-":
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._good_size)
            elif exc.errno == errno.EPIPE:
                raise ClosedPipe("stdout was closed by its reader") from None
            raise OutputError(f"cannot write to {self.target}: {exc.strerror or exc}") from None
        self._buffer = bytearray()
        self._good_size += len(data)
        self._flushes += 1
        if self._publish_when_written and self._begun:  # before its items are acknowledged
            self._publish()

    async def sync(self) -> None:
        """Make what was flushed durable (fdatasync, in a thread: it can take a while on
        a disk); syncs that ask while one runs share the next one."""
        wanted = self._flushes
        async with self._sync_lock:
            if self._synced >= wanted or self._fd is None or self.target == "-":
                return
            flushed = self._flushes
            try:
                await asyncio.to_thread(os.fdatasync, self._fd)
            except OSError as exc:
                raise OutputError(f"cannot write to {self.target}: {exc.strerror or exc}") from None
            self._synced = flushed

    def _truncate_to(self, end: int) -> int:
        """Cut the file at ``end``; return how many bytes went."""
        assert self._fd is not None
        removed = self._good_size - end
        if removed:
            os.ftruncate(self._fd, end)
            self._good_size = end
        return removed

    def _publish(self) -> None:
        """Rename the temporary file over the target (the file is complete up to here)."""
        if self._temporary is None or self._fd is None:
            return
        try:
            os.fsync(self._fd)
            os.replace(self._temporary, self.target)
        except OSError as exc:
            raise OutputError(f"cannot replace {self.target}: {exc.strerror or exc}") from None
        self._temporary = None

    def withdraw(self) -> None:
        self._begun = False  # a file published already (a durable crawl's) stays

    def close(self) -> None:
        """Flush; publish the file if the crawl began and its output was not withdrawn;
        the old file stays otherwise, or if the last write failed."""
        try:
            self.flush()
            if self._begun:
                self._publish()
        finally:
            if self._fd is not None and self.target != "-":
                os.close(self._fd)
            self._fd = None
            if self._temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._temporary)
                self._temporary = None


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


def _open(target: str, overwrite: bool) -> tuple[int | None, int, str | None]:
    """The file descriptor, its size, and the temporary file's path if the target is
    replaced or created (see `FileSink`)."""
    if target == "-":
        return sys.stdout.fileno(), 0, None
    try:
        if _replaceable(target, overwrite):
            return _open_temporary(target)
        flags = os.O_RDWR | os.O_CREAT | (0 if overwrite else os.O_APPEND)  # read: for repair()
        fd = os.open(target, flags, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot open output {target}: {exc.strerror or exc}") from None
    return fd, os.fstat(fd).st_size, None


def _replaceable(target: str, overwrite: bool) -> bool:
    """Whether to write a temporary file and rename it: for a new file, or a regular
    file being replaced (a device such as /dev/null, or a pipe, is written in place)."""
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return True
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    if not os.access(target, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    return overwrite and stat.S_ISREG(mode)


def _open_temporary(target: str) -> tuple[int, int, str]:
    """``.NAME.XXXXXXXX.part`` beside the real file (so the rename stays on one file
    system), with the mode the target has, or would get."""
    real = os.path.realpath(target)
    directory, name = os.path.split(real)
    fd, path = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    try:
        os.fchmod(fd, _mode_of(real))
        # Appending: after a failed write is cut back, the next one starts at the cut.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
    except OSError:
        os.close(fd)
        os.unlink(path)
        raise
    return fd, 0, path


def _mode_of(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class _NoFile:
    """The file-keeping part of a sink that has no file."""

    buffered = 0
    size = 0

    def repair(self) -> int:
        return 0

    def items_after(self, offset: int) -> int:
        return 0

    def begin(self, *, durable: bool) -> None:
        pass

    def flush(self) -> None:
        pass

    async def sync(self) -> None:
        pass

    def withdraw(self) -> None:
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
