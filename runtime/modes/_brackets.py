"""Protective orders (DESIGN §10): the trigger checks, and brackets with their
one-cancels-other link.

* **Trigger checks.** A sell stop's trigger must be below the last price and a sell
  take-profit's above it; a buy stop's above and a buy take-profit's below. Each refusal names
  its rule (``sell_stop_below``, ``sell_take_profit_above``, ``buy_stop_above``,
  ``buy_take_profit_below``), the trigger and the price.
* **Brackets.** ``stop_loss=`` / ``take_profit=`` on an entry record a BRACKET (entry client
  id, triggers, the legs' client ids) before the entry is sent. Once the entry has filled and
  ended (a market order at once; a resting one when it closes), its legs are placed on the
  opposite side, sized to the fill, reduce-only on margin, with client ids derived from the
  entry's (``<entry>-sl``, ``<entry>-tp``). A fill of either leg cancels the other: the
  exchange has no OCO for two separate orders, so it is emulated here.
* **Restarts.** The BRACKET records are read back from the trace; legs already on the
  exchange were adopted by the start-up sync (their ids are ours), so only the missing legs of
  a filled entry are placed (a crash between the entry's fill and the legs), and a leg that
  filled while the strategy was down has its sibling cancelled.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from runtime._errors import OrderCheckFailed
from runtime.model._assets import AssetInstance
from runtime.model._orders import (
    Buy,
    Order,
    Sell,
    StopOrder,
    TakeProfitOrder,
    Trade,
    falls_to,
    leg_client_id,
)
from traces import Kind, open_view

if TYPE_CHECKING:
    from runtime.engine._runtime import Runtime

# The ccxt unified param that carries each kind of trigger (Binance maps them to STOP_LOSS /
# TAKE_PROFIT on spot and STOP_MARKET / TAKE_PROFIT_MARKET on USDⓈ-M, *_LIMIT / STOP /
# TAKE_PROFIT with a price).
TRIGGER_PARAMS = {"stop": "stopLossPrice", "take_profit": "takeProfitPrice"}
_LEG_TYPES: dict[str, Any] = {"stop": StopOrder, "take_profit": TakeProfitOrder}
_BLOCK = 65_536  # trace rows read at a time when looking for brackets


def _n(x: float) -> str:
    return f"{x:.12f}".rstrip("0").rstrip(".") if math.isfinite(x) else repr(x)


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_trigger(
    ai: AssetInstance,
    side: str,
    trigger: str,
    trigger_price: Any,
    what: str = "trigger_price",
    *,
    direction: bool = True,
) -> float | OrderCheckFailed:
    """The trigger rounded to the tick, or the refusal (module docstring). Without
    `direction` (``skipchecks``) only what no order may be sent without is checked."""
    sym = ai.symbol
    kind = "stop" if trigger == "stop" else "take-profit"
    if trigger_price is None:
        return OrderCheckFailed(
            "trigger_price_required", f"a {kind} order needs {what}= (the trigger) for {sym}"
        )
    if not _is_number(trigger_price) or not math.isfinite(trigger_price) or trigger_price <= 0:
        return OrderCheckFailed(
            "trigger_price_positive",
            f"{what} {trigger_price!r} must be a finite positive number for {sym}",
        )
    rounded = ai.round_price(float(trigger_price))
    if not direction:
        return rounded if rounded > 0 else float(trigger_price)
    last = ai.price
    if not math.isfinite(last) or last <= 0:
        return OrderCheckFailed("no_price", f"no market price known yet for {sym}; wait for data")
    below = falls_to(side, trigger)
    if rounded <= 0 or (rounded >= last if below else rounded <= last):
        where = "below" if below else "above"
        return OrderCheckFailed(
            f"{side}_{trigger}_{where}",
            f"a {side} {kind}'s trigger must be {where} the last price: {what} {_n(rounded)} is "
            f"not {where} {_n(last)} for {sym}",
        )
    return rounded


@dataclass(frozen=True, slots=True)
class Bracket:
    """An entry's protective orders: what BRACKET records hold."""

    entry: str  # the entry's client id
    symbol: str
    side: str  # the legs' side: the entry's opposite
    stop_loss: float | None
    take_profit: float | None
    reduce_only: bool

    @property
    def legs(self) -> dict[str, str]:
        """Trigger kind -> the leg's client id, for the legs this bracket has."""
        out = {}
        if self.stop_loss is not None:
            out["stop"] = leg_client_id(self.entry, "stop")
        if self.take_profit is not None:
            out["take_profit"] = leg_client_id(self.entry, "take_profit")
        return out

    def payload(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "symbol": self.symbol,
            "side": self.side,
            "stop_loss": self.stop_loss,
            "take_profit": self.take_profit,
            "reduce_only": self.reduce_only,
            "legs": self.legs,
        }

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> Bracket:
        return cls(
            p["entry"], p["symbol"], p["side"], p["stop_loss"], p["take_profit"], p["reduce_only"]
        )


