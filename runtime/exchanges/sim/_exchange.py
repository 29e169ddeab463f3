"""The simulated exchange: an in-process, pure-trio exchange with a matching engine.

It keeps its own account ledger (an engine `State`, so its accounting is the runtime's) and
answers the exchange interface with ccxt unified dicts. Market data comes from a `MarketFeed`:
bars in Sim mode; Paper mode and the loopback server bring their own feeds.

**Bar fill model.** Prices come from the last *closed* bar; nothing looks ahead.

* A market order, or a limit order that is marketable on arrival, fills at once, in full, as
  taker, at ``close × (1 ± slippage)`` (a limit order never beyond its limit), where::

      slippage = spread_bps / 2e4 + impact × (high − low) / close × sqrt(min(1, amount / volume))

  so wide, thin bars cost more and the cost grows with the share of the bar's volume taken.
* IOC and FOK orders take at most ``volume_cap × volume`` of the last bar: IOC fills what it
  can and expires the rest; FOK fills in full or expires.
* A post-only order that would cross is rejected ("Order would immediately match and take."),
  as Binance does.
* A resting limit order fills, as maker, on a later bar that trades *through* its price
  (``low < price`` for a buy, ``high > price`` for a sell), at its price, or at the bar's open
  when the bar opens beyond it. Each bar gives at most ``volume_cap × volume`` to resting orders,
  in time priority, so orders fill partially on thin bars and continue on the next ones.
* A protective order (``stopLossPrice`` / ``takeProfitPrice`` / ``triggerPrice`` params, the
  ccxt unified names) waits, reserving nothing, until a later bar reaches its trigger: a sell
  stop or a buy take-profit when ``low <= trigger``, a buy stop or a sell take-profit when
  ``high >= trigger``. It then executes at the trigger, or at the bar's open when the bar
  *opens* through the trigger (a gap), with the taker slippage above: a stop-market fills
  there in full; a stop-limit fills there if that price is within its limit (never beyond
  it), and otherwise rests as a limit order from the next bar on. When several trigger in one
  bar, the one nearest the open goes first. Funds (or, reduce-only, the position) are checked
  when it triggers; without them it expires. An order whose trigger the last close already
  crossed is rejected ("Order would immediately trigger."), as Binance does.
* Isolated positions are liquidated, at the liquidation price, on a bar that reaches it: the
  exchange closes them with its own reduce-only market order (client id ``autoclose-...``).

Checks run the way Binance runs them, and fail with the same kind of error
(`OrderRejected` carrying Binance's filter message, `InsufficientFunds`, `OrderNotFound`).
Fees are charged in the quote (settle) currency.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from runtime._errors import ConfigError, InsufficientFunds, OrderNotFound, OrderRejected
from runtime.engine._engine import (
    Event,
    FundingPaid,
    LeverageChanged,
    OrderCancelled,
    OrderCreated,
    OrderFilled,
    State,
    apply,
    commitment,
    settle_fill,
    settle_funding,
)
from runtime.model._assets import LONG, SHORT, AssetInstance, Balance
from runtime.model._modes import FillModel as FillModel
from runtime.model._orders import CANCELED, EXPIRED, OPEN, Order, Trade, falls_to


class Bar(NamedTuple):
    time_ms: int  # open time
    open: float
    high: float
    low: float
    close: float
    volume: float


class MarketFeed(Protocol):
    """Where the exchange sees the market: the last closed bar of a symbol, and the time."""

    def bar(self, symbol: str) -> Bar | None: ...

    def now_ms(self) -> int: ...


Listener = Callable[[str, dict[str, Any]], None]


class LedgerListener(Protocol):
    """Takes the simulated exchange's reports as the events its ledger applied, with no ccxt
    dict in between: a backtest's runtime (`Runtime.on_ledger`). Each call says what a
    listener's ``("order" | "trade" | "balance", dict)`` report would have said."""

    def on_ledger(self, client_id: str | None, event: Event | None) -> None:
        """An order report (`client_id`) with the ledger's event for it (None: the order
        changed in nothing the event kinds carry, e.g. it closed with its last fill)."""
        ...

    def on_ledger_balances(self, totals: Mapping[str, float], timestamp: int) -> None: ...

    def on_exchange(self, kind: str, payload: Any) -> None:
        """The reports with no direct form (positions, funding), as ccxt dicts."""
        ...


