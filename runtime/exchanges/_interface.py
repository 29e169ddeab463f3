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
    ) -> Order: ...

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
