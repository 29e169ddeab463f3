"""Reports: statistics, the equity curve with drawdown, and each market's price with its fills,
as text, a PNG and a self-contained HTML page.

A report comes from a finished Sim strategy (`report_from_strategy`) or from a trace alone
(`report_from_trace`). From a trace, the engine's recorded events are applied again to a fresh
state, as replay does, and the balances and positions after each fill are marked to market at
every recorded bar's close:

* spot: every currency's total, priced in the cash currency through the markets' closes;
* margin: the settle currency's total plus each position's unrealised PnL,
  ``contracts × contract size × (close − entry)``.

That is the rule `Results.equity` follows, so for a Sim run both give the same curve and the
same statistics. A trace has prices only if its run recorded bars (``BAR`` events with config
``trace_market=True``, or ``BARS`` blocks in newer Sim runs); without them `report_from_trace`
raises `TraceError` saying so.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
import pandas as pd

from runtime._errors import ConfigError, TraceError
from runtime.engine._engine import BalanceUpdated, Event, OrderFilled, PositionUpdated, State
from runtime.engine._replay import runtime_from_start
from runtime.engine._replica import Replica, settles_fills
from runtime.engine._results import account_mark, compute_stats, trades_frame
from runtime.engine._strategy import Strategy, runtime_of
from runtime.model._assets import AssetInstance
from runtime.model._bars import OHLCV, timeframe_ns
from traces import Kind, choose_run, read_trace

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "STATS",
    "Report",
    "render",
    "report_from_strategy",
    "report_from_trace",
    "report_main",
]

# The statistics a report shows, in order: (key in `Report.stats`, label, format).
STATS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("total_return", "total return", lambda v: f"{v * 100:+.2f}%"),
    ("max_drawdown", "max drawdown", lambda v: f"{v * 100:.2f}%"),
    ("sharpe", "sharpe", lambda v: f"{v:.2f}"),
    ("sortino", "sortino", lambda v: f"{v:.2f}"),
    ("win_rate", "win rate", lambda v: f"{v * 100:.1f}%"),
    ("profit_factor", "profit factor", lambda v: f"{v:.2f}"),
    ("exposure", "exposure", lambda v: f"{v * 100:.1f}%"),
    ("trades", "trades", lambda v: f"{int(v)}"),
    ("fees", "fees", lambda v: f"{v:.2f}"),
    ("funding", "funding", lambda v: f"{v:.2f}"),  # paid on perpetual positions
    ("start_equity", "start equity", lambda v: f"{v:.2f}"),
    ("end_equity", "end equity", lambda v: f"{v:.2f}"),
)

# PNG geometry, in pixels. The height grows with the number of markets so each price panel
# keeps a readable size; `Report.default_height` gives it.
_BASE_HEIGHT = 560  # title, equity and drawdown panels
_PANEL_HEIGHT = 280  # one market's price panel
_DPI = 100
_MIN_SIDE = 200  # below this the panels' fixed margins leave no room to draw
_MAX_SIDE = 20_000  # Agg's limit is 2**16 pixels; far past any screen
_BUY_COLOR = "#1a9850"
_SELL_COLOR = "#d73027"

# The trade columns the HTML page shows, in order.
_TRADE_COLUMNS = (
    "time",
    "symbol",
    "side",
    "action",
    "amount",
    "price",
    "value",
    "fee",
    "fee_currency",
    "realized_pnl",
    "order_type",
    "client_id",
)

# Engine events that change balance totals or positions: the equity curve's breakpoints.
_MARKING_EVENTS = (OrderFilled, BalanceUpdated, PositionUpdated)
# Market bars: one bar per event, and (newer Sim runs) blocks of bars per market.
_BAR_KINDS = tuple(k for k in ("BAR", "BARS") if k in Kind.__members__)


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of one run: statistics, equity, drawdown, prices and fills.

    * ``stats``: the keys of `STATS` (total_return, max_drawdown, sharpe, sortino, win_rate,
      profit_factor, exposure, trades, fees, funding, start_equity, end_equity); fractions, not
      percent.
    * ``equity``: equity in ``cash_currency`` at each bar's close (a Series indexed by close
      time, UTC); ``equity.attrs["start"]`` is the value before the first bar.
    * ``drawdown``: ``1 − equity / running peak`` (the peak includes the start), same index.
    * ``prices``: per market, its bars (open, high, low, close, volume) on the same index.
    * ``trades``: every fill, as `Results.trades`, plus ``action``: "entry" (the position
      grows from flat or in its direction), "exit" (it shrinks) or "reverse" (it flips).
    """

    strategy: str
    run_id: str
    mode: str
    exchange: str
    margin: str | None
    cash_currency: str
    timeframe_ns: int
    stats: Mapping[str, float]
    equity: pd.Series
    drawdown: pd.Series
    prices: Mapping[str, pd.DataFrame]
    trades: pd.DataFrame

    @property
    def markets(self) -> list[str]:
        return list(self.prices)

    @property
    def default_height(self) -> int:
        """The PNG height used when none is given: grows with the number of markets."""
        return _BASE_HEIGHT + _PANEL_HEIGHT * len(self.prices)

    def fills(self, symbol: str) -> pd.DataFrame:
        """The fills of one market (rows of ``trades``)."""
        if symbol not in self.prices:
            raise ConfigError(
                f"market {symbol!r} is not in this report; its markets are {', '.join(self.prices)}"
            )
        return self.trades[self.trades["symbol"] == symbol]

    def summary(self) -> str:
        """The statistics as aligned text lines, under a line naming the run."""
        lines = [self._headline()]
        lines += [f"{label:<14} {fmt(self.stats[key]):>14}" for key, label, fmt in STATS]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Report {self.strategy} {self.run_id}>\n{self.summary()}"

    def _headline(self) -> str:
        span = ""
        if len(self.equity):
            first, last = self.equity.index[0], self.equity.index[-1]
            span = f" {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
        margin = f" {self.margin}" if self.margin else ""
        return (
            f"{self.strategy} ({self.mode}, {self.exchange}{margin}) run {self.run_id}:"
            f" {len(self.equity):,} bars of {', '.join(self.prices)}{span}"
        )

    # PNG.
    def png_bytes(self, width: int = 1600, height: int | None = None) -> bytes:
        """The figure as PNG bytes, exactly ``width × height`` pixels (height defaults to
        `default_height`): the equity curve, the drawdown beneath it, then one price panel per
        market with buys (green ▲) and sells (red ▼) at their fill prices."""
        height = self.default_height if height is None else height
        for name, value in (("width", width), ("height", height)):
            if not (isinstance(value, int) and _MIN_SIDE <= value <= _MAX_SIDE):
                raise ConfigError(
                    f"PNG {name}={value!r} must be a whole number of pixels from {_MIN_SIDE} "
                    f"to {_MAX_SIDE}"
                )
        return _render_png(self, width, height)

    def to_png(self, path: str | Path, width: int = 1600, height: int | None = None) -> Path:
        """Write `png_bytes(width, height)` to ``path``; returns the path. Raises ConfigError
        if it cannot be written (e.g. its directory does not exist)."""
        return _write(Path(path), self.png_bytes(width, height))

    # HTML.
    def html(self, width: int = 1600, height: int | None = None, max_trades: int = 200) -> str:
        """One self-contained HTML page: the statistics table (``<table class="stats"
        id="stats">``, one row per statistic with ``data-stat`` set to its key), the figure
        as an embedded PNG (a data URI: the page loads nothing), and the trades table
        (``<table class="trades" id="trades">``). With more than ``max_trades`` fills, the
        table shows the first and last ``max_trades // 2`` and says how many it left out."""
        if max_trades < 2:
            raise ConfigError(f"max_trades={max_trades} must be at least 2 (first and last)")
        png = base64.b64encode(self.png_bytes(width, height)).decode("ascii")
        esc = html.escape
        stats_rows = "\n".join(
            f'<tr data-stat="{key}"><th>{esc(label)}</th><td>{esc(fmt(self.stats[key]))}</td></tr>'
            for key, label, fmt in STATS
        )
        return _PAGE.format(
            title=esc(f"vigil report: {self.strategy} {self.run_id}"),
            headline=esc(self._headline()),
            cash=esc(self.cash_currency),
            stats=stats_rows,
            alt=esc(f"equity, drawdown and prices of {', '.join(self.prices)}"),
            png=png,
            n_trades=len(self.trades),
            trades=_trades_table(self.trades, max_trades),
        )

    def to_html(
        self,
        path: str | Path,
        width: int = 1600,
        height: int | None = None,
        max_trades: int = 200,
    ) -> Path:
        """Write `html(...)` to ``path`` (UTF-8); returns the path. Raises ConfigError if it
        cannot be written."""
        return _write(Path(path), self.html(width, height, max_trades).encode("utf-8"))


