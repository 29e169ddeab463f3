"""OHLCV bars for Sim: seeded generation, loading from files or frames, and alignment.

- :func:`generate_bars` makes realistic synthetic bars (volatility clustering, fat tails,
  correlated markets) when a Sim strategy is given no data.
- :func:`load_bars` turns user data (a DataFrame, a CSV/Parquet/Feather path, or a dict of them
  per market) into :class:`Bars`: validated, sorted, aligned on one shared time axis, and stored
  as contiguous float64 arrays for the simulator's inner loop.
"""

from __future__ import annotations

import math
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from runtime._errors import ConfigError

__all__ = [
    "OHLCV",
    "TIMEFRAMES",
    "TIME_COLUMNS",
    "Bars",
    "BarsData",
    "BarsSource",
    "generate_bars",
    "load_bars",
    "timeframe_ns",
]

_SECOND: Final = 1_000_000_000
_MINUTE: Final = 60 * _SECOND
_HOUR: Final = 60 * _MINUTE
_DAY: Final = 24 * _HOUR

#: Supported timeframes and their length in nanoseconds.
TIMEFRAMES: Final[Mapping[str, int]] = {
    "1s": _SECOND,
    "1m": _MINUTE,
    "3m": 3 * _MINUTE,
    "5m": 5 * _MINUTE,
    "15m": 15 * _MINUTE,
    "30m": 30 * _MINUTE,
    "1h": _HOUR,
    "2h": 2 * _HOUR,
    "4h": 4 * _HOUR,
    "6h": 6 * _HOUR,
    "8h": 8 * _HOUR,
    "12h": 12 * _HOUR,
    "1d": _DAY,
    "1w": 7 * _DAY,
}
#: Names accepted for the time column, in order of preference (any case).
TIME_COLUMNS: Final = ("timestamp", "date", "time", "datetime", "open_time")
#: The value columns of every market, in order.
OHLCV: Final = ("open", "high", "low", "close", "volume")

Float64Array: TypeAlias = npt.NDArray[np.float64]
Int64Array: TypeAlias = npt.NDArray[np.int64]
#: One market's data: a DataFrame or a path to a CSV, Parquet or Feather file.
BarsSource: TypeAlias = "pd.DataFrame | str | os.PathLike[str]"
#: What :func:`load_bars` takes: one source, or a mapping from market symbol to a source.
BarsData: TypeAlias = "BarsSource | Mapping[str, BarsSource]"


def timeframe_ns(tf: str) -> int:
    """The length of timeframe ``tf`` (e.g. ``"1m"``) in nanoseconds."""
    try:
        return TIMEFRAMES[tf]
    except (KeyError, TypeError):
        raise ConfigError(
            f"timeframe {tf!r} is not supported; valid: {', '.join(TIMEFRAMES)}"
        ) from None


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Bars:
    """Aligned bars of several markets on one time axis.

    ``time_ns`` (int64, UTC epoch nanoseconds, strictly increasing) is shared by every market;
    ``columns[symbol][name]`` for ``name`` in :data:`OHLCV` is a contiguous float64 array of the
    same length. All arrays are read-only. ``timeframe_ns`` is the most common spacing of
    ``time_ns``.
    """

    time_ns: Int64Array
    columns: Mapping[str, Mapping[str, Float64Array]]
    timeframe_ns: int
    symbols: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.time_ns)

    def __repr__(self) -> str:
        tf = next((k for k, v in TIMEFRAMES.items() if v == self.timeframe_ns), None)
        span = f"{_iso(int(self.time_ns[0]))} .. {_iso(int(self.time_ns[-1]))}"
        return (
            f"Bars(symbols={self.symbols!r}, n={len(self)}, "
            f"timeframe={tf or f'{self.timeframe_ns}ns'}, {span})"
        )

    def to_frame(self, symbol: str) -> pd.DataFrame:
        """One market's bars as a DataFrame indexed by UTC time (a copy)."""
        if symbol not in self.columns:
            raise ConfigError(f"no bars for {symbol!r}; markets: {', '.join(self.symbols)}")
        index = pd.DatetimeIndex(_to_datetimes(self.time_ns), name="timestamp")
        data = {name: self.columns[symbol][name].copy() for name in OHLCV}
        return pd.DataFrame(data, index=index)


