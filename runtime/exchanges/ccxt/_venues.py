"""Where ccxt's unified methods need a venue's own parameters: Bybit (v5, unified account).

ccxt's ``bybit`` takes a client order id as ``orderLinkId`` on lookups and cancels (its
unified ``clientOrderId`` is read by ``create_order`` only), cannot fetch an order by client id
alone through ``fetch_order``, answers "leverage not modified" (110043) when the leverage is
already set, and fetches the positions of one symbol or of all. These functions run on the
bridge loop and keep the unified results (and errors) the rest of vigil expects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import ccxt

__all__ = [
    "BYBIT_OPTIONS",
    "bybit_cancel_order",
    "bybit_fetch_order",
    "bybit_fetch_positions",
    "bybit_set_leverage",
    "is_bybit",
]

#: ccxt options vigil sets for Bybit: its markets are spot and linear perpetuals only, and
#: fetch_order by id is acknowledged (ccxt warns that it sees the last 500 orders only).
BYBIT_OPTIONS: Final = {
    "fetchMarkets": {"types": ["spot", "linear"]},
    "fetchOrder": {"acknowledged": True},
}


def is_bybit(exchange_id: str) -> bool:
    return exchange_id == "bybit"


def _link_params(params: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(params)
    client_id = out.pop("clientOrderId", None)
    if client_id is not None:
        out.setdefault("orderLinkId", client_id)
    return out


async def bybit_fetch_order(
    client: Any, id: str | None, symbol: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """By exchange id (ccxt's fetch_order), or by client id through ``/v5/order/realtime``
    (recent orders of any status), then ``/v5/order/history``."""
    query = _link_params(params)
    if id is not None:
        query.pop("orderLinkId", None)
        result: dict[str, Any] = await client.fetch_order(id, symbol, query)
        return result
    if "orderLinkId" not in query:
        raise ccxt.ArgumentsRequired("bybit fetch_order needs an id or a clientOrderId")
    for fetch in (client.fetch_open_orders, client.fetch_canceled_and_closed_orders):
        found = await fetch(symbol, None, None, query)
        if found:
            order: dict[str, Any] = found[0]
            return order
    raise ccxt.OrderNotFound(f"bybit order with orderLinkId {query['orderLinkId']} was not found")


async def bybit_cancel_order(
    client: Any, id: str | None, symbol: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    result: dict[str, Any] = await client.cancel_order(id, symbol, _link_params(params))
    return result


async def bybit_set_leverage(client: Any, leverage: float, symbol: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await client.set_leverage(leverage, symbol)
    except ccxt.BadRequest as exc:
        if "110043" not in str(exc):
            raise
        # Already at that leverage: success, as Binance reports it.
        return {"info": None, "symbol": symbol, "leverage": leverage, "changed": False}
    return result


async def bybit_fetch_positions(client: Any, symbols: list[str] | None) -> list[dict[str, Any]]:
    """ccxt's bybit takes one symbol or none (every open position of the settle coin)."""
    if symbols is not None and len(symbols) == 1:
        one: list[dict[str, Any]] = await client.fetch_positions(symbols)
        return one
    every: list[dict[str, Any]] = await client.fetch_positions(None)
    wanted = None if symbols is None else set(symbols)
    return [p for p in every if wanted is None or p.get("symbol") in wanted]
