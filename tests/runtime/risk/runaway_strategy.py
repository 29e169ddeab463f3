"""A runaway: once ticking, its `on_tick` never returns; it sends and cancels orders in a loop
and swallows every exception, `StrategyStopped` included. Only cancellation can end it."""

from __future__ import annotations

from typing import Any

from runtime import Buy, CancelOrders, GTCOrder, Strategy, call


class Runaway(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1s"
    warmup = 1

    def __init__(self) -> None:
        self.sent = 0

    async def on_tick(self, ts: Any) -> None:
        ai = self.universe["BTC/USDT"]
        while True:
            try:
                await call(self, ai, GTCOrder[Buy], amount=0.001, price=ai.price * 0.9, waitfor=0)
                self.sent += 1
                await call(self, ai, CancelOrders())
            except Exception:
                pass