def check_protective(
    ai: AssetInstance,
    order_type: Any,
    trigger_price: Any,
    stop_loss: Any,
    take_profit: Any,
    *,
    directions: bool = True,
) -> tuple[float | None, tuple[float | None, float | None] | None] | OrderCheckFailed:
    """`call`'s protective keywords checked: (trigger price, (stop-loss, take-profit) of a
    bracket), or the refusal. `trigger_price=` goes with StopOrder and TakeProfitOrder only;
    `stop_loss=` / `take_profit=` with entry orders only."""
    name = order_type.__name__
    trigger = order_type.trigger
    if trigger is not None:
        if stop_loss is not None or take_profit is not None:
            return OrderCheckFailed(
                "bracket_on_trigger",
                f"stop_loss= and take_profit= go on an entry order, not on {name} for "
                f"{ai.symbol}: place the protective orders themselves instead",
            )
        checked = check_trigger(ai, order_type.side, trigger, trigger_price, direction=directions)
        return checked if isinstance(checked, OrderCheckFailed) else (checked, None)
    if trigger_price is not None:
        return OrderCheckFailed(
            "trigger_price_unused",
            f"trigger_price= is for StopOrder and TakeProfitOrder; {name} takes none "
            f"(got {trigger_price!r} for {ai.symbol})",
        )
    if stop_loss is None and take_profit is None:
        return None, None
    bracket = check_bracket(ai, order_type.side, stop_loss, take_profit, directions=directions)
    return bracket if isinstance(bracket, OrderCheckFailed) else (None, bracket)


def check_bracket(
    ai: AssetInstance,
    entry_side: str,
    stop_loss: Any,
    take_profit: Any,
    *,
    directions: bool = True,
) -> tuple[float | None, float | None] | OrderCheckFailed:
    """The rounded stop-loss and take-profit of an entry on `entry_side`, or the refusal: the
    same rules as for the legs placed alone, against the price now."""
    side = "sell" if entry_side == "buy" else "buy"
    out: list[float | None] = []
    for trigger, value, what in (
        ("stop", stop_loss, "stop_loss"),
        ("take_profit", take_profit, "take_profit"),
    ):
        if value is None:
            out.append(None)
            continue
        checked = check_trigger(ai, side, trigger, value, what, direction=directions)
        if isinstance(checked, OrderCheckFailed):
            return checked
        out.append(checked)
    return out[0], out[1]


# How a leg is sent: `call`'s own placement (`_dispatch`), given the leg's order type, amount,
# limit price, trigger price, reduce-only flag and client id; and how orders are cancelled.
PlaceLeg = Callable[[AssetInstance, Any, float, float, bool, str], Awaitable[Any]]
CancelOrders = Callable[[list[Order]], Awaitable[bool]]
# Both legs as one exchange-linked OCO order list, where the venue has one (Binance spot):
# True once handled, False to place them one by one.
PlacePair = Callable[[AssetInstance, "Bracket", float], Awaitable[bool]]


