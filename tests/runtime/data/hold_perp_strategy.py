"""Holds a BTC perpetual position through funding times: long 0.02 at the first tick, then
0.01 from bar 2,000 on, then short 0.01 from bar 3,500 on (funding then flows the other way)."""

from __future__ import annotations

from typing import Any

from runtime import Buy, MarketOrder, Sell, Strategy, call


class HoldPerp(Strategy):
    exchange = "binance"
    markets = ["BTC/USDT"]
    timeframe = "1m"
    margin = "isolated"
    leverage = 2.0
    warmup = 1
    initial_cash = 10_000.0

    def __init__(self) -> None:
        self.ticks = 0

    async def on_tick(self, ts: Any) -> None:
        ai = self.universe["BTC/USDT:USDT"]
        self.ticks += 1
        if self.ticks == 1:
            await call(self, ai, MarketOrder[Buy], amount=0.02)
        elif self.ticks == 2_000:
            await call(self, ai, MarketOrder[Sell], amount=0.01)
        elif self.ticks == 3_500:
            await call(self, ai, MarketOrder[Sell], amount=0.02)
