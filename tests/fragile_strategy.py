"""sma_cross with a fault switch: `explode_on_load = True` makes the strategy's constructor
raise, so a sweep test has a job that fails (errors in hooks are the risk layer's to count)."""

from __future__ import annotations

from typing import Any

from runtime import Buy, MarketOrder, Sell, Strategy, call


class Fragile(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1m"
    warmup = 20

    fast = 5
    slow = 20
    explode_on_load = False

    def __init__(self) -> None:
        if self.explode_on_load:
            raise RuntimeError("exploded on load")

    async def on_tick(self, ts: Any) -> None:
        for ai in self.universe:
            fast = ai.ohlcv.sma("close", self.fast)
            slow = ai.ohlcv.sma("close", self.slow)
            holding = (ai.cash - ai.cash_committed) * ai.price >= ai.cost_min
            if fast > slow and not holding:
                amount = self.cash * 0.9 / (ai.price * (1 + ai.taker))
                await call(self, ai, MarketOrder[Buy], amount=amount)
            elif fast < slow and holding:
                await call(self, ai, MarketOrder[Sell], amount=ai.cash - ai.cash_committed)
