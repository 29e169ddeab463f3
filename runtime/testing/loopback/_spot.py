"""The spot account of the loopback exchange: ``/api/v3`` trading and spot user data."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from runtime.engine._engine import commitment
from runtime.exchanges._binance_info import SPOT_MAKER_FEE, SPOT_TAKER_FEE
from runtime.model._orders import EXPIRED, OPEN, Order, Trade
from runtime.testing.loopback._accounts import (
    Account,
    decimal_param,
    enum_param,
    fmt_amount,
    random_client_id,
    required_param,
)
from runtime.testing.loopback._auth import BinanceError
from runtime.testing.loopback._feed import BarClock
from runtime.testing.loopback._market import MarketData
from runtime.testing.loopback._wire import (
    SPOT_TRIGGER_PARAMS,
    Market,
    order_status,
    order_type,
    spot_new_order,
    spot_order,
    spot_trade,
    time_in_force,
)

__all__ = ["SpotAccount"]


class SpotAccount(Account):
    """The spot account: ``/api/v3`` trading and the WebSocket API user-data stream.

    Stop and take-profit orders (``STOP_LOSS``, ``STOP_LOSS_LIMIT``, ``TAKE_PROFIT``,
    ``TAKE_PROFIT_LIMIT``) wait with ``isWorking`` false until a bar reaches ``stopPrice``
    (the simulated exchange's trigger model). As on Binance, a waiting one locks its balance
    (base for a sell, quote for a buy) from placement, so two separate sells cannot both
    lock one holding; an OCO order list (``POST /api/v3/orderList/oco``, stop and
    take-profit legs) locks it once, and when one leg triggers the other expires.
    ``LIMIT_MAKER`` legs are not offered here.
    """

    futures = False

    def __init__(self, clock: BarClock, data: MarketData, balances: Mapping[str, float]) -> None:
        super().__init__("binance", clock, data, balances, None)
        self._sent: dict[str, tuple[str, str]] = {}  # asset -> (free, locked) last reported
        for asset, b in self.sim.ledger.balances.items():
            self._sent[asset] = (fmt_amount(b.free), fmt_amount(b.committed))
        # OCO order lists: list id -> (list client id, member client ids); member -> list id.
        self._lists: dict[int, tuple[str, list[str]]] = {}
        self._list_of: dict[str, int] = {}
        self._list_ids = itertools.count(1)

    # Balances as Binance shows them: waiting stop orders lock theirs (an OCO list once).
    def _locked(self, asset: str) -> float:
        held: dict[object, float] = {}
        waiting = (
            (ai, o)
            for ai in self.sim.ledger.assets.values()
            for o in ai.open_orders.values()
            if o.trigger_price is not None and not self.sim.is_working(o)
        )
        for ai, order in waiting:
            currency = ai.base if order.side == "sell" else ai.quote
            if currency != asset:
                continue
            price = order.price if order.price is not None else order.trigger_price
            assert price is not None
            need = commitment(ai, order.side, order.remaining, price)
            key: object = self._list_of.get(order.client_id, order.client_id)
            held[key] = max(held.get(key, 0.0), need)
        return sum(held.values())

    def _free_locked(self, asset: str) -> tuple[float, float]:
        b = self.sim.ledger.balance(asset)
        locked = self._locked(asset)
        return b.free - locked, b.committed + locked

    def _check_free(self, m: Market, side: str, qty: float, price: float | None) -> None:
        """Refuse an order the balance left after the locks cannot cover."""
        ai = self.sim.ledger.assets[m.symbol]
        basis = price if price is not None else self.clock.last_price(m.symbol)
        asset = ai.base if side == "sell" else ai.quote
        if commitment(ai, side, qty, basis) > self._free_locked(asset)[0] + 1e-12:
            raise BinanceError(-2010, "Account has insufficient balance for requested action.")

    # REST bodies.
    def account(self, params: Mapping[str, str]) -> dict[str, Any]:
        omit_zero = params.get("omitZeroBalances") == "true"
        balances = []
        for asset, b in sorted(self.sim.ledger.balances.items()):
            if omit_zero and b.total == 0:
                continue
            free, locked = self._free_locked(asset)
            balances.append(
                {"asset": asset, "free": fmt_amount(free), "locked": fmt_amount(locked)}
            )
        maker, taker = int(float(SPOT_MAKER_FEE) * 10_000), int(float(SPOT_TAKER_FEE) * 10_000)
        return {
            "makerCommission": maker,
            "takerCommission": taker,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": fmt_amount(float(SPOT_MAKER_FEE)),
                "taker": fmt_amount(float(SPOT_TAKER_FEE)),
                "buyer": fmt_amount(0.0),
                "seller": fmt_amount(0.0),
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.clock.now_ms(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": 354937868,
        }

    def new_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        side = enum_param(params, "side", ("BUY", "SELL")).lower()
        kind = required_param(params, "type")
        if kind not in ("LIMIT", "MARKET", "LIMIT_MAKER", *SPOT_TRIGGER_PARAMS):
            raise BinanceError(-1116, "Invalid orderType.")
        resp_type = params.get("newOrderRespType") or "FULL"  # Binance's default for these types
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise BinanceError(-1136, "Invalid newOrderRespType")
        client_id = self._client_id(params)
        extra: dict[str, Any] = {"clientOrderId": client_id}
        price: float | None = None
        if kind in SPOT_TRIGGER_PARAMS:
            trigger_param, limit = SPOT_TRIGGER_PARAMS[kind]
            extra[trigger_param] = decimal_param(params, "stopPrice")
            qty = decimal_param(params, "quantity")
            engine_kind = "market"
            if limit:
                price = decimal_param(params, "price")
                engine_kind = "limit"
                extra["timeInForce"] = enum_param(params, "timeInForce", ("GTC", "IOC", "FOK"))
        elif kind == "MARKET":
            qty = decimal_param(params, "quantity", required=False)
            if qty is None:
                quote = decimal_param(params, "quoteOrderQty", required=False)
                if quote is None:
                    raise BinanceError(
                        -1102,
                        "Param 'quantity' or 'quoteOrderQty' must be sent, but both were "
                        "empty/null!",
                    )
                step = float(m.step)
                qty = int(quote / self.clock.last_price(m.symbol) / step) * step
            engine_kind = "market"
        else:
            qty = decimal_param(params, "quantity")
            price = decimal_param(params, "price")
            engine_kind = "limit"
            if kind == "LIMIT_MAKER":
                extra["postOnly"] = True
            else:
                extra["timeInForce"] = enum_param(params, "timeInForce", ("GTC", "IOC", "FOK"))
        assert qty is not None
        if kind in SPOT_TRIGGER_PARAMS:
            self._check_free(m, side, qty, price or extra.get(SPOT_TRIGGER_PARAMS[kind][0]))
        elif kind != "MARKET" or side == "sell":
            self._check_free(m, side, qty, price)
        order = self._submit(m, engine_kind, side, qty, price, extra)
        return spot_new_order(
            m, order, self.updated_ms(order), resp_type, working=self.sim.is_working(order)
        )

    def order_list_oco(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/v3/orderList/oco`` with stop and take-profit legs: one order above the
        price and one below, one lock, one cancels (expires) the other."""
        m = self.market(params)
        side = enum_param(params, "side", ("BUY", "SELL")).lower()
        qty = decimal_param(params, "quantity")
        assert qty is not None
        triggers = tuple(SPOT_TRIGGER_PARAMS)
        above = enum_param(params, "aboveType", triggers)
        below = enum_param(params, "belowType", triggers)
        stops = ("STOP_LOSS", "STOP_LOSS_LIMIT")
        # A sell takes profit above and stops below; a buy the reverse.
        if (above in stops) == (side == "sell") or (below in stops) != (side == "sell"):
            raise BinanceError(-1106, "Parameter 'aboveType' sent when not required.")
        list_client_id = params.get("listClientOrderId") or random_client_id()
        legs = []
        for where, kind in (("above", above), ("below", below)):
            trigger_param, limit = SPOT_TRIGGER_PARAMS[kind]
            extra: dict[str, Any] = {
                "clientOrderId": self._client_id(
                    {"newClientOrderId": params.get(f"{where}ClientOrderId", "")}
                ),
                trigger_param: decimal_param(params, f"{where}StopPrice"),
            }
            price = decimal_param(params, f"{where}Price") if limit else None
            if limit:
                extra["timeInForce"] = enum_param(
                    params, f"{where}TimeInForce", ("GTC", "IOC", "FOK")
                )
            legs.append(("limit" if limit else "market", price, extra))
        # One lock for the list: the larger of its legs' needs (a buy's quote at its price).
        prices = [
            float(price or extra.get("stopLossPrice") or extra.get("takeProfitPrice") or 0.0)
            for _, price, extra in legs
        ]
        self._check_free(m, side, qty, max(prices))
        list_id = next(self._list_ids)
        members = [extra["clientOrderId"] for _, _, extra in legs]
        for client_id in members:
            self._list_of[client_id] = list_id
        self._lists[list_id] = (list_client_id, members)
        placed: list[Order] = []
        try:
            for engine_kind, price, extra in legs:
                placed.append(self._submit(m, engine_kind, side, qty, price, extra))
        except BinanceError:
            for order in placed:  # all or nothing
                self._cancel(order, None)
            for client_id in members:
                self._list_of.pop(client_id, None)
            self._lists.pop(list_id)
            raise
        now = self.clock.now_ms()
        self._list_status(list_id, m, "EXEC_STARTED", "EXECUTING", now)
        return {
            "orderListId": list_id,
            "contingencyType": "OCO",
            "listStatusType": "EXEC_STARTED",
            "listOrderStatus": "EXECUTING",
            "listClientOrderId": list_client_id,
            "transactionTime": now,
            "symbol": m.id,
            "orders": [
                {"symbol": m.id, "orderId": int(o.id or 0), "clientOrderId": o.client_id}
                for o in placed
            ],
            "orderReports": [
                spot_new_order(
                    m,
                    o,
                    self.updated_ms(o),
                    "RESULT",
                    working=self.sim.is_working(o),
                    list_id=list_id,
                )
                for o in placed
            ],
        }

    def _list_status(
        self, list_id: int, m: Market, status: str, order_status: str, now: int
    ) -> None:
        list_client_id, members = self._lists[list_id]
        orders = [self.sim.ledger.orders[c] for c in members if c in self.sim.ledger.orders]
        self.emit(
            {
                "e": "listStatus",
                "E": now,
                "s": m.id,
                "g": list_id,
                "c": "OCO",
                "l": status,
                "L": order_status,
                "r": "NONE",
                "C": list_client_id,
                "T": now,
                "O": [{"s": m.id, "i": int(o.id or 0), "c": o.client_id} for o in orders],
            }
        )

    def _on_engine(self, kind: str, payload: dict[str, Any]) -> None:
        super()._on_engine(kind, payload)
        if kind != "order":
            return
        order = self.sim.ledger.orders.get(payload.get("clientOrderId") or "")
        list_id = self._list_of.get(order.client_id) if order is not None else None
        if order is None or list_id is None:
            return
        if order.status == OPEN and not self.sim.is_working(order):
            return  # still waiting: nothing happened to the list
        _, members = self._lists[list_id]
        others = [
            self.sim.ledger.orders[c]
            for c in members
            if c != order.client_id and c in self.sim.ledger.orders
        ]
        open_others = [o for o in others if o.status == OPEN]
        if not open_others:
            return
        m = self.by_symbol[order.symbol]
        for other in open_others:  # one triggered, filled or was cancelled: the other goes
            self.sim.end_order(other, EXPIRED, "the other order of its OCO list ended it")
        self._list_status(list_id, m, "ALL_DONE", "ALL_DONE", self.clock.now_ms())

    def get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        order = self.order(m, params)
        return self._body(m, order)

    def cancel_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        order = self.order(m, params, cancel=True)
        self._cancel(order, params.get("newClientOrderId"))
        return spot_new_order(
            m,
            order,
            self.updated_ms(order),
            "RESULT",
            self._canceled_by[order.client_id],
            self.sim.is_working(order),
            self._list_of.get(order.client_id, -1),
        )

    def open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params) if params.get("symbol") else None
        return [
            self._body(self.data.markets[self._id(o)], o) for o in self.orders_of(m, open_only=True)
        ]

    def cancel_open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params)
        orders = self.orders_of(m, open_only=True)
        if not orders:
            raise BinanceError(-2011, "Unknown order sent.")
        out = []
        for order in orders:
            self._cancel(order, None)
            out.append(
                spot_new_order(
                    m, order, self.updated_ms(order), "RESULT", self._canceled_by[order.client_id]
                )
            )
        return out

    def all_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params)
        return [self._body(m, o) for o in self.order_history(m, params)]

    def _body(self, m: Market, order: Order) -> dict[str, Any]:
        return spot_order(
            m,
            order,
            self.updated_ms(order),
            self.sim.is_working(order),
            self._list_of.get(order.client_id, -1),
        )

    def my_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params)
        picked = self.trade_history(self.sim.ledger.assets[m.symbol].trades, params)
        return [spot_trade(m, t) for t in picked]

    def _id(self, order: Order) -> str:
        return self.by_symbol[order.symbol].id

    # Events.
    def _order_event(self, order: Order, fill: Trade | None) -> None:
        m = self.by_symbol[order.symbol]
        now = self.clock.now_ms()
        status = order_status(order)
        if fill is not None:
            x = "TRADE"
        elif order.status == OPEN:
            x = "NEW"
        else:
            x = status
        canceled_by = self._canceled_by.get(order.client_id) if x == "CANCELED" else None
        cost = sum(t.value for t in order.fills)
        event = {
            "e": "executionReport",
            "E": now,
            "s": m.id,
            "c": canceled_by or order.client_id,
            "S": order.side.upper(),
            "o": order_type(order, futures=False),
            "f": time_in_force(order, futures=False),
            "q": m.qty(order.amount),
            "p": m.price(order.price),
            "P": m.price(order.trigger_price or 0.0),
            "F": m.qty(0.0),
            "g": self._list_of.get(order.client_id, -1),
            "C": order.client_id if canceled_by else "",
            "x": x,
            "X": status,
            "r": "NONE",
            "i": int(order.id or 0),
            "l": m.qty(fill.amount if fill else 0.0),
            "z": m.qty(order.filled),
            "L": m.fill_price(fill.price if fill else 0.0),
            "n": m.quote_qty(fill.fee) if fill else "0",
            "N": fill.fee_currency if fill else None,
            "T": fill.timestamp if fill else (now if x != "NEW" else order.timestamp),
            "t": int(fill.id) if fill else -1,
            "I": int(order.id or 0) * 2 + 1,
            "w": order.status == OPEN and self.sim.is_working(order),
            "m": bool(fill and not fill.taker),
            "M": False,
            "O": order.timestamp,
            "Z": m.quote_qty(cost),
            "Y": m.quote_qty(fill.value if fill else 0.0),
            "Q": m.quote_qty(0.0),
            "W": order.timestamp,
            "V": "EXPIRE_MAKER",
        }
        self.emit(event)
        self._balances_event(now)

    def _balances_event(self, now: int) -> None:
        changed = []
        for asset in sorted(self.sim.ledger.balances):
            free, locked = self._free_locked(asset)
            state = (fmt_amount(free), fmt_amount(locked))
            if self._sent.get(asset) != state:
                self._sent[asset] = state
                changed.append({"a": asset, "f": state[0], "l": state[1]})
        if changed:
            self.emit({"e": "outboundAccountPosition", "E": now, "u": now, "B": changed})

    def _deposited(self, asset: str, amount: float) -> None:
        now = self.clock.now_ms()
        self.emit({"e": "balanceUpdate", "E": now, "a": asset, "d": fmt_amount(amount), "T": now})
        self._balances_event(now)
