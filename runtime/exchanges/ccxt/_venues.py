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
    "BINANCE_HASHES",
    "BYBIT_OPTIONS",
    "BYBIT_TOPICS",
    "ORDER_METHODS",
    "binance_subscribed",
    "bybit_cancel_order",
    "bybit_create_order",
    "bybit_fetch_order",
    "bybit_fetch_positions",
    "bybit_order",
    "bybit_orders",
    "bybit_set_leverage",
    "bybit_subscribed",
    "is_binance",
    "is_bybit",
]

#: ccxt options vigil sets for Bybit: its markets are spot and linear perpetuals only, and
#: fetch_order by id is acknowledged (ccxt warns that it sees the last 500 orders only).
BYBIT_OPTIONS: Final = {
    "fetchMarkets": {"types": ["spot", "linear"]},
    "fetchOrder": {"acknowledged": True},
}


def bybit_ws_balance(balance: dict[str, Any]) -> dict[str, Any]:
    """A ``watch_balance`` result with the totals ``fetch_balance`` reports.

    ccxt reads Bybit's ``wallet`` topic as total = ``equity`` (unrealised PnL included) and
    used = ``locked`` (spot orders only), but ``/v5/account/wallet-balance`` as total =
    ``walletBalance`` and used = ``locked`` + ``totalPositionIM`` + ``totalOrderIM``. The stream
    and the REST reconciliation must agree, so each coin is re-read from the message the REST
    way (``balance["info"]`` holds the message's wallet rows).
    """
    for row in balance.get("info") or []:
        for coin in row.get("coin") or [] if isinstance(row, dict) else []:
            code = coin.get("coin")
            entry = balance.get(code)
            if not isinstance(entry, dict):
                continue
            total = _number(coin.get("walletBalance"))
            used = sum(_number(coin.get(k)) for k in ("locked", "totalPositionIM", "totalOrderIM"))
            free = total - used
            entry.update({"total": total, "used": used, "free": free})
            for key, value in (("total", total), ("used", used), ("free", free)):
                if isinstance(balance.get(key), dict):
                    balance[key][code] = value
    return balance


def _number(value: Any) -> float:
    try:
        return float(value) if value not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0


#: The private topic ccxt's bybit subscribes for a ``watch_*`` method.
BYBIT_TOPICS: Final = {
    "watch_orders": "order",
    "watch_my_trades": "execution",
    "watch_balance": "wallet",
    "watch_positions": "position",
}


_ACKED = "_vigil_acked_subscriptions"


def track_bybit_acks(client: Any) -> None:
    """Record the ``req_id`` of every subscription Bybit acknowledges on ``client`` (a
    ccxt.pro bybit): ccxt drops the acknowledgement, and :func:`bybit_subscribed` needs it."""
    acked: set[str] = set()
    setattr(client, _ACKED, acked)
    handle = client.handle_subscription_status

    def handle_subscription_status(connection: Any, message: Any) -> Any:
        if isinstance(message, dict) and message.get("success") and message.get("req_id"):
            acked.add(str(message["req_id"]))
        return handle(connection, message)

    client.handle_subscription_status = handle_subscription_status


async def bybit_subscribed(client: Any, topic: str) -> bool:
    """Whether Bybit has acknowledged a subscription to ``topic`` on one of ccxt's websocket
    connections (ccxt records each subscription, with its topics and ``id``, as it queues it;
    the frame may wait behind its websocket throttle)."""
    acked = getattr(client, _ACKED, None)
    for connection in list(getattr(client, "clients", {}).values()):
        for subscription in list(getattr(connection, "subscriptions", {}).values()):
            if (
                isinstance(subscription, dict)
                and topic in (subscription.get("topics") or ())
                and (acked is None or str(subscription.get("id")) in acked)
            ):
                return True
    return False


#: The part of its message hash by which ccxt.pro binance files a ``watch_*`` call's future
#: ("spot:balance", "orders:BTC/USDT", "myTrades:BTC/USDT", "future:positions::...").
BINANCE_HASHES: Final = {
    "watch_orders": "orders",
    "watch_my_trades": "myTrades",
    "watch_balance": "balance",
    "watch_positions": "positions",
}


