"""A stateless strategy for the three-modes test: every tick it buys after an up bar and
sells after a down bar (perpetuals, so it can always sell), and logs each decision."""

from __future__ import annotations

from typing import Any

from runtime import Buy, MarketOrder, Sell, Strategy, Trade, call


class Updown(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1s"
    margin = "isolated"
    leverage = 2.0
    warmup = 2
    initial_cash = 100_000.0

    def __init__(self) -> None:
        self.decisions: list[tuple[int, str, float | None, float]] = []

    async def on_tick(self, ts: Any) -> None:
        ai = self.universe["BTC/USDT"]
        closes = ai.ohlcv["close"]
        bar_time = int(ai.ohlcv.time[-1].astype("int64"))
        side = MarketOrder[Buy] if closes[-1] >= closes[-2] else MarketOrder[Sell]
        r = await call(self, ai, side, amount=0.002)
        price = r.price if isinstance(r, Trade) else None
        self.decisions.append((bar_time, side.side, price, float(closes[-1])))
