"""Damage to a trace is reported, never repaired silently (issue 13): a flipped byte or a
zeroed block in the WAL, and a committed count set too low, raise TraceError naming the file and
the seq, for readers and for a writer opening it, which changes nothing. Only a torn last
record is dropped quietly, and a writer cuts only that."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tracekit import trade

from runtime import TraceError
from traces import TraceWriter, iter_events, read_trace, replay_from_trace
from traces._schema import Kind
from traces._wal import list_segments

N = 40


def make(tmp_path: Path) -> tuple[Path, Path]:
    path = tmp_path / "t.zarr"
    with TraceWriter(path, chunk_rows=1024) as w:  # every record stays in the WAL
        for i in range(N):
            w.record(Kind.TRADE, trade(i), ts_ns=i)
    segments = list_segments(path / "wal")
    assert len(segments) == 1
    return path, segments[0][1]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", ["flip", "zeros", "length"])
def test_damage_inside_the_wal_raises_for_readers_and_writers(tmp_path: Path, damage: str) -> None:
    path, segment = make(tmp_path)
    data = bytearray(segment.read_bytes())
    at = len(data) // 3
    if damage == "flip":
        data[at] ^= 0x01
    elif damage == "zeros":
        data[at : at + 256] = bytes(256)
    else:  # a length field: find the frame that starts nearest `at` and grow it
        data[at : at + 4] = (0x7FFF).to_bytes(4, "little")
    segment.write_bytes(bytes(data))
    before = snapshot(path)
    for read in (lambda: read_trace(path), lambda: list(iter_events(path))):
        with pytest.raises(TraceError, match=rf"damaged: .*{segment.name}.*seq \d+ on"):
            read()
    with pytest.raises(TraceError, match="damaged"):
        replay_from_trace(path)
    with pytest.raises(TraceError, match=r"damaged: .*Nothing was changed"):
        TraceWriter(path)
    assert snapshot(path) == before  # the intact records after the damage are still there


def test_a_torn_last_record_is_dropped_quietly_and_cut_only_there(tmp_path: Path) -> None:
    path, segment = make(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[:-5])  # the last write was cut by a crash
    assert len(read_trace(path)) == N - 1
    with TraceWriter(path) as w:  # reopening cuts the torn frame and goes on
        assert w.next_seq == N - 1
        w.record(Kind.TRADE, trade(99), ts_ns=99)
    assert len(read_trace(path)) == N


def test_committed_set_too_low_names_the_missing_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.zarr"
    with TraceWriter(path, chunk_rows=16) as w:  # commits chunks and drops their segments
        for i in range(N):
            w.record(Kind.TRADE, trade(i), ts_ns=i)
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    assert doc["attributes"]["committed"] == 32
    doc["attributes"]["committed"] = 8
    meta.write_text(json.dumps(doc))
    with pytest.raises(TraceError, match=r"committed row count is 8 but its WAL starts at"):
        read_trace(path)


def committed_trace(tmp_path: Path) -> Path:
    path = tmp_path / "c.zarr"
    with TraceWriter(path, chunk_rows=16) as w:  # two whole chunks committed, a WAL tail
        for i in range(N):
            w.record(Kind.TRADE, trade(i), ts_ns=i)
    return path


@pytest.mark.parametrize("column", ["seq", "ts_ns", "kind", "payload_offset", "payload"])
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_chunk_raises_naming_its_file(tmp_path: Path, column: str, damage: str) -> None:
    path = committed_trace(tmp_path)
    chunk = path / column / "c" / "0"
    data = bytearray(chunk.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        del data[len(data) // 2 :]
    chunk.write_bytes(bytes(data))
    with pytest.raises(TraceError, match=rf"damaged: chunk file .*{column}.c.0"):
        read_trace(path)


@pytest.mark.parametrize("meta", ["zarr.json", "seq/zarr.json"])
def test_damaged_metadata_raises_naming_the_file(tmp_path: Path, meta: str) -> None:
    path = committed_trace(tmp_path)
    target = path / meta
    target.write_bytes(target.read_bytes()[:100])
    with pytest.raises(TraceError, match=rf"damaged: metadata file .*{meta} is not valid JSON"):
        read_trace(path)


def test_a_flipped_byte_in_any_wal_record_but_the_last_raises(tmp_path: Path) -> None:
    path, segment = make(tmp_path)
    data = segment.read_bytes()
    frames = []  # (start, end) of each frame: uint32 length, uint32 crc, body
    pos = 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "little")
        frames.append((pos, pos + 8 + length))
        pos += 8 + length
    records = frames[-N:]  # after the symbol frames
    for start, end in records[:-1]:
        for at in (start + 2, (start + end) // 2, end - 1):  # length, body, last byte
            damaged = bytearray(data)
            damaged[at] ^= 0x10
            segment.write_bytes(bytes(damaged))
            with pytest.raises(TraceError, match=rf"{segment.name}.*seq \d+ on"):
                read_trace(path)
    segment.write_bytes(data)
    assert len(read_trace(path)) == N


def test_a_deleted_segment_raises_naming_the_missing_seqs(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    for session in range(3):  # each open starts a new WAL segment
        with TraceWriter(path, chunk_rows=1024) as w:
            for i in range(10):
                w.record(Kind.TRADE, trade(session * 10 + i), ts_ns=i)
    segments = [p for _, p in list_segments(path / "wal")]
    assert [p.name[:20] for p in segments] == [f"{s:020d}" for s in (0, 10, 20)]
    segments[1].unlink()
    with pytest.raises(TraceError, match=r"starts at seq 20.*seqs 10 to 19 are missing"):
        read_trace(path)
    before = snapshot(path)
    with pytest.raises(TraceError, match=r"seqs 10 to 19 are missing.*Nothing was changed"):
        TraceWriter(path)
    assert snapshot(path) == before
    segments[0].unlink()  # now the WAL starts after the committed rows
    with pytest.raises(TraceError, match=r"committed row count is 0 but its WAL starts at"):
        read_trace(path)
