"""The account watchers (balance, positions) and the per-asset ones (orders, trades)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime._errors import OrderNotFound
from runtime.exchanges._interface import StreamingExchange
from watchers._base import Report, Send, Watcher, WatcherConfig, retrying


def _has(exchange: Any, feature: str) -> bool:
    has = getattr(exchange, "has", None)
    if has is None:
        client = getattr(exchange, "_client", None)
        has = getattr(client, "has", {}) if client is not None else {}
    return bool(has.get(feature, True))


class BalanceWatcher(Watcher):
    """Balances: the strategy's currencies (spot) or its collateral (margin)."""

    name = "balance"
    stream_method = "watch_balance"

    def open_stream(self) -> Any | None:
        return self.exchange.watch_balance()

    async def gap_fill(self, send: Send) -> None:
        balance = await retrying(self.exchange.fetch_balance)
        await send.send(("balance", balance))

    def reports(self, message: Any) -> list[Report]:
        return [("balance", message)]


class PositionsWatcher(Watcher):
    """Positions of a margin strategy's markets; a REST snapshot also reports the flat ones."""

    name = "positions"
    stream_method = "watch_positions"

    def __init__(
        self,
        exchange: StreamingExchange,
        config: WatcherConfig,
        symbols: list[str],
        on_event: Callable[[str, Any], None] | None = None,
    ) -> None:
        super().__init__(exchange, config, on_event)
        self.symbols = symbols

    def open_stream(self) -> Any | None:
        return self.exchange.watch_positions(self.symbols)

    async def gap_fill(self, send: Send) -> None:
        positions = await retrying(lambda: self.exchange.fetch_positions(self.symbols))
        await send.send(("positions", {"symbols": self.symbols, "positions": positions}))

    def reports(self, message: Any) -> list[Report]:
        return [("position", p) for p in message]


class OrdersWatcher(Watcher):
    """One asset's orders. The gap fill reads the open orders, and asks for every order the
    strategy still thinks open but the exchange no longer lists, so none ends unseen."""

    def __init__(
        self,
        exchange: StreamingExchange,
        config: WatcherConfig,
        symbol: str,
        local_open: Callable[[], list[tuple[str | None, str]]],
        on_event: Callable[[str, Any], None] | None = None,
    ) -> None:
        super().__init__(exchange, config, on_event)
        self.symbol = symbol
        self.name = f"orders {symbol}"
        self.local_open = local_open

    stream_method = "watch_orders"

    def open_stream(self) -> Any | None:
        return self.exchange.watch_orders(self.symbol)

    async def gap_fill(self, send: Send) -> None:
        listed = await retrying(lambda: self.exchange.fetch_open_orders(self.symbol))
        seen = {o.get("clientOrderId") for o in listed} | {o.get("id") for o in listed}
        for order in listed:
            await send.send(("order", order))
        for order_id, client_id in self.local_open():
            if client_id in seen or order_id in seen:
                continue

            async def lookup(oid: str | None = order_id, cid: str = client_id) -> Any:
                return await self.exchange.fetch_order(oid, self.symbol, {"clientOrderId": cid})

            try:
                await send.send(("order", await retrying(lookup)))
            except OrderNotFound:
                # Not on the exchange: a lost send still being resolved by `call`, or an order
                # the exchange no longer keeps. Reported; the strategy's resolver decides.
                self._on_event(
                    "error",
                    {
                        "watcher": self.name,
                        "client_id": client_id,
                        "error": "open locally, unknown to the exchange",
                    },
                )

    def reports(self, message: Any) -> list[Report]:
        return [("order", o) for o in message if o.get("symbol") in (None, self.symbol)]


class TradesWatcher(Watcher):
    """One asset's fills. The gap fill reads trades since the newest one seen."""

    def __init__(
        self,
        exchange: StreamingExchange,
        config: WatcherConfig,
        symbol: str,
        on_event: Callable[[str, Any], None] | None = None,
    ) -> None:
        super().__init__(exchange, config, on_event)
        self.symbol = symbol
        self.name = f"trades {symbol}"
        self.since_ms: int | None = None

    stream_method = "watch_my_trades"

    def open_stream(self) -> Any | None:
        if not _has(self.exchange, "watchMyTrades"):
            return None
        return self.exchange.watch_my_trades(self.symbol)

    async def gap_fill(self, send: Send) -> None:
        since = None if self.since_ms is None else self.since_ms - 1_000
        trades = await retrying(lambda: self.exchange.fetch_my_trades(self.symbol, since=since))
        for trade in trades:
            self._seen(trade)
            await send.send(("trade", trade))

    def _seen(self, trade: dict[str, Any]) -> None:
        ts = trade.get("timestamp")
        if ts is not None and (self.since_ms is None or ts > self.since_ms):
            self.since_ms = int(ts)

    def reports(self, message: Any) -> list[Report]:
        out: list[Report] = []
        for trade in message:
            if trade.get("symbol") in (None, self.symbol):
                self._seen(trade)
                out.append(("trade", trade))
        return out
