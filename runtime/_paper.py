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

import numpy as np
import trio

from watchers._base import WatcherConfig
from watchers._market import BookWatcher, OHLCVWatcher, PublicTradesWatcher, TickerWatcher

from ._assets import OHLCV, AssetInstance, BarWindow, Cursor
from ._engine import BalanceUpdated, LeverageChanged, apply
from ._live import LiveDriver
from ._modes import Live, Paper
from ._sim import SimulatedSends
from .exchanges.sim._exchange import Bar
from .exchanges.sim._paper import PaperExchange, PaperFeed

if TYPE_CHECKING:
    from ._strategy import Strategy


class PaperDriver(SimulatedSends, LiveDriver):
    """Live's clock, waits and tick loop; the simulated exchange for orders."""

    def __init__(
        self,
        rt: Any,
        mode: Paper,
        *,
        open_market: Callable[[], Any],
        paper: PaperExchange,
        timeframe: str,
        warmup: int,
    ) -> None:
        super().__init__(
            rt,
            mode=Live(),  # Live's behaviour on stop: Paper has no exchange orders to cancel
            open_exchange=open_market,
            watcher_config=WatcherConfig(),
            timeframe=timeframe,
            warmup=warmup,
        )
        self.paper = paper
        self.market: Any = None

    async def sync_order(self, order: Any) -> None:
        return None

    # Market data.
    def market_data(self) -> Any:
        return self.market

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
                ai.last_price = bar.close  # the mid, until a trade prints
        elif kind == "public_trades":
            self.paper.on_public_trades(symbol, data)
            if ai is not None and data:
                ai.last_price = float(data[-1]["price"])
        elif kind == "ticker":
            last = data.get("last") or data.get("close")
            if last is not None:
                feed.set_last(symbol, float(last))
                if ai is not None:
                    ai.last_price = float(last)
        elif kind == "ohlcv" and ai is not None and data:
            self._append_bars(ai, data)

    def _append_bars(self, ai: AssetInstance, rows: list[list[float]]) -> None:
        window = ai.ohlcv
        for i, (t, o, h, low, c, v) in enumerate(rows):
            if i < len(rows) - 1:  # the last row is the bar still forming
                window.append(
                    int(t) * 1_000_000, (float(o), float(h), float(low), float(c), float(v or 0.0))
                )
                self.paper.paper_feed.set_bar(
                    ai.symbol,
                    Bar(int(t), float(o), float(h), float(low), float(c), float(v or 0.0)),
                )
        ai.last_price = float(rows[-1][4])

    async def _apply_reports(self, receive: trio.MemoryReceiveChannel[Any]) -> None:
        async for kind, payload in receive:
            symbol, data = payload
            self.on_market(kind, symbol, data)
            if self.rt.has_hooks:
                await self.rt.run_hooks()

    async def run(self, s: Strategy, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        rt = self.rt
        async with self.open_exchange() as market:
            # Public data only: the strategy's orders go to the paper exchange.
            self.market = market
            rt.exchange = self.paper
            send, receive = trio.open_memory_channel[Any](4096)
            self._send = send
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._apply_reports, receive)
                    for ai in rt.universe:
                        ai.ohlcv = BarWindow(
                            np.zeros(0, dtype=np.int64), {c: np.zeros(0) for c in OHLCV}, Cursor(0)
                        )
                        await self._fetch_bars(ai, limit=max(rt.strategy_warmup, 1) + 1)
                        for watcher in (
                            BookWatcher(
                                market, self.watcher_config, ai.symbol, self._watcher_event
                            ),
                            PublicTradesWatcher(
                                market, self.watcher_config, ai.symbol, self._watcher_event
                            ),
                            TickerWatcher(
                                market, self.watcher_config, ai.symbol, self._watcher_event
                            ),
                            OHLCVWatcher(
                                market,
                                self.watcher_config,
                                ai.symbol,
                                self.timeframe,
                                self._watcher_event,
                            ),
                        ):
                            await nursery.start(watcher.run, send.clone())
                    task_status.started()
                    await rt.call_hook("on_start", s.on_start)
                    await self._tick_loop(s)
                    nursery.cancel_scope.cancel()
            finally:
                self._nursery = None
                rt.exchange = self.paper
                with trio.CancelScope(shield=True):
                    await send.aclose()


def setup_paper(
    s: Strategy,
    *,
    name: str,
    mode: Paper,
    exchange: str,
    margin: str | None,
    sandbox: bool,
    initial_cash: Any,
    config: Any,
    source: str,
) -> None:
    """Wire `s` to Paper mode: a local simulated account, the exchange's public data."""
    from ._live import wire_runtime

    rt = wire_runtime(
        s, name=name, mode=mode, exchange=exchange, margin=margin, config=config, source=source
    )
    cash_currency = rt.cash_currency
    if initial_cash is None:
        cash = {cash_currency: float(type(s).initial_cash)}
    elif isinstance(initial_cash, dict):
        cash = {str(c): float(v) for c, v in initial_cash.items()}
    else:
        cash = {cash_currency: float(initial_cash)}
    rt.initial_cash = dict(cash)
    markets = {ai.symbol: ai.market for ai in rt.universe}
    feed = PaperFeed()
    paper = PaperExchange(markets, feed, balances=cash, margin=margin, exchange_id=exchange)
    paper.add_listener(rt.on_exchange)
    rt.exchange = paper

    def open_market() -> Any:
        from .exchanges.ccxt import CcxtExchange

        # Public endpoints need no keys: whatever is in the environment is not used here.
        return CcxtExchange.open(
            exchange, sandbox=sandbox, margin=margin, env=_public_env(exchange, margin)
        )

    rt.driver = PaperDriver(
        rt,
        mode,
        open_market=open_market,
        paper=paper,
        timeframe=type(s).timeframe,
        warmup=type(s).warmup,
    )
    if config.trace:
        from traces import open_recorder

        rt.recorder = open_recorder(config.trace_root, exchange, "paper", name, fsync=config.fsync)
    rt.record_run_start(fresh=True)
    for currency, amount in sorted(cash.items()):
        rt.emit(BalanceUpdated(currency, amount, 0))
    if margin:
        leverage = float(config.leverage or type(s).leverage)
        for ai in rt.universe:
            apply(paper.ledger, LeverageChanged(ai.symbol, leverage, 0))
            rt.emit(LeverageChanged(ai.symbol, leverage, 0))


def _public_env(exchange: str, margin: str | None) -> dict[str, str]:
    """The environment for the market-data connection: the URL override only, no keys."""
    import os

    names = {exchange.upper(), "BINANCEUSDM" if margin else exchange.upper()}
    return {k: v for k, v in os.environ.items() if any(k == f"VIGIL_{n}_URL" for n in names)}
