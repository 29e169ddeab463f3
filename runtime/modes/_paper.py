"""Paper mode: live market data from the exchange, fills from the simulated engine.

No API keys are needed and no order ever reaches the exchange: the strategy trades against a
`PaperExchange` (the simulated exchange with the book-and-tape fill model of
`runtime.exchanges.sim._paper`), fed by market-data watchers on the exchange's public streams
(order book, public trades, ticker, klines). Ticks, bars and `call` behave as in Live; the
trace is the same, its runs marked ``"mode": "paper"``, and it replays the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from runtime.engine._runtime import Runtime
from runtime.exchanges.sim._exchange import Bar
from runtime.exchanges.sim._paper import PaperExchange
from runtime.model._orders import Order
from runtime.modes._clock import WallClock
from runtime.modes._operations import run_operations
from runtime.modes._venues import adopt_exchange_markets
from watchers._base import WatcherConfig
from watchers._market import BookWatcher, OHLCVWatcher, PublicTradesWatcher, TickerWatcher

if TYPE_CHECKING:
    from runtime.engine._strategy import Strategy


class PaperDriver:
    """Live's wall clock and tick loop (a `WallClock` fed by the venue's public data), with the
    paper exchange, a simulated one, for orders."""

    def __init__(
        self,
        rt: Runtime,
        *,
        open_market: Callable[[], Any],
        paper: PaperExchange,
    ) -> None:
        self.rt = rt
        self.open_market = open_market
        self.paper = paper
        self.market: Any = None  # the venue's public data, once open
        self.clock = WallClock(rt, lambda: self.market)
        self.watcher_config = WatcherConfig()
        self._nursery: trio.Nursery | None = None

    # Clock.
    def now_ms(self) -> int:
        return self.clock.now_ms()

    async def wait_order(self, order: Order, deadline_ms: int) -> bool:
        return await self.clock.wait_order(order, deadline_ms)

    def request_stop(self) -> None:
        self.clock.request_stop()

    # Market data.
    def on_market(self, kind: str, symbol: str, data: Any) -> None:
        """Apply one market-data report to the paper feed and the strategy's view."""
        feed = self.paper.paper_feed
        ai = self.rt.state.assets.get(symbol)
        if kind == "book":
            feed.set_book(
                symbol, data.get("bids") or [], data.get("asks") or [], data.get("timestamp")
            )
            bar = feed.bar(symbol)
            if ai is not None and ai.last_price is None and bar is not None:
                self.rt.on_price(symbol, bar.close)  # the mid, until a trade prints
        elif kind == "public_trades":
            self.paper.on_public_trades(symbol, data)
            if data:
                self.rt.on_price(symbol, float(data[-1]["price"]))
        elif kind == "ticker":
            last = data.get("last") or data.get("close")
            if last is not None:
                feed.set_last(symbol, float(last))
                self.rt.on_price(symbol, float(last))
        elif kind == "ohlcv" and ai is not None and data:
            closed = data[:-1]  # the last row is the bar still forming
            for t, o, h, low, c, v in closed:
                bar = Bar(int(t), float(o), float(h), float(low), float(c), float(v or 0.0))
                feed.set_bar(symbol, bar)
            self.rt.on_bars(symbol, closed)
            self.rt.on_price(symbol, float(data[-1][4]))

    async def _apply_reports(self, receive: trio.MemoryReceiveChannel[Any]) -> None:
        async for kind, payload in receive:
            symbol, data = payload
            self.on_market(kind, symbol, data)
            if self.rt.has_hooks:
                await self.rt.run_hooks()

    async def _adopt_markets(self, market: Any) -> None:
        """The venue's own rules for every asset, in the strategy and the paper exchange."""
        settings = getattr(market, "settings", None)
        if settings is None:
            return
        markets = await market.load_markets()  # loaded at open: no request
        for ai in adopt_exchange_markets(
            self.rt, markets, venue=settings.exchange_id, sandbox=settings.sandbox
        ):
            self.paper.markets[ai.symbol] = dict(ai.market)
            self.paper.ledger.assets[ai.symbol].set_market(ai.market)

    async def run(self, s: Strategy, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        rt = self.rt
        async with self.open_market() as market:
            # Public data only: the strategy's orders go to the paper exchange.
            self.market = market
            await self._adopt_markets(market)
            rt.exchange = self.paper
            send, receive = trio.open_memory_channel[Any](4096)
            on_watcher = self.clock.record_watcher_event
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._apply_reports, receive)
                    nursery.start_soon(run_operations, rt)
                    rt.open_bar_windows()
                    for ai in rt.universe:
                        await self.clock.fetch_bars(ai, limit=max(rt.strategy_warmup, 1) + 1)
                        for watcher in (
                            BookWatcher(market, self.watcher_config, ai.symbol, on_watcher),
                            PublicTradesWatcher(market, self.watcher_config, ai.symbol, on_watcher),
                            TickerWatcher(market, self.watcher_config, ai.symbol, on_watcher),
                            OHLCVWatcher(
                                market,
                                self.watcher_config,
                                ai.symbol,
                                rt.timeframe,
                                on_watcher,
                            ),
                        ):
                            await nursery.start(watcher.run, send.clone())
                    task_status.started()
                    await rt.call_hook("on_start", s.on_start)
                    await self.clock.tick_loop(s)
                    nursery.cancel_scope.cancel()
            finally:
                self._nursery = None
                rt.exchange = self.paper
                with trio.CancelScope(shield=True):
                    await send.aclose()
