"""Records what it can see at every tick: for no-look-ahead and warmup tests."""

from __future__ import annotations

from typing import Any

from runtime import Strategy, stop


class Recorder(Strategy):
    markets = ["BTC/USDT", "ETH/USDT"]
    timeframe = "1m"
    warmup = 5
    stop_after: int | None = None

    def __init__(self) -> None:
        self.seen: list[tuple[Any, int, float, float]] = []

    async def on_tick(self, ts: Any) -> None:
        btc = self.universe["BTC/USDT"]
        closes = btc.ohlcv["close"]
        self.seen.append((ts, len(closes), float(closes[-1]), btc.price))
        if self.stop_after is not None and len(self.seen) >= self.stop_after:
            await stop(self)
