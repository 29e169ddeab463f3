"""The three-modes test with brackets (DESIGN §10): after an up bar it buys with a stop-loss
and a take-profit one bar range away (so they trigger within seconds); after a down bar it
waits. Stateless, so each decision depends only on the bars; it logs each one with the bracket
it asked for."""

from __future__ import annotations

from typing import Any

from runtime import Buy, MarketOrder, Strategy, Trade, call


class UpdownBracket(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1s"
    warmup = 2
    initial_cash = 100_000.0

    def __init__(self) -> None:
        self.decisions: list[tuple[int, str, float | None, float, float | None, float | None]] = []
        self.entries: list[str] = []  # client ids of the entries that filled
        self.refusals: list[str] = []  # rules of refused orders (a price already past a trigger)

    async def on_tick(self, ts: Any) -> None:
        ai = self.universe["BTC/USDT"]
        bars = ai.ohlcv
        close, before = float(bars["close"][-1]), float(bars["close"][-2])
        bar_time = int(bars.time[-1].astype("int64"))
        if close < before:
            self.decisions.append((bar_time, "wait", None, close, None, None))
            return
        width = max(float(bars["high"][-1] - bars["low"][-1]), close * 0.0001)
        stop, take = ai.round_price(close - width), ai.round_price(close + width)
        r = await call(self, ai, MarketOrder[Buy], amount=0.002, stop_loss=stop, take_profit=take)
        price = r.price if isinstance(r, Trade) else None
        if isinstance(r, Trade):
            self.entries.append(r.order.client_id)
        self.decisions.append((bar_time, "buy", price, close, stop, take))

    async def on_order_error(self, ai: Any, order: Any, error: Exception) -> None:
        self.refusals.append(getattr(error, "rule", type(error).__name__))
