"""Sim mode: a deterministic backtest over bars, against the simulated exchange.

Time moves only when something waits. The run loop shows one more bar, lets the exchange match
resting orders against it, and calls `on_tick`. A `call` that waits for a resting order (its
`waitfor`), or `Pending.wait`, advances the same clock through the bars up to its deadline;
the run loop then carries on after them, as a live strategy blocked in a wait misses ticks.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import trio

from runtime._errors import StrategyStopped
from runtime._progress import Progress
from runtime.engine._results import Mark, account_mark
from runtime.engine._runtime import Runtime
from runtime.exchanges.sim._exchange import Bar, SimExchange
from runtime.model._assets import OHLCV, AssetInstance, Cursor
from runtime.model._bars import Bars
from runtime.model._orders import Order
from runtime.modes._dispatch import risk_of
from runtime.modes._operations import enforce, tick_failed
from traces._codec import msgpack_array
from traces._schema import Kind

if TYPE_CHECKING:
    from runtime.data import FundingRates
    from runtime.engine._strategy import Strategy

log = logging.getLogger("vigil")
#: Held trace records are written once this many have gathered (or a bar block is due).
HELD_ROWS = 256
BAR_BLOCK = 4096  # bars per BARS trace event
#: The cyclic collector's thresholds during a backtest (CPython's are 700, 10, 10).
BACKTEST_GC_THRESHOLDS = (10_000, 20, 20)
_collector: dict[str, Any] = {"backtests": 0, "thresholds": gc.get_threshold()}


@contextlib.contextmanager
def backtest_collector() -> Iterator[None]:
    """The cyclic garbage collector tuned for a backtest while one runs in this process.

    A backtest allocates about one object a bar that outlives the youngest generation (its
    orders, trades and marks), so at CPython's thresholds the collector ran about 1,400 young
    and 9 full collections in a 1M-bar order-heavy run, each full one walking every object
    the imports had made: 1.4 s of a 7.4 s run (timed with `gc.callbacks`). Here the heap that
    existed before the run is frozen (no collection walks it until the run ends) and young
    collections come 14 times less often; that run then spends 0.16 s collecting, at the same
    peak RSS. Cycles still die in the young generations; thresholds and the frozen heap go back
    when the last backtest running in the process ends.
    """
    if _collector["backtests"] == 0:
        _collector["thresholds"] = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(*BACKTEST_GC_THRESHOLDS)
    _collector["backtests"] += 1
    try:
        yield
    finally:
        _collector["backtests"] -= 1
        if _collector["backtests"] == 0:
            gc.set_threshold(*_collector["thresholds"])
            gc.unfreeze()


class BarFeed:
    """The simulated market: the last closed bar of each symbol at the shared cursor."""

    def __init__(self, bars: Bars, cursor: Cursor) -> None:
        self.cursor = cursor
        self.columns = bars.columns
        self.time_ns = bars.time_ns
        # The one array of close times (ns): the tick times view it, and millisecond times are
        # taken from it one at a time (a 1M-bar run keeps no other 8 MB copy of its clock).
        self.close_ns = bars.time_ns + bars.timeframe_ns
        self._frame_ms = bars.timeframe_ns // 1_000_000
        # The clock read last (cursor position, ms): an order's events read it several times
        # in one bar, and a numpy scalar costs more than the check (measured).
        self._now = (-1, 0)

    def bar(self, symbol: str) -> Bar | None:
        i = self.cursor.n - 1
        if i < 0:
            return None
        c = self.columns[symbol]
        return Bar(
            int(self.time_ns[i]) // 1_000_000,
            float(c["open"][i]),
            float(c["high"][i]),
            float(c["low"][i]),
            float(c["close"][i]),
            float(c["volume"][i]),
        )

    def now_ms(self) -> int:
        """The close time of the newest visible bar."""
        n = self.cursor.n
        at, ms = self._now
        if at != n:
            ms = int(self.close_ns[n - 1]) // 1_000_000
            self._now = (n, ms)
        return ms

    def close_index(self, close_ms: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """For each close time (ms), the index of the first bar closing at or after it."""
        return np.searchsorted(self.close_ns, np.asarray(close_ms, np.int64) * 1_000_000)


def _as_list(values: np.ndarray) -> Any:
    return values.tolist()


def _as_msgpack(values: np.ndarray) -> Any:
    encoded = msgpack_array(values)
    return values.tolist() if encoded is None else encoded


class SimulatedSends:
    """The send policy of a simulated exchange (Sim and Paper): it answers at once, never
    loses a send, and reports its ledger with every fill, so most steps of `call` are trivial."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def unavailable(self) -> None:
        return None  # the simulated exchange is in this process: always there

    async def refusal(self, ai: AssetInstance, deadline_ms: int) -> None:
        return None

    async def before_send(self, ai: AssetInstance) -> None:
        return None

    async def send(self, fn: Callable[[], Awaitable[Any]], deadline_ms: int) -> Any:
        # The simulated exchange answers, fills and reports in this one step.
        if self.rt.holding:  # the run writes the held records in batches
            return await fn()
        with self.rt.durable_together():
            return await fn()

    def expect_news(self, ai: AssetInstance, expected: bool = True) -> None:
        return None

    def sent(self, client_id: str) -> None:
        return None

    async def wait_account(self, trade: Any, deadline_ms: int) -> None:
        return None  # the fill's balance and position reports were applied with it

    async def sync_order(self, order: Order) -> None:
        ex = self.rt.exchange
        report = await ex.fetch_order(order.id, order.symbol)
        for trade in await ex.fetch_my_trades(order.symbol, since=order.timestamp):
            if trade["order"] == order.id:
                self.rt.on_exchange("trade", trade)
        self.rt.on_exchange("order", report)

    def spawn(self, fn: Callable[[], Awaitable[Any]]) -> None:
        raise AssertionError("the simulated exchange never loses a send")

    async def resolve_unknown(self, ai: AssetInstance, client_id: str) -> None:
        return None


