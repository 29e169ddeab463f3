"""A busy spot strategy for crash tests: orders every bar, with resting, market and cancels.

After each `call` returns it appends the seq of the newest durable trace record to the file
named by $VIGIL_ACK_FILE: those events were acknowledged and must survive a SIGKILL.
"""

from __future__ import annotations

import os
from typing import Any

from runtime import Buy, CancelOrders, GTCOrder, MarketOrder, Sell, Strategy, call


class Busy(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1m"
    warmup = 1
    initial_cash = 1_000_000.0

    def __init__(self) -> None:
        self.n = 0
        path = os.environ.get("VIGIL_ACK_FILE")
        self.ack = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND) if path else -1

    def acknowledge(self) -> None:
        if self.ack >= 0:
            os.write(self.ack, f"{self._rt.last_durable_seq}\n".encode())

    async def on_tick(self, ts: Any) -> None:
        ai = self.universe["BTC/USDT"]
        self.n += 1
        step = self.n % 4
        if step == 0:
            await call(self, ai, GTCOrder[Buy], amount=0.01, price=ai.price * 0.999, waitfor=0)
        elif step == 1:
            await call(self, ai, MarketOrder[Buy], amount=0.01)
        elif step == 2:
            await call(self, ai, CancelOrders())
        elif ai.cash - ai.cash_committed >= 0.01:
            await call(self, ai, MarketOrder[Sell], amount=0.01)
        self.acknowledge()