# ------------------------------------------------------------------------------------------------
# Building a report


def report_from_strategy(s: Strategy) -> Report:
    """The report of a finished Sim strategy, from its `results` and the bars it saw.

    Raises ConfigError if ``s`` is not in Sim mode."""
    rt = runtime_of(s)
    driver = rt.bar_history
    if driver is None:
        raise ConfigError(
            f"report_from_strategy needs a Sim run; {rt.name} is in "
            f"{type(rt.mode).__name__} mode: use report_from_trace(s.trace_path) for its trace"
        )
    results = s.results
    # The same bar range as `Results.equity` (see `runtime.engine._results._equity`).
    first = driver.start_index - 1
    last = max(driver.end_index, driver.cursor.n)
    index = results.equity.index
    prices = {
        sym: pd.DataFrame({c: cols[c][first:last] for c in OHLCV}, index=index)
        for sym, cols in driver.bars.columns.items()
    }
    return _assemble(
        strategy=rt.name,
        run_id=rt.run_id,
        mode=type(rt.mode).__name__.lower(),
        exchange=rt.exchange_id,
        margin=rt.margin,
        cash_currency=rt.cash_currency,
        timeframe_ns=driver.bars.timeframe_ns,
        stats=results.stats,
        equity=results.equity,
        prices=prices,
        trades=results.trades,
    )


