"""The exchange interface every implementation provides: ccxt (live), sim, and scripted mocks.

Methods mirror ccxt's unified API and return ccxt unified structures (order, trade, balance and
position dicts), so the runtime parses every exchange the same way. Errors are vigil's own
(`runtime._errors`): `OrderRejected`/`InsufficientFunds` for a definite refusal, `NetworkError`
when the outcome is unknown, `OrderNotFound` for lookups.

Cancellation: a cancelled call may or may not have reached the exchange; callers resolve
that by looking the order up by client id, never by sending again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

Order = dict[str, Any]
Trade = dict[str, Any]


@runtime_checkable
class Exchange(Protocol):
    id: str

    async def load_markets(self) -> dict[str, dict[str, Any]]: ...

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Order | None:
        """The exchange's order; None only from a simulated exchange that reports straight to
        the runtime (`runtime.exchanges.sim.LedgerListener`), which then knows the order."""
        ...

    async def cancel_order(
        self, id: str | None, symbol: str, params: Mapping[str, Any] | None = None
    ) -> Order: ...

    async def fetch_order(
        self, id: str | None, symbol: str, params: Mapping[str, Any] | None = None
    ) -> Order:
        """By exchange id, or with ``id=None`` and ``params={"clientOrderId": ...}``."""
        ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]: ...

    async def fetch_closed_orders(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[Order]: ...

    async def fetch_my_trades(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[Trade]: ...

    async def fetch_balance(self) -> dict[str, Any]: ...

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[dict[str, Any]]: ...

    async def set_leverage(self, leverage: float, symbol: str) -> dict[str, Any]: ...

    async def set_margin_mode(self, mode: str, symbol: str) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class StreamingExchange(Exchange, Protocol):
    """An exchange that also streams (ccxt.pro's ``watch_*``, each a stream of results) and
    serves public market data: what the watchers read. vigil's ccxt exchange is one."""

    def open_stream(self, method: str, *args: Any, **kwargs: Any) -> Any: ...

    def watch_balance(self) -> Any: ...

    def watch_positions(self, symbols: list[str] | None = None) -> Any: ...

    def watch_orders(self, symbol: str | None = None) -> Any: ...

    def watch_my_trades(self, symbol: str | None = None) -> Any: ...

    async def fetch_ticker(self, symbol: str) -> dict[str, Any]: ...

    async def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]: ...

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
    ) -> list[list[float]]: ...