# ---------------------------------------------------------------------------------------------
# Generation

# Typical USD prices (start of 2024-ish); a pair quoted in another coin uses the ratio.
_USD_PRICES: Final = {
    "BTC": 60_000.0,
    "ETH": 3_000.0,
    "SOL": 150.0,
    "BNB": 550.0,
    "XRP": 0.55,
    "ADA": 0.45,
    "LTC": 80.0,
    "DOGE": 0.15,
}
_ANNUAL_VOL: Final = {"BTC": 0.55, "ETH": 0.70}
_DAILY_USD_VOLUME: Final = {
    "BTC": 1.5e9,
    "ETH": 7e8,
    "SOL": 3e8,
    "XRP": 2e8,
    "DOGE": 1.5e8,
    "BNB": 1e8,
    "ADA": 5e7,
    "LTC": 5e7,
}
_USD_QUOTES: Final = frozenset({"USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI", "USD"})
_YEAR_NS: Final = 365 * _DAY
_T_DOF: Final = 5.0  # Student-t shocks: fat tails, finite kurtosis
_MARKET_LOADING: Final = 0.5  # share of shock variance from the common factor (USD-quoted)
_CROSS_LOADING: Final = 0.1  # coin-quoted pairs move less with the market
_VOL_OF_VOL: Final = (0.35, 0.35)  # std of log-volatility from the fast and slow components
_VOL_HALF_LIFE_NS: Final = (2 * _HOUR, 3 * _DAY)  # fast and slow volatility memory
_LEVERAGE: Final = -0.3  # falling prices raise volatility more than rising ones
_DRIVE_CAP: Final = 4.0  # bound on one standardised shock's effect on volatility
_LOG_VOL_RANGE: Final = (math.log(0.2), math.log(10.0))
_GAP_SCALE: Final = 0.01  # open-vs-previous-close gap, as a share of the bar's volatility


def generate_bars(
    symbols: Sequence[str],
    n: int,
    *,
    timeframe: str = "1m",
    seed: int = 0,
    start: str | pd.Timestamp = "2024-01-01",
    start_prices: Mapping[str, float] | None = None,
) -> dict[str, pd.DataFrame]:
    """Seeded, realistic OHLCV bars: ``{symbol: DataFrame}`` with ``n`` rows each.

    Columns: ``timestamp`` (datetime64[ns, UTC], every ``timeframe`` from ``start``) and float64
    ``open, high, low, close, volume``. The log price follows an EGARCH-style process: Student-t
    shocks, a fast and a slow log-volatility component driven by past shocks (volatility
    clusters, falls raise it more than rises), and a common market factor so markets correlate.
    Highs and lows are drawn from the Brownian-bridge extremes of each bar's volatility, opens
    sit a tiny gap from the previous close, prices are rounded to six significant digits of the
    start price, and volume is lognormal, rising with absolute returns and volatility.

    The same ``seed`` gives the same bars, and a market's bars do not depend on which other
    markets are generated with it. A perpetual ``"BTC/USDT:USDT"`` follows the same path as
    ``"BTC/USDT"``. Start prices default to typical values (BTC 60,000, ETH 3,000, SOL 150 ...);
    ``start_prices`` overrides them per symbol.
    """
    symbols = _check_symbols(symbols)
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"bar count n={n!r} must be a positive integer")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed {seed!r} must be a non-negative integer")
    n, seed = int(n), int(seed)
    step_ns = timeframe_ns(timeframe)
    start_ns = _start_ns(start)
    prices = dict(start_prices or {})
    for symbol, price in prices.items():
        if not (isinstance(price, int | float) and math.isfinite(price) and price > 0):
            raise ConfigError(
                f"start price {price!r} for {symbol} must be a finite positive number"
            )

    times = start_ns + np.arange(n, dtype=np.int64) * step_ns
    timestamps = _to_datetimes(times)
    common = _t_shocks(np.random.default_rng([seed, 0x4D4B54]), n)
    out: dict[str, pd.DataFrame] = {}
    for symbol in symbols:
        p0 = float(prices[symbol]) if symbol in prices else _default_price(symbol)
        columns = _generate_one(symbol, n, step_ns, seed, p0, common)
        out[symbol] = pd.DataFrame({"timestamp": timestamps, **columns})
    return out


