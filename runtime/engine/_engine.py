"""The engine: the only code that changes strategy state.

State changes only through `apply(state, event)`. Live watchers, the simulated exchange and
trace replay all produce the same events and feed them here, which is why replay equals live.
The engine is synchronous and does no I/O.

Accounting rules:

* **Spot.** A buy fill adds `amount` base and removes `amount × price` quote; a sell does the
  reverse. The fee is taken from its own currency's balance. An open buy commits quote
  (`amount × price × (1 + taker)`), an open sell commits base (`amount`); a fill releases the
  commitment pro rata, and the order's end releases what is left.
* **Reports.** Balances and positions move only by the exchange's reports, in every mode: a
  `BalanceUpdated` or `PositionUpdated` sets the numbers outright, and one older than the
  newest applied is ignored. Fills move orders, commitments and the trade history. The
  simulated exchange reports its ledger after each fill as a real exchange does, so Sim, Paper
  and Live share this one accounting path.
* **The exchange's ledger.** `settle_fill` is the exchange's side of a fill: how it moves the
  account's balances and positions. The simulated exchange keeps its ledger with it, and replay
  uses it for traces written before balance reports (their runs lack
  ``"account_from_reports"``).
* **Margin** (isolated, one-way). A fill in the position's direction grows it at the weighted
  entry price and moves `size × price / leverage` into position margin; a fill against it
  realises `±size × (price − entry)` into the settle balance and releases margin pro rata; a fill
  larger than the position closes it and opens the other side with the rest. Settle-currency
  `committed` = open-order margin + position margins.
"""

from __future__ import annotations

import math
from typing import Any, cast

import msgspec

from runtime._errors import VigilError
from runtime.model._assets import LONG, SHORT, AssetInstance, Balance, Position
from runtime.model._orders import (
    CANCELED,
    CLOSED,
    EXPIRED,
    OPEN,
    ORDER_TYPES,
    REJECTED,
    Order,
    Trade,
    side_of,
)


class EngineError(VigilError):
    """An event cannot be applied to this state (unknown market, or an unknown order)."""


# Events. Plain frozen values: they are what the trace stores and what replay feeds back.
# msgspec structs rather than frozen dataclasses: built in C (a frozen dataclass's __init__
# sets each field through object.__setattr__: 1.3 µs for OrderCreated against 0.2 µs, and
# a simulated order builds five events; measured).


class OrderCreated(msgspec.Struct, frozen=True):
    symbol: str
    client_id: str
    side: str
    order_type: str  # a name in ORDER_TYPES, e.g. "GTCOrder"
    amount: float
    price: float | None
    timestamp: int
    id: str | None = None
    reduce_only: bool = False
    # Price used to size the commitment of a market order (the last price when it was sent).
    reference_price: float | None = None
    # A protective order's trigger (DESIGN §10). Such an order commits nothing while it waits:
    # the exchange checks the funds when it triggers, and a bracket's two legs share one
    # holding (only one of them can fill).
    trigger_price: float | None = None


class OrderAcknowledged(msgspec.Struct, frozen=True):
    """The exchange's id for an order we created (Live: the ack may trail the first update)."""

    symbol: str
    client_id: str
    id: str
    timestamp: int


class OrderFilled(msgspec.Struct, frozen=True):
    symbol: str
    client_id: str
    trade_id: str
    timestamp: int
    amount: float
    price: float
    fee: float
    fee_currency: str
    taker: bool = True


class OrderCancelled(msgspec.Struct, frozen=True):
    symbol: str
    client_id: str
    timestamp: int
    status: str = CANCELED  # or EXPIRED (IOC/FOK remainder, post-only that would cross)
    reason: str = ""


class OrderRejected(msgspec.Struct, frozen=True):
    symbol: str
    client_id: str
    timestamp: int
    reason: str


class BalanceUpdated(msgspec.Struct, frozen=True):
    """The exchange's total for a currency: authoritative, overwrites the local total."""

    currency: str
    total: float
    timestamp: int


class PositionUpdated(msgspec.Struct, frozen=True):
    """The exchange's view of a position; `contracts == 0` means flat."""

    symbol: str
    side: str
    contracts: float
    entry_price: float
    leverage: float
    margin: float
    timestamp: int


class LeverageChanged(msgspec.Struct, frozen=True):
    symbol: str
    leverage: float
    timestamp: int


class Halted(msgspec.Struct, frozen=True):
    """Trading turned off (a breached limit, repeated strategy errors, or `halt`): orders are
    refused until `Resumed`. State, so a restart replays into the same halt."""

    reason: str
    timestamp: int


