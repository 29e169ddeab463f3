"""`replay_from_trace`: a strategy whose state is rebuilt from its trace by the replica.

The result is a Sim-mode strategy of the recorded class (or a bare `Strategy` when its file
cannot be loaded) over the recorded markets; it has no market data and no exchange, so it is
for reading state and results, not for placing orders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runtime._errors import ConfigError, TraceError
from runtime._progress import Progress
from runtime.engine._engine import BalanceUpdated, Event, OrderFilled, PositionUpdated
from runtime.engine._replica import Replica, settles_fills
from runtime.engine._results import (
    AccountMark,
    Results,
    buy_and_hold,
    compute_stats,
    equity_values,
    exposure_of,
    mark_of,
    start_equity,
    trades_frame,
)
from runtime.engine._runtime import Runtime, build_runtime
from runtime.engine._strategy import Strategy, bind, load_strategy_class
from runtime.model._bars import OHLCV, timeframe_ns
from runtime.model._modes import RunConfig, Sim
from traces import TraceOwner, choose_run, read_trace, trace_path_of


class ReplayClock:
    """The clock of a replayed strategy: the time of the last replayed event. It has no
    market and no exchange, so it cannot place orders."""

    def __init__(self, last_ms: int = 0) -> None:
        self.last_ms = last_ms

    def now_ms(self) -> int:
        return self.last_ms

    async def wait_order(self, order: Any, deadline_ms: int) -> bool:
        return False

    def request_stop(self) -> None:
        """Nothing runs."""

    async def run(self, s: Strategy, task_status: Any = None) -> None:
        raise ConfigError(
            "a replayed strategy has no market data to run on; load it with "
            "strategy(..., mode=Sim()) to backtest"
        )


def strategy_class_of(start: dict[str, Any]) -> type[Strategy]:
    """The recorded strategy's class, or `Strategy` if its file cannot be loaded any more."""
    source = start.get("source") or start.get("strategy")
    if source:
        try:
            return load_strategy_class(source)[1]
        except (ConfigError, OSError, ImportError):
            pass
    return Strategy


def runtime_from_start(start: dict[str, Any], path: Path) -> Runtime:
    """A runtime with an empty state over the markets a RUN_STARTED record names."""
    markets: dict[str, dict[str, Any]] = start.get("market_defs") or {}
    if not markets:
        raise TraceError(
            f"trace {path}: run {start.get('run_id')} has no market definitions in its "
            "RUN_STARTED record, so it cannot be rebuilt; it was written by an older vigil"
        )
    rt = build_runtime(
        name=str(start.get("strategy")),
        mode=Sim(),
        config=RunConfig(trace=False),
        exchange_id=str(start.get("exchange")),
        margin=start.get("margin"),
        markets=markets,
        cash_currency=str(start.get("cash_currency")),
        source=start.get("source"),
        timeframe=str(start.get("timeframe") or "1m"),
    )
    rt.driver = ReplayClock()
    return rt