def _generate_one(
    symbol: str, n: int, step_ns: int, seed: int, p0: float, common: Float64Array
) -> dict[str, Float64Array]:
    base, quote = _split(symbol)
    usd_quoted = quote in _USD_QUOTES
    # Key the stream by the spot symbol, so a perpetual tracks its spot market.
    rng = np.random.default_rng([seed, 1, zlib.crc32(f"{base}/{quote}".encode())])
    loading = _MARKET_LOADING if usd_quoted else _CROSS_LOADING
    z = math.sqrt(loading) * common + math.sqrt(1.0 - loading) * _t_shocks(rng, n)

    # Log-volatility: two AR(1) components fed by past shocks (EGARCH(1,1) in each), so it
    # is a linear filter of the shocks and vectorises; sigma[t] uses shocks up to t-1 only.
    abs_z = np.abs(z)
    drive = (abs_z - abs_z.mean()) / abs_z.std() + _LEVERAGE * z
    # Bound one shock's pull: with t tails and a short memory (daily bars) a lone 15-sigma
    # shock would otherwise multiply the next bar's volatility a thousandfold.
    drive = np.clip(drive, -_DRIVE_CAP, _DRIVE_CAP)
    drive = (drive - drive.mean()) / drive.std()  # a mean would accumulate in the filters
    log_vol = np.zeros(n)
    for weight, half_life_ns in zip(_VOL_OF_VOL, _VOL_HALF_LIFE_NS, strict=True):
        beta = 0.5 ** (1.0 / max(half_life_ns / step_ns, 1.5))
        norm = math.sqrt(1.0 - beta * beta)
        state0 = rng.standard_normal() / norm  # start in the stationary distribution
        state = _ar1(drive, beta, state0)
        log_vol[0] += weight * norm * state0
        log_vol[1:] += weight * norm * state[:-1]
    annual_vol = _ANNUAL_VOL.get(base, 0.90) if usd_quoted else 0.60
    bar_vol = annual_vol * math.sqrt(step_ns / _YEAR_NS)
    # Keep volatility within the range crypto shows (a fifth of normal to ten times it), then
    # scale so the mean of sigma**2 over the series is bar_vol**2.
    np.clip(log_vol, *_LOG_VOL_RANGE, out=log_vol)
    sigma = np.exp(log_vol)
    sigma *= bar_vol / math.sqrt(float(np.mean(sigma * sigma)))

    body = sigma * z  # log(close / open)
    gap = _GAP_SCALE * sigma * rng.standard_normal(n)  # log(open / previous close)
    log_close = math.log(p0) + np.cumsum(gap + body)
    log_open = log_close - body
    # Extremes of a Brownian bridge from 0 to `body` with variance sigma**2:
    # P(max > m) = exp(-2 m (m - body) / sigma**2), sampled by inversion.
    spread_up = np.sqrt(body * body - 2.0 * sigma * sigma * np.log1p(-rng.random(n)))
    spread_dn = np.sqrt(body * body - 2.0 * sigma * sigma * np.log1p(-rng.random(n)))
    log_high = log_open + 0.5 * (body + spread_up)
    log_low = log_open + 0.5 * (body - spread_dn)

    decimals = 5 - math.floor(math.log10(p0))
    tick = float(f"1e{-decimals}")
    # Rounding is monotone, so high >= max(open, close) >= min(open, close) >= low survives it.
    open_, high, low, close = (
        np.maximum(np.round(np.exp(a), decimals), tick)
        for a in (log_open, log_high, log_low, log_close)
    )
    high = np.maximum(high, np.maximum(open_, close))
    low = np.minimum(low, np.minimum(open_, close))

    base_usd = _USD_PRICES.get(base, p0 if usd_quoted else 100.0)
    daily_usd = _DAILY_USD_VOLUME.get(base, 2e7) * (1.0 if usd_quoted else 0.05)
    mean_volume = daily_usd / base_usd * step_ns / _DAY
    activity = 0.5 * (abs_z - abs_z.mean()) / abs_z.std() + 1.2 * log_vol
    noise = 0.5 * rng.standard_normal(n)
    volume = mean_volume * np.exp(activity + noise - 0.5 * (activity + noise).var())
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def _t_shocks(rng: np.random.Generator, n: int) -> Float64Array:
    """Student-t shocks scaled to unit variance."""
    scale = math.sqrt((_T_DOF - 2.0) / _T_DOF)
    shocks: Float64Array = rng.standard_t(_T_DOF, n) * scale
    return shocks


