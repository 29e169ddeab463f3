"""SMA crossover on spot: hold a market while its fast moving average is above the slow one.

Each market gets an equal share of the cash. The averages are O(1) running-sum reads
(`ai.ohlcv.sma`), so the strategy costs little per bar even on millions of bars.
"""

from __future__ import annotations

from typing import Any

from runtime import Buy, MarketOrder, Sell, Strategy, call


class SmaCross(Strategy):
    exchange = "binance"
    markets = ["BTC/USDT", "ETH/USDT"]
    timeframe = "1m"
    margin = None
    warmup = 30

    fast = 10
    slow = 30
    band = 0.0  # the fast average must cross the slow one by this fraction: fewer whipsaws
    allocation = 0.95  # share of each market's slice of cash put to work

    async def on_tick(self, ts: Any) -> None:
        universe = self.universe
        for ai in universe:
            bars = ai.ohlcv
            fast = bars.sma("close", self.fast)
            slow = bars.sma("close", self.slow)
            # Read once: each is a property, and this runs on every bar of every market.
            price = ai.price
            free = ai.cash - ai.cash_committed
            holding = free * price >= ai.cost_min
            if fast > slow * (1 + self.band) and not holding:
                budget = self.cash * self.allocation / len(universe)
                amount = budget / (price * (1 + ai.taker))
                if amount * price >= ai.cost_min:
                    await call(self, ai, MarketOrder[Buy], amount=amount)
            elif fast < slow * (1 - self.band) and holding:
                await call(self, ai, MarketOrder[Sell], amount=free)
