"""`call`: send an order (or a cancel, leverage or close action) and wait for its outcome.

The contract (DESIGN §3), the same in every mode:

* one deadline, ``now + waitfor``, shared by every step;
* local checks (unless ``skipchecks``): a failing order returns None without reaching the
  exchange, its reason recorded and passed to ``on_order_error``;
* a deterministic client order id, and the intent recorded before the order is sent;
* ``Trade`` when a fill was seen before the deadline (market, IOC and FOK orders are waited on
  until closed, so all their fills are known); ``Pending`` when the exchange accepted the order
  and no fill came (after one forced fetch when ``synced``); ``None`` when it was never placed or
  ended unfilled. An unknown send outcome is resolved by client id, never by sending again.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import TYPE_CHECKING, Any

import trio

from runtime._errors import (
    ConfigError,
    ExchangeError,
    NetworkError,
    OrderCheckFailed,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    StrategyStopped,
)
from runtime.engine._engine import LeverageChanged, OrderCreated, commit_currency, commitment
from runtime.engine._strategy import runtime_of
from runtime.model._assets import AssetInstance
from runtime.model._orders import (
    Buy,
    CancelOrders,
    MarketOrder,
    Order,
    OrderType,
    PositionClose,
    Sell,
    StopOrder,
    TakeProfitOrder,
    Trade,
    UpdateLeverage,
)
from runtime.modes._brackets import (
    TRIGGER_PARAMS,
    Bracket,
    Brackets,
    check_protective,
    check_trigger,
    read_brackets,
)
from runtime.risk import RiskGuard
from traces._schema import Kind

if TYPE_CHECKING:
    from runtime.engine._runtime import Runtime, SendPolicy
    from runtime.engine._strategy import Strategy


YIELD_EVERY_CALLS = 64


class Pending:
    """An accepted order with no fill yet. ``state`` is "open", or "unknown" while a lost
    send is being resolved by client id.

    ``await p.wait(timeout)`` returns the next `Trade` (or the latest, if one arrived since),
    or None if the order ends unfilled or the timeout passes. ``await p.cancel()`` cancels it.
    """

    __slots__ = ("_rt", "_seen", "_unknown", "order")

    def __init__(self, rt: Runtime, order: Order, *, unknown: bool = False) -> None:
        self._rt = rt
        self.order = order
        self._unknown = unknown
        self._seen = len(order.fills)

    @property
    def state(self) -> str:
        """ "unknown" while a lost send is being resolved, then the order's status."""
        if self._unknown and self.order.id is None and self.order.is_open:
            return "unknown"
        return self.order.status

    # DESIGN §3 names the parameter `timeout`.
    async def wait(self, timeout: float | None = None) -> Trade | None:  # noqa: ASYNC109
        """Wait up to `timeout` seconds (forever if None) for a fill; see the class docstring."""
        order = self.order
        if len(order.fills) == self._seen and order.is_open:
            now = self._rt.now_ms()
            deadline = 2**62 if timeout is None else now + int(timeout * 1000)
            await self._rt.driver.wait_order(order, deadline)
            if self._rt.has_hooks:
                await self._rt.run_hooks()
        if len(order.fills) > self._seen:
            self._seen = len(order.fills)
            return order.fills[-1]
        return None

    async def cancel(self) -> bool:
        """Cancel the order; True once it is no longer open."""
        if not self.order.is_open:
            return True
        return await cancel_orders(self._rt, [self.order])

    def __await__(self) -> Any:
        return self.wait().__await__()

    def __repr__(self) -> str:
        return f"<Pending {self.state} {self.order!r}>"


def _n(x: float) -> str:
    """A number as people write it: 0.00001, not 1e-05."""
    text = f"{x:.12f}".rstrip("0").rstrip(".") if math.isfinite(x) and abs(x) < 1e15 else repr(x)
    return text if text not in ("", "-0") else "0"


def _refuse(rule: str, message: str) -> OrderCheckFailed:
    return OrderCheckFailed(rule, message)


def _is_number(x: Any) -> bool:
    # float and int first: the ABC check is the slow part (1.2% of a backtest, profiled).
    return (
        type(x) is float
        or type(x) is int
        or (isinstance(x, numbers.Real) and not isinstance(x, bool))
    )


