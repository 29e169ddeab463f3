"""The market-data store on real Zarr on disk: appends, the commit point, gaps, going back
further than the store reaches, the lock, the catalogue and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

import runtime
import runtime.data
from runtime import ConfigError
from runtime.data import MarketStore, load_ohlcv
from runtime.data._store import BAR_COLUMNS, Series

MIN = 60_000
T0 = 1_704_067_200_000  # 2024-01-01


def bars(times: np.ndarray) -> dict[str, np.ndarray]:
    base = times.astype(np.float64) / MIN
    return {c: base + k for k, c in enumerate(BAR_COLUMNS)}


def fill(series: Series, times: np.ndarray, covered: int) -> None:
    series.append(times, bars(times), covered)
    series.commit()


def test_rows_read_back_exactly_and_zarr_sees_the_same(tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    s = store.create("binance", "BTC/USDT", "1m", start=T0)
    times = T0 + np.arange(70_000, dtype=np.int64) * MIN  # more than one chunk
    fill(s, times[:1000], int(times[999]) + MIN)
    fill(s, times[1000:], int(times[-1]) + MIN)
    df = load_ohlcv("binance", "BTC/USDT", "1m", store=tmp_path)
    assert len(df) == 70_000
    assert (df.index.asi8 // 1_000_000 == times).all()
    for c, v in bars(times).items():
        np.testing.assert_array_equal(df[c].to_numpy(), v)
    # A plain zarr reader opens the same hierarchy from the root.
    root = zarr.open_group(str(tmp_path), mode="r")
    group = root["binance/BTC_USDT/1m"]
    assert isinstance(group, zarr.Group)
    assert group.attrs["rows"] == 70_000
    assert group.attrs["complete_until"] == int(times[-1]) + MIN
    np.testing.assert_array_equal(group["time"][:], times)


def test_since_until_select_open_times(tmp_path: Path) -> None:
    s = MarketStore(tmp_path).create("binance", "BTC/USDT", "1m", start=T0)
    times = T0 + np.arange(100, dtype=np.int64) * MIN
    fill(s, times, int(times[-1]) + MIN)
    df = load_ohlcv(
        "binance", "BTC/USDT", "1m", since=T0 + 10 * MIN, until="2024-01-01T00:20", store=tmp_path
    )
    assert list(df.index.asi8 // 1_000_000) == list(times[10:20])
    assert str(df.index.tz) == "UTC"
    assert list(df.columns) == list(BAR_COLUMNS)


def test_uncommitted_rows_are_invisible(tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    s = store.create("binance", "BTC/USDT", "1m", start=T0)
    times = T0 + np.arange(10, dtype=np.int64) * MIN
    fill(s, times[:5], int(times[4]) + MIN)
    s.append(times[5:], bars(times[5:]), int(times[-1]) + MIN)  # buffered, not committed
    again = store.open("binance", "BTC/USDT", "1m")
    assert again is not None
    assert again.rows == 5
    assert again.complete_until == int(times[4]) + MIN
    assert len(again.read()[0]) == 5


def test_rows_past_the_commit_point_are_ignored_and_overwritten(tmp_path: Path) -> None:
    # A crash after the chunks were written but before the attributes: the extra rows are
    # not visible, and the next append writes over them.
    store = MarketStore(tmp_path)
    s = store.create("binance", "BTC/USDT", "1m", start=T0)
    times = T0 + np.arange(10, dtype=np.int64) * MIN
    fill(s, times[:5], int(times[4]) + MIN)
    doc_path = s.path / "zarr.json"
    before = doc_path.read_bytes()
    fill(s, times[5:], int(times[-1]) + MIN)
    doc_path.write_bytes(before)  # as if the process died before publishing
    again = store.open("binance", "BTC/USDT", "1m")
    assert again is not None
    assert again.rows == 5
    later = T0 + np.arange(5, 8, dtype=np.int64) * MIN  # the same times, new values
    again.append(later, {c: np.full(3, 7.0) for c in BAR_COLUMNS}, int(later[-1]) + MIN)
    again.commit()
    t, cols = store.open("binance", "BTC/USDT", "1m").read()  # type: ignore[union-attr]
    np.testing.assert_array_equal(t, times[:8])
    np.testing.assert_array_equal(cols["close"][5:], [7.0, 7.0, 7.0])


def test_gaps_are_recorded_not_filled(tmp_path: Path) -> None:
    s = MarketStore(tmp_path).create("binance", "BTC/USDT", "1m", start=T0)
    times = T0 + np.array([0, 1, 2, 6, 7, 20], dtype=np.int64) * MIN
    fill(s, times[:3], T0 + 3 * MIN)
    fill(s, times[3:], T0 + 21 * MIN)
    assert s.gaps == [[T0 + 3 * MIN, T0 + 6 * MIN], [T0 + 8 * MIN, T0 + 20 * MIN]]
    df = load_ohlcv("binance", "BTC/USDT", "1m", store=tmp_path)
    assert len(df) == 6  # nothing invented
    row = MarketStore(tmp_path).catalog().iloc[0]
    assert (row["gaps"], row["missing"], row["count"]) == (2, 3 + 12, 6)


def test_rewrite_prepends_older_rows(tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    s = store.create("binance", "BTC/USDT", "1m", start=T0 + 10 * MIN)
    later = T0 + np.arange(10, 20, dtype=np.int64) * MIN
    fill(s, later, T0 + 20 * MIN)
    head = T0 + np.array([0, 1, 2, 3, 4, 5, 6, 7], dtype=np.int64) * MIN  # 8, 9 missing
    new = store.rewrite(s, head, bars(head), start=T0)
    assert (new.rows, new.start, new.complete_until) == (18, T0, T0 + 20 * MIN)
    assert new.gaps == [[T0 + 8 * MIN, T0 + 10 * MIN]]
    t, cols = new.read()
    np.testing.assert_array_equal(t, np.concatenate((head, later)))
    np.testing.assert_array_equal(cols["open"], bars(t)["open"])
    assert not any(p.name.endswith((".new", ".old")) for p in s.path.parent.iterdir())


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    with (
        store.writing("binance", "BTC/USDT", "1m"),
        pytest.raises(ConfigError, match="another process is writing"),
        store.writing("binance", "BTC/USDT", "1m"),
    ):
        pass


def test_missing_market_names_the_download_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vigil data download binance ETH/USDT --timeframe 1h"):
        load_ohlcv("binance", "ETH/USDT", "1h", store=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeframe": "7m"}, "timeframe '7m' is not supported"),
        ({"since": "yesterday-ish"}, "since='yesterday-ish' is not a time"),
        ({"symbol": "BTCUSDT"}, "not a ccxt symbol"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m", "store": tmp_path}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        load_ohlcv(**args)


def test_default_root_is_under_vigil_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    s = MarketStore().create("binance", "BTC/USDT", "1m", start=T0)
    assert s.path == tmp_path / "home" / "data" / "binance" / "BTC_USDT" / "1m"
    attrs = json.loads((tmp_path / "home" / "data" / "zarr.json").read_text())
    assert attrs["node_type"] == "group"


def test_public_names_come_from_runtime() -> None:
    assert runtime.download_ohlcv is runtime.data.download_ohlcv
    assert runtime.load_ohlcv is runtime.data.load_ohlcv
    assert {"download_ohlcv", "load_ohlcv"} <= set(runtime.__all__)


def test_a_rewrite_cut_between_its_renames_is_completed(tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    s = store.create("binance", "BTC/USDT", "1m", start=T0 + 10 * MIN)
    fill(s, T0 + np.arange(10, 20, dtype=np.int64) * MIN, T0 + 20 * MIN)
    head = T0 + np.arange(0, 10, dtype=np.int64) * MIN
    new = store.rewrite(s, head, bars(head), start=T0)
    # As if the process died after moving the old group aside, before moving the new one in.
    new.path.rename(new.path.with_name("1m.new"))
    store._create_at(
        new.path.with_name("1m.old"), "binance", "BTC/USDT", "1m", start=T0, kind="ohlcv"
    )
    again = store.open("binance", "BTC/USDT", "1m")
    assert again is not None
    assert again.rows == 20
    names = sorted(p.name for p in again.path.parent.iterdir() if not p.name.startswith("."))
    assert names == ["1m", "zarr.json"]  # the market's own group document, and nothing left
