"""Binance wire formats: markets, decimals, and order/trade bodies for spot and USDⓈ-M.

Binance sends decimals as strings: spot with eight places (``"0.00100000"``), futures with the
symbol's ``pricePrecision`` / ``quantityPrecision``. Prices of the order book are computed in
whole ticks and formatted from the tick's decimal string, so no float noise reaches the wire.
Field sets follow Binance's documented responses, which the official SDK models check in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from runtime.exchanges._binance_info import (
    FUTURES_SYMBOLS,
    SPOT_SYMBOLS,
    FuturesSymbol,
    SpotSymbol,
)
from runtime.model._orders import CANCELED, CLOSED, EXPIRED, OPEN, REJECTED, Order, Trade

__all__ = ["FUTURES_MARKETS", "SPOT_MARKETS", "Market", "futures_order", "spot_order"]

_Q8: Final = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class Market:
    """One Binance symbol as the loopback server speaks it."""

    id: str  # "BTCUSDT"
    symbol: str  # ccxt's unified symbol: "BTC/USDT" or "BTC/USDT:USDT"
    base: str
    quote: str
    futures: bool
    tick: Decimal
    step: Decimal
    price_places: int
    qty_places: int

    @property
    def pair(self) -> str:
        return f"{self.base}/{self.quote}"

    def price(self, value: float | None) -> str:
        """A price on the wire (``"0"``-like for none)."""
        return _fixed(value or 0.0, self.price_places)

    def fill_price(self, value: float) -> str:
        """An execution or average price: the simulated fill price, to eight places."""
        return _fixed(value, max(self.price_places, 8))

    def qty(self, value: float) -> str:
        return _fixed(value, self.qty_places)

    def quote_qty(self, value: float) -> str:
        """An amount of the quote currency (cost, commission, balance)."""
        return _fixed(value, 8)

    def ticks(self, n: int) -> str:
        """The price of ``n`` whole ticks, exact."""
        return _fixed_decimal(self.tick * n, self.price_places)

    def steps(self, n: int) -> str:
        """The quantity of ``n`` whole amount steps, exact."""
        return _fixed_decimal(self.step * n, self.qty_places)


def _fixed(value: float, places: int) -> str:
    # repr-based Decimal keeps the float's shortest form, so 0.1 prints as 0.1, not 0.1000000001.
    return _fixed_decimal(Decimal(repr(float(value))), places)


def _fixed_decimal(value: Decimal, places: int) -> str:
    fixed = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return f"{abs(fixed) if fixed == 0 else fixed:f}"  # never "-0.00"


def _market(s: SpotSymbol | FuturesSymbol) -> Market:
    # Spot decimals always carry eight places; futures, the symbol's precisions (module doc).
    if isinstance(s, FuturesSymbol):
        futures, places = True, (s.price_precision, s.quantity_precision)
    else:
        futures, places = False, (8, 8)
    return Market(
        id=s.id,
        symbol=s.symbol,
        base=s.base,
        quote=s.quote,
        futures=futures,
        tick=Decimal(s.tick_size),
        step=Decimal(s.step_size),
        price_places=places[0],
        qty_places=places[1],
    )


#: Spot markets by Binance id ("BTCUSDT").
SPOT_MARKETS: Final[dict[str, Market]] = {s.id: _market(s) for s in SPOT_SYMBOLS.values()}
#: USDⓈ-M perpetuals by Binance id ("BTCUSDT").
FUTURES_MARKETS: Final[dict[str, Market]] = {s.id: _market(s) for s in FUTURES_SYMBOLS.values()}


# Order fields shared by the two APIs.
def order_status(order: Order) -> str:
    if order.status == OPEN:
        return "PARTIALLY_FILLED" if order.filled > 0 else "NEW"
    return {CLOSED: "FILLED", CANCELED: "CANCELED", EXPIRED: "EXPIRED", REJECTED: "REJECTED"}[
        order.status
    ]


def time_in_force(order: Order, *, futures: bool) -> str:
    tif = getattr(order.type, "time_in_force", None)
    if tif is None:  # market orders report GTC on Binance
        return "GTC"
    if tif == "PO":
        return "GTX" if futures else "GTC"
    return str(tif)


# Binance's names for protective orders: (trigger kind, with a limit price) -> type.
_SPOT_TRIGGER_TYPES: Final = {
    ("StopOrder", False): "STOP_LOSS",
    ("StopOrder", True): "STOP_LOSS_LIMIT",
    ("TakeProfitOrder", False): "TAKE_PROFIT",
    ("TakeProfitOrder", True): "TAKE_PROFIT_LIMIT",
}
_FUTURES_TRIGGER_TYPES: Final = {
    ("StopOrder", False): "STOP_MARKET",
    ("StopOrder", True): "STOP",
    ("TakeProfitOrder", False): "TAKE_PROFIT_MARKET",
    ("TakeProfitOrder", True): "TAKE_PROFIT",
}
#: Binance order type -> (ccxt unified trigger param, whether it takes a limit price).
SPOT_TRIGGER_PARAMS: Final = {
    "STOP_LOSS": ("stopLossPrice", False),
    "STOP_LOSS_LIMIT": ("stopLossPrice", True),
    "TAKE_PROFIT": ("takeProfitPrice", False),
    "TAKE_PROFIT_LIMIT": ("takeProfitPrice", True),
}
FUTURES_TRIGGER_PARAMS: Final = {
    "STOP_MARKET": ("stopLossPrice", False),
    "STOP": ("stopLossPrice", True),
    "TAKE_PROFIT_MARKET": ("takeProfitPrice", False),
    "TAKE_PROFIT": ("takeProfitPrice", True),
}


def order_type(order: Order, *, futures: bool) -> str:
    if order.trigger_price is not None:
        base = order.type.__name__.split("[", 1)[0]
        types = _FUTURES_TRIGGER_TYPES if futures else _SPOT_TRIGGER_TYPES
        return types[(base, order.price is not None)]
    if order.price is None:
        return "MARKET"
    if getattr(order.type, "post_only", False) and not futures:
        return "LIMIT_MAKER"
    return "LIMIT"


def cost(order: Order) -> float:
    return sum(t.value for t in order.fills)


def spot_order(
    m: Market, order: Order, updated_ms: int, working: bool = True, list_id: int = -1
) -> dict[str, Any]:
    """The order as ``GET /api/v3/order`` (and ``openOrders``, ``allOrders``) returns it;
    `working` is False for a protective order still waiting for its trigger, `list_id` the
    OCO order list it belongs to (-1: none)."""
    return {
        "symbol": m.id,
        "orderId": int(order.id or 0),
        "orderListId": list_id,
        "clientOrderId": order.client_id,
        "price": m.price(order.price),
        "origQty": m.qty(order.amount),
        "executedQty": m.qty(order.filled),
        "cummulativeQuoteQty": m.quote_qty(cost(order)),
        "status": order_status(order),
        "timeInForce": time_in_force(order, futures=False),
        "type": order_type(order, futures=False),
        "side": order.side.upper(),
        "stopPrice": m.price(order.trigger_price or 0.0),
        "icebergQty": m.qty(0.0),
        "time": order.timestamp,
        "updateTime": updated_ms,
        "isWorking": working,
        "workingTime": order.timestamp,
        "origQuoteOrderQty": m.quote_qty(0.0),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


# The order fields both the RESULT/FULL order reply and the cancel reply carry.
_RESULT_KEYS: Final = (
    "price",
    "origQty",
    "executedQty",
    "origQuoteOrderQty",
    "cummulativeQuoteQty",
    "status",
    "timeInForce",
    "type",
    "side",
)


def spot_new_order(
    m: Market,
    order: Order,
    updated_ms: int,
    resp_type: str,
    cancel_client_id: str | None = None,
    working: bool = True,
    list_id: int = -1,
) -> dict[str, Any]:
    """The reply of ``POST /api/v3/order`` for ``newOrderRespType`` ACK, RESULT or FULL.

    With ``cancel_client_id`` (the cancel request's own client id) it is the reply of
    ``DELETE /api/v3/order`` instead.
    """
    full = spot_order(m, order, updated_ms, working, list_id)
    if cancel_client_id is not None:
        # Binance names the cancel request by its own client id; the order's is "orig".
        out = {
            "symbol": m.id,
            "origClientOrderId": order.client_id,
            "orderId": full["orderId"],
            "orderListId": list_id,
            "clientOrderId": cancel_client_id,
            "transactTime": updated_ms,
        }
        for key in (*_RESULT_KEYS, "selfTradePreventionMode"):
            out[key] = full[key]
        if order.trigger_price is not None:
            out["stopPrice"] = full["stopPrice"]
        return out
    out = {k: full[k] for k in ("symbol", "orderId", "orderListId", "clientOrderId")}
    out["transactTime"] = order.timestamp
    if resp_type == "ACK":
        return out
    for key in (*_RESULT_KEYS, "workingTime", "selfTradePreventionMode"):
        out[key] = full[key]
    if order.trigger_price is not None:  # Binance adds it for stop and take-profit types
        out["stopPrice"] = full["stopPrice"]
        if not working:
            out["workingTime"] = -1
    if resp_type == "FULL":
        out["fills"] = [
            {
                "price": m.fill_price(t.price),
                "qty": m.qty(t.amount),
                "commission": m.quote_qty(t.fee),
                "commissionAsset": t.fee_currency,
                "tradeId": int(t.id),
            }
            for t in order.fills
        ]
    return out


def spot_trade(m: Market, t: Trade) -> dict[str, Any]:
    """One fill as ``GET /api/v3/myTrades`` returns it."""
    return {
        "symbol": m.id,
        "id": int(t.id),
        "orderId": int(t.order.id or 0),
        "orderListId": -1,
        "price": m.fill_price(t.price),
        "qty": m.qty(t.amount),
        "quoteQty": m.quote_qty(t.value),
        "commission": m.quote_qty(t.fee),
        "commissionAsset": t.fee_currency,
        "time": t.timestamp,
        "isBuyer": t.order.side == "buy",
        "isMaker": not t.taker,
        "isBestMatch": True,
    }


def futures_order(
    m: Market, order: Order, updated_ms: int, order_id: int | None = None
) -> dict[str, Any]:
    """The order as ``GET /fapi/v1/order`` (and ``openOrders``, ``allOrders``) returns it. A
    triggered conditional order is the matching engine's order it became: `order_id`, a
    MARKET or LIMIT type, its conditional type as ``origType``."""
    filled = order.filled
    avg = cost(order) / filled if filled else 0.0
    kind = order_type(order, futures=True)
    actual = kind
    if order.trigger_price is not None:
        actual = "MARKET" if order.price is None else "LIMIT"
    return {
        "avgPrice": m.fill_price(avg),
        "clientOrderId": order.client_id,
        "cumQuote": m.quote_qty(cost(order)),
        "executedQty": m.qty(filled),
        "orderId": order_id if order_id is not None else int(order.id or 0),
        "origQty": m.qty(order.amount),
        "origType": kind,
        "price": m.price(order.price),
        "reduceOnly": order.reduce_only,
        "side": order.side.upper(),
        "positionSide": "BOTH",
        "status": order_status(order),
        "stopPrice": m.price(order.trigger_price or 0.0),
        "closePosition": False,
        "symbol": m.id,
        "time": order.timestamp,
        "timeInForce": time_in_force(order, futures=True),
        "type": actual,
        "updateTime": updated_ms,
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
    }


def futures_new_order(
    m: Market, order: Order, updated_ms: int, order_id: int | None = None
) -> dict[str, Any]:
    """The reply of ``POST /fapi/v1/order`` and ``DELETE /fapi/v1/order``."""
    out = futures_order(m, order, updated_ms, order_id)
    del out["time"]
    out["cumQty"] = out["executedQty"]
    return out


def futures_trade(
    m: Market, t: Trade, realized_pnl: float, order_id: int | None = None
) -> dict[str, Any]:
    """One fill as ``GET /fapi/v1/userTrades`` returns it (`order_id`: see futures_order)."""
    return {
        "buyer": t.order.side == "buy",
        "commission": m.quote_qty(t.fee),
        "commissionAsset": t.fee_currency,
        "id": int(t.id),
        "maker": not t.taker,
        "orderId": order_id if order_id is not None else int(t.order.id or 0),
        "price": m.fill_price(t.price),
        "qty": m.qty(t.amount),
        "quoteQty": m.quote_qty(t.value),
        "realizedPnl": m.quote_qty(realized_pnl),
        "side": t.order.side.upper(),
        "positionSide": "BOTH",
        "symbol": m.id,
        "time": t.timestamp,
    }


def algo_order(
    m: Market,
    order: Order,
    updated_ms: int,
    status: str,
    *,
    actual_id: int | None = None,
    trigger_ms: int = 0,
    listing: bool = True,
) -> dict[str, Any]:
    """A conditional order as Binance's Algo Service shows it: the ``POST /fapi/v1/algoOrder``
    reply (``listing=False``), or ``GET algoOrder`` / ``openAlgoOrders`` / ``allAlgoOrders``
    (with the matching-engine order it became, once triggered)."""
    out: dict[str, Any] = {
        "algoId": int(order.id or 0),
        "clientAlgoId": order.client_id,
        "algoType": "CONDITIONAL",
        "orderType": order_type(order, futures=True),
        "symbol": m.id,
        "side": order.side.upper(),
        "positionSide": "BOTH",
        "timeInForce": time_in_force(order, futures=True),
        "quantity": m.qty(order.amount),
        "algoStatus": status,
    }
    if listing:
        out["actualOrderId"] = "" if actual_id is None else str(actual_id)
        out["actualPrice"] = m.fill_price(cost(order) / order.filled if order.filled else 0.0)
    out.update(
        {
            "triggerPrice": m.price(order.trigger_price),
            "price": m.price(order.price),
            "icebergQuantity": None,
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": "CONTRACT_PRICE",
            "priceMatch": "NONE",
            "closePosition": False,
            "priceProtect": False,
            "reduceOnly": order.reduce_only,
            "createTime": order.timestamp,
            "updateTime": updated_ms,
            "triggerTime": trigger_ms,
            "goodTillDate": 0,
        }
    )
    return out
