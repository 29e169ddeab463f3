"""The loopback market: bars on a clock, manual price control, recorded data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from runtime._errors import ConfigError
from runtime.testing.loopback import BarClock

SHARED_DATA = Path(__file__).resolve().parents[5] / "shared" / "data"
MINUTE = 60_000


class Wall:
    """A wall clock the test moves by hand."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def _clock(wall: Wall, **kwargs: object) -> BarClock:
    return BarClock(["BTC/USDT", "ETH/USDT"], wall_ms=wall, history=50, **kwargs)


def test_the_forming_bar_holds_the_wall_clock_now_and_time_is_monotonic() -> None:
    wall = Wall(1_700_000_030_000)  # 30 s into a minute
    clock = _clock(wall)
    assert clock.forming_open_ms == wall.ms - wall.ms % MINUTE
    assert clock.now_ms() == wall.ms
    wall.ms += 10 * MINUTE  # the wall runs on; a manual bar never closes by itself
    assert clock.now_ms() == clock.forming_open_ms + MINUTE - 1
    before = clock.now_ms()
    clock.step()
    assert clock.now_ms() > before
    bar = clock.bar("BTC/USDT")
    assert bar is not None
    assert bar.time_ms == clock.forming_open_ms - MINUTE
    assert clock.bar("BTC/USDT:USDT") == bar  # a perpetual reads its spot pair's bars


def test_set_price_moves_through_and_holds_or_continues() -> None:
    clock = _clock(Wall(1_700_000_000_000))
    previous = clock.last_price("BTC/USDT")
    clock.set_price("BTC/USDT", previous * 0.9)
    clock.step()
    bar = clock.bar("BTC/USDT")
    assert bar is not None
    assert (bar.open, bar.close) == (previous, previous * 0.9)
    assert bar.low == previous * 0.9
    assert bar.volume > 0
    clock.step()
    held = clock.bar("BTC/USDT")
    assert held is not None
    assert held.open == held.high == held.low == held.close == previous * 0.9
    clock.release("BTC/USDT")
    clock.step()
    clock.step()
    moving = clock.bar("BTC/USDT")
    assert moving is not None
    assert moving.close != previous * 0.9
    assert abs(math.log(moving.close / (previous * 0.9))) < 0.05  # continues from the held price
    clock.set_price("ETH/USDT", 2_000.0, hold=False)
    clock.step()
    assert clock.last_price("ETH/USDT") == 2_000.0


def test_the_series_extends_past_its_end() -> None:
    clock = _clock(Wall(1_700_000_000_000))
    start = clock.index
    for _ in range(5_100):
        clock.step()
    assert clock.index == start + 5_100
    bar = clock.bar("ETH/USDT")
    assert bar is not None
    assert bar.close > 0


def test_bad_input_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="timeframe"):
        BarClock(["BTC/USDT"], timeframe="7m")
    with pytest.raises(ConfigError, match="does not exist"):
        BarClock(["BTC/USDT"], data="/nonexistent/dir")
    clock = BarClock(["BTC/USDT"], history=10)
    with pytest.raises(ConfigError, match="finite and positive"):
        clock.set_price("BTC/USDT", -1.0)
    with pytest.raises(ConfigError, match="no bars"):
        clock.bar("DOGE/USDT")


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")
def test_recorded_bars_from_the_shared_data_directory() -> None:
    clock = BarClock(["ETH/BTC", "BTC/USDT"], data=SHARED_DATA, history=100)
    assert clock.timeframe == "5m"  # the files' timeframe; BTC/USDT is generated at it
    bar = clock.bar("ETH/BTC")
    assert bar is not None
    assert 0.01 < bar.close < 1  # an ETH/BTC price, not a generated one
    with pytest.raises(ConfigError, match="timeframe"):
        BarClock(["ETH/BTC"], data=SHARED_DATA, timeframe="1m")