def sendable_numbers(
    ai: AssetInstance, order_type: type[OrderType[Any]], amount: Any, price: Any
) -> tuple[float, float | None] | OrderCheckFailed:
    """The amount and price as floats, or the refusal: what no order may be sent without,
    checked even with ``skipchecks`` (an exchange cannot be sent NaN or ``True``)."""
    sym = ai.symbol
    if not _is_number(amount) or not math.isfinite(amount) or amount <= 0:
        return _refuse(
            "amount_positive", f"amount {amount!r} must be a finite positive number for {sym}"
        )
    if order_type.ccxt_type == "market" and not (order_type.trigger and price is not None):
        if price is not None:
            return _refuse(
                "market_price", f"a market order takes no price (got {price!r}) for {sym}"
            )
        return float(amount), None
    if price is None:
        return _refuse("price_required", f"{order_type.__name__} needs a price for {sym}")
    if not _is_number(price) or not math.isfinite(price) or price <= 0:
        return _refuse(
            "price_positive", f"price {price!r} must be a finite positive number for {sym}"
        )
    return float(amount), float(price)


def check_order(
    rt: Runtime,
    ai: AssetInstance,
    order_type: type[OrderType[Any]],
    amount: Any,
    price: Any,
    reduce_only: bool,
    reference: float | None = None,
) -> tuple[float, float | None] | OrderCheckFailed:
    """The local checks of DESIGN §3.2: the rounded (amount, price), or the refusal.
    `reference` values an order without a price (a stop-market's trigger) instead of the
    last price."""
    sym = ai.symbol
    sendable = sendable_numbers(ai, order_type, amount, price)
    if isinstance(sendable, OrderCheckFailed):
        return sendable
    amount, price = sendable
    if price is None:
        rounded_price = None
    else:
        rounded_price = ai.round_price(price)
        if rounded_price <= 0:
            return _refuse(
                "price_tick",
                f"price {price!r} rounds to 0 at the tick {_n(ai.price_tick)} for {sym}",
            )
        if rounded_price > ai.price_max or rounded_price < ai.price_min:
            return _refuse(
                "price_limits",
                f"price {_n(rounded_price)} outside the market's range {_n(ai.price_min)} to "
                f"{_n(ai.price_max)} for {sym}",
            )
        band = ai.price_band
        if band is not None and math.isfinite(ai.price) and ai.price > 0:
            down, up = band[:2] if order_type.side == "buy" else band[2:]
            if not ai.price * down <= rounded_price <= ai.price * up:
                return _refuse(
                    "percent_price",
                    f"price {_n(rounded_price)} is too far from the market {_n(ai.price)} for "
                    f"{sym}: a {order_type.side} must be within {_n(down)}x to {_n(up)}x of it",
                )
    rounded = ai.round_amount(amount)
    if rounded < ai.amount_min or rounded <= 0:
        return _refuse(
            "amount_min",
            f"amount {_n(amount)} below the market minimum {_n(ai.amount_min)} for {sym}"
            + (f" (rounded down to the step {_n(ai.amount_step)})" if rounded != amount else ""),
        )
    if rounded > ai.amount_max:
        return _refuse(
            "amount_max",
            f"amount {_n(rounded)} above the market maximum {_n(ai.amount_max)} for {sym}",
        )
    basis = rounded_price if rounded_price is not None else (reference or ai.price)
    if not math.isfinite(basis) or basis <= 0:
        return _refuse("no_price", f"no market price known yet for {sym}; wait for data")
    value = rounded * basis * ai.contract_size
    if value > ai.cost_max:
        return _refuse(
            "cost_max",
            f"order value {_n(value)} above the market maximum {_n(ai.cost_max)} for {sym} "
            f"(amount {_n(rounded)} at {_n(basis)})",
        )
    if value < ai.cost_min and not reduce_only:  # exchanges let a position close below it
        return _refuse(
            "cost_min",
            f"order value {_n(value)} below the market minimum cost {_n(ai.cost_min)} for {sym} "
            f"(amount {_n(rounded)} at {_n(basis)})",
        )
    side = order_type.side
    if ai.contract:
        opposite = ai.short if side == "buy" else ai.long
        closing = min(rounded, opposite.contracts) if opposite is not None else 0.0
        if reduce_only:
            if opposite is None or rounded > opposite.contracts + 1e-12:
                have = opposite.contracts if opposite is not None else 0.0
                return _refuse(
                    "reduce_only",
                    f"reduce-only {side} of {_n(rounded)} exceeds the position {_n(have)} on {sym}",
                )
            return rounded, rounded_price
        need = commitment(ai, side, rounded - closing, basis) + value * ai.taker
        currency = ai.settle
    else:
        need = commitment(ai, side, rounded, basis)
        currency = ai.quote if side == "buy" else ai.base
    free = rt.state.balance(currency).free - rt.reserved.get(currency, 0.0)
    if need > free + 1e-12:
        what = (
            "margin"
            if ai.contract
            else ("quote cash, fees included" if side == "buy" else "base cash")
        )
        return _refuse(
            "free_cash",
            f"order needs {_n(need)} {currency} ({what}) but only {_n(free)} is free for {sym}",
        )
    return rounded, rounded_price


