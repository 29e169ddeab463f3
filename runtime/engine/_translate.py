"""ccxt unified dicts to engine events, the same way for every exchange and mode.

Translations read the local state (to know which orders exist) but never change it: the caller
records the events and applies them.
"""

from __future__ import annotations

import math
from typing import Any

from runtime.engine._engine import (
    BalanceUpdated,
    Event,
    OrderAcknowledged,
    OrderCancelled,
    OrderCreated,
    OrderFilled,
    OrderRejected,
    PositionUpdated,
    State,
)
from runtime.model._orders import CANCELED, EXPIRED, Order, order_type_of


def _f(value: Any, default: float = 0.0) -> float:
    return default if value is None else float(value)


def _finite(value: Any) -> float | None:
    """`value` as a float when it is a finite number, else None."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def find_order(state: State, order: dict[str, Any]) -> Order | None:
    client_id = order.get("clientOrderId")
    if client_id and client_id in state.orders:
        return state.orders[client_id]
    order_id = order.get("id") or order.get("order")
    if order_id is not None:
        return state.orders_by_id.get(str(order_id))
    return None


def order_events(
    state: State, o: dict[str, Any], reference_price: float | None = None
) -> list[Event]:
    """Events for one reported order: created (if new), acknowledged, cancelled or rejected.
    Fills come from trades, never from an order's `filled` field."""
    symbol = o["symbol"]
    timestamp = int(o.get("lastUpdateTimestamp") or o.get("timestamp") or 0)
    local = find_order(state, o)
    events: list[Event] = []
    client_id = str(o.get("clientOrderId") or o["id"])
    if local is None:
        if reference_price is None or not math.isfinite(reference_price):
            # Adopted before any price is known (a restart): value it at its own price.
            reference_price = _finite(o.get("average")) or _finite(o.get("price"))
        trigger_price = _finite(o.get("triggerPrice"))
        trigger = None
        if trigger_price:
            trigger = "take_profit" if _finite(o.get("takeProfitPrice")) else "stop"
        type_cls = order_type_of(
            o.get("type") or "limit",
            o.get("timeInForce"),
            bool(o.get("postOnly")),
            o["side"],
            trigger,
        )
        events.append(
            OrderCreated(
                symbol=symbol,
                client_id=client_id,
                side=o["side"],
                order_type=type_cls.__name__.split("[", 1)[0],
                amount=_f(o.get("amount")),
                price=None if o.get("type") == "market" else _f(o.get("price")),
                timestamp=int(o.get("timestamp") or timestamp),
                id=None if o.get("id") is None else str(o["id"]),
                reduce_only=bool(o.get("reduceOnly")),
                reference_price=reference_price,
                trigger_price=trigger_price or None,
            )
        )
    elif o.get("id") is not None and local.id != str(o["id"]):
        events.append(OrderAcknowledged(symbol, local.client_id, str(o["id"]), timestamp))
    status = o.get("status")
    if status in (CANCELED, EXPIRED):
        events.append(
            OrderCancelled(
                symbol, client_id if local is None else local.client_id, timestamp, status
            )
        )
    elif status == "rejected":
        events.append(
            OrderRejected(
                symbol,
                client_id if local is None else local.client_id,
                timestamp,
                "rejected by the exchange",
            )
        )
    return events


def trade_event(state: State, t: dict[str, Any]) -> OrderFilled | None:
    """The fill for a reported trade, or None when its order is not known (yet)."""
    order = find_order(state, {"clientOrderId": t.get("clientOrderId"), "id": t.get("order")})
    if order is None:
        return None
    fee = t.get("fee") or {}
    return OrderFilled(
        symbol=t["symbol"],
        client_id=order.client_id,
        trade_id=str(t["id"]),
        timestamp=int(t.get("timestamp") or 0),
        amount=_f(t.get("amount")),
        price=_f(t.get("price")),
        fee=_f(fee.get("cost")),
        fee_currency=fee.get("currency") or state.asset(t["symbol"]).quote,
        taker=t.get("takerOrMaker") != "maker",
    )


