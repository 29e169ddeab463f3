"""The write-ahead log: frames, torn tails, and segment continuity."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from traces._codec import decode, encode
from traces._schema import Kind
from traces._wal import (
    FRAME,
    WalWriter,
    batch_frame,
    event_frame,
    list_segments,
    scan_wal,
    segment_name,
    symbol_frame,
)
from traces._writer import TraceWriter


def _events(first: int, n: int) -> bytes:
    return b"".join(
        event_frame(s, 1000 + s, -1 if s % 2 else 5 + s, 20, s % 3 - 1, encode({"s": s}))
        for s in range(first, first + n)
    )


def _batch(first: int, n: int) -> bytes:
    parts = [encode({"s": s}) for s in range(first, first + n)]
    return batch_frame(
        first,
        np.arange(1000 + first, 1000 + first + n, dtype=np.int64),
        np.full(n, -1, np.int64),
        np.full(n, 42, np.uint16),
        np.zeros(n, np.int32),
        np.array([len(p) for p in parts], np.uint32),
        b"".join(parts),
    )


def _seqs(wal_dir: Path, from_seq: int = 0) -> list[int]:
    recs = scan_wal(wal_dir, from_seq).records
    decoded = recs.payloads.decode_all()
    seqs = list(range(recs.seq0, recs.seq0 + len(recs)))
    assert [d["s"] for d in decoded] == seqs  # payloads line up with their seq
    assert recs.ts_ns.tolist() == [1000 + s for s in seqs]
    return seqs


def test_events_batches_and_symbols_round_trip(tmp_path: Path) -> None:
    data = (
        symbol_frame(0, "BTC/USDT")
        + _events(0, 5)
        + _batch(5, 7)
        + symbol_frame(1, "ETH/USDT")
        + _events(12, 3)
    )
    (tmp_path / segment_name(0)).write_bytes(data)
    scan = scan_wal(tmp_path, 0)
    assert scan.symbols == [(0, "BTC/USDT"), (1, "ETH/USDT")]
    assert _seqs(tmp_path) == list(range(15))
    recs = scan.records
    assert recs.kind.tolist() == [20] * 5 + [42] * 7 + [20] * 3
    assert recs.asset[:5].tolist() == [-1, 0, 1, -1, 0]
    assert recs.ts_exchange_ns[:2].tolist() == [5, -1]
    assert scan.segments[0].valid_bytes == len(data)


def test_from_seq_skips_committed_rows_inside_frames(tmp_path: Path) -> None:
    (tmp_path / segment_name(0)).write_bytes(_events(0, 4) + _batch(4, 10) + _events(14, 2))
    assert _seqs(tmp_path, 7) == list(range(7, 16))
    assert _seqs(tmp_path, 16) == []


def test_every_torn_tail_is_dropped_cleanly(tmp_path: Path) -> None:
    whole = _events(0, 3) + _batch(3, 4)
    last_start = len(_events(0, 3))
    for cut in range(last_start, len(whole)):
        (tmp_path / segment_name(0)).write_bytes(whole[:cut])
        scan = scan_wal(tmp_path, 0)
        assert _seqs(tmp_path) == [0, 1, 2], cut
        assert scan.segments[0].valid_bytes == last_start


def test_every_cut_of_a_writers_segment_is_torn_not_damage(tmp_path: Path) -> None:
    # A SIGKILL mid-write leaves a prefix of the writer's last frames. Its batches hold runs of
    # 0xff bytes (rows with no exchange time), and over one to four bytes a CRC32 is a simple
    # function of them (crc32(b"\xff") == 0xff000000): a check by CRC alone "found" whole
    # frames inside such a torn batch (a last time of 256-511 ns reads as length 1, CRC
    # 0xff000000, body 0xff) and reported the crash as damage (test_crash_writer, once).
    rng = random.Random(7)
    w = TraceWriter(tmp_path / "t", chunk_rows=100_000)
    k = 0
    for _ in range(24):
        if rng.random() < 0.5:
            asset = "BTC/USDT" if k % 2 else None
            w.record(Kind.TRADE, {"k": k}, ts_ns=256 + k, asset=asset, durable=rng.random() < 0.5)
            k += 1
        else:
            n = rng.randint(1, 12)
            rows = [{"k": k + j} for j in range(n)]
            w.record_many(
                Kind.TICKER, rows, np.arange(256 + k, 256 + k + n), durable=rng.random() < 0.5
            )
            k += n
    w.flush()
    (_, segment), *_ = list_segments(tmp_path / "t" / "wal")
    data = segment.read_bytes()
    w.close()
    frames, pos = [], 0
    while pos < len(data):
        frames.append(pos)
        pos += FRAME.size + FRAME.unpack_from(data, pos)[0]
    assert pos == len(data)
    assert len(frames) > 8
    cut_dir = tmp_path / "cut"
    cut_dir.mkdir()
    for begin, end in zip(frames, [*frames[1:], len(data)], strict=True):
        for cut in range(begin + 1, end):
            (cut_dir / segment_name(0)).write_bytes(data[:cut])
            scan = scan_wal(cut_dir, 0)
            assert scan.damage is None, (begin, cut)
            assert scan.segments[0].valid_bytes == begin, (begin, cut)


def test_a_corrupt_byte_with_records_after_it_is_damage(tmp_path: Path) -> None:
    data = bytearray(_events(0, 6))
    frame_len = len(_events(0, 1))
    data[frame_len * 3 + FRAME.size + 5] ^= 0xFF  # inside frame 3's body: CRC fails
    (tmp_path / segment_name(0)).write_bytes(bytes(data))
    scan = scan_wal(tmp_path, 0)
    assert _seqs(tmp_path) == [0, 1, 2]
    assert scan.damage is not None
    assert segment_name(0) in scan.damage
    assert "seq 3 on cannot be read" in scan.damage


def test_a_corrupt_last_frame_is_a_torn_write(tmp_path: Path) -> None:
    data = bytearray(_events(0, 3))
    data[-2] ^= 0xFF  # the last frame fails its CRC and ends the file
    (tmp_path / segment_name(0)).write_bytes(bytes(data))
    assert _seqs(tmp_path) == [0, 1]
    assert scan_wal(tmp_path, 0).damage is None


def test_zero_filled_tail_is_not_a_record(tmp_path: Path) -> None:
    (tmp_path / segment_name(0)).write_bytes(_events(0, 2) + b"\0" * 64)
    assert _seqs(tmp_path) == [0, 1]
    assert scan_wal(tmp_path, 0).damage is None
    # Zeros with records after them are a zeroed block, not a torn write.
    (tmp_path / segment_name(0)).write_bytes(_events(0, 2) + b"\0" * 64 + _events(2, 2))
    assert scan_wal(tmp_path, 0).damage is not None


def test_seq_must_continue_inside_a_segment(tmp_path: Path) -> None:
    (tmp_path / segment_name(0)).write_bytes(_events(0, 2) + _events(3, 2) + _batch(5, 2))
    assert _seqs(tmp_path) == [0, 1]
    scan = scan_wal(tmp_path, 0)
    assert scan.segments[0].valid_bytes == len(_events(0, 2))
    assert scan.damage is not None
    (tmp_path / segment_name(0)).write_bytes(_events(0, 2) + _batch(3, 2))
    assert _seqs(tmp_path) == [0, 1]
    assert scan_wal(tmp_path, 0).segments[0].valid_bytes == len(_events(0, 2))


def test_segments_chain_by_name(tmp_path: Path) -> None:
    (tmp_path / segment_name(0)).write_bytes(_events(0, 4))
    (tmp_path / segment_name(4)).write_bytes(_batch(4, 4) + b"\x07torn")  # the last: torn
    (tmp_path / "unrelated.txt").write_bytes(b"x")
    assert [s for s, _ in list_segments(tmp_path)] == [0, 4]
    scan = scan_wal(tmp_path, 0)
    assert _seqs(tmp_path) == list(range(8))
    assert scan.damage is None
    assert scan.segments[1].valid_bytes < scan.segments[1].size  # the torn tail was seen


def test_a_missing_segment_or_a_torn_tail_before_the_last_is_damage(tmp_path: Path) -> None:
    (tmp_path / segment_name(0)).write_bytes(_events(0, 4))
    (tmp_path / segment_name(4)).write_bytes(_batch(4, 4))
    (tmp_path / segment_name(9)).write_bytes(_events(9, 2))  # seq 8 is missing
    scan = scan_wal(tmp_path, 0)
    assert _seqs(tmp_path) == list(range(8))
    assert [p.name for p in scan.unreadable] == [segment_name(9)]
    assert scan.damage is not None
    assert "seqs 8 to 8 are missing" in scan.damage
    (tmp_path / segment_name(9)).unlink()
    (tmp_path / segment_name(0)).write_bytes(_events(0, 4) + b"\x07torn")  # not the last
    assert scan_wal(tmp_path, 0).damage is not None


def test_start_segment_is_the_newest_at_or_before_from_seq(tmp_path: Path) -> None:
    (tmp_path / segment_name(0)).write_bytes(_events(0, 4))
    (tmp_path / segment_name(4)).write_bytes(_events(4, 4))
    scan = scan_wal(tmp_path, 5)
    assert [p.name for p in scan.below] == [segment_name(0)]
    assert _seqs(tmp_path, 5) == [5, 6, 7]


def test_gap_before_oldest_segment_is_reported(tmp_path: Path) -> None:
    (tmp_path / segment_name(10)).write_bytes(_events(10, 2))
    scan = scan_wal(tmp_path, 4)
    assert scan.gap_before
    assert len(scan.records) == 0


def test_missing_wal_dir_reads_as_empty(tmp_path: Path) -> None:
    scan = scan_wal(tmp_path / "nope", 3)
    assert len(scan.records) == 0
    assert not scan.gap_before


@pytest.mark.parametrize("policy", ["never", "order", "always"])
def test_wal_writer_writes_what_scan_reads(tmp_path: Path, policy: str) -> None:
    w = WalWriter(tmp_path, policy)  # type: ignore[arg-type]
    w.open_segment(0, ["BTC/USDT"])
    w.write(_events(0, 3))
    w.sync()
    w.open_segment(3, ["BTC/USDT", "ETH/USDT"])
    w.write(_batch(3, 2))
    w.close()
    scan = scan_wal(tmp_path, 0)
    assert _seqs(tmp_path) == [0, 1, 2, 3, 4]
    assert scan.symbols == [(0, "BTC/USDT"), (0, "BTC/USDT"), (1, "ETH/USDT")]
    assert decode(scan.records.payloads.raw(4)) == {"s": 4}
