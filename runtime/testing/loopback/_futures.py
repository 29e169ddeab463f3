"""The USDⓈ-M account of the loopback exchange: ``/fapi`` trading, positions, leverage and
listenKey user data. Isolated margin, one-way positions (the engine's model)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from runtime.model._assets import LONG, AssetInstance, Position
from runtime.model._orders import CLOSED, OPEN, Order, Trade
from runtime.testing.loopback._accounts import (
    Account,
    decimal_param,
    enum_param,
    fmt_amount,
    int_param,
    required_param,
    run_engine,
)
from runtime.testing.loopback._auth import BinanceError, mandatory
from runtime.testing.loopback._feed import BarClock
from runtime.testing.loopback._market import MarketData
from runtime.testing.loopback._wire import (
    FUTURES_TRIGGER_PARAMS,
    Market,
    algo_order,
    futures_new_order,
    futures_order,
    futures_trade,
    order_status,
    order_type,
    time_in_force,
)

__all__ = ["FuturesAccount"]

_DEFAULT_LEVERAGE_BRACKETS: Final = (
    # (initialLeverage, notionalCap, maintMarginRatio); the first tier's 0.004 is the maintenance
    # rate the simulated engine uses for liquidation prices.
    (125, 50_000, 0.004),
    (100, 600_000, 0.005),
    (75, 3_000_000, 0.0065),
    (50, 12_000_000, 0.01),
    (25, 70_000_000, 0.02),
    (20, 100_000_000, 0.025),
    (10, 230_000_000, 0.05),
    (5, 480_000_000, 0.1),
    (4, 600_000_000, 0.125),
    (3, 800_000_000, 0.15),
    (2, 1_200_000_000, 0.25),
    (1, 1_800_000_000, 0.5),
)


class FuturesAccount(Account):
    """The USDⓈ-M account: ``/fapi`` trading, positions, leverage, listenKey user data."""

    futures = True

    def __init__(self, clock: BarClock, data: MarketData, balances: Mapping[str, float]) -> None:
        super().__init__("binanceusdm", clock, data, balances, "isolated")
        self._realized: dict[str, float] = {}  # trade id -> realized PnL of that fill
        # Conditional orders once triggered: client id -> the matching engine's order id, the
        # reverse, and when it triggered.
        self._actual: dict[str, int] = {}
        self._by_actual: dict[str, Order] = {}
        self._triggered_ms: dict[str, int] = {}
        self._accumulated: dict[str, float] = {}  # symbol -> accumulated realized PnL
        self._wallet_seen = {a: b.total for a, b in self.sim.ledger.balances.items()}
        self.listen_key: str | None = None

    def _asset(self, m: Market) -> AssetInstance:
        return self.sim.ledger.assets[m.symbol]

    # Positions and balances.
    def _position(self, ai: AssetInstance) -> Position | None:
        return ai.long or ai.short

    def _mark(self, ai: AssetInstance) -> float:
        return self.clock.last_price(ai.symbol)

    def _position_numbers(self, ai: AssetInstance) -> dict[str, float]:
        pos = self._position(ai)
        mark = self._mark(ai)
        order_margin = sum(o.committed for o in ai.open_orders.values())
        if pos is None:
            return {
                "amt": 0.0,
                "entry": 0.0,
                "upnl": 0.0,
                "margin": 0.0,
                "notional": 0.0,
                "liq": 0.0,
                "maint": 0.0,
                "order_margin": order_margin,
                "leverage": ai.leverage,
            }
        sign = 1.0 if pos.side == LONG else -1.0
        size = pos.contracts * ai.contract_size
        upnl = sign * size * (mark - pos.entry_price)
        notional = size * mark
        return {
            "amt": sign * pos.contracts,
            "entry": pos.entry_price,
            "upnl": upnl,
            "margin": pos.margin,
            "notional": sign * notional,
            "liq": pos.liquidation_price,
            "maint": notional * ai.mmr,
            "order_margin": order_margin,
            "leverage": ai.leverage,
        }

    def _max_notional(self, leverage: float) -> int:
        caps = [cap for lev, cap, _ in _DEFAULT_LEVERAGE_BRACKETS if lev >= leverage]
        return caps[-1] if caps else _DEFAULT_LEVERAGE_BRACKETS[0][1]

    def _totals(self) -> dict[str, float]:
        usdt = self.sim.ledger.balance("USDT")
        numbers = [self._position_numbers(ai) for ai in self.sim.ledger.assets.values()]
        return {
            "wallet": usdt.total,
            "upnl": sum(n["upnl"] for n in numbers),
            "position_margin": sum(n["margin"] for n in numbers),
            "order_margin": sum(n["order_margin"] for n in numbers),
            "maint": sum(n["maint"] for n in numbers),
            "available": usdt.free,
        }

    def account(self, params: Mapping[str, str], *, version: int) -> dict[str, Any]:
        t = self._totals()
        now = self.clock.now_ms()
        total_initial = t["position_margin"] + t["order_margin"]
        top = {
            "totalInitialMargin": fmt_amount(total_initial),
            "totalMaintMargin": fmt_amount(t["maint"]),
            "totalWalletBalance": fmt_amount(t["wallet"]),
            "totalUnrealizedProfit": fmt_amount(t["upnl"]),
            "totalMarginBalance": fmt_amount(t["wallet"] + t["upnl"]),
            "totalPositionInitialMargin": fmt_amount(t["position_margin"]),
            "totalOpenOrderInitialMargin": fmt_amount(t["order_margin"]),
            "totalCrossWalletBalance": fmt_amount(t["wallet"] - t["position_margin"]),
            "totalCrossUnPnl": fmt_amount(0.0),
            "availableBalance": fmt_amount(t["available"]),
            "maxWithdrawAmount": fmt_amount(t["available"]),
        }
        assets = []
        for asset, b in sorted(self.sim.ledger.balances.items()):
            usdt = asset == "USDT"
            row: dict[str, Any] = {
                "asset": asset,
                "walletBalance": fmt_amount(b.total),
                "unrealizedProfit": fmt_amount(t["upnl"] if usdt else 0.0),
                "marginBalance": fmt_amount(b.total + (t["upnl"] if usdt else 0.0)),
                "maintMargin": fmt_amount(t["maint"] if usdt else 0.0),
                "initialMargin": fmt_amount(total_initial if usdt else 0.0),
                "positionInitialMargin": fmt_amount(t["position_margin"] if usdt else 0.0),
                "openOrderInitialMargin": fmt_amount(t["order_margin"] if usdt else 0.0),
                "crossWalletBalance": fmt_amount(b.total - (t["position_margin"] if usdt else 0.0)),
                "crossUnPnl": fmt_amount(0.0),
                "availableBalance": fmt_amount(b.free),
                "maxWithdrawAmount": fmt_amount(b.free),
            }
            if version == 2:
                row["marginAvailable"] = True
            row["updateTime"] = now
            assets.append(row)
        positions = []
        for ai in self.sim.ledger.assets.values():
            n = self._position_numbers(ai)
            if version == 3 and n["amt"] == 0 and not n["order_margin"]:
                continue  # v3 lists only symbols with a position or open orders
            m = self.by_symbol[ai.symbol]
            pos_row: dict[str, Any] = {"symbol": m.id}
            if version == 2:
                pos_row.update(
                    {
                        "initialMargin": fmt_amount(n["margin"] + n["order_margin"]),
                        "maintMargin": fmt_amount(n["maint"]),
                        "unrealizedProfit": fmt_amount(n["upnl"]),
                        "positionInitialMargin": fmt_amount(n["margin"]),
                        "openOrderInitialMargin": fmt_amount(n["order_margin"]),
                        "leverage": str(int(n["leverage"])),
                        "isolated": True,
                        "entryPrice": m.fill_price(n["entry"]),
                        "maxNotional": str(self._max_notional(n["leverage"])),
                        "bidNotional": "0",
                        "askNotional": "0",
                        "positionSide": "BOTH",
                        "positionAmt": m.qty(n["amt"]),
                        "updateTime": now,
                    }
                )
            else:
                pos_row.update(
                    {
                        "positionSide": "BOTH",
                        "positionAmt": m.qty(n["amt"]),
                        "unrealizedProfit": fmt_amount(n["upnl"]),
                        "isolatedMargin": fmt_amount(n["margin"] + n["upnl"]),
                        "notional": fmt_amount(n["notional"]),
                        "isolatedWallet": fmt_amount(n["margin"]),
                        "initialMargin": fmt_amount(n["margin"] + n["order_margin"]),
                        "maintMargin": fmt_amount(n["maint"]),
                        "updateTime": now,
                    }
                )
            positions.append(pos_row)
        body: dict[str, Any] = {}
        if version == 2:
            body.update(
                {
                    "feeTier": 0,
                    "feeBurn": False,
                    "canTrade": True,
                    "canDeposit": True,
                    "canWithdraw": True,
                    "updateTime": 0,
                    "multiAssetsMargin": False,
                    "tradeGroupId": -1,
                }
            )
        body.update(top)
        body["assets"] = assets
        body["positions"] = positions
        return body

    def balance(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        now = self.clock.now_ms()
        return [
            {
                "accountAlias": "SgsR",
                "asset": asset,
                "balance": fmt_amount(b.total),
                "crossWalletBalance": fmt_amount(b.total),
                "crossUnPnl": fmt_amount(0.0),
                "availableBalance": fmt_amount(b.free),
                "maxWithdrawAmount": fmt_amount(b.free),
                "marginAvailable": True,
                "updateTime": now,
            }
            for asset, b in sorted(self.sim.ledger.balances.items())
        ]

    def position_risk(self, params: Mapping[str, str], *, version: int) -> list[dict[str, Any]]:
        wanted = self.market(params) if params.get("symbol") else None
        now = self.clock.now_ms()
        out = []
        for ai in self.sim.ledger.assets.values():
            m = self.by_symbol[ai.symbol]
            if wanted is not None and m.id != wanted.id:
                continue
            n = self._position_numbers(ai)
            if version == 3 and n["amt"] == 0 and not n["order_margin"] and wanted is None:
                continue
            mark = self._mark(ai)
            common: dict[str, Any] = {
                "symbol": m.id,
                "positionSide": "BOTH",
                "positionAmt": m.qty(n["amt"]),
                "entryPrice": m.fill_price(n["entry"]),
                "breakEvenPrice": m.fill_price(n["entry"]),
                "markPrice": m.fill_price(mark),
                "unRealizedProfit": fmt_amount(n["upnl"]),
                "liquidationPrice": m.fill_price(n["liq"]),
                "isolatedMargin": fmt_amount(n["margin"] + n["upnl"]),
                "notional": fmt_amount(n["notional"]),
                "isolatedWallet": fmt_amount(n["margin"]),
                "updateTime": now,
            }
            if version == 2:
                common.update(
                    {
                        "marginType": "isolated",
                        "isAutoAddMargin": "false",
                        "leverage": str(int(n["leverage"])),
                        "maxNotionalValue": str(self._max_notional(n["leverage"])),
                    }
                )
            else:
                common.update(
                    {
                        "marginAsset": "USDT",
                        "initialMargin": fmt_amount(n["margin"] + n["order_margin"]),
                        "maintMargin": fmt_amount(n["maint"]),
                        "positionInitialMargin": fmt_amount(n["margin"]),
                        "openOrderInitialMargin": fmt_amount(n["order_margin"]),
                        "adl": 0,
                        "bidNotional": "0",
                        "askNotional": "0",
                    }
                )
            out.append(common)
        return out

    def leverage_brackets(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        wanted = self.market(params) if params.get("symbol") else None
        out = []
        for m in self.data.markets.values():
            if wanted is not None and m.id != wanted.id:
                continue
            brackets = []
            floor = 0
            cum = 0.0
            previous_rate = 0.0
            for k, (lev, cap, rate) in enumerate(_DEFAULT_LEVERAGE_BRACKETS, start=1):
                cum += floor * (rate - previous_rate)
                brackets.append(
                    {
                        "bracket": k,
                        "initialLeverage": lev,
                        "notionalCap": cap,
                        "notionalFloor": floor,
                        "maintMarginRatio": rate,
                        "cum": round(cum, 8),
                    }
                )
                floor, previous_rate = cap, rate
            out.append({"symbol": m.id, "brackets": brackets})
        return out

    def set_leverage(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        leverage = int_param(params, "leverage")
        if leverage is None:
            raise mandatory("leverage")
        if not 1 <= leverage <= _DEFAULT_LEVERAGE_BRACKETS[0][0]:
            raise BinanceError(-4028, f"Leverage {leverage} is not valid")
        run_engine(self.sim.set_leverage(float(leverage), m.symbol), futures=True)
        now = self.clock.now_ms()
        self.emit(
            {"e": "ACCOUNT_CONFIG_UPDATE", "E": now, "T": now, "ac": {"s": m.id, "l": leverage}}
        )
        return {
            "leverage": leverage,
            "maxNotionalValue": str(self._max_notional(leverage)),
            "symbol": m.id,
        }

    def set_margin_type(self, params: Mapping[str, str]) -> dict[str, Any]:
        self.market(params)
        margin_type = enum_param(params, "marginType", ("ISOLATED", "CROSSED"))
        if margin_type == "ISOLATED":
            # Every symbol of the loopback account is isolated already, as Binance reports it.
            raise BinanceError(-4046, "No need to change margin type.")
        raise BinanceError(
            -1130,
            "Data sent for parameter 'marginType' is not valid. (the loopback exchange keeps "
            "isolated margin only; send ISOLATED)",
        )

    # Orders.
    def new_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        side = enum_param(params, "side", ("BUY", "SELL")).lower()
        kind = required_param(params, "type")
        if kind not in ("LIMIT", "MARKET"):
            raise BinanceError(-1116, "Invalid orderType.")
        position_side = params.get("positionSide", "BOTH")
        if position_side != "BOTH":
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        client_id = self._client_id(params)
        extra: dict[str, Any] = {"clientOrderId": client_id}
        reduce_only = params.get("reduceOnly")
        if reduce_only not in (None, "", "true", "false"):
            raise BinanceError(-4062, "Invalid or improper reduceOnly value.")
        extra["reduceOnly"] = reduce_only == "true"
        qty = decimal_param(params, "quantity")
        assert qty is not None
        price: float | None = None
        if kind == "LIMIT":
            price = decimal_param(params, "price")
            tif = enum_param(params, "timeInForce", ("GTC", "IOC", "FOK", "GTX"))
            if tif == "GTX":
                extra["postOnly"] = True
            else:
                extra["timeInForce"] = tif
        order = self._submit(m, "market" if kind == "MARKET" else "limit", side, qty, price, extra)
        return futures_new_order(m, order, self.updated_ms(order))

    def get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        order = self.order(m, params)
        return self._body(m, order)

    def cancel_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        order = self.order(m, params, cancel=True)
        self._cancel(order, None)
        return futures_new_order(
            m, order, self.updated_ms(order), self._actual.get(order.client_id)
        )

    def open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params) if params.get("symbol") else None
        return [self._body(self.by_symbol[o.symbol], o) for o in self.orders_of(m, open_only=True)]

    def open_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        order = self.order(m, params)
        if order.status != OPEN:
            raise BinanceError(-2013, "Order does not exist.")
        return self._body(m, order)

    def cancel_all(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        for order in self.orders_of(m, open_only=True):
            self._cancel(order, None)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def all_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params)
        return [self._body(m, o) for o in self.order_history(m, params)]

    def user_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params)
        picked = self.trade_history(self._asset(m).trades, params)
        return [
            futures_trade(m, t, self._realized.get(t.id, 0.0), self._actual.get(t.order.client_id))
            for t in picked
        ]

    def _body(self, m: Market, order: Order) -> dict[str, Any]:
        return futures_order(m, order, self.updated_ms(order), self._actual.get(order.client_id))

    # The matching engine's endpoints see a conditional order only once it has triggered, by
    # the id it got then; before that it lives in the Algo Service (below).
    def order(self, m: Market, params: Mapping[str, str], *, cancel: bool = False) -> Order:
        order_id = params.get("orderId")
        if order_id and order_id in self._by_actual:
            order = self._by_actual[order_id]
            if order.symbol == m.symbol:
                return order
        order = super().order(m, params, cancel=cancel)
        if order.trigger_price is not None and (
            order.client_id not in self._actual or (order_id and order_id == order.id)
        ):
            if cancel:
                raise BinanceError(-2011, "Unknown order sent.")
            raise BinanceError(-2013, "Order does not exist.")
        return order

    def orders_of(self, m: Market | None, *, open_only: bool) -> list[Order]:
        return [
            o
            for o in super().orders_of(m, open_only=open_only)
            if o.trigger_price is None or o.client_id in self._actual
        ]

    # The Algo Service: conditional orders (STOP_MARKET, STOP, TAKE_PROFIT_MARKET, TAKE_PROFIT).
    def new_algo_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        enum_param(params, "algoType", ("CONDITIONAL",))
        side = enum_param(params, "side", ("BUY", "SELL")).lower()
        kind = required_param(params, "type")
        if kind not in FUTURES_TRIGGER_PARAMS:
            raise BinanceError(-1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH") != "BOTH":
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        client_id = self._client_id({"newClientOrderId": params.get("clientAlgoId", "")})
        extra: dict[str, Any] = {"clientOrderId": client_id}
        reduce_only = params.get("reduceOnly")
        if reduce_only not in (None, "", "true", "false"):
            raise BinanceError(-4062, "Invalid or improper reduceOnly value.")
        extra["reduceOnly"] = reduce_only == "true"
        trigger_param, limit = FUTURES_TRIGGER_PARAMS[kind]
        extra[trigger_param] = decimal_param(params, "triggerPrice")
        qty = decimal_param(params, "quantity")
        assert qty is not None
        price: float | None = None
        if limit:
            price = decimal_param(params, "price")
            tif = params.get("timeInForce") or "GTC"
            if tif not in ("GTC", "IOC", "FOK", "GTX"):
                enum_param(params, "timeInForce", ("GTC", "IOC", "FOK", "GTX"))
            extra["timeInForce"] = "GTC" if tif == "GTX" else tif
        order = self._submit(m, "limit" if limit else "market", side, qty, price, extra)
        return algo_order(m, order, self.updated_ms(order), self.algo_status(order), listing=False)

    def _algo(self, m: Market, params: Mapping[str, str], *, cancel: bool = False) -> Order:
        algo_id = params.get("algoId")
        client_id = params.get("clientAlgoId")
        if not algo_id and not client_id:
            raise BinanceError(
                -1102, "Param 'algoId' or 'clientAlgoId' must be sent, but both were empty/null!"
            )
        ledger = self.sim.ledger
        order = ledger.orders_by_id.get(algo_id) if algo_id else ledger.orders.get(client_id or "")
        if order is None or order.symbol != m.symbol or order.trigger_price is None:
            if cancel:
                raise BinanceError(-2011, "Unknown order sent.")
            raise BinanceError(-2013, "Order does not exist.")
        return order

    def _algo_body(self, m: Market, order: Order) -> dict[str, Any]:
        return algo_order(
            m,
            order,
            self.updated_ms(order),
            self.algo_status(order),
            actual_id=self._actual.get(order.client_id),
            trigger_ms=self._triggered_ms.get(order.client_id, 0),
        )

    def get_algo_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        return self._algo_body(m, self._algo(m, params))

    def cancel_algo_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        order = self._algo(m, params, cancel=True)
        if self.sim.is_working(order):  # triggered: the Algo Service has let it go
            raise BinanceError(-2011, "Unknown order sent.")
        self._cancel(order, None)
        return {
            "algoId": int(order.id or 0),
            "clientAlgoId": order.client_id,
            "code": "200",
            "msg": "success",
        }

    def cancel_all_algo(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        for order in super().orders_of(m, open_only=True):
            if order.trigger_price is not None and not self.sim.is_working(order):
                self._cancel(order, None)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def open_algo_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params) if params.get("symbol") else None
        return [
            self._algo_body(self.by_symbol[o.symbol], o)
            for o in super().orders_of(m, open_only=True)
            if o.trigger_price is not None and not self.sim.is_working(o)
        ]

    def all_algo_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params)
        conditional = [o for o in super().orders_of(m, open_only=False) if o.trigger_price]
        return [self._algo_body(m, o) for o in conditional]

    # Events.
    def _on_engine(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "trade":
            # The fill is applied already: the wallet's move net of the fee is its realized PnL.
            wallet = self.sim.ledger.balance("USDT").total
            fee = float(payload["fee"]["cost"])
            realized = wallet - self._wallet_seen.get("USDT", 0.0) + fee
            self._wallet_seen["USDT"] = wallet
            self._realized[str(payload["id"])] = realized
            symbol = payload["symbol"]
            self._accumulated[symbol] = self._accumulated.get(symbol, 0.0) + realized
        super()._on_engine(kind, payload)

    def _order_event(self, order: Order, fill: Trade | None) -> None:
        if order.trigger_price is None:
            self._trade_update(order, fill)
            return
        # A conditional order: ALGO_UPDATE while it waits and when it ends; once triggered, the
        # matching engine's order it became reports as any order does (ORDER_TRADE_UPDATE).
        now = self.clock.now_ms()
        if not self.sim.is_working(order):
            self._algo_update(order, now)
            return
        if (
            order.status not in (OPEN, CLOSED)
            and not order.fills
            and order.client_id not in self._actual
        ):
            self._algo_update(order, now)  # refused when it triggered (funds, reduce-only)
            return
        if order.client_id not in self._actual:
            actual = int(self.sim.new_id())
            self._actual[order.client_id] = actual
            self._by_actual[str(actual)] = order
            self._triggered_ms[order.client_id] = now
            self._algo_update(order, now)
            if fill is not None or order.status != OPEN:
                self._trade_update(order, None, force_new=True)
        self._trade_update(order, fill)
        if order.status != OPEN:
            self._algo_update(order, now)

    def algo_status(self, order: Order) -> str:
        if not self.sim.is_working(order):
            return "NEW" if order.status == OPEN else "CANCELED"
        if order.client_id not in self._actual:
            return "REJECTED"
        return "TRIGGERED" if order.status == OPEN else "FINISHED"

    def _algo_update(self, order: Order, now: int) -> None:
        m = self.by_symbol[order.symbol]
        actual = self._actual.get(order.client_id)
        filled = order.filled
        status = self.algo_status(order)
        o: dict[str, Any] = {
            "caid": order.client_id,
            "aid": int(order.id or 0),
            "at": "CONDITIONAL",
            "o": order_type(order, futures=True),
            "s": m.id,
            "S": order.side.upper(),
            "ps": "BOTH",
            "f": time_in_force(order, futures=True),
            "q": m.qty(order.amount),
            "X": status,
            "ai": "" if actual is None else str(actual),
            "ap": m.fill_price(sum(t.value for t in order.fills) / filled if filled else 0.0),
            "aq": m.qty(filled),
            "act": "0" if actual is None else ("MARKET" if order.price is None else "LIMIT"),
            "tp": m.price(order.trigger_price),
            "p": m.price(order.price),
            "V": "EXPIRE_MAKER",
            "wt": "CONTRACT_PRICE",
            "pm": "NONE",
            "cp": False,
            "pP": False,
            "R": order.reduce_only,
            "tt": self._triggered_ms.get(order.client_id, 0),
            "gtd": 0,
        }
        if status == "REJECTED":
            o["rm"] = "Reduce Only reject" if order.reduce_only else "Margin is insufficient."
        self.emit({"e": "ALGO_UPDATE", "T": now, "E": now, "o": o})

    def _trade_update(self, order: Order, fill: Trade | None, *, force_new: bool = False) -> None:
        m = self.by_symbol[order.symbol]
        now = self.clock.now_ms()
        status = "NEW" if force_new else order_status(order)
        x = (
            "TRADE"
            if fill is not None
            else ("NEW" if force_new or order.status == OPEN else status)
        )
        actual = self._actual.get(order.client_id)
        kind = order_type(order, futures=True)
        if actual is not None:
            kind = "MARKET" if order.price is None else "LIMIT"
        filled = order.filled
        avg = sum(t.value for t in order.fills) / filled if filled else 0.0
        o: dict[str, Any] = {
            "s": m.id,
            "c": order.client_id,
            "S": order.side.upper(),
            "o": kind,
            "f": time_in_force(order, futures=True),
            "q": m.qty(order.amount),
            "p": m.price(order.price),
            "ap": m.fill_price(0.0 if force_new else avg),
            "sp": m.price(order.trigger_price or 0.0),
            "x": x,
            "X": status,
            "i": actual if actual is not None else int(order.id or 0),
            "l": m.qty(fill.amount if fill else 0.0),
            "z": m.qty(0.0 if force_new else filled),
            "L": m.fill_price(fill.price if fill else 0.0),
        }
        if fill is not None:
            o["N"] = fill.fee_currency
            o["n"] = m.quote_qty(fill.fee)
        o.update(
            {
                "T": fill.timestamp if fill else now,
                "t": int(fill.id) if fill else 0,
                "b": "0",
                "a": "0",
                "m": bool(fill and not fill.taker),
                "R": order.reduce_only,
                "wt": "CONTRACT_PRICE",
                "ot": order_type(order, futures=True),
                "ps": "BOTH",
                "cp": False,
                "rp": m.quote_qty(self._realized.get(fill.id, 0.0) if fill else 0.0),
                "pP": False,
                "si": 0,
                "ss": 0,
                "V": "EXPIRE_MAKER",
                "pm": "NONE",
                "gtd": 0,
            }
        )
        self.emit({"e": "ORDER_TRADE_UPDATE", "E": now, "T": o["T"], "o": o})
        if fill is not None:
            self._account_update("ORDER", now, [m])

    def _account_update(self, reason: str, now: int, markets: list[Market]) -> None:
        usdt = self.sim.ledger.balance("USDT")
        t = self._totals()
        positions = []
        for m in markets:
            ai = self._asset(m)
            n = self._position_numbers(ai)
            positions.append(
                {
                    "s": m.id,
                    "pa": m.qty(n["amt"]),
                    "ep": m.fill_price(n["entry"]),
                    "bep": m.fill_price(n["entry"]),
                    "cr": fmt_amount(self._accumulated.get(m.symbol, 0.0)),
                    "up": fmt_amount(n["upnl"]),
                    "mt": "isolated",
                    "iw": fmt_amount(n["margin"]),
                    "ps": "BOTH",
                }
            )
        balances = [
            {
                "a": "USDT",
                "wb": fmt_amount(usdt.total),
                "cw": fmt_amount(usdt.total - t["position_margin"]),
                "bc": "0",
            }
        ]
        self.emit(
            {
                "e": "ACCOUNT_UPDATE",
                "E": now,
                "T": now,
                "a": {"m": reason, "B": balances, "P": positions},
            }
        )

    def _deposited(self, asset: str, amount: float) -> None:
        self._wallet_seen[asset] = self.sim.ledger.balance(asset).total
        now = self.clock.now_ms()
        usdt = self.sim.ledger.balance(asset)
        t = self._totals()
        self.emit(
            {
                "e": "ACCOUNT_UPDATE",
                "E": now,
                "T": now,
                "a": {
                    "m": "DEPOSIT",
                    "B": [
                        {
                            "a": asset,
                            "wb": fmt_amount(usdt.total),
                            "cw": fmt_amount(usdt.total - t["position_margin"]),
                            "bc": fmt_amount(amount),
                        }
                    ],
                    "P": [],
                },
            }
        )
