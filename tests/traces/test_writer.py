"""TraceWriter: round trips, commit ordering, reopening, leftovers, redaction on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import trio
import zarr
from tracekit import CHUNK, all_bytes, trade, write_mixed

from runtime._errors import ConfigError, TraceError
from traces._codec import decode, encode
from traces._reader import read_trace, tail_records
from traces._schema import SCHEMA_VERSION, Kind, Recorder, TypedPayload
from traces._wal import list_segments
from traces._writer import TraceWriter


def _attrs(path: Path) -> dict[str, Any]:
    attrs: dict[str, Any] = json.loads((path / "zarr.json").read_bytes())["attributes"]
    return attrs


def _check_frame(path: Path, expected: list[tuple[int, int, str | None]]) -> None:
    df = read_trace(path)
    assert df["seq"].tolist() == [s for s, _, _ in expected]
    assert df["ts_ns"].tolist() == [t for _, t, _ in expected]
    assert [None if isinstance(a, float) else a for a in df["asset"].tolist()] == [
        a for _, _, a in expected
    ]
    # Every payload is the trade for its timestamp (write_mixed uses ts = payload index).
    assert df["payload"].tolist() == [trade(t) for _, t, _ in expected]


def test_writer_is_a_recorder(trace_path: Path) -> None:
    with TraceWriter(trace_path) as w:
        recorder: Recorder = w
        assert recorder.record(Kind.RUN_STARTED, {"run_id": "a"}, ts_ns=1) == 0


def test_round_trip_across_chunks_and_wal(trace_path: Path) -> None:
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        expected = write_mixed(w, 300)
        w.flush()
        assert w.committed == 300 // CHUNK * CHUNK
        assert w.next_seq == 300
    assert [s for s, _, _ in expected] == list(range(300))
    attrs = _attrs(trace_path)
    assert attrs["schema_version"] == SCHEMA_VERSION
    assert attrs["committed"] == 256
    assert attrs["symbols"] == ["ETH/USDT", "BTC/USDT"]
    _check_frame(trace_path, expected)


def test_record_many_returns_its_seqs_and_accepts_per_row_assets(trace_path: Path) -> None:
    with TraceWriter(trace_path, chunk_rows=CHUNK, symbols=["SOL/USDT"]) as w:
        first = w.record(Kind.TICKER, {"x": 0}, ts_ns=0)
        seqs = w.record_many(
            Kind.TICKER,
            [{"x": i} for i in range(1, 151)],
            np.arange(1, 151),
            asset=["A/B", None, "SOL/USDT"] * 50,
            ts_exchange_ns=np.arange(151, 301),
        )
        assert first == 0
        assert seqs == range(1, 151)
        assert w.symbols == ("SOL/USDT", "A/B")
    df = read_trace(trace_path)
    assert df["ts_exchange_ns"].tolist() == [-1, *range(151, 301)]
    assert df["asset"].iloc[1:4].tolist()[0::2] == ["A/B", "SOL/USDT"]
    assert df["asset"].isna().sum() == 51


def test_committed_advances_only_after_chunks_are_on_disk(
    trace_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int]] = []
    original = TraceWriter._commit_metadata

    def checked(self: TraceWriter, shapes: dict[str, int], attrs: dict[str, Any]) -> None:
        on_disk = _attrs(self.path)["committed"]
        # Every chunk file of the rows about to be committed already exists...
        for name in (
            "seq",
            "ts_ns",
            "ts_exchange_ns",
            "kind",
            "asset",
            "payload_offset",
            "payload_size",
        ):
            for k in range(attrs["committed"] // CHUNK):
                assert (self.path / name / "c" / str(k)).is_file(), (name, k)
        # ...while the committed attribute still has its old value.
        assert on_disk < attrs["committed"]
        original(self, shapes, attrs)
        seen.append((on_disk, _attrs(self.path)["committed"]))

    monkeypatch.setattr(TraceWriter, "_commit_metadata", checked)
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        write_mixed(w, 5 * CHUNK + 3)
    assert seen
    assert seen[-1][1] == 5 * CHUNK
    assert all(before < after for before, after in seen)


def test_failed_commit_keeps_events_in_wal_and_reports(
    trace_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = threading.Event()

    def broken(self: TraceWriter, name: str, values: np.ndarray, first: int) -> set[Path]:
        written.wait(10)  # fail only once the test has written everything
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TraceWriter, "_write_chunks", broken)
    w = TraceWriter(trace_path, chunk_rows=CHUNK)
    expected = write_mixed(w, 2 * CHUNK + 5)
    written.set()
    with pytest.raises(TraceError, match="No space left"):
        w.flush()
    with pytest.raises(TraceError, match="failed"):
        w.record(Kind.TRADE, {}, ts_ns=0)
    with pytest.raises(TraceError, match="reopen the trace"):
        w.close()
    assert _attrs(trace_path)["committed"] == 0
    _check_frame(trace_path, expected)  # every event is still readable, from the WAL
    monkeypatch.undo()
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w2:  # a new writer commits them
        w2.flush()
        assert w2.committed == 2 * CHUNK
    _check_frame(trace_path, expected)


def test_reopen_continues_seq_and_symbols(trace_path: Path) -> None:
    expected = []
    for round_ in range(4):
        with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
            assert w.next_seq == len(expected)
            expected += write_mixed(w, 37 + 20 * round_, t0=len(expected))
    assert [s for s, _, _ in expected] == list(range(len(expected)))
    _check_frame(trace_path, expected)
    # Symbols first seen in a WAL-only tail survive a reopen with their indices.
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        w.record(Kind.TICKER, {}, ts_ns=1, asset="NEW/ONE")
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        assert w.symbols[-1] == "NEW/ONE"
        w.record(Kind.TICKER, {}, ts_ns=2, asset="NEW/ONE")
    assert read_trace(trace_path)["asset"].tolist()[-2:] == ["NEW/ONE", "NEW/ONE"]


def test_reopen_keeps_the_trace_chunk_size(trace_path: Path) -> None:
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        write_mixed(w, 10)
    with TraceWriter(trace_path, chunk_rows=1000) as w:
        assert w.chunk_rows == CHUNK


def test_wal_segments_are_deleted_once_committed(trace_path: Path) -> None:
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        write_mixed(w, 4 * CHUNK + 10)
        w.flush()
        firsts = [s for s, _ in list_segments(trace_path / "wal")]
        assert firsts == [4 * CHUNK]  # only the segment holding the uncommitted tail


def test_leftover_partials_are_removed_on_open(trace_path: Path) -> None:
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        write_mixed(w, 2 * CHUNK)
    stray = [
        trace_path / "seq" / "c" / "7.partial",
        trace_path / "zarr.abc123.partial",
        trace_path / "payload" / "c" / "3.0f0f.partial",
    ]
    for p in stray:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half a chunk")
    half_made = trace_path.with_name(trace_path.name + ".partial")
    (half_made / "seq").mkdir(parents=True)
    read_trace(trace_path)
    assert all(p.exists() for p in stray)  # readers never delete
    with TraceWriter(trace_path, chunk_rows=CHUNK):
        pass
    assert not any(p.exists() for p in stray)
    assert not half_made.exists()


def test_creation_is_atomic(trace_path: Path) -> None:
    with TraceWriter(trace_path):
        pass
    assert not trace_path.with_name(trace_path.name + ".partial").exists()
    assert (trace_path / "zarr.json").is_file()
    assert (trace_path / "wal").is_dir()


def test_one_writer_per_trace(trace_path: Path) -> None:
    with TraceWriter(trace_path), pytest.raises(TraceError, match="already open for writing"):
        TraceWriter(trace_path)
    TraceWriter(trace_path).close()  # the lock went with the first writer


def test_bad_arguments_are_refused(trace_path: Path) -> None:
    with pytest.raises(ConfigError, match="never, order, always"):
        TraceWriter(trace_path, fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="chunk_rows"):
        TraceWriter(trace_path, chunk_rows=0)
    with TraceWriter(trace_path) as w:
        with pytest.raises(TraceError, match="not a Kind"):
            w.record(999, {}, ts_ns=0)  # type: ignore[arg-type]
        with pytest.raises(TraceError, match="int nanoseconds"):
            w.record(Kind.TRADE, {}, ts_ns=1.5)  # type: ignore[arg-type]
        with pytest.raises(TraceError, match="cannot record"):
            w.record(Kind.TRADE, {"x": object()}, ts_ns=1)
        with pytest.raises(TraceError, match="3 integer"):
            w.record_many(Kind.TRADE, [{}, {}, {}], [1.0, 2.0, 3.0])
        assert w.record(Kind.TRADE, {}, ts_ns=5) == 0  # failures consumed no seq
    with pytest.raises(TraceError, match="closed"):
        w.record(Kind.TRADE, {}, ts_ns=0)


def test_not_a_trace_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.zarr").mkdir()
    (tmp_path / "x.zarr" / "notes.txt").write_text("mine")
    with pytest.raises(TraceError, match=r"no zarr\.json"):
        TraceWriter(tmp_path / "x.zarr")


@pytest.mark.parametrize("policy", ["order", "always"])
def test_fsync_policies_write_the_same_trace(trace_path: Path, policy: Any) -> None:
    with TraceWriter(trace_path, fsync=policy, chunk_rows=CHUNK) as w:
        expected = write_mixed(w, CHUNK + 7)
    _check_frame(trace_path, expected)


def test_durable_record_is_in_the_os_when_it_returns(trace_path: Path) -> None:
    w = TraceWriter(trace_path, chunk_rows=CHUNK)
    try:
        w.record(Kind.TICKER, {"n": 1}, ts_ns=1)  # buffered
        w.record(Kind.ORDER_ACK, {"n": 2}, ts_ns=2, durable=True)
        # Another process (a reader) sees both now, with the writer still open.
        assert [r["payload"] for r in tail_records(trace_path, 5)] == [{"n": 1}, {"n": 2}]
    finally:
        w.close()


def test_buffered_records_reach_the_os_within_the_flush_interval(trace_path: Path) -> None:
    w = TraceWriter(trace_path)
    try:
        w.record(Kind.TICKER, {"n": 1}, ts_ns=1)
        done = threading.Event()
        for _ in range(200):
            if tail_records(trace_path, 1):
                done.set()
                break
            done.wait(0.01)
        assert done.is_set()
    finally:
        w.close()


async def test_usable_from_trio(trace_path: Path) -> None:
    w = TraceWriter(trace_path, chunk_rows=CHUNK)
    seqs = []

    async def produce(base: int) -> None:
        for i in range(100):
            seqs.append(w.record(Kind.TICKER, {"i": base + i}, ts_ns=base + i, durable=i % 10 == 0))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce, 0)
        nursery.start_soon(produce, 1000)
    await w.aflush()
    assert w.committed == 3 * CHUNK
    await w.aclose()
    assert sorted(seqs) == list(range(200))
    assert len(read_trace(trace_path)) == 200


def test_secrets_never_reach_disk(trace_path: Path) -> None:
    secrets = [
        "AKIAXYZSECRET01",
        "sekretvalue0002",
        "deadbeefsig0003",
        "listenkeyval0004",
        "hdrapikey000005",
        "tokenvalue00006",
        "pk-material-007",
    ]
    marker = "visible-marker-42"

    def payload(i: int) -> dict[str, Any]:
        return {
            "apiKey": secrets[0],
            "secret": secrets[1],
            "marker": marker,
            "info": {"signature": secrets[2], "listenKey": secrets[3], "i": i},
            "headers": [{"X-MBX-APIKEY": secrets[4]}],
            "url": f"https://x/api?timestamp={i}&signature={secrets[2]}&recvWindow=5",
            "auth": {"Token": secrets[5], "privateKey": secrets[6]},
        }

    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        for i in range(CHUNK + 10):  # a committed chunk and a WAL tail
            w.record(Kind.ORDER_INTENT, payload(i), ts_ns=i, durable=i % 2 == 0)
        w.record_many(Kind.ORDER_ACK, [payload(i) for i in range(CHUNK)], np.arange(CHUNK))
        w.flush()
        assert w.committed >= CHUNK
    scanned = all_bytes(trace_path)
    assert any(p.parent.name == "c" for p, _ in scanned)
    assert any(p.parent.name == "wal" for p, _ in scanned)
    # The scan sees payload text (so it could see a secret) in both Zarr chunks and the WAL...
    seen_in = {p.parent.name for p, data in scanned if marker.encode() in data}
    assert {"c", "wal"} <= seen_in
    # ...and no secret anywhere.
    for path, data in scanned:
        for s in secrets:
            assert s.encode() not in data, (s, path)
    df = read_trace(trace_path)
    assert df["payload"].iloc[0]["apiKey"] == "***"
    assert "&signature=***&" in df["payload"].iloc[-1]["url"]


def test_batches_scan_every_payload_but_the_runtimes_typed_ones(trace_path: Path) -> None:
    """The secret scan is skipped by construction, never by kind: a plain dict is scanned
    whatever its kind (an order event with the exchange's report under "raw" is one), only a
    `TypedPayload` (built by the runtime from its own typed events) and bars are not."""
    secret = "sekretvalue0002"
    typed = TypedPayload(event="BalanceUpdated", currency="USDT", total=1.0, timestamp=5)
    rows = [
        (Kind.ORDER_ACK, {"event": "OrderCreated", "raw": {"secret": secret}}, 1, "BTC/USDT", -1),
        (Kind.BALANCE, typed, 2, None, -1),
        (Kind.TRADE, {"url": f"https://x/api?signature={secret}&a=1"}, 3, "BTC/USDT", -1),
    ]
    with TraceWriter(trace_path) as w:
        assert list(w.record_rows(rows)) == [0, 1, 2]
        assert w.record(Kind.BALANCE, typed, ts_ns=4) == 3
    for path, data in all_bytes(trace_path):
        assert secret.encode() not in data, path
    payloads = read_trace(trace_path)["payload"].tolist()
    assert payloads[0]["raw"]["secret"] == "***"
    assert payloads[1] == payloads[3] == dict(typed)
    assert payloads[2]["url"] == "https://x/api?signature=***&a=1"


def test_a_raw_payload_is_written_as_is(trace_path: Path) -> None:
    """A `msgspec.Raw` payload (the runtime's own encoding of a typed event) is written byte
    for byte, by `record` and by `record_rows`, and reads back as the mapping it encodes."""
    typed = {"event": "BalanceUpdated", "currency": "USDT", "total": 1.5, "timestamp": 5}
    raw = msgspec.Raw(encode(typed))
    with TraceWriter(trace_path) as w:
        assert w.record(Kind.BALANCE, raw, ts_ns=1) == 0
        assert list(w.record_rows([(Kind.BALANCE, raw, 2, None, -1)])) == [1]
    assert read_trace(trace_path)["payload"].tolist() == [typed, typed]


def test_repr_names_the_state(trace_path: Path) -> None:
    w = TraceWriter(trace_path)
    assert "next_seq=0" in repr(w)
    w.close()
    w.close()  # idempotent
    assert "closed" in repr(w)
    assert os.path.basename(str(w.path)) == "demo.zarr"


def test_unclosed_writer_flushes_its_buffer_at_exit(trace_path: Path) -> None:
    code = (
        "import sys\n"
        "from traces._schema import Kind\n"
        "from traces._writer import TraceWriter\n"
        "w = TraceWriter(sys.argv[1])\n"
        "for i in range(10):\n"
        "    w.record(Kind.TICKER, {'i': i}, ts_ns=i)\n"  # buffered, never closed
    )
    subprocess.run([sys.executable, "-c", code, str(trace_path)], check=True, timeout=60)
    assert [r["payload"]["i"] for r in tail_records(trace_path, 20)] == list(range(10))


def test_trace_is_plain_zarr(trace_path: Path) -> None:
    """Chunks and metadata are written without zarr's write path: zarr itself must read them."""
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        expected = write_mixed(w, 3 * CHUNK + 9)
    group = zarr.open_group(str(trace_path), mode="r")
    committed = group.attrs["committed"]
    assert committed == 3 * CHUNK
    assert group["seq"].shape == (committed,)
    assert group["seq"][:].tolist() == list(range(committed))
    assert group["ts_ns"][:].tolist() == [t for _, t, _ in expected[:committed]]
    symbols = list(group.attrs["symbols"])
    assert [symbols[a] if a >= 0 else None for a in group["asset"][:].tolist()] == [
        a for _, _, a in expected[:committed]
    ]
    blob = group["payload"]
    offsets, sizes = group["payload_offset"][:], group["payload_size"][:]
    for i in (0, CHUNK - 1, CHUNK, committed - 1):
        raw = blob[int(offsets[i]) : int(offsets[i]) + int(sizes[i])].tobytes()
        assert decode(raw) == trade(expected[i][1])