def _ar1(x: Float64Array, beta: float, y0: float) -> Float64Array:
    """``y[t] = beta * y[t-1] + x[t]`` with ``y[-1] = y0``, vectorised in blocks.

    Within a block of length L, ``y[k] = beta**k * cumsum(x[j] / beta**j)``; L keeps
    ``beta**-L`` below e**20 so the cumulative sum stays accurate. Blocks are chained by their
    last value, a loop over n / L scalars.
    """
    n = len(x)
    length = max(1, min(n, int(20.0 / -math.log(beta))))
    blocks = -(-n // length)
    padded = np.zeros(blocks * length)
    padded[:n] = x
    grid = padded.reshape(blocks, length)
    decay = beta ** np.arange(length, dtype=np.float64)
    local = np.cumsum(grid / decay, axis=1) * decay
    carry_in = np.empty(blocks)
    carry = y0
    beta_length = beta**length
    ends = local[:, -1]
    for b in range(blocks):
        carry_in[b] = carry
        carry = beta_length * carry + ends[b]
    local += np.outer(carry_in, decay * beta)
    result: Float64Array = local.reshape(-1)[:n]
    return result


def _split(symbol: str) -> tuple[str, str]:
    """``"BTC/USDT:USDT"`` -> ``("BTC", "USDT")``; a symbol without a slash has quote ``""``."""
    base, _, rest = symbol.partition("/")
    return base.upper(), rest.partition(":")[0].upper()


def _default_price(symbol: str) -> float:
    base, quote = _split(symbol)
    if quote in _USD_QUOTES:
        return _USD_PRICES.get(base, 100.0)
    if base in _USD_PRICES and quote in _USD_PRICES:
        return _USD_PRICES[base] / _USD_PRICES[quote]
    return 100.0


def _start_ns(start: str | pd.Timestamp) -> int:
    try:
        ts = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"start {start!r} is not a time; pass e.g. '2024-01-01' or a pandas Timestamp"
        ) from exc
    if ts is pd.NaT:
        raise ConfigError(f"start {start!r} is not a time; pass e.g. '2024-01-01'")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


# ---------------------------------------------------------------------------------------------
# Loading


