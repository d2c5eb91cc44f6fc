"""Tests for the output formats chosen by the path's ending: gzip JSON Lines and CSV."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import errno
import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

from crawler import OutputError, UsageError
from crawler.output.formats import CsvSink, GzipJsonLinesSink, open_sink
from crawler.output.sinks import JsonLinesSink


def write(sink: Any, lines: bytes = b"", items: list[Any] | None = None) -> None:
    asyncio.run(sink.write(lines, items or []))


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.reader(file))


def fail_half_way(monkeypatch: pytest.MonkeyPatch, sink: Any, partial: int) -> None:
    """Make ``os.write`` on the sink's fd write ``partial`` bytes, then fail with ENOSPC."""
    real_write = os.write
    calls = {"n": 0}

    def fake_write(fd: int, data: Any) -> int:
        if fd != sink._fd:
            return real_write(fd, data)
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[:partial]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", fake_write)


# -- dispatch --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("items.jsonl", JsonLinesSink),
        ("items.ndjson", JsonLinesSink),
        ("items.txt", JsonLinesSink),
        ("items.jsonl.gz", GzipJsonLinesSink),
        ("items.jl.gz", GzipJsonLinesSink),
        ("items.NDJSON.GZ", GzipJsonLinesSink),
        ("items.csv", CsvSink),
        ("items.CSV", CsvSink),
    ],
)
def test_sink_is_chosen_by_suffix(tmp_path: Path, name: str, kind: type) -> None:
    sink = open_sink(str(tmp_path / name), overwrite=False)
    sink.begin(durable=False)
    try:
        assert type(sink) is kind
    finally:
        sink.close()


@pytest.mark.parametrize("name", ["items.json", "items.JSON", "items.gz", "items.csv.gz", "items.xml"])
def test_a_name_that_promises_another_format_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match=f"cannot write items to .*{name}: "):
        open_sink(str(tmp_path / name), overwrite=True)
    assert not list(tmp_path.iterdir())


def test_dash_is_json_lines_on_stdout() -> None:
    sink = open_sink("-", overwrite=False)
    sink.begin(durable=False)
    assert type(sink) is JsonLinesSink
    assert sink.wants_lines


@pytest.mark.parametrize("name", ["items.jsonl.gz", "items.csv"])
def test_unwritable_path_raises_output_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError) as info:
        open_sink(str(tmp_path / "missing" / name), overwrite=True)
    assert str(info.value).startswith("cannot open output")
    assert "\n" not in str(info.value)


# -- gzip JSON Lines -------------------------------------------------------------------


def gz_lines(path: Path) -> list[Any]:
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def test_gzip_round_trip_over_flushes_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl.gz"
    sink = GzipJsonLinesSink(str(path))
    sink.begin(durable=False)
    assert sink.wants_lines
    write(sink, '{"n": 1, "text": "café ☕"}\n'.encode())
    assert sink.buffered > 0
    sink.flush()
    assert sink.buffered == 0
    sink.flush()  # nothing buffered: no empty member
    write(sink, items=[{"n": 2}, {"n": 3}])
    sink.close()
    assert gz_lines(path) == [{"n": 1, "text": "café ☕"}, {"n": 2}, {"n": 3}]

    sink = GzipJsonLinesSink(str(path))

    sink.begin(durable=False)
    assert sink.repair() == 0
    write(sink, b'{"n": 4}\n')
    sink.close()
    assert [item["n"] for item in gz_lines(path)] == [1, 2, 3, 4]

    sink = GzipJsonLinesSink(str(path), overwrite=True)

    sink.begin(durable=False)
    write(sink, b'{"n": 5}\n')
    sink.close()
    assert gz_lines(path) == [{"n": 5}]