class _Mark(NamedTuple):
    """Balance totals and signed positions (contracts, entry price) from time ``ts_ns`` on."""

    ts_ns: int
    totals: dict[str, float]
    positions: dict[str, tuple[float, float]]


def _mark(state: State, ts_ns: int) -> _Mark:
    return _Mark(ts_ns, *account_mark(state))


def report_from_trace(path: str | Path, run: int | str = -1) -> Report:
    """The report of one run of the trace at ``path``: ``run`` is an index into its runs
    (-1, the default, is the last) or a run id.

    Reads the run's engine events and bars only; the trace is not modified, so this is safe
    next to a live writer. A run that continued an earlier one (a restart) starts from the
    state the earlier runs left. Raises TraceError if the trace cannot be read, the run does
    not exist, or the run recorded no bars; ReplayMismatch if its events do not rebuild the
    state they recorded."""
    path = Path(path)
    replica = Replica(path)
    runs = replica.runs()
    chosen = choose_run(runs, run, path)
    first, head = replica.first_fresh_run(runs, chosen)
    lo, hi = runs[first].start_seq, runs[chosen].end_seq
    run_lo = runs[chosen].start_seq
    run_start_ns = int(runs[chosen].started_ns)

    rt = runtime_from_start(head, path)
    state, assets = rt.state, rt.state.assets
    settle = settles_fills(head)
    # Earlier runs of a restart: the state this run began in.
    replica.replay(state, lo, run_lo, settle_fills=settle)
    initial = _mark(state, run_start_ns)
    marks: list[_Mark] = []
    run_trades: set[str] = set()

    def mark(seq: int, ts_ns: int, event: Event, result: Any) -> None:
        nonlocal initial
        if not isinstance(event, _MARKING_EVENTS):
            return
        if not marks and not isinstance(event, OrderFilled):
            initial = _mark(state, run_start_ns)  # still the state the first fill starts from
            return
        marks.append(_mark(state, ts_ns))
        if isinstance(event, OrderFilled) and result is not None:
            run_trades.add(event.trade_id)

    replica.replay(state, run_lo, hi, on_event=mark, settle_fills=settle)

    stop_ns = runs[chosen].stopped_ns
    bars, tf_ns = _read_bars(path, head, lo, hi, run_start_ns, stop_ns)
    index = pd.DatetimeIndex(
        (bars.index.to_numpy(dtype=np.int64) + tf_ns).view("datetime64[ns]"),
        tz="UTC",
        name="time",
    )
    prices = {
        sym: pd.DataFrame({c: bars[(sym, c)].to_numpy(dtype=float) for c in OHLCV}, index=index)
        for sym in assets
    }
    closes = {sym: frame["close"].to_numpy() for sym, frame in prices.items()}
    close_ns = index.asi8  # ns since the epoch, the marks' clock
    at = np.searchsorted(np.array([m.ts_ns for m in marks], dtype=np.int64), close_ns, "right")
    states = [initial, *marks]
    cash = str(head.get("cash_currency"))
    equity = _equity_values(assets, states, at, closes, cash, bool(head.get("margin")))
    start = _start_equity(assets, initial, closes, cash, bool(head.get("margin")))
    series = pd.Series(equity, index=index, name="equity")
    series.attrs["start"] = start
    exposure = _exposure(assets, states, at, bool(head.get("margin")))

    trades = trades_frame(rt)
    if first != chosen:  # a restart: the state holds earlier runs' fills too
        trades = trades[trades["trade_id"].isin(run_trades)].reset_index(drop=True)
    stats = compute_stats(series, trades, tf_ns, exposure, cash)
    return _assemble(
        strategy=str(head.get("strategy")),
        run_id=str(head.get("run_id")),
        mode=str(head.get("mode")),
        exchange=str(head.get("exchange")),
        margin=head.get("margin"),
        cash_currency=cash,
        timeframe_ns=tf_ns,
        stats=stats,
        equity=series,
        prices=prices,
        trades=trades,
    )


