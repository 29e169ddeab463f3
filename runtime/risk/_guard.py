"""`RiskGuard`: one strategy's limits at work (DESIGN §9).

It answers three questions the modes ask:

* before an order is written: may it go? (`check`: halted, capital cap, notional, position,
  open orders, order rate, price band), each refusal naming the rule, the values and the fix;
* at each tick: has equity breached `max_drawdown` or `max_daily_loss`? (`breach`);
* after an `on_tick` exception: is that one too many in a row? (`strategy_error`).

The halt itself (cancel, flatten, the `Halted` event) is done by the modes, which can send;
the guard only says when, keeps the figures, and raises the alerts.

**Equity** is valued in the cash currency at the markets' last prices. With a capital cap
(Live with ``initial_cash``) it is the strategy's own book: the cap, plus what its own fills
brought in or paid out, plus what they hold; otherwise it is the account's balances in the
strategy's currencies (and the unrealised PnL of its positions). Markets quoted in another
currency than the cash currency count at the price of that currency when a universe market
gives one, else not at all.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime._errors import OrderCheckFailed
from runtime.model._assets import AssetInstance
from runtime.risk._alerts import Alert, AlertQueue, Webhook, clean_alert
from runtime.risk._limits import Risk
from traces._schema import Kind

if TYPE_CHECKING:
    from runtime.engine._runtime import Runtime

log = logging.getLogger("vigil.risk")

DAY_MS = 86_400_000
MINUTE_MS = 60_000
LOG_INTERVAL_S = 60.0  # past the first few of a streak, strategy errors are logged once a minute


def _n(x: float) -> str:
    return f"{x:,.2f}" if abs(x) >= 1 else f"{x:.8g}"


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


@dataclass(slots=True)
class _Book:
    """One market's own fills so far (capital cap): how many are counted, the held amount and
    its average cost, and the cash they moved."""

    counted: int = 0
    qty: float = 0.0
    avg: float = 0.0
    cash_flow: float = 0.0


class RiskGuard:
    """See the module docstring. `cap` is the capital cap (Live's ``initial_cash``), or None."""

    def __init__(
        self,
        rt: Runtime,
        risk: Risk,
        *,
        cap: float | None = None,
        webhook_url: str | None = None,
    ) -> None:
        self.rt = rt
        self.risk = risk
        self.cap = cap
        self.alerts = AlertQueue()
        self.webhook = Webhook(webhook_url) if webhook_url else None
        self.sent_ms: collections.deque[int] = collections.deque()
        self.errors_in_a_row = 0
        self.peak: float | None = None
        self.day: int | None = None
        self.day_start = 0.0
        self._books: dict[str, _Book] = {}
        self._error_logged = -LOG_INTERVAL_S
        self._errors_unlogged = 0

    # What the strategy reads.
    @property
    def trading(self) -> bool:
        return self.rt.state.halted is None

    def budget_left(self) -> float:
        """Cash the strategy may still commit: the cap less its net spend (fills' cost less
        proceeds, plus open-order commitments) with a cap; the free cash without one."""
        rt = self.rt
        if self.cap is None:
            return rt.state.balance(rt.cash_currency).free
        return self._own_cash() - self._committed() - self._position_margin()

    # Alerts.
    def alert(self, kind: str, message: str, data: Mapping[str, Any] | None = None) -> Alert:
        """Record, log and queue an alert for `on_alert` (and the webhook)."""
        rt = self.rt
        alert = clean_alert(kind, message, data, strategy=rt.name, timestamp=rt.now_ms())
        rt.record(Kind.ALERT, {"kind": kind, "message": alert.message, "data": dict(alert.data)})
        self.alerts.put(alert)
        if self.webhook is not None:
            self.webhook.post(alert)
        return alert

    # Pre-trade limits.
    def check(
        self,
        ai: AssetInstance,
        side: str,
        amount: float,
        price: float | None,
        reduce_only: bool,
    ) -> OrderCheckFailed | None:
        """Why this order must not be written, or None. Called after the local checks."""
        rt = self.rt
        halted = rt.state.halted
        if halted is not None:
            return OrderCheckFailed(
                "halted", f"halted: {halted}; resume(s) to trade again (cancels still work)"
            )
        risk = self.risk
        sym = ai.symbol
        basis = price if price is not None else ai.price
        value = amount * basis * ai.contract_size if math.isfinite(basis) else 0.0
        cur = rt.cash_currency
        if risk.max_order_notional is not None and value > risk.max_order_notional:
            return OrderCheckFailed(
                "max_order_notional",
                f"order value {_n(value)} {cur} on {sym} exceeds "
                f"Risk(max_order_notional={risk.max_order_notional:g}); send at most "
                f"{ai.round_amount(risk.max_order_notional / basis / ai.contract_size):g} "
                "or raise the limit",
            )
        if risk.max_position_notional is not None and not reduce_only:
            signed = self._holding(ai)
            after = signed + (amount if side == "buy" else -amount)
            if abs(after) > abs(signed):
                notional = abs(after) * ai.contract_size * basis
                if notional > risk.max_position_notional:
                    return OrderCheckFailed(
                        "max_position_notional",
                        f"the order takes the position on {sym} to {_n(notional)} {cur}, past "
                        f"Risk(max_position_notional={risk.max_position_notional:g}) (now "
                        f"{_n(abs(signed) * ai.contract_size * basis)}); send less or raise "
                        "the limit",
                    )
        if risk.max_open_orders is not None:
            open_now = sum(len(a.open_orders) for a in rt.universe)
            if open_now >= risk.max_open_orders:
                return OrderCheckFailed(
                    "max_open_orders",
                    f"{open_now} orders are open, the most Risk(max_open_orders="
                    f"{risk.max_open_orders}) allows; cancel some or raise the limit",
                )
        if risk.max_orders_per_minute is not None:
            now = rt.now_ms()
            sent = self.sent_ms
            while sent and sent[0] <= now - MINUTE_MS:
                sent.popleft()
            if len(sent) >= risk.max_orders_per_minute:
                return OrderCheckFailed(
                    "max_orders_per_minute",
                    f"{len(sent)} orders sent in the last 60 s, the most "
                    f"Risk(max_orders_per_minute={risk.max_orders_per_minute}) allows; wait "
                    f"{(sent[0] + MINUTE_MS - now) / 1000:.1f} s or raise the limit",
                )
        if risk.price_band is not None and price is not None:
            last = ai.price
            if math.isfinite(last) and last > 0:
                off = abs(price / last - 1.0)
                if off > risk.price_band + 1e-12:
                    return OrderCheckFailed(
                        "price_band",
                        f"limit price {price:g} is {_pct(off)} from the last price {last:g} on "
                        f"{sym}; Risk(price_band={risk.price_band:g}) allows "
                        f"{_pct(risk.price_band)}: price it between "
                        f"{last * (1 - risk.price_band):g} and {last * (1 + risk.price_band):g}",
                    )
        if self.cap is not None and not reduce_only and (ai.contract or side == "buy"):
            need = amount * basis * ai.contract_size
            need = need / ai.leverage if ai.contract else need * (1.0 + ai.taker)
            left = self.budget_left()
            if need > left + 1e-9:
                return OrderCheckFailed(
                    "initial_cash",
                    f"order needs {_n(need)} {cur} but the strategy's budget has {_n(left)} "
                    f"left of initial_cash={self.cap:g} (its fills' cost less proceeds, plus "
                    "open orders); send less, or give the strategy a larger initial_cash",
                )
        return None

    def note_sent(self) -> None:
        if self.risk.max_orders_per_minute is not None:
            self.sent_ms.append(self.rt.now_ms())

    # Equity limits.
    def equity(self) -> float:
        """The strategy's equity in the cash currency (module docstring)."""
        rt = self.rt
        prices = self._currency_prices()
        if self.cap is not None:
            total = self._own_cash()
            for sym, book in self._books.items():
                ai = rt.state.assets[sym]
                px = ai.price * prices.get(ai.quote if not ai.contract else ai.settle, 0.0)
                if ai.contract:
                    total += (
                        book.qty
                        * ai.contract_size
                        * (ai.price - book.avg)
                        * prices.get(ai.settle, 0.0)
                    )
                elif math.isfinite(px):
                    total += book.qty * px
            return total
        total = 0.0
        for currency in rt.balance_scope:
            b = rt.state.balances.get(currency)
            if b is not None and b.total:
                px = prices.get(currency, 0.0)
                if math.isfinite(px):
                    total += b.total * px
        for ai in rt.universe:
            for pos, sign in ((ai.long, 1.0), (ai.short, -1.0)):
                if pos is not None and math.isfinite(ai.price):
                    upnl = sign * pos.contracts * ai.contract_size * (ai.price - pos.entry_price)
                    total += upnl * prices.get(ai.settle, 0.0)
        return total

    def breach(self, now_ms: int) -> tuple[str, str, dict[str, Any]] | None:
        """(rule, reason, figures) when equity has breached a limit now; else None. Keeps the
        peak and the day's opening equity."""
        risk = self.risk
        if self.rt.state.halted is not None or not risk.watches_equity:
            return None
        equity = self.equity()
        if not math.isfinite(equity):
            return None
        day = now_ms // DAY_MS
        if self.day != day:  # a new UTC day: its loss counts from here
            self.day = day
            self.day_start = equity
        if self.peak is None or equity > self.peak:
            self.peak = equity
        cur = self.rt.cash_currency
        if risk.max_drawdown is not None and self.peak > 0:
            drawdown = (self.peak - equity) / self.peak
            if drawdown >= risk.max_drawdown:
                return (
                    "max_drawdown",
                    f"max_drawdown: equity {_n(equity)} {cur} is {_pct(drawdown)} below its "
                    f"peak {_n(self.peak)} (limit {_pct(risk.max_drawdown)})",
                    {"equity": equity, "peak": self.peak, "drawdown": drawdown},
                )
        if risk.max_daily_loss is not None:
            loss = self.day_start - equity
            if loss >= risk.max_daily_loss:
                return (
                    "max_daily_loss",
                    f"max_daily_loss: equity {_n(equity)} {cur} is {_n(loss)} below its "
                    f"00:00 UTC value {_n(self.day_start)} (limit {risk.max_daily_loss:g})",
                    {"equity": equity, "day_start": self.day_start, "loss": loss},
                )
        return None

    def reset_watermarks(self) -> None:
        """After `resume`: the peak and the day's opening equity start again from now, or the
        same breach would halt again at once."""
        self.peak = None
        self.day = None
        self.errors_in_a_row = 0

    # Strategy errors.
    def strategy_error(self, exc: BaseException, bar: Any) -> bool:
        """Record an `on_tick` exception (past the first few of a streak, logged and alerted
        at most once a minute); True when it is
        ``max_strategy_errors`` in a row and the strategy must halt."""
        rt = self.rt
        self.errors_in_a_row += 1
        limit = self.risk.max_strategy_errors
        rt.record(
            Kind.STRATEGY_ERROR,
            {"error": repr(exc), "bar": str(bar), "in_a_row": self.errors_in_a_row},
        )
        now = time.monotonic()  # wall time: a backtest's minute-bars pass in microseconds
        first_few = self.errors_in_a_row <= (limit or 3)
        if first_few or now - self._error_logged >= LOG_INTERVAL_S:
            more = (
                f" ({self._errors_unlogged} more since the last line)"
                if self._errors_unlogged
                else ""
            )
            log.error(
                "strategy %s: on_tick at bar %s raised %r (%d in a row%s)%s",
                rt.name,
                bar,
                exc,
                self.errors_in_a_row,
                f" of {limit} allowed" if limit else "",
                more,
                exc_info=exc,
            )
            self._error_logged = now
            self._errors_unlogged = 0
            self.alert(
                "strategy_error",
                f"on_tick at bar {bar} raised {exc!r}",
                {"bar": str(bar), "error": repr(exc), "in_a_row": self.errors_in_a_row},
            )
        else:
            self._errors_unlogged += 1
        return limit is not None and self.errors_in_a_row >= limit and rt.state.halted is None

    # The strategy's own book (capital cap).
    def _update_books(self) -> None:
        for ai in self.rt.universe:
            trades = ai.trades
            book = self._books.get(ai.symbol)
            if book is None:
                book = self._books[ai.symbol] = _Book()
            for t in trades[book.counted :]:
                signed = t.amount if t.side == "buy" else -t.amount
                fee_q = t.fee if t.fee_currency in (ai.quote, ai.settle) else t.fee * t.price
                if ai.contract:
                    if book.qty == 0 or (book.qty > 0) == (signed > 0):
                        size = abs(book.qty) + abs(signed)
                        book.avg = (abs(book.qty) * book.avg + abs(signed) * t.price) / size
                    else:
                        closing = min(abs(signed), abs(book.qty))
                        direction = 1.0 if book.qty > 0 else -1.0
                        book.cash_flow += (
                            closing * (t.price - book.avg) * direction * (ai.contract_size)
                        )
                        if abs(signed) > abs(book.qty):
                            book.avg = t.price  # flipped: the rest opens at this price
                    book.cash_flow -= fee_q
                    book.qty += signed
                else:
                    book.cash_flow -= signed * t.price + fee_q
                    book.qty += signed - (t.fee if t.fee_currency == ai.base else 0.0)
                if abs(book.qty) < 1e-12:
                    book.qty = 0.0
            book.counted = len(trades)

    def _own_cash(self) -> float:
        self._update_books()
        prices = self._currency_prices()
        total = float(self.cap or 0.0)
        for sym, book in self._books.items():
            ai = self.rt.state.assets[sym]
            total += book.cash_flow * prices.get(ai.settle if ai.contract else ai.quote, 0.0)
        return total

    def _committed(self) -> float:
        """Cash-currency commitments of open orders (spot buys, and margin orders)."""
        cur = self.rt.cash_currency
        total = 0.0
        for ai in self.rt.universe:
            if (ai.settle if ai.contract else ai.quote) != cur:
                continue
            for order in ai.open_orders.values():
                if ai.contract or order.side == "buy":
                    total += order.committed
        return total

    def _position_margin(self) -> float:
        return sum(
            p.margin for ai in self.rt.universe for p in (ai.long, ai.short) if p is not None
        )

    def own_holding(self, ai: AssetInstance) -> float:
        """What the strategy's own fills hold of the market (base, or signed contracts)."""
        self._update_books()
        book = self._books.get(ai.symbol)
        return book.qty if book is not None else 0.0

    def _holding(self, ai: AssetInstance) -> float:
        """The market's signed position (margin) or base holding (spot), as reported."""
        if ai.contract:
            if ai.long is not None:
                return ai.long.contracts
            return -ai.short.contracts if ai.short is not None else 0.0
        if self.cap is not None:
            return self.own_holding(ai)
        return self.rt.state.balance(ai.base).total

    def _currency_prices(self) -> dict[str, float]:
        """Each currency's price in the cash currency, through at most one other market."""
        prices = {self.rt.cash_currency: 1.0}
        for _ in range(2):
            for ai in self.rt.universe:
                if ai.contract:
                    continue
                px = ai.price
                if not (math.isfinite(px) and px > 0):
                    continue
                if ai.base not in prices and ai.quote in prices:
                    prices[ai.base] = px * prices[ai.quote]
                if ai.quote not in prices and ai.base in prices:
                    prices[ai.quote] = prices[ai.base] / px
        return prices