async def call(
    s: Strategy,
    ai: AssetInstance,
    what: Any,
    *,
    amount: float | None = None,
    price: float | None = None,
    waitfor: float = 5.0,
    synced: bool = True,
    skipchecks: bool = False,
    **params: Any,
) -> Any:
    """Send an order and wait for it: returns a `Trade`, a `Pending` or None (see the module
    docstring). With `CancelOrders`, `UpdateLeverage` or `PositionClose` instances it returns
    what those document. Derivative orders take ``reduce_only=True``; other keywords pass
    through to the exchange as ccxt ``params``."""
    rt = runtime_of(s)
    rt.calls += 1
    if not rt.calls % YIELD_EVERY_CALLS:
        # A simulated exchange answers without yielding: a tick looping on `call` must still
        # let other tasks (and `stop`) run now and then.
        await trio.lowlevel.checkpoint()
    unavailable = (
        rt.sends.unavailable()
        if rt.sends is not None
        else f"strategy {rt.name} has no exchange (a replay of its trace) and cannot trade"
    )
    if unavailable is not None:
        raise ConfigError(unavailable)
    if not (isinstance(waitfor, int | float) and math.isfinite(waitfor) and waitfor >= 0):
        raise ConfigError(f"waitfor={waitfor!r} must be a finite number of seconds, 0 or more")
    deadline = rt.now_ms() + int(waitfor * 1000)
    if isinstance(what, CancelOrders):
        return await _cancel_orders(rt, ai, what)
    if isinstance(what, UpdateLeverage):
        return await _update_leverage(rt, ai, what)
    if isinstance(what, PositionClose):
        return await _position_close(rt, ai, deadline, synced)
    if not (isinstance(what, type) and issubclass(what, OrderType) and what.side):
        raise ConfigError(
            f"call() takes an order type bound to a side (GTCOrder[Buy]), CancelOrders(), "
            f"UpdateLeverage(x) or PositionClose(); got {what!r}"
        )
    if rt.stopping:
        # A checkpoint first: a loop that swallows this error still lets `stop` cancel it.
        await trio.lowlevel.checkpoint()
        raise StrategyStopped(
            f"strategy {rt.name} is stopping: no new order is sent after stop(s) "
            "(cancels and PositionClose still work)"
        )
    reduce_only = bool(params.pop("reduce_only", False))
    protective = check_protective(
        ai,
        what,
        params.pop("trigger_price", None),
        params.pop("stop_loss", None),
        params.pop("take_profit", None),
        directions=not skipchecks,
    )
    checked: tuple[float, float | None] | OrderCheckFailed
    if reduce_only and not ai.contract:
        checked = _refuse(
            "reduce_only", f"reduce_only is for derivatives; {ai.symbol} is a spot market"
        )
    elif isinstance(protective, OrderCheckFailed):
        checked = protective
    elif skipchecks:
        checked = sendable_numbers(ai, what, amount, price)
    else:
        checked = check_order(rt, ai, what, amount, price, reduce_only, protective[0])
    if isinstance(checked, OrderCheckFailed):
        await _refused(rt, ai, what, amount, price, checked, Kind.ORDER_CHECK_FAILED)
        return None
    assert not isinstance(protective, OrderCheckFailed)
    trigger_price, bracket = protective
    if rt.guard is not None:  # the risk limits (DESIGN §9), after the local checks
        refusal = risk_of(rt).check(ai, what.side, checked[0], checked[1], reduce_only)
        if refusal is not None:
            await _refused(rt, ai, what, amount, price, refusal, Kind.ORDER_CHECK_FAILED)
            return None
    return await _place(
        rt,
        ai,
        what,
        checked[0],
        checked[1],
        deadline,
        synced,
        reduce_only,
        params,
        trigger_price=trigger_price,
        bracket=bracket,
    )


