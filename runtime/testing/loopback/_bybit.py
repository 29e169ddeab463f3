"""The loopback's Bybit v5 dialect: one unified trading account (spot and linear USDT
perpetuals) over the simulated exchange's matching engine, and Bybit's v5 REST bodies.

**One account.** A single :class:`~runtime.exchanges.sim.SimExchange` holds the spot markets and
the perpetuals, so USDT pays for spot buys and is the margin of perpetual positions alike: what a
spot order locks, a perpetual order cannot use (Bybit's unified trading account). Positions are
one-way and isolated (the engine's model), ``positionIdx`` 0.

**Wire.** Requests and replies follow Bybit's v5 documentation and what ``ccxt.bybit`` reads:
``{"retCode": 0, "retMsg": "OK", "result": {...}, "retExtInfo": {}, "time": ms}``; decimals are
strings; sides ``Buy``/``Sell``; statuses ``New``, ``PartiallyFilled``, ``Filled``,
``Cancelled``, ``PartiallyFilledCanceled``, ``Rejected``. Errors are :class:`BybitError` with
Bybit's codes (``10001`` parameter error, ``10003``/``10004`` key and signature,
``110001``/``170213`` unknown order, ``110007``/``170131`` insufficient balance ...), which ccxt
maps to its classes by code.

**Fees.** The engine charges every fee in the quote (settle) currency, spot buys included, so
executions carry ``feeCoin`` (which ccxt reads) as the quote coin.

Not thread-safe: the server calls it from its event loop only.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

from runtime._errors import ConfigError, InsufficientFunds, OrderNotFound, OrderRejected
from runtime.engine._engine import BalanceUpdated, apply
from runtime.exchanges._bybit_info import LINEAR_INSTRUMENTS, SPOT_INSTRUMENTS, Instrument
from runtime.exchanges._markets import load_markets
from runtime.exchanges.sim._exchange import SimExchange
from runtime.model._assets import LONG, AssetInstance
from runtime.model._orders import CANCELED, CLOSED, EXPIRED, OPEN, REJECTED, Order, Trade
from runtime.testing.loopback._feed import BarClock
from runtime.testing.loopback._market import MarketData
from runtime.testing.loopback._wire import Market

__all__ = ["BybitAccount", "BybitError", "ok"]

Emit = Callable[[str, list[dict[str, Any]]], None]  # (topic, data rows)

_LINK_ID: Final = re.compile(r"^[A-Za-z0-9_\-.:/]{1,36}$")
_DECIMAL: Final = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")
_CATEGORIES: Final = ("spot", "linear", "inverse", "option")
_LISTED: Final = ("spot", "linear")  # the categories with instruments here
#: v5 kline intervals and their ccxt timeframes. "1s" is the loopback's own addition (Bybit's
#: shortest kline is 1 minute): it lets a test tick a strategy every second, as the Binance
#: dialect's 1-second klines do.
INTERVALS: Final = {
    "1s": "1s",
    "1": "1m",
    "3": "3m",
    "5": "5m",
    "15": "15m",
    "30": "30m",
    "60": "1h",
    "120": "2h",
    "240": "4h",
    "360": "6h",
    "720": "12h",
    "D": "1d",
    "W": "1w",
}
MAX_LEVERAGE: Final = 100.0
_MMR: Final = 0.005  # maintenance margin rate reported for positions


class BybitError(Exception):
    """A v5 error: ``retCode``, ``retMsg`` and the HTTP status it travels with (200 for
    business errors, as Bybit sends them)."""

    def __init__(self, code: int, msg: str, status: int = 200) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self, now_ms: int) -> dict[str, Any]:
        return {
            "retCode": self.code,
            "retMsg": self.msg,
            "result": {},
            "retExtInfo": {},
            "time": now_ms,
        }


def ok(result: Any, now_ms: int) -> dict[str, Any]:
    """The v5 success envelope."""
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now_ms}


def _places(text: str) -> int:
    exponent = Decimal(text).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def wire_market(i: Instrument) -> Market:
    """An instrument as the shared market-data layer needs it (ids, ticks, decimals)."""
    return Market(
        id=i.id,
        symbol=i.symbol,
        base=i.base,
        quote=i.quote,
        futures=i.linear,
        tick=Decimal(i.tick),
        step=Decimal(i.step),
        price_places=_places(i.tick),
        qty_places=_places(i.step),
    )


def param(params: Mapping[str, Any], name: str, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise BybitError(10001, f"params error: {name} is required")
        return None
    return str(value)


def decimal(params: Mapping[str, Any], name: str, required: bool = True) -> float | None:
    raw = param(params, name, required)
    if raw is None:
        return None
    if not _DECIMAL.match(raw):
        raise BybitError(10001, f"params error: {name} invalid")
    return float(raw)


def integer(params: Mapping[str, Any], name: str, default: int | None = None) -> int | None:
    raw = param(params, name, required=False)
    if raw is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,20}", raw):
        raise BybitError(10001, f"params error: {name} invalid")
    return int(raw)


def category(params: Mapping[str, Any]) -> str:
    value = param(params, "category")
    if value not in _CATEGORIES:
        raise BybitError(10001, f"params error: category {value} invalid")
    assert value is not None
    return value


def rejection(exc: OrderRejected | ConfigError, *, spot: bool) -> BybitError:
    """The Bybit error for an engine refusal."""
    text = str(exc)
    if isinstance(exc, InsufficientFunds):
        if spot:
            return BybitError(170131, "Insufficient balance.")
        return BybitError(110007, "ab not enough for new order")
    if text.startswith("Invalid symbol"):
        return BybitError(10001, "params error: symbol invalid")
    if text.startswith("Order would immediately match"):
        # Bybit's EC_PostOnlyWillTakeLiquidity.
        return BybitError(170210 if spot else 110094, "Order would immediately match and take.")
    if text.startswith("Duplicate order"):
        return BybitError(170141 if spot else 110072, "OrderLinkedID is duplicate")
    if text.startswith("ReduceOnly"):
        return BybitError(110017, "Reduce-only rule not satisfied")
    if text.startswith("Leverage"):
        return BybitError(10001, "params error: leverage invalid")
    if text.startswith("Filter failure"):
        return _filter_error(text, spot=spot)
    return BybitError(170130 if spot else 10001, text)


def _filter_error(text: str, *, spot: bool) -> BybitError:
    """An engine filter failure in Bybit's words (spot codes 1701xx, linear 10001/110094)."""
    if "NOTIONAL" in text:
        if spot:
            return BybitError(170140, "Order value exceeded lower limit.")
        return BybitError(110094, "Order does not meet minimum order value.")
    if "PRICE_FILTER" in text:
        if spot:
            return BybitError(170134, "Order price decimal too long.")
        return BybitError(10001, "params error: Price invalid")
    if "outside" in text:
        low = re.search(r"amount ([0-9.e+-]+) outside \[([0-9.e+-]+),", text)
        too_small = low is not None and float(low[1]) < float(low[2])
        if spot:
            if too_small:
                return BybitError(170136, "Order quantity lower than the minimum.")
            return BybitError(170135, "Order quantity too large.")
        side = "minimum" if too_small else "maximum"
        return BybitError(10001, f"The number of contracts exceeds {side} limit allowed")
    if spot:
        return BybitError(170137, "Order volume decimal too long.")
    return BybitError(10001, "params error: Qty invalid")


