"""sma_cross with a fault switch: `explode_at` > 0 raises in `on_tick` at that many ticks,
so a sweep test has a job that fails."""

from __future__ import annotations

from typing import Any

from runtime import Buy, MarketOrder, Sell, Strategy, call


class Fragile(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1m"
    warmup = 20

    fast = 5
    slow = 20
    explode_at = 0

    _ticks = 0

    async def on_tick(self, ts: Any) -> None:
        self._ticks += 1
        if self.explode_at and self._ticks >= self.explode_at:
            raise RuntimeError(f"exploded at tick {self._ticks}")
        for ai in self.universe:
            fast = ai.ohlcv.sma("close", self.fast)
            slow = ai.ohlcv.sma("close", self.slow)
            holding = (ai.cash - ai.cash_committed) * ai.price >= ai.cost_min
            if fast > slow and not holding:
                amount = self.cash * 0.9 / (ai.price * (1 + ai.taker))
                await call(self, ai, MarketOrder[Buy], amount=amount)
            elif fast < slow and holding:
                await call(self, ai, MarketOrder[Sell], amount=ai.cash - ai.cash_committed)
