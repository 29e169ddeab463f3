"""The two accounts behind the loopback exchange: Binance spot and USDⓈ-M futures.

Each wraps a :class:`~runtime.exchanges.sim.SimExchange` (its matching engine and ledger) and
translates both ways: Binance request parameters into ``submit``/``cancel``/lookups, and the
engine's orders, fills and balances into Binance bodies and user-data events. The engine's
errors become Binance error codes here, in one place (:func:`_rejection`), with Binance's exact
messages, because ccxt picks its exception classes by code *and* by message.

User-data events are derived from the engine's listener calls: ``("order", ...)`` for every
order change, preceded by ``("trade", ...)`` for a fill. A spot account emits
``executionReport`` then ``outboundAccountPosition`` (for the assets whose free or locked amount
changed); a futures account emits ``ORDER_TRADE_UPDATE`` then, after a fill, ``ACCOUNT_UPDATE``.
Deposits emit ``balanceUpdate`` (spot) or ``ACCOUNT_UPDATE`` with reason ``DEPOSIT`` (futures).

Not thread-safe: the server calls it from its event loop only.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any, Final

from ..._assets import LONG, AssetInstance, Position
from ..._engine import BalanceUpdated, apply
from ..._errors import ConfigError, InsufficientFunds, OrderNotFound, OrderRejected
from ..._orders import OPEN, Order, Trade
from .._binance_info import SPOT_MAKER_FEE, SPOT_TAKER_FEE
from .._markets import load_markets
from ..sim._exchange import SimExchange
from ._auth import BinanceError, mandatory
from ._feed import BarClock
from ._market import MarketData
from ._wire import (
    Market,
    futures_new_order,
    futures_order,
    futures_trade,
    order_status,
    order_type,
    spot_new_order,
    spot_order,
    spot_trade,
    time_in_force,
)

__all__ = ["FuturesAccount", "SpotAccount"]

Emit = Callable[[dict[str, Any]], None]

_CLIENT_ID: Final = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_ID_ALPHABET: Final = string.ascii_letters + string.digits
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


def _random_client_id() -> str:
    # Binance's server-assigned ids: 22 letters and digits.
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def _param(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise mandatory(name)
    return value


def _decimal_param(params: Mapping[str, str], name: str, required: bool = True) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise mandatory(name)
        return None
    if not re.fullmatch(r"^([0-9]{1,20})(\.[0-9]{1,20})?$", raw):
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is "
            "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        )
    return float(raw)


def _int_param(params: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"^-?[0-9]{1,20}$", raw):
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(raw)


def _enum(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = _param(params, name)
    if value not in allowed:
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is "
            f"'{', '.join(allowed)}'.",
        )
    return value


def _limit(params: Mapping[str, str], default: int, maximum: int) -> int:
    limit = _int_param(params, "limit", default)
    assert limit is not None
    if limit < 1:
        raise BinanceError(
            -1100, "Illegal characters found in parameter 'limit'; legal range is '1+'."
        )
    return min(limit, maximum)


def _rejection(exc: OrderRejected | ConfigError, *, futures: bool) -> BinanceError:
    """The Binance error for an engine refusal (the engine's words go to the server log)."""
    text = str(exc)
    if isinstance(exc, InsufficientFunds):
        if futures:
            return BinanceError(-2019, "Margin is insufficient.")
        return BinanceError(-2010, "Account has insufficient balance for requested action.")
    if text.startswith("Invalid symbol"):
        return BinanceError(-1121, "Invalid symbol.")
    if text.startswith("Order would immediately match"):
        if futures:
            return BinanceError(
                -5022,
                "Due to the order could not be executed as maker, the Post Only order will be "
                "rejected. The order will not be recorded in the order history",
            )
        return BinanceError(-2010, "Order would immediately match and take.")
    if text.startswith("Duplicate order"):
        if futures:
            return BinanceError(-4116, "ClientOrderId is duplicated.")
        return BinanceError(-2010, "Duplicate order sent.")
    if text.startswith("ReduceOnly"):
        return BinanceError(-2022, "ReduceOnly Order is rejected.")
    if text.startswith("Leverage"):
        return BinanceError(-4028, text.split(":")[0].replace("is not valid for", "is not valid;"))
    if text.startswith("Filter failure"):
        if not futures:
            return BinanceError(-1013, text)  # "Filter failure: LOT_SIZE (...)", as Binance words
        if "NOTIONAL" in text:
            notional = re.search(r"minimum ([0-9.e+-]+)", text)
            floor = notional[1] if notional else "5"
            return BinanceError(
                -4164,
                f"Order's notional must be no smaller than {floor} (unless you choose reduce "
                "only).",
            )
        if "PRICE_FILTER" in text:
            if "positive" in text:
                return BinanceError(-4001, "Price less than 0.")
            return BinanceError(-4014, "Price not increased by tick size.")
        if "positive" in text:
            return BinanceError(-4003, "Quantity less than or equal to zero.")
        if "not a multiple" in text:
            return BinanceError(-1111, "Precision is over the maximum defined for this asset.")
        if "outside" in text:
            return BinanceError(-4005, "Quantity greater than max quantity.")
    return BinanceError(-2010 if not futures else -1000, text)


class _Account:
    """What the spot and futures accounts share: engine, markets, order lookup, events."""

    futures: bool = False

    def __init__(
        self,
        exchange_id: str,
        clock: BarClock,
        data: MarketData,
        balances: Mapping[str, float],
        margin: str | None,
    ) -> None:
        self.clock = clock
        self.data = data
        markets = load_markets(exchange_id)
        self.sim = SimExchange(
            markets, clock, balances=balances, margin=margin, exchange_id=f"{exchange_id}-loopback"
        )
        self.by_symbol: dict[str, Market] = {m.symbol: m for m in data.markets.values()}
        self.emit: Emit = lambda event: None
        self._pending: dict[str, Trade] = {}  # client id -> fill awaiting its order event
        self._canceled_by: dict[str, str] = {}  # client id -> cancel request's client id
        self.sim.add_listener(self._on_engine)

    # Lookups.
    def market(self, params: Mapping[str, str]) -> Market:
        return self.data.market(params.get("symbol"))

    def order(self, m: Market, params: Mapping[str, str], *, cancel: bool = False) -> Order:
        order_id = params.get("orderId")
        client_id = params.get("origClientOrderId")
        if not order_id and not client_id:
            raise BinanceError(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        ledger = self.sim.ledger
        order = (
            ledger.orders_by_id.get(order_id) if order_id else ledger.orders.get(client_id or "")
        )
        if (
            order is None
            or order.symbol != m.symbol
            or (order_id and client_id and order.client_id != client_id)
        ):
            if cancel:
                raise BinanceError(-2011, "Unknown order sent.")
            raise BinanceError(-2013, "Order does not exist.")
        return order

    def updated_ms(self, order: Order) -> int:
        updated = self.sim.order_dict(order)["lastUpdateTimestamp"]
        return int(updated) if updated else order.timestamp

    def _client_id(self, params: Mapping[str, str]) -> str:
        client_id = params.get("newClientOrderId") or _random_client_id()
        if not _CLIENT_ID.match(client_id):
            raise BinanceError(
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        if client_id in self.sim.ledger.orders:
            # The engine keys orders by client id, so a reused id is refused even when the
            # first order is closed (Binance refuses it only while that order is open).
            raise _rejection(OrderRejected("Duplicate order sent."), futures=self.futures)
        return client_id

    def _submit(
        self,
        m: Market,
        kind: str,
        side: str,
        qty: float,
        price: float | None,
        extra: dict[str, Any],
    ) -> Order:
        try:
            result = self.sim.submit(m.symbol, kind, side, qty, price, extra)
        except (OrderRejected, ConfigError) as exc:
            raise _rejection(exc, futures=self.futures) from exc
        return self.sim.ledger.orders[result["clientOrderId"]]

    def _cancel(self, order: Order, cancel_client_id: str | None) -> None:
        if order.status != OPEN:
            raise BinanceError(-2011, "Unknown order sent.")
        # Set before the engine cancels: its listener call builds the CANCELED event.
        self._canceled_by[order.client_id] = cancel_client_id or _random_client_id()
        try:
            _run(self.sim.cancel_order(order.id, order.symbol), futures=self.futures)
        except OrderNotFound as exc:
            raise BinanceError(-2011, "Unknown order sent.") from exc

    def orders_of(self, m: Market | None, *, open_only: bool) -> list[Order]:
        return [
            o
            for o in self.sim.ledger.orders.values()
            if (m is None or o.symbol == m.symbol) and (not open_only or o.status == OPEN)
        ]

    def deposit(self, asset: str, amount: float) -> None:
        """Credit (or, negative, debit) ``amount`` of ``asset`` and emit the balance event."""
        balance = self.sim.ledger.balance(asset)
        apply(self.sim.ledger, BalanceUpdated(asset, balance.total + amount, self.clock.now_ms()))
        self._deposited(asset, amount)

    # Engine events.
    def _on_engine(self, kind: str, payload: dict[str, Any]) -> None:
        order = self.sim.ledger.orders.get(payload.get("clientOrderId") or "")
        if order is None:
            return
        if kind == "trade":
            self._pending[order.client_id] = order.fills[-1]
            return
        fill = self._pending.pop(order.client_id, None)
        self._order_event(order, fill)

    def _order_event(self, order: Order, fill: Trade | None) -> None:
        raise NotImplementedError

    def _deposited(self, asset: str, amount: float) -> None:
        raise NotImplementedError


class SpotAccount(_Account):
    """The spot account: ``/api/v3`` trading and the WebSocket API user-data stream."""

    futures = False

    def __init__(self, clock: BarClock, data: MarketData, balances: Mapping[str, float]) -> None:
        super().__init__("binance", clock, data, balances, None)
        self._sent: dict[str, tuple[str, str]] = {}  # asset -> (free, locked) last reported
        for asset, b in self.sim.ledger.balances.items():
            self._sent[asset] = (_amount(b.free), _amount(b.committed))

    # REST bodies.
    def account(self, params: Mapping[str, str]) -> dict[str, Any]:
        omit_zero = params.get("omitZeroBalances") == "true"
        balances = []
        for asset, b in sorted(self.sim.ledger.balances.items()):
            if omit_zero and b.total == 0:
                continue
            balances.append(
                {"asset": asset, "free": _amount(b.free), "locked": _amount(b.committed)}
            )
        maker, taker = int(float(SPOT_MAKER_FEE) * 10_000), int(float(SPOT_TAKER_FEE) * 10_000)
        return {
            "makerCommission": maker,
            "takerCommission": taker,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": _amount(float(SPOT_MAKER_FEE)),
                "taker": _amount(float(SPOT_TAKER_FEE)),
                "buyer": _amount(0.0),
                "seller": _amount(0.0),
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
        side = _enum(params, "side", ("BUY", "SELL")).lower()
        kind = _param(params, "type")
        if kind not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
            # Stop and take-profit types exist on Binance; the engine does not trigger orders.
            raise BinanceError(-1116, "Invalid orderType.")
        resp_type = params.get("newOrderRespType") or "FULL"  # Binance's default for these types
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise BinanceError(-1136, "Invalid newOrderRespType")
        client_id = self._client_id(params)
        extra: dict[str, Any] = {"clientOrderId": client_id}
        price: float | None = None
        if kind == "MARKET":
            qty = _decimal_param(params, "quantity", required=False)
            if qty is None:
                quote = _decimal_param(params, "quoteOrderQty", required=False)
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
            qty = _decimal_param(params, "quantity")
            price = _decimal_param(params, "price")
            engine_kind = "limit"
            if kind == "LIMIT_MAKER":
                extra["postOnly"] = True
            else:
                extra["timeInForce"] = _enum(params, "timeInForce", ("GTC", "IOC", "FOK"))
        assert qty is not None
        order = self._submit(m, engine_kind, side, qty, price, extra)
        return spot_new_order(m, order, self.updated_ms(order), resp_type)

    def get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        order = self.order(m, params)
        return spot_order(m, order, self.updated_ms(order))

    def cancel_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        order = self.order(m, params, cancel=True)
        self._cancel(order, params.get("newClientOrderId"))
        return spot_new_order(
            m, order, self.updated_ms(order), "RESULT", self._canceled_by[order.client_id]
        )

    def open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params) if params.get("symbol") else None
        return [
            spot_order(self.data.markets[self._id(o)], o, self.updated_ms(o))
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
        orders = _window(
            self.orders_of(m, open_only=False),
            lambda o: o.timestamp,
            lambda o: int(o.id or 0),
            params,
            "orderId",
            500,
            1000,
        )
        return [spot_order(m, o, self.updated_ms(o)) for o in orders]

    def my_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params)
        trades = self.sim.ledger.assets[m.symbol].trades
        order_id = params.get("orderId")
        if order_id:
            trades = [t for t in trades if t.order.id == order_id]
        picked = _window(
            trades, lambda t: t.timestamp, lambda t: int(t.id), params, "fromId", 500, 1000
        )
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
            "P": m.price(0.0),
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
            "w": order.status == OPEN,
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
            state = (_amount(b.free), _amount(b.committed))
            if self._sent.get(asset) != state:
                self._sent[asset] = state
                changed.append({"a": asset, "f": state[0], "l": state[1]})
        if changed:
            self.emit({"e": "outboundAccountPosition", "E": now, "u": now, "B": changed})

    def _deposited(self, asset: str, amount: float) -> None:
        now = self.clock.now_ms()
        self.emit({"e": "balanceUpdate", "E": now, "a": asset, "d": _amount(amount), "T": now})
        self._balances_event(now)


class FuturesAccount(_Account):
    """The USDⓈ-M account: ``/fapi`` trading, positions, leverage, listenKey user data."""

    futures = True

    def __init__(self, clock: BarClock, data: MarketData, balances: Mapping[str, float]) -> None:
        super().__init__("binanceusdm", clock, data, balances, "isolated")
        self._realized: dict[str, float] = {}  # trade id -> realized PnL of that fill
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
            "totalInitialMargin": _amount(total_initial),
            "totalMaintMargin": _amount(t["maint"]),
            "totalWalletBalance": _amount(t["wallet"]),
            "totalUnrealizedProfit": _amount(t["upnl"]),
            "totalMarginBalance": _amount(t["wallet"] + t["upnl"]),
            "totalPositionInitialMargin": _amount(t["position_margin"]),
            "totalOpenOrderInitialMargin": _amount(t["order_margin"]),
            "totalCrossWalletBalance": _amount(t["wallet"] - t["position_margin"]),
            "totalCrossUnPnl": _amount(0.0),
            "availableBalance": _amount(t["available"]),
            "maxWithdrawAmount": _amount(t["available"]),
        }
        assets = []
        for asset, b in sorted(self.sim.ledger.balances.items()):
            usdt = asset == "USDT"
            row: dict[str, Any] = {
                "asset": asset,
                "walletBalance": _amount(b.total),
                "unrealizedProfit": _amount(t["upnl"] if usdt else 0.0),
                "marginBalance": _amount(b.total + (t["upnl"] if usdt else 0.0)),
                "maintMargin": _amount(t["maint"] if usdt else 0.0),
                "initialMargin": _amount(total_initial if usdt else 0.0),
                "positionInitialMargin": _amount(t["position_margin"] if usdt else 0.0),
                "openOrderInitialMargin": _amount(t["order_margin"] if usdt else 0.0),
                "crossWalletBalance": _amount(b.total - (t["position_margin"] if usdt else 0.0)),
                "crossUnPnl": _amount(0.0),
                "availableBalance": _amount(b.free),
                "maxWithdrawAmount": _amount(b.free),
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
                        "initialMargin": _amount(n["margin"] + n["order_margin"]),
                        "maintMargin": _amount(n["maint"]),
                        "unrealizedProfit": _amount(n["upnl"]),
                        "positionInitialMargin": _amount(n["margin"]),
                        "openOrderInitialMargin": _amount(n["order_margin"]),
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
                        "unrealizedProfit": _amount(n["upnl"]),
                        "isolatedMargin": _amount(n["margin"] + n["upnl"]),
                        "notional": _amount(n["notional"]),
                        "isolatedWallet": _amount(n["margin"]),
                        "initialMargin": _amount(n["margin"] + n["order_margin"]),
                        "maintMargin": _amount(n["maint"]),
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
                "balance": _amount(b.total),
                "crossWalletBalance": _amount(b.total),
                "crossUnPnl": _amount(0.0),
                "availableBalance": _amount(b.free),
                "maxWithdrawAmount": _amount(b.free),
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
                "unRealizedProfit": _amount(n["upnl"]),
                "liquidationPrice": m.fill_price(n["liq"]),
                "isolatedMargin": _amount(n["margin"] + n["upnl"]),
                "notional": _amount(n["notional"]),
                "isolatedWallet": _amount(n["margin"]),
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
                        "initialMargin": _amount(n["margin"] + n["order_margin"]),
                        "maintMargin": _amount(n["maint"]),
                        "positionInitialMargin": _amount(n["margin"]),
                        "openOrderInitialMargin": _amount(n["order_margin"]),
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
        leverage = _int_param(params, "leverage")
        if leverage is None:
            raise mandatory("leverage")
        if not 1 <= leverage <= _DEFAULT_LEVERAGE_BRACKETS[0][0]:
            raise BinanceError(-4028, f"Leverage {leverage} is not valid")
        _run(self.sim.set_leverage(float(leverage), m.symbol), futures=True)
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
        margin_type = _enum(params, "marginType", ("ISOLATED", "CROSSED"))
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
        side = _enum(params, "side", ("BUY", "SELL")).lower()
        kind = _param(params, "type")
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
        qty = _decimal_param(params, "quantity")
        assert qty is not None
        price: float | None = None
        if kind == "LIMIT":
            price = _decimal_param(params, "price")
            tif = _enum(params, "timeInForce", ("GTC", "IOC", "FOK", "GTX"))
            if tif == "GTX":
                extra["postOnly"] = True
            else:
                extra["timeInForce"] = tif
        order = self._submit(m, "market" if kind == "MARKET" else "limit", side, qty, price, extra)
        return futures_new_order(m, order, self.updated_ms(order))

    def get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        order = self.order(m, params)
        return futures_order(m, order, self.updated_ms(order))

    def cancel_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        order = self.order(m, params, cancel=True)
        self._cancel(order, None)
        return futures_new_order(m, order, self.updated_ms(order))

    def open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params) if params.get("symbol") else None
        return [
            futures_order(self.by_symbol[o.symbol], o, self.updated_ms(o))
            for o in self.orders_of(m, open_only=True)
        ]

    def open_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        order = self.order(m, params)
        if order.status != OPEN:
            raise BinanceError(-2013, "Order does not exist.")
        return futures_order(m, order, self.updated_ms(order))

    def cancel_all(self, params: Mapping[str, str]) -> dict[str, Any]:
        m = self.market(params)
        for order in self.orders_of(m, open_only=True):
            self._cancel(order, None)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def all_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params)
        orders = _window(
            self.orders_of(m, open_only=False),
            lambda o: o.timestamp,
            lambda o: int(o.id or 0),
            params,
            "orderId",
            500,
            1000,
        )
        return [futures_order(m, o, self.updated_ms(o)) for o in orders]

    def user_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        m = self.market(params)
        trades = self._asset(m).trades
        order_id = params.get("orderId")
        if order_id:
            trades = [t for t in trades if t.order.id == order_id]
        picked = _window(
            trades, lambda t: t.timestamp, lambda t: int(t.id), params, "fromId", 500, 1000
        )
        return [futures_trade(m, t, self._realized.get(t.id, 0.0)) for t in picked]

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
        m = self.by_symbol[order.symbol]
        now = self.clock.now_ms()
        status = order_status(order)
        x = "TRADE" if fill is not None else ("NEW" if order.status == OPEN else status)
        filled = order.filled
        avg = sum(t.value for t in order.fills) / filled if filled else 0.0
        o: dict[str, Any] = {
            "s": m.id,
            "c": order.client_id,
            "S": order.side.upper(),
            "o": order_type(order, futures=True),
            "f": time_in_force(order, futures=True),
            "q": m.qty(order.amount),
            "p": m.price(order.price),
            "ap": m.fill_price(avg),
            "sp": m.price(0.0),
            "x": x,
            "X": status,
            "i": int(order.id or 0),
            "l": m.qty(fill.amount if fill else 0.0),
            "z": m.qty(filled),
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
                    "cr": _amount(self._accumulated.get(m.symbol, 0.0)),
                    "up": _amount(n["upnl"]),
                    "mt": "isolated",
                    "iw": _amount(n["margin"]),
                    "ps": "BOTH",
                }
            )
        balances = [
            {
                "a": "USDT",
                "wb": _amount(usdt.total),
                "cw": _amount(usdt.total - t["position_margin"]),
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
                            "wb": _amount(usdt.total),
                            "cw": _amount(usdt.total - t["position_margin"]),
                            "bc": _amount(amount),
                        }
                    ],
                    "P": [],
                },
            }
        )