def _read_bars(
    path: Path,
    head: Mapping[str, Any],
    lo: int,
    hi: int,
    run_start_ns: int,
    stop_ns: int | None,
) -> tuple[pd.DataFrame, int]:
    """The run's bars: columns ``(symbol, field)``, indexed by open time (ns), one row per bar
    whose close falls within the run; and the bar spacing in ns."""
    symbols = list(head.get("market_defs") or {})
    fix = (
        "record them with strategy(..., config={'trace_market': True}) or run it again with a "
        "vigil whose Sim runs record BARS blocks"
    )
    frame = read_trace(path, kinds=list(_BAR_KINDS)) if _BAR_KINDS else None
    if frame is not None:
        frame = frame[(frame["seq"] >= lo) & (frame["seq"] < hi)]
    if frame is None or not len(frame):
        raise TraceError(
            f"trace {path}: run {head.get('run_id')} recorded no bars (no BAR or BARS events), "
            f"so prices are missing and equity cannot be marked to market; {fix}"
        )
    per_symbol: dict[str, list[pd.DataFrame]] = {}
    fields = ("time", *OHLCV)
    single = frame[frame["kind"] == "BAR"]
    if len(single):  # one bar per event: one frame per market, columns pulled out at once
        decoded = single["payload"].array.to_numpy()  # decode once, not once per field
        table = pd.DataFrame.from_records(list(decoded), columns=list(fields))
        table["asset"] = single["asset"].astype(object).to_numpy()
        for sym, rows in table.groupby("asset", sort=False):
            per_symbol.setdefault(str(sym), []).append(rows[list(fields)])
    blocks = frame[frame["kind"] != "BAR"]
    for asset, payload in zip(
        blocks["asset"].astype(object).tolist(), blocks["payload"].array.to_numpy(), strict=True
    ):
        if isinstance(asset, str) and isinstance(payload, dict):
            per_symbol.setdefault(asset, []).append(pd.DataFrame({c: payload[c] for c in fields}))
    missing = [sym for sym in symbols if sym not in per_symbol]
    if missing:
        raise TraceError(
            f"trace {path}: run {head.get('run_id')} recorded no bars of {', '.join(missing)}, "
            f"so its prices are missing; {fix}"
        )
    columns: dict[tuple[str, str], pd.Series] = {}
    for sym in symbols:
        bars = pd.concat(per_symbol[sym], ignore_index=True)
        # A bar can be recorded twice (per tick and in a block): keep one per open time.
        bars = bars.drop_duplicates("time", keep="last").set_index("time").sort_index()
        for c in OHLCV:
            columns[(sym, c)] = bars[c].astype(float)
    table = pd.DataFrame(columns)
    table.index = table.index.astype(np.int64) * 1_000_000  # ms -> ns
    table = table.sort_index().ffill()  # markets are aligned; a gap keeps the last price
    opens = table.index.to_numpy(dtype=np.int64)
    tf_ns = _spacing(opens, str(head.get("timeframe") or "1m"))
    closes = opens + tf_ns
    keep = closes >= run_start_ns
    if stop_ns is not None:
        keep &= closes <= stop_ns
    table = table[keep]
    if not len(table) or table.isna().to_numpy().any():
        raise TraceError(
            f"trace {path}: run {head.get('run_id')} has no complete bars between its start "
            f"and stop, so prices are missing; {fix}"
        )
    return table, tf_ns