def load_bars(data: BarsData, symbols: Sequence[str]) -> Bars:
    """Validate and align user bars for ``symbols``.

    ``data`` is a DataFrame, a path to a ``.csv`` (optionally compressed), ``.parquet``/``.pq``
    or ``.feather``/``.arrow`` file, or a mapping from symbol to any of those. A single frame or
    path holds one market, the first of ``symbols``, unless it has a ``symbol`` column, in which
    case it is split by that column (values like ``"BTC/USDT"`` or ``"BTCUSDT"``).

    Each market needs a time column named one of :data:`TIME_COLUMNS` (any case; epoch seconds,
    milliseconds, microseconds or nanoseconds, ISO strings, or datetimes, naive meaning UTC) or
    a DatetimeIndex, and ``open, high, low, close`` columns (any case); ``volume`` is optional
    and defaults to 0.

    Rules, each failing with a :class:`ConfigError` naming the market, the value and the fix:
    times are unique (unsorted input is sorted); prices are finite and positive; ``high >=
    low``; volume is finite and non-negative. A bar whose open or close lies outside its
    high-low range has the range widened to contain them.

    Alignment: the shared axis is the union of all markets' times from the latest first time
    among them, so every market has data from the start. A market without a bar at a time gets
    a flat bar at its previous close with volume 0.
    """
    symbols = _check_symbols(symbols)
    if isinstance(data, Mapping):
        missing = [s for s in symbols if s not in data]
        if missing:
            raise ConfigError(
                f"no bars for {', '.join(missing)}: the data has "
                f"{', '.join(map(str, data)) or 'no markets'}; give bars for every market the "
                f"strategy trades ({', '.join(symbols)}): in Python one entry per market, "
                "data={'BTC/USDT': 'btc.csv', ...}; on the command line --data SYMBOL=FILE per "
                "market; or trade fewer markets (--markets)"
            )
        markets = [_normalise(_read(data[s], s), s) for s in symbols]
    else:
        frame = _read(data, symbols[0])
        symbol_column = next((c for c in frame.columns if str(c).lower() == "symbol"), None)
        if symbol_column is not None:
            markets = [_normalise(f, s) for s, f in _split_by_symbol(frame, symbol_column, symbols)]
        elif len(symbols) > 1:
            raise ConfigError(
                f"one frame or file of bars covers one market, {symbols[0]}, but the strategy "
                f"trades {', '.join(symbols)}; give one per market (in Python "
                "data={'BTC/USDT': 'btc.csv', 'ETH/USDT': 'eth.csv'}; on the command line "
                "--data BTC/USDT=btc.csv --data ETH/USDT=eth.csv), add a 'symbol' column, or "
                "trade one market (--markets BTC/USDT)"
            )
        else:
            markets = [_normalise(frame, symbols[0])]
    return _align(symbols, markets)


_Market: TypeAlias = tuple[Int64Array, dict[str, Float64Array]]


def _read(source: object, symbol: str) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    if not isinstance(source, str | os.PathLike):
        raise ConfigError(
            f"bars for {symbol} are a {type(source).__name__}; pass a DataFrame or a path to a "
            "CSV, Parquet or Feather file"
        )
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"bars file {str(path)!r} for {symbol} does not exist")
    name = path.name.lower()
    suffixes = ("", ".gz", ".bz2", ".zip", ".xz", ".zst")
    try:
        if any(name.endswith(".csv" + z) for z in suffixes):
            return pd.read_csv(path)
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".feather", ".arrow")):
            return pd.read_feather(path)
    except (OSError, ValueError, ImportError) as exc:
        raise ConfigError(f"could not read bars file {str(path)!r} for {symbol}: {exc}") from exc
    raise ConfigError(
        f"bars file {str(path)!r} for {symbol} has an unknown type; use .csv (optionally "
        ".gz/.bz2/.zip/.xz/.zst), .parquet, .pq, .feather or .arrow"
    )


def _split_by_symbol(
    frame: pd.DataFrame, column: Any, symbols: tuple[str, ...]
) -> list[tuple[str, pd.DataFrame]]:
    groups = {str(k): g for k, g in frame.groupby(column, sort=False)}
    by_key = {_symbol_key(k): k for k in groups}
    result = []
    for symbol in symbols:
        found = symbol if symbol in groups else by_key.get(_symbol_key(symbol))
        if found is None:
            raise ConfigError(
                f"no bars for {symbol}: the '{column}' column holds "
                f"{', '.join(groups) or 'nothing'}; add rows for it or pass a dict per market"
            )
        result.append((symbol, groups[found]))
    return result


def _symbol_key(symbol: str) -> str:
    # "BTC/USDT", "BTCUSDT", "btc-usdt" and "BTC/USDT:USDT" all name the same pair.
    return re.sub(r"[^A-Z0-9]", "", symbol.partition(":")[0].upper())