def _amount(value: float) -> str:
    """A balance amount with eight places, as both APIs send them."""
    fixed = round(value, 8)
    return f"{0.0 if fixed == 0 else fixed:.8f}"


def _run(coro: Any, *, futures: bool) -> Any:
    """Run one of the engine's trivially-async methods (they never suspend) to completion."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    except (OrderRejected, ConfigError) as exc:
        raise _rejection(exc, futures=futures) from exc
    coro.close()
    raise RuntimeError("engine coroutine suspended; the loopback expects it to finish at once")


def _window(
    items: list[Any],
    time_of: Callable[[Any], int],
    id_of: Callable[[Any], int],
    params: Mapping[str, str],
    from_name: str,
    default: int,
    maximum: int,
) -> list[Any]:
    """Binance's paging: ``<from_name>`` (id at or after), ``startTime``/``endTime``, ``limit``."""
    limit = _limit(params, default, maximum)
    from_id = (
        _int_param(params, from_name) if from_name != "orderId" else _int_param(params, "orderId")
    )
    start = _int_param(params, "startTime")
    end = _int_param(params, "endTime")
    picked = sorted(items, key=id_of)
    if from_id is not None:
        picked = [x for x in picked if id_of(x) >= from_id]
        return picked[:limit]
    if start is not None:
        picked = [x for x in picked if time_of(x) >= start]
    if end is not None:
        picked = [x for x in picked if time_of(x) <= end]
    if start is not None:
        return picked[:limit]
    return picked[-limit:]