class Resumed(msgspec.Struct, frozen=True):
    """Trading turned back on by `resume`."""

    timestamp: int


class FundingPaid(msgspec.Struct, frozen=True):
    """Funding settled on a perpetual position at a funding time: `amount` of the settle
    currency paid (negative: received) = `contracts` (signed: long positive) × contract size ×
    `price` × `rate`. The strategy's state keeps it as history (`State.funding`); the balance
    moves by the exchange's report, as for fills (`settle_funding` is the ledger's side)."""

    symbol: str
    timestamp: int
    rate: float
    price: float
    contracts: float
    amount: float


Event = (
    OrderCreated
    | OrderAcknowledged
    | OrderFilled
    | OrderCancelled
    | OrderRejected
    | BalanceUpdated
    | PositionUpdated
    | LeverageChanged
    | Halted
    | Resumed
    | FundingPaid
)
EVENT_TYPES: dict[str, type] = {
    t.__name__: t
    for t in (
        OrderCreated,
        OrderAcknowledged,
        OrderFilled,
        OrderCancelled,
        OrderRejected,
        BalanceUpdated,
        PositionUpdated,
        LeverageChanged,
        Halted,
        Resumed,
        FundingPaid,
    )
}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {
    t: tuple(f.name for f in msgspec.structs.fields(t)) for t in EVENT_TYPES.values()
}


class State:
    """Everything the engine owns for one strategy."""

    def __init__(
        self, assets: dict[str, AssetInstance], balances: dict[str, Balance], margin: str | None
    ) -> None:
        self.assets = assets
        self.balances = balances
        self.margin = margin
        self.orders: dict[str, Order] = {}  # client id -> order, open and closed
        self.orders_by_id: dict[str, Order] = {}  # exchange id -> order
        self.trade_ids: set[str] = set()
        # Times (ms) of the newest balance / position reports: an older one arriving late
        # must not overwrite it.
        self.balance_as_of: dict[str, int] = {}
        self.position_as_of: dict[str, int] = {}
        self.funding: list[FundingPaid] = []  # funding settled on positions, oldest first
        self.balance_reports = 0  # reports applied so far (Live waits on them)
        self.position_reports = 0
        self.halted: str | None = None  # why trading is off (see `Halted`), or None

    def balance(self, currency: str) -> Balance:
        b = self.balances.get(currency)
        if b is None:
            b = self.balances[currency] = Balance(currency)
        return b

    def asset(self, symbol: str) -> AssetInstance:
        try:
            return self.assets[symbol]
        except KeyError:
            raise EngineError(
                f"event for {symbol!r}, which is not in the universe ({', '.join(self.assets)})"
            ) from None

    def order(self, client_id: str) -> Order:
        try:
            return self.orders[client_id]
        except KeyError:
            raise EngineError(f"event for unknown order client id {client_id!r}") from None


def clean(quantity: float) -> float:
    """`quantity` without float noise (0.45999999999999996 -> 0.46): exchange quantities are
    decimals, and sums of their float forms drift below a step."""
    cleaned = _CLEANED.get(quantity)
    if cleaned is None:
        cleaned = float(f"{quantity:.12g}")
        # Not zero (0.0 and -0.0 are one key) nor NaN (never equal to itself).
        if len(_CLEANED) < 4096 and quantity and quantity == quantity:
            _CLEANED[quantity] = cleaned
    return cleaned


# A strategy's fills repeat the same few amounts: a dict lookup is a seventh of the formatting.
_CLEANED: dict[float, float] = {}


# Tolerance on amounts: exchanges report filled amounts in decimal strings we parse as floats.
def _eps(amount: float) -> float:
    return 1e-9 * max(1.0, abs(amount))


def commitment(ai: AssetInstance, side: str, amount: float, price: float) -> float:
    """What an open order reserves: quote with fees for a spot buy, base for a spot sell,
    margin at the asset's leverage for a derivative."""
    if ai.contract:
        return amount * ai.contract_size * price / ai.leverage
    if side == "buy":
        return amount * price * (1.0 + ai.taker)
    return amount


def commit_currency(ai: AssetInstance, side: str) -> str:
    """The currency an open order on `ai` reserves (see `commitment`)."""
    if ai.contract:
        return ai.settle
    return ai.quote if side == "buy" else ai.base


def _release(state: State, ai: AssetInstance, order: Order, value: float) -> None:
    value = min(value, order.committed)
    if value <= 0:
        return
    order.committed -= value
    b = state.balance(commit_currency(ai, order.side))
    b.committed = max(b.committed - value, 0.0)