def replay_from_trace(
    s_or_path: TraceOwner | str | Path, run: int | str = -1, *, progress: bool = False
) -> Strategy:
    """A Sim-mode strategy whose cash, committed cash, open orders, positions and trade history
    are those at the end of `run` (an index into the trace's runs, -1 the last, or a run id).

    Raises `ReplayMismatch` naming the seq of the first event that is missing, or whose
    recorded state digest, or the run's final snapshot, differs from what replay rebuilds;
    `TraceError` for a trace that cannot be read. With ``progress=True`` a progress bar is drawn
    on stderr."""
    path = trace_path_of(s_or_path)
    replica = Replica(path)
    runs = replica.runs()
    chosen = choose_run(runs, run, path)
    first, _ = replica.first_fresh_run(runs, chosen)
    start = replica.start_payload(runs, first)
    rt = runtime_from_start(start, path)
    try:
        s = strategy_class_of(start)()
    except TypeError:  # a strategy class that needs arguments: a bare one reads the same state
        s = Strategy()
    bind(s, rt)
    lo, hi = runs[first].start_seq, runs[chosen].end_seq
    bar = Progress(hi - lo, unit="events") if progress else None
    replica.replay(
        rt.state,
        lo,
        hi,
        stop_seq=runs[chosen].stop_seq,
        progress=bar,
        settle_fills=settles_fills(start),
    )
    if bar is not None:
        bar.finish(hi - lo)
    rt.continue_client_ids(replica.client_seq)
    rt.driver = ReplayClock(replica.last_ts_ns // 1_000_000)
    chosen_run = runs[chosen].run_id
    rt.results_source = lambda: trace_run(path, chosen_run).results
    return s


# ------------------------------------------------------------------------------------------------
# Results from a trace


@dataclass(frozen=True, slots=True)
class TraceRun:
    """One run of a trace, valued: its RUN_STARTED payload, the results (trades, equity marked
    to market at each bar or tick, statistics), each market's bars and the bar spacing."""

    head: Mapping[str, Any]
    results: Results
    prices: dict[str, pd.DataFrame]
    timeframe_ns: int


# Engine events that change balance totals or positions: the equity curve's breakpoints.
_MARKING_EVENTS = (OrderFilled, BalanceUpdated, PositionUpdated)
_BAR_KINDS = ("BAR", "BARS")


def trace_run(path: str | Path, run: int | str = -1) -> TraceRun:
    """The results of one run of the trace at ``path`` (``run``: an index, -1 the last, or a
    run id), rebuilt from the trace alone: its engine events are applied again to a fresh
    state, as replay does, and the balances and positions after each fill are valued at every
    recorded bar's close (Sim: BAR and BARS events) or tick (Live and Paper: MARK events).

    The trace is not modified, so this is safe next to a live writer. A run that continued an
    earlier one (a restart) starts from the state the earlier runs left. Raises TraceError if
    the trace cannot be read, the run does not exist, or it recorded no prices; ReplayMismatch
    if its events do not rebuild the state they recorded."""
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
    initial = mark_of(state, run_start_ns)
    marks: list[AccountMark] = []
    mark_seqs: list[int] = []
    run_trades: set[str] = set()

    def mark(seq: int, ts_ns: int, event: Event, result: Any) -> None:
        nonlocal initial
        if not isinstance(event, _MARKING_EVENTS):
            return
        if not marks and not isinstance(event, OrderFilled):
            initial = mark_of(state, run_start_ns)  # still the state the first fill starts from
            return
        marks.append(mark_of(state, ts_ns))
        mark_seqs.append(seq)
        if isinstance(event, OrderFilled) and result is not None:
            run_trades.add(event.trade_id)

    replica.replay(state, run_lo, hi, on_event=mark, settle_fills=settle)

    stop_ns = runs[chosen].stopped_ns
    bars, tf_ns = _read_bars(path, head, lo, hi, run_start_ns, stop_ns)
    close_ns = bars.index.to_numpy(dtype=np.int64) + tf_ns
    index = pd.DatetimeIndex(close_ns.view("datetime64[ns]"), tz="UTC", name="time")
    prices = {
        sym: pd.DataFrame({c: bars[(sym, c)].to_numpy(dtype=float) for c in OHLCV}, index=index)
        for sym in assets
    }
    closes = {sym: frame["close"].to_numpy() for sym, frame in prices.items()}
    # Which account each price point saw: a bar, the one at its close; a tick's MARK, the one
    # recorded before it (its seq orders it exactly; times share milliseconds).
    if "as_of_seq" in bars.attrs:
        at = np.searchsorted(np.array(mark_seqs, dtype=np.int64), bars.attrs["as_of_seq"])
    else:
        at = np.searchsorted(np.array([m.ts_ns for m in marks], dtype=np.int64), close_ns, "right")
    states = [initial, *marks]
    cash = str(head.get("cash_currency"))
    margin = bool(head.get("margin"))
    equity = equity_values(assets, states, at, closes, cash, margin)
    series = pd.Series(equity, index=index, name="equity")
    series.attrs["start"] = start_equity(assets, initial, closes, cash, margin)

    trades = trades_frame(rt)
    if first != chosen:  # a restart: the state holds earlier runs' fills too
        trades = trades[trades["trade_id"].isin(run_trades)].reset_index(drop=True)
    stats = compute_stats(
        series,
        trades,
        tf_ns,
        exposure_of(assets, states, at, margin),
        cash,
        buy_and_hold(closes, float(series.attrs["start"]), index),
    )
    return TraceRun(head, Results(trades, series, stats), prices, tf_ns)


def _read_bars(
    path: Path,
    head: Mapping[str, Any],
    lo: int,
    hi: int,
    run_start_ns: int,
    stop_ns: int | None,
) -> tuple[pd.DataFrame, int]:
    """The run's bars: columns ``(symbol, field)``, indexed by open time (ns), one row per bar
    whose close falls within the run; and the bar spacing in ns. Live and Paper runs record no
    bars but a MARK per tick: each becomes a flat bar closing at the tick."""
    symbols = list(head.get("market_defs") or {})
    fix = (
        "run it again with this version of vigil, whose Sim runs record their bars (BARS) "
        "and whose Live and Paper runs record each tick's prices (MARK)"
    )
    frame = read_trace(path, kinds=[*_BAR_KINDS, "MARK"])
    frame = frame[(frame["seq"] >= lo) & (frame["seq"] < hi)]
    marks = frame[(frame["kind"] == "MARK") & (frame["ts_ns"] >= run_start_ns)]
    frame = frame[frame["kind"] != "MARK"]
    if not len(frame) and len(marks):
        return _mark_bars(path, head, marks)
    if not len(frame):
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


def _mark_bars(
    path: Path, head: Mapping[str, Any], marks: pd.DataFrame
) -> tuple[pd.DataFrame, int]:
    """A Live or Paper run's MARK events as flat bars (open = high = low = close = the mark
    price) opening one timeframe before each tick; ``attrs["as_of_seq"]`` holds each mark's
    seq. A market not priced yet at a tick takes its next known price."""
    symbols = list(head.get("market_defs") or {})
    tf_ns = timeframe_ns(str(head.get("timeframe") or "1m"))
    payloads = list(marks["payload"].array.to_numpy())
    times = np.array([int(p["time"]) for p in payloads], dtype=np.int64) * 1_000_000
    columns: dict[tuple[str, str], Any] = {}
    for sym in symbols:
        close = pd.Series([(p.get("prices") or {}).get(sym, np.nan) for p in payloads], dtype=float)
        close = close.ffill().bfill()
        if close.isna().all():
            raise TraceError(
                f"trace {path}: run {head.get('run_id')} never priced {sym} in its MARK events, "
                "so its equity cannot be valued"
            )
        for c in ("open", "high", "low", "close"):
            columns[(sym, c)] = close.to_numpy()
        columns[(sym, "volume")] = np.zeros(len(close))
    table = pd.DataFrame(columns, index=times - tf_ns)
    table.attrs["as_of_seq"] = marks["seq"].to_numpy(dtype=np.int64)
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
