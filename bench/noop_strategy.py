"""A strategy that does nothing: measures the runtime's own per-bar cost."""

from __future__ import annotations

from typing import Any

from runtime import Strategy


class Noop(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1m"
    warmup = 30

    async def on_tick(self, ts: Any) -> None:
        pass
