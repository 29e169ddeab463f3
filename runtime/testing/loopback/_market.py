"""Public market data of the loopback exchange: order books, klines, trades, tickers.

All of it derives from the :class:`~._feed.BarClock`, per market (spot or USDⓈ-M):

- **Order book.** ``BOOK_LEVELS`` levels a side around the last close, spaced by a whole number
  of ticks (about 0.5 bp of the price), sized from the last bar's volume. It is rebuilt when a
  bar closes; each rebuild is one diff event whose update id is the previous one plus one, so
  a REST snapshot (``lastUpdateId``) and the ``@depth`` diff stream line up the way Binance's
  "manage a local order book" recipe (and ccxt.pro) expects: spot ``U == lastUpdateId + 1``,
  futures ``pu == lastUpdateId``.
- **Klines.** Closed bars, plus the forming bar shown flat at the last close with no volume.
  Intervals that are whole multiples of the feed's timeframe are aggregated on UTC boundaries.
- **Trades.** Each closed bar prints four public trades (open, the two extremes, close), a
  quarter of its volume each.
- **24h ticker.** Rolled over the closed bars of the last 24 hours.

Not thread-safe: used from the server's event loop only.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable
from typing import Any, Final

import numpy as np

from runtime.model._bars import TIMEFRAMES, timeframe_ns
from runtime.testing.loopback._auth import BinanceError
from runtime.testing.loopback._feed import BarClock
from runtime.testing.loopback._wire import Market

__all__ = ["BOOK_LEVELS", "MarketData"]

BOOK_LEVELS: Final = 100
_TRADES_KEPT: Final = 1_000
_DAY_MS: Final = 86_400_000
_BOOK_SHARE: Final = 0.02  # share of the last bar's volume resting at each level


def interval_ms(interval: str) -> int:
    """Milliseconds of a Binance kline interval, or -1120 for an unknown one."""
    if interval not in TIMEFRAMES:
        raise BinanceError(-1120, "Invalid interval.")
    return timeframe_ns(interval) // 1_000_000


def _aggregate(trade: dict[str, Any]) -> dict[str, Any]:
    """A print as Binance's aggregate trade, whose fields REST and the stream share; each
    print is its own aggregate."""
    return {
        "a": trade["id"],
        "p": trade["price"],
        "q": trade["qty"],
        "f": trade["id"],
        "l": trade["id"],
        "T": trade["time"],
        "m": trade["isBuyerMaker"],
    }


class _Book:
    __slots__ = ("asks", "bids", "update_id")

    def __init__(self) -> None:
        self.update_id = 1
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}


class MarketData:
    """Market data of one Binance market type over a shared :class:`BarClock`."""

    def __init__(self, clock: BarClock, markets: Iterable[Market]) -> None:
        self.clock = clock
        self.markets: dict[str, Market] = {m.id: m for m in markets}
        self.futures = any(m.futures for m in self.markets.values())
        self._books: dict[str, _Book] = {}
        self._trades: dict[str, collections.deque[dict[str, Any]]] = {}
        self._trade_ids: dict[str, int] = {}
        # [start, end) ms ranges with no klines, as after an exchange outage (tests set them).
        self.outages: list[tuple[int, int]] = []
        for m in self.markets.values():
            self._trades[m.id] = collections.deque(maxlen=_TRADES_KEPT)
            self._trade_ids[m.id] = 0
            book = self._books[m.id] = _Book()
            book.bids, book.asks = self._levels(m)
            # Seed the tape with the last few closed bars, so /trades is never empty.
            for i in range(max(clock.index - 5, 0), clock.index):
                self._print_trades(m, i)

    def market(self, market_id: str | None) -> Market:
        if not market_id:
            raise BinanceError(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        m = self.markets.get(market_id)
        if m is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return m

    # Order book.
    def _levels(self, m: Market) -> tuple[dict[str, str], dict[str, str]]:
        last = self.clock.last_price(m.symbol)
        bar = self.clock.bar(m.symbol)
        volume = bar.volume if bar is not None else 0.0
        tick = float(m.tick)
        gap = max(1, round(last * 5e-5 / tick))  # in ticks
        best_bid = math.floor(last / tick - gap / 2)
        best_ask = max(math.ceil(last / tick + gap / 2), best_bid + 1)
        step = float(m.step)
        bids: dict[str, str] = {}
        asks: dict[str, str] = {}
        for j in range(BOOK_LEVELS):
            size = volume * _BOOK_SHARE * (1 + 0.1 * j) * (1 + ((j * 7919) % 13) / 26)
            steps = max(int(size / step), 1)
            if best_bid - j * gap > 0:
                bids[m.ticks(best_bid - j * gap)] = m.steps(steps)
            asks[m.ticks(best_ask + j * gap)] = m.steps(steps)
        return bids, asks

    def depth(self, m: Market, limit: int) -> dict[str, Any]:
        """``GET /api/v3/depth`` (``/fapi/v1/depth``): ``limit`` levels a side, best first."""
        book = self._books[m.id]
        bids = sorted(book.bids.items(), key=lambda kv: -float(kv[0]))[:limit]
        asks = sorted(book.asks.items(), key=lambda kv: float(kv[0]))[:limit]
        out: dict[str, Any] = {"lastUpdateId": book.update_id}
        if self.futures:
            now = self.clock.now_ms()
            out["E"] = now
            out["T"] = now
        out["bids"] = [[p, q] for p, q in bids]
        out["asks"] = [[p, q] for p, q in asks]
        return out

    def top(self, m: Market) -> tuple[tuple[str, str], tuple[str, str]]:
        """Best bid and best ask as (price, qty) strings."""
        book = self._books[m.id]
        bid = max(book.bids.items(), key=lambda kv: float(kv[0]))
        ask = min(book.asks.items(), key=lambda kv: float(kv[0]))
        return bid, ask

    def _rebuild_book(self, m: Market) -> dict[str, Any] | None:
        """Rebuild the book after a bar closed; the ``depthUpdate`` event, or None if unchanged."""
        book = self._books[m.id]
        bids, asks = self._levels(m)
        diff_b = [[p, q] for p, q in bids.items() if book.bids.get(p) != q]
        diff_b += [[p, m.steps(0)] for p in book.bids if p not in bids]
        diff_a = [[p, q] for p, q in asks.items() if book.asks.get(p) != q]
        diff_a += [[p, m.steps(0)] for p in book.asks if p not in asks]
        if not diff_b and not diff_a:
            return None
        previous = book.update_id
        book.update_id += 1
        book.bids, book.asks = bids, asks
        now = self.clock.now_ms()
        event: dict[str, Any] = {"e": "depthUpdate", "E": now}
        if self.futures:
            event["T"] = now
        event.update({"s": m.id, "U": book.update_id, "u": book.update_id})
        if self.futures:
            event["pu"] = previous
        event["b"] = diff_b
        event["a"] = diff_a
        return event

    # Trades.
    def _print_trades(self, m: Market, i: int) -> list[dict[str, Any]]:
        bar = self.clock.closed_bar(m.symbol, i)
        if bar is None or not bar.volume > 0:
            return []
        up = bar.close >= bar.open
        prices = (bar.open, bar.low if up else bar.high, bar.high if up else bar.low, bar.close)
        qty = max(math.floor(bar.volume / 4 / float(m.step)), 1)
        printed = []
        for k, price in enumerate(prices):
            self._trade_ids[m.id] += 1
            trade = {
                "id": self._trade_ids[m.id],
                "price": m.ticks(max(round(price / float(m.tick)), 1)),
                "qty": m.steps(qty),
                "time": bar.time_ms + (k + 1) * self.clock.tf_ms // 5,
                "isBuyerMaker": k % 2 == 1,
            }
            self._trades[m.id].append(trade)
            printed.append(trade)
        return printed

    def recent_trades(self, m: Market, limit: int) -> list[dict[str, Any]]:
        """``GET /api/v3/trades`` (``/fapi/v1/trades``): the last ``limit`` public trades."""
        out = []
        for t in list(self._trades[m.id])[-limit:]:
            quote = float(t["price"]) * float(t["qty"])
            row = {
                "id": t["id"],
                "price": t["price"],
                "qty": t["qty"],
                "quoteQty": m.quote_qty(quote),
                "time": t["time"],
                "isBuyerMaker": t["isBuyerMaker"],
            }
            if not self.futures:
                row["isBestMatch"] = True
            out.append(row)
        return out

    def agg_trades(self, m: Market, limit: int) -> list[dict[str, Any]]:
        """``GET /api/v3/aggTrades`` (``/fapi/v1/aggTrades``): each print is its own aggregate."""
        out = []
        for t in list(self._trades[m.id])[-limit:]:
            row = _aggregate(t)
            if not self.futures:
                row["M"] = True
            out.append(row)
        return out

    def trade_event(self, m: Market, t: dict[str, Any], *, aggregate: bool) -> dict[str, Any]:
        now = self.clock.now_ms()
        if aggregate:
            event = {"e": "aggTrade", "E": now, "s": m.id, **_aggregate(t)}
        else:
            event = {
                "e": "trade",
                "E": now,
                "s": m.id,
                "t": t["id"],
                "p": t["price"],
                "q": t["qty"],
                "T": t["time"],
                "m": t["isBuyerMaker"],
            }
        if not self.futures:
            event["M"] = True
        return event

    # Klines.
    def klines(
        self,
        m: Market,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[list[Any]]:
        """``GET /api/v3/klines`` (``/fapi/v1/klines``), oldest first, forming bar last."""
        tf = interval_ms(interval)
        base = self.clock.tf_ms
        if tf % base:
            raise BinanceError(
                -1120,
                f"Invalid interval. (the loopback market has {self.clock.timeframe} bars; "
                f"use {self.clock.timeframe} or a whole multiple of it)",
            )
        first = -(-self.clock.time_of(0) // tf) * tf  # first whole bucket
        last = self.clock.forming_open_ms - self.clock.forming_open_ms % tf
        if start_ms is not None:
            first = max(first, -(-start_ms // tf) * tf)
        if end_ms is not None:
            last = min(last, end_ms - end_ms % tf)
        if last < first:
            return []
        if self.outages:
            # Binance has no klines for its outages and fills the page from what exists.
            times = [t for t in range(first, last + 1, tf) if not self._in_outage(t, tf)]
            times = times[:limit] if start_ms is not None else times[-limit:]
            return [self._kline(m, t, tf) for t in times]
        count = (last - first) // tf + 1
        if count > limit:
            if start_ms is not None:
                last = first + (limit - 1) * tf
            else:
                first = last - (limit - 1) * tf
        return [self._kline(m, t, tf) for t in range(first, last + 1, tf)]

    def _in_outage(self, open_ms: int, tf: int) -> bool:
        return any(a < open_ms + tf and open_ms < b for a, b in self.outages)

    def _kline(self, m: Market, open_ms: int, tf: int) -> list[Any]:
        o, h, lo, c, v, _closed = self.bucket(m, open_ms, tf)
        trades = 4 * int(np.count_nonzero(v)) if isinstance(v, np.ndarray) else 0
        volume = float(np.sum(v)) if isinstance(v, np.ndarray) else 0.0
        quote = volume * c
        return [
            open_ms,
            m.price(o),
            m.price(h),
            m.price(lo),
            m.price(c),
            m.qty(volume),
            open_ms + tf - 1,
            m.quote_qty(quote),
            trades,
            m.qty(volume / 2),
            m.quote_qty(quote / 2),
            "0",
        ]

    def bucket(
        self, m: Market, open_ms: int, tf: int
    ) -> tuple[float, float, float, float, Any, bool]:
        """OHLC, base volumes and whether it is closed, of the bucket opening at ``open_ms``."""
        i0 = self.clock.index_at(open_ms)
        i1 = self.clock.index_at(open_ms + tf)
        cols = self.clock.closed(m.symbol, i0, i1)
        last = self.clock.last_price(m.symbol)
        closed = i1 <= self.clock.index
        if len(cols["close"]) == 0:  # only the forming bar: flat at the last close
            return last, last, last, last, None, False
        o = float(cols["open"][0])
        h = float(cols["high"].max())
        lo = float(cols["low"].min())
        c = float(cols["close"][-1])
        if not closed:  # the forming bar trades at the last close
            h, lo, c = max(h, last), min(lo, last), last
        return o, h, lo, c, cols["volume"], closed

    def kline_event(self, m: Market, interval: str) -> dict[str, Any]:
        """The ``@kline_<interval>`` event for the bucket holding the forming bar."""
        tf = interval_ms(interval)
        now = self.clock.now_ms()
        open_ms = self.clock.forming_open_ms - self.clock.forming_open_ms % tf
        return self._kline_event(m, interval, open_ms, tf, now)

    def closed_kline_event(self, m: Market, interval: str) -> dict[str, Any] | None:
        """The final (``x: true``) event of a bucket that the last closed bar completed."""
        tf = interval_ms(interval)
        closed_end = self.clock.forming_open_ms  # end of the bar that just closed
        if closed_end % tf:
            return None
        return self._kline_event(m, interval, closed_end - tf, tf, self.clock.now_ms())

    def _kline_event(
        self, m: Market, interval: str, open_ms: int, tf: int, now: int
    ) -> dict[str, Any]:
        row = self._kline(m, open_ms, tf)
        closed = open_ms + tf <= self.clock.forming_open_ms
        first_id = self._trade_ids[m.id] if row[8] else -1
        k = {
            "t": row[0],
            "T": row[6],
            "s": m.id,
            "i": interval,
            "f": first_id,
            "L": first_id,
            "o": row[1],
            "c": row[4],
            "h": row[2],
            "l": row[3],
            "v": row[5],
            "n": row[8],
            "x": closed,
            "q": row[7],
            "V": row[9],
            "Q": row[10],
            "B": "0",
        }
        return {"e": "kline", "E": now, "s": m.id, "k": k}

    # Tickers.
    def ticker_24h(self, m: Market) -> dict[str, Any]:
        """``GET /api/v3/ticker/24hr`` (``/fapi/v1/ticker/24hr``) for one symbol."""
        now = self.clock.now_ms()
        start = self.clock.index_at(now - _DAY_MS) + 1
        cols = self.clock.closed(m.symbol, start, self.clock.index)
        last = self.clock.last_price(m.symbol)
        if len(cols["close"]):
            o = float(cols["open"][0])
            h, lo = float(cols["high"].max()), float(cols["low"].min())
            v = float(cols["volume"].sum())
            q = float(np.sum(cols["volume"] * cols["close"]))
            count = 4 * int(np.count_nonzero(cols["volume"]))
        else:
            o = h = lo = last
            v = q = 0.0
            count = 0
        open_time = self.clock.time_of(max(start, 0))
        last_id = self._trade_ids[m.id]
        first_id = last_id - count + 1 if count else -1
        (bid, bid_qty), (ask, ask_qty) = self.top(m)
        out: dict[str, Any] = {
            "symbol": m.id,
            "priceChange": m.price(last - o),
            "priceChangePercent": f"{(last / o - 1) * 100 if o else 0.0:.3f}",
            "weightedAvgPrice": m.fill_price(q / v if v else last),
        }
        if not self.futures:
            out["prevClosePrice"] = m.price(o)
        out["lastPrice"] = m.price(last)
        out["lastQty"] = self._trades[m.id][-1]["qty"] if self._trades[m.id] else m.qty(0.0)
        if not self.futures:
            out.update({"bidPrice": bid, "bidQty": bid_qty, "askPrice": ask, "askQty": ask_qty})
        out.update(
            {
                "openPrice": m.price(o),
                "highPrice": m.price(h),
                "lowPrice": m.price(lo),
                "volume": m.qty(v),
                "quoteVolume": m.quote_qty(q),
                "openTime": open_time,
                "closeTime": now,
                "firstId": first_id,
                "lastId": last_id if count else -1,
                "count": count,
            }
        )
        return out

    def ticker_event(self, m: Market) -> dict[str, Any]:
        """The ``@ticker`` (24hrTicker) event."""
        t = self.ticker_24h(m)
        event = {
            "e": "24hrTicker",
            "E": t["closeTime"],
            "s": m.id,
            "p": t["priceChange"],
            "P": t["priceChangePercent"],
            "w": t["weightedAvgPrice"],
        }
        if not self.futures:
            event["x"] = t["prevClosePrice"]
        event.update({"c": t["lastPrice"], "Q": t["lastQty"]})
        if not self.futures:
            event.update(
                {"b": t["bidPrice"], "B": t["bidQty"], "a": t["askPrice"], "A": t["askQty"]}
            )
        event.update(
            {
                "o": t["openPrice"],
                "h": t["highPrice"],
                "l": t["lowPrice"],
                "v": t["volume"],
                "q": t["quoteVolume"],
                "O": t["openTime"],
                "C": t["closeTime"],
                "F": t["firstId"],
                "L": t["lastId"],
                "n": t["count"],
            }
        )
        return event

    def mini_ticker_event(self, m: Market) -> dict[str, Any]:
        t = self.ticker_24h(m)
        return {
            "e": "24hrMiniTicker",
            "E": t["closeTime"],
            "s": m.id,
            "c": t["lastPrice"],
            "o": t["openPrice"],
            "h": t["highPrice"],
            "l": t["lowPrice"],
            "v": t["volume"],
            "q": t["quoteVolume"],
        }

    def price_ticker(self, m: Market) -> dict[str, Any]:
        out: dict[str, Any] = {"symbol": m.id, "price": m.price(self.clock.last_price(m.symbol))}
        if self.futures:
            out["time"] = self.clock.now_ms()
        return out

    def book_ticker(self, m: Market) -> dict[str, Any]:
        (bid, bid_qty), (ask, ask_qty) = self.top(m)
        out: dict[str, Any] = {
            "symbol": m.id,
            "bidPrice": bid,
            "bidQty": bid_qty,
            "askPrice": ask,
            "askQty": ask_qty,
        }
        if self.futures:
            out["time"] = self.clock.now_ms()
        return out

    def book_ticker_event(self, m: Market) -> dict[str, Any]:
        book = self._books[m.id]
        (bid, bid_qty), (ask, ask_qty) = self.top(m)
        event: dict[str, Any] = {}
        if self.futures:
            now = self.clock.now_ms()
            event.update({"e": "bookTicker", "u": book.update_id, "E": now, "T": now})
        else:
            event["u"] = book.update_id
        event.update({"s": m.id, "b": bid, "B": bid_qty, "a": ask, "A": ask_qty})
        return event

    # A bar closed.
    def on_bar(self) -> dict[str, dict[str, Any]]:
        """Advance the book and the tape after the clock stepped.

        Returns, per market id, what changed: ``{"depth": event | None, "trades": [...]}``.
        """
        out = {}
        for m in self.markets.values():
            trades = self._print_trades(m, self.clock.index - 1)
            out[m.id] = {"depth": self._rebuild_book(m), "trades": trades}
        return out
