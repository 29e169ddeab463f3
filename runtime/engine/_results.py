"""Sim results: the fills as a DataFrame, the equity curve and summary statistics.

Equity is marked to market at every bar's close. Holdings change only at fills, so the curve is
rebuilt after the run from the state after each fill (vectorised), not tracked per bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from runtime._errors import ConfigError

if TYPE_CHECKING:
    from runtime.engine._engine import State
    from runtime.engine._runtime import Runtime
    from runtime.model._assets import Cursor
    from runtime.model._bars import Bars

# (bar index, balance totals, positions as (signed contracts, entry price)) after a fill.
Mark = tuple[int, dict[str, float], dict[str, tuple[float, float]]]


def account_mark(state: State) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Balance totals, and each position as (signed contracts, entry price): what equity is
    valued from between fills."""
    positions: dict[str, tuple[float, float]] = {}
    for sym, ai in state.assets.items():
        if ai.long is not None:
            positions[sym] = (ai.long.contracts, ai.long.entry_price)
        elif ai.short is not None:
            positions[sym] = (-ai.short.contracts, ai.short.entry_price)
    return {c: b.total for c, b in state.balances.items()}, positions


class BarHistory(Protocol):
    """What a run with recorded bars keeps for its results (Sim): the bars, the shared cursor,
    the first and last bar the strategy saw, and the account after each fill."""

    bars: Bars
    cursor: Cursor
    start_index: int
    end_index: int
    marks: list[Mark]


YEAR_NS = 365 * 24 * 3600 * 10**9


@dataclass(frozen=True, slots=True)
class Results:
    trades: pd.DataFrame
    equity: pd.Series
    stats: dict[str, float]

    def summary(self) -> str:
        """The statistics as aligned text lines."""
        s = self.stats
        rows = [
            ("total return", f"{s['total_return'] * 100:+.2f}%"),
            ("max drawdown", f"{s['max_drawdown'] * 100:.2f}%"),
            ("sharpe", f"{s['sharpe']:.2f}"),
            ("sortino", f"{s['sortino']:.2f}"),
            ("win rate", f"{s['win_rate'] * 100:.1f}%"),
            ("profit factor", f"{s['profit_factor']:.2f}"),
            ("exposure", f"{s['exposure'] * 100:.1f}%"),
            ("trades", f"{int(s['trades'])}"),
            ("fees", f"{s['fees']:.2f}"),
            ("funding", f"{s.get('funding', 0.0):.2f}"),
            ("start equity", f"{s['start_equity']:.2f}"),
            ("end equity", f"{s['end_equity']:.2f}"),
        ]
        return "\n".join(f"{k:<14} {v:>14}" for k, v in rows)

    def __repr__(self) -> str:
        return f"<Results {int(self.stats['trades'])} trades>\n{self.summary()}"


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
    cash = rt.cash_currency
    prices: dict[str, np.ndarray] = {cash: np.ones(n)}
    for _ in range(2):
        for ai in rt.universe:
            if ai.base not in prices and ai.quote in prices:
                prices[ai.base] = closes[ai.symbol] * prices[ai.quote]
            if ai.quote not in prices and ai.base in prices:
                prices[ai.quote] = prices[ai.base] / closes[ai.symbol]
    return prices


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
    equity: pd.Series, trades: pd.DataFrame, timeframe_ns: int, exposure: float, cash: str
) -> dict[str, float]:
    values = equity.to_numpy(dtype=float)
    start = float(equity.attrs.get("start", values[0] if len(values) else math.nan))
    end = float(values[-1]) if len(values) else math.nan
    total_return = end / start - 1 if start else math.nan
    values = np.concatenate(([start], values))
    peak = np.maximum.accumulate(values)
    drawdown = float(np.max(1 - values / peak))
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
    return {
        "total_return": total_return,
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
        raise ConfigError("results are computed for Sim runs; this strategy is not in Sim mode")
    return history


def compute_results(rt: Runtime) -> Results:
    history = _history(rt)
    trades = trades_frame(rt)
    equity = equity_curve(rt)
    stats = compute_stats(
        equity,
        trades,
        history.bars.timeframe_ns,
        _exposure(rt, len(equity)),
        rt.cash_currency,
    )
    return Results(trades, equity, stats)