def _normalise(frame: pd.DataFrame, symbol: str) -> _Market:
    if len(frame) == 0:
        raise ConfigError(f"no bars for {symbol}: the data is empty")
    by_name = {str(c).strip().lower(): c for c in frame.columns}
    times = _times(frame, by_name, symbol)
    missing = [c for c in OHLCV[:4] if c not in by_name]
    if missing:
        raise ConfigError(
            f"bars for {symbol} lack column(s) {', '.join(missing)} (any case); found: "
            f"{', '.join(map(str, frame.columns))}"
        )
    values = {}
    for name in OHLCV:
        if name not in by_name:  # only volume may be absent
            values[name] = np.zeros(len(frame))
            continue
        try:
            values[name] = np.asarray(frame[by_name[name]], dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"column {by_name[name]!r} of the bars for {symbol} is not numeric ({exc}); "
                "convert it to numbers"
            ) from exc

    if not np.all(times[1:] > times[:-1]):
        order = np.argsort(times, kind="stable")
        times = times[order]
        values = {k: v[order] for k, v in values.items()}
        dup = np.flatnonzero(times[1:] == times[:-1])
        if len(dup):
            raise ConfigError(
                f"bars for {symbol} repeat the time {_iso(int(times[dup[0]]))} "
                f"({len(dup)} duplicate(s)): times must be unique; drop the duplicate rows, "
                "e.g. with DataFrame.drop_duplicates on the time column"
            )
    for name in OHLCV[:4]:
        a = values[name]
        bad = ~(np.isfinite(a) & (a > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise ConfigError(
                f"{name} price {float(a[i])!r} at {_iso(int(times[i]))} for {symbol} must be "
                "finite and positive; drop or fill that bar"
            )
    high, low = values["high"], values["low"]
    bad = high < low
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(
            f"high {float(high[i])!r} is below low {float(low[i])!r} at {_iso(int(times[i]))} "
            f"for {symbol}: every bar needs high >= low; fix or drop that bar"
        )
    volume = values["volume"]
    bad = ~(np.isfinite(volume) & (volume >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(
            f"volume {float(volume[i])!r} at {_iso(int(times[i]))} for {symbol} must be finite and "
            "non-negative; fill it with 0 if unknown"
        )
    opens, closes = values["open"], values["close"]
    values["high"] = np.maximum(high, np.maximum(opens, closes))
    values["low"] = np.minimum(low, np.minimum(opens, closes))
    return times, values


def _times(frame: pd.DataFrame, by_name: Mapping[str, Any], symbol: str) -> Int64Array:
    column = next((by_name[n] for n in TIME_COLUMNS if n in by_name), None)
    if column is not None:
        return _to_ns(frame[column], symbol, str(column))
    index = frame.index
    if isinstance(index, pd.DatetimeIndex) or str(index.name).lower() in TIME_COLUMNS:
        return _to_ns(index, symbol, "index")
    raise ConfigError(
        f"bars for {symbol} have no time column: name one {', '.join(TIME_COLUMNS)} (any case) "
        f"or use a DatetimeIndex; found columns {', '.join(map(str, frame.columns))}"
    )


def _to_ns(values: pd.Series | pd.Index, symbol: str, where: str) -> Int64Array:
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise ConfigError(f"time column {where!r} of the bars for {symbol} holds booleans")
    if pd.api.types.is_numeric_dtype(dtype):
        raw = np.asarray(values, dtype=np.float64)
        if not np.isfinite(raw).all():
            i = int(np.argmax(~np.isfinite(raw)))
            raise ConfigError(
                f"time {float(raw[i])!r} in row {i} of the bars for {symbol} is missing; "
                "drop that row"
            )
        # Epoch unit from magnitude: 1e11 s is the year 5138, 1e11 ms is 1973.
        peak = float(np.abs(raw).max())
        unit_ns = (
            1 if peak >= 1e17 else 1_000 if peak >= 1e14 else 1_000_000 if peak >= 1e11 else _SECOND
        )
        if pd.api.types.is_integer_dtype(dtype):
            ints: Int64Array = np.asarray(values, dtype=np.int64) * unit_ns
            return ints
        result: Int64Array = np.rint(raw * unit_ns).astype(np.int64)
        return result
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        stamps = pd.DatetimeIndex(values)
    else:
        try:
            stamps = pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="ISO8601"))
        except (ValueError, TypeError):
            try:
                stamps = pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="mixed"))
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"time column {where!r} of the bars for {symbol} cannot be read as times "
                    f"(first value {values[:1].tolist()!r}): {exc}; use ISO strings, epoch "
                    "numbers or datetimes"
                ) from exc
    if stamps.hasnans:
        i = int(np.argmax(stamps.isna()))
        raise ConfigError(
            f"time in row {i} of the bars for {symbol} is missing (NaT); drop that row"
        )
    if stamps.tz is None:
        stamps = stamps.tz_localize("UTC")  # naive times are UTC
    ns: Int64Array = stamps.tz_convert("UTC").as_unit("ns").asi8
    return ns


