"""What the loopback exchange's two accounts share (:mod:`._spot`, :mod:`._futures`).

Each account wraps a :class:`~runtime.exchanges.sim.SimExchange` (matching engine and ledger)
and translates both ways: Binance request parameters into ``submit``/``cancel``/lookups, and the
engine's orders, fills and balances into Binance bodies and user-data events. The engine's
errors become Binance error codes here, in one place (:func:`rejection`), with Binance's exact
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

from runtime._errors import ConfigError, InsufficientFunds, OrderNotFound, OrderRejected
from runtime.engine._engine import BalanceUpdated, apply
from runtime.exchanges._markets import load_markets
from runtime.exchanges.sim._exchange import SimExchange
from runtime.model._orders import OPEN, Order, Trade
from runtime.testing.loopback._auth import BinanceError, mandatory
from runtime.testing.loopback._feed import BarClock
from runtime.testing.loopback._market import MarketData
from runtime.testing.loopback._wire import Market

__all__ = ["Account", "rejection"]

Emit = Callable[[dict[str, Any]], None]

_CLIENT_ID: Final = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_ID_ALPHABET: Final = string.ascii_letters + string.digits


def random_client_id() -> str:
    # Binance's server-assigned ids: 22 letters and digits.
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def required_param(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise mandatory(name)
    return value


def decimal_param(params: Mapping[str, str], name: str, required: bool = True) -> float | None:
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


def int_param(params: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"^-?[0-9]{1,20}$", raw):
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(raw)


def enum_param(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = required_param(params, name)
    if value not in allowed:
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is "
            f"'{', '.join(allowed)}'.",
        )
    return value


def limit_param(params: Mapping[str, str], default: int, maximum: int) -> int:
    limit = int_param(params, "limit", default)
    assert limit is not None
    if limit < 1:
        raise BinanceError(
            -1100, "Illegal characters found in parameter 'limit'; legal range is '1+'."
        )
    return min(limit, maximum)


def rejection(exc: OrderRejected | ConfigError, *, futures: bool) -> BinanceError:
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
    if text.startswith("Order would immediately trigger"):
        if futures:
            return BinanceError(-2021, "Order would immediately trigger.")
        return BinanceError(-2010, "Stop price would trigger immediately.")
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


class Account:
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
        client_id = params.get("newClientOrderId") or random_client_id()
        if not _CLIENT_ID.match(client_id):
            raise BinanceError(
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        if client_id in self.sim.ledger.orders:
            # The engine keys orders by client id, so a reused id is refused even when the
            # first order is closed (Binance refuses it only while that order is open).
            raise rejection(OrderRejected("Duplicate order sent."), futures=self.futures)
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
            raise rejection(exc, futures=self.futures) from exc
        return self.sim.ledger.orders[result["clientOrderId"]]

    def _cancel(self, order: Order, cancel_client_id: str | None) -> None:
        if order.status != OPEN:
            raise BinanceError(-2011, "Unknown order sent.")
        # Set before the engine cancels: its listener call builds the CANCELED event.
        self._canceled_by[order.client_id] = cancel_client_id or random_client_id()
        try:
            run_engine(self.sim.cancel_order(order.id, order.symbol), futures=self.futures)
        except OrderNotFound as exc:
            raise BinanceError(-2011, "Unknown order sent.") from exc

    def orders_of(self, m: Market | None, *, open_only: bool) -> list[Order]:
        return [
            o
            for o in self.sim.ledger.orders.values()
            if (m is None or o.symbol == m.symbol) and (not open_only or o.status == OPEN)
        ]

    def order_history(self, m: Market, params: Mapping[str, str]) -> list[Order]:
        """allOrders: the symbol's orders, paged as Binance pages them (orderId or time)."""
        return page(
            self.orders_of(m, open_only=False),
            lambda o: o.timestamp,
            lambda o: int(o.id or 0),
            params,
            "orderId",
            500,
            1000,
        )

    @staticmethod
    def trade_history(trades: list[Trade], params: Mapping[str, str]) -> list[Trade]:
        """myTrades / userTrades: ``trades`` (of one order with ``orderId``), paged by fromId
        or time."""
        order_id = params.get("orderId")
        if order_id:
            trades = [t for t in trades if t.order.id == order_id]
        return page(trades, lambda t: t.timestamp, lambda t: int(t.id), params, "fromId", 500, 1000)

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


def fmt_amount(value: float) -> str:
    """A balance amount with eight places, as both APIs send them."""
    fixed = round(value, 8)
    return f"{0.0 if fixed == 0 else fixed:.8f}"


def run_engine(coro: Any, *, futures: bool) -> Any:
    """Run one of the engine's trivially-async methods (they never suspend) to completion."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    except (OrderRejected, ConfigError) as exc:
        raise rejection(exc, futures=futures) from exc
    coro.close()
    raise RuntimeError("engine coroutine suspended; the loopback expects it to finish at once")


def page(
    items: list[Any],
    time_of: Callable[[Any], int],
    id_of: Callable[[Any], int],
    params: Mapping[str, str],
    from_name: str,
    default: int,
    maximum: int,
) -> list[Any]:
    """Binance's paging: ``<from_name>`` (id at or after), ``startTime``/``endTime``, ``limit``."""
    limit = limit_param(params, default, maximum)
    from_id = int_param(params, from_name)
    start = int_param(params, "startTime")
    end = int_param(params, "endTime")
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
