"""Buys with all its cash at the first tick and rests a bid far below; records its alerts and
what each later order returned, so risk tests can see the halt from inside the strategy."""

from __future__ import annotations

from typing import Any

from runtime import Buy, GTCOrder, MarketOrder, Strategy, call


class AllIn(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1m"
    warmup = 1

    def __init__(self) -> None:
        self.alerts: list[Any] = []
        self.refusals: list[Exception] = []
        self.later: list[Any] = []
        self.ticks = 0

    async def on_tick(self, ts: Any) -> None:
        ai = self.universe["BTC/USDT"]
        self.ticks += 1
        if self.ticks == 1:
            await call(self, ai, GTCOrder[Buy], amount=0.01, price=ai.price * 0.5, waitfor=0)
            spend = self.cash - self.cash_committed
            amount = spend / (ai.price * 1.01) / (1 + ai.taker)
            await call(self, ai, MarketOrder[Buy], amount=amount)
        elif not self.trading:
            self.later.append(await call(self, ai, MarketOrder[Buy], amount=0.1))

    async def on_alert(self, alert: Any) -> None:
        self.alerts.append(alert)

    async def on_order_error(self, ai: Any, order: Any, error: Exception) -> None:
        self.refusals.append(error)