async def binance_subscribed(client: Any, method: str) -> bool:
    """Whether a ``method`` call of ccxt.pro binance (``client``) waits on a live user-data
    subscription: its future is filed on a connected websocket and no authentication is under
    way. ccxt files that future only once the call has authenticated (a WebSocket API
    ``userDataStream.subscribe`` answered, for spot) and connected (the listenKey stream,
    for futures), i.e. once Binance sends the account's events to that connection."""
    token = BINANCE_HASHES[method]
    armed = False
    for connection in list(getattr(client, "clients", {}).values()):
        futures = list(getattr(connection, "futures", {}))
        if any(str(key).startswith("authenticate") for key in futures):
            return False  # a listenKey or a subscription still being made
        connected = getattr(connection, "connected", None)
        if connected is None or not connected.done() or connected.cancelled():
            continue
        if connected.exception() is None and any(token in str(k).split(":") for k in futures):
            armed = True
    return armed


def is_binance(exchange_id: str) -> bool:
    return exchange_id.startswith("binance")


def is_bybit(exchange_id: str) -> bool:
    return exchange_id == "bybit"


#: Unified methods whose orders :func:`bybit_orders` normalises.
ORDER_METHODS: Final = frozenset(
    {"fetch_order", "fetch_open_orders", "fetch_closed_orders", "create_order", "cancel_order"}
)


def bybit_order(order: dict[str, Any]) -> dict[str, Any]:
    """One Bybit order as vigil reads orders: ccxt reports ``PartiallyFilledCanceled`` (an IOC
    or a cancel after a partial fill) as "closed", which would leave the rest open locally;
    it is "canceled" with its fills, as Binance reports it."""
    info = order.get("info") or {}
    if isinstance(info, dict) and info.get("orderStatus") == "PartiallyFilledCanceled":
        order["status"] = "canceled"
    return order


def bybit_orders(method: str, result: Any) -> Any:
    """:func:`bybit_order` over a unified method's result (an order or a list of them)."""
    if method not in ORDER_METHODS and method != "watch_orders":
        return result
    if isinstance(result, list):
        return [bybit_order(o) if isinstance(o, dict) else o for o in result]
    return bybit_order(result) if isinstance(result, dict) else result


async def bybit_create_order(
    client: Any,
    symbol: str,
    type: str,
    side: str,
    amount: float,
    price: float | None,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """ccxt's create_order, then the order read back: Bybit acknowledges with the ids only,
    and the caller needs what Binance's reply holds (status, fills). When the read-back fails
    the order is placed all the same: the acknowledgement is completed from the request (open,
    unfilled), and the order stream tells the rest."""
    order: dict[str, Any] = await client.create_order(symbol, type, side, amount, price, params)
    if order.get("status") is not None:
        return bybit_order(order)
    try:
        return await bybit_fetch_order(client, order.get("id"), symbol, {})
    except (ccxt.NetworkError, ccxt.ExchangeError):
        pass
    now = client.milliseconds()
    post_only = bool(params.get("postOnly")) or params.get("timeInForce") == "PO"
    order.update(
        {
            "symbol": symbol,
            "type": type,
            "side": side,
            "amount": amount,
            "price": price,
            "status": "open",
            "filled": 0.0,
            "remaining": amount,
            "timestamp": order.get("timestamp") or now,
            "datetime": order.get("datetime") or client.iso8601(now),
            "timeInForce": "PO" if post_only else params.get("timeInForce"),
            "postOnly": post_only,
            "reduceOnly": bool(params.get("reduceOnly")),
        }
    )
    if order.get("clientOrderId") is None:
        order["clientOrderId"] = params.get("clientOrderId")
    return bybit_order(order)


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
        return bybit_order(result)
    if "orderLinkId" not in query:
        raise ccxt.ArgumentsRequired("bybit fetch_order needs an id or a clientOrderId")
    for fetch in (client.fetch_open_orders, client.fetch_canceled_and_closed_orders):
        found = await fetch(symbol, None, None, query)
        if found:
            order: dict[str, Any] = found[0]
            return bybit_order(order)
    raise ccxt.OrderNotFound(f"bybit order with orderLinkId {query['orderLinkId']} was not found")


async def bybit_cancel_order(
    client: Any, id: str | None, symbol: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Cancel, then read the order back: Bybit acknowledges a cancel with the ids only, and
    the caller needs its final state (fills included)."""
    ack: dict[str, Any] = await client.cancel_order(id, symbol, _link_params(params))
    return await bybit_fetch_order(client, ack.get("id") or id, symbol, {})


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
