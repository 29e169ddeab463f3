"""A strategy that trades only when a test calls `call` on it; it records its hook calls."""

from __future__ import annotations

from typing import Any

from runtime import Strategy


class Manual(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1m"
    warmup = 1

    def __init__(self) -> None:
        self.ticks = 0
        self.errors: list[Exception] = []
        self.fills: list[Any] = []

    async def on_tick(self, ts: Any) -> None:
        self.ticks += 1

    async def on_trade(self, ai: Any, trade: Any) -> None:
        self.fills.append(trade)

    async def on_order_error(self, ai: Any, order: Any, error: Exception) -> None:
        self.errors.append(error)
