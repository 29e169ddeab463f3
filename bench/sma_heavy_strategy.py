"""The order-heavy workload: SMA 10/30 cross on one market, a fixed 0.01 per order.

Buys 0.01 when the fast average crosses above the slow one and nothing is held, sells the
holding when it crosses below. On a million one-minute bars that is tens of thousands of
orders, so the figure measures what each order costs the runtime.
"""

from __future__ import annotations

from typing import Any

from runtime import Buy, MarketOrder, Sell, Strategy, call


class SmaHeavy(Strategy):
    exchange = "binance"
    markets = ["BTC/USDT"]
    timeframe = "1m"
    margin = None
    warmup = 30

    fast = 10
    slow = 30
    amount = 0.01

    async def on_tick(self, ts: Any) -> None:
        ai = self.universe["BTC/USDT"]
        bars = ai.ohlcv
        fast = bars.sma("close", self.fast)
        slow = bars.sma("close", self.slow)
        held = ai.cash - ai.cash_committed
        if fast > slow and held <= 0:
            await call(self, ai, MarketOrder[Buy], amount=self.amount)
        elif fast < slow and held > 0:
            await call(self, ai, MarketOrder[Sell], amount=held)
