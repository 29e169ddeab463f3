"""The wall clock of Live and Paper: time, waits for orders, and the tick loop.

Both modes tick at the strategy's timeframe, after each bar closes, with the closed bars
fetched first from their market-data source (the exchange in Live, its public data in Paper).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from runtime._errors import StrategyStopped
from runtime.engine._runtime import Runtime
from runtime.model._assets import AssetInstance
from runtime.model._bars import timeframe_ns
from runtime.model._orders import Order
from runtime.modes._dispatch import risk_of
from runtime.modes._operations import enforce, tick_failed
from traces import Kind
from watchers._base import HEALTHY, retrying

if TYPE_CHECKING:
    from runtime.engine._strategy import Strategy

log = logging.getLogger("vigil")

SETTLE_S = 1.0  # wait after a bar's close before fetching it: the exchange finalises it
WATCHER_KINDS = {
    "health": Kind.HEALTH,
    "reconnect": Kind.RECONNECT,
    "gap_fill": Kind.GAP_FILL,
    "error": Kind.ERROR,
}


class WallClock:
    """Real time for a Live or Paper runtime; `market_data()` is where its bars come from."""

    def __init__(self, rt: Runtime, market_data: Callable[[], Any]) -> None:
        self.rt = rt
        self.market_data = market_data
        self.timeframe = rt.timeframe
        self.tf_ms = timeframe_ns(rt.timeframe) // 1_000_000
        self._stop = trio.Event()
        self.health_changed = trio.Event()  # set (and replaced) at each watcher health change
        self._health: dict[str, str] = {}  # watcher -> its last health, once it was healthy

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def trio_deadline(self, deadline_ms: int) -> float:
        return trio.current_time() + (deadline_ms - self.now_ms()) / 1000

    async def wait_order(self, order: Order, deadline_ms: int) -> bool:
        """True once `order` has a new fill or a new status, False at the deadline."""
        seen = (len(order.fills), order.status)
        with trio.move_on_at(self.trio_deadline(deadline_ms)):
            while (len(order.fills), order.status) == seen:
                await self.rt.order_event(order.client_id).wait()
        return (len(order.fills), order.status) != seen

    def request_stop(self) -> None:
        self._stop.set()

    def record_watcher_event(self, kind: str, info: dict[str, Any]) -> None:
        """A watcher's health change, reconnect, gap fill or error, into the trace; a health
        change after the watcher first became healthy is also an alert."""
        self.rt.record(WATCHER_KINDS.get(kind, Kind.ERROR), info)
        if kind != "health":
            return
        self.health_changed.set()
        self.health_changed = trio.Event()
        name, health = str(info.get("watcher")), str(info.get("health"))
        before = self._health.get(name)
        if before is None and health != HEALTHY:
            return  # still starting: not news
        self._health[name] = health
        if before is not None and before != health and self.rt.guard is not None:
            level = logging.INFO if health == HEALTHY else logging.WARNING
            log.log(level, "strategy %s: watcher %s is %s", self.rt.name, name, health)
            self.rt.guard.alert(
                "health", f"watcher {name} is {health} (was {before})", dict(info, was=before)
            )

    async def fetch_bars(self, ai: AssetInstance, limit: int) -> None:
        window = ai.ohlcv
        since = window.newest_ns // 1_000_000 if len(window) else None

        source = self.market_data()

        async def fetch() -> Any:
            return await source.fetch_ohlcv(ai.symbol, self.timeframe, since=since, limit=limit)

        rows = await retrying(fetch)
        if not rows:
            return
        # The exchange's last row is the bar still forming: keep closed bars only, so nothing
        # looks ahead (the exchange's clock decides, not ours; a last row a whole period old is
        # closed, the market just had no trade since).
        closed = rows if rows[-1][0] + 2 * self.tf_ms <= self.now_ms() else rows[:-1]
        self.rt.on_bars(ai.symbol, closed)
        self.rt.on_price(ai.symbol, float(rows[-1][4]))  # the latest traded price

    async def tick_loop(self, s: Strategy) -> None:
        rt = self.rt
        guard = risk_of(rt)
        while not rt.stopping:
            now = self.now_ms()
            next_close = (now // self.tf_ms + 1) * self.tf_ms
            settle = min(SETTLE_S, self.tf_ms / 4000)  # short bars settle faster
            with trio.move_on_after((next_close - now) / 1000 + settle):
                await self._stop.wait()
            if rt.stopping:
                return
            # The bar that just closed counts once the exchange has started the next one:
            # ticking on a bar the exchange still forms would decide on a close that changes.
            closed_ns = (next_close - self.tf_ms) * 1_000_000
            with trio.move_on_after(max(self.tf_ms / 1000, 2.0)):
                while True:
                    for ai in rt.universe:
                        await self.fetch_bars(ai, limit=10)
                    if all(ai.ohlcv.newest_ns >= closed_ns for ai in rt.universe):
                        break
                    await trio.sleep(min(0.2, self.tf_ms / 5000))
            await enforce(rt)
            if all(len(ai.ohlcv) >= max(rt.strategy_warmup, 1) for ai in rt.universe):
                ts = np.datetime64(next_close * 1_000_000, "ns")
                try:
                    await s.on_tick(ts)
                except Exception as exc:
                    if rt.stopping and isinstance(exc, StrategyStopped):
                        return
                    await tick_failed(rt, exc, ts)
                else:
                    guard.errors_in_a_row = 0
                if rt.has_hooks:
                    await rt.run_hooks()