async def _refused(
    rt: Runtime,
    ai: AssetInstance,
    order_type: type,
    amount: Any,
    price: Any,
    error: Exception,
    kind: Kind,
    client_id: str | None = None,
) -> None:
    rt.last_refusal = error
    rt.record(
        kind,
        {
            "client_id": client_id,
            "type": order_type.__name__,
            "amount": amount if isinstance(amount, int | float) else repr(amount),
            "price": price if isinstance(price, int | float) or price is None else repr(price),
            "rule": getattr(error, "rule", type(error).__name__),
            "reason": str(error),
        },
        asset=ai.symbol,
        durable=True,
    )
    if rt.strategy is not None:
        await rt.call_hook("on_order_error", rt.strategy.on_order_error, ai, None, error)


async def _place(
    rt: Runtime,
    ai: AssetInstance,
    order_type: type[OrderType[Any]],
    amount: float,
    price: float | None,
    deadline: int,
    synced: bool,
    reduce_only: bool,
    params: dict[str, Any],
    *,
    trigger_price: float | None = None,
    bracket: tuple[float | None, float | None] | None = None,
    client_id: str | None = None,
    wait: bool = True,
) -> Trade | Pending | None:
    """Send an order whose checks passed, and (unless not `wait`) wait for it. A protective
    order has its `trigger_price`; an entry its `bracket` (stop-loss, take-profit); a bracket
    leg comes with its derived `client_id`."""
    sends = rt.sends
    assert sends is not None  # `call` refused a runtime without one
    basis = price if price is not None else ai.price
    held = (
        0.0
        if reduce_only or trigger_price is not None or not math.isfinite(basis)
        else commitment(ai, order_type.side, amount, basis)
    )
    reserved = commit_currency(ai, order_type.side)
    rt.reserved[reserved] = rt.reserved.get(reserved, 0.0) + held
    try:  # `rt.reserving`, written out: this is every order's path
        try:
            await sends.before_send(ai)
        except ExchangeError as exc:  # before the send: None with the reason (DESIGN §3.7)
            await _refused(rt, ai, order_type, amount, price, exc, Kind.ORDER_CHECK_FAILED)
            return None
        refusal = await sends.refusal(ai, deadline)
        if refusal is not None:
            await _refused(rt, ai, order_type, amount, price, refusal, Kind.ORDER_CHECK_FAILED)
            return None
        client_id = client_id or rt.next_client_id(ai)
        sends.sent(client_id)
        if rt.guard is not None:
            risk_of(rt).note_sent()
        ccxt_type = order_type.ccxt_type
        ccxt_params = dict(params)
        ccxt_params["clientOrderId"] = client_id
        if order_type.time_in_force and not order_type.post_only:
            ccxt_params["timeInForce"] = order_type.time_in_force
        if order_type.trigger is not None and trigger_price is not None:
            ccxt_params[TRIGGER_PARAMS[order_type.trigger]] = trigger_price
            if price is not None:  # a stop-limit (take-profit-limit)
                ccxt_type = "limit"
                ccxt_params["timeInForce"] = "GTC"
        protection = None
        if bracket is not None:
            side = "sell" if order_type.side == "buy" else "buy"
            protection = Bracket(client_id, ai.symbol, side, bracket[0], bracket[1], ai.contract)
            brackets_of(rt).record(protection)
        if order_type.post_only:
            ccxt_params["postOnly"] = True
        if reduce_only:
            ccxt_params["reduceOnly"] = True
        if rt.recording:  # an untraced backtest keeps no intents
            rt.record(
                Kind.ORDER_INTENT,
                {
                    "client_id": client_id,
                    "symbol": ai.symbol,
                    "type": ccxt_type,
                    "order_type": order_type.__name__,
                    "side": order_type.side,
                    "amount": amount,
                    "price": price,
                    "trigger_price": trigger_price,
                    "params": ccxt_params,
                },
                asset=ai.symbol,
                durable=True,
            )

        async def create() -> Any:
            return await rt.exchange.create_order(
                ai.symbol, ccxt_type, order_type.side, amount, price, ccxt_params
            )

        sends.expect_news(ai)
        try:
            report = await sends.send(create, deadline)
        except (OrderRejected, RateLimited) as exc:
            # A definite no (a 429/418 is refused unprocessed): nothing was placed.
            sends.expect_news(ai, False)
            await _refused(rt, ai, order_type, amount, price, exc, Kind.ORDER_REFUSED, client_id)
            return None
        except NetworkError as exc:
            # Unknown outcome: never None, never sent again. Look it up by client id.
            rt.record(
                Kind.ORDER_UNKNOWN,
                {"client_id": client_id, "error": str(exc)},
                asset=ai.symbol,
                durable=True,
            )
            if rt.guard is not None:
                rt.guard.alert(
                    "unknown_outcome",
                    f"the send of {client_id} on {ai.symbol} has an unknown outcome ({exc}); "
                    "looking it up by client id, never sending it again",
                    {"client_id": client_id, "symbol": ai.symbol, "error": str(exc)},
                )
            report = await _lookup(rt, sends, ai, client_id, deadline)
            if report is None:
                rt.emit(
                    _created_from_intent(
                        ai, order_type, client_id, amount, price, {}, rt, trigger_price
                    ),
                    durable=True,
                )
                sends.spawn(lambda: sends.resolve_unknown(ai, client_id))
                return Pending(rt, rt.state.orders[client_id], unknown=True)
        if report is not None:  # None: a simulated exchange already reported it
            # One write to the OS for the answer's events (they are applied in one step that
            # nothing else sees half done), not one per durable record.
            with rt.durable_together():
                rt.on_exchange("order", report)
                _apply_response_fills(rt, report)
    finally:
        rt.reserved[reserved] -= held
    order = rt.state.orders.get(client_id)
    if order is None:  # the exchange answered but the order never reached our state
        rt.emit(
            _created_from_intent(
                ai, order_type, client_id, amount, price, report or {}, rt, trigger_price
            )
        )
        order = rt.state.orders[client_id]
    if not wait:  # a bracket leg: placed from a fill's follow-up, nothing waits on it
        return order.fills[-1] if order.fills else (Pending(rt, order) if order.is_open else None)
    if order_type.immediate:
        # Market, IOC and FOK orders end at once: wait for the close so every fill is known.
        while order.is_open and await rt.driver.wait_order(order, deadline):
            pass
    elif not order.fills and order.is_open:
        await rt.driver.wait_order(order, deadline)
    if not order.fills and order.is_open and synced:
        try:
            await sends.sync_order(order)
        except ExchangeError as exc:  # DESIGN §3.7: a failed forced fetch leaves a Pending
            rt.record(
                Kind.ERROR,
                {"client_id": order.client_id, "error": f"forced fetch failed: {exc}"},
                asset=ai.symbol,
            )
    if order.fills and synced:
        await sends.wait_account(order.fills[-1], deadline)
    if rt.has_hooks:
        await rt.run_hooks()
    if protection is not None:  # its legs are placed before `call` returns the entry's fill
        await brackets_of(rt).protect(protection)
    if order.fills:
        return order.fills[-1]
    if order.is_open:
        return Pending(rt, order)
    return None