def balance_events(balance: dict[str, Any], timestamp: int) -> list[BalanceUpdated]:
    """A balance report as totals per currency. For derivatives accounts the wallet balance
    (realised only) is used, not ccxt's `total`, which may include unrealised PnL: the engine
    adds realised PnL itself and marks positions to market separately."""
    totals = dict(balance.get("total") or {})
    totals.update(_wallet_balances(balance.get("info")))
    return [BalanceUpdated(c, _f(v), timestamp) for c, v in sorted(totals.items()) if v is not None]


def _wallet_balances(info: Any) -> dict[str, Any]:
    """Binance USDⓈ-M wallet balances from a REST account body or an ACCOUNT_UPDATE event."""
    out: dict[str, Any] = {}
    if isinstance(info, dict):
        for asset in info.get("assets") or ():  # REST account
            if isinstance(asset, dict) and "walletBalance" in asset:
                out[asset["asset"]] = asset["walletBalance"]
        update = info.get("a")
        if isinstance(update, dict):  # ACCOUNT_UPDATE
            for asset in update.get("B") or ():
                if isinstance(asset, dict) and "wb" in asset:
                    out[asset["a"]] = asset["wb"]
    elif isinstance(info, list):  # REST /fapi/v2/balance
        for asset in info:
            if isinstance(asset, dict) and "balance" in asset and "asset" in asset:
                out[asset["asset"]] = asset["balance"]
    return out


def position_event(p: dict[str, Any], leverage: float) -> PositionUpdated:
    """The exchange's report of one position side. A report without a leverage (ccxt's
    Binance v3 positionRisk and ACCOUNT_UPDATE have none) keeps `leverage`, the asset's own; the
    margin is the exchange's (initial margin, collateral, or ACCOUNT_UPDATE's isolated wallet
    "iw"), and only a report with none of them gets the margin that leverage implies."""
    contracts = _f(p.get("contracts"))
    entry = _f(p.get("entryPrice"))
    lever = _finite(p.get("leverage")) or leverage
    info = p.get("info")
    reported = next(
        (
            x
            for x in (
                _finite(p.get("initialMargin")),
                _finite(p.get("collateral")),
                _finite(info.get("iw")) if isinstance(info, dict) else None,
            )
            if x is not None
        ),
        None,
    )
    size = contracts * (_finite(p.get("contractSize")) or 1.0)
    return PositionUpdated(
        symbol=p["symbol"],
        side=p.get("side") or "long",
        contracts=contracts,
        entry_price=entry,
        leverage=lever,
        margin=reported if reported is not None else size * entry / lever,
        timestamp=int(p.get("timestamp") or 0),
    )


def emulated_fill(state: State, order: Order, o: dict[str, Any]) -> OrderFilled | None:
    """A fill derived from an order update, for exchanges without trade endpoints: the amount
    is the rise in cumulative `filled`, the price the rise in `cost` over it, the fee the rise
    in the order's fee."""
    filled = _f(o.get("filled"))
    delta = filled - order.filled
    if delta <= 1e-12 * max(1.0, filled):
        return None
    cost = _f(o.get("cost"))
    done_cost = sum(t.value for t in order.fills)
    ai = state.asset(order.symbol)
    price = (cost - done_cost) / (delta * ai.contract_size) if cost else _f(o.get("average"))
    fee = o.get("fee") or {}
    fee_cost = _f(fee.get("cost")) - sum(t.fee for t in order.fills)
    stamp = int(
        o.get("lastTradeTimestamp") or o.get("lastUpdateTimestamp") or o.get("timestamp") or 0
    )
    return OrderFilled(
        symbol=order.symbol,
        client_id=order.client_id,
        trade_id=f"{order.id or order.client_id}-f{filled!r}",
        timestamp=stamp,
        amount=delta,
        price=price,
        fee=max(fee_cost, 0.0),
        fee_currency=fee.get("currency") or ai.quote,
        taker=True,
    )