def _close_order(state: State, ai: AssetInstance, order: Order, status: str) -> None:
    order.status = status
    _release(state, ai, order, order.committed)
    order.committed = 0.0
    ai.open_orders.pop(order.client_id, None)


_BOUND: dict[tuple[str, str], type] = {}


def _bound_type(name: str, side: str) -> type:
    bound = _BOUND.get((name, side))
    if bound is None:
        bound = _BOUND[(name, side)] = cast(Any, ORDER_TYPES[name])[side_of(side)]
    return bound


def _apply_created(state: State, e: OrderCreated) -> Order:
    ai = state.assets.get(e.symbol) or state.asset(e.symbol)  # the second raises
    client_id = e.client_id
    known = state.orders.get(client_id)
    if known is not None:  # a second report of the same order: idempotent
        if e.id and not known.id:
            known.id = e.id
            state.orders_by_id[e.id] = known
        return known
    order_type = _BOUND.get((e.order_type, e.side)) or _bound_type(e.order_type, e.side)
    order = Order(
        e.symbol,
        client_id,
        e.side,
        order_type,
        e.amount,
        e.price,
        e.timestamp,
        e.id,
        reduce_only=e.reduce_only,
        trigger_price=e.trigger_price,
    )
    state.orders[client_id] = order
    if e.id:
        state.orders_by_id[e.id] = order
    ai.open_orders[client_id] = order
    if not e.reduce_only and e.trigger_price is None:
        # Only the event's own fields: replay must reach the same numbers without market data.
        basis = e.price if e.price is not None else (e.reference_price or 0.0)
        if not math.isfinite(basis):
            basis = 0.0  # no price to value it at: a NaN here would poison the balance for good
        value = commitment(ai, e.side, e.amount, basis)
        order.committed = value
        state.balance(commit_currency(ai, e.side)).committed += value
    return order


def _apply_ack(state: State, e: OrderAcknowledged) -> Order:
    order = state.order(e.client_id)
    if order.id != e.id:
        order.id = e.id
        state.orders_by_id[e.id] = order
    return order


def _spot_fill(state: State, ai: AssetInstance, order: Order, e: OrderFilled) -> None:
    value = e.amount * e.price
    sign = 1.0 if order.side == "buy" else -1.0
    base = state.balance(ai.base)
    base.total = clean(base.total + sign * e.amount)
    state.balance(ai.quote).total -= sign * value


def _grow(state: State, ai: AssetInstance, side: str, size: float, e: OrderFilled) -> None:
    margin = size * ai.contract_size * e.price / ai.leverage
    pos = ai.long if side == LONG else ai.short
    if pos is None:
        pos = Position(ai, side, size, e.price, ai.leverage, margin, e.timestamp)
        if side == LONG:
            ai.long = pos
        else:
            ai.short = pos
    else:
        total = clean(pos.contracts + size)
        pos.entry_price = (pos.contracts * pos.entry_price + size * e.price) / total
        pos.contracts = total
        pos.margin += margin
        pos.timestamp = e.timestamp
    state.balance(ai.settle).committed += margin


def _shrink(state: State, ai: AssetInstance, pos: Position, size: float, e: OrderFilled) -> None:
    sign = 1.0 if pos.side == LONG else -1.0
    state.balance(ai.settle).total += sign * size * ai.contract_size * (e.price - pos.entry_price)
    released = pos.margin * size / pos.contracts
    b = state.balance(ai.settle)
    b.committed = max(b.committed - released, 0.0)
    pos.margin -= released
    pos.contracts = clean(pos.contracts - size)
    pos.timestamp = e.timestamp
    if pos.contracts <= _eps(size):
        b.committed = max(b.committed - pos.margin, 0.0)
        if pos.side == LONG:
            ai.long = None
        else:
            ai.short = None


def _margin_fill(state: State, ai: AssetInstance, order: Order, e: OrderFilled) -> None:
    size = e.amount
    opposite = ai.short if order.side == "buy" else ai.long
    if opposite is not None:
        closing = min(size, opposite.contracts)
        _shrink(state, ai, opposite, closing, e)
        size -= closing
    if size > _eps(e.amount) and not order.reduce_only:
        _grow(state, ai, LONG if order.side == "buy" else SHORT, size, e)