def _spacing(opens_ns: np.ndarray, timeframe: str) -> int:
    """The most common step between bars, as `load_bars` infers it; the run's declared
    timeframe when there are fewer than two bars."""
    steps = np.diff(opens_ns)
    steps = steps[steps > 0]
    if not len(steps):
        return timeframe_ns(timeframe)
    kinds, counts = np.unique(steps, return_counts=True)
    return int(kinds[np.argmax(counts)])


def _equity_values(
    assets: Mapping[str, AssetInstance],
    states: list[_Mark],
    at: np.ndarray,
    closes: Mapping[str, np.ndarray],
    cash: str,
    margin: bool,
) -> np.ndarray:
    """Equity at each bar; ``states[at[i]]`` holds at bar i. Mirrors `Results.equity`."""
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
    prices = _currency_prices(assets, closes, n, cash)
    equity = np.zeros(n)
    for c in sorted({c for m in states for c in m.totals}):
        if c in prices:  # a currency no market prices in the cash currency is left out
            amounts = np.array([m.totals.get(c, 0.0) for m in states])
            equity += amounts[at] * prices[c]
    return equity


def _start_equity(
    assets: Mapping[str, AssetInstance],
    initial: _Mark,
    closes: Mapping[str, np.ndarray],
    cash: str,
    margin: bool,
) -> float:
    """Equity before the first bar: the initial state at the first bar's prices."""
    if margin:
        value = initial.totals.get(cash, 0.0)
        for sym, (size, entry) in initial.positions.items():
            if len(closes[sym]):
                value += size * assets[sym].contract_size * (float(closes[sym][0]) - entry)
        return float(value)
    n = len(next(iter(closes.values()))) if closes else 0
    if not n:
        return 0.0
    prices = _currency_prices(assets, closes, n, cash)
    return float(
        sum(amount * prices[c][0] for c, amount in sorted(initial.totals.items()) if c in prices)
    )


def _currency_prices(
    assets: Mapping[str, AssetInstance], closes: Mapping[str, np.ndarray], n: int, cash: str
) -> dict[str, np.ndarray]:
    """Each currency's price in the cash currency per bar, through at most one intermediate
    (the rule of `Results.equity`)."""
    prices: dict[str, np.ndarray] = {cash: np.ones(n)}
    for _ in range(2):
        for sym, ai in assets.items():
            if ai.base not in prices and ai.quote in prices:
                prices[ai.base] = closes[sym] * prices[ai.quote]
            if ai.quote not in prices and ai.base in prices:
                prices[ai.quote] = prices[ai.base] / closes[sym]
    return prices


def _exposure(
    assets: Mapping[str, AssetInstance], states: list[_Mark], at: np.ndarray, margin: bool
) -> float:
    """The share of bars with a position open (margin) or base currency held (spot)."""
    if not len(at):
        return 0.0
    if margin:
        exposed = np.array([bool(m.positions) for m in states])
    else:
        bases = {ai.base for ai in assets.values()}
        exposed = np.array([any(m.totals.get(b, 0.0) > 1e-12 for b in bases) for m in states])
    return float(np.mean(exposed[at]))


def _assemble(
    *,
    strategy: str,
    run_id: str,
    mode: str,
    exchange: str,
    margin: str | None,
    cash_currency: str,
    timeframe_ns: int,
    stats: Mapping[str, float],
    equity: pd.Series,
    prices: dict[str, pd.DataFrame],
    trades: pd.DataFrame,
) -> Report:
    values = equity.to_numpy(dtype=float)
    start = float(equity.attrs.get("start", values[0] if len(values) else math.nan))
    # The peak includes the starting equity, as `compute_stats`'s max drawdown does.
    peak = np.maximum.accumulate(np.concatenate(([start], values)))[1:]
    drawdown = pd.Series(1 - values / peak, index=equity.index, name="drawdown")
    return Report(
        strategy=strategy,
        run_id=run_id,
        mode=mode,
        exchange=exchange,
        margin=margin,
        cash_currency=cash_currency,
        timeframe_ns=timeframe_ns,
        stats=MappingProxyType(dict(stats)),
        equity=equity,
        drawdown=drawdown,
        prices=MappingProxyType(prices),
        trades=_with_actions(trades),
    )


