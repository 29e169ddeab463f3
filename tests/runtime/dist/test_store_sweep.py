"""Sweeps on the market-data store (`data="store"`): the same rows as the same bars given as
DataFrames, whole and cut into walk-forward windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runtime import sweep, walk_forward
from runtime.app._cli import main
from runtime.data import MarketStore, StoreData
from runtime.model import generate_bars

MIN = 60_000
STATS = ["total_return", "max_drawdown", "sharpe", "trades", "fees", "end_equity"]


@pytest.fixture
def frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, pd.DataFrame]:
    """1,440 one-minute bars of two markets, in a store under VIGIL_HOME and as DataFrames."""
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    bars = generate_bars(["BTC/USDT", "ETH/USDT"], 1_440, seed=9)
    db = MarketStore()
    for symbol, frame in bars.items():
        times = (frame["timestamp"].astype("int64") // 1_000_000).to_numpy()
        series = db.create("binance", symbol, "1m", start=int(times[0]))
        values = {
            c: frame[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")
        }
        series.append(times, values, int(times[-1]) + MIN)
        series.commit()
    return bars


def test_store_sweep_equals_the_same_bars_as_frames(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    grid = {"fast": [5, 10], "slow": [30]}
    stored = sweep("sma_cross", grid, data="store", client="serial", trace_root=tmp_path / "a")
    given = sweep("sma_cross", grid, data=frames, client="serial", trace_root=tmp_path / "b")
    assert stored["error"].isna().all()
    pd.testing.assert_frame_equal(stored[STATS], given[STATS])


def test_store_windows_equal_frame_windows(frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    windows = walk_forward("2024-01-01", "2024-01-02", train="8h", test="4h")[:2]
    kw = {"markets": ["BTC/USDT"], "windows": windows, "client": "serial"}
    stored = sweep(
        "sma_cross",
        {"fast": [5]},
        data=StoreData(until="2024-01-02"),
        trace_root=tmp_path / "a",
        **kw,
    )
    given = sweep("sma_cross", {"fast": [5]}, data=frames, trace_root=tmp_path / "b", **kw)
    assert stored["error"].isna().all()
    assert list(stored["segment"]) == ["train", "test", "train", "test"]
    # The first train span starts where the store does: no warmup bars before it to add.
    pd.testing.assert_frame_equal(stored[STATS], given[STATS])


def test_a_range_the_store_lacks_is_a_row_with_the_command_that_fills_it(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    rows = sweep(
        "sma_cross",
        {"fast": [5]},
        data=StoreData(since="2023-06-01"),
        client="serial",
        trace_root=tmp_path,
    )
    assert "vigil data download binance" in rows["error"][0]


def test_cli_sweep_on_the_store(frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    argv = [
        "sweep",
        "sma_cross",
        "--param",
        "fast=5,10",
        "--serial",
        "--data",
        "store",
        "--until",
        "2024-01-01T12:00",
        "--trace-root",
        str(tmp_path / "t"),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    rows = pd.read_csv(out)
    assert len(rows) == 2
    assert rows["error"].isna().all()