def run_engine(coro: Any, *, spot: bool) -> Any:
    """Run one of the engine's trivially-async methods (they never suspend) to completion."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    except (OrderRejected, ConfigError) as exc:
        raise rejection(exc, spot=spot) from exc
    coro.close()
    raise RuntimeError("engine coroutine suspended; the loopback expects it to finish at once")


def _status(order: Order) -> str:
    if order.status == OPEN:
        return "PartiallyFilled" if order.filled > 0 else "New"
    if order.status in (CANCELED, EXPIRED):
        return "PartiallyFilledCanceled" if order.filled > 0 else "Cancelled"
    return {CLOSED: "Filled", REJECTED: "Rejected"}[order.status]


def _tif(order: Order) -> str:
    tif = getattr(order.type, "time_in_force", None)
    if tif is None:
        return "IOC"  # Bybit reports market orders as IOC
    return "PostOnly" if tif == "PO" else str(tif)


class BybitAccount:
    """The unified account: orders, executions, positions and the wallet, in v5 bodies."""

    def __init__(self, clock: BarClock, balances: Mapping[str, float]) -> None:
        self.clock = clock
        self.spot_data = MarketData(clock, [wire_market(i) for i in SPOT_INSTRUMENTS.values()])
        self.linear_data = MarketData(clock, [wire_market(i) for i in LINEAR_INSTRUMENTS.values()])
        self.sim = SimExchange(
            load_markets("bybit"),
            clock,
            balances=balances,
            margin="isolated",
            exchange_id="bybit-loopback",
        )
        self.by_symbol: dict[str, Market] = {
            m.symbol: m
            for data in (self.spot_data, self.linear_data)
            for m in data.markets.values()
        }
        self.emit: Emit = lambda topic, rows: None
        self._pending: dict[str, Trade] = {}  # client id -> fill awaiting its order event
        self._realized: dict[str, float] = {}  # trade id -> realized PnL
        self._cum_realized: dict[str, float] = {}  # symbol -> realized PnL since start
        self._wallet_seen = self.sim.ledger.balance("USDT").total
        self._exec_seq = itertools.count(1)
        self._cancel_types: dict[str, str] = {}
        self.sim.add_listener(self._on_engine)

    # Lookups.
    def data(self, cat: str) -> MarketData:
        return self.spot_data if cat == "spot" else self.linear_data

    def _in(self, ai: AssetInstance, cat: str) -> bool:
        return cat in _LISTED and ai.contract == (cat == "linear")

    def market(self, params: Mapping[str, Any], cat: str | None = None) -> Market:
        cat = cat or category(params)
        symbol = param(params, "symbol")
        m = self.data(cat).markets.get(symbol or "") if cat in _LISTED else None
        if m is None:
            raise BybitError(10001, "params error: symbol invalid")
        return m

    def _asset(self, m: Market) -> AssetInstance:
        return self.sim.ledger.assets[m.symbol]

    def _order(self, m: Market, params: Mapping[str, Any], *, spot: bool) -> Order:
        order_id = param(params, "orderId", required=False)
        link_id = param(params, "orderLinkId", required=False)
        if not order_id and not link_id:
            raise BybitError(10001, "params error: orderId or orderLinkId is required")
        ledger = self.sim.ledger
        order = (
            ledger.orders_by_id.get(order_id or "")
            if order_id
            else ledger.orders.get(link_id or "")
        )
        if order is None or order.symbol != m.symbol or (link_id and order.client_id != link_id):
            raise BybitError(170213 if spot else 110001, "Order does not exist.")
        return order

    # Orders (REST).
    def create_order(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cat = category(params)
        spot = cat == "spot"
        m = self.market(params, cat)
        side = param(params, "side")
        if side not in ("Buy", "Sell"):
            raise BybitError(10001, "params error: side invalid")
        kind = param(params, "orderType")
        if kind not in ("Market", "Limit"):
            raise BybitError(10001, "params error: orderType invalid")
        qty = decimal(params, "qty")
        assert qty is not None
        if spot and kind == "Market" and params.get("marketUnit", "baseCoin") != "baseCoin":
            raise BybitError(
                170130,
                "the loopback takes spot market orders in the base coin: marketUnit=baseCoin",
            )
        if spot and kind == "Market" and "marketUnit" not in params and side == "Buy":
            # Bybit reads a spot market buy's qty as quote coin by default; ccxt sends the unit.
            raise BybitError(170130, "send marketUnit=baseCoin with a spot market buy")
        link_id = param(params, "orderLinkId", required=False) or f"{next(self._exec_seq):x}-auto"
        if not _LINK_ID.match(link_id):
            raise BybitError(10001, "params error: orderLinkId invalid")
        if link_id in self.sim.ledger.orders:
            raise rejection(OrderRejected("Duplicate order sent."), spot=spot)
        extra: dict[str, Any] = {"clientOrderId": link_id}
        reduce_only = params.get("reduceOnly")
        if reduce_only in (True, "true"):
            if spot:
                raise BybitError(170130, "reduceOnly is for derivatives")
            extra["reduceOnly"] = True
        position_idx = params.get("positionIdx", 0)
        if str(position_idx) != "0":
            raise BybitError(10001, "position idx not match position mode")
        price: float | None = None
        tif = params.get("timeInForce") or ("IOC" if kind == "Market" else "GTC")
        if kind == "Limit":
            price = decimal(params, "price")
            if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
                raise BybitError(10001, "params error: timeInForce invalid")
            if tif == "PostOnly":
                extra["postOnly"] = True
            else:
                extra["timeInForce"] = tif
        try:
            result = self.sim.submit(m.symbol, kind.lower(), side.lower(), qty, price, extra)
        except (OrderRejected, ConfigError) as exc:
            raise rejection(exc, spot=spot) from exc
        order = self.sim.ledger.orders[result["clientOrderId"]]
        return {"orderId": order.id, "orderLinkId": order.client_id}

    def cancel_order(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cat = category(params)
        m = self.market(params, cat)
        order = self._order(m, params, spot=cat == "spot")
        self._cancel(order, spot=cat == "spot")
        return {"orderId": order.id, "orderLinkId": order.client_id}

    def _cancel(self, order: Order, *, spot: bool) -> None:
        if order.status != OPEN:
            raise BybitError(170213 if spot else 110001, "Order does not exist.")
        self._cancel_types[order.client_id] = "CancelByUser"
        try:
            run_engine(self.sim.cancel_order(order.id, order.symbol), spot=spot)
        except OrderNotFound as exc:
            raise BybitError(170213 if spot else 110001, "Order does not exist.") from exc

    def cancel_all(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cat = category(params)
        m = self.market(params, cat) if params.get("symbol") else None
        done = []
        for order in self._orders(cat, m, open_only=True):
            self._cancel(order, spot=cat == "spot")
            done.append({"orderId": order.id, "orderLinkId": order.client_id})
        return {"list": done, "success": "1"}

    def _orders(self, cat: str, m: Market | None, *, open_only: bool) -> list[Order]:
        return [
            o
            for o in self.sim.ledger.orders.values()
            if self._in(self.sim.ledger.assets[o.symbol], cat)
            and (m is None or o.symbol == m.symbol)
            and (not open_only or o.status == OPEN)
        ]

    def orders(self, params: Mapping[str, Any], *, history: bool) -> dict[str, Any]:
        """``/v5/order/realtime`` (open orders; any status when asked by id) and
        ``/v5/order/history`` (closed ones), newest first, cursor-paged."""
        cat = category(params)
        m = self.market(params, cat) if params.get("symbol") else None
        if cat == "linear" and m is None and not params.get("settleCoin") and not history:
            raise BybitError(10001, "params error: symbol, settleCoin or baseCoin is required")
        order_id = param(params, "orderId", required=False)
        link_id = param(params, "orderLinkId", required=False)
        by_id = bool(order_id or link_id)
        picked = [
            o
            for o in self._orders(cat, m, open_only=False)
            if (not order_id or o.id == order_id) and (not link_id or o.client_id == link_id)
        ]
        if history:
            picked = [o for o in picked if o.status != OPEN]
            wanted = param(params, "orderStatus", required=False)
            if wanted is not None:
                picked = [o for o in picked if _status(o) in wanted.split(",")]
        elif not by_id:
            picked = [o for o in picked if o.status == OPEN]
        start = integer(params, "startTime")
        end = integer(params, "endTime")
        if start is not None:
            picked = [o for o in picked if o.timestamp >= start]
        if end is not None:
            picked = [o for o in picked if o.timestamp <= end]
        picked.sort(key=lambda o: (o.timestamp, int(o.id or 0)), reverse=True)
        rows, cursor = _page(picked, params, default=20, maximum=50)
        return {
            "category": cat,
            "list": [self.order_body(o) for o in rows],
            "nextPageCursor": cursor,
        }

    def order_body(self, order: Order) -> dict[str, Any]:
        """An order as ``/v5/order/realtime`` lists it (and the ``order`` stream sends it)."""
        m = self.by_symbol[order.symbol]
        ai = self.sim.ledger.assets[order.symbol]
        filled = order.filled
        value = sum(t.value for t in order.fills)
        fee = sum(t.fee for t in order.fills)
        updated = self.sim.order_dict(order)["lastUpdateTimestamp"] or order.timestamp
        leaves = order.remaining if order.status == OPEN else 0.0
        body: dict[str, Any] = {
            "orderId": order.id,
            "orderLinkId": order.client_id,
            "blockTradeId": "",
            "symbol": m.id,
            "price": m.price(order.price) if order.price is not None else "0",
            "qty": m.qty(order.amount),
            "side": order.side.title(),
            "isLeverage": "0" if not ai.contract else "",
            "positionIdx": 0,
            "orderStatus": _status(order),
            "createType": "CreateByUser",
            "cancelType": self._cancel_types.get(order.client_id, "UNKNOWN")
            if order.status in (CANCELED, EXPIRED)
            else "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": m.fill_price(value / filled)
            if filled
            else ("" if not ai.contract else "0"),
            "leavesQty": m.qty(leaves),
            "leavesValue": m.quote_qty(leaves * (order.price or 0.0)),
            "cumExecQty": m.qty(filled),
            "cumExecValue": m.quote_qty(value),
            "cumExecFee": m.quote_qty(fee),
            "timeInForce": _tif(order),
            "orderType": "Market" if order.price is None else "Limit",
            "stopOrderType": "",
            "orderIv": "",
            "marketUnit": "baseCoin" if not ai.contract and order.price is None else "",
            "triggerPrice": "0.00" if ai.contract else "0",
            "takeProfit": "0.00" if ai.contract else "0",
            "stopLoss": "0.00" if ai.contract else "0",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "tpLimitPrice": "0",
            "slLimitPrice": "0",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": m.price(self.clock.last_price(order.symbol)),
            "basePrice": "",
            "reduceOnly": bool(order.reduce_only),
            "closeOnTrigger": False,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(order.timestamp),
            "updatedTime": str(int(updated)),
            "cumFeeDetail": {m.quote: m.quote_qty(fee)} if fee else {},
        }
        if ai.contract:
            body["tpslMode"] = "UNKNOWN"
        return body

    # Executions.
    def executions(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cat = category(params)
        m = self.market(params, cat) if params.get("symbol") else None
        order_id = param(params, "orderId", required=False)
        trades = [
            t
            for ai in self.sim.ledger.assets.values()
            if self._in(ai, cat) and (m is None or ai.symbol == m.symbol)
            for t in ai.trades
            if not order_id or t.order.id == order_id
        ]
        start = integer(params, "startTime")
        end = integer(params, "endTime")
        if start is not None:
            trades = [t for t in trades if t.timestamp >= start]
        if end is not None:
            trades = [t for t in trades if t.timestamp <= end]
        trades.sort(key=lambda t: (t.timestamp, int(t.id)), reverse=True)
        rows, cursor = _page(trades, params, default=50, maximum=100)
        return {
            "category": cat,
            "list": [self.execution_body(t) for t in rows],
            "nextPageCursor": cursor,
        }

    def execution_body(self, trade: Trade, *, stream: bool = False) -> dict[str, Any]:
        order = trade.order
        m = self.by_symbol[order.symbol]
        ai = self.sim.ledger.assets[order.symbol]
        fee_rate = ai.maker if not trade.taker else ai.taker
        body: dict[str, Any] = {}
        if stream:
            body["category"] = "linear" if ai.contract else "spot"
        body.update(
            {
                "symbol": m.id,
                "orderId": order.id,
                "orderLinkId": order.client_id,
                "side": order.side.title(),
                "orderPrice": m.price(order.price) if order.price is not None else "0",
                "orderQty": m.qty(order.amount),
                "leavesQty": m.qty(order.remaining if order.status == OPEN else 0.0),
                "createType": "CreateByUser",
                "orderType": "Market" if order.price is None else "Limit",
                "stopOrderType": "",
                "execFee": m.quote_qty(trade.fee),
                "execId": trade.id,
                "execPrice": m.fill_price(trade.price),
                "execQty": m.qty(trade.amount),
                "execType": "Trade",
                "execValue": m.quote_qty(trade.value),
                "execTime": str(trade.timestamp),
                "feeCurrency": trade.fee_currency,
                "feeCoin": trade.fee_currency,
                "isMaker": not trade.taker,
                "feeRate": f"{fee_rate:g}",
                "tradeIv": "",
                "markIv": "",
                "markPrice": m.price(self.clock.last_price(order.symbol)),
                "indexPrice": m.price(self.clock.last_price(order.symbol)) if ai.contract else "",
                "underlyingPrice": "",
                "blockTradeId": "",
                "closedSize": m.qty(0.0) if ai.contract else "",
                "seq": int(trade.id),
                "extraFees": "",
            }
        )
        return body

    # Positions.
    def _position_row(self, ai: AssetInstance, *, stream: bool = False) -> dict[str, Any]:
        m = self.by_symbol[ai.symbol]
        pos = ai.long or ai.short
        mark = self.clock.last_price(ai.symbol)
        now = self.clock.now_ms()
        if pos is None:
            size = entry = upnl = margin = value = liq = 0.0
            side = ""
        else:
            sign = 1.0 if pos.side == LONG else -1.0
            size = pos.contracts
            entry = pos.entry_price
            upnl = sign * size * ai.contract_size * (mark - entry)
            margin = pos.margin
            value = size * ai.contract_size * entry
            liq = pos.liquidation_price
            side = "Buy" if pos.side == LONG else "Sell"
        row: dict[str, Any] = {}
        if stream:
            row["category"] = "linear"
        row.update(
            {
                "positionIdx": 0,
                "riskId": 1,
                "riskLimitValue": "2000000",
                "symbol": m.id,
                "side": side,
                "size": m.qty(size),
                "avgPrice" if not stream else "entryPrice": m.fill_price(entry),
                "positionValue": m.quote_qty(value),
                "tradeMode": 1,
                "autoAddMargin": 0,
                "positionStatus": "Normal",
                "leverage": f"{ai.leverage:g}",
                "markPrice": m.price(mark),
                "liqPrice": m.price(liq) if liq else "",
                "bustPrice": m.price(liq) if liq else "",
                "positionIM": m.quote_qty(margin),
                "positionMM": m.quote_qty(size * mark * _MMR),
                "positionBalance": m.quote_qty(margin),
                "takeProfit": "0.00",
                "stopLoss": "0.00",
                "trailingStop": "0.00",
                "sessionAvgPrice": "",
                "unrealisedPnl": m.quote_qty(upnl),
                "curRealisedPnl": m.quote_qty(self._cum_realized.get(ai.symbol, 0.0)),
                "cumRealisedPnl": m.quote_qty(self._cum_realized.get(ai.symbol, 0.0)),
                "adlRankIndicator": 2 if pos is not None else 0,
                "createdTime": str(pos.timestamp if pos is not None else now),
                "updatedTime": str(now),
                "seq": next(self._exec_seq),
                "isReduceOnly": False,
                "mmrSysUpdatedTime": "",
                "leverageSysUpdatedTime": "",
                "tpslMode": "Full",
            }
        )
        return row

    def positions(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cat = category(params)
        if cat not in ("linear", "inverse"):
            raise BybitError(10001, "params error: category only support linear or inverse")
        m = self.market(params, cat) if params.get("symbol") else None
        if (
            cat == "linear"
            and m is None
            and not (params.get("settleCoin") or params.get("baseCoin"))
        ):
            raise BybitError(10001, "params error: symbol, settleCoin or baseCoin is required")
        rows = []
        for ai in self.sim.ledger.assets.values():
            if not self._in(ai, cat) or (m is not None and ai.symbol != m.symbol):
                continue
            if m is None and ai.long is None and ai.short is None:
                continue  # without a symbol, Bybit lists open positions only
            rows.append(self._position_row(ai))
        return {"category": cat, "list": rows, "nextPageCursor": ""}

    def set_leverage(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cat = category(params)
        if cat != "linear":
            raise BybitError(10001, "params error: category only support linear or inverse")
        m = self.market(params, cat)
        buy = decimal(params, "buyLeverage")
        sell = decimal(params, "sellLeverage")
        assert buy is not None
        assert sell is not None
        if buy != sell:
            raise BybitError(110027, "buy leverage must equal sell leverage in one-way mode")
        if not 1 <= buy <= MAX_LEVERAGE:
            raise BybitError(10001, "leverage invalid")
        ai = self._asset(m)
        if math.isclose(ai.leverage, buy):
            raise BybitError(110043, "Set leverage not modified")
        run_engine(self.sim.set_leverage(buy, m.symbol), spot=False)
        self.emit("position", [self._position_row(ai, stream=True)])
        return {}

    # Wallet.
    def wallet(self, params: Mapping[str, Any]) -> dict[str, Any]:
        account_type = param(params, "accountType")
        if account_type != "UNIFIED":
            raise BybitError(10001, "accountType only support UNIFIED")
        return {"list": [self.wallet_row()]}

    def wallet_row(self) -> dict[str, Any]:
        ledger = self.sim.ledger
        coins = []
        total_equity = total_im = total_mm = total_upl = 0.0
        for coin, b in sorted(ledger.balances.items()):
            position_im = order_im = upnl = mm = 0.0
            for ai in ledger.assets.values():
                if not ai.contract or ai.settle != coin:
                    continue
                pos = ai.long or ai.short
                order_im += sum(o.committed for o in ai.open_orders.values())
                if pos is not None:
                    sign = 1.0 if pos.side == LONG else -1.0
                    mark = self.clock.last_price(ai.symbol)
                    position_im += pos.margin
                    upnl += sign * pos.contracts * ai.contract_size * (mark - pos.entry_price)
                    mm += pos.contracts * ai.contract_size * mark * _MMR
            locked = max(b.committed - position_im - order_im, 0.0)
            equity = b.total + upnl
            price = 1.0 if coin in ("USDT", "USDC") else self._usd_price(coin)
            total_equity += equity * price
            total_im += (position_im + order_im) * price
            total_mm += mm * price
            total_upl += upnl * price
            coins.append(
                {
                    "coin": coin,
                    "equity": _fmt(equity),
                    "usdValue": _fmt(equity * price),
                    "walletBalance": _fmt(b.total),
                    "free": "",
                    "locked": _fmt(locked),
                    "spotHedgingQty": "0",
                    "borrowAmount": "0",
                    "availableToWithdraw": "",
                    "availableToBorrow": "",
                    "accruedInterest": "0",
                    "totalOrderIM": _fmt(order_im),
                    "totalPositionIM": _fmt(position_im),
                    "totalPositionMM": _fmt(mm),
                    "unrealisedPnl": _fmt(upnl),
                    "cumRealisedPnl": _fmt(
                        sum(self._cum_realized.values()) if coin == "USDT" else 0.0
                    ),
                    "bonus": "0",
                    "marginCollateral": True,
                    "collateralSwitch": True,
                    "spotBorrow": "0",
                }
            )
        return {
            "accountType": "UNIFIED",
            "accountIMRate": _fmt(total_im / total_equity if total_equity else 0.0, 4),
            "accountMMRate": _fmt(total_mm / total_equity if total_equity else 0.0, 4),
            "totalEquity": _fmt(total_equity),
            "totalWalletBalance": _fmt(total_equity - total_upl),
            "totalMarginBalance": _fmt(total_equity),
            "totalAvailableBalance": _fmt(max(total_equity - total_im, 0.0)),
            "totalPerpUPL": _fmt(total_upl),
            "totalInitialMargin": _fmt(total_im),
            "totalMaintenanceMargin": _fmt(total_mm),
            "accountLTV": "0",
            "coin": coins,
        }

    def _usd_price(self, coin: str) -> float:
        for symbol in (f"{coin}/USDT",):
            if symbol in self.by_symbol:
                return self.clock.last_price(symbol)
        return 0.0

    def deposit(self, asset: str, amount: float) -> None:
        """Credit (or, negative, debit) ``amount`` of ``asset``; the wallet stream reports it."""
        balance = self.sim.ledger.balance(asset)
        apply(self.sim.ledger, BalanceUpdated(asset, balance.total + amount, self.clock.now_ms()))
        if asset == "USDT":
            self._wallet_seen = self.sim.ledger.balance("USDT").total
        self.emit("wallet", [self.wallet_row()])

    # Engine events -> private stream topics.
    def _on_engine(self, kind: str, payload: dict[str, Any]) -> None:
        order = self.sim.ledger.orders.get(payload.get("clientOrderId") or "")
        if order is None:
            return
        ai = self.sim.ledger.assets[order.symbol]
        if kind == "trade":
            last = order.fills[-1]
            # The fill is applied: the wallet's move net of the fee is a contract's realised
            # PnL (a spot fill moves the wallet too, so the mark follows every fill).
            wallet = self.sim.ledger.balance("USDT").total
            if ai.contract:
                realized = wallet - self._wallet_seen + last.fee
                self._realized[last.id] = realized
                self._cum_realized[ai.symbol] = self._cum_realized.get(ai.symbol, 0.0) + realized
            self._wallet_seen = wallet
            self._pending[order.client_id] = last
            return
        fill: Trade | None = self._pending.pop(order.client_id, None)
        category_name = "linear" if ai.contract else "spot"
        if fill is not None:
            self.emit("execution", [self.execution_body(fill, stream=True)])
        self.emit("order", [{"category": category_name, **self.order_body(order)}])
        if fill is not None:
            # The wallet first: a client that waits for the position then finds the fee and
            # realised PnL applied too (Bybit does not promise an order between topics).
            self.emit("wallet", [self.wallet_row()])
            if ai.contract:
                self.emit("position", [self._position_row(ai, stream=True)])
        elif order.status == OPEN and not order.filled:
            self.emit("wallet", [self.wallet_row()])  # the order locked funds

    # Public REST.
    def kline(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cat = param(params, "category", required=False) or "linear"
        if cat not in _LISTED:
            raise BybitError(10001, f"params error: category {cat} is not supported")
        m = self.market(params, cat)
        interval = param(params, "interval")
        timeframe = INTERVALS.get(interval or "")
        if timeframe is None:
            raise BybitError(10001, "params error: invalid interval")
        limit = max(1, min(integer(params, "limit", 200) or 200, 1000))
        try:
            rows = self.data(cat).klines(
                m, timeframe, integer(params, "start"), integer(params, "end"), limit
            )
        except Exception as exc:
            raise BybitError(10001, f"params error: interval {interval} ({exc})") from exc
        out = [[str(r[0]), r[1], r[2], r[3], r[4], r[5], r[7]] for r in reversed(rows)]
        return {"category": cat, "symbol": m.id, "list": out}

    def orderbook(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cat = category(params)
        m = self.market(params, cat)
        maximum = 200 if cat == "spot" else 500
        limit = max(1, min(integer(params, "limit", 1 if cat == "spot" else 25) or 1, maximum))
        depth = self.data(cat).depth(m, limit)
        now = self.clock.now_ms()
        return {
            "s": m.id,
            "b": depth["bids"],
            "a": depth["asks"],
            "ts": now,
            "u": depth["lastUpdateId"],
            "seq": depth["lastUpdateId"],
            "cts": now,
        }

    def ticker_row(self, cat: str, m: Market) -> dict[str, Any]:
        t = self.data(cat).ticker_24h(m)
        (bid, bid_qty), (ask, ask_qty) = self.data(cat).top(m)
        last = float(t["lastPrice"])
        opened = float(t["openPrice"])
        row = {
            "symbol": m.id,
            "bid1Price": bid,
            "bid1Size": bid_qty,
            "ask1Price": ask,
            "ask1Size": ask_qty,
            "lastPrice": t["lastPrice"],
            "prevPrice24h": t["openPrice"],
            "price24hPcnt": f"{(last / opened - 1) if opened else 0.0:.4f}",
            "highPrice24h": t["highPrice"],
            "lowPrice24h": t["lowPrice"],
            "turnover24h": t["quoteVolume"],
            "volume24h": t["volume"],
        }
        if cat == "spot":
            row["usdIndexPrice"] = t["lastPrice"]
        else:
            now = self.clock.now_ms()
            row.update(
                {
                    "indexPrice": t["lastPrice"],
                    "markPrice": t["lastPrice"],
                    "prevPrice1h": t["lastPrice"],
                    "openInterest": "0",
                    "openInterestValue": "0.00",
                    "fundingRate": "0.0001",
                    "nextFundingTime": str(now - now % 28_800_000 + 28_800_000),
                    "predictedDeliveryPrice": "",
                    "basisRate": "",
                    "deliveryFeeRate": "",
                    "deliveryTime": "0",
                    "basis": "",
                }
            )
        return row

    def tickers(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cat = category(params)
        data = self.data(cat)
        markets = (
            [self.market(params, cat)] if params.get("symbol") else list(data.markets.values())
        )
        return {"category": cat, "list": [self.ticker_row(cat, m) for m in markets]}

    def recent_trades(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cat = category(params)
        m = self.market(params, cat)
        limit = max(1, min(integer(params, "limit", 60) or 60, 1000 if cat != "spot" else 60))
        rows = [
            {
                "execId": str(t["id"]),
                "symbol": m.id,
                "price": t["price"],
                "size": t["qty"],
                "side": "Sell" if t["isBuyerMaker"] else "Buy",
                "time": str(t["time"]),
                "isBlockTrade": False,
                "isRPITrade": False,
            }
            for t in reversed(self.data(cat).recent_trades(m, limit))
        ]
        return {"category": cat, "list": rows}


def _fmt(value: float, places: int = 8) -> str:
    fixed = round(value, places)
    return f"{0.0 if fixed == 0 else fixed:.{places}f}"


def _page(
    items: list[Any], params: Mapping[str, Any], *, default: int, maximum: int
) -> tuple[list[Any], str]:
    """Bybit's cursor paging: ``limit`` and an opaque ``cursor`` (here: the offset)."""
    limit = max(1, min(integer(params, "limit", default) or default, maximum))
    cursor = param(params, "cursor", required=False)
    offset = int(cursor) if cursor and cursor.isdigit() else 0
    rows = items[offset : offset + limit]
    more = offset + limit < len(items)
    return rows, str(offset + limit) if more else ""
