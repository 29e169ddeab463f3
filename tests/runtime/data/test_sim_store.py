"""Sim from the market-data store (``data="store"``, ``--data store``), downloaded through real
ccxt from the loopback; stored funding charged on perpetual positions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import trio

from runtime import ConfigError, Sim, start, strategy
from runtime.app._cli import main
from runtime.app._report import report_from_trace
from runtime.data import StoreData, download_ohlcv, load_funding, load_ohlcv
from runtime.engine import runtime_of
from runtime.testing.loopback import LoopbackExchange
from traces import read_trace, replay_from_trace

MIN = 60_000
HOLD = str(Path(__file__).with_name("hold_perp_strategy.py"))


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, int]]:
    """A store (under its VIGIL_HOME) with 5,000 one-minute bars of BTC/USDT, ETH/USDT and the
    BTC perpetual with its funding, downloaded from the loopback."""
    home = tmp_path_factory.mktemp("vigil_home")
    with LoopbackExchange(history=6_000) as ex, pytest.MonkeyPatch.context() as mp:
        for name, value in ex.env().items():
            mp.setenv(name, value)
        until = ex.clock.forming_open_ms
        since = until - 5_000 * MIN
        download_ohlcv(
            "binance",
            ["BTC/USDT", "ETH/USDT", "BTC/USDT:USDT"],
            "1m",
            since,
            until,
            store=home / "data",
            funding=True,
        )
    return home, since, until


@pytest.fixture
def home(stored: tuple[Path, int, int], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VIGIL_HOME", str(stored[0]))
    return stored[0]


def usdt(s: Any) -> float:
    return float(runtime_of(s).state.balances["USDT"].total)


def run(s: Any) -> Any:
    trio.run(start, s)
    return s.results


def test_store_gives_the_same_trades_as_the_same_bars_as_dataframes(
    home: Path, stored: tuple[Path, int, int], tmp_path: Path
) -> None:
    _, since, until = stored
    lo, hi = since + 500 * MIN, until - 500 * MIN
    config = {"trace_root": str(tmp_path / "traces")}
    from_store = strategy(
        "sma_cross", mode=Sim(), data=StoreData(since=lo, until=hi), config=config
    )
    frames = {
        sym: load_ohlcv("binance", sym, "1m", since=lo, until=hi)
        for sym in ("BTC/USDT", "ETH/USDT")
    }
    from_frames = strategy("sma_cross", mode=Sim(), data=frames, config={"trace": False})
    a, b = run(from_store), run(from_frames)
    assert len(a.trades) > 10
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_series_equal(a.equity, b.equity)
    assert len(a.equity) == 4_000 - 30 + 1  # from the warmup bar on, none invented


def test_data_store_reads_everything_stored(home: Path, stored: tuple[Path, int, int]) -> None:
    s = strategy("sma_cross", mode=Sim(), data="store", config={"trace": False})
    results = run(s)
    assert len(results.equity) == 5_000 - 30 + 1


def test_missing_market_or_range_names_the_download_command(
    home: Path, stored: tuple[Path, int, int]
) -> None:
    with pytest.raises(ConfigError) as info:
        strategy("sma_cross", mode=Sim(), data="store", config={"markets": ["SOL/USDT"]})
    assert "no 1m bars of SOL/USDT on binance" in str(info.value)
    assert "vigil data download binance SOL/USDT --timeframe 1m --since YYYY-MM-DD" in str(
        info.value
    )
    with pytest.raises(ConfigError) as info:
        strategy("sma_cross", mode=Sim(), data=StoreData(since="2020-01-01", until="2020-03-01"))
    text = str(info.value)
    assert "not the range 2020-01-01 to 2020-03-01 for BTC/USDT (stored " in text
    assert (
        "vigil data download binance BTC/USDT ETH/USDT --timeframe 1m --since 2020-01-01 " in text
    )
    assert "--until 2020-03-01" in text


def test_perpetual_funding_equals_the_hand_computation(
    home: Path, stored: tuple[Path, int, int], tmp_path: Path
) -> None:
    s = strategy(HOLD, mode=Sim(), data="store", config={"trace_root": str(tmp_path)})
    results = run(s)
    trades = results.trades
    bars = load_ohlcv("binance", "BTC/USDT:USDT", "1m")
    rates = load_funding("binance", "BTC/USDT:USDT")
    first_tick = int(bars.index[0].value // 1_000_000) + MIN  # warmup 1: the first bar's close
    fill_ms = np.array([t.value // 1_000_000 for t in trades["time"]])
    signed = np.where(trades["side"] == "buy", 1.0, -1.0) * trades["amount"].to_numpy()
    expected = []
    for t, rate in zip(rates.index, rates["rate"], strict=True):
        t_ms = t.value // 1_000_000
        if t_ms <= first_tick:
            continue  # before the run's first tick: no position yet
        contracts = float(signed[fill_ms < t_ms].sum())  # what was held at the funding time
        close = float(bars.loc[t - pd.Timedelta(minutes=1), "close"])  # the bar ending then
        if contracts:
            expected.append((t_ms, contracts * close * rate))
    assert len(expected) >= 8
    assert any(a < 0 for _, a in expected) or any(c < 0 for c in signed)
    total = sum(a for _, a in expected)
    assert results.stats["funding"] == pytest.approx(total, rel=1e-12, abs=1e-12)
    assert trades["funding"].sum() == pytest.approx(total, rel=1e-12, abs=1e-12)
    events = read_trace(s.trace_path, kinds=["FUNDING"])
    got = [(int(p["timestamp"]), float(p["amount"])) for p in events["payload"]]
    assert [t for t, _ in got] == [t for t, _ in expected]
    np.testing.assert_allclose([a for _, a in got], [a for _, a in expected], rtol=1e-12)
    # The account paid it: the same run on the same bars without funding ends richer by it.
    plain = strategy(HOLD, mode=Sim(), data={"BTC/USDT:USDT": bars}, config={"trace": False})
    run(plain)
    pd.testing.assert_frame_equal(plain.results.trades.drop(columns="funding"),
                                  trades.drop(columns="funding"))  # fmt: skip
    assert usdt(plain) - usdt(s) == pytest.approx(total, rel=1e-9)
    assert "funding" in results.summary()
    # The report of the trace shows the same total.
    assert report_from_trace(s.trace_path).stats["funding"] == pytest.approx(total, rel=1e-12)
    # Replay rebuilds the same state from the trace, funding included.
    replayed = replay_from_trace(s.trace_path)
    assert usdt(replayed) == usdt(s)
    assert runtime_of(replayed).state.funding == runtime_of(s).state.funding


def test_cli_run_with_data_store(
    home: Path, stored: tuple[Path, int, int], tmp_path: Path, capsys: Any
) -> None:
    _, since, _until = stored
    day = pd.Timestamp(since + 60 * MIN, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M")
    args = ["run", "sma_cross", "--data", "store", "--since", day, "--no-trace"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "sma_cross:" in out
    assert "total return" in out
    assert "funding" in out
    assert main(["run", "sma_cross", "--data", "store", "--since", "2019-01-01"]) == 1
    err = capsys.readouterr().err
    assert "vigil data download binance BTC/USDT ETH/USDT --timeframe 1m --since 2019-01-01" in err
