"""A scripted exchange for unit tests: orders fill only when and where the test says.

It implements the exchange interface (`runtime.exchanges._interface.Exchange`) in memory:
market orders and marketable limit orders fill at once at :attr:`ScriptedExchange.price`;
other limit orders rest until :meth:`ScriptedExchange.move_to` moves the price through them.
Funds are checked at placement (quote for buys, base for sells, with the fee; a resting
order reserves nothing), fees are charged in the quote currency, and every answer is a ccxt
unified structure. It passes the same conformance suite as the simulated and the ccxt
exchanges (`runtime.testing.conformance`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from runtime._errors import InsufficientFunds, OrderNotFound, OrderRejected
from runtime.exchanges._markets import market_for

FEE_RATE = 0.001


class ScriptedExchange:
    id = "scripted"

    def __init__(
        self, symbol: str = "BTC/USDT", *, price: float, balances: Mapping[str, float]
    ) -> None:
        self.market = market_for("binance", symbol)
        self.symbol = symbol
        self.price = price
        self.now_ms = 1_700_000_000_000
        self.balances = {code: float(amount) for code, amount in balances.items()}
        self.orders: dict[str, dict[str, Any]] = {}
        self.trades: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    # The script.
    def move_to(self, price: float) -> None:
        """Move the price; resting orders it crosses fill at their limit price."""
        self.price = price
        self.now_ms += 1000
        for order in list(self.orders.values()):
            if order["status"] != "open":
                continue
            crossed = price <= order["price"] if order["side"] == "buy" else price >= order["price"]
            if crossed:
                self._fill(order, order["price"])

    # The exchange interface.
    async def load_markets(self) -> dict[str, dict[str, Any]]:
        return {self.symbol: self.market}

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        params = dict(params or {})
        if symbol != self.symbol:
            raise OrderRejected(f"scripted exchange has no market {symbol!r}")
        if amount <= 0 or (type == "limit" and (price is None or price <= 0)):
            raise OrderRejected(f"amount {amount!r} and price {price!r} must be positive")
        limit = self.price if type == "market" else float(price or 0.0)
        base, quote = self.market["base"], self.market["quote"]
        need, have = (
            (amount * limit * (1 + FEE_RATE), self.balances.get(quote, 0.0))
            if side == "buy"
            else (amount, self.balances.get(base, 0.0))
        )
        if need > have:
            raise InsufficientFunds(f"insufficient balance: need {need:g}, have {have:g}")
        client_id = str(params.get("clientOrderId") or f"scripted-{next(self._ids)}")
        order: dict[str, Any] = {
            "id": str(next(self._ids)),
            "clientOrderId": client_id,
            "symbol": symbol,
            "type": type,
            "side": side,
            "price": None if type == "market" else limit,
            "amount": amount,
            "filled": 0.0,
            "remaining": amount,
            "cost": 0.0,
            "average": None,
            "status": "open",
            "timeInForce": params.get("timeInForce", "GTC"),
            "timestamp": self.now_ms,
            "trades": [],
            "fee": None,
        }
        self.orders[order["id"]] = order
        marketable = (side == "buy" and limit >= self.price) or (
            side == "sell" and limit <= self.price
        )
        if type == "market" or marketable:
            self._fill(order, self.price)
        elif order["timeInForce"] in ("IOC", "FOK"):
            order["status"] = "expired"
        return dict(order)

    async def cancel_order(
        self, id: str | None, symbol: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        order = self._find(id, params)
        if order["status"] != "open":
            raise OrderNotFound(f"order {order['id']} is {order['status']}, not open")
        order["status"] = "canceled"
        return dict(order)

    async def fetch_order(
        self, id: str | None, symbol: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return dict(self._find(id, params))

    async def fetch_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return [dict(o) for o in self.orders.values() if o["status"] == "open"]

    async def fetch_closed_orders(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        done = [dict(o) for o in self.orders.values() if o["status"] != "open"]
        return done[-limit:] if limit else done

    async def fetch_my_trades(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        trades = [t for t in self.trades if since is None or t["timestamp"] >= since]
        return trades[-limit:] if limit else trades

    async def fetch_balance(self) -> dict[str, Any]:
        totals = dict(self.balances)
        return {"free": dict(totals), "used": dict.fromkeys(totals, 0.0), "total": totals}

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[dict[str, Any]]:
        return []  # spot only

    async def set_leverage(self, leverage: float, symbol: str) -> dict[str, Any]:
        raise OrderRejected("the scripted exchange is spot only: no leverage")

    async def set_margin_mode(self, mode: str, symbol: str) -> dict[str, Any]:
        raise OrderRejected("the scripted exchange is spot only: no margin mode")

    async def close(self) -> None:
        pass

    # Internals.
    def _find(self, id: str | None, params: Mapping[str, Any] | None) -> dict[str, Any]:
        client_id = (params or {}).get("clientOrderId")
        for order in self.orders.values():
            if (id is not None and order["id"] == id) or (
                id is None and client_id is not None and order["clientOrderId"] == client_id
            ):
                return order
        raise OrderNotFound(f"no order id={id!r} clientOrderId={client_id!r}")

    def _fill(self, order: dict[str, Any], price: float) -> None:
        amount = order["remaining"]
        cost = amount * price
        fee = cost * FEE_RATE
        base, quote = self.market["base"], self.market["quote"]
        sign = 1.0 if order["side"] == "buy" else -1.0
        self.balances[base] = self.balances.get(base, 0.0) + sign * amount
        self.balances[quote] = self.balances.get(quote, 0.0) - sign * cost - fee
        trade = {
            "id": f"t{len(self.trades) + 1}",
            "order": order["id"],
            "symbol": order["symbol"],
            "side": order["side"],
            "price": price,
            "amount": amount,
            "cost": cost,
            "fee": {"currency": quote, "cost": fee},
            "timestamp": self.now_ms,
            "takerOrMaker": "taker",
        }
        self.trades.append(trade)
        order.update(
            filled=order["amount"],
            remaining=0.0,
            cost=order["cost"] + cost,
            average=price,
            status="closed",
            trades=[*order["trades"], trade],
        )
