"""The trading model: sides, order types, orders, trades and the actions `call` takes.

Order types are generic over side and subscripting gives a concrete class::

    GTCOrder[Buy]            # a class: GTCOrder[Buy].side == "buy", .ccxt_type == "limit"
    MarketOrder[Sell]

`Order` and `Trade` values are created and changed only by the engine (`runtime.engine._engine`).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast

import msgspec

from runtime._errors import ConfigError


class Side:
    """Base of `Buy` and `Sell`; used only as a type parameter."""

    name: ClassVar[str]
    sign: ClassVar[int]


class Buy(Side):
    name = "buy"
    sign = 1


class Sell(Side):
    name = "sell"
    sign = -1


SideT = TypeVar("SideT", bound=Side)

_SIDES: dict[str, type[Side]] = {"buy": Buy, "sell": Sell}


def side_of(name: str) -> type[Side]:
    """`Buy` or `Sell` from a ccxt side string."""
    try:
        return _SIDES[name]
    except KeyError:
        raise ConfigError(f"unknown side {name!r}; valid sides are 'buy' and 'sell'") from None


class OrderType(Generic[SideT]):
    """Base of every order type. Use a side-bound subclass: ``GTCOrder[Buy]``."""

    side: ClassVar[str] = ""
    ccxt_type: ClassVar[str] = ""
    time_in_force: ClassVar[str | None] = None
    post_only: ClassVar[bool] = False
    # Market, IOC and FOK orders end at once on the exchange; `call` waits for them to close.
    immediate: ClassVar[bool] = False
    # Protective orders (DESIGN §10): "stop" or "take_profit"; they rest until the price
    # crosses their `trigger_price`, then execute as a market order, or as a limit order when
    # given a price.
    trigger: ClassVar[str | None] = None
    _bound: ClassVar[dict[tuple[type, type], type]] = {}

    def __class_getitem__(cls, side: Any) -> Any:
        if isinstance(side, type):  # hashable: the cache can answer
            bound = OrderType._bound.get((cls, side))
            if bound is not None:  # a strategy writes MarketOrder[Buy] on every order
                return bound
        if isinstance(side, TypeVar):  # subclass definitions: defer to Generic
            return super().__class_getitem__(side)  # type: ignore[misc]
        if not (isinstance(side, type) and issubclass(side, Side) and side is not Side):
            raise ConfigError(f"{cls.__name__}[{side!r}]: the side must be Buy or Sell")
        if cls.side:
            raise ConfigError(f"{cls.__name__} is already bound to a side")
        bound = type(f"{cls.__name__}[{side.__name__}]", (cls,), {"side": side.name})
        bound.__module__ = cls.__module__
        OrderType._bound[(cls, side)] = bound
        return bound

    def __init__(self) -> None:
        raise TypeError(
            f"{type(self).__name__} is passed to call() as a class, not instantiated: "
            f"call(s, ai, {type(self).__name__}, amount=...)"
        )


class MarketOrder(OrderType[SideT]):
    ccxt_type = "market"
    immediate = True


class GTCOrder(OrderType[SideT]):
    ccxt_type = "limit"
    time_in_force = "GTC"


class IOCOrder(OrderType[SideT]):
    ccxt_type = "limit"
    time_in_force = "IOC"
    immediate = True


class FOKOrder(OrderType[SideT]):
    ccxt_type = "limit"
    time_in_force = "FOK"
    immediate = True


class PostOnlyOrder(OrderType[SideT]):
    ccxt_type = "limit"
    time_in_force = "PO"
    post_only = True


class StopOrder(OrderType[SideT]):
    """A stop: ``StopOrder[Sell]`` with ``trigger_price=`` below the market sells once the price
    falls to it (a buy stop sits above and buys once it rises). Stop-market without ``price=``,
    stop-limit with it."""

    ccxt_type = "market"
    trigger = "stop"


class TakeProfitOrder(OrderType[SideT]):
    """A take-profit: ``TakeProfitOrder[Sell]`` with ``trigger_price=`` above the market sells
    once the price rises to it (a buy take-profit sits below). Market without ``price=``,
    limit with it."""

    ccxt_type = "market"
    trigger = "take_profit"


ORDER_TYPES: dict[str, type[OrderType[Any]]] = {
    t.__name__: t
    for t in (
        MarketOrder,
        GTCOrder,
        IOCOrder,
        FOKOrder,
        PostOnlyOrder,
        StopOrder,
        TakeProfitOrder,
    )
}

# The two legs of a bracket (DESIGN §10) take the entry's client id with these suffixes, so
# the one-cancels-other link is known from the ids alone.
LEG_SUFFIXES = {"stop": "-sl", "take_profit": "-tp"}


def leg_client_id(entry_client_id: str, trigger: str) -> str:
    """The client id of the bracket leg `trigger` ("stop" or "take_profit") of an entry."""
    return entry_client_id + LEG_SUFFIXES[trigger]


def client_seq_of(client_id: str) -> int | None:
    """The sequence number in a vigil client id (``vg<tag>-<asset>-<seq>``, or a bracket leg's
    ``...-<seq>-sl``), or None for another id."""
    parts = str(client_id).split("-")
    if len(parts) > 1 and "-" + parts[-1] in LEG_SUFFIXES.values():
        parts.pop()
    return int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else None


def falls_to(side: str, trigger: str | None) -> bool:
    """Whether a protective order triggers on a fall to its price (a sell stop, a buy
    take-profit) rather than a rise (a buy stop, a sell take-profit)."""
    return (side == "sell") == (trigger == "stop")


def order_type_of(
    ccxt_type: str,
    time_in_force: str | None,
    post_only: bool,
    side: str,
    trigger: str | None = None,
) -> type:
    """The bound order type class for a ccxt order's type fields (`trigger` for a protective
    order: "stop" or "take_profit")."""
    if trigger == "stop":
        base: type[OrderType[Any]] = StopOrder
    elif trigger == "take_profit":
        base = TakeProfitOrder
    elif ccxt_type == "market":
        base = MarketOrder
    elif post_only or time_in_force == "PO":
        base = PostOnlyOrder
    elif time_in_force == "IOC":
        base = IOCOrder
    elif time_in_force == "FOK":
        base = FOKOrder
    else:
        base = GTCOrder
    return cast(type, cast(Any, base)[side_of(side)])


OPEN = "open"
CLOSED = "closed"
CANCELED = "canceled"
EXPIRED = "expired"
REJECTED = "rejected"
FINAL_STATUSES = frozenset({CLOSED, CANCELED, EXPIRED, REJECTED})


def _fmt_ms(ms: int) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


class Order(msgspec.Struct, eq=False):
    """An order as the strategy knows it. Changed only by the engine.

    A msgspec struct, as `Trade` and the engine's events are: built in C, where a dataclass's
    generated __init__ costs a microsecond on every order of a backtest (measured).

    `committed` is what the open remainder reserves: quote currency for a spot buy, base
    currency for a spot sell, margin (settle currency) for a derivative order.
    """

    symbol: str
    client_id: str
    side: str
    type: type
    amount: float
    price: float | None
    timestamp: int  # ms, when created
    id: str | None = None
    filled: float = 0.0
    status: str = OPEN
    committed: float = 0.0
    reduce_only: bool = False
    fills: list[Trade] = msgspec.field(default_factory=list)
    trigger_price: float | None = None  # a protective order's (StopOrder, TakeProfitOrder)

    @property
    def remaining(self) -> float:
        return max(self.amount - self.filled, 0.0)

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    @property
    def average(self) -> float | None:
        if not self.fills:
            return None
        value = sum(t.amount * t.price for t in self.fills)
        return value / sum(t.amount for t in self.fills)

    def __repr__(self) -> str:
        price = "market" if self.price is None else f"@{self.price:g}"
        if self.trigger_price is not None:
            price += f" trigger {self.trigger_price:g}"
        return (
            f"<Order {self.type.__name__} {self.symbol} {self.filled:g}/{self.amount:g} {price} "
            f"{self.status} cid={self.client_id}>"
        )


class Trade(msgspec.Struct, frozen=True, eq=False):
    """One fill of an order. `value` is amount × price × contract size, in the quote currency."""

    id: str
    order: Order
    timestamp: int  # ms
    amount: float
    price: float
    value: float
    fee: float
    fee_currency: str
    leverage: float = 1.0
    taker: bool = True

    @property
    def symbol(self) -> str:
        return self.order.symbol

    @property
    def side(self) -> str:
        return self.order.side

    @property
    def time(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.timestamp / 1000, _dt.UTC)

    def __repr__(self) -> str:
        return (
            f"<Trade {self.side} {self.amount:g} {self.symbol} @{self.price:g} "
            f"fee={self.fee:g} {self.fee_currency} {_fmt_ms(self.timestamp)}>"
        )


@dataclass(frozen=True, slots=True)
class CancelOrders:
    """`call(s, ai, CancelOrders())` cancels the asset's open orders and returns True when none
    remain. `side` restricts to buys or sells, `ids` to given client or exchange ids. With
    `confirm=True` the exchange is asked even when no order is open locally."""

    side: type[Side] | None = None
    ids: tuple[str, ...] = ()
    confirm: bool = False


@dataclass(frozen=True, slots=True)
class UpdateLeverage:
    """`call(s, ai, UpdateLeverage(5.0))` sets the asset's leverage; refused (False) while a
    position or an order is open."""

    leverage: float


@dataclass(frozen=True, slots=True)
class PositionClose:
    """`call(s, ai, PositionClose())` cancels the asset's orders and closes its position with a
    reduce-only market order. Returns the closing Trade, or None if there was nothing to close."""
