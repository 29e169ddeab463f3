"""Market-data store: reading a year of one-minute bars, and the download's write rate.

Read: 525,600 bars of one market stored by the download path, read back with ``load_ohlcv``
into a DataFrame; baseline, in the same run: the same six columns as raw little-endian files
read with ``np.fromfile`` (the ceiling for getting these bytes into numpy from Python).

Write: the download path without the network. ccxt-shaped pages (lists of
``[time, open, high, low, close, volume]``, 1,000 bars each, made before the clock starts) go
through the downloader's own paging loop (filtering, conversion, appends, commits at its
chunk and time rules) into a fresh store; baseline: ``ndarray.tofile`` of the same columns.

    python bench/data_store.py [--bars N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import trio

from runtime.data import MarketStore, load_ohlcv
from runtime.data._download import _Job
from runtime.data._store import BAR_COLUMNS
from runtime.model import generate_bars

YEAR_1M = 525_600
PAGE = 1_000
MIN = 60_000


class MemoryPages:
    """What the downloader asks of an exchange, answered from pages already in memory."""

    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = rows
        self.t0 = int(rows[0][0])

    def page_limit(self, method: str, symbol: str, default: int = 1000) -> int:
        return PAGE

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int, limit: int, params: dict[str, Any]
    ) -> list[list[float]]:
        i = (since - self.t0) // MIN
        return self.rows[i : i + limit]


def make_rows(n: int) -> list[list[float]]:
    frame = generate_bars(["BTC/USDT"], n, timeframe="1m", seed=1)["BTC/USDT"]
    times = frame["timestamp"].array.asi8 // 1_000_000
    cols = [frame[c].to_numpy() for c in BAR_COLUMNS]
    lists = [c.tolist() for c in cols]
    return [[int(t), *vals] for t, *vals in zip(times.tolist(), *lists, strict=True)]


def write(root: Path, rows: list[list[float]]) -> float:
    db = MarketStore(root)
    since = int(rows[0][0])
    end = int(rows[-1][0]) + MIN
    job = _Job(MemoryPages(rows), db, "binance", None)  # type: ignore[arg-type]

    async def main() -> None:
        with db.writing("binance", "BTC/USDT", "1m"):
            series = db.create("binance", "BTC/USDT", "1m", start=since)
            await job._pages_ohlcv("BTC/USDT", "1m", MIN, since, end, PAGE, series)

    t0 = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bars", type=int, default=YEAR_1M)
    parser.add_argument("--keep", default=None, help="keep the store in this directory")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="vigil-data-bench-"))
    try:
        rows = make_rows(args.bars)
        n = len(rows)
        store = work / "store"
        if store.exists():
            shutil.rmtree(store)
        write_s = write(store, rows)

        raw = work / "raw"
        raw.mkdir(exist_ok=True)
        arr = np.array(rows, dtype=np.float64)
        columns = {"time": arr[:, 0].astype(np.int64)}
        columns.update({c: np.ascontiguousarray(arr[:, k + 1]) for k, c in enumerate(BAR_COLUMNS)})
        t0 = time.perf_counter()
        for name, values in columns.items():
            values.tofile(raw / name)
        tofile_s = time.perf_counter() - t0

        reads, raws = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            df = load_ohlcv("binance", "BTC/USDT", "1m", store=store)
            reads.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            got = {
                name: np.fromfile(raw / name, dtype=np.int64 if name == "time" else np.float64)
                for name in columns
            }
            raws.append(time.perf_counter() - t0)
        assert len(df) == n
        assert len(got["close"]) == n
        np.testing.assert_array_equal(df["close"].to_numpy(), got["close"])
        np.testing.assert_array_equal(df.index.asi8 // 1_000_000, got["time"])
        read_s, raw_s = float(np.median(reads)), float(np.median(raws))
        size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
        print(f"bars: {n:,} one-minute bars; store on disk {size / 1e6:.1f} MB "
              f"(raw {n * 48 / 1e6:.1f} MB)")  # fmt: skip
        print(
            f"read into a DataFrame: {read_s:.3f} s (median of 5) | np.fromfile of the same "
            f"bytes: {raw_s:.4f} s | ratio {read_s / raw_s:.1f}x | target <= 2 s"
        )
        print(
            f"download write path (no network): {n / write_s:,.0f} bars/s ({write_s:.2f} s) | "
            f"ndarray.tofile: {n / tofile_s:,.0f} bars/s | ratio {tofile_s / write_s:.3f}x | "
            "target >= 200,000 bars/s"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
