"""Asset instances, balances, positions and bar windows.

An `AssetInstance` is built from a ccxt unified market dict. It carries the market's precision
(tick sizes, rounded with ccxt's own helpers), limits and fees, and the strategy's state for that
market: open orders, fills and positions. Only the engine changes that state.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from runtime._errors import ConfigError

# ccxt's own rounding (DESIGN §5: only the ccxt package imports ccxt), so local checks agree
# with what ccxt sends; a leaf module that imports nothing else of the project.
from runtime.model._grid import Grid
from runtime.model._orders import Order, Trade

LONG = "long"
SHORT = "short"
# Maintenance margin rate used for liquidation prices when the market does not give one
# (Binance's first notional tier for majors).
DEFAULT_MMR = 0.004


@dataclass(slots=True)
class Balance:
    """Cash in one currency. `committed` is reserved by open orders (and, on margin, held as
    position margin); `free` is what a new order may use."""

    currency: str
    total: float = 0.0
    committed: float = 0.0

    @property
    def free(self) -> float:
        return self.total - self.committed

    def __repr__(self) -> str:
        return f"<Balance {self.currency} {self.total:g} (committed {self.committed:g})>"


@dataclass(slots=True, eq=False)
class Position:
    """An isolated-margin, one-way position. `margin` is the initial margin held for it."""

    asset: AssetInstance
    side: str  # "long" or "short"
    contracts: float
    entry_price: float
    leverage: float
    margin: float
    timestamp: int = 0

    @property
    def symbol(self) -> str:
        return self.asset.symbol

    @property
    def notional(self) -> float:
        return self.contracts * self.asset.contract_size * self.asset.price

    @property
    def maintenance_margin(self) -> float:
        return self.notional * self.asset.mmr

    @property
    def liquidation_price(self) -> float:
        size = self.contracts * self.asset.contract_size
        if size <= 0:
            return math.nan
        if self.side == LONG:
            return max((size * self.entry_price - self.margin) / (size * (1 - self.asset.mmr)), 0)
        return (size * self.entry_price + self.margin) / (size * (1 + self.asset.mmr))

    @property
    def unrealized_pnl(self) -> float:
        sign = 1.0 if self.side == LONG else -1.0
        return (
            sign * self.contracts * self.asset.contract_size * (self.asset.price - self.entry_price)
        )

    def __repr__(self) -> str:
        return (
            f"<Position {self.side} {self.contracts:g} {self.symbol} entry={self.entry_price:g} "
            f"x{self.leverage:g} liq={self.liquidation_price:.6g} margin={self.margin:g} "
            f"upnl={self.unrealized_pnl:+.6g}>"
        )


class Cursor:
    """How many bars are visible. Sim shares one across assets so a step is one store."""

    __slots__ = ("n",)

    def __init__(self, n: int = 0) -> None:
        self.n = n


OHLCV = ("open", "high", "low", "close", "volume")


class BarWindow:
    """The bars a strategy has seen so far. ``window["close"]`` is a numpy view, not a copy:
    cheap enough to take on every tick. ``window.time`` holds the bar open times."""

    __slots__ = ("_close", "_cols", "_cs", "_cs_valid", "_cursor", "_sums", "_time")

    def __init__(
        self, time_ns: np.ndarray, columns: Mapping[str, np.ndarray], cursor: Cursor | None = None
    ) -> None:
        self._time = time_ns
        self._cols = dict(columns)
        self._close = _float_view(self._cols.get("close"))
        self._cursor = cursor if cursor is not None else Cursor(len(time_ns))
        self._cs: dict[str, np.ndarray] = {}  # running sums, for O(1) moving averages
        self._cs_valid: dict[str, int] = {}
        self._sums: dict[str, memoryview] = {}  # views of `_cs`, read by `sma`

    @property
    def newest_ns(self) -> int:
        """Open time (ns) of the newest visible bar, or -1 when none is visible."""
        n = self._cursor.n
        return int(self._time[n - 1]) if n else -1

    def sma(self, column: str, n: int) -> float:
        """Mean of the last `n` visible values of `column`, in O(1); NaN with fewer than n.

        Uses running sums, extended only as far as the visible bars (no look-ahead)."""
        k = self._cursor.n
        if n <= 0 or k < n:
            return math.nan
        sums = self._sums.get(column)
        if sums is None or self._cs_valid[column] < k:
            sums = self._extend_sums(column, k)
        # Indexing a memoryview gives Python floats (the same doubles) at half numpy's .item.
        total = sums[k - 1] - sums[k - 1 - n] if k > n else sums[k - 1]
        return total / n

    def _extend_sums(self, column: str, k: int) -> memoryview:
        values = self._cols[column]
        cs = self._cs.get(column)
        valid = self._cs_valid.get(column, 0)
        if cs is None or len(cs) != len(values):
            grown = np.empty(len(values))
            if cs is not None:
                grown[:valid] = cs[:valid]
            cs = grown
        # A sequential scan continued from the last valid sum: same floats as summing in a loop.
        upto = len(values) if values.flags.writeable is False else k
        if valid == 0:
            cs[:upto] = np.cumsum(values[:upto])
        else:
            cs[valid - 1 : upto] = np.cumsum(np.concatenate(([cs[valid - 1]], values[valid:upto])))
        self._cs[column] = cs
        self._cs_valid[column] = upto
        sums = self._sums[column] = cs.data  # a memoryview of the float64 sums
        return sums

    def __getitem__(self, column: str) -> np.ndarray:
        try:
            return self._cols[column][: self._cursor.n]
        except KeyError:
            raise KeyError(f"no column {column!r}; columns are {', '.join(self._cols)}") from None

    def __len__(self) -> int:
        return self._cursor.n

    @property
    def time(self) -> np.ndarray:
        return self._time[: self._cursor.n].view("datetime64[ns]")

    @property
    def last_close(self) -> float:
        n = self._cursor.n
        if not n:
            return math.nan
        close = self._close
        return close[n - 1] if close is not None else float(self._cols["close"][n - 1])

    def df(self) -> pd.DataFrame:
        """The visible bars as a DataFrame indexed by UTC time (a copy; not for the hot path)."""
        n = self._cursor.n
        index = pd.DatetimeIndex(self._time[:n].view("datetime64[ns]"), tz="UTC", name="time")
        return pd.DataFrame({c: a[:n] for c, a in self._cols.items()}, index=index)

    def append(self, time_ns: int, bar: tuple[float, float, float, float, float]) -> None:
        """Add a bar (Live and Paper), or replace the last one if it has the same open time."""
        n = self._cursor.n
        if n and self._time[n - 1] == time_ns:
            n -= 1
        elif n and time_ns < self._time[n - 1]:
            return  # late duplicate of an older bar: the window only moves forward
        if n >= len(self._time):
            cap = max(2 * len(self._time), 64)
            self._time = np.resize(self._time, cap)
            self._cols = {c: np.resize(a, cap) for c, a in self._cols.items()}
            self._close = _float_view(self._cols.get("close"))
        self._time[n] = time_ns
        for column, value in zip(OHLCV, bar, strict=True):
            self._cols[column][n] = value
            if self._cs_valid.get(column, 0) > n:
                self._cs_valid[column] = n  # the running sums past n are stale now
        self._cursor.n = n + 1

    def __repr__(self) -> str:
        return f"<BarWindow {len(self)} bars>"


def _float_view(values: np.ndarray | None) -> memoryview | None:
    """A memoryview of a float column (indexing it gives Python floats, at half numpy's
    ``.item``), or None for a column of another dtype."""
    if values is None or values.dtype.kind != "f" or values.ndim != 1:
        return None
    return values.data


def empty_window() -> BarWindow:
    return BarWindow(np.zeros(0, dtype=np.int64), {c: np.zeros(0) for c in OHLCV}, Cursor(0))


def _price_band(market: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    info = market.get("info")
    filters = info.get("filters") if isinstance(info, Mapping) else None
    for f in filters or ():
        kind = f.get("filterType") if isinstance(f, Mapping) else None
        if kind == "PERCENT_PRICE_BY_SIDE":
            keys = ("bidMultiplierDown", "bidMultiplierUp", "askMultiplierDown", "askMultiplierUp")
        elif kind == "PERCENT_PRICE":
            keys = ("multiplierDown", "multiplierUp", "multiplierDown", "multiplierUp")
        else:
            continue
        bd, bu, ad, au = (_num(f.get(k), math.nan) for k in keys)
        if all(math.isfinite(x) and x > 0 for x in (bd, bu, ad, au)):
            return bd, bu, ad, au
    return None


def _num(value: Any, default: float) -> float:
    return default if value is None else float(value)


class AssetInstance:
    """One market of a strategy: its rules (precision, limits, fees) and its state.

    State read by strategies: `price`, `cash`, `cash_committed`, `orders` (open orders),
    `trades` (fills), `long` and `short` (a `Position` or None), `leverage`, `ohlcv`.
    On spot, `cash` is the base currency held; on margin it is the signed position size
    (long positive, short negative) and `cash_committed` the margin reserved by open orders.
    """

    def __init__(self, market: Mapping[str, Any], balances: dict[str, Balance]) -> None:
        self.set_market(market)
        # Engine-owned state.
        self._balances = balances
        self.open_orders: dict[str, Order] = {}
        self.trades: list[Trade] = []
        self.long: Position | None = None
        self.short: Position | None = None
        self.leverage: float = 1.0
        self.ohlcv: BarWindow = empty_window()
        self.last_price: float | None = None  # set by tickers/fills in Live and Paper

    def set_market(self, market: Mapping[str, Any]) -> None:
        """Take the rules (precision, limits, fees) from a ccxt unified market dict; Live
        mode refreshes them from the exchange at start."""
        self.market = dict(market)
        self.symbol: str = market["symbol"]
        self.base: str = market["base"]
        self.quote: str = market["quote"]
        self.settle: str = market.get("settle") or market["quote"]
        self.contract: bool = bool(market.get("contract"))
        self.contract_size: float = _num(market.get("contractSize"), 1.0)
        precision = market.get("precision") or {}
        self.amount_step: float = _num(precision.get("amount"), 1e-8)
        self.price_tick: float = _num(precision.get("price"), 1e-8)
        self._amount_grid = Grid(self.amount_step)
        self._price_grid = Grid(self.price_tick)
        limits = market.get("limits") or {}
        self.amount_min: float = _num((limits.get("amount") or {}).get("min"), 0.0)
        self.amount_max: float = _num((limits.get("amount") or {}).get("max"), math.inf)
        self.cost_min: float = _num((limits.get("cost") or {}).get("min"), 0.0)
        self.price_min: float = _num((limits.get("price") or {}).get("min"), 0.0)
        self.price_max: float = _num((limits.get("price") or {}).get("max"), math.inf)
        self.cost_max: float = _num((limits.get("cost") or {}).get("max"), math.inf)
        # Binance's PERCENT_PRICE(_BY_SIDE): how far from the market a limit price may be, as
        # (buy down, buy up, sell down, sell up) multipliers; None where the venue has none.
        self.price_band: tuple[float, float, float, float] | None = _price_band(market)
        self.leverage_max: float = _num((limits.get("leverage") or {}).get("max"), 125.0)
        self.maker: float = _num(market.get("maker"), 0.001)
        self.taker: float = _num(market.get("taker"), 0.001)
        self.mmr: float = DEFAULT_MMR

    # Rules.
    def round_amount(self, amount: float) -> float:
        """Round down to the amount step as ccxt does (float noise removed first, so
        0.45999999999999996 stays 0.46)."""
        return self._amount_grid.truncate_clean(float(f"{amount:.12g}"))

    def round_price(self, price: float) -> float:
        """Round to the nearest price tick as ccxt does."""
        return self._price_grid.round(price)

    # State.
    @property
    def price(self) -> float:
        """The last known price: the last bar's close in Sim, the last ticker or fill otherwise."""
        if self.last_price is not None:
            return self.last_price
        window = self.ohlcv
        n = window._cursor.n
        close = window._close  # `last_close`, inlined: strategies read it on every bar
        return close[n - 1] if n and close is not None else window.last_close

    @property
    def orders(self) -> tuple[Order, ...]:
        """The open orders, oldest first."""
        return tuple(self.open_orders.values())

    @property
    def cash(self) -> float:
        if self.contract:
            size = 0.0
            if self.long is not None:
                size += self.long.contracts
            if self.short is not None:
                size -= self.short.contracts
            return size
        balance = self._balances.get(self.base)
        return balance.total if balance is not None else 0.0

    @property
    def cash_committed(self) -> float:
        if self.contract:
            return sum(o.committed for o in self.open_orders.values())
        balance = self._balances.get(self.base)
        return balance.committed if balance is not None else 0.0

    def position(self, side: str) -> Position | None:
        if side == LONG:
            return self.long
        if side == SHORT:
            return self.short
        raise ConfigError(f"position side must be 'long' or 'short', not {side!r}")

    def __repr__(self) -> str:
        kind = "perp" if self.contract else "spot"
        parts = [f"<{self.symbol} {kind} price={self.price:.6g}"]
        if self.contract:
            pos = self.long or self.short
            parts.append(f"pos={pos!r}" if pos else "flat")
        else:
            parts.append(f"{self.base}={self.cash:g}")
        parts.append(f"orders={len(self.open_orders)} fills={len(self.trades)}>")
        return " ".join(parts)


