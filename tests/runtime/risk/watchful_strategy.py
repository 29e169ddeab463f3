"""A strategy driven by hand from tests that keeps every alert it is given."""

from __future__ import annotations

from typing import Any

import trio

from runtime import Strategy


class Watchful(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1m"
    warmup = 1

    def __init__(self) -> None:
        self.alerts: list[Any] = []
        self.alerted = trio.Event()
        self.errors: list[Exception] = []

    async def on_alert(self, alert: Any) -> None:
        self.alerts.append(alert)
        self.alerted.set()
        self.alerted = trio.Event()

    async def on_order_error(self, ai: Any, order: Any, error: Exception) -> None:
        self.errors.append(error)

    async def alert_of(self, kind: str, seconds: float = 10.0) -> Any:
        """The first alert of `kind`, waiting for it up to `seconds`."""
        with trio.fail_after(seconds):
            while True:
                for alert in self.alerts:
                    if alert.kind == kind:
                        return alert
                await self.alerted.wait()
