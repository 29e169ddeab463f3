"""Reading the market-data store: ``load_ohlcv`` and what Sim's ``data="store"`` reads."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from runtime._errors import ConfigError
from runtime.data._store import (
    BAR_COLUMNS,
    FUNDING,
    MarketStore,
    Series,
    frame_of,
    timeframe_ms,
    to_ms,
)

__all__ = ["FundingRates", "StoreData", "load_funding", "load_ohlcv", "store_bars"]


def load_ohlcv(
    exchange: str,
    symbol: str,
    timeframe: str,
    since: Any = None,
    until: Any = None,
    store: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Stored bars of ``symbol`` with ``since <= open time < until`` as a DataFrame indexed
    by UTC open time (``timestamp``) with float64 ``open, high, low, close, volume``.

    Raises ConfigError naming the ``vigil data download`` command when the store has no such
    market."""
    since_ms, until_ms = to_ms(since, "since"), to_ms(until, "until")
    series = _open(exchange, symbol, timeframe, store)
    times, cols = series.read(since_ms, until_ms)
    return frame_of(times, cols, BAR_COLUMNS)


def load_funding(
    exchange: str,
    symbol: str,
    since: Any = None,
    until: Any = None,
    store: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Stored funding rates of a perpetual (``rate``, ``mark_price``) by UTC funding time."""
    db = MarketStore(store)
    series = db.open(exchange, symbol, FUNDING)
    if series is None:
        raise ConfigError(
            f"the market-data store {db.root} has no funding rates of {symbol} on {exchange}; "
            f"run `vigil data download {exchange} {symbol} --timeframe 1h --since ... --funding`"
        )
    times, cols = series.read(to_ms(since, "since"), to_ms(until, "until"))
    return frame_of(times, cols, ("rate", "mark_price"))


def _command(exchange: str, symbols: Sequence[str], timeframe: str, since: Any, until: Any) -> str:
    text = f"vigil data download {exchange} {' '.join(symbols)} --timeframe {timeframe}"
    text += f" --since {_day(since) if since is not None else 'YYYY-MM-DD'}"
    if until is not None:
        text += f" --until {_day(until)}"
    return text


def _day(value: Any) -> str:
    ms = to_ms(value, "time")
    assert ms is not None
    ts = pd.Timestamp(ms, unit="ms", tz="UTC")
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%dT%H:%M")


def _open(
    exchange: str, symbol: str, timeframe: str, store: str | os.PathLike[str] | None
) -> Series:
    timeframe_ms(timeframe)
    db = MarketStore(store)
    series = db.open(exchange, symbol, timeframe)
    if series is None:
        raise ConfigError(
            f"the market-data store {db.root} has no {timeframe} bars of {symbol} on "
            f"{exchange}; run `{_command(exchange, [symbol], timeframe, None, None)}`"
        )
    return series


@dataclass(frozen=True, slots=True)
class StoreData:
    """Sim data from the market-data store: ``strategy(..., data=StoreData(since=..., until=...))``
    (``data="store"`` is ``StoreData()``: everything stored). ``root`` defaults to
    ``$VIGIL_HOME/data``."""

    since: Any = None
    until: Any = None
    root: str | os.PathLike[str] | None = None

    @classmethod
    def of(cls, data: Any) -> StoreData | None:
        """``data`` as a store request, or None when it names other data."""
        if isinstance(data, StoreData):
            return data
        if isinstance(data, str) and data == "store":
            return cls()
        return None


@dataclass(frozen=True, slots=True)
class FundingRates:
    """Funding of one perpetual for Sim: times (ms) and rates, increasing in time."""

    time_ms: np.ndarray
    rate: np.ndarray


def store_bars(
    request: StoreData,
    exchange: str,
    symbols: Sequence[str],
    timeframe: str,
    *,
    fallback_exchange: str | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, FundingRates]]:
    """Each market's bars for Sim from the store, and the funding of those that have it.

    A market missing from the store, or a range it does not cover, is a ConfigError naming
    the download command that fills it. ``fallback_exchange`` is also looked in (a margin
    strategy on "binance" finds bars stored under "binanceusdm")."""
    db = MarketStore(request.root)
    since_ms = to_ms(request.since, "since")
    until_ms = to_ms(request.until, "until")
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        raise ConfigError(f"until={request.until!r} must be after since={request.since!r}")
    frames: dict[str, pd.DataFrame] = {}
    funding: dict[str, FundingRates] = {}
    missing: list[str] = []
    short: list[str] = []
    for sym in symbols:
        venue = exchange
        series = db.open(exchange, sym, timeframe)
        if series is None and fallback_exchange and fallback_exchange != exchange:
            series = db.open(fallback_exchange, sym, timeframe)
            venue = fallback_exchange
        if series is None or series.rows == 0:
            missing.append(sym)
            continue
        lo = since_ms if since_ms is not None else series.start
        hi = until_ms if until_ms is not None else series.complete_until
        if lo < series.start or hi > series.complete_until:
            span = f"{_iso(series.start)} to {_iso(series.complete_until)}"
            short.append(f"{sym} (stored {span})")
            continue
        times, cols = series.read(lo, hi)
        if not len(times):
            short.append(f"{sym} (no bars from {_iso(lo)} to {_iso(hi)})")
            continue
        frames[sym] = frame_of(times, cols, BAR_COLUMNS)
        rates = db.open(venue, sym, FUNDING)
        if rates is not None and rates.rows:
            ft, fc = rates.read(lo, hi)
            funding[sym] = FundingRates(ft, fc["rate"])
    if missing or short:
        what = []
        if missing:
            what.append(f"no {timeframe} bars of {', '.join(missing)} on {exchange}")
        if short:
            want = f"{_iso(since_ms) if since_ms is not None else 'the start'} to "
            want += _iso(until_ms) if until_ms is not None else "the end"
            what.append(f"not the range {want} for {', '.join(short)}")
        cmd = _command(exchange, list(symbols), timeframe, request.since, request.until)
        if any(":" in s for s in symbols):
            cmd += " --funding"  # perpetuals: Sim charges the stored funding
        raise ConfigError(f"the market-data store {db.root} has {'; and '.join(what)}; run `{cmd}`")
    return frames, funding


def _iso(ms: int | None) -> str:
    if ms is None:
        return "?"
    ts = pd.Timestamp(ms, unit="ms", tz="UTC")
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%dT%H:%M")
