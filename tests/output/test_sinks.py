"""Tests for the item sinks: JSON Lines files (whole lines only) and the stream of ``crawl()``."""

from __future__ import annotations

import asyncio
import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from crawler import OutputError
from crawler.output.sinks import FLUSH_BYTES, JsonLinesSink, NullSink, StreamSink

BEFORE = '{"old": 1}\n'


def write(sink: Any, lines: bytes = b"", items: list[Any] | None = None) -> None:
    asyncio.run(sink.write(lines, items or []))


def existing(tmp_path: Path, content: str = BEFORE) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text(content, encoding="utf-8")
    return path


# -- append and overwrite --------------------------------------------------------------


@pytest.mark.parametrize(
    ("overwrite", "expected"),
    [(False, BEFORE + '{"new": 2}\n'), (True, '{"new": 2}\n')],
)
def test_append_keeps_and_overwrite_truncates(tmp_path: Path, overwrite: bool, expected: str) -> None:
    path = existing(tmp_path)
    sink = JsonLinesSink(str(path), overwrite=overwrite)
    sink.begin(durable=False)
    write(sink, b'{"new": 2}\n')
    sink.close()
    assert path.read_text(encoding="utf-8") == expected


def on_disk(sink: Any) -> bytes:
    """What the sink's file (the temporary one, while it replaces a file) holds."""
    return os.pread(sink._fd, 1 << 20, 0)


def test_overwrite_leaves_the_file_alone_until_the_crawl_began(tmp_path: Path) -> None:
    """A start-up failure (the sink is closed without ``begin``) keeps the old file whole
    and leaves no temporary file behind."""
    path = existing(tmp_path)
    sink = JsonLinesSink(str(path), overwrite=True)
    write(sink, b'{"new": 2}\n')
    sink.close()
    assert path.read_text() == BEFORE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.jsonl"]


def test_overwrite_replaces_the_file_when_closed(tmp_path: Path) -> None:
    path = existing(tmp_path)
    path.chmod(0o640)
    sink = JsonLinesSink(str(path), overwrite=True)
    sink.begin(durable=False)
    write(sink, b'{"new": 2}\n')
    sink.flush()
    assert path.read_text() == BEFORE  # a crash now leaves the old file
    assert on_disk(sink) == b'{"new": 2}\n'
    sink.close()
    assert path.read_text() == '{"new": 2}\n'
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.jsonl"]


def test_a_durable_crawl_replaces_the_file_with_its_first_write(tmp_path: Path) -> None:
    """Acknowledged requests must find their items in the target on resume; before
    the first item is written, the old file is still whole."""
    path = existing(tmp_path)
    sink = JsonLinesSink(str(path), overwrite=True)
    sink.begin(durable=True)
    sink.flush()  # nothing buffered yet
    assert path.read_text() == BEFORE
    write(sink, b'{"new": 2}\n')
    sink.flush()
    asyncio.run(sink.sync())
    assert path.read_text() == '{"new": 2}\n'
    sink.close()


def test_a_durable_crawl_withdrawn_before_its_first_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = existing(tmp_path)
    sink = JsonLinesSink(str(path), overwrite=True)
    sink.begin(durable=True)
    sink.withdraw()  # nothing answered
    sink.close()
    assert path.read_text() == BEFORE
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_new_file_is_created_only_once_the_crawl_began(tmp_path: Path) -> None:
    path = tmp_path / "new.jsonl"
    JsonLinesSink(str(path)).close()
    assert not path.exists() and not list(tmp_path.iterdir())


def test_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "new.jsonl"
    sink = JsonLinesSink(str(path))
    sink.begin(durable=False)
    write(sink, b'{"a": 1}\n')
    sink.close()
    assert path.read_text() == '{"a": 1}\n'


def test_data_is_buffered_until_flush(tmp_path: Path) -> None:
    path = existing(tmp_path, "")
    sink = JsonLinesSink(str(path))
    sink.begin(durable=False)
    write(sink, b'{"a": 1}\n')
    assert path.read_text() == ""
    sink.flush()
    assert path.read_text() == '{"a": 1}\n'
    sink.close()


