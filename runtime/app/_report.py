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
import html
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from runtime._errors import ConfigError, TraceError
from runtime.engine._replay import trace_run
from runtime.engine._results import STAT_ROWS, annualisation, buy_and_hold, format_stats
from runtime.engine._strategy import Strategy, runtime_of
from runtime.model._bars import OHLCV

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

# The statistics a report shows, in order: (key in `Report.stats`, label, format); the same
# rows as `Results.summary`.
STATS: tuple[tuple[str, str, Callable[[float], str]], ...] = STAT_ROWS

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
    * ``benchmark``: buy and hold, the start equity put into the markets in equal parts at
      their first price, on the same index.
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
    benchmark: pd.Series  # buy and hold: the start equity split equally across the markets

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
        """The statistics as aligned text lines, under a line naming the run, then round-trip
        durations and one line per market."""
        lines = [self._headline(), format_stats(self.stats)]
        trips = self.round_trips()
        if len(trips):
            d = trips["duration"]
            lines.append(
                f"{'round trips':<14} {len(trips):>14}   duration mean {_span(d.mean())}, "
                f"median {_span(d.median())}, longest {_span(d.max())}"
            )
        per_market = self.market_stats()
        if len(per_market) > 1 or len(trips):
            lines.append(per_market.to_string(float_format=lambda v: f"{v:.4g}"))
        return "\n".join(lines)

    def round_trips(self) -> pd.DataFrame:
        """Each position from the fill that opened it from flat to the fill that closed it:
        market, side (long/short), opened, closed, duration, fills, realized PnL (fees
        included). A position still open at the end is left out; a reversal closes one trip
        and opens the next."""
        rows: list[dict[str, Any]] = []
        open_trip: dict[str, dict[str, Any]] = {}
        held: dict[str, float] = {}
        for r in self.trades.to_dict("records"):
            sym = r["symbol"]
            before = held.get(sym, 0.0)
            after = before + (r["amount"] if r["side"] == "buy" else -r["amount"])
            after = 0.0 if abs(after) < 1e-12 else after
            held[sym] = after
            trip = open_trip.get(sym)
            if trip is None and after != 0.0:
                trip = open_trip[sym] = {
                    "market": sym,
                    "side": "long" if after > 0 else "short",
                    "opened": r["time"],
                    "fills": 0,
                    "realized_pnl": 0.0,
                }
            if trip is None:
                continue
            trip["fills"] += 1
            trip["realized_pnl"] += r["realized_pnl"]
            if after == 0.0 or (before != 0.0 and (before > 0) != (after > 0)):
                trip["closed"] = r["time"]
                rows.append(open_trip.pop(sym))
                if after != 0.0:  # reversed: the rest opens the next trip
                    open_trip[sym] = {
                        "market": sym,
                        "side": "long" if after > 0 else "short",
                        "opened": r["time"],
                        "fills": 0,
                        "realized_pnl": 0.0,
                    }
        columns = ["market", "side", "opened", "closed", "duration", "fills", "realized_pnl"]
        frame = pd.DataFrame(rows, columns=[c for c in columns if c != "duration"])
        frame.insert(4, "duration", frame["closed"] - frame["opened"])
        return frame[columns]

    def market_stats(self) -> pd.DataFrame:
        """One row per market: fills, round trips, realized PnL and fees (in the cash
        currency), win rate of closing fills, mean holding time, and the market's own return
        over the run (its buy and hold)."""
        trips = self.round_trips()
        rows = []
        for sym, bars in self.prices.items():
            fills = self.trades[self.trades["symbol"] == sym]
            closing = fills["realized_pnl"][fills["realized_pnl"] != 0]
            in_cash = fills["fee_currency"] == self.cash_currency
            fees = float(fills.loc[in_cash, "fee"].sum()) + float(
                (fills.loc[~in_cash, "fee"] * fills.loc[~in_cash, "price"]).sum()
            )
            closes = bars["close"].to_numpy(dtype=float)
            own = trips[trips["market"] == sym]
            rows.append(
                {
                    "market": sym,
                    "fills": len(fills),
                    "round_trips": len(own),
                    "realized_pnl": float(fills["realized_pnl"].sum()),
                    "fees": fees,
                    "win_rate": float((closing > 0).mean()) if len(closing) else math.nan,
                    "mean_hold": _span(own["duration"].mean()) if len(own) else "-",
                    "market_return": float(closes[-1] / closes[0] - 1)
                    if len(closes) and closes[0]
                    else math.nan,
                }
            )
        return pd.DataFrame(rows).set_index("market")

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
            f" {len(self.equity):,} {'bars' if self.mode == 'sim' else 'ticks'} of "
            f"{', '.join(self.prices)}{span}"
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
    def html(
        self, width: int = 1600, height: int | None = None, max_trades: int | None = None
    ) -> str:
        """One self-contained interactive HTML page (plotly.js is inlined: the page loads
        nothing): the statistics table (``<table class="stats" id="stats">``, one row per
        statistic with ``data-stat`` set to its key) with how the ratios are annualised, the
        per-market table (``id="markets"``), the charts (``<div id="charts">``: equity beside
        buy and hold, drawdown, and each market's price with its entries and exits, sharing
        one zoomable time axis), and the trades table (``<table class="trades"
        id="trades">``), every fill unless ``max_trades`` is given: then the first and last
        ``max_trades // 2`` and a row saying how many were left out. ``width`` is the charts'
        width in pixels; ``height`` their height (default `default_height`)."""
        if max_trades is not None and max_trades < 2:
            raise ConfigError(f"max_trades={max_trades} must be at least 2 (first and last)")
        height = self.default_height if height is None else height
        esc = html.escape
        stats_rows = "\n".join(
            f'<tr data-stat="{key}"><th>{esc(label)}</th><td>{esc(fmt(self.stats[key]))}</td></tr>'
            for key, label, fmt in STATS
        )
        per_market = self.market_stats()
        markets_table = per_market.to_html(
            table_id="markets",
            classes="markets",
            float_format=lambda v: f"{v:.6g}",
            border=0,
        )
        trips = self.round_trips()
        durations = (
            f"{len(trips)} round trips; holding time mean {_span(trips['duration'].mean())}, "
            f"median {_span(trips['duration'].median())}, longest "
            f"{_span(trips['duration'].max())}"
            if len(trips)
            else "no closed round trip"
        )
        return _PAGE.format(
            title=esc(f"vigil report: {self.strategy} {self.run_id}"),
            headline=esc(self._headline()),
            cash=esc(self.cash_currency),
            stats=stats_rows,
            annualised=esc(annualisation(self.stats.get("periods_per_year", math.nan))),
            markets=markets_table,
            durations=esc(durations),
            charts=_plotly_div(self, width, height),
            n_trades=len(self.trades),
            trades=_trades_table(self.trades, max_trades),
        )

    def to_html(
        self,
        path: str | Path,
        width: int = 1600,
        height: int | None = None,
        max_trades: int | None = None,
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


def report_from_trace(path: str | Path, run: int | str = -1) -> Report:
    """The report of one run of the trace at ``path``: ``run`` is an index into its runs
    (-1, the default, is the last) or a run id. Valued as `trace_run` says: at each bar (Sim)
    or tick (Live, Paper).

    Reads the run's events only; the trace is not modified, so this is safe next to a live
    writer. Raises TraceError if the trace cannot be read, the run does not exist, or the run
    recorded no prices; ReplayMismatch if its events do not rebuild the state they recorded."""
    traced = trace_run(path, run)
    head = traced.head
    return _assemble(
        strategy=str(head.get("strategy")),
        run_id=str(head.get("run_id")),
        mode=str(head.get("mode")),
        exchange=str(head.get("exchange")),
        margin=head.get("margin"),
        cash_currency=str(head.get("cash_currency")),
        timeframe_ns=traced.timeframe_ns,
        stats=traced.results.stats,
        equity=traced.results.equity,
        prices=traced.prices,
        trades=traced.results.trades,
    )


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
        benchmark=buy_and_hold(
            {sym: frame["close"].to_numpy(dtype=float) for sym, frame in prices.items()},
            start,
            equity.index,
        ),
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
    eq_ax.plot(ex, ey, color="#2166ac", linewidth=1.0, label="equity")
    bx, by = _thin(x, report.benchmark.to_numpy(dtype=float), max_points)
    eq_ax.plot(bx, by, color="#888888", linewidth=0.9, linestyle=":", label="buy and hold")
    eq_ax.legend(loc="upper left", fontsize=8, frameon=False)
    stats = report.stats
    eq_ax.set_title(
        f"equity ({report.cash_currency})   return {stats['total_return'] * 100:+.2f}% "
        f"(buy and hold {stats.get('buy_and_hold_return', math.nan) * 100:+.2f}%)   "
        f"max drawdown {stats['max_drawdown'] * 100:.2f}%   "
        f"sharpe {stats['sharpe']:.2f} (annualised)   trades {int(stats['trades'])}",
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


def _span(value: Any) -> str:
    """A duration as text: "3d 4h", "2h 15m", "45m", "30s"."""
    if value is None or pd.isna(value):
        return "-"
    seconds = int(pd.Timedelta(value).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m" + (f" {secs}s" if secs else "")
    return f"{secs}s"


# Points per line in the HTML charts: enough to zoom into a long run, small enough to load.
_HTML_POINTS = 20_000


def _plotly_div(report: Report, width: int, height: int) -> str:
    """The interactive charts as one ``<div id="charts">`` with plotly.js inlined."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n_markets = len(report.prices)
    titles = [
        f"equity ({report.cash_currency}) and buy and hold",
        "drawdown (%)",
        *(f"{sym}: price with entries (▲ buy, ▼ sell)" for sym in report.prices),
    ]
    fig = make_subplots(
        rows=2 + n_markets,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04 if n_markets < 4 else 0.02,
        row_heights=[3.0, 1.2] + [2.6] * n_markets,
        subplot_titles=titles,
    )
    x = _times(report.equity.index)

    def line(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _thin(x, values, _HTML_POINTS)

    ex, ey = line(report.equity.to_numpy(dtype=float))
    fig.add_trace(
        go.Scatter(x=ex, y=ey, name="equity", line={"color": "#2166ac", "width": 1.4}), 1, 1
    )
    bx, by = line(report.benchmark.to_numpy(dtype=float))
    fig.add_trace(
        go.Scatter(
            x=bx, y=by, name="buy and hold", line={"color": "#888888", "width": 1, "dash": "dot"}
        ),
        1,
        1,
    )
    dx, dy = line(-report.drawdown.to_numpy(dtype=float) * 100)
    fig.add_trace(
        go.Scatter(
            x=dx,
            y=dy,
            name="drawdown %",
            fill="tozeroy",
            line={"color": _SELL_COLOR, "width": 0.8},
        ),
        2,
        1,
    )
    trades = report.trades
    for row, (sym, bars) in enumerate(report.prices.items(), start=3):
        px, py = _thin(_times(bars.index), bars["close"].to_numpy(dtype=float), _HTML_POINTS)
        fig.add_trace(
            go.Scatter(x=px, y=py, name=f"{sym} close", line={"color": "#404040", "width": 1}),
            row,
            1,
        )
        fills = trades[trades["symbol"] == sym]
        for side, symbol, color in (
            ("buy", "triangle-up", _BUY_COLOR),
            ("sell", "triangle-down", _SELL_COLOR),
        ):
            rows = fills[fills["side"] == side]
            text = [
                f"{side} {a:.6g} @ {p:.8g}<br>{act}, fee {f:.4g} {c}<br>pnl {pnl:+.4g}"
                for a, p, act, f, c, pnl in zip(
                    rows["amount"],
                    rows["price"],
                    rows["action"],
                    rows["fee"],
                    rows["fee_currency"],
                    rows["realized_pnl"],
                    strict=True,
                )
            ]
            fig.add_trace(
                go.Scatter(
                    x=_times(pd.DatetimeIndex(rows["time"])),
                    y=rows["price"].to_numpy(dtype=float),
                    mode="markers",
                    name=f"{sym} {side} ({len(rows)})",
                    marker={"symbol": symbol, "color": color, "size": 9},
                    text=text,
                    hoverinfo="text+x",
                ),
                row,
                1,
            )
    fig.update_layout(
        width=width,
        height=height,
        template="plotly_white",
        hovermode="closest",
        margin={"l": 70, "r": 30, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.03},
    )
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=True,
            div_id="charts",
            config={"displaylogo": False, "scrollZoom": True},
        )
    )


def _cell(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, float):
        return f"{value:.8g}"
    return html.escape(str(value))


def _trades_table(trades: pd.DataFrame, max_rows: int | None) -> str:
    columns = [c for c in _TRADE_COLUMNS if c in trades.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)

    def rows(frame: pd.DataFrame) -> list[str]:
        return [
            f'<tr class="{html.escape(str(r["side"]))}">'
            + "".join(f"<td>{_cell(r[c])}</td>" for c in columns)
            + "</tr>"
            for r in frame.to_dict("records")
        ]

    if max_rows is not None and len(trades) > max_rows:
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
p.note {{ color: #555; font-size: 13px; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right; }}
table.stats th {{ text-align: left; font-weight: normal; color: #555; }}
table.trades tr.buy td:nth-child(3) {{ color: #1a9850; }}
table.trades tr.sell td:nth-child(3) {{ color: #d73027; }}
tr.omitted td {{ text-align: center; color: #888; }}
</style>
</head>
<body>
<h1>{headline}</h1>
<h2>Statistics ({cash})</h2>
<table class="stats" id="stats">
{stats}
</table>
<p class="note">Sharpe and Sortino: {annualised}. CAGR and Calmar need 30 days or more.</p>
<h2>Markets</h2>
{markets}
<p class="note">{durations}</p>
<h2>Charts</h2>
<p class="note">Drag to zoom, double-click to reset; the panels share the time axis.</p>
{charts}
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
