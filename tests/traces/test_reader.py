"""Readers: read_trace filters and dtypes, lazy payloads, tails, runs, and read-only safety."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tracekit import CHUNK, snapshot, trade, write_mixed

from runtime._errors import ConfigError, TraceError
from traces import PayloadArray, iter_events, list_runs, read_trace, tail_frame, tail_records
from traces._schema import Kind
from traces._wal import list_segments
from traces._writer import TraceWriter

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z in ns


@pytest.fixture
def sample(trace_path: Path) -> Path:
    """300 events: trades on BTC, tickers on ETH, and a few without asset; some past a chunk."""
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        for i in range(300):
            if i % 10 == 0:
                w.record(Kind.HEALTH, {"i": i}, ts_ns=T0 + i * 1_000_000_000)
            elif i % 2:
                w.record(
                    Kind.TRADE,
                    trade(i),
                    ts_ns=T0 + i * 1_000_000_000,
                    asset="BTC/USDT",
                    ts_exchange_ns=T0 + i,
                )
            else:
                w.record(
                    Kind.TICKER,
                    {"i": i, "bid": float(i)},
                    ts_ns=T0 + i * 1_000_000_000,
                    asset="ETH/USDT",
                )
    return trace_path


def test_columns_and_dtypes(sample: Path) -> None:
    df = read_trace(sample)
    assert list(df.columns) == [
        "seq",
        "time",
        "ts_ns",
        "ts_exchange_ns",
        "kind",
        "asset",
        "payload",
    ]
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert df["seq"].dtype == np.uint64
    assert isinstance(df["kind"].dtype, pd.CategoricalDtype)
    assert isinstance(df["asset"].dtype, pd.CategoricalDtype)
    assert isinstance(df["payload"].array, PayloadArray)
    assert df["time"].iloc[1] == pd.Timestamp("2023-11-14T22:13:21Z")
    assert df["kind"].iloc[:3].tolist() == ["HEALTH", "TRADE", "TICKER"]
    assert df["asset"].iloc[:3].isna().tolist() == [True, False, False]
    assert df["ts_exchange_ns"].iloc[:2].tolist() == [-1, T0 + 1]
    assert df["payload"].iloc[1] == trade(1)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"kinds": Kind.HEALTH}, [i for i in range(300) if i % 10 == 0]),
        ({"kinds": "trade"}, [i for i in range(300) if i % 2]),
        ({"kinds": [int(Kind.TICKER), "HEALTH"]}, [i for i in range(300) if i % 2 == 0]),
        ({"assets": "ETH/USDT"}, [i for i in range(300) if i % 2 == 0 and i % 10]),
        ({"assets": [None]}, [i for i in range(300) if i % 10 == 0]),
        ({"assets": ["NOPE/USDT"]}, []),
        ({"since": T0 + 250_000_000_000}, list(range(250, 300))),
        ({"until": "2023-11-14T22:13:25Z"}, list(range(5))),
        (
            {"since": pd.Timestamp("2023-11-14 22:16:40"), "until": T0 + 205_000_000_000},
            list(range(200, 205)),
        ),
        (
            {"since": T0 + 100_000_000_000, "kinds": "TRADE", "assets": "BTC/USDT"},
            [i for i in range(100, 300) if i % 2],
        ),
    ],
)
def test_filters(sample: Path, kwargs: dict[str, Any], expected: list[int]) -> None:
    df = read_trace(sample, **kwargs)
    assert df["seq"].tolist() == expected
    assert [p["i"] if "i" in p else p["info"]["t"] for p in df["payload"]] == expected


def test_empty_result_keeps_the_schema(sample: Path) -> None:
    df = read_trace(sample, kinds=Kind.LIQUIDATION)
    assert len(df) == 0
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert list(df.columns)[-1] == "payload"


def test_bad_filters_say_what_is_valid(sample: Path) -> None:
    with pytest.raises(ConfigError, match="valid kinds are RUN_STARTED"):
        read_trace(sample, kinds="TRADES")
    with pytest.raises(ConfigError, match="not a timestamp"):
        read_trace(sample, since="yesterday-ish")


def test_payload_column_is_lazy_and_behaves_like_a_column(sample: Path) -> None:
    df = read_trace(sample)
    col = df["payload"]
    trades = df[df["kind"] == "TRADE"]
    assert trades["payload"].iloc[0] == trade(1)
    assert trades.sort_values("seq", ascending=False)["payload"].iloc[0] == trade(299)
    assert col.array.field("bid")[:3].tolist() == [None, None, 2.0]
    both = pd.concat([df.head(2), df.tail(1)])
    assert [p["i"] if "i" in p else p["info"]["t"] for p in both["payload"]] == [0, 1, 299]
    assert col.iloc[2:5:2].tolist() == [{"i": 2, "bid": 2.0}, {"i": 4, "bid": 4.0}]
    assert col.array.raw(0) != b""
    assert "HEALTH" in df.head().to_string()
    assert "{'i': 4, 'bid': 4.0}" in repr(df.head())
    assert "{'i': 4, 'bid': 4.0}" in repr(df.head())
    assert col.map(lambda p: p.get("i", -1)).iloc[:3].tolist() == [0, -1, 2]
    # Reindexing past the end gives missing payloads rather than an error.
    assert col.reindex([0, 10_000]).isna().tolist() == [False, True]


def test_tail_spans_committed_chunks_and_wal(sample: Path) -> None:
    segs = list_segments(sample / "wal")
    assert segs[-1][0] == 256  # rows 256.. are in the WAL only
    full = read_trace(sample)
    for n in (0, 1, 44, 45, 100, 1000):
        tail = tail_records(sample, n)
        assert [r["seq"] for r in tail] == full["seq"].tolist()[max(0, 300 - n) :]
        for r in tail:
            row = full.iloc[r["seq"]]
            assert r["kind"] == row["kind"]
            assert r["ts_ns"] == row["ts_ns"]
            assert r["ts_exchange_ns"] == row["ts_exchange_ns"]
            assert r["asset"] == (None if pd.isna(row["asset"]) else row["asset"])
            assert r["payload"] == row["payload"]


def test_tail_frame_flattens_payloads(sample: Path) -> None:
    df = tail_frame(tail_records(sample, 3))
    assert df["seq"].tolist() == [297, 298, 299]
    assert df["kind"].tolist() == ["TRADE", "TICKER", "TRADE"]
    assert df["info.t"].tolist()[::2] == [297, 299]
    assert df["bid"].tolist()[1] == 298.0
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    clash = tail_frame(
        [
            {
                "seq": 0,
                "ts_ns": 0,
                "ts_exchange_ns": -1,
                "kind": "ERROR",
                "asset": None,
                "payload": {"seq": "x", "kind": "y"},
            }
        ]
    )
    assert clash["payload.seq"].tolist() == ["x"]
    assert list(tail_frame([]).columns) == [
        "seq",
        "time",
        "kind",
        "asset",
        "ts_ns",
        "ts_exchange_ns",
    ]


def test_runs_and_replay_iteration(trace_path: Path) -> None:
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        w.record(Kind.RUN_STARTED, {"run_id": "a"}, ts_ns=1)
        write_mixed(w, 70, t0=10)
        w.record(Kind.RUN_STOPPED, {"run_id": "a"}, ts_ns=2)
        w.record(Kind.RUN_STARTED, {"run_id": "b"}, ts_ns=3)  # this one crashes
        w.record(Kind.TRADE, {"x": 1}, ts_ns=4, asset="BTC/USDT")
        w.record(Kind.RUN_STARTED, {"run_id": "c"}, ts_ns=5)
        w.record(Kind.TICKER, {"x": 2}, ts_ns=6)
    runs = list_runs(trace_path)
    assert [(r.run_id, r.start_seq, r.end_seq, r.stop_seq, r.crashed) for r in runs] == [
        ("a", 0, 72, 71, False),
        ("b", 72, 74, None, True),
        ("c", 74, 76, None, True),
    ]
    assert runs[0].started_ns == 1
    assert runs[0].stopped_ns == 2
    every = list(iter_events(trace_path, block_rows=16))
    assert [e.seq for e in every] == list(range(76))
    b = list(iter_events(trace_path, run="b"))
    assert [(e.seq, e.kind, e.asset, e.payload) for e in b] == [
        (72, Kind.RUN_STARTED, None, {"run_id": "b"}),
        (73, Kind.TRADE, "BTC/USDT", {"x": 1}),
    ]
    assert [e.seq for e in iter_events(trace_path, run=-1)] == [74, 75]
    a = list(iter_events(trace_path, run=0))
    assert a[0].kind is Kind.RUN_STARTED
    assert a[-1].kind is Kind.RUN_STOPPED
    assert a[5].payload == trade(a[5].ts_ns)
    with pytest.raises(TraceError, match="has no run 'z'; its runs are: a, b, c"):
        list(iter_events(trace_path, run="z"))
    with pytest.raises(TraceError, match=r"has 3 run\(s\), so run=5 does not exist"):
        list(iter_events(trace_path, run=5))


def test_run_ids_of_odd_run_marks(trace_path: Path) -> None:
    # A run mark is read for its run_id alone; one that is no map of str keys reads as before.
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        w.record(Kind.RUN_STARTED, {"run_id": 7, "state": {"big": list(range(100))}}, ts_ns=1)
        w.record(Kind.RUN_STOPPED, ["not", "a", "map"], ts_ns=2)  # type: ignore[arg-type]
        w.record(Kind.RUN_STARTED, {1: "an int key", "run_id": "d"}, ts_ns=3)  # type: ignore[dict-item]
        w.record(Kind.RUN_STOPPED, {"run_id": "d"}, ts_ns=4)
        w.record(Kind.RUN_STARTED, {"no": "run id"}, ts_ns=5)
    runs = list_runs(trace_path)
    assert [(r.run_id, r.start_seq, r.end_seq, r.stop_seq) for r in runs] == [
        ("7", 0, 2, 1),
        ("d", 2, 4, 3),
        ("None", 4, 5, None),
    ]


def test_missing_trace_is_a_trace_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.zarr"
    for read in (read_trace, tail_records, list_runs):
        with pytest.raises(TraceError, match=f"no trace at {missing}"):
            read(missing)  # type: ignore[operator]


def test_unknown_schema_version_is_a_trace_error(sample: Path) -> None:
    meta = json.loads((sample / "zarr.json").read_bytes())
    meta["attributes"]["schema_version"] = 99
    (sample / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(TraceError, match=f"trace {sample} has schema_version 99"):
        read_trace(sample)
    with pytest.raises(TraceError, match="schema_version 99"):
        TraceWriter(sample)


def test_torn_wal_tail_is_skipped_and_nothing_is_modified(sample: Path) -> None:
    last = list_segments(sample / "wal")[-1][1]
    with last.open("ab") as f:
        f.write(b"\x40\x00\x00\x00garbage-from-a-crash")
    (sample / "ts_ns" / "c" / "9.partial").write_bytes(b"leftover")
    before = snapshot(sample)
    assert len(read_trace(sample)) == 300
    assert tail_records(sample, 2)[-1]["seq"] == 299
    assert len(list(iter_events(sample))) == 300
    list_runs(sample)
    assert snapshot(sample) == before
    with TraceWriter(sample) as w:  # a writer truncates the torn tail and carries on
        assert w.record(Kind.TRADE, {}, ts_ns=0) == 300
    assert read_trace(sample)["seq"].tolist() == list(range(301))


def test_reads_beside_a_live_writer_are_consistent(trace_path: Path) -> None:
    errors: list[BaseException] = []
    w = TraceWriter(trace_path, chunk_rows=CHUNK)
    batches, size = 60, 37

    def write() -> None:
        try:
            for b in range(batches):
                i = b * size
                w.record_many(
                    Kind.TICKER,
                    [{"i": i + k} for k in range(size)],
                    np.arange(i, i + size),
                    durable=True,
                )
                time.sleep(0.002)  # let the reader interleave with commits and WAL trimming
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    t = threading.Thread(target=write)
    t.start()
    reads = 0
    last = 0
    try:
        while t.is_alive() or reads < 3:
            df = read_trace(trace_path)
            n = len(df)
            assert n >= last
            assert df["seq"].tolist() == list(range(n))
            assert df["payload"].array.field("i").tolist() == list(range(n))
            tail = tail_records(trace_path, 50)
            if tail:
                end = tail[-1]["seq"]
                assert [r["seq"] for r in tail] == list(range(end - len(tail) + 1, end + 1))
                assert [r["payload"]["i"] for r in tail] == [r["seq"] for r in tail]
            last = n
            reads += 1
    finally:
        t.join()
        w.close()
    assert not errors
    assert reads >= 3
    assert len(read_trace(trace_path)) == batches * size


def test_sparse_filter_reads_matching_rows_only(trace_path: Path) -> None:
    errors_at = {3, 700, 701, 1500, 2047}
    with TraceWriter(trace_path, chunk_rows=CHUNK) as w:
        for i in range(2050):
            if i in errors_at:
                w.record(Kind.ERROR, {"i": i, "why": "x" * (i % 13)}, ts_ns=i, asset="BTC/USDT")
            else:
                w.record(Kind.TICKER, {"i": i}, ts_ns=i, asset="ETH/USDT")
    full = read_trace(trace_path)
    df = read_trace(trace_path, kinds="ERROR")
    assert df["seq"].tolist() == sorted(errors_at)
    assert df["payload"].tolist() == full["payload"].iloc[sorted(errors_at)].tolist()
    assert df["asset"].tolist() == ["BTC/USDT"] * 5
    assert df["ts_ns"].tolist() == sorted(errors_at)
