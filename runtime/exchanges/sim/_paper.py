"""Paper fills: the simulated exchange's engine against a live order book and trade tape.

**Book and tape fill model.**

* A market order, or the marketable part of a limit order, sweeps the current book from the
  best level outwards (never past its limit) and fills at the VWAP of the levels it takes, as
  taker. The liquidity it takes is used up until the book refreshes (a new snapshot or
  update), so two orders in a row do not both take the same level.
* IOC fills what the book holds within its limit and expires the rest; FOK fills in full or
  expires; a post-only order that would cross is rejected.
* A resting limit order joins the back of its price level: its place in the queue is the size
  the book showed at that price when it arrived. Public trades *at* its price use up that queue
  first; only the volume past the queue fills the order. A trade *through* its price (a sell
  below a resting bid) fills it directly. Resting fills are maker fills at the order's price.
* A protective order triggers on a trade print at or through its trigger (a sell stop on a
  print at or below it, a sell take-profit at or above it; the reverse for buys), never on
  the book. It then executes as a market order (stop-market) or a limit order (stop-limit)
  arriving at that moment: it sweeps the book as above, and a stop-limit's remainder rests.
  Funds, or the position for a reduce-only order, are checked when it triggers.
* Fees are the market's maker/taker fees.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime._errors import OrderRejected
from runtime.exchanges.sim._exchange import Bar, FillModel, SimExchange
from runtime.model._assets import AssetInstance
from runtime.model._orders import EXPIRED, OPEN, Order, falls_to

Level = tuple[float, float]  # (price, amount)


@dataclass(slots=True)
class Book:
    """An L2 book: bids best (highest) first, asks best (lowest) first."""

    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)
    version: int = 0
    time_ms: int = 0


class PaperFeed:
    """What the paper exchange knows of the market: books, the last trade price, bars."""

    def __init__(self) -> None:
        self.books: dict[str, Book] = {}
        self.last: dict[str, float] = {}
        self.bars: dict[str, Bar] = {}

    def set_book(
        self,
        symbol: str,
        bids: Sequence[Sequence[float]],
        asks: Sequence[Sequence[float]],
        time_ms: int | None = None,
    ) -> None:
        book = self.books.setdefault(symbol, Book())
        book.bids = [(float(p), float(q)) for p, q, *_ in bids]
        book.asks = [(float(p), float(q)) for p, q, *_ in asks]
        book.version += 1
        book.time_ms = time_ms if time_ms is not None else self.now_ms()

    def set_last(self, symbol: str, price: float) -> None:
        self.last[symbol] = float(price)

    def set_bar(self, symbol: str, bar: Bar) -> None:
        self.bars[symbol] = bar
        self.last.setdefault(symbol, bar.close)

    def bar(self, symbol: str) -> Bar | None:
        """A bar for the engine's checks: the last closed bar, priced at the last trade."""
        last = self.last.get(symbol)
        book = self.books.get(symbol)
        if last is None and book is not None and book.bids and book.asks:
            last = (book.bids[0][0] + book.asks[0][0]) / 2
        if last is None:
            return None
        base = self.bars.get(symbol)
        if base is None:
            return Bar(self.now_ms(), last, last, last, last, 0.0)
        return base._replace(close=last)

    def now_ms(self) -> int:
        return int(time.time() * 1000)