def brackets_of(rt: Runtime) -> Brackets:
    """The strategy's brackets (`runtime.modes._brackets`), made on first use; from then on
    every fill passes through them before `on_trade`."""
    if rt.brackets is None:

        async def place(
            ai: AssetInstance,
            order_type: Any,
            amount: float,
            trigger_price: float,
            reduce_only: bool,
            client_id: str,
        ) -> Any:
            side, trigger = order_type.side, order_type.trigger
            checked = check_trigger(ai, side, trigger, trigger_price)
            if isinstance(checked, OrderCheckFailed):
                await _refused(
                    rt, ai, order_type, amount, None, checked, Kind.ORDER_CHECK_FAILED, client_id
                )
                return None
            return await _place(
                rt,
                ai,
                order_type,
                amount,
                None,
                rt.now_ms(),
                False,
                reduce_only,
                {},
                trigger_price=checked,
                client_id=client_id,
                wait=False,
            )

        async def cancel(orders: list[Order]) -> bool:
            return await cancel_orders(rt, orders)

        async def place_pair(ai: AssetInstance, bracket: Bracket, amount: float) -> bool:
            return await _place_oco(rt, ai, bracket, amount)

        brackets = rt.brackets = Brackets(rt, place, cancel, place_pair)
        rt.after_fill = brackets.after_fill
    return rt.brackets