def _apply_filled(state: State, e: OrderFilled) -> Trade | None:
    trade_ids = state.trade_ids
    if e.trade_id in trade_ids:
        return None  # the same fill reported twice (websocket and REST)
    ai = state.assets.get(e.symbol) or state.asset(e.symbol)  # the second raises
    order = state.orders.get(e.client_id) or state.order(e.client_id)
    trade_ids.add(e.trade_id)
    amount = e.amount
    remaining_before = order.amount - order.filled  # Order.remaining, inlined (every fill)
    if order.committed > 0 and remaining_before > 0:
        _release(state, ai, order, order.committed * min(amount / remaining_before, 1.0))
    order.filled = filled = clean(order.filled + amount)
    contract = ai.contract
    trade = Trade(
        e.trade_id,
        order,
        e.timestamp,
        amount,
        e.price,
        amount * e.price * ai.contract_size,
        e.fee,
        e.fee_currency,
        ai.leverage if contract else 1.0,
        e.taker,
    )
    order.fills.append(trade)
    ai.trades.append(trade)
    if order.status == OPEN and order.amount - filled <= _eps(order.amount):
        _close_order(state, ai, order, CLOSED)
    return trade


def settle_fill(state: State, e: OrderFilled) -> None:
    """The exchange's side of a fill that `apply` just recorded: move the balances (spot) or
    the position and realised PnL (margin), and charge the fee. Only a ledger calls this: the
    strategy's own state learns these numbers from the exchange's reports."""
    ai = state.asset(e.symbol)
    order = state.order(e.client_id)
    if ai.contract:
        _margin_fill(state, ai, order, e)
    else:
        _spot_fill(state, ai, order, e)
    if e.fee:
        state.balance(e.fee_currency).total -= e.fee


def _apply_cancelled(state: State, e: OrderCancelled) -> Order:
    order = state.order(e.client_id)
    if order.status == OPEN:
        _close_order(state, state.asset(e.symbol), order, e.status if e.status else CANCELED)
    return order


def _apply_rejected(state: State, e: OrderRejected) -> Order:
    order = state.order(e.client_id)
    if order.status == OPEN:
        _close_order(state, state.asset(e.symbol), order, REJECTED)
    return order


def _apply_balance(state: State, e: BalanceUpdated) -> Balance:
    b = state.balance(e.currency)
    if e.timestamp < state.balance_as_of.get(e.currency, -1):
        return b  # an older report than the one applied: keep the newer
    b.total = e.total
    state.balance_as_of[e.currency] = e.timestamp
    state.balance_reports += 1
    return b


def _apply_position(state: State, e: PositionUpdated) -> Position | None:
    ai = state.asset(e.symbol)
    pos = ai.long if e.side == LONG else ai.short
    if e.timestamp < state.position_as_of.get(e.symbol, -1):
        return pos  # older than the report already applied
    state.position_as_of[e.symbol] = e.timestamp
    state.position_reports += 1
    b = state.balance(ai.settle)
    if pos is not None:
        b.committed = max(b.committed - pos.margin, 0.0)
    if e.contracts <= 0:
        new = None
    else:
        new = Position(ai, e.side, e.contracts, e.entry_price, e.leverage, e.margin, e.timestamp)
        b.committed += e.margin
    if e.side == LONG:
        ai.long = new
    else:
        ai.short = new
    return new


def _apply_leverage(state: State, e: LeverageChanged) -> None:
    state.asset(e.symbol).leverage = e.leverage


def _apply_halted(state: State, e: Halted) -> None:
    state.halted = e.reason


def _apply_resumed(state: State, e: Resumed) -> None:
    state.halted = None


def _apply_funding(state: State, e: FundingPaid) -> FundingPaid:
    state.asset(e.symbol)  # an unknown market is refused like any other event's
    if not any(f.symbol == e.symbol and f.timestamp == e.timestamp for f in state.funding[-8:]):
        state.funding.append(e)  # a funding time is settled once per market
    return e


def settle_funding(state: State, e: FundingPaid) -> None:
    """The exchange's side of a funding payment: the settle balance pays `amount`."""
    state.balance(state.asset(e.symbol).settle).total -= e.amount


_APPLY: dict[type, Any] = {
    OrderCreated: _apply_created,
    OrderAcknowledged: _apply_ack,
    OrderFilled: _apply_filled,
    OrderCancelled: _apply_cancelled,
    OrderRejected: _apply_rejected,
    BalanceUpdated: _apply_balance,
    PositionUpdated: _apply_position,
    LeverageChanged: _apply_leverage,
    Halted: _apply_halted,
    Resumed: _apply_resumed,
    FundingPaid: _apply_funding,
}