def test_gzip_file_is_valid_after_every_flush(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl.gz"
    sink = GzipJsonLinesSink(str(path))
    sink.begin(durable=True)  # the file is renamed into place at once
    for n in range(5):
        write(sink, f'{{"n": {n}}}\n'.encode())
        sink.flush()
        assert [item["n"] for item in gz_lines(path)] == list(range(n + 1))  # sink still open
    sink.close()


def test_gzip_unencodable_item_raises(tmp_path: Path) -> None:
    sink = GzipJsonLinesSink(str(tmp_path / "items.jsonl.gz"))
    sink.begin(durable=False)
    with pytest.raises(OutputError, match="field 'bad' is of type object"):
        write(sink, items=[{"bad": object()}])
    sink.close()


@pytest.mark.parametrize("tail", [b"garbage", b"\x1f\x8b", "partial"])
def test_gzip_repair_cuts_a_trailing_partial_member(tmp_path: Path, tail: Any) -> None:
    path = tmp_path / "items.jsonl.gz"
    good = gzip.compress(b'{"n": 1}\n') + gzip.compress(b'{"n": 2}\n')
    if tail == "partial":
        tail = gzip.compress(b'{"n": 3}\n' * 100)[:-5]
    path.write_bytes(good + tail)
    sink = GzipJsonLinesSink(str(path))
    sink.begin(durable=False)
    assert sink.repair() == len(tail)
    assert sink.repair() == 0
    write(sink, b'{"n": 4}\n')
    sink.close()
    assert [item["n"] for item in gz_lines(path)] == [1, 2, 4]


def test_gzip_repair_of_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl.gz"
    sink = GzipJsonLinesSink(str(path))
    sink.begin(durable=False)
    for n in range(3):
        write(sink, os.urandom(100_000).hex().encode() + b"\n" + f'{{"n": {n}}}\n'.encode())
        sink.flush()
    sink.close()
    size = path.stat().st_size
    with path.open("ab") as file:
        file.write(gzip.compress(b"x" * 300_000)[:-1])
    damaged = path.stat().st_size
    sink = GzipJsonLinesSink(str(path))
    sink.begin(durable=False)
    assert sink.repair() == damaged - size
    sink.close()
    assert path.stat().st_size == size


def test_gzip_repair_of_a_file_with_no_whole_member(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"n": 1}\n')[:10])
    sink = GzipJsonLinesSink(str(path))
    sink.begin(durable=False)
    assert sink.repair() == 10
    sink.close()
    assert path.read_bytes() == b""


@pytest.mark.parametrize("partial", [0, 5, 20])
def test_gzip_failed_write_is_cut_back_to_whole_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partial: int
) -> None:
    path = tmp_path / "items.jsonl.gz"
    sink = GzipJsonLinesSink(str(path))
    sink.begin(durable=False)
    write(sink, b'{"n": 1}\n')
    sink.flush()
    write(sink, b'{"n": 2}\n' * 50)
    fail_half_way(monkeypatch, sink, partial)
    with pytest.raises(OutputError) as info:
        sink.flush()
    assert str(info.value) == f"cannot write to {path}: {os.strerror(errno.ENOSPC)}"
    monkeypatch.undo()
    sink.close()  # the failed data was kept, and is written now
    assert gz_lines(path) == [{"n": 1}] + [{"n": 2}] * 50


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_gzip_full_device_raises() -> None:
    sink = GzipJsonLinesSink("/dev/full")
    sink.begin(durable=False)
    write(sink, b'{"a": 1}\n')
    with pytest.raises(OutputError, match="No space"):
        sink.close()


# -- CSV -------------------------------------------------------------------------------


@dataclasses.dataclass
class Book:
    title: str
    price: float
    tags: list[str]