async def _place_oco(rt: Runtime, ai: AssetInstance, bracket: Bracket, amount: float) -> bool:
    """A bracket's two legs as one OCO order list where the exchange has them (Binance spot:
    it locks the holding once and expires the other leg itself). False when it has none, or
    a leg fails its check (the legs are then placed one by one, each refused or not)."""
    sends = rt.sends
    has_oco = getattr(rt.exchange, "has_oco", None)
    if sends is None or has_oco is None or not has_oco(ai.symbol):
        return False
    side: Any = Sell if bracket.side == "sell" else Buy
    ids = bracket.legs
    legs: list[tuple[Any, str, float]] = []
    stop_type: Any = StopOrder
    take_type: Any = TakeProfitOrder
    for order_type, trigger, wanted in (
        (stop_type[side], "stop", bracket.stop_loss),
        (take_type[side], "take_profit", bracket.take_profit),
    ):
        checked = check_trigger(ai, bracket.side, trigger, wanted)
        if isinstance(checked, OrderCheckFailed):
            return False
        legs.append((order_type, ids[trigger], checked))
    # The watchers must see the legs' news: wait for them as a `call` would (its default 5 s).
    if await sends.refusal(ai, rt.now_ms() + 5_000) is not None:
        return False
    try:
        await sends.before_send(ai)
    except ExchangeError:
        return False
    list_id = f"{bracket.entry}-oco"
    for order_type, client_id, trigger_price in legs:
        sends.sent(client_id)
        rt.record(
            Kind.ORDER_INTENT,
            {
                "client_id": client_id,
                "symbol": ai.symbol,
                "type": "market",
                "order_type": order_type.__name__,
                "side": order_type.side,
                "amount": amount,
                "price": None,
                "trigger_price": trigger_price,
                "params": {
                    "clientOrderId": client_id,
                    TRIGGER_PARAMS[order_type.trigger]: trigger_price,
                    "orderList": list_id,
                },
            },
            asset=ai.symbol,
            durable=True,
        )
    (_, stop_id, stop), (_, take_id, take) = legs
    exchange: Any = rt.exchange

    async def create() -> Any:
        return await exchange.create_oco_order(
            ai.symbol, bracket.side, amount, (stop, stop_id), (take, take_id), list_id
        )

    sends.expect_news(ai)
    try:
        reports = await sends.send(create, rt.now_ms())
    except (OrderRejected, RateLimited) as exc:
        sends.expect_news(ai, False)
        for order_type, client_id, _ in legs:
            await _refused(rt, ai, order_type, amount, None, exc, Kind.ORDER_REFUSED, client_id)
        return True
    except NetworkError as exc:  # unknown: resolved by client id, never sent again
        for order_type, client_id, trigger_price in legs:
            rt.record(
                Kind.ORDER_UNKNOWN,
                {"client_id": client_id, "error": str(exc)},
                asset=ai.symbol,
                durable=True,
            )
            rt.emit(
                _created_from_intent(
                    ai, order_type, client_id, amount, None, {}, rt, trigger_price
                ),
                durable=True,
            )
            sends.spawn(functools.partial(sends.resolve_unknown, ai, client_id))
        return True
    for report in reports:
        rt.on_exchange("order", report)
    return True


async def resume_brackets(rt: Runtime, path: Any) -> None:
    """After a restart's sync: rebuild the brackets from the trace at `path` and place what a
    crash left unplaced (`Brackets.sweep`)."""
    found = read_brackets(path) if path is not None else []
    if not found:
        return
    brackets = brackets_of(rt)
    for bracket in found:
        brackets.add(bracket)
    await brackets.sweep()