def test_writes_wait_for_flush_and_report_what_is_buffered(tmp_path: Path) -> None:
    """The engine flushes (past FLUSH_BYTES, and twice a second), then acknowledges the
    requests whose items were written: the sink never writes behind its back."""
    path = existing(tmp_path, "")
    line = b'{"pad": "' + b"x" * 1000 + b'"}\n'
    data = line * (FLUSH_BYTES // len(line) + 1)
    sink = JsonLinesSink(str(path))
    sink.begin(durable=False)
    write(sink, data)
    assert path.read_bytes() == b"" and sink.buffered == len(data) >= FLUSH_BYTES
    sink.flush()
    assert path.read_bytes() == data and sink.buffered == 0
    sink.close()


def test_close_twice_is_harmless(tmp_path: Path) -> None:
    path = existing(tmp_path, "")
    sink = JsonLinesSink(str(path))
    sink.begin(durable=False)
    write(sink, b"{}\n")
    sink.close()
    sink.close()
    assert path.read_text() == "{}\n"


# -- items as objects ------------------------------------------------------------------


def test_items_are_utf8_json_one_per_line(tmp_path: Path) -> None:
    path = existing(tmp_path, "")
    items = [{"title": "café 漢字 🚀", "n": 1}, {"list": [1, 2], "none": None}, {"nested": {"k": "ü"}}]
    sink = JsonLinesSink(str(path))
    sink.begin(durable=False)
    write(sink, b"", items)
    sink.close()
    raw = path.read_bytes()
    assert "café 漢字 🚀".encode() in raw
    assert b"\\u" not in raw
    lines = raw.decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == items
    assert raw.endswith(b"\n")


def test_encoded_lines_come_before_items_of_the_same_write(tmp_path: Path) -> None:
    path = existing(tmp_path, "")
    sink = JsonLinesSink(str(path))
    sink.begin(durable=False)
    write(sink, b'{"from": "worker"}\n', [{"from": "callback"}])
    write(sink, b"", [{"n": 3}, {"n": 4}])
    sink.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [{"from": "worker"}, {"from": "callback"}, {"n": 3}, {"n": 4}]


def test_item_that_cannot_be_encoded_raises_output_error(tmp_path: Path) -> None:
    sink = JsonLinesSink(str(tmp_path / "x.jsonl"))
    sink.begin(durable=False)
    with pytest.raises(OutputError, match="field 'bad' is of type object"):
        write(sink, b"", [{"bad": object()}])
    sink.close()


# -- errors at open ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_target", "reason"),
    [
        (lambda tmp: tmp / "no" / "such" / "dir" / "items.jsonl", "No such file or directory"),
        (lambda tmp: tmp, "Is a directory"),
        (lambda tmp: tmp / "file.txt" / "items.jsonl", "Not a directory"),
    ],
)
def test_unwritable_path_raises_at_construction(tmp_path: Path, make_target: Any, reason: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    target = str(make_target(tmp_path))
    with pytest.raises(OutputError) as info:
        JsonLinesSink(target)
    message = str(info.value)
    assert message == f"cannot open output {target}: {reason}"
    assert "\n" not in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_file_raises_at_construction(tmp_path: Path) -> None:
    path = existing(tmp_path)
    path.chmod(0o444)
    with pytest.raises(OutputError, match="Permission denied"):
        JsonLinesSink(str(path))


# -- errors while writing ---------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_device_raises_on_flush() -> None:
    sink = JsonLinesSink("/dev/full")
    sink.begin(durable=False)
    write(sink, b'{"a": 1}\n')
    with pytest.raises(OutputError) as info:
        sink.flush()
    message = str(info.value)
    assert "No space" in message
    assert message.startswith("cannot write to /dev/full")
    assert "\n" not in message
    with pytest.raises(OutputError, match="No space"):
        sink.close()  # the data was kept: closing tries again, and fails again


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_device_raises_on_close() -> None:
    sink = JsonLinesSink("/dev/full")
    sink.begin(durable=False)
    write(sink, b'{"a": 1}\n')
    with pytest.raises(OutputError, match="No space"):
        sink.close()


def fail_half_way(
    monkeypatch: pytest.MonkeyPatch, fd_of: Any, partial: int, raise_in_same_call: bool
) -> None:
    """Make ``os.write`` on the sink's fd write ``partial`` bytes, then fail with ENOSPC:
    in the same call, or (like a real short write) on the next one."""
    real_write = os.write
    calls = {"n": 0}

    def fake_write(fd: int, data: Any) -> int:
        if fd != fd_of():
            return real_write(fd, data)
        calls["n"] += 1
        if calls["n"] == 1:
            written = real_write(fd, bytes(data[:partial]))
            if not raise_in_same_call:
                return written
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", fake_write)


LINES = ['{"n": 1, "pad": "aaaa"}\n', '{"n": 2, "pad": "bbbb"}\n', '{"n": 3, "pad": "cccc"}\n']


@pytest.mark.parametrize("raise_in_same_call", [True, False])
@pytest.mark.parametrize("partial", [5, len(LINES[0]), len(LINES[0]) + 7, len("".join(LINES)) - 1])
@pytest.mark.parametrize("overwrite", [False, True])
def test_failed_write_is_cut_back_to_whole_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partial: int, raise_in_same_call: bool, overwrite: bool
) -> None:
    path = existing(tmp_path)
    before = "" if overwrite else BEFORE
    sink = JsonLinesSink(str(path), overwrite=overwrite)
    sink.begin(durable=False)
    fail_half_way(monkeypatch, lambda: sink._fd, partial, raise_in_same_call)
    write(sink, "".join(LINES).encode())

    with pytest.raises(OutputError, match="No space left on device"):
        sink.flush()
    monkeypatch.undo()

    content = on_disk(sink).decode()
    whole_line_prefixes = [before + "".join(LINES[:k]) for k in range(len(LINES))]
    assert content in whole_line_prefixes
    sink.close()  # the buffer was kept: nothing is lost once the disk has room again
    assert path.read_text(encoding="utf-8") == before + "".join(LINES)