class SimDriver:
    """The Sim clock and run loop."""

    def __init__(self, rt: Runtime, bars: Bars, cursor: Cursor, exchange: SimExchange) -> None:
        self.rt = rt
        self.bars = bars
        self.cursor = cursor
        self.exchange = exchange
        self.feed: BarFeed = exchange.feed  # type: ignore[assignment]
        self.n_total = len(bars.time_ns)
        self.tick_times = self.feed.close_ns.view("datetime64[ns]")
        # The account after each fill, at its bar: the equity curve's breakpoints.
        self.marks: list[Mark] = []
        self.start_index = cursor.n
        self.end_index = cursor.n
        self.bars_recorded = 0  # bars [0, bars_recorded) are in the trace as BARS blocks
        self.progress: Progress | None = None  # set by the CLI on a terminal
        # Stored funding to settle: (bar index, funding time, symbol, rate), in time order; it
        # is settled when that bar (the first closing at or after the funding time) shows.
        self._funding: list[tuple[int, int, str, float]] = []
        self._funding_pos = 0
        self.next_funding_n = sys.maxsize  # the cursor value at which funding is next due
        rt.on_account = self._mark

    def set_funding(self, funding: Mapping[str, FundingRates]) -> None:
        """Settle these funding rates on open perpetual positions at each funding time, at the
        close of the bar ending then (the first bar closing at or after it). Funding times the
        run starts after, or past the last bar, are not settled."""
        n_bars = len(self.feed.close_ns)
        entries = []
        for sym, rates in funding.items():
            at = self.feed.close_index(rates.time_ms)
            times, values = rates.time_ms.tolist(), rates.rate.tolist()
            for i, t, r in zip(at.tolist(), times, values, strict=True):
                if self.cursor.n <= i < n_bars and not math.isnan(r):
                    entries.append((int(i), int(t), sym, float(r)))
        entries.sort()
        self._funding = entries
        self._funding_pos = 0
        self.next_funding_n = entries[0][0] + 1 if entries else sys.maxsize

    def settle_funding(self) -> None:
        """Settle the funding due by the newest visible bar (the run loop calls this when the
        cursor reaches `next_funding_n`)."""
        entries, n = self._funding, self.cursor.n
        with self.rt.durable_together():
            while self._funding_pos < len(entries) and entries[self._funding_pos][0] < n:
                i, t, sym, rate = entries[self._funding_pos]
                self._funding_pos += 1
                price = float(self.bars.columns[sym]["close"][i])
                self.exchange.settle_funding(sym, t, rate, price)
        pos = self._funding_pos
        self.next_funding_n = entries[pos][0] + 1 if pos < len(entries) else sys.maxsize

    def now_ms(self) -> int:
        return self.feed.now_ms()

    def _mark(self) -> None:
        """After an account report: the latest one of a bar stands for that bar."""
        mark = (self.cursor.n - 1, *account_mark(self.rt.state))
        if self.marks and self.marks[-1][0] == mark[0]:
            self.marks[-1] = mark
        else:
            self.marks.append(mark)

    def record_bar_blocks(self) -> None:
        """Record the bars seen since the last block, one BARS event per market, so a trace
        alone holds the prices its run saw (reports, analysis)."""
        lo, hi = self.bars_recorded, self.cursor.n
        if hi <= lo or not self.rt.config.trace:
            return
        times_ms = self.feed.time_ns[lo:hi] // 1_000_000
        last_ms = int(times_ms[-1])
        # Observers read lists; the trace alone takes the columns encoded by numpy (the same
        # bytes, a tenth of the cost: tolist and encode were most of a block's, measured).
        column = _as_list if self.rt.observers else _as_msgpack
        times = column(times_ms)
        for sym, cols in self.bars.columns.items():
            payload: dict[str, Any] = {"time": times}
            for c in OHLCV:
                payload[c] = column(cols[c][lo:hi])
            self.rt.record(Kind.BARS, payload, asset=sym, ts_exchange_ms=last_ms)
        self.bars_recorded = hi

    def _record_bars(self) -> None:
        i = self.cursor.n - 1
        t_ms = int(self.feed.time_ns[i]) // 1_000_000
        for sym, cols in self.bars.columns.items():
            self.rt.record(
                Kind.BAR,
                {"time": t_ms, **{c: float(cols[c][i]) for c in OHLCV}},
                asset=sym,
                ts_exchange_ms=t_ms,
            )

    def step(self) -> bool:
        """Show one more bar; False at the end of the data."""
        cursor = self.cursor
        if cursor.n >= self.n_total:
            return False
        cursor.n += 1
        if self.exchange.has_work:
            with self.rt.durable_together():  # a bar's fills and their reports
                self.exchange.on_bar()
        if cursor.n >= self.next_funding_n:
            self.settle_funding()
        return True

    async def advance_to(self, deadline_ms: int, until: Callable[[], bool] | None = None) -> None:
        """Step through every bar that closes by `deadline_ms`, stopping early once `until()`."""
        # close_ms <= deadline_ms, in ns: before the next whole millisecond
        close_ns, before_ns = self.feed.close_ns, (deadline_ms + 1) * 1_000_000
        while self.cursor.n < self.n_total and close_ns[self.cursor.n] < before_ns:
            self.step()
            if self.rt.has_hooks:
                await self.rt.run_hooks()
            if until is not None and until():
                break

    async def wait_order(self, order: Order, deadline_ms: int) -> bool:
        seen = len(order.fills)

        def changed() -> bool:
            return len(order.fills) > seen or not order.is_open

        await self.advance_to(deadline_ms, changed)
        return changed()

    def request_stop(self) -> None:
        """Nothing to wake: the loop checks `rt.stopping` before every bar."""

    async def run(self, s: Strategy, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with backtest_collector():
            await self._run_bars(s, task_status)

    async def _run_bars(self, s: Strategy, task_status: Any) -> None:
        rt = self.rt
        task_status.started()
        await rt.call_hook("on_start", s.on_start)
        cursor = self.cursor
        n_total = self.n_total
        exchange = self.exchange
        tick = s.on_tick
        tick_times = self.tick_times
        trace_market = rt.config.trace_market
        next_block = self.bars_recorded + BAR_BLOCK
        progress = self.progress
        guard = risk_of(rt)
        watch_equity = guard.risk.watches_equity
        alerts = guard.alerts.pending
        # Events reach the trace in batches of whole bars, one frame and one write each: a
        # write per order cost more than the rest of its path (measured). A backtest is run
        # again, not resumed, so its events need not reach the OS bar by bar.
        held = rt.hold_records(self.feed.now_ms)  # `now_ms`, two calls fewer a record
        try:
            while not rt.stopping:
                if len(held) >= HELD_ROWS:
                    rt.write_held()
                if trace_market:
                    self._record_bars()
                if cursor.n >= next_block:
                    rt.write_held()
                    self.record_bar_blocks()
                    next_block = cursor.n + BAR_BLOCK
                    if progress is not None:
                        progress.update(cursor.n)
                    # Let other tasks run (a background Sim in IPython) and cancellation in,
                    # and hand the GIL to other threads: a tight loop otherwise starves them
                    # (measured: an IPython prompt froze for a whole 2M-bar run).
                    await trio.lowlevel.checkpoint()
                    time.sleep(0)  # noqa: ASYNC251 (zero: releases the GIL, never blocks)
                if watch_equity or alerts:
                    await enforce(rt)
                try:
                    await tick(tick_times[cursor.n - 1])
                except Exception as exc:
                    # Outside the per-bar path: the try costs nothing until something raises.
                    if rt.stopping and isinstance(exc, StrategyStopped):
                        break
                    await tick_failed(rt, exc, tick_times[cursor.n - 1])
                else:
                    if guard.errors_in_a_row:
                        guard.errors_in_a_row = 0
                if rt.has_hooks:
                    await rt.run_hooks()
                if cursor.n >= n_total:
                    break
                cursor.n += 1
                if exchange.has_work:
                    exchange.on_bar()  # its fills and reports are held with the bar's
                    if rt.has_hooks:
                        await rt.run_hooks()
                if cursor.n >= self.next_funding_n:
                    self.settle_funding()
        finally:
            self.end_index = cursor.n
            self.record_bar_blocks()
            rt.stop_holding()
            if progress is not None:
                progress.finish(cursor.n)