def apply(state: State, event: Event) -> Any:
    """Apply one event. Returns the `Trade` for a new fill (None for a duplicate), the `Order`
    for order events, the `Balance` or `Position` for account events."""
    return _APPLY[type(event)](state, event)


def digest(state: State, event: Event) -> dict[str, Any]:
    """The state an event leaves behind, where it touched it: balance totals and commitments
    of its currencies, the order's progress and the asset's position. Traces store it with each
    event so replay can name the first event after which the state differs."""
    return _DIGESTS[type(event)](state, event)


# One digest function per event class: this runs on every event of a traced run, and the
# class decides which parts exist (measured: half the cost of one generic function).
def _order_digest(state: State, e: Any, fee_currency: str | None = None) -> dict[str, Any]:
    ai = state.assets.get(e.symbol)
    if ai is None:
        return {"b": {}}
    out = _position_digest(ai)
    order = state.orders.get(e.client_id) if e.client_id else None
    if order is not None:
        out["o"] = [order.filled, order.status, order.committed]
    currencies = _asset_currencies(ai)
    if fee_currency is not None and fee_currency not in currencies:
        currencies = tuple(sorted((*currencies, fee_currency)))
    out["b"] = _balances_digest(state.balances, currencies)
    return out


def _fill_digest(state: State, e: OrderFilled) -> dict[str, Any]:
    return _order_digest(state, e, e.fee_currency)


def _market_digest(state: State, e: Any) -> dict[str, Any]:
    ai = state.assets.get(e.symbol)
    if ai is None:
        return {"b": {}}
    out = _position_digest(ai)
    out["b"] = _balances_digest(state.balances, _asset_currencies(ai))
    return out


def _balance_digest(state: State, e: BalanceUpdated) -> dict[str, Any]:
    b = state.balances.get(e.currency)
    return {"b": {e.currency: [b.total, b.committed]} if b is not None else {}}


def _no_digest(state: State, e: Any) -> dict[str, Any]:
    return {"b": {}}


def _position_digest(ai: AssetInstance) -> dict[str, Any]:
    if not ai.contract:
        return {}
    long, short = ai.long, ai.short
    return {"p": [long.contracts if long else 0.0, short.contracts if short else 0.0]}


def _balances_digest(
    balances: dict[str, Balance], currencies: tuple[str, ...]
) -> dict[str, list[float]]:
    out = {}
    for c in currencies:
        b = balances.get(c)
        if b is not None:
            out[c] = [b.total, b.committed]
    return out


_DIGESTS: dict[type, Any] = {
    OrderCreated: _order_digest,
    OrderAcknowledged: _order_digest,
    OrderFilled: _fill_digest,
    OrderCancelled: _order_digest,
    OrderRejected: _order_digest,
    BalanceUpdated: _balance_digest,
    PositionUpdated: _market_digest,
    LeverageChanged: _market_digest,
    Halted: _no_digest,
    Resumed: _no_digest,
    FundingPaid: _market_digest,
}


def _asset_currencies(ai: AssetInstance) -> tuple[str, ...]:
    cached = _CURRENCIES.get(ai.symbol)
    if cached is None:
        cached = _CURRENCIES[ai.symbol] = tuple(sorted({ai.base, ai.quote, ai.settle}))
    return cached


_CURRENCIES: dict[str, tuple[str, ...]] = {}


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event as a plain dict with its type name under "event" (for traces)."""
    out: dict[str, Any] = {"event": type(event).__name__}
    out.update(msgspec.structs.asdict(event))
    return out


def event_from_dict(payload: dict[str, Any]) -> Event:
    """The event back from `event_to_dict`'s dict (extra keys such as "raw" are ignored)."""
    cls = EVENT_TYPES[payload["event"]]
    try:
        return cast(Event, cls(*[payload[k] for k in _FIELD_NAMES[cls]]))
    except KeyError:  # a payload without an optional field: let the defaults fill it
        names = _FIELD_NAMES[cls]
        return cast(Event, cls(**{k: payload[k] for k in names if k in payload}))


__all__ = [
    "CANCELED",
    "EXPIRED",
    "BalanceUpdated",
    "EngineError",
    "FundingPaid",
    "Halted",
    "LeverageChanged",
    "OrderAcknowledged",
    "OrderCancelled",
    "OrderCreated",
    "OrderFilled",
    "OrderRejected",
    "PositionUpdated",
    "Resumed",
    "State",
    "apply",
    "settle_fill",
    "settle_funding",
]