class PaperExchange(SimExchange):
    """The simulated exchange with the book-and-tape fill model (module docstring)."""

    def __init__(
        self,
        markets: Mapping[str, Mapping[str, Any]],
        feed: PaperFeed,
        *,
        balances: Mapping[str, float],
        margin: str | None = None,
        exchange_id: str = "paper",
    ) -> None:
        super().__init__(
            markets,
            feed,
            balances=balances,
            margin=margin,
            fill_model=FillModel(),
            exchange_id=exchange_id,
        )
        self.paper_feed = feed
        # (symbol, side, price) -> amount taken from that level since the book's version
        self._taken: dict[tuple[str, str, float], float] = {}
        self._taken_version: dict[str, int] = {}
        self._queue: dict[str, float] = {}  # client id -> volume ahead in its level

    # The book, minus what paper orders already took from it.
    def _levels(self, symbol: str, side: str) -> list[Level]:
        book = self.paper_feed.books.get(symbol)
        if book is None:
            return []
        if self._taken_version.get(symbol) != book.version:
            self._taken = {k: v for k, v in self._taken.items() if k[0] != symbol}
            self._taken_version[symbol] = book.version
        levels = book.asks if side == "buy" else book.bids
        out = []
        for price, amount in levels:
            left = amount - self._taken.get((symbol, side, price), 0.0)
            if left > 1e-15:
                out.append((price, left))
        return out

    def _sweep(
        self, symbol: str, side: str, amount: float, limit: float | None
    ) -> tuple[float, float, list[Level]]:
        """(amount available, VWAP, levels taken) for taking `amount` within `limit`."""
        got = 0.0
        value = 0.0
        taken: list[Level] = []
        for price, size in self._levels(symbol, side):
            if limit is not None and (price > limit if side == "buy" else price < limit):
                break
            take = min(size, amount - got)
            got += take
            value += take * price
            taken.append((price, take))
            if got >= amount - 1e-15:
                break
        return got, (value / got if got else 0.0), taken

    def _quote(
        self,
        ai: AssetInstance,
        side: str,
        type: str,
        amount: float,
        price: float | None,
        bar: Bar,
    ) -> tuple[bool, float]:
        levels = self._levels(ai.symbol, side)
        if not levels:
            if type == "market":
                raise OrderRejected(f"No liquidity: the {ai.symbol} book is empty.")
            assert price is not None
            return False, price
        best = levels[0][0]
        marketable = type == "market" or (
            price is not None and (price >= best if side == "buy" else price <= best)
        )
        if not marketable:
            assert price is not None
            return False, price
        limit = None if type == "market" else price
        got, vwap, _ = self._sweep(ai.symbol, side, amount, limit)
        return True, vwap if got else best

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
        symbol = ai.symbol
        if marketable:
            limit = None if type == "market" else order.price
            got, vwap, taken = self._sweep(symbol, order.side, order.amount, limit)
            fill = ai.round_amount(got)
            if tif == "FOK" and fill < order.amount:
                fill = 0.0
            if fill > 0:
                for price, take in taken:
                    key = (symbol, order.side, price)
                    self._taken[key] = self._taken.get(key, 0.0) + take
                self._fill(ai, order, fill, vwap, taker=True, now=now)
            if order.status == OPEN and (type == "market" or tif in ("IOC", "FOK")):
                self._end(order, EXPIRED, now, "the book had no more within the limit")
        elif tif in ("IOC", "FOK"):
            self._end(order, EXPIRED, now, "not marketable")
        if order.status == OPEN and type != "market" and tif not in ("IOC", "FOK"):
            self._queue[order.client_id] = self._queue_ahead(symbol, order)
            self._resting.setdefault(symbol, []).append(order)

    def _queue_ahead(self, symbol: str, order: Order) -> float:
        book = self.paper_feed.books.get(symbol)
        if book is None:
            return 0.0
        levels = book.bids if order.side == "buy" else book.asks
        return sum(q for p, q in levels if p == order.price)

    def on_bar(self) -> None:
        """Paper fills come from the tape (`on_public_trades`), not from bars."""

    def _fire(self, ai: AssetInstance, order: Order, at: float, bar: Bar, now: int) -> None:
        """A triggered protective order arrives as a market or limit order (module docstring)."""
        self._meta[order.client_id].triggered = True
        if not self._can_fund(ai, order, at):
            self._end(order, EXPIRED, now, "no funds (or no position) when it triggered")
            return
        kind = "market" if order.price is None else "limit"
        try:
            marketable, exec_price = self._quote(
                ai, order.side, kind, order.amount, order.price, bar
            )
        except OrderRejected:  # an empty book: nothing to execute against
            self._end(order, EXPIRED, now, "the book was empty when it triggered")
            return
        self._execute(ai, order, kind, "GTC", marketable, exec_price, bar, now)

    def _trigger_on_print(self, ai: AssetInstance, price: float, stamp: int) -> None:
        waiting = self._waiting.get(ai.symbol)
        if not waiting:
            return
        for order in list(waiting):
            # Prints are taken as they arrive (as resting orders take them), not by their
            # stamps: the exchange's clock and ours differ.
            trigger = order.trigger_price
            assert trigger is not None
            if falls_to(order.side, self._meta[order.client_id].trigger):
                hit = price <= trigger
            else:
                hit = price >= trigger
            if hit:
                bar = self.paper_feed.bar(ai.symbol)
                assert bar is not None  # a print has set the last price
                waiting.remove(order)
                self._fire(ai, order, price, bar, stamp)
        self._refresh_work()

    def on_public_trades(self, symbol: str, trades: Sequence[Mapping[str, Any]]) -> None:
        """Fill resting orders from public trades, queue first (module docstring)."""
        ai = self.ledger.assets.get(symbol)
        resting = self._resting.get(symbol)
        for trade in trades:
            price = float(trade["price"])
            self.paper_feed.set_last(symbol, price)
            stamp = int(trade.get("timestamp") or self.paper_feed.now_ms())
            if ai is not None:
                self._trigger_on_print(ai, price, stamp)
                resting = self._resting.get(symbol)
            if ai is None or not resting:
                continue
            volume = float(trade["amount"])
            for order in list(resting):
                if volume <= 0:
                    break
                assert order.price is not None
                if order.side == "buy":
                    through, at = price < order.price, price == order.price
                else:
                    through, at = price > order.price, price == order.price
                if not (through or at):
                    continue
                if at:
                    ahead = self._queue.get(order.client_id, 0.0)
                    used = min(ahead, volume)
                    self._queue[order.client_id] = ahead - used
                    volume -= used
                take = ai.round_amount(min(order.remaining, volume))
                if take <= 0:
                    continue
                volume -= take
                self._fill(ai, order, take, order.price, taker=False, now=stamp)
            resting[:] = [o for o in resting if o.status == OPEN]
        self._refresh_work()