class Brackets:
    """The brackets of one strategy and their one-cancels-other link (module docstring)."""

    def __init__(
        self,
        rt: Runtime,
        place: PlaceLeg,
        cancel: CancelOrders,
        place_pair: PlacePair | None = None,
    ) -> None:
        self.rt = rt
        self._place = place
        self._cancel = cancel
        self._place_pair = place_pair
        self.by_entry: dict[str, Bracket] = {}
        self.by_leg: dict[str, Bracket] = {}
        # Entries whose legs are being (or were) placed, set once they are: a second caller
        # (the `call` of the entry and a watcher's fill hook) waits for the first.
        self._placing: dict[str, trio.Event] = {}

    def add(self, bracket: Bracket) -> None:
        self.by_entry[bracket.entry] = bracket
        for leg in bracket.legs.values():
            self.by_leg[leg] = bracket

    def record(self, bracket: Bracket) -> None:
        """Record the bracket before its entry is sent (durable: a restart needs it)."""
        self.add(bracket)
        self.rt.record(Kind.BRACKET, bracket.payload(), asset=bracket.symbol, durable=True)

    async def after_fill(self, trade: Trade) -> None:
        """Called for every new fill before `on_trade`: protect a filled entry, or cancel the
        other leg of a leg that filled."""
        client_id = trade.order.client_id
        bracket = self.by_entry.get(client_id)
        if bracket is not None:
            await self.protect(bracket)
            return
        bracket = self.by_leg.get(client_id)
        if bracket is not None:
            await self._cancel_others(bracket, client_id)

    async def ended(self, orders: list[Order]) -> None:
        """Protect entries among `orders` that ended partly filled (cancelled by the strategy):
        their legs are sized to what filled."""
        for order in orders:
            bracket = self.by_entry.get(order.client_id)
            if bracket is not None and not order.is_open and order.fills:
                await self.protect(bracket)

    async def sweep(self) -> None:
        """Bring every bracket in line with the state (after a restart's sync)."""
        for bracket in list(self.by_entry.values()):
            await self.protect(bracket)
            for leg in bracket.legs.values():
                order = self.rt.state.orders.get(leg)
                if order is not None and order.fills:
                    await self._cancel_others(bracket, leg)

    async def protect(self, bracket: Bracket) -> None:
        """Place the legs of a filled, ended entry that are not placed yet."""
        state = self.rt.state
        entry = state.orders.get(bracket.entry)
        if entry is None or entry.is_open or not entry.fills:
            return  # not filled yet (or still filling): its `after_fill` comes later
        placing = self._placing.get(bracket.entry)
        if placing is not None:
            await placing.wait()
            return
        placing = self._placing[bracket.entry] = trio.Event()
        try:
            await self._place_legs(bracket, entry)
        finally:
            placing.set()

    async def _place_legs(self, bracket: Bracket, entry: Order) -> None:
        state = self.rt.state
        ai = state.assets[bracket.symbol]
        amount = ai.round_amount(entry.filled)
        if amount <= 0:
            return
        legs = bracket.legs
        if (
            self._place_pair is not None
            and len(legs) == 2
            and not any(leg in state.orders for leg in legs.values())
            and await self._place_pair(ai, bracket, amount)
        ):
            return
        for trigger, trigger_price in (
            ("stop", bracket.stop_loss),
            ("take_profit", bracket.take_profit),
        ):
            if trigger_price is None or legs[trigger] in state.orders:
                continue
            if any(state.orders[leg].fills for leg in legs.values() if leg in state.orders):
                return  # the other leg already filled: this one must not be placed
            side = Sell if bracket.side == "sell" else Buy
            order_type = _LEG_TYPES[trigger][side]
            await self._place(
                ai, order_type, amount, trigger_price, bracket.reduce_only, legs[trigger]
            )

    async def _cancel_others(self, bracket: Bracket, filled_leg: str) -> None:
        others = [
            self.rt.state.orders[leg]
            for leg in bracket.legs.values()
            if leg != filled_leg and leg in self.rt.state.orders
        ]
        open_others = [o for o in others if o.is_open]
        if open_others:
            self.rt.record(
                Kind.BRACKET,
                {
                    "entry": bracket.entry,
                    "filled": filled_leg,
                    "cancel": [o.client_id for o in open_others],
                },
                asset=bracket.symbol,
            )
            await self._cancel(open_others)


def read_brackets(path: str | Path) -> list[Bracket]:
    """The brackets the BRACKET records of the trace at `path` hold (earlier runs)."""
    if not (Path(path) / "zarr.json").is_file():
        return []
    view = open_view(path)
    out = []
    for lo in range(0, view.total, _BLOCK):
        hi = min(view.total, lo + _BLOCK)
        kinds = view.read(lo, hi, ["kind"])["kind"]
        index = np.flatnonzero(kinds == int(Kind.BRACKET))
        if not len(index):
            continue
        payloads = view.read_at(index + lo, ["payload"])["payload"]
        for i in range(len(index)):
            payload = payloads.decode(i)
            if isinstance(payload, dict) and "legs" in payload:  # not a one-cancels-other note
                out.append(Bracket.from_payload(payload))
    return out