class Universe:
    """The strategy's markets by symbol. Iterating yields asset instances, not symbols, so
    ``for ai in s.universe`` reads naturally; ``keys()`` gives the symbols."""

    __slots__ = ("_assets",)

    def __init__(self, assets: Mapping[str, AssetInstance]) -> None:
        self._assets = dict(assets)

    def __getitem__(self, symbol: str) -> AssetInstance:
        # The exact symbol first: strategies look their markets up on every bar.
        ai = self._assets.get(symbol) or self.get(symbol)
        if ai is None:
            raise KeyError(
                f"{symbol!r} is not in this strategy's universe; it has {', '.join(self._assets)}"
            )
        return ai

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and self.get(symbol) is not None

    def __iter__(self) -> Iterator[AssetInstance]:
        return iter(self._assets.values())

    def __len__(self) -> int:
        return len(self._assets)

    def keys(self) -> Iterator[str]:
        return iter(self._assets)

    def values(self) -> Iterator[AssetInstance]:
        return iter(self._assets.values())

    def items(self) -> Iterator[tuple[str, AssetInstance]]:
        return iter(self._assets.items())

    def get(self, symbol: str) -> AssetInstance | None:
        """By ccxt symbol; a perpetual also answers to its spot name ("BTC/USDT")."""
        ai = self._assets.get(symbol)
        if ai is None and ":" not in symbol and "/" in symbol:
            ai = self._assets.get(f"{symbol}:{symbol.split('/')[1]}")
        return ai

    def __repr__(self) -> str:
        return "<Universe " + ", ".join(self._assets) + ">"
