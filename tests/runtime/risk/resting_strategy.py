"""Rests a bid far below the market at start, says READY on stdout, and waits to be stopped."""

from __future__ import annotations

from runtime import Buy, GTCOrder, Pending, Strategy, call


class Resting(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1m"
    warmup = 1

    async def on_start(self) -> None:
        ai = self.universe["BTC/USDT"]
        for price in (50_000.0, 49_000.0):
            placed = await call(self, ai, GTCOrder[Buy], amount=0.01, price=price, waitfor=0)
            assert isinstance(placed, Pending), placed
        print("READY", flush=True)