def _with_actions(trades: pd.DataFrame) -> pd.DataFrame:
    """``trades`` plus an ``action`` column: entry, exit or reverse, from each market's signed
    position (in fill amounts) before and after the fill."""
    out = trades.copy()
    actions: list[str] = []
    held: dict[str, float] = {}
    for sym, side, amount in zip(
        out["symbol"].tolist(), out["side"].tolist(), out["amount"].tolist(), strict=True
    ):
        before = held.get(sym, 0.0)
        after = before + (amount if side == "buy" else -amount)
        if abs(after) < 1e-12:
            after = 0.0
        if before == 0.0 or ((before > 0) == (after > 0) and abs(after) > abs(before)):
            actions.append("entry")
        elif after != 0.0 and (before > 0) != (after > 0):
            actions.append("reverse")
        else:
            actions.append("exit")
        held[sym] = after
    out["action"] = pd.Series(actions, index=out.index, dtype=object)
    return out


# ------------------------------------------------------------------------------------------------
# Rendering


def _write(path: Path, data: bytes) -> Path:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path}: {exc.strerror or exc}; check that its directory exists and "
            "is writable"
        ) from exc
    return path


def _times(index: pd.Index) -> np.ndarray:
    """A UTC DatetimeIndex as naive datetime64 values, which matplotlib plots directly."""
    return cast(pd.DatetimeIndex, index).tz_convert("UTC").tz_localize(None).to_numpy()


