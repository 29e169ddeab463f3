"""The loopback exchange's market: bar series per pair, advanced by a clock.

One :class:`BarClock` holds the bars of every pair (``"BTC/USDT"``; a perpetual
``"BTC/USDT:USDT"`` reads its spot pair's bars) on one time axis, split into *closed* bars
(``[0, index)``) and the *forming* bar at ``index``. The simulated exchange sees only the last
closed bar (:meth:`BarClock.bar`), so nothing looks ahead.

**Time.** Bars are re-stamped so that, at construction, the forming bar is the one holding the
wall-clock now. :meth:`BarClock.now_ms` is the forming bar's open time plus the wall time since it
opened (capped one millisecond short of the bar's end), so it moves in real time within a bar
and jumps a bar on every :meth:`BarClock.step`. Stepping faster than real time therefore runs
the market clock ahead of the wall clock; that is the point of a sped-up replay. Request
signatures are checked against the wall clock, never against this one.

**Manual control.** :meth:`BarClock.set_price` rewrites the forming bar to move from the last
close to the given price (so resting orders between the two fill when it closes) and, with
``hold=True``, keeps the pair flat at that price afterwards; with ``hold=False`` the rest of the
series is rescaled to continue from it.

**Length.** When the series runs out, it is extended with freshly generated bars continuing
from each pair's last close (seeded, so a run is reproducible).

Not thread-safe: the loopback server calls it from its own event loop only.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from runtime._errors import ConfigError
from runtime.exchanges.sim._exchange import Bar
from runtime.model._bars import TIMEFRAMES, generate_bars, load_bars, timeframe_ns

__all__ = ["BarClock", "pair_of"]

_FIELDS: Final = ("open", "high", "low", "close", "volume")
_DATA_SUFFIXES: Final = (".feather", ".arrow", ".parquet", ".pq", ".csv")
# Bars generated per extension of the series.
_CHUNK: Final = 5_000

FloatArray = npt.NDArray[np.float64]


def pair_of(symbol: str) -> str:
    """The spot pair whose bars a symbol follows: ``"BTC/USDT:USDT"`` -> ``"BTC/USDT"``."""
    return symbol.partition(":")[0]


def _data_files(directory: Path, pairs: Iterable[str], timeframe: str | None) -> dict[str, Path]:
    """``BASE_QUOTE-<tf>.<ext>`` files in ``directory`` for the given pairs."""
    found: dict[str, Path] = {}
    pattern = re.compile(r"^([A-Z0-9]+)_([A-Z0-9]+)-([0-9]+[smhdw])$")
    wanted = set(pairs)
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in _DATA_SUFFIXES:
            continue
        match = pattern.match(path.stem)
        if match is None:
            continue
        pair = f"{match[1]}/{match[2]}"
        if pair in wanted and (timeframe is None or match[3] == timeframe) and pair not in found:
            found[pair] = path
    return found


class BarClock:
    """Bars of several pairs on one axis, with a forming bar and a market clock.

    ``pairs`` are spot pairs (``"BTC/USDT"``). ``data`` optionally gives recorded bars: a
    directory holding ``BASE_QUOTE-<timeframe>.feather`` (or ``.parquet``, ``.csv``) files, as in
    ``../shared/data``, or a mapping from pair to a DataFrame or file path. Pairs without data are
    generated with :func:`runtime.model.generate_bars` (``seed``). With data, the timeframe is
    the data's; ``timeframe`` must agree or be left as ``None``. ``history`` closed bars exist
    before the start (for klines and 24h tickers). ``wall_ms`` is the wall clock, injectable
    for tests.
    """

    def __init__(
        self,
        pairs: Iterable[str],
        *,
        timeframe: str | None = None,
        seed: int = 0,
        history: int = 1_000,
        data: str | Path | Mapping[str, Any] | None = None,
        wall_ms: Callable[[], int] | None = None,
    ) -> None:
        self.pairs: tuple[str, ...] = tuple(dict.fromkeys(pair_of(p) for p in pairs))
        if not self.pairs:
            raise ConfigError("BarClock needs at least one pair, e.g. ['BTC/USDT']")
        if not isinstance(history, int) or history < 1:
            raise ConfigError(f"history={history!r} must be a positive number of bars, e.g. 1000")
        self.seed = seed
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        recorded, tf = self._load(data, timeframe)
        self.timeframe: str = tf
        self.tf_ms: int = timeframe_ns(tf) // 1_000_000
        self._chunks = 0
        self._cols: dict[str, dict[str, FloatArray]] = {}
        length = max([len(c["close"]) for c in recorded.values()], default=0)
        length = max(length, history + _CHUNK)
        generated = [p for p in self.pairs if p not in recorded]
        if generated:
            frames = generate_bars(generated, length, timeframe=tf, seed=seed)
            for pair, frame in frames.items():
                self._cols[pair] = {f: frame[f].to_numpy(dtype=np.float64) for f in _FIELDS}
        for pair, cols in recorded.items():
            self._cols[pair] = cols
        self._length = min(len(c["close"]) for c in self._cols.values())
        for cols in self._cols.values():
            for f in _FIELDS:
                cols[f] = np.array(cols[f][: self._length], dtype=np.float64)
        self.index: int = min(history, self._length - 1)
        now = self._wall_ms()
        forming_open = now - now % self.tf_ms
        self._t0_ms = forming_open - self.index * self.tf_ms
        self._bar_wall_start = forming_open
        self._held: dict[str, float] = {}

    # Construction helpers.
    def _load(
        self, data: str | Path | Mapping[str, Any] | None, timeframe: str | None
    ) -> tuple[dict[str, dict[str, FloatArray]], str]:
        if timeframe is not None and timeframe not in TIMEFRAMES:
            raise ConfigError(
                f"timeframe {timeframe!r} is not supported; valid: {', '.join(TIMEFRAMES)}"
            )
        if data is None:
            return {}, timeframe or "1m"
        if isinstance(data, str | Path):
            directory = Path(data)
            if not directory.is_dir():
                raise ConfigError(
                    f"market data directory {str(directory)!r} does not exist; pass a directory "
                    "of BASE_QUOTE-<timeframe>.feather files (like ../shared/data) or None"
                )
            sources: Mapping[str, Any] = _data_files(directory, self.pairs, timeframe)
            if not sources and timeframe is not None:
                other = _data_files(directory, self.pairs, None)
                if other:
                    found = sorted({p.stem.rsplit("-", 1)[1] for p in other.values()})
                    raise ConfigError(
                        f"{directory} holds bars for {', '.join(other)} at {', '.join(found)}, "
                        f"not at timeframe={timeframe!r}; pass timeframe={found[0]!r} or None"
                    )
        else:
            sources = {pair_of(k): v for k, v in data.items() if pair_of(k) in self.pairs}
        if not sources:
            return {}, timeframe or "1m"
        bars = load_bars(dict(sources), list(sources))
        tf = next((k for k, v in TIMEFRAMES.items() if v == bars.timeframe_ns), None)
        if tf is None:
            raise ConfigError(
                f"recorded bars have a spacing of {bars.timeframe_ns / 1e9:g}s, which is no "
                f"supported timeframe ({', '.join(TIMEFRAMES)}); resample them"
            )
        if timeframe is not None and tf != timeframe:
            raise ConfigError(
                f"recorded bars are {tf} but timeframe={timeframe!r} was asked for; pass "
                f"timeframe={tf!r} or None"
            )
        cols = {p: {f: np.asarray(bars.columns[p][f]) for f in _FIELDS} for p in sources}
        return cols, tf

    def _extend(self) -> None:
        # Seeded per extension, continuing from each pair's last close.
        self._chunks += 1
        last = {p: float(c["close"][self._length - 1]) for p, c in self._cols.items()}
        frames = generate_bars(
            list(self.pairs),
            _CHUNK,
            timeframe=self.timeframe,
            seed=self.seed + 7919 * self._chunks,
            start_prices=last,
        )
        for pair, frame in frames.items():
            cols = self._cols[pair]
            for f in _FIELDS:
                cols[f] = np.concatenate((cols[f], frame[f].to_numpy(dtype=np.float64)))
        self._length += _CHUNK

    def _pair(self, symbol: str) -> str:
        pair = pair_of(symbol)
        if pair not in self._cols:
            raise ConfigError(f"no bars for {symbol!r}; the market has {', '.join(self.pairs)}")
        return pair

    # The MarketFeed protocol of the simulated exchange.
    def bar(self, symbol: str) -> Bar | None:
        """The last closed bar of ``symbol`` (a pair or a perpetual on it)."""
        return self.closed_bar(symbol, self.index - 1)

    def now_ms(self) -> int:
        """Market time: the forming bar's open plus the wall time since it opened (capped)."""
        elapsed = min(max(self._wall_ms() - self._bar_wall_start, 0), self.tf_ms - 1)
        return self.forming_open_ms + elapsed

    # Reading.
    @property
    def forming_open_ms(self) -> int:
        """Open time of the forming bar."""
        return self._t0_ms + self.index * self.tf_ms

    def time_of(self, i: int) -> int:
        """Open time, in ms, of bar ``i``."""
        return self._t0_ms + i * self.tf_ms

    def index_at(self, time_ms: int) -> int:
        """Index of the bar open at ``time_ms`` (may be out of range)."""
        return (time_ms - self._t0_ms) // self.tf_ms

    def closed_bar(self, symbol: str, i: int) -> Bar | None:
        """Closed bar ``i`` of ``symbol``, or None before the series or at/after the forming bar."""
        if i < 0 or i >= self.index:
            return None
        c = self._cols[self._pair(symbol)]
        return Bar(
            self.time_of(i),
            float(c["open"][i]),
            float(c["high"][i]),
            float(c["low"][i]),
            float(c["close"][i]),
            float(c["volume"][i]),
        )

    def last_price(self, symbol: str) -> float:
        """The last closed bar's close: the price the exchange trades at now."""
        return float(self._cols[self._pair(symbol)]["close"][self.index - 1])

    def closed(self, symbol: str, start: int, stop: int) -> dict[str, FloatArray]:
        """Columns of closed bars ``[start, stop)`` (clipped to what is closed), as views."""
        c = self._cols[self._pair(symbol)]
        start = max(start, 0)
        stop = min(stop, self.index)
        return {f: c[f][start : max(stop, start)] for f in _FIELDS}

    # Moving.
    def step(self) -> None:
        """Close the forming bar and open the next one."""
        self.index += 1
        if self.index + 1 >= self._length:
            self._extend()
        for pair, price in self._held.items():
            self._write(pair, self.index, price, price, price, price)
        self._bar_wall_start = self._wall_ms()

    def set_price(self, symbol: str, price: float, *, hold: bool = True) -> None:
        """Make the forming bar of ``symbol`` run from the last close to ``price``.

        The bar closes at the next :meth:`step`. With ``hold`` the pair stays flat at ``price``
        afterwards; without it, the rest of the series is rescaled to continue from ``price``.
        """
        if not (isinstance(price, int | float) and math.isfinite(price) and price > 0):
            raise ConfigError(f"price {price!r} for {symbol} must be finite and positive")
        pair = self._pair(symbol)
        i = self.index
        c = self._cols[pair]
        previous = float(c["close"][i - 1])
        old_close = float(c["close"][i])
        self._write(pair, i, previous, max(previous, price), min(previous, price), price)
        if hold:
            self._held[pair] = float(price)
        else:
            self._held.pop(pair, None)
            scale = price / old_close
            for f in ("open", "high", "low", "close"):
                c[f][i + 1 :] *= scale

    def release(self, symbol: str) -> None:
        """Stop holding ``symbol`` flat; the series continues from the held price."""
        pair = self._pair(symbol)
        price = self._held.pop(pair, None)
        if price is not None:
            c = self._cols[pair]
            scale = price / float(c["open"][self.index + 1])
            for f in ("open", "high", "low", "close"):
                c[f][self.index + 1 :] *= scale

    def _write(self, pair: str, i: int, o: float, h: float, lo: float, cl: float) -> None:
        c = self._cols[pair]
        c["open"][i], c["high"][i], c["low"][i], c["close"][i] = o, h, lo, cl
        if not c["volume"][i] > 0:
            # A held market still trades, so resting orders can fill against it.
            c["volume"][i] = float(np.median(c["volume"][: max(self.index, 1)])) or 1.0