def _apply_response_fills(rt: Runtime, report: dict[str, Any]) -> None:
    """Apply the fills an order response carries (Binance's FULL response), so a market
    order is a Trade without waiting for the trade stream; the stream's copies of the same
    trade ids are then no-ops."""
    trades = [t for t in report.get("trades") or () if isinstance(t, dict) and t.get("id")]
    if not trades:
        return
    for trade in trades:
        filled = dict(trade)
        filled.setdefault("order", report.get("id"))
        filled["order"] = filled["order"] or report.get("id")
        filled["symbol"] = filled.get("symbol") or report.get("symbol")
        filled["timestamp"] = filled.get("timestamp") or report.get("timestamp")
        filled["clientOrderId"] = report.get("clientOrderId")
        rt.on_exchange("trade", filled)
    rt.on_exchange("order", report)  # closures that waited on these fills


async def _lookup(
    rt: Runtime, sends: SendPolicy, ai: AssetInstance, client_id: str, deadline: int
) -> Any:
    """The order by client id, if the exchange knows it before the deadline; else None."""
    while rt.now_ms() < deadline:
        try:
            return await sends.send(
                lambda: rt.exchange.fetch_order(None, ai.symbol, {"clientOrderId": client_id}),
                deadline,
            )
        except (OrderNotFound, NetworkError):
            await trio.sleep(min(0.2, max(deadline - rt.now_ms(), 0) / 1000))
    return None


def _created_from_intent(
    ai: AssetInstance,
    order_type: type[OrderType[Any]],
    client_id: str,
    amount: float,
    price: float | None,
    report: dict[str, Any],
    rt: Runtime,
    trigger_price: float | None = None,
) -> OrderCreated:
    return OrderCreated(
        symbol=ai.symbol,
        client_id=client_id,
        side=order_type.side,
        order_type=order_type.__name__.split("[", 1)[0],
        amount=amount,
        price=price,
        timestamp=int(report.get("timestamp") or rt.now_ms()),
        id=None if report.get("id") is None else str(report["id"]),
        reference_price=ai.price,
        trigger_price=trigger_price,
    )


async def cancel_orders(rt: Runtime, orders: list[Order]) -> bool:
    """Cancel `orders`; True once none of them is open. A fault of the exchange or the network
    is recorded with the order and the order left as it is (DESIGN §3.7: False, not a raise)."""
    for order in orders:
        if not order.is_open:
            continue
        rt.record(
            Kind.CANCEL_REQUEST,
            {"client_id": order.client_id, "id": order.id},
            asset=order.symbol,
            durable=True,
        )
        ids = (order.id, order.symbol, {"clientOrderId": order.client_id})
        try:
            try:
                report = await rt.exchange.cancel_order(*ids)
            except OrderNotFound:
                # Already gone on the exchange (or never placed): learn how it ended.
                report = await rt.exchange.fetch_order(*ids)
        except ExchangeError as exc:
            _cancel_failed(rt, order.client_id, order.symbol, exc)
            continue
        rt.on_exchange("order", report)
    if rt.has_hooks:
        await rt.run_hooks()
    if rt.brackets is not None:  # a partly filled entry cancelled: protect what filled
        await rt.brackets.ended(orders)
    return all(not o.is_open for o in orders)


def _cancel_failed(rt: Runtime, client_id: str | None, symbol: str, exc: Exception) -> None:
    rt.last_refusal = exc
    rt.record(
        Kind.ERROR,
        {"action": "CancelOrders", "client_id": client_id, "error": f"{type(exc).__name__}: {exc}"},
        asset=symbol,
    )


async def _cancel_orders(rt: Runtime, ai: AssetInstance, action: CancelOrders) -> bool:
    def selected(o: Order) -> bool:
        if action.side is not None and o.side != action.side.name:
            return False
        return not action.ids or o.client_id in action.ids or o.id in action.ids

    if action.confirm:
        try:
            listed = await rt.exchange.fetch_open_orders(ai.symbol)
        except ExchangeError as exc:
            _cancel_failed(rt, None, ai.symbol, exc)
            return False
        for report in listed:
            rt.on_exchange("order", report)
    orders = [o for o in ai.open_orders.values() if selected(o)]
    ok = await cancel_orders(rt, orders)
    return ok and not any(selected(o) for o in ai.open_orders.values())


