"""Trend following on USDⓈ-M perpetuals, long and short with leverage (isolated margin).

Goes long when the fast average is above the slow one and short when below. Entries are
limit orders a little inside the market, so they rest (`Pending`) and fill when the price
comes to them; an entry that has not filled by the next signal check is cancelled.
Reversals close the position first (`PositionClose`).
"""

from __future__ import annotations

from typing import Any

from runtime import (
    Buy,
    CancelOrders,
    GTCOrder,
    PositionClose,
    Sell,
    Strategy,
    call,
)


class MarginTrend(Strategy):
    exchange = "binance"
    markets = ["BTC/USDT"]
    timeframe = "1m"
    margin = "isolated"
    leverage = 3.0
    warmup = 60
    initial_cash = 10_000.0

    fast = 20
    slow = 60
    margin_share = 0.5  # share of free margin per entry
    offset = 0.0005  # entry limit this far inside the last price

    async def on_tick(self, ts: Any) -> None:
        for ai in self.universe:
            fast = ai.ohlcv.sma("close", self.fast)
            slow = ai.ohlcv.sma("close", self.slow)
            want = "long" if fast > slow else "short"
            have = "long" if ai.long is not None else "short" if ai.short is not None else None
            if have == want:
                continue
            if ai.orders:
                await call(self, ai, CancelOrders())
            if have is not None:
                await call(self, ai, PositionClose())
            free = self.cash - self.cash_committed
            price = ai.price * (1 - self.offset if want == "long" else 1 + self.offset)
            amount = free * self.margin_share * ai.leverage / price
            if amount * price < ai.cost_min:
                continue
            side = GTCOrder[Buy] if want == "long" else GTCOrder[Sell]
            await call(self, ai, side, amount=amount, price=price, waitfor=0)