def _thin(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points that draw like the full line at this width: each bucket
    of consecutive points becomes its low and its high (so spikes stay visible)."""
    n = len(y)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    starts = np.linspace(0, n, buckets, endpoint=False).astype(np.int64)
    low = np.minimum.reduceat(y, starts)
    high = np.maximum.reduceat(y, starts)
    return np.repeat(x[starts], 2), np.column_stack((low, high)).ravel()


def _render_png(report: Report, width: int, height: int) -> bytes:
    # The object API with the Agg canvas: no pyplot global state, no GUI backend, thread-safe.
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A quarter pixel over: the canvas truncates width × dpi, and some sizes land a float
    # tick under the whole pixel.
    fig = Figure(figsize=((width + 0.25) / _DPI, (height + 0.25) / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    n_markets = len(report.prices)
    ratios = [3.0, 1.2] + [2.6] * n_markets
    axes = fig.subplots(
        len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios, "hspace": 0.28}
    )
    # Margins in pixels, so the layout does not depend on the size.
    fig.subplots_adjust(
        left=90 / width, right=1 - 30 / width, top=1 - 70 / height, bottom=50 / height
    )
    fig.suptitle(report._headline(), fontsize=11, x=90 / width, ha="left", y=1 - 12 / height)
    max_points = 2 * width
    x = _times(report.equity.index)

    eq_ax: Axes = axes[0]
    ex, ey = _thin(x, report.equity.to_numpy(dtype=float), max_points)
    eq_ax.plot(ex, ey, color="#2166ac", linewidth=1.0)
    stats = report.stats
    eq_ax.set_title(
        f"equity ({report.cash_currency})   return {stats['total_return'] * 100:+.2f}%   "
        f"max drawdown {stats['max_drawdown'] * 100:.2f}%   sharpe {stats['sharpe']:.2f}   "
        f"trades {int(stats['trades'])}",
        fontsize=9,
        loc="left",
    )
    eq_ax.grid(alpha=0.3)

    dd_ax: Axes = axes[1]
    dx, dy = _thin(x, -report.drawdown.to_numpy(dtype=float) * 100, max_points)
    dd_ax.fill_between(dx, dy, 0.0, color=_SELL_COLOR, alpha=0.35, linewidth=0)
    dd_ax.plot(dx, dy, color=_SELL_COLOR, linewidth=0.8)
    dd_ax.set_title("drawdown (%)", fontsize=9, loc="left")
    dd_ax.grid(alpha=0.3)

    trades = report.trades
    for ax, (sym, bars) in zip(axes[2:], report.prices.items(), strict=True):
        px, py = _thin(_times(bars.index), bars["close"].to_numpy(dtype=float), max_points)
        ax.plot(px, py, color="#404040", linewidth=0.9)
        fills = trades[trades["symbol"] == sym]
        buys, sells = fills[fills["side"] == "buy"], fills[fills["side"] == "sell"]
        # Markers shrink as fills crowd the panel, so the price line stays visible.
        size = float(np.clip(36 * math.sqrt(100 / max(len(fills), 1)), 4, 36))
        for rows, marker, color, label in (
            (buys, "^", _BUY_COLOR, f"buy ({len(buys)})"),
            (sells, "v", _SELL_COLOR, f"sell ({len(sells)})"),
        ):
            ax.scatter(
                _times(pd.DatetimeIndex(rows["time"])),
                rows["price"].to_numpy(dtype=float),
                marker=marker,
                color=color,
                s=size,
                zorder=3,
                label=label,
            )
        ax.set_title(f"{sym} close with fills", fontsize=9, loc="left")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        ax.grid(alpha=0.3)

    locator = mdates.AutoDateLocator()
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for ax in axes:
        ax.tick_params(labelsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, float):
        return f"{value:.8g}"
    return html.escape(str(value))


def _trades_table(trades: pd.DataFrame, max_rows: int) -> str:
    columns = [c for c in _TRADE_COLUMNS if c in trades.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)

    def rows(frame: pd.DataFrame) -> list[str]:
        return [
            f'<tr class="{html.escape(str(r["side"]))}">'
            + "".join(f"<td>{_cell(r[c])}</td>" for c in columns)
            + "</tr>"
            for r in frame.to_dict("records")
        ]

    if len(trades) > max_rows:
        half = max_rows // 2
        left_out = len(trades) - 2 * half
        body = [
            *rows(trades.iloc[:half]),
            f'<tr class="omitted"><td colspan="{len(columns)}">… {left_out:,} fills not '
            "shown …</td></tr>",
            *rows(trades.iloc[-half:]),
        ]
    else:
        body = rows(trades)
    if not body:
        body = [f'<tr class="omitted"><td colspan="{len(columns)}">no fills</td></tr>']
    return (
        f'<table class="trades" id="trades"><thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(body)
        + "\n</tbody></table>"
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; }}
h2 {{ font-size: 16px; margin-top: 28px; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right; }}
table.stats th {{ text-align: left; font-weight: normal; color: #555; }}
table.trades tr.buy td:nth-child(3) {{ color: #1a9850; }}
table.trades tr.sell td:nth-child(3) {{ color: #d73027; }}
tr.omitted td {{ text-align: center; color: #888; }}
img.plot {{ max-width: 100%; height: auto; margin-top: 16px; }}
</style>
</head>
<body>
<h1>{headline}</h1>
<h2>Statistics ({cash})</h2>
<table class="stats" id="stats">
{stats}
</table>
<img class="plot" alt="{alt}" src="data:image/png;base64,{png}">
<h2>Trades ({n_trades})</h2>
{trades}
</body>
</html>
"""


# ------------------------------------------------------------------------------------------------
# Command line


def render(
    trace_or_result: str | Path,
    html: str | Path | None = None,
    png: str | Path | None = None,
    *,
    run: int | str = -1,
    width: int = 1600,
    height: int | None = None,
) -> str:
    """`vigil report`: build the report of ``run`` of the trace at ``trace_or_result``, write
    the HTML page and/or the PNG if their paths are given, and return the statistics as text
    (with a line per file written). Raises TraceError for a path that is not a trace."""
    path = Path(trace_or_result)
    if not path.exists():
        raise TraceError(
            f"no trace at {path}: the path does not exist; pass a trace directory such as "
            "traces/binance/sim/sma_cross.zarr (vigil run writes one)"
        )
    if not path.is_dir():
        raise TraceError(
            f"{path} is a file; vigil report reads a trace directory "
            "(<root>/<exchange>/<account>/<strategy>.zarr)"
        )
    report = report_from_trace(path, run=run)
    lines = [report.summary()]
    if png is not None:
        lines.append(f"png            {report.to_png(png, width, height)}")
    if html is not None:
        lines.append(f"html           {report.to_html(html, width, height)}")
    return "\n".join(lines)


def report_main(args: argparse.Namespace) -> int:
    """The `vigil report` command: ``args.path``, ``args.html``, ``args.png`` and
    ``args.run`` (a run index as text, e.g. "-1", or a run id; optional). Prints the
    statistics and returns the exit status 0; errors raise `VigilError` subclasses."""
    raw = str(getattr(args, "run", "-1"))
    run: int | str = int(raw) if raw.lstrip("-").isdigit() else raw
    print(render(args.path, args.html, args.png, run=run))
    return 0
