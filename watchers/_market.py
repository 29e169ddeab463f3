"""Market-data watchers: order book, public trades, OHLCV and ticker, one per market.

They report ``("book" | "public_trades" | "ohlcv" | "ticker", (symbol, data))`` into the same
channel as the account watchers. After a reconnect each fills its gap from REST: the book is
fetched again, and bars since the last one seen are fetched, so no bar is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.exchanges._interface import StreamingExchange
from watchers._base import Report, Send, Watcher, WatcherConfig, retrying


class MarketWatcher(Watcher):
    """Base of the per-market watchers."""

    method = ""
    kind = ""

    def __init__(
        self,
        exchange: StreamingExchange,
        config: WatcherConfig,
        symbol: str,
        on_event: Callable[[str, Any], None] | None = None,
    ) -> None:
        super().__init__(exchange, config, on_event)
        self.symbol = symbol
        self.name = f"{self.kind} {symbol}"

    def open_stream(self) -> Any | None:
        return self.exchange.open_stream(self.method, self.symbol)

    def reports(self, message: Any) -> list[Report]:
        return [(self.kind, (self.symbol, message))]


class BookWatcher(MarketWatcher):
    """The L2 order book, kept by ccxt.pro's watch_order_book."""

    method = "watch_order_book"
    kind = "book"

    async def gap_fill(self, send: Send) -> None:
        book = await retrying(lambda: self.exchange.fetch_order_book(self.symbol))
        await send.send((self.kind, (self.symbol, book)))


class PublicTradesWatcher(MarketWatcher):
    """The public trade tape (what fills resting paper orders)."""

    method = "watch_trades"
    kind = "public_trades"

    async def gap_fill(self, send: Send) -> None:
        return None  # trades missed while disconnected cannot fill anything after the fact


class TickerWatcher(MarketWatcher):
    method = "watch_ticker"
    kind = "ticker"

    async def gap_fill(self, send: Send) -> None:
        ticker = await retrying(lambda: self.exchange.fetch_ticker(self.symbol))
        await send.send((self.kind, (self.symbol, ticker)))


class OHLCVWatcher(MarketWatcher):
    """Bars from the kline stream; after a reconnect, the bars since the last one seen."""

    kind = "ohlcv"

    def __init__(
        self,
        exchange: StreamingExchange,
        config: WatcherConfig,
        symbol: str,
        timeframe: str,
        on_event: Callable[[str, Any], None] | None = None,
    ) -> None:
        super().__init__(exchange, config, symbol, on_event)
        self.timeframe = timeframe
        self.since_ms: int | None = None

    def open_stream(self) -> Any | None:
        return self.exchange.open_stream("watch_ohlcv", self.symbol, self.timeframe)

    async def gap_fill(self, send: Send) -> None:
        async def fetch() -> Any:
            return await self.exchange.fetch_ohlcv(
                self.symbol, self.timeframe, since=self.since_ms, limit=500
            )

        rows = await retrying(fetch)
        await send.send((self.kind, (self.symbol, self._seen(rows))))

    def _seen(self, rows: list[list[float]]) -> list[list[float]]:
        if rows:
            self.since_ms = int(rows[-1][0])
        return rows

    def reports(self, message: Any) -> list[Report]:
        return [(self.kind, (self.symbol, self._seen(message)))]