def test_cut_back_keeps_earlier_successful_flushes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = existing(tmp_path)
    sink = JsonLinesSink(str(path))
    sink.begin(durable=False)
    write(sink, LINES[0].encode())
    sink.flush()
    fail_half_way(monkeypatch, lambda: sink._fd, 10, raise_in_same_call=True)
    write(sink, (LINES[1] + LINES[2]).encode())
    with pytest.raises(OutputError):
        sink.flush()
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == BEFORE + LINES[0]
    sink.close()
    assert path.read_text(encoding="utf-8") == BEFORE + "".join(LINES)


# -- stdout ----------------------------------------------------------------------------


def test_dash_writes_to_stdout_and_leaves_it_open(capfd: pytest.CaptureFixture[str]) -> None:
    sink = JsonLinesSink("-")
    sink.begin(durable=False)
    write(sink, b"", [{"a": "é"}, {"b": 2}])
    sink.close()
    os.write(1, b"still open\n")
    assert capfd.readouterr().out == '{"a":"é"}\n{"b":2}\nstill open\n'


# -- StreamSink ------------------------------------------------------------------------


def test_stream_sink_queue_receives_items_in_order() -> None:
    async def main() -> list[Any]:
        sink = StreamSink()
        await sink.write(b"ignored\n", [{"n": 1}, {"n": 2}])
        await sink.write(b"", [])
        await sink.write(b"", [{"n": 3}])
        sink.flush()
        sink.close()
        return [sink.queue.get_nowait() for _ in range(sink.queue.qsize())]

    assert asyncio.run(main()) == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_stream_sink_is_bounded_so_a_slow_consumer_slows_the_writer() -> None:
    async def main() -> list[Any]:
        sink = StreamSink(maxsize=2)
        writer = asyncio.create_task(sink.write(b"", [1, 2, 3, 4]))
        await asyncio.sleep(0.01)
        assert not writer.done()
        assert sink.queue.full()
        received = []
        while len(received) < 4:
            received.append(await sink.queue.get())
        await writer
        return received

    assert asyncio.run(main()) == [1, 2, 3, 4]


def test_sinks_declare_what_they_take() -> None:
    assert JsonLinesSink.wants_lines is True
    assert StreamSink.wants_lines is False
    assert NullSink.wants_lines is True


@pytest.mark.parametrize(
    ("content", "kept"),
    [
        (b'{"a": 1}\n{"b": 2}\n{"c": 3', b'{"a": 1}\n{"b": 2}\n'),
        (b'{"a": 1}\n', b'{"a": 1}\n'),
        (b'{"partial', b""),
        (b'{"a": 1}\n' + b"x" * 200_000, b'{"a": 1}\n'),  # a partial line longer than 64 KiB
        (b"", b""),
    ],
)
def test_repair_cuts_a_partial_last_line(tmp_path: Path, content: bytes, kept: bytes) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(content)
    sink = JsonLinesSink(str(path))
    sink.begin(durable=False)
    assert sink.repair() == len(content) - len(kept)
    write(sink, b'{"new": true}\n')
    sink.close()
    assert path.read_bytes() == kept + b'{"new": true}\n'
