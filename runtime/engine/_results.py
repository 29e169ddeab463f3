"""Sim results: the fills as a DataFrame, the equity curve and summary statistics.

Equity is marked to market at every bar's close. Holdings change only at fills, so the curve is
rebuilt after the run from the state after each fill (vectorised), not tracked per bar.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
import pandas as pd

from runtime._errors import ConfigError
from runtime.model._bars import timeframe_ns

if TYPE_CHECKING:
    from runtime.engine._engine import State
    from runtime.engine._runtime import Runtime
    from runtime.model._assets import AssetInstance, Cursor
    from runtime.model._bars import Bars

# (bar index, balance totals, positions as (signed contracts, entry price)) after a fill.
Mark = tuple[int, "Totals", dict[str, tuple[float, float]]]


class Totals(Mapping[str, float]):
    """Balance totals by currency, read-only: the values in a tuple beside a currency tuple
    that every mark with the same currencies shares (a backtest keeps one per fill, and a
    dict each cost 2.5x the memory)."""

    __slots__ = ("_currencies", "_values")

    def __init__(self, currencies: tuple[str, ...], values: tuple[float, ...]) -> None:
        self._currencies = _CURRENCY_SETS.setdefault(currencies, currencies)
        self._values = values

    def __getitem__(self, currency: str) -> float:
        try:
            return self._values[self._currencies.index(currency)]
        except ValueError:
            raise KeyError(currency) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._currencies)

    def __len__(self) -> int:
        return len(self._currencies)

    def __repr__(self) -> str:
        return f"Totals({dict(self)!r})"


_CURRENCY_SETS: dict[tuple[str, ...], tuple[str, ...]] = {}


_FLAT: dict[str, tuple[float, float]] = {}


def account_mark(state: State) -> tuple[Totals, dict[str, tuple[float, float]]]:
    """Balance totals, and each position as (signed contracts, entry price): what equity is
    valued from between fills."""
    positions: dict[str, tuple[float, float]] = {}
    for sym, ai in state.assets.items():
        if ai.long is not None:
            positions[sym] = (ai.long.contracts, ai.long.entry_price)
        elif ai.short is not None:
            positions[sym] = (-ai.short.contracts, ai.short.entry_price)
    # Read-only from here: a flat account shares one empty dict (a backtest keeps a mark
    # per fill, tens of thousands of them).
    balances = state.balances
    totals = Totals(tuple(balances), tuple(b.total for b in balances.values()))
    return totals, positions or _FLAT


class BarHistory(Protocol):
    """What a run with recorded bars keeps for its results (Sim): the bars, the shared cursor,
    the first and last bar the strategy saw, and the account after each fill."""

    bars: Bars
    cursor: Cursor
    start_index: int
    end_index: int
    marks: list[Mark]


YEAR_NS = 365 * 24 * 3600 * 10**9
MIN_CAGR_YEARS = 30 / 365  # shorter curves get no CAGR (nor Calmar)


@dataclass(frozen=True, slots=True)
class Results:
    trades: pd.DataFrame
    equity: pd.Series
    stats: dict[str, float]

    def summary(self) -> str:
        """The statistics as aligned text lines."""
        return format_stats(self.stats)

    def __repr__(self) -> str:
        return f"<Results {int(self.stats['trades'])} trades>\n{self.summary()}"


def annualisation(periods_per_year: float) -> str:
    """How the ratios are annualised, in words: "x sqrt(525,600) 1m periods a year"."""
    per_year = float(periods_per_year)
    if not math.isfinite(per_year) or per_year <= 0:
        return "not annualised"
    seconds = 365 * 24 * 3600 / per_year
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and abs(seconds / size - round(seconds / size)) < 1e-6:
            period = f"{round(seconds / size)}{unit}"
            break
    else:
        period = f"{seconds:g}s"
    return f"annualised: x sqrt({per_year:,.0f}) {period} periods a year"


def _pct(v: float) -> str:
    return f"{v * 100:+.2f}%" if math.isfinite(v) else "n/a"


def _num(v: float) -> str:
    return f"{v:.2f}" if math.isfinite(v) or math.isinf(v) else "n/a"


# The statistics a summary shows, in order: (key, label, format).
STAT_ROWS: tuple[tuple[str, str, Any], ...] = (
    ("total_return", "total return", _pct),
    ("buy_and_hold_return", "buy and hold", _pct),
    ("cagr", "CAGR", _pct),
    ("max_drawdown", "max drawdown", lambda v: f"{v * 100:.2f}%"),
    ("sharpe", "sharpe", _num),
    ("sortino", "sortino", _num),
    ("calmar", "calmar", _num),
    ("win_rate", "win rate", lambda v: f"{v * 100:.1f}%"),
    ("profit_factor", "profit factor", _num),
    ("exposure", "exposure", lambda v: f"{v * 100:.1f}%"),
    ("trades", "trades", lambda v: f"{int(v)}"),
    ("fees", "fees", lambda v: f"{v:.2f}"),
    ("funding", "funding", lambda v: f"{v:.2f}"),
    ("start_equity", "start equity", lambda v: f"{v:.2f}"),
    ("end_equity", "end equity", lambda v: f"{v:.2f}"),
)


def format_stats(stats: Mapping[str, float]) -> str:
    """Statistics as aligned text lines, with how Sharpe, Sortino and CAGR are annualised."""
    lines = [f"{label:<14} {fmt(stats[key]):>14}" for key, label, fmt in STAT_ROWS if key in stats]
    if "periods_per_year" in stats:
        lines.append(f"{'':<14} ({annualisation(stats['periods_per_year'])})")
    return "\n".join(lines)


def trades_frame(rt: Runtime) -> pd.DataFrame:
    """Every fill, oldest first, with realized PnL (average cost, fees included) per fill, and
    `funding`: what the position this fill left paid in funding (negative: received) until
    the market's next fill."""
    rows: list[dict[str, Any]] = []
    funding_by_symbol: dict[str, list[tuple[int, float]]] = {}
    for f in rt.state.funding:
        funding_by_symbol.setdefault(f.symbol, []).append((f.timestamp, f.amount))
    for ai in rt.universe:
        qty = 0.0
        avg = 0.0
        paid = funding_by_symbol.get(ai.symbol, [])
        pay_times = np.array([p[0] for p in paid], dtype=np.int64)
        pay_cum = np.concatenate(([0.0], np.cumsum([p[1] for p in paid])))
        fills = ai.trades
        for k, t in enumerate(fills):
            # Funding after this fill up to the next: the position this fill left paid it. A
            # funding time equal to a fill's is settled before that bar's tick, so before it.
            lo = int(np.searchsorted(pay_times, t.timestamp, side="right"))
            nxt = fills[k + 1].timestamp if k + 1 < len(fills) else None
            hi = len(pay_times) if nxt is None else int(np.searchsorted(pay_times, nxt, "right"))
            funding = float(pay_cum[hi] - pay_cum[lo]) if hi > lo else 0.0
            signed = t.amount if t.side == "buy" else -t.amount
            fee_q = t.fee if t.fee_currency in (ai.quote, ai.settle) else t.fee * t.price
            pnl = 0.0
            if qty == 0 or (qty > 0) == (signed > 0):
                unit = t.price + fee_q / t.amount * (1 if signed > 0 else -1)
                avg = (abs(qty) * avg + abs(signed) * unit) / (abs(qty) + abs(signed))
                qty += signed
            else:
                closing = min(abs(signed), abs(qty))
                direction = 1.0 if qty > 0 else -1.0
                pnl = closing * (t.price - avg) * direction * ai.contract_size - fee_q
                qty += signed
                if abs(qty) > 1e-12 and (qty > 0) == (signed > 0):
                    avg = t.price  # flipped: the rest opens at this price
                elif abs(qty) <= 1e-12:
                    qty = 0.0
            rows.append(
                {
                    "time": pd.Timestamp(t.timestamp, unit="ms", tz="UTC"),
                    "symbol": ai.symbol,
                    "side": t.side,
                    "amount": t.amount,
                    "price": t.price,
                    "value": t.value,
                    "fee": t.fee,
                    "fee_currency": t.fee_currency,
                    "realized_pnl": pnl,
                    "funding": funding,
                    "taker": t.taker,
                    "leverage": t.leverage,
                    "order_type": t.order.type.__name__,
                    "client_id": t.order.client_id,
                    "order_id": t.order.id,
                    "trade_id": t.id,
                }
            )
    columns = [
        "time",
        "symbol",
        "side",
        "amount",
        "price",
        "value",
        "fee",
        "fee_currency",
        "realized_pnl",
        "funding",
        "taker",
        "leverage",
        "order_type",
        "client_id",
        "order_id",
        "trade_id",
    ]
    df = pd.DataFrame(rows, columns=columns)
    if len(df):
        df = df.sort_values(["time", "trade_id"], kind="stable").reset_index(drop=True)
    return df