def test_csv_header_missing_extra_and_nested_values(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    sink = CsvSink(str(path))
    sink.begin(durable=False)
    assert not sink.wants_lines
    write(sink, items=[{"title": 'Tšai, "quoted"\nline', "price": 3.5, "tags": ["a", "é"]}])
    write(sink, items=[{"price": 1, "extra": 1, "more": 2}, {"title": "x", "tags": {"k": None}, "zz": 0}])
    assert sink.buffered > 0
    sink.close()
    assert sink.dropped_fields == 3
    assert read_csv(path) == [
        ["title", "price", "tags"],
        ['Tšai, "quoted"\nline', "3.5", '["a","é"]'],
        ["", "1", ""],
        ["x", "", '{"k":null}'],
    ]
    assert path.read_bytes().endswith(b"\r\n")


def test_csv_dataclass_items(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    sink = CsvSink(str(path))
    sink.begin(durable=False)
    write(sink, items=[Book("A", 1.0, ["x"]), {"title": "B", "price": 2}])
    sink.close()
    assert read_csv(path) == [["title", "price", "tags"], ["A", "1.0", '["x"]'], ["B", "2", ""]]


def test_csv_rejects_other_items(tmp_path: Path) -> None:
    sink = CsvSink(str(tmp_path / "items.csv"))
    sink.begin(durable=False)
    with pytest.raises(OutputError, match="not a dict or dataclass"):
        write(sink, items=["just a string"])
    sink.close()


def test_csv_append_reuses_the_existing_header(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    sink = CsvSink(str(path))
    sink.begin(durable=False)
    write(sink, items=[{"a": 1, "b": 2}])
    sink.close()
    sink = CsvSink(str(path))
    sink.begin(durable=False)
    assert sink.repair() == 0
    write(sink, items=[{"b": 3, "a": 5}, {"a": 6}])
    sink.close()
    assert read_csv(path) == [["a", "b"], ["1", "2"], ["5", "3"], ["6", ""]]

    sink = CsvSink(str(path), overwrite=True)

    sink.begin(durable=False)
    write(sink, items=[{"c": 1}])
    sink.close()
    assert read_csv(path) == [["c"], ["1"]]


def test_csv_append_with_other_columns_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n")
    sink = CsvSink(str(path))
    sink.begin(durable=False)
    with pytest.raises(OutputError) as info:
        write(sink, items=[{"a": 3, "c": 4}])
    assert str(info.value) == (
        f"cannot append to {path}: its columns are a, b, and these items add c; "
        "write them to another file, or replace it with -O"
    )
    sink.close()
    assert path.read_bytes() == b"a,b\r\n1,2\r\n"


def test_csv_keys_a_later_item_adds_are_counted_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "items.csv"
    sink = CsvSink(str(path))
    sink.begin(durable=False)
    write(sink, items=[{"a": 1}, {"a": 2, "b": 3}, {"b": 4, "c": 5}])
    sink.close()
    assert read_csv(path) == [["a"], ["1"], ["2"], [""]]
    assert sink.dropped_fields == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and "'b' is not in the CSV header (a)" in warnings[0]


def test_csv_nothing_written_leaves_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    sink = CsvSink(str(path))
    sink.begin(durable=False)
    write(sink, items=[])
    sink.close()
    assert path.read_bytes() == b""


@pytest.mark.parametrize(
    "tail", ["", "3,", '3,"multi\r\nli', '3,"multi\r\n', '3,"a ""q"" b', '3,"a ""q"" b\r']
)
def test_csv_repair_cuts_a_partial_row(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "items.csv"
    whole = 'a,b\r\n1,"x\r\n""y"""\r\n'
    path.write_bytes((whole + tail).encode())
    sink = CsvSink(str(path))
    sink.begin(durable=False)
    assert sink.repair() == len(tail.encode())
    write(sink, items=[{"a": 9, "b": 8}])
    sink.close()
    assert read_csv(path) == [["a", "b"], ["1", 'x\r\n"y"'], ["9", "8"]]


def test_csv_repair_across_large_chunks(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    sink = CsvSink(str(path))
    sink.begin(durable=False)
    write(sink, items=[{"text": '"\n' * 40_000}, {"text": "ok"}])
    sink.close()
    size = path.stat().st_size
    with path.open("ab") as file:
        file.write(b'"' + b"partial\n" * 300_000)  # every newline inside the open quote
    damaged = path.stat().st_size
    sink = CsvSink(str(path))
    sink.begin(durable=False)
    assert sink.repair() == damaged - size
    sink.close()
    assert read_csv(path)[-1] == ["ok"]


@pytest.mark.parametrize("partial", [0, 3, 10])
def test_csv_failed_write_is_cut_back_to_whole_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partial: int
) -> None:
    path = tmp_path / "items.csv"
    sink = CsvSink(str(path))
    sink.begin(durable=False)
    write(sink, items=[{"a": 1}])
    sink.flush()
    write(sink, items=[{"a": n} for n in range(10)])
    fail_half_way(monkeypatch, sink, partial)
    with pytest.raises(OutputError, match="No space"):
        sink.flush()
    monkeypatch.undo()
    write(sink, items=[{"a": 2}])
    sink.close()
    assert read_csv(path) == [["a"], ["1"], *[[str(n)] for n in range(10)], ["2"]]


def test_csv_failed_first_write_keeps_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "items.csv"
    sink = CsvSink(str(path))
    sink.begin(durable=True)
    write(sink, items=[{"a": 1}])
    fail_half_way(monkeypatch, sink, 2)
    with pytest.raises(OutputError):
        sink.flush()
    monkeypatch.undo()
    assert not path.exists()  # a durable crawl's file appears with its first whole write
    write(sink, items=[{"a": 2}])
    sink.close()
    assert read_csv(path) == [["a"], ["1"], ["2"]]