@functools.lru_cache(maxsize=1024)  # the orders and fills of a bar share its time
def iso8601(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(slots=True)
class OrderMeta:
    """What the exchange knows of an order beyond the ledger's `Order` (ccxt's fields)."""

    time_in_force: str
    post_only: bool
    updated: int  # ms of the last change
    trigger: str | None = None  # "stop" or "take_profit" for a protective order
    triggered: bool = False


_TIF = {"GTC": "GTCOrder", "IOC": "IOCOrder", "FOK": "FOKOrder", "PO": "PostOnlyOrder"}


class SimExchange:
    """An exchange account and matching engine in one process. See the module docstring."""

    def __init__(
        self,
        markets: Mapping[str, Mapping[str, Any]],
        feed: MarketFeed,
        *,
        balances: Mapping[str, float],
        margin: str | None = None,
        fill_model: FillModel | None = None,
        exchange_id: str = "sim",
    ) -> None:
        self.id = exchange_id
        self.markets = {s: dict(m) for s, m in markets.items()}
        self.feed = feed
        self.fill_model = fill_model or FillModel()
        ledger_balances = {c: Balance(c, float(v)) for c, v in balances.items()}
        assets = {s: AssetInstance(m, ledger_balances) for s, m in self.markets.items()}
        self.ledger = State(assets, ledger_balances, margin)
        self._listeners: list[Listener] = []
        # Set by the Sim wiring: reports go to it as ledger events (faster, same events).
        self.direct: LedgerListener | None = None
        self._ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._meta: dict[str, OrderMeta] = {}  # client id -> exchange-only order fields
        self._resting: dict[str, list[Order]] = {}
        self._waiting: dict[str, list[Order]] = {}  # protective orders not triggered yet
        self._bar_used: dict[str, tuple[int, float]] = {}  # symbol -> (bar time, volume taken)
        self._trades: dict[str, list[Trade]] = {}  # ccxt dicts only when fetched
        self._margin_mode: dict[str, str] = {}
        # True when a new bar may change something: resting orders or open positions.
        self.has_work = False
        self._reported_ms = 0  # time of the newest account report

    # Listeners: Sim applies events synchronously; streams (watch_*) are listeners too.
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        for listener in self._listeners:
            listener(kind, payload)
        if self.direct is not None and kind in ("position", "funding"):
            self.direct.on_exchange(kind, payload)

    def _report_order(self, order: Order, event: Event | None = None) -> None:
        """Report an order that `event` (applied to the ledger) or a fill changed."""
        if self.direct is not None:
            self.direct.on_ledger(order.client_id, event)
        if self._listeners:
            self._emit("order", self.order_dict(order))

    def _report_balances(self, totals: dict[str, float], stamp: int) -> None:
        if self.direct is not None:
            self.direct.on_ledger_balances(totals, stamp)
        if self._listeners:
            self._emit("balance", {"total": totals, "timestamp": stamp, "info": {}})

    def _refresh_work(self) -> None:
        # Read once per bar by the Sim loop, so kept as a plain attribute.
        self.has_work = (
            any(self._resting.values())
            or any(self._waiting.values())
            or (
                self.ledger.margin is not None  # spot holds no positions
                and any(
                    a.long is not None or a.short is not None for a in self.ledger.assets.values()
                )
            )
        )

    # Interface.
    async def load_markets(self) -> dict[str, dict[str, Any]]:
        return self.markets

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """The ccxt order; None when a `LedgerListener` takes the reports (it has them all,
        and a backtest need not build the dict)."""
        order = self.place(symbol, type, side, amount, price, params or {})
        return None if self.direct is not None else self.order_dict(order)

    def submit(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None,
        params: Mapping[str, Any],
    ) -> dict[str, Any]:
        """create_order without the coroutine, as a ccxt order."""
        return self.order_dict(self.place(symbol, type, side, amount, price, params))

    def place(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None,
        params: Mapping[str, Any],
    ) -> Order:
        """Validate, book, match at once if marketable; the ledger's order."""
        ai = self._asset(symbol)
        now = self.feed.now_ms()
        client_id = str(params.get("clientOrderId") or f"sim-{next(self._ids)}")
        tif, post_only = self._time_in_force(type, params)
        reduce_only = bool(params.get("reduceOnly", False))
        if side not in ("buy", "sell"):
            raise OrderRejected(f"Invalid side {side!r}; use 'buy' or 'sell'.")
        known = self.ledger.orders.get(client_id)
        if known is not None and known.status == OPEN:
            raise OrderRejected(f"Duplicate order sent: client order id {client_id} is open.")
        bar = self.feed.bar(symbol)
        if bar is None:
            raise OrderRejected(f"No market data yet for {symbol}: the market is not trading.")
        self._check_filters(ai, type, amount, price, bar, reduce_only)
        ai.last_price = bar.close
        trigger, trigger_price = self._trigger_of(ai, side, params, bar)
        if trigger is not None:
            assert trigger_price is not None
            marketable, exec_price = False, price if price is not None else trigger_price
        else:
            marketable, exec_price = self._quote(ai, side, type, amount, price, bar)
        if post_only and marketable:
            raise OrderRejected("Order would immediately match and take.")
        self._check_funds(ai, side, amount, exec_price, reduce_only)

        order_id = str(next(self._ids))
        order_type = "MarketOrder" if type == "market" else _TIF[tif]
        if trigger is not None:
            order_type = "StopOrder" if trigger == "stop" else "TakeProfitOrder"
        created = OrderCreated(
            symbol=symbol,
            client_id=client_id,
            side=side,
            order_type=order_type,
            amount=amount,
            price=price if type != "market" else None,
            timestamp=now,
            id=order_id,
            reduce_only=reduce_only,
            reference_price=exec_price,
            trigger_price=trigger_price,
        )
        order = apply(self.ledger, created)
        self._meta[client_id] = OrderMeta(tif, post_only, now, trigger)
        self._report_order(order, created)
        if trigger is not None:
            self._waiting.setdefault(symbol, []).append(order)
        else:
            self._execute(ai, order, type, tif, marketable, exec_price, bar, now)
        self._refresh_work()
        return order

    @staticmethod
    def _trigger_of(
        ai: AssetInstance, side: str, params: Mapping[str, Any], bar: Bar
    ) -> tuple[str | None, float | None]:
        """("stop" or "take_profit", trigger price) for a protective order, (None, None) else."""
        for key, trigger in (
            ("stopLossPrice", "stop"),
            ("takeProfitPrice", "take_profit"),
            ("triggerPrice", "stop"),
        ):
            raw = params.get(key)
            if raw is None:
                continue
            value = float(raw)
            if not (math.isfinite(value) and value > 0):
                raise OrderRejected(
                    f"Filter failure: PRICE_FILTER (trigger price {raw!r} must be positive)."
                )
            if abs(ai.round_price(value) - value) > 1e-9 * ai.price_tick:
                raise OrderRejected(
                    f"Filter failure: PRICE_FILTER (trigger price {raw!r} is not a multiple of "
                    f"the tick {ai.price_tick:g} for {ai.symbol})."
                )
            crossed = bar.close <= value if falls_to(side, trigger) else bar.close >= value
            if crossed:
                raise OrderRejected("Order would immediately trigger.")
            return trigger, value
        return None, None

    def _trigger_waiting(self, symbol: str, waiting: list[Order], bar: Bar) -> None:
        """Trigger the protective orders this bar reaches (module docstring)."""
        hit: list[tuple[float, Order, float]] = []
        for order in waiting:
            if order.timestamp > bar.time_ms:
                continue  # placed after this bar opened: it only sees later bars
            trigger = order.trigger_price
            assert trigger is not None
            if falls_to(order.side, self._meta[order.client_id].trigger):
                if bar.low <= trigger:
                    hit.append((abs(bar.open - trigger), order, min(bar.open, trigger)))
            elif bar.high >= trigger:
                hit.append((abs(bar.open - trigger), order, max(bar.open, trigger)))
        if not hit:
            return
        ai = self.ledger.assets[symbol]
        for _, order, at in sorted(hit, key=lambda h: h[0]):
            if order.status != OPEN or order not in waiting:
                continue  # ended by an earlier one of this bar (an exchange's OCO list)
            waiting.remove(order)
            self._fire(ai, order, at, bar, bar.time_ms)
        self._refresh_work()

    def _fire(self, ai: AssetInstance, order: Order, at: float, bar: Bar, now: int) -> None:
        """A triggered protective order executes from `at` (the trigger, or the gap's open):
        a market one in full, a limit one if `at` is within its limit, else it rests."""
        self._meta[order.client_id].triggered = True
        if not self._can_fund(ai, order, at):
            self._end(order, EXPIRED, now, "no funds (or no position) when it triggered")
            return
        price = self._slipped(ai, order.side, order.amount, bar, at)
        if order.price is not None:
            within = at >= order.price if order.side == "sell" else at <= order.price
            if not within:
                self._resting.setdefault(ai.symbol, []).append(order)
                self._meta[order.client_id].updated = now
                self._report_order(order)  # now working, as a limit order
                return
            price = max(price, order.price) if order.side == "sell" else min(price, order.price)
        self._fill(ai, order, order.amount, price, taker=True, now=now)

    def _can_fund(self, ai: AssetInstance, order: Order, price: float) -> bool:
        try:
            self._check_funds(ai, order.side, order.amount, price, order.reduce_only)
        except OrderRejected:
            return False
        return True

    def _quote(
        self,
        ai: AssetInstance,
        side: str,
        type: str,
        amount: float,
        price: float | None,
        bar: Bar,
    ) -> tuple[bool, float]:
        """Whether the order takes liquidity on arrival, and the price it would pay (or its
        limit, when it rests)."""
        ref = bar.close
        marketable = type == "market" or (
            price is not None and (price >= ref if side == "buy" else price <= ref)
        )
        exec_price = self._taker_price(ai, side, amount, bar, price) if marketable else price
        assert exec_price is not None
        return marketable, exec_price

    def _execute(
        self,
        ai: AssetInstance,
        order: Order,
        type: str,
        tif: str,
        marketable: bool,
        exec_price: float,
        bar: Bar,
        now: int,
    ) -> None:
        """Fill what the order takes at once; rest or expire the remainder (bar model)."""
        symbol = ai.symbol
        if marketable:
            fill_amount = order.amount
            if tif in ("IOC", "FOK") and type != "market":
                available = self._available(symbol, bar) if bar.volume > 0 else 0.0
                fill_amount = min(order.amount, ai.round_amount(available))
                if tif == "FOK" and fill_amount < order.amount:
                    fill_amount = 0.0
            if fill_amount > 0:
                if tif in ("IOC", "FOK") and type != "market":
                    self._take_volume(symbol, bar, fill_amount)
                self._fill(ai, order, fill_amount, exec_price, taker=True, now=now)
            if order.status == OPEN:  # IOC/FOK remainder
                self._end(order, EXPIRED, now, "not filled at once")
        elif tif in ("IOC", "FOK"):
            self._end(order, EXPIRED, now, "not marketable")
        else:
            self._resting.setdefault(symbol, []).append(order)

    async def cancel_order(
        self, id: str | None, symbol: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        order = self._lookup(id, symbol, params or {})
        if order.status != OPEN:
            raise OrderNotFound(f"Unknown order sent: {order.client_id} is {order.status}.")
        self._end(order, CANCELED, self.feed.now_ms(), "canceled by user")
        return self.order_dict(order)

    async def fetch_order(
        self, id: str | None, symbol: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.order_dict(self._lookup(id, symbol, params or {}))

    async def fetch_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        assets = [self._asset(symbol)] if symbol else list(self.ledger.assets.values())
        return [self.order_dict(o) for a in assets for o in a.open_orders.values()]

    async def fetch_closed_orders(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        self._asset(symbol)
        orders = [
            o
            for o in self.ledger.orders.values()
            if o.symbol == symbol and o.status != OPEN and (since is None or o.timestamp >= since)
        ]
        if limit is not None:
            orders = orders[-limit:]
        return [self.order_dict(o) for o in orders]

    async def fetch_my_trades(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        self._asset(symbol)
        trades = [t for t in self._trades.get(symbol, []) if since is None or t.timestamp >= since]
        return [self.trade_dict(t) for t in (trades[-limit:] if limit is not None else trades)]

    async def fetch_balance(self) -> dict[str, Any]:
        out: dict[str, Any] = {"free": {}, "used": {}, "total": {}, "info": {}}
        for currency, b in sorted(self.ledger.balances.items()):
            entry = {"free": b.free, "used": b.committed, "total": b.total}
            out[currency] = entry
            for key in ("free", "used", "total"):
                out[key][currency] = entry[key]
        return out

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[dict[str, Any]]:
        out = []
        for symbol, ai in self.ledger.assets.items():
            if symbols and symbol not in symbols:
                continue
            for pos in (ai.long, ai.short):
                if pos is not None:
                    out.append(self.position_dict(ai, pos.side))
        return out

    async def set_leverage(self, leverage: float, symbol: str) -> dict[str, Any]:
        ai = self._asset(symbol)
        if not 1 <= leverage <= ai.leverage_max:
            raise OrderRejected(
                f"Leverage {leverage:g} is not valid for {symbol}: use 1 to {ai.leverage_max:g}."
            )
        apply(self.ledger, LeverageChanged(symbol, float(leverage), self.feed.now_ms()))
        return {"symbol": symbol, "leverage": float(leverage)}

    async def set_margin_mode(self, mode: str, symbol: str) -> dict[str, Any]:
        self._asset(symbol)
        if mode != "isolated":
            raise ConfigError(f"margin mode {mode!r} is not supported; use 'isolated'")
        self._margin_mode[symbol] = mode
        return {"symbol": symbol, "marginMode": mode}

    async def close(self) -> None:
        self._listeners.clear()

    # Market data in.
    def on_bar(self) -> None:
        """Match resting orders and check liquidations against each symbol's newest bar."""
        for symbol, resting in self._resting.items():
            if resting:
                bar = self.feed.bar(symbol)
                if bar is not None:
                    self._match(symbol, resting, bar)
        for symbol, waiting in self._waiting.items():
            if waiting:
                bar = self.feed.bar(symbol)
                if bar is not None:
                    self._trigger_waiting(symbol, waiting, bar)
        for ai in self.ledger.assets.values():
            if ai.long is not None or ai.short is not None:
                self._check_liquidation(ai)

    def settle_funding(self, symbol: str, time_ms: int, rate: float, price: float) -> float:
        """Settle funding on ``symbol``'s open position at funding time ``time_ms``: a long
        pays ``contracts × contract size × price × rate`` (a short receives it; a negative rate
        reverses both). Reported as a "funding" event, then the balance. Returns the amount
        paid (0.0 with no position)."""
        ai = self.ledger.assets[symbol]
        paid = 0.0
        for pos in (ai.long, ai.short):
            if pos is None or not ai.contract:
                continue
            signed = pos.contracts if pos.side == LONG else -pos.contracts
            amount = signed * ai.contract_size * price * rate
            event = FundingPaid(symbol, time_ms, rate, price, signed, amount)
            apply(self.ledger, event)
            settle_funding(self.ledger, event)
            paid += amount
            stamp = self._reported_ms = max(self._reported_ms, time_ms)
            self._emit(
                "funding",
                {
                    "symbol": symbol,
                    "timestamp": time_ms,
                    "rate": rate,
                    "price": price,
                    "contracts": signed,
                    "amount": amount,
                },
            )
            self._report_balances({ai.settle: self.ledger.balances[ai.settle].total}, stamp)
        return paid

    def _match(self, symbol: str, resting: list[Order], bar: Bar) -> None:
        ai = self.ledger.assets[symbol]
        for order in list(resting):
            if order.timestamp > bar.time_ms:
                continue  # placed after this bar opened: it only sees later bars
            assert order.price is not None
            if order.side == "buy":
                if not bar.low < order.price:
                    continue
                price = min(order.price, bar.open)
            else:
                if not bar.high > order.price:
                    continue
                price = max(order.price, bar.open)
            amount = ai.round_amount(min(order.remaining, self._available(symbol, bar)))
            if amount <= 0:
                break  # this bar's volume is used up
            self._take_volume(symbol, bar, amount)
            self._fill(ai, order, amount, price, taker=False, now=bar.time_ms)
        resting[:] = [o for o in resting if o.status == OPEN]
        self._refresh_work()

    def _check_liquidation(self, ai: AssetInstance) -> None:
        bar = self.feed.bar(ai.symbol)
        if bar is None:
            return
        ai.last_price = bar.close
        for pos in (ai.long, ai.short):
            if pos is None:
                continue
            liq = pos.liquidation_price
            hit = bar.low <= liq if pos.side == LONG else bar.high >= liq
            if not hit:
                continue
            for order in list(ai.open_orders.values()):
                self._end(order, CANCELED, bar.time_ms, "liquidation")
            client_id = f"autoclose-{next(self._ids)}"
            side = "sell" if pos.side == LONG else "buy"
            created = OrderCreated(
                symbol=ai.symbol,
                client_id=client_id,
                side=side,
                order_type="MarketOrder",
                amount=pos.contracts,
                price=None,
                timestamp=bar.time_ms,
                id=str(next(self._ids)),
                reduce_only=True,
                reference_price=liq,
            )
            order = apply(self.ledger, created)
            self._meta[client_id] = OrderMeta("GTC", False, 0)
            self._report_order(order, created)
            self._fill(ai, order, pos.contracts, ai.round_price(liq), True, bar.time_ms)

    def end_order(self, order: Order, status: str, reason: str) -> None:
        """End an open order as the exchange itself does (an OCO list's other leg)."""
        if order.status == OPEN:
            self._end(order, status, self.feed.now_ms(), reason)

    def new_id(self) -> str:
        """A fresh order id from the exchange's sequence (the loopback's triggered orders)."""
        return str(next(self._ids))

    def is_working(self, order: Order) -> bool:
        """False for a protective order still waiting for its trigger (Binance's isWorking)."""
        return order.trigger_price is None or self._meta[order.client_id].triggered

    # Internals.
    def _asset(self, symbol: str) -> AssetInstance:
        ai = self.ledger.assets.get(symbol)
        if ai is None:
            raise OrderRejected(
                f"Invalid symbol {symbol!r}: this exchange lists {len(self.ledger.assets)} markets."
            )
        return ai

    @staticmethod
    def _time_in_force(type: str, params: Mapping[str, Any]) -> tuple[str, bool]:
        if type == "market":
            return "IOC", False
        if type != "limit":
            raise OrderRejected(
                f"Invalid order type {type!r}; this exchange takes market and limit."
            )
        post_only = bool(params.get("postOnly")) or params.get("timeInForce") in ("PO", "GTX")
        tif = "PO" if post_only else str(params.get("timeInForce", "GTC"))
        if tif not in _TIF:
            raise OrderRejected(f"Invalid timeInForce {tif!r}; use GTC, IOC, FOK or PO.")
        return tif, post_only

    def _check_filters(
        self,
        ai: AssetInstance,
        type: str,
        amount: float,
        price: float | None,
        bar: Bar,
        reduce_only: bool,
    ) -> None:
        if not (math.isfinite(amount) and amount > 0):
            raise OrderRejected(f"Filter failure: LOT_SIZE (amount {amount!r} must be positive).")
        if abs(ai.round_amount(amount) - amount) > 1e-12 * max(1.0, amount):
            raise OrderRejected(
                f"Filter failure: LOT_SIZE (amount {amount!r} is not a multiple of "
                f"the step {ai.amount_step:g} for {ai.symbol})."
            )
        if amount < ai.amount_min or amount > ai.amount_max:
            raise OrderRejected(
                f"Filter failure: LOT_SIZE (amount {amount:g} outside [{ai.amount_min:g}, "
                f"{ai.amount_max:g}] for {ai.symbol})."
            )
        if type == "limit":
            if price is None or not (math.isfinite(price) and price > 0):
                raise OrderRejected(
                    f"Filter failure: PRICE_FILTER (price {price!r} must be positive)."
                )
            if abs(ai.round_price(price) - price) > 1e-9 * ai.price_tick:
                raise OrderRejected(
                    f"Filter failure: PRICE_FILTER (price {price!r} is not a multiple of the "
                    f"tick {ai.price_tick:g} for {ai.symbol})."
                )
        notional = amount * ai.contract_size * (price if price is not None else bar.close)
        if notional < ai.cost_min and not reduce_only:
            raise OrderRejected(
                f"Filter failure: NOTIONAL (value {notional:g} below the minimum {ai.cost_min:g} "
                f"for {ai.symbol})."
            )

    def _check_funds(
        self, ai: AssetInstance, side: str, amount: float, price: float, reduce_only: bool
    ) -> None:
        if ai.contract:
            pos = ai.short if side == "buy" else ai.long
            if reduce_only:
                if pos is None or amount > pos.contracts + 1e-12:
                    raise OrderRejected(
                        "ReduceOnly Order is rejected: it would not reduce the position."
                    )
                return
            closing = min(amount, pos.contracts) if pos is not None else 0.0
            opening = amount - closing
            need = commitment(ai, side, opening, price) + amount * price * ai.taker
            have = self.ledger.balance(ai.settle).free
            currency = ai.settle
        else:
            need = commitment(ai, side, amount, price)
            currency = ai.quote if side == "buy" else ai.base
            have = self.ledger.balance(currency).free
        if need > have + 1e-12:
            raise InsufficientFunds(
                f"Account has insufficient balance for requested action: needs {need:g} "
                f"{currency}, free {have:g}."
            )

    def _slipped(self, ai: AssetInstance, side: str, amount: float, bar: Bar, at: float) -> float:
        """What a taker pays starting from price `at`: the fill model's slippage on it."""
        fm = self.fill_model
        participation = min(1.0, amount / bar.volume) if bar.volume > 0 else 1.0
        slip = fm.spread_bps / 2e4 + fm.impact * (bar.high - bar.low) / bar.close * math.sqrt(
            participation
        )
        return at * (1 + slip) if side == "buy" else at * (1 - slip)

    def _taker_price(
        self, ai: AssetInstance, side: str, amount: float, bar: Bar, limit: float | None
    ) -> float:
        price = self._slipped(ai, side, amount, bar, bar.close)
        if limit is not None:
            price = min(price, limit) if side == "buy" else max(price, limit)
        return price

    def _available(self, symbol: str, bar: Bar) -> float:
        used_time, used = self._bar_used.get(symbol, (bar.time_ms, 0.0))
        if used_time != bar.time_ms:
            used = 0.0
        return max(bar.volume * self.fill_model.volume_cap - used, 0.0)

    def _take_volume(self, symbol: str, bar: Bar, amount: float) -> None:
        used_time, used = self._bar_used.get(symbol, (bar.time_ms, 0.0))
        if used_time != bar.time_ms:
            used = 0.0
        self._bar_used[symbol] = (bar.time_ms, used + amount)

    def _fill(
        self, ai: AssetInstance, order: Order, amount: float, price: float, taker: bool, now: int
    ) -> None:
        fee_rate = ai.taker if taker else ai.maker
        fee = amount * price * ai.contract_size * fee_rate
        trade_id = str(next(self._trade_ids))
        fill = OrderFilled(
            symbol=ai.symbol,
            client_id=order.client_id,
            trade_id=trade_id,
            timestamp=now,
            amount=amount,
            price=price,
            fee=fee,
            fee_currency=ai.settle if ai.contract else ai.quote,
            taker=taker,
        )
        sides = (ai.long is not None, ai.short is not None)
        apply(self.ledger, fill)
        settle_fill(self.ledger, fill)
        self._meta[order.client_id].updated = now
        trade = order.fills[-1]
        self._trades.setdefault(ai.symbol, []).append(trade)
        self._refresh_work()
        if self.direct is not None:  # the fill, and with it the order's news
            self.direct.on_ledger(order.client_id, fill)
        if self._listeners:
            self._emit("trade", self.trade_dict(trade))
            self._emit("order", self.order_dict(order))
        self._report_account(ai, fill, sides, now)

    def _report_account(
        self, ai: AssetInstance, fill: OrderFilled, sides: tuple[bool, bool], now: int
    ) -> None:
        """Report what a fill changed, as an exchange's account stream does: the balances it
        moved and, on a derivative, each side of the position that was or is open."""
        # Never older than the last report: an older one would be ignored as stale (Paper's
        # tape can stamp a fill before one already reported).
        stamp = self._reported_ms = max(self._reported_ms, now)
        if ai.contract:
            for side, was_open in zip((LONG, SHORT), sides, strict=True):
                if was_open or (ai.long if side == LONG else ai.short) is not None:
                    self._emit("position", self.position_dict(ai, side, stamp))
            currencies: tuple[str, ...] = (ai.settle,)
        else:
            currencies = (ai.base, ai.quote)
        if fill.fee_currency not in currencies:
            currencies = (*currencies, fill.fee_currency)
        balances = self.ledger.balances
        self._report_balances({c: balances[c].total for c in currencies if c in balances}, stamp)

    def _end(self, order: Order, status: str, now: int, reason: str) -> None:
        ended = OrderCancelled(order.symbol, order.client_id, now, status, reason)
        apply(self.ledger, ended)
        self._meta[order.client_id].updated = now
        for book in (self._resting, self._waiting):
            orders = book.get(order.symbol)
            if orders and order in orders:
                orders.remove(order)
        self._refresh_work()
        self._report_order(order, ended)

    def _lookup(self, id: str | None, symbol: str, params: Mapping[str, Any]) -> Order:
        client_id = params.get("clientOrderId") or params.get("origClientOrderId")
        order = None
        if id is not None:
            order = self.ledger.orders_by_id.get(str(id))
        elif client_id is not None:
            order = self.ledger.orders.get(str(client_id))
        if order is None or order.symbol != symbol:
            raise OrderNotFound(
                f"Order does not exist: no order {id or client_id!r} for {symbol} on this account."
            )
        return order

    # ccxt unified structures.
    def order_dict(self, order: Order) -> dict[str, Any]:
        meta = self._meta[order.client_id]
        filled = order.filled
        cost = sum(t.value for t in order.fills)
        average = (
            cost / (filled * self.ledger.assets[order.symbol].contract_size) if filled else None
        )
        fee_cost = sum(t.fee for t in order.fills)
        fee_currency = order.fills[0].fee_currency if order.fills else None
        return {
            "id": order.id,
            "clientOrderId": order.client_id,
            "timestamp": order.timestamp,
            "datetime": iso8601(order.timestamp),
            "lastTradeTimestamp": order.fills[-1].timestamp if order.fills else None,
            "lastUpdateTimestamp": meta.updated,
            "symbol": order.symbol,
            "type": "market" if order.price is None else "limit",
            "timeInForce": meta.time_in_force,
            "postOnly": meta.post_only,
            "reduceOnly": order.reduce_only,
            "side": order.side,
            "price": order.price if order.price is not None else average,
            "triggerPrice": order.trigger_price,
            "stopLossPrice": order.trigger_price if meta.trigger == "stop" else None,
            "takeProfitPrice": (order.trigger_price if meta.trigger == "take_profit" else None),
            "amount": order.amount,
            "filled": filled,
            "remaining": order.amount - filled,
            "cost": cost,
            "average": average,
            "status": order.status,
            "fee": {"cost": fee_cost, "currency": fee_currency} if order.fills else None,
            "fees": [],
            "trades": [],
            "info": {},
        }

    def trade_dict(self, trade: Any) -> dict[str, Any]:
        order: Order = trade.order
        return {
            "id": trade.id,
            "order": order.id,
            "clientOrderId": order.client_id,
            "timestamp": trade.timestamp,
            "datetime": iso8601(trade.timestamp),
            "symbol": order.symbol,
            "type": "market" if order.price is None else "limit",
            "side": order.side,
            "takerOrMaker": "taker" if trade.taker else "maker",
            "price": trade.price,
            "amount": trade.amount,
            "cost": trade.value,
            "fee": {"cost": trade.fee, "currency": trade.fee_currency},
            "fees": [{"cost": trade.fee, "currency": trade.fee_currency}],
            "info": {},
        }

    def position_dict(self, ai: AssetInstance, side: str, now: int = 0) -> dict[str, Any]:
        """The ccxt position of one side, as of `now` (default: its last change); a closed side
        reports zero contracts."""
        pos = ai.long if side == LONG else ai.short
        if pos is None:
            return {
                "symbol": ai.symbol,
                "side": side,
                "contracts": 0.0,
                "entryPrice": 0.0,
                "leverage": ai.leverage,
                "initialMargin": 0.0,
                "marginMode": "isolated",
                "hedged": False,
                "timestamp": now,
                "info": {},
            }
        return {
            "symbol": ai.symbol,
            "side": side,
            "contracts": pos.contracts,
            "contractSize": ai.contract_size,
            "entryPrice": pos.entry_price,
            "markPrice": ai.price,
            "notional": pos.notional,
            "leverage": pos.leverage,
            "collateral": pos.margin,
            "initialMargin": pos.margin,
            "maintenanceMargin": pos.maintenance_margin,
            "liquidationPrice": pos.liquidation_price,
            "unrealizedPnl": pos.unrealized_pnl,
            "marginMode": "isolated",
            "hedged": False,
            "timestamp": now or pos.timestamp,
            "datetime": iso8601(now or pos.timestamp),
            "info": {},
        }
