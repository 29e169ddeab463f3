"""A margin strategy driven by hand from tests."""

from __future__ import annotations

from typing import Any

from runtime import Strategy


class ManualMargin(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1m"
    margin = "isolated"
    leverage = 2.0
    warmup = 1

    def __init__(self) -> None:
        self.errors: list[Exception] = []

    async def on_order_error(self, ai: Any, order: Any, error: Exception) -> None:
        self.errors.append(error)