async def _update_leverage(rt: Runtime, ai: AssetInstance, action: UpdateLeverage) -> bool:
    reason = None
    if not ai.contract:
        reason = f"leverage applies to derivatives; {ai.symbol} is a spot market"
    elif ai.long is not None or ai.short is not None:
        reason = f"leverage of {ai.symbol} cannot change while a position is open"
    elif ai.open_orders:
        reason = (
            f"leverage of {ai.symbol} cannot change while {len(ai.open_orders)} order(s) are open"
        )
    elif not (
        _is_number(action.leverage)
        and math.isfinite(action.leverage)
        and 1 <= action.leverage <= ai.leverage_max
    ):
        reason = (
            f"leverage {action.leverage!r} must be a number from 1 to {ai.leverage_max:g} for "
            f"{ai.symbol}"
        )
    if reason is not None:
        rt.last_refusal = OrderCheckFailed("leverage", reason)
        rt.record(Kind.ERROR, {"action": "UpdateLeverage", "reason": reason}, asset=ai.symbol)
        return False
    try:
        if rt.margin:
            await rt.exchange.set_margin_mode(rt.margin, ai.symbol)
            rt.record(
                Kind.MARGIN_MODE,
                {"symbol": ai.symbol, "margin_mode": rt.margin},
                asset=ai.symbol,
                durable=True,
            )
        leverage = float(action.leverage)
        # Exchanges such as Binance take whole-number leverage only.
        await rt.exchange.set_leverage(
            int(leverage) if leverage.is_integer() else leverage, ai.symbol
        )
    except ExchangeError as exc:  # refused (Binance: whole numbers only), or unreachable
        rt.last_refusal = exc
        rt.record(Kind.ERROR, {"action": "UpdateLeverage", "reason": str(exc)}, asset=ai.symbol)
        return False
    rt.emit(LeverageChanged(ai.symbol, float(action.leverage), rt.now_ms()), durable=True)
    return True


async def _position_close(
    rt: Runtime, ai: AssetInstance, deadline: int, synced: bool
) -> Trade | Pending | None:
    if not ai.contract:
        refusal = _refuse(
            "position_close", f"PositionClose is for derivatives; {ai.symbol} is a spot market"
        )
        await _refused(rt, ai, PositionClose, None, None, refusal, Kind.ORDER_CHECK_FAILED)
        return None
    await cancel_orders(rt, list(ai.open_orders.values()))
    pos = ai.long or ai.short
    if pos is None:
        return None
    order_type: type[OrderType[Any]] = MarketOrder[Sell] if pos.side == "long" else MarketOrder[Buy]
    return await _place(rt, ai, order_type, pos.contracts, None, deadline, synced, True, {})


def risk_of(rt: Runtime) -> RiskGuard:
    """The runtime's risk guard (the wiring gives every traded runtime one)."""
    assert isinstance(rt.guard, RiskGuard)
    return rt.guard


async def exit_market(rt: Runtime, ai: AssetInstance, deadline: int) -> bool:
    """Cancel the asset's orders and close what it holds with a market order, past the risk
    limits (it only reduces): the position (margin), or the base holding (spot; the
    strategy's own with a capital cap). True when nothing is left open or held but dust below
    the market's minimum order."""
    cancelled = await cancel_orders(rt, list(ai.open_orders.values()))
    if ai.contract:
        await _position_close(rt, ai, deadline, True)
        return cancelled and ai.long is None and ai.short is None
    held = rt.state.balance(ai.base).free
    guard = risk_of(rt) if rt.guard is not None else None
    if guard is not None and guard.cap is not None:
        held = min(held, guard.own_holding(ai))
    amount = ai.round_amount(max(held, 0.0))
    price = ai.price
    if amount < ai.amount_min or amount <= 0 or not math.isfinite(price):
        return cancelled
    if amount * price < ai.cost_min:
        return cancelled  # dust: no exchange takes an order this small
    await _place(rt, ai, MarketOrder[Sell], amount, None, deadline, True, False, {})
    return cancelled and ai.round_amount(rt.state.balance(ai.base).free) < max(ai.amount_min, 1e-12)
