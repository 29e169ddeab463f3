"""The spot account of the loopback exchange: ``/api/v3`` trading and spot user data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.exchanges._binance_info import SPOT_MAKER_FEE, SPOT_TAKER_FEE
from runtime.model._orders import OPEN, Order, Trade
from runtime.testing.loopback._accounts import (
    Account,
    decimal_param,
    enum_param,
    fmt_amount,
    required_param,
)
from runtime.testing.loopback._auth import BinanceError
from runtime.testing.loopback._feed import BarClock
from runtime.testing.loopback._market import MarketData
from runtime.testing.loopback._wire import (
    SPOT_TRIGGER_PARAMS,
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
    (the simulated exchange's trigger model). One difference from Binance: they lock no
    balance while waiting (Binance locks it at placement), so the two separate legs of a
    vigil bracket can both rest here; on Binance spot the second would be refused for
    insufficient balance unless the pair is sent as an OCO order list.
    """

    futures = False

    def __init__(self, clock: BarClock, data: MarketData, balances: Mapping[str, float]) -> None:
        super().__init__("binance", clock, data, balances, None)
        self._sent: dict[str, tuple[str, str]] = {}  # asset -> (free, locked) last reported
        for asset, b in self.sim.ledger.balances.items():
            self._sent[asset] = (fmt_amount(b.free), fmt_amount(b.committed))

    # REST bodies.
    def account(self, params: Mapping[str, str]) -> dict[str, Any]:
        omit_zero = params.get("omitZeroBalances") == "true"
        balances = []
        for asset, b in sorted(self.sim.ledger.balances.items()):
            if omit_zero and b.total == 0:
                continue
            balances.append(
                {"asset": asset, "free": fmt_amount(b.free), "locked": fmt_amount(b.committed)}
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
        order = self._submit(m, engine_kind, side, qty, price, extra)
        return spot_new_order(
            m, order, self.updated_ms(order), resp_type, working=self.sim.is_working(order)
        )

    def get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        order = self.order(m, params)
        return spot_order(m, order, self.updated_ms(order), self.sim.is_working(order))

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
        )

    def open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params) if params.get("symbol") else None
        return [
            spot_order(
                self.data.markets[self._id(o)], o, self.updated_ms(o), self.sim.is_working(o)
            )
            for o in self.orders_of(m, open_only=True)
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
        return [
            spot_order(m, o, self.updated_ms(o), self.sim.is_working(o))
            for o in self.order_history(m, params)
        ]

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
            "g": -1,
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
        for asset, b in sorted(self.sim.ledger.balances.items()):
            state = (fmt_amount(b.free), fmt_amount(b.committed))
            if self._sent.get(asset) != state:
                self._sent[asset] = state
                changed.append({"a": asset, "f": state[0], "l": state[1]})
        if changed:
            self.emit({"e": "outboundAccountPosition", "E": now, "u": now, "B": changed})

    def _deposited(self, asset: str, amount: float) -> None:
        now = self.clock.now_ms()
        self.emit({"e": "balanceUpdate", "E": now, "a": asset, "d": fmt_amount(amount), "T": now})
        self._balances_event(now)