def _align(symbols: tuple[str, ...], markets: list[_Market]) -> Bars:
    first_times = markets[0][0]
    if all(np.array_equal(t, first_times) for t, _ in markets[1:]):
        axis = first_times  # the common case: nothing to align
        columns = {s: values for s, (_, values) in zip(symbols, markets, strict=True)}
    else:
        starts = [int(t[0]) for t, _ in markets]
        latest = int(np.argmax(starts))
        for symbol, (times, _) in zip(symbols, markets, strict=True):
            if times[-1] < starts[latest]:
                raise ConfigError(
                    f"bars for {symbol} end at {_iso(int(times[-1]))}, before the bars for "
                    f"{symbols[latest]} begin at {_iso(starts[latest])}: the markets never "
                    "overlap; pass bars covering a common period"
                )
        axis = np.unique(np.concatenate([t for t, _ in markets]))
        axis = axis[axis >= starts[latest]]
        columns = {}
        for symbol, (times, values) in zip(symbols, markets, strict=True):
            at = np.searchsorted(times, axis, side="right") - 1  # last own bar at or before
            present = times[at] == axis
            previous_close = values["close"][at]
            columns[symbol] = {
                name: (
                    np.where(present, values[name][at], 0.0 if name == "volume" else previous_close)
                )
                for name in OHLCV
            }
    if len(axis) < 2:
        raise ConfigError(
            f"the aligned bars of {', '.join(symbols)} have {len(axis)} row(s); at least 2 are "
            "needed to infer the timeframe"
        )
    steps = np.diff(axis)
    if steps[0] == steps[-1] and np.all(steps == steps[0]):
        step = int(steps[0])
    else:
        kinds, counts = np.unique(steps, return_counts=True)
        step = int(kinds[np.argmax(counts)])
    frozen = {
        s: {name: _readonly(np.ascontiguousarray(v[name], dtype=np.float64)) for name in OHLCV}
        for s, v in columns.items()
    }
    return Bars(
        time_ns=_readonly(np.ascontiguousarray(axis, dtype=np.int64)),
        columns=frozen,
        timeframe_ns=step,
        symbols=symbols,
    )


# ---------------------------------------------------------------------------------------------
# Helpers


def _check_symbols(symbols: Sequence[str]) -> tuple[str, ...]:
    if isinstance(symbols, str):
        symbols = (symbols,)
    result = tuple(symbols)
    if not result or not all(isinstance(s, str) and s for s in result):
        raise ConfigError(f"symbols {symbols!r} must be a non-empty list of market symbols")
    if len(set(result)) != len(result):
        raise ConfigError(f"symbols {list(result)!r} repeat a market; list each once")
    return result


def _readonly(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if array.base is not None:
        array = array.copy()  # a view may share memory with the caller's frame
    array.setflags(write=False)
    return array


def _to_datetimes(times_ns: Int64Array) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(times_ns.view("datetime64[ns]")).tz_localize("UTC")


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()