def _currency_prices(rt: Runtime, closes: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Each currency's price in the cash currency per bar, through at most one intermediate."""
    return currency_prices(rt.state.assets, closes, n, rt.cash_currency)


def currency_prices(
    assets: Mapping[str, AssetInstance], closes: Mapping[str, np.ndarray], n: int, cash: str
) -> dict[str, np.ndarray]:
    """Each currency's price in the cash currency per bar, through at most one intermediate
    market (ETH in USDT through ETH/BTC and BTC/USDT)."""
    prices: dict[str, np.ndarray] = {cash: np.ones(n)}
    for _ in range(2):
        for sym, ai in assets.items():
            if ai.base not in prices and ai.quote in prices:
                prices[ai.base] = closes[sym] * prices[ai.quote]
            if ai.quote not in prices and ai.base in prices:
                prices[ai.quote] = prices[ai.base] / closes[sym]
    return prices


class AccountMark(NamedTuple):
    """Balance totals and signed positions (contracts, entry price) from time ``ts_ns`` on."""

    ts_ns: int
    totals: Mapping[str, float]
    positions: dict[str, tuple[float, float]]


def mark_of(state: State, ts_ns: int) -> AccountMark:
    return AccountMark(ts_ns, *account_mark(state))


def equity_values(
    assets: Mapping[str, AssetInstance],
    states: Sequence[AccountMark],
    at: np.ndarray,
    closes: Mapping[str, np.ndarray],
    cash: str,
    margin: bool,
) -> np.ndarray:
    """Equity at each price point i, with ``states[at[i]]`` holding there: spot, every
    currency's total priced in the cash currency; margin, the settle total plus each position's
    ``contracts × contract size × (close − entry)``. Mirrors `equity_curve`."""
    n = len(at)
    if margin:
        totals = np.array([m.totals.get(cash, 0.0) for m in states])
        equity = totals[at].astype(float)
        for sym, ai in assets.items():
            pos = [m.positions.get(sym, (0.0, 0.0)) for m in states]
            size = np.array([p[0] for p in pos])
            entry = np.array([p[1] for p in pos])
            equity += size[at] * ai.contract_size * (closes[sym] - entry[at])
        return equity
    prices = currency_prices(assets, closes, n, cash)
    equity = np.zeros(n)
    for c in sorted({c for m in states for c in m.totals}):
        if c in prices:  # a currency no market prices in the cash currency is left out
            amounts = np.array([m.totals.get(c, 0.0) for m in states])
            equity += amounts[at] * prices[c]
    return equity


def start_equity(
    assets: Mapping[str, AssetInstance],
    initial: AccountMark,
    closes: Mapping[str, np.ndarray],
    cash: str,
    margin: bool,
) -> float:
    """Equity before the first price point: the initial state at the first prices."""
    n = len(next(iter(closes.values()))) if closes else 0
    if not n:
        return float(initial.totals.get(cash, 0.0))
    first = {sym: c[:1] for sym, c in closes.items()}
    return float(equity_values(assets, [initial], np.zeros(1, np.int64), first, cash, margin)[0])


def exposure_of(
    assets: Mapping[str, AssetInstance], states: Sequence[AccountMark], at: np.ndarray, margin: bool
) -> float:
    """The share of price points with a position open (margin) or base currency held (spot)."""
    if not len(at):
        return 0.0
    if margin:
        exposed = np.array([bool(m.positions) for m in states])
    else:
        bases = {ai.base for ai in assets.values()}
        exposed = np.array([any(m.totals.get(b, 0.0) > 1e-12 for b in bases) for m in states])
    return float(np.mean(exposed[at]))


def buy_and_hold(closes: Mapping[str, np.ndarray], start: float, index: pd.Index) -> pd.Series:
    """The equity of putting `start` into the markets in equal parts at their first price and
    holding: what the strategy is measured against."""
    values = np.zeros(len(index))
    usable = {sym: c for sym, c in closes.items() if len(c) and np.isfinite(c[0]) and c[0] > 0}
    for c in usable.values():
        values += start / len(usable) * c / c[0]
    if not usable:
        values[:] = start
    series = pd.Series(values, index=index, name="buy_and_hold")
    series.attrs["start"] = start
    return series


def equity_curve(rt: Runtime) -> pd.Series:
    """Equity at each bar's close, after that bar's tick; `attrs["start"]` holds the value
    before the first tick (the initial cash at the first prices)."""
    driver = _history(rt)
    bars = driver.bars
    first = driver.start_index - 1
    last = max(driver.end_index, driver.cursor.n)
    index_bars = np.arange(first, last)
    n = len(index_bars)
    closes = {sym: bars.columns[sym]["close"][first:last] for sym in bars.columns}
    marks = driver.marks
    mark_at = np.array([m[0] for m in marks], dtype=np.int64)
    k = np.searchsorted(mark_at, index_bars, side="right")  # 0 = before any fill
    k0 = np.zeros(1, dtype=np.int64)  # the state before the first tick
    state = rt.state
    initial = _initial_totals(rt)
    currencies = sorted(set(initial) | {c for m in marks for c in m[1]} | set(state.balances))
    if rt.margin:
        settle = rt.cash_currency
        totals = np.array([initial.get(settle, 0.0)] + [m[1].get(settle, 0.0) for m in marks])
        equity = totals[k].astype(float)
        start = float(totals[0])
        for ai in rt.universe:
            size = np.array([0.0] + [m[2].get(ai.symbol, (0.0, 0.0))[0] for m in marks])
            entry = np.array([0.0] + [m[2].get(ai.symbol, (0.0, 0.0))[1] for m in marks])
            equity += size[k] * ai.contract_size * (closes[ai.symbol] - entry[k])
    else:
        prices = _currency_prices(rt, closes, n)
        equity = np.zeros(n)
        start = 0.0
        for c in currencies:
            if c not in prices:
                continue  # no market prices it in the cash currency
            amounts = np.array([initial.get(c, 0.0)] + [m[1].get(c, 0.0) for m in marks])
            equity += amounts[k] * prices[c]
            start += float((amounts[k0] * prices[c][:1])[0]) if n else 0.0
    times = pd.DatetimeIndex(
        (bars.time_ns[first:last] + bars.timeframe_ns).view("datetime64[ns]"),
        tz="UTC",
        name="time",
    )
    series = pd.Series(equity, index=times, name="equity")
    series.attrs["start"] = start
    return series


def _initial_totals(rt: Runtime) -> dict[str, float]:
    return dict(rt.initial_cash)


def compute_stats(
    equity: pd.Series,
    trades: pd.DataFrame,
    timeframe_ns: int,
    exposure: float,
    cash: str,
    benchmark: pd.Series | None = None,
) -> dict[str, float]:
    """The statistics of an equity curve sampled once per ``timeframe_ns``: Sharpe and Sortino
    are per-period ratios annualised by ``sqrt(periods_per_year)`` (365-day years, crypto
    trades every day); CAGR compounds the total return over the curve's span (NaN under 30
    days); Calmar is CAGR over max drawdown. `benchmark` (buy and hold) gives
    ``buy_and_hold_return``."""
    values = equity.to_numpy(dtype=float)
    start = float(equity.attrs.get("start", values[0] if len(values) else math.nan))
    end = float(values[-1]) if len(values) else start  # no tick yet: nothing moved
    total_return = end / start - 1 if start else math.nan
    values = np.concatenate(([start], values))
    peak = np.maximum.accumulate(values)
    drawdown = float(np.max(1 - values / peak)) if len(values) else 0.0
    returns = np.diff(values) / values[:-1]
    per_year = YEAR_NS / timeframe_ns
    std = float(np.std(returns)) if len(returns) else 0.0
    mean = float(np.mean(returns)) if len(returns) else 0.0
    sharpe = mean / std * math.sqrt(per_year) if std > 0 else 0.0
    downside = returns[returns < 0]
    dstd = float(np.sqrt(np.mean(downside**2))) if len(downside) else 0.0
    sortino = mean / dstd * math.sqrt(per_year) if dstd > 0 else 0.0
    closing = trades["realized_pnl"][trades["realized_pnl"] != 0] if len(trades) else pd.Series()
    wins = closing[closing > 0]
    losses = closing[closing < 0]
    win_rate = len(wins) / len(closing) if len(closing) else 0.0
    gross_loss = -float(losses.sum())
    profit_factor = (
        float(wins.sum()) / gross_loss if gross_loss > 0 else math.inf if len(wins) else 0.0
    )
    fees = 0.0
    if len(trades):
        in_cash = trades["fee_currency"] == cash
        fees = float(trades.loc[in_cash, "fee"].sum())
        fees += float((trades.loc[~in_cash, "fee"] * trades.loc[~in_cash, "price"]).sum())
    span_years = len(returns) * timeframe_ns / YEAR_NS
    # Under a month, compounding to a year says nothing (two days of -7% is -100% a year).
    cagr = (
        (end / start) ** (1 / span_years) - 1
        if span_years >= MIN_CAGR_YEARS and start > 0 and end > 0
        else math.nan
    )
    calmar = cagr / drawdown if drawdown > 0 and math.isfinite(cagr) else math.nan
    bench = math.nan
    if benchmark is not None and len(benchmark):
        b_start = float(benchmark.attrs.get("start", benchmark.iloc[0]))
        bench = float(benchmark.iloc[-1]) / b_start - 1 if b_start else math.nan
    return {
        "total_return": total_return,
        "buy_and_hold_return": bench,
        "cagr": cagr,
        "calmar": calmar,
        "max_drawdown": drawdown,
        "sharpe": sharpe,
        "sortino": sortino,
        "win_rate": win_rate,
        "profit_factor": profit_factor,
        "exposure": exposure,
        "trades": float(len(trades)),
        "fees": fees,
        # Net funding paid on perpetual positions (negative: received).
        "funding": float(trades["funding"].sum()) if "funding" in trades else 0.0,
        "start_equity": start,
        "end_equity": end,
        "periods_per_year": per_year,
    }


def _exposure(rt: Runtime, equity_len: int) -> float:
    driver = _history(rt)
    if equity_len == 0:
        return 0.0
    first = driver.start_index - 1
    bars_idx = np.arange(first, first + equity_len)
    marks = driver.marks
    mark_at = np.array([m[0] for m in marks], dtype=np.int64)
    k = np.searchsorted(mark_at, bars_idx, side="right")
    if rt.margin:
        exposed = np.array([False] + [bool(m[2]) for m in marks])
    else:
        initial = _initial_totals(rt)
        bases = {ai.base for ai in rt.universe}
        exposed = np.array(
            [any(initial.get(b, 0.0) > 0 for b in bases)]
            + [any(m[1].get(b, 0.0) > 1e-12 for b in bases) for m in marks]
        )
    return float(np.mean(exposed[k]))


def _history(rt: Runtime) -> BarHistory:
    history = rt.bar_history
    if history is None:
        raise ConfigError("bar results are computed for Sim runs; this strategy is not in Sim")
    return history


class TickMark(NamedTuple):
    """Live and Paper, at one tick: each market's mark price and the account."""

    ts_ns: int
    prices: dict[str, float]
    account: AccountMark


class TickHistory:
    """What a Live or Paper run keeps for its results: the account and the mark prices at
    each tick (also recorded in the trace as MARK events, so a report reads them back)."""

    def __init__(self) -> None:
        self.start: TickMark | None = None
        self.marks: list[TickMark] = []

    def take(self, rt: Runtime, ts_ns: int) -> TickMark:
        prices = {
            ai.symbol: float(ai.price)
            for ai in rt.universe
            if ai.price is not None and math.isfinite(ai.price)
        }
        mark = TickMark(ts_ns, prices, mark_of(rt.state, ts_ns))
        if self.start is None:
            self.start = mark
        else:
            self.marks.append(mark)
        return mark


def mark_equity(rt: Runtime, mark: TickMark) -> float:
    """The account of `mark` valued at its prices (a market without a price yet counts 0)."""
    closes = {sym: np.array([mark.prices.get(sym, math.nan)]) for sym in rt.state.assets}
    value = equity_values(
        rt.state.assets,
        [mark.account],
        np.zeros(1, np.int64),
        closes,
        rt.cash_currency,
        bool(rt.margin),
    )[0]
    return float(value) if math.isfinite(value) else math.nan


def _tick_results(rt: Runtime, history: TickHistory) -> Results:
    trades = trades_frame(rt)
    marks = history.marks
    index = pd.DatetimeIndex(
        np.array([m.ts_ns for m in marks], dtype=np.int64).view("datetime64[ns]"),
        tz="UTC",
        name="time",
    )
    assets = rt.state.assets
    closes = {
        sym: np.array([m.prices.get(sym, math.nan) for m in marks], dtype=float) for sym in assets
    }
    for sym, c in closes.items():  # a market not priced yet at a tick keeps its last price
        closes[sym] = pd.Series(c).ffill().bfill().to_numpy(dtype=float)
    states = [m.account for m in marks]
    at = np.arange(len(marks))
    cash, margin = rt.cash_currency, bool(rt.margin)
    equity = equity_values(assets, states, at, closes, cash, margin)
    series = pd.Series(equity, index=index, name="equity")
    start = history.start
    series.attrs["start"] = (
        mark_equity(rt, start)
        if start is not None
        else (float(equity[0]) if len(equity) else math.nan)
    )
    bench = buy_and_hold(closes, float(series.attrs["start"]), index)
    stats = compute_stats(
        series,
        trades,
        timeframe_ns(rt.timeframe),
        exposure_of(assets, states, at, margin),
        cash,
        bench,
    )
    return Results(trades, series, stats)


def compute_results(rt: Runtime) -> Results:
    """The results of `rt`'s run so far: from its bars (Sim), its ticks (Live, Paper) or its
    trace (a replayed strategy)."""
    if rt.bar_history is None:
        if rt.tick_history is not None:
            return _tick_results(rt, rt.tick_history)
        if rt.results_source is not None:
            return rt.results_source()
        raise ConfigError(
            f"strategy {rt.name} has no results: it has not been wired to a mode or a trace"
        )
    history = _history(rt)
    trades = trades_frame(rt)
    equity = equity_curve(rt)
    first = history.start_index - 1
    last = first + len(equity)
    closes = {sym: history.bars.columns[sym]["close"][first:last] for sym in history.bars.columns}
    stats = compute_stats(
        equity,
        trades,
        history.bars.timeframe_ns,
        _exposure(rt, len(equity)),
        rt.cash_currency,
        buy_and_hold(closes, float(equity.attrs["start"]), equity.index),
    )
    return Results(trades, equity, stats)
