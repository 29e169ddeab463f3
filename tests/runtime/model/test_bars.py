"""Bars: the seeded generator, the validating loader, and alignment across markets."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime._errors import ConfigError
from runtime.model._bars import OHLCV, TIMEFRAMES, Bars, generate_bars, load_bars, timeframe_ns

SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
MINUTE = 60_000_000_000


def _log_returns(frame: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(frame["close"].to_numpy()))


def _autocorr(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    return float((x[:-lag] * x[lag:]).mean() / x.var())


def _frame(
    times: list[str] | pd.DatetimeIndex, closes: list[float], **extra: object
) -> pd.DataFrame:
    closes_a = np.asarray(closes, dtype=float)
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(times, utc=True),
            "open": closes_a,
            "high": closes_a * 1.1,
            "low": closes_a * 0.9,
            "close": closes_a,
            "volume": np.full(len(closes_a), 2.0),
            **extra,
        }
    )


def _minutes(start: str, n: int) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="1min", tz="UTC").as_unit("ns")


# --- timeframes -------------------------------------------------------------------------------


def test_timeframe_ns_knows_every_supported_timeframe() -> None:
    assert timeframe_ns("1s") == 1_000_000_000
    assert timeframe_ns("1m") == MINUTE
    assert timeframe_ns("15m") == 15 * MINUTE
    assert timeframe_ns("4h") == 240 * MINUTE
    assert timeframe_ns("1d") == 1440 * MINUTE
    assert timeframe_ns("1w") == 7 * 1440 * MINUTE
    assert list(TIMEFRAMES) == [
        "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "1w",
    ]  # fmt: skip


@pytest.mark.parametrize("bad", ["1M", "2m", "60", "", "1 m"])
def test_timeframe_ns_rejects_others_listing_the_valid_ones(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"not supported; valid: 1s, 1m, 3m, .*, 1d, 1w"):
        timeframe_ns(bad)


# --- generation -------------------------------------------------------------------------------


def test_generated_bars_have_the_documented_shape() -> None:
    bars = generate_bars(["BTC/USDT", "ETH/USDT"], 500, timeframe="5m", start="2024-03-01")
    assert list(bars) == ["BTC/USDT", "ETH/USDT"]
    frame = bars["BTC/USDT"]
    assert list(frame.columns) == ["timestamp", *OHLCV]
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert all(frame[c].dtype == np.float64 for c in OHLCV)
    assert len(frame) == 500
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-03-01", tz="UTC")
    assert (frame["timestamp"].diff().iloc[1:] == pd.Timedelta(minutes=5)).all()
    assert (frame["volume"] > 0).all()


def test_generation_is_deterministic_for_a_seed() -> None:
    a = generate_bars(["BTC/USDT", "SOL/USDT"], 2_000, seed=7)
    b = generate_bars(["BTC/USDT", "SOL/USDT"], 2_000, seed=7)
    c = generate_bars(["BTC/USDT", "SOL/USDT"], 2_000, seed=8)
    for symbol in a:
        pd.testing.assert_frame_equal(a[symbol], b[symbol])
        assert not np.array_equal(a[symbol]["close"], c[symbol]["close"])


def test_a_market_does_not_depend_on_its_companions() -> None:
    alone = generate_bars(["ETH/USDT"], 1_000, seed=3)["ETH/USDT"]
    together = generate_bars(["BTC/USDT", "ETH/USDT", "DOGE/USDT"], 1_000, seed=3)["ETH/USDT"]
    pd.testing.assert_frame_equal(alone, together)


def test_a_perpetual_follows_its_spot_market() -> None:
    bars = generate_bars(["BTC/USDT", "BTC/USDT:USDT"], 1_000, seed=1)
    pd.testing.assert_frame_equal(bars["BTC/USDT"], bars["BTC/USDT:USDT"])


def test_start_prices_default_per_base_and_can_be_overridden() -> None:
    bars = generate_bars(
        ["BTC/USDT", "ETH/USDT", "SOL/USDT:USDT", "ETH/BTC", "ZZZ/USDT"],
        2,
        start_prices={"ZZZ/USDT": 7.5},
    )
    first = {s: f["open"].iloc[0] for s, f in bars.items()}
    assert first["BTC/USDT"] == pytest.approx(60_000, rel=0.01)
    assert first["ETH/USDT"] == pytest.approx(3_000, rel=0.01)
    assert first["SOL/USDT:USDT"] == pytest.approx(150, rel=0.01)
    assert first["ETH/BTC"] == pytest.approx(0.05, rel=0.01)
    assert first["ZZZ/USDT"] == pytest.approx(7.5, rel=0.01)


@pytest.mark.parametrize("timeframe", ["1s", "1m", "1h", "1d"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_generated_bar_is_consistent(timeframe: str, seed: int) -> None:
    symbols = ["BTC/USDT", "DOGE/USDT", "ADA/BTC"]
    for symbol, f in generate_bars(symbols, 20_000, timeframe=timeframe, seed=seed).items():
        o, h, low, c = (f[k].to_numpy() for k in ("open", "high", "low", "close"))
        assert np.isfinite(f[list(OHLCV)].to_numpy()).all(), symbol
        assert (low > 0).all(), symbol
        assert (h >= np.maximum(o, c)).all(), symbol
        assert (low <= np.minimum(o, c)).all(), symbol
        assert (h > low).mean() > 0.95, symbol  # bars have ranges
        # The open sits a tiny gap from the previous close.
        gap = np.abs(o[1:] / c[:-1] - 1.0)
        assert np.median(gap) < 0.1 * np.median(np.abs(c / o - 1.0)), symbol


@pytest.fixture(scope="module")
def long_run() -> dict[str, pd.DataFrame]:
    return generate_bars(["BTC/USDT", "ETH/USDT", "ETH/BTC"], 200_000, seed=11)


def test_volatility_clusters(long_run: dict[str, pd.DataFrame]) -> None:
    r = _log_returns(long_run["BTC/USDT"])
    for lag in (1, 10, 100):
        assert _autocorr(np.abs(r), lag) > 0.1, lag
    # ... while the returns themselves stay unpredictable.
    for lag in (1, 2, 10):
        assert abs(_autocorr(r, lag)) < 0.02, lag


def test_returns_have_fat_tails_and_the_intended_volatility(
    long_run: dict[str, pd.DataFrame],
) -> None:
    r = _log_returns(long_run["BTC/USDT"])
    assert pd.Series(r).kurt() > 3.0  # excess kurtosis; a normal has 0
    annualised = r.std() * np.sqrt(365 * 24 * 60)
    assert 0.45 < annualised < 0.65  # BTC's default is 55%


def test_markets_are_correlated_a_bit(long_run: dict[str, pd.DataFrame]) -> None:
    btc, eth, ethbtc = (_log_returns(long_run[s]) for s in ("BTC/USDT", "ETH/USDT", "ETH/BTC"))
    assert 0.25 < np.corrcoef(btc, eth)[0, 1] < 0.75
    assert np.corrcoef(btc, ethbtc)[0, 1] < np.corrcoef(btc, eth)[0, 1]


def test_volume_rises_with_absolute_returns(long_run: dict[str, pd.DataFrame]) -> None:
    f = long_run["BTC/USDT"]
    moves = np.abs(np.log(f["close"] / f["open"]).to_numpy())
    assert np.corrcoef(np.log(f["volume"].to_numpy()), moves)[0, 1] > 0.3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "positive integer"),
        ({"n": 2.5}, "positive integer"),
        ({"timeframe": "7m"}, "valid: 1s, 1m"),
        ({"seed": -1}, "non-negative integer"),
        ({"start": "not a date"}, "not a time"),
        ({"start_prices": {"BTC/USDT": -1.0}}, "finite positive"),
    ],
)
def test_generate_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, Any] = {"n": 10, **kwargs}
    with pytest.raises(ConfigError, match=match):
        generate_bars(["BTC/USDT"], **args)


def test_generate_rejects_repeated_or_empty_symbols() -> None:
    with pytest.raises(ConfigError, match="repeat a market"):
        generate_bars(["BTC/USDT", "BTC/USDT"], 10)
    with pytest.raises(ConfigError, match="non-empty"):
        generate_bars([], 10)


# --- loading: sources and formats -------------------------------------------------------------


def _assert_same(bars: Bars, symbol: str, frame: pd.DataFrame) -> None:
    for name in OHLCV:
        np.testing.assert_array_equal(bars.columns[symbol][name], frame[name].to_numpy())


def test_generated_frames_load_unchanged() -> None:
    data = generate_bars(["BTC/USDT", "ETH/USDT"], 3_000, seed=5)
    bars = load_bars(data, ["BTC/USDT", "ETH/USDT"])
    assert bars.symbols == ("BTC/USDT", "ETH/USDT")
    assert bars.timeframe_ns == MINUTE
    assert len(bars) == 3_000
    np.testing.assert_array_equal(
        bars.time_ns, pd.DatetimeIndex(data["BTC/USDT"]["timestamp"]).asi8
    )
    for symbol, frame in data.items():
        _assert_same(bars, symbol, frame)


def test_arrays_are_contiguous_float64_read_only_and_detached_from_the_source() -> None:
    frame = generate_bars(["BTC/USDT"], 100)["BTC/USDT"]
    bars = load_bars(frame, ["BTC/USDT"])
    close = bars.columns["BTC/USDT"]["close"]
    assert close.dtype == np.float64
    assert close.flags.c_contiguous
    assert bars.time_ns.dtype == np.int64
    with pytest.raises(ValueError, match="read-only"):
        close[0] = 1.0
    before = close.copy()
    frame.loc[0, "close"] = 1.0
    np.testing.assert_array_equal(bars.columns["BTC/USDT"]["close"], before)


def test_csv_with_epoch_milliseconds_and_upper_case_columns(tmp_path: Path) -> None:
    times = _minutes("2024-01-01", 5)
    frame = pd.DataFrame(
        {
            "Open_Time": times.asi8 // 1_000_000,
            "OPEN": [10.0, 11, 12, 13, 14],
            "High": [11.0, 12, 13, 14, 15],
            "Low": [9.0, 10, 11, 12, 13],
            "Close": [11.0, 12, 13, 14, 15],
        }
    )
    path = tmp_path / "bars.csv"
    frame.to_csv(path, index=False)
    bars = load_bars(str(path), ["FOO/USDT"])
    np.testing.assert_array_equal(bars.time_ns, times.asi8)
    np.testing.assert_array_equal(bars.columns["FOO/USDT"]["open"], [10, 11, 12, 13, 14])
    np.testing.assert_array_equal(bars.columns["FOO/USDT"]["volume"], np.zeros(5))  # absent


def test_parquet_feather_and_epoch_seconds(tmp_path: Path) -> None:
    frame = generate_bars(["BTC/USDT"], 50)["BTC/USDT"].rename(columns={"timestamp": "Date"})
    frame.to_parquet(tmp_path / "a.parquet")
    seconds = frame.assign(Date=pd.DatetimeIndex(frame["Date"]).asi8 // 1_000_000_000)
    seconds.to_feather(tmp_path / "b.feather")
    for path in (tmp_path / "a.parquet", tmp_path / "b.feather"):
        bars = load_bars(path, ["BTC/USDT"])
        np.testing.assert_array_equal(bars.time_ns, pd.DatetimeIndex(frame["Date"]).asi8)
        _assert_same(bars, "BTC/USDT", frame)


def test_datetime_index_and_naive_times_mean_utc() -> None:
    frame = _frame(_minutes("2024-01-01", 3), [1.0, 2.0, 3.0])
    naive = frame.assign(timestamp=frame["timestamp"].dt.tz_localize(None)).set_index("timestamp")
    bars = load_bars(naive, ["X/USDT"])
    np.testing.assert_array_equal(bars.time_ns, _minutes("2024-01-01", 3).asi8)


def test_iso_strings_with_offsets_are_converted_to_utc() -> None:
    frame = _frame(_minutes("2024-01-01", 2), [1.0, 2.0]).assign(
        time=["2024-01-01T01:00:00+01:00", "2024-01-01T01:01:00+01:00"]
    )
    bars = load_bars(frame.drop(columns="timestamp"), ["X/USDT"])
    np.testing.assert_array_equal(bars.time_ns, _minutes("2024-01-01", 2).asi8)


def test_a_dict_mixes_sources(tmp_path: Path) -> None:
    a = _frame(_minutes("2024-01-01", 4), [1.0, 2.0, 3.0, 4.0])
    b = _frame(_minutes("2024-01-01", 4), [5.0, 6.0, 7.0, 8.0])
    a.to_csv(tmp_path / "a.csv", index=False)
    bars = load_bars(
        {"A/USDT": tmp_path / "a.csv", "B/USDT": b, "unused": "x"}, ["A/USDT", "B/USDT"]
    )
    np.testing.assert_array_equal(bars.columns["A/USDT"]["close"], [1, 2, 3, 4])
    np.testing.assert_array_equal(bars.columns["B/USDT"]["close"], [5, 6, 7, 8])


def test_a_symbol_column_splits_one_frame() -> None:
    a = _frame(_minutes("2024-01-01", 3), [1.0, 2.0, 3.0], Symbol="BTCUSDT")
    b = _frame(_minutes("2024-01-01", 3), [4.0, 5.0, 6.0], Symbol="ETH/USDT")
    both = pd.concat([a, b]).sort_values("timestamp", kind="stable")
    bars = load_bars(both, ["ETH/USDT", "BTC/USDT:USDT"])
    np.testing.assert_array_equal(bars.columns["BTC/USDT:USDT"]["close"], [1, 2, 3])
    np.testing.assert_array_equal(bars.columns["ETH/USDT"]["close"], [4, 5, 6])
    with pytest.raises(ConfigError, match=r"no bars for SOL/USDT: the 'Symbol' column holds"):
        load_bars(both, ["SOL/USDT"])


def test_one_frame_without_a_symbol_column_serves_only_the_first_market() -> None:
    frame = _frame(_minutes("2024-01-01", 3), [1.0, 2.0, 3.0])
    assert load_bars(frame, ["BTC/USDT"]).symbols == ("BTC/USDT",)
    with pytest.raises(ConfigError, match=r"covers one market, BTC/USDT.*one per market"):
        load_bars(frame, ["BTC/USDT", "ETH/USDT"])


def test_unsorted_bars_are_sorted() -> None:
    frame = _frame(_minutes("2024-01-01", 4), [1.0, 2.0, 3.0, 4.0]).iloc[[2, 0, 3, 1]]
    bars = load_bars(frame, ["X/USDT"])
    np.testing.assert_array_equal(bars.columns["X/USDT"]["close"], [1, 2, 3, 4])
    assert np.all(np.diff(bars.time_ns) == MINUTE)


def test_open_or_close_outside_the_range_widens_it() -> None:
    frame = _frame(_minutes("2024-01-01", 2), [10.0, 10.0])
    frame.loc[0, "open"] = 12.0  # above the high, 11
    frame.loc[1, "close"] = 8.0  # below the low, 9
    bars = load_bars(frame, ["X/USDT"]).columns["X/USDT"]
    assert bars["high"][0] == 12.0
    assert bars["low"][1] == 8.0


# --- loading: errors --------------------------------------------------------------------------


def test_duplicate_times_name_the_market_and_the_time() -> None:
    times = [*_minutes("2024-01-01", 3), _minutes("2024-01-01", 3)[1]]
    frame = _frame(pd.DatetimeIndex(times), [1.0, 2.0, 3.0, 2.5])
    with pytest.raises(
        ConfigError, match=r"bars for ETH/USDT repeat the time 2024-01-01T00:01:00\+00:00"
    ):
        load_bars(frame, ["ETH/USDT"])


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("close", 0.0, r"close price 0.0 at 2024-01-01T00:01:00\+00:00 for X/USDT must be finite"),
        ("open", float("nan"), r"open price nan at .* for X/USDT must be finite and positive"),
        ("low", float("inf"), r"low price inf"),
        ("high", -5.0, r"high price -5.0"),
        ("volume", -1.0, r"volume -1.0 at .* for X/USDT must be finite and non-negative"),
    ],
)
def test_bad_values_name_the_rule_value_time_and_market(
    column: str, value: float, match: str
) -> None:
    frame = _frame(_minutes("2024-01-01", 3), [1.0, 2.0, 3.0])
    frame.loc[1, column] = value
    with pytest.raises(ConfigError, match=match):
        load_bars(frame, ["X/USDT"])


def test_high_below_low_is_refused() -> None:
    frame = _frame(_minutes("2024-01-01", 3), [10.0, 10.0, 10.0])
    frame.loc[2, ["high", "low"]] = [9.0, 9.5]
    with pytest.raises(ConfigError, match=r"high 9.0 is below low 9.5 at .* for X/USDT"):
        load_bars(frame, ["X/USDT"])


def test_missing_columns_are_listed() -> None:
    frame = _frame(_minutes("2024-01-01", 2), [1.0, 2.0]).drop(columns=["high", "low"])
    with pytest.raises(ConfigError, match=r"lack column\(s\) high, low \(any case\); found"):
        load_bars(frame, ["X/USDT"])


def test_a_missing_time_column_lists_the_accepted_names() -> None:
    frame = _frame(_minutes("2024-01-01", 2), [1.0, 2.0]).rename(columns={"timestamp": "when"})
    with pytest.raises(
        ConfigError, match=r"no time column: name one timestamp, date, time, datetime, open_time"
    ):
        load_bars(frame, ["X/USDT"])


def test_unreadable_times_are_refused() -> None:
    frame = _frame(_minutes("2024-01-01", 2), [1.0, 2.0]).assign(timestamp=["soon", "later"])
    with pytest.raises(ConfigError, match=r"'timestamp' of the bars for X/USDT cannot be read"):
        load_bars(frame, ["X/USDT"])


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_bars(tmp_path / "nope.csv", ["X/USDT"])
    (tmp_path / "bars.xlsx").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"unknown type; use \.csv"):
        load_bars(tmp_path / "bars.xlsx", ["X/USDT"])
    with pytest.raises(ConfigError, match=r"bars for X/USDT are a list; pass a DataFrame"):
        load_bars(cast(Any, [1, 2, 3]), ["X/USDT"])
    with pytest.raises(ConfigError, match=r"no bars for B/USDT: the data has A/USDT"):
        load_bars({"A/USDT": _frame(_minutes("2024-01-01", 2), [1.0, 2.0])}, ["A/USDT", "B/USDT"])
    with pytest.raises(ConfigError, match=r"no bars for X/USDT: the data is empty"):
        load_bars(_frame(_minutes("2024-01-01", 0), []), ["X/USDT"])


def test_a_single_bar_cannot_give_a_timeframe() -> None:
    with pytest.raises(ConfigError, match=r"1 row\(s\); at least 2"):
        load_bars(_frame(_minutes("2024-01-01", 1), [1.0]), ["X/USDT"])


# --- alignment --------------------------------------------------------------------------------


def test_a_missing_bar_becomes_a_flat_bar_at_the_previous_close() -> None:
    a = _frame(_minutes("2024-01-01", 5), [1.0, 2.0, 3.0, 4.0, 5.0])
    b = _frame(_minutes("2024-01-01", 5), [10.0, 20.0, 30.0, 40.0, 50.0]).drop(index=[2, 3])
    bars = load_bars({"A/USDT": a, "B/USDT": b}, ["A/USDT", "B/USDT"])
    assert len(bars) == 5
    _assert_same(bars, "A/USDT", a)
    got = bars.columns["B/USDT"]
    for name in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(got[name][2:4], [20.0, 20.0])
    np.testing.assert_array_equal(got["volume"], [2.0, 2.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(got["close"], [10.0, 20.0, 20.0, 20.0, 50.0])


def test_alignment_starts_when_every_market_has_data() -> None:
    a = _frame(_minutes("2024-01-01", 6), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    b = _frame(_minutes("2024-01-01 00:02", 3), [30.0, 40.0, 50.0])  # starts later, ends early
    bars = load_bars({"A/USDT": a, "B/USDT": b}, ["A/USDT", "B/USDT"])
    np.testing.assert_array_equal(bars.time_ns, _minutes("2024-01-01 00:02", 4).asi8)
    np.testing.assert_array_equal(bars.columns["A/USDT"]["close"], [3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(bars.columns["B/USDT"]["close"], [30.0, 40.0, 50.0, 50.0])
    np.testing.assert_array_equal(bars.columns["B/USDT"]["volume"], [2.0, 2.0, 2.0, 0.0])


def test_markets_that_never_overlap_are_refused() -> None:
    a = _frame(_minutes("2024-01-01", 3), [1.0, 2.0, 3.0])
    b = _frame(_minutes("2024-02-01", 3), [1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match=r"bars for A/USDT end at .*before the bars for B/USDT"):
        load_bars({"A/USDT": a, "B/USDT": b}, ["A/USDT", "B/USDT"])


def test_the_timeframe_is_the_most_common_spacing() -> None:
    times = pd.DatetimeIndex(
        [*_minutes("2024-01-01", 10), pd.Timestamp("2024-01-01 01:00", tz="UTC")]
    )
    bars = load_bars(_frame(times, list(range(1, 12))), ["X/USDT"])
    assert bars.timeframe_ns == MINUTE
    assert "timeframe=1m" in repr(bars)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.booleans(), min_size=4, max_size=40),
    st.lists(st.booleans(), min_size=4, max_size=40),
)
def test_alignment_invariants(keep_a: list[bool], keep_b: list[bool]) -> None:
    grid = _minutes("2024-01-01", max(len(keep_a), len(keep_b)))
    own = {
        "A/USDT": [i for i, k in enumerate(keep_a) if k],
        "B/USDT": [i for i, k in enumerate(keep_b) if k],
    }
    if any(len(rows) < 1 for rows in own.values()) or min(
        own["A/USDT"][-1], own["B/USDT"][-1]
    ) < max(own["A/USDT"][0], own["B/USDT"][0]):
        return  # no overlap: refused, covered above
    data = {s: _frame(grid[rows], [100.0 + i for i in rows]) for s, rows in own.items()}
    union = sorted(set(own["A/USDT"]) | set(own["B/USDT"]))
    union = [i for i in union if i >= max(rows[0] for rows in own.values())]
    if len(union) < 2:
        return
    bars = load_bars(data, ["A/USDT", "B/USDT"])
    np.testing.assert_array_equal(bars.time_ns, grid[union].asi8)
    for symbol, rows in own.items():
        col = bars.columns[symbol]
        for j, i in enumerate(union):
            last = max(r for r in rows if r <= i)  # the market's latest bar at or before i
            assert col["close"][j] == 100.0 + last
            assert col["volume"][j] == (2.0 if i in rows else 0.0)
            if i not in rows:
                assert col["open"][j] == col["high"][j] == col["low"][j] == col["close"][j]


# --- real data (skipped when ../shared/data is absent) ----------------------------------------


def _shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def test_real_btc_perp_csv_loads_whole() -> None:
    bars = load_bars(_shared("btc-perp-20211231-20220201_1m.csv"), ["BTC/USDT:USDT"])
    assert len(bars) == 45_031
    assert bars.timeframe_ns == MINUTE
    assert pd.Timestamp(bars.time_ns[0], tz="UTC") == pd.Timestamp("2021-12-31 23:01", tz="UTC")
    col = bars.columns["BTC/USDT:USDT"]
    assert col["close"][0] == 46377.0
    assert (col["high"] >= col["low"]).all()


def test_real_spot_feathers_align() -> None:
    paths = {
        s: _shared(f"{s.replace('/', '_')}-5m.feather") for s in ("ETH/BTC", "LTC/BTC", "ADA/BTC")
    }
    bars = load_bars(paths, list(paths))
    raw = {s: pd.read_feather(p) for s, p in paths.items()}
    assert bars.timeframe_ns == 5 * MINUTE
    assert len(bars) == len(np.unique(np.concatenate([f["date"].to_numpy() for f in raw.values()])))
    for symbol, frame in raw.items():
        filled = (bars.columns[symbol]["volume"] == 0).sum()
        assert filled == len(bars) - len(frame) + (frame["volume"] == 0).sum()
