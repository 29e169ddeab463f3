"""Sim mode: data inputs, alignment, warmup, no look-ahead, determinism and results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from runtime import ConfigError, Sim, start, strategy
from runtime.model._bars import generate_bars
from tests.conftest import HERE, bars

RECORDER = HERE / "lookahead_strategy.py"


def two_markets(n: int = 50) -> dict[str, pd.DataFrame]:
    btc = bars(list(np.linspace(30_000, 31_000, n)))
    eth = bars(list(np.linspace(2_000, 2_100, n)))
    return {"BTC/USDT": btc, "ETH/USDT": eth}


async def test_warmup_and_no_look_ahead() -> None:
    data = two_markets()
    s = strategy(RECORDER, mode=Sim(), data=data, config={"trace": False})
    await start(s)
    closes = data["BTC/USDT"]["close"].to_numpy()
    assert len(s.seen) == 50 - 5 + 1  # first tick once 5 bars are visible
    for i, (ts, visible, last, price) in enumerate(s.seen):
        assert visible == 5 + i
        assert last == closes[visible - 1]  # the newest visible bar, never a later one
        assert price == last
        # The tick comes at the close of that bar.
        assert pd.Timestamp(ts) == data["BTC/USDT"]["timestamp"].iloc[visible - 1].tz_localize(
            None
        ) + pd.Timedelta("1min")


async def test_ohlcv_column_is_a_view() -> None:
    s = strategy(RECORDER, mode=Sim(), data=two_markets(), config={"trace": False})
    ai = s.universe["BTC/USDT"]
    a = ai.ohlcv["close"]
    b = ai.ohlcv["close"]
    assert np.shares_memory(a, b)
    assert ai.ohlcv.sma("close", 5) == pytest.approx(float(np.mean(a[-5:])))
    assert np.isnan(ai.ohlcv.sma("close", 500))


async def test_markets_are_aligned_by_time() -> None:
    data = two_markets()
    # ETH starts 10 bars later and misses a bar in the middle.
    data["ETH/USDT"] = data["ETH/USDT"].iloc[10:].drop(index=30).reset_index(drop=True)
    s = strategy(RECORDER, mode=Sim(), data=data, config={"trace": False})
    await start(s)
    eth = s.universe["ETH/USDT"]
    times = eth.ohlcv.time
    assert pd.Timestamp(times[0]) == pd.Timestamp(
        data["ETH/USDT"]["timestamp"].iloc[0]
    ).tz_localize(None)
    assert len(eth.ohlcv) == len(s.universe["BTC/USDT"].ohlcv) == 40
    # The missing bar is a flat bar at the previous close with no volume.
    vol = eth.ohlcv["volume"]
    assert (vol == 0).sum() == 1


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_data_from_files(tmp_path: Path, fmt: str) -> None:
    data = two_markets()
    paths = {}
    for sym, frame in data.items():
        path = tmp_path / f"{sym.replace('/', '_')}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path)
        paths[sym] = str(path)
    s = strategy(RECORDER, mode=Sim(), data=paths, config={"trace": False})
    await start(s)
    assert len(s.seen) == 46
    assert s.seen[-1][2] == pytest.approx(data["BTC/USDT"]["close"].iloc[-1])


async def test_stop_from_a_tick() -> None:
    s = strategy(RECORDER, mode=Sim(), data=two_markets(), config={"trace": False})
    s.stop_after = 3
    await start(s)
    assert len(s.seen) == 3


async def test_two_runs_give_identical_trades() -> None:
    frames = []
    for _ in range(2):
        s = strategy("sma_cross", mode=Sim(bars=3_000, seed=7), config={"trace": False})
        await start(s)
        frames.append(s.results.trades)
    assert len(frames[0]) > 10
    pd.testing.assert_frame_equal(frames[0], frames[1])


async def test_results_shape() -> None:
    s = strategy("sma_cross", mode=Sim(bars=2_000, seed=3), config={"trace": False})
    await start(s)
    r = s.results
    for key in ("total_return", "max_drawdown", "sharpe", "win_rate", "trades", "fees"):
        assert key in r.stats
    assert r.stats["trades"] == len(r.trades) > 0
    assert r.stats["fees"] == pytest.approx(r.trades["fee"].sum())
    assert isinstance(r.equity, pd.Series)
    assert len(r.equity) == 2_000 - 30 + 1
    assert r.equity.index.is_monotonic_increasing
    # The curve ends at the marked-to-market value of what the strategy holds.
    held = sum(ai.cash * ai.price for ai in s.universe)
    assert r.equity.iloc[-1] == pytest.approx(s.cash + held)
    assert r.stats["start_equity"] == pytest.approx(10_000.0)
    assert r.stats["total_return"] == pytest.approx(r.equity.iloc[-1] / 10_000.0 - 1)
    assert 0 <= r.stats["max_drawdown"] < 1
    assert set(r.trades.columns) >= {"time", "symbol", "side", "amount", "price", "fee"}


async def test_generated_data_is_seeded() -> None:
    a = generate_bars(["BTC/USDT"], 100, seed=1)["BTC/USDT"]
    b = generate_bars(["BTC/USDT"], 100, seed=1)["BTC/USDT"]
    c = generate_bars(["BTC/USDT"], 100, seed=2)["BTC/USDT"]
    pd.testing.assert_frame_equal(a, b)
    assert not a["close"].equals(c["close"])


def test_unknown_strategy_lists_the_bundled_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown strategy 'nope'.*sma_cross"):
        strategy("nope", mode=Sim())


def test_unknown_config_key_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) tracee; valid keys are trace"):
        strategy("sma_cross", mode=Sim(), config={"tracee": False})


def test_a_bad_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"mode must be Sim\(\), Paper\(\) or Live\(\)"):
        strategy("sma_cross", mode="sim")  # type: ignore[arg-type]


async def test_on_tick_exception_is_logged_with_its_bar_and_halts_after_three(
    tmp_path: Path, caplog: Any
) -> None:
    path = tmp_path / "boom.py"
    path.write_text(
        "from runtime import Strategy\n"
        "class Boom(Strategy):\n"
        "    markets = ['BTC/USDT']\n"
        "    async def on_tick(self, ts):\n"
        "        raise RuntimeError('kaboom')\n"
    )
    s = strategy(path, mode=Sim(bars=10), config={"trace": False})
    await start(s)  # DESIGN §9: a strategy error is not a crash
    assert not s.trading  # three in a row (the default limit) halted it
    logged = [r for r in caplog.records if "on_tick at bar" in r.getMessage() and r.exc_info]
    assert logged
    assert "2024-01-01T00:01" in logged[0].getMessage()
    assert "kaboom" in logged[0].getMessage()
