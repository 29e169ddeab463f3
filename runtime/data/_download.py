"""Downloading bars and funding rates through ccxt into the market-data store.

One request per page, each page as long as the exchange allows (ccxt's ``features``: 1000
klines on Binance), all within the account's rate budget, which holds every request back
after a 429/418 until its ``Retry-After`` has passed; a rate-limited or failed page is asked
again. Only what the store lacks is requested: the range before its ``start`` and after its
``complete_until``. The bar still forming is never stored.

**Crash and Ctrl-C.** Rows are committed at least every :data:`COMMIT_EVERY_S` seconds and
whenever a whole chunk is buffered, and on the way out of a cancelled or interrupted download;
what was committed stays, and the next run carries on from ``complete_until``. A SIGKILL
loses at most the rows buffered since the last commit, which the next run fetches again.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import trio

from runtime._errors import ConfigError, NetworkError, RateLimited
from runtime._progress import Progress
from runtime.data._store import (
    BAR_CHUNK_ROWS,
    BAR_COLUMNS,
    FUNDING,
    MarketStore,
    Series,
    timeframe_ms,
    to_ms,
)
from runtime.exchanges import ccxt as ccxt_venue  # loads ccxt on first use (never in Sim)

__all__ = ["Downloaded", "download_ohlcv", "download_ohlcv_async"]

COMMIT_EVERY_S: Final = 0.5
# Failed pages (timeouts, 5xx) asked again, with these waits; a 429/418 is waited out by the
# rate budget and does not count.
RETRY_WAITS_S: Final = (0.5, 1.0, 2.0, 4.0, 8.0)
FUNDING_PAGE: Final = 1000
# 429/418 answers waited out for one page before giving up (each waits its Retry-After).
MAX_RATE_LIMITED: Final = 30


@dataclass(frozen=True, slots=True)
class Downloaded:
    """What one download did for one market: ``series`` is the timeframe or ``"funding"``;
    ``added`` rows this run, ``requests`` pages asked; then the group's totals."""

    exchange: str
    symbol: str
    series: str
    added: int
    requests: int
    rows: int
    first: int | None
    last: int | None
    gaps: int
    complete_until: int
    note: str = ""


def download_ohlcv(
    exchange: str,
    symbols: str | Sequence[str],
    timeframe: str,
    since: Any,
    until: Any = None,
    store: str | os.PathLike[str] | None = None,
    *,
    funding: bool = False,
) -> list[Downloaded]:
    """Download ``symbols``' bars of ``timeframe`` from ``since`` (to ``until``, default now)
    into the store (``$VIGIL_HOME/data`` unless ``store``), and with ``funding`` the funding
    rates of the perpetuals among them. Resumable and idempotent (module doc). Shows a
    progress bar when stderr is a terminal. Returns one :class:`Downloaded` per series.

    Blocks (runs its own trio loop); from trio code, ``await download_ohlcv_async(...)``.
    """
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        pass
    else:
        raise ConfigError(
            "download_ohlcv blocks and cannot run inside a trio run (IPython with "
            "%load_ext runtime); use `await download_ohlcv_async(...)` there"
        )
    return trio.run(
        lambda: download_ohlcv_async(
            exchange, symbols, timeframe, since, until, store, funding=funding
        )
    )


async def download_ohlcv_async(
    exchange: str,
    symbols: str | Sequence[str],
    timeframe: str,
    since: Any,
    until: Any = None,
    store: str | os.PathLike[str] | None = None,
    *,
    funding: bool = False,
    progress: Progress | None = None,
) -> list[Downloaded]:
    """:func:`download_ohlcv` for trio code."""
    wanted = [symbols] if isinstance(symbols, str) else list(symbols)
    if not wanted:
        raise ConfigError("no markets to download; name at least one, e.g. BTC/USDT")
    tf_ms = timeframe_ms(timeframe)
    since_ms = to_ms(since, "since")
    if since_ms is None:
        raise ConfigError("since is required: the first bar's time, e.g. '2024-01-01'")
    until_ms = to_ms(until, "until")
    if until_ms is not None and until_ms <= since_ms:
        raise ConfigError(f"until={until!r} must be after since={since!r}")
    db = MarketStore(store)
    client = ccxt_venue.CcxtExchange.open(exchange, sandbox=False, env=_public_env(exchange))
    async with client as ex:
        markets = ex.markets
        for sym in wanted:
            if sym not in markets:
                raise ConfigError(_unknown_market(exchange, sym, markets))
        now = int(time.time() * 1000)
        end = now - now % tf_ms  # the forming bar opens here: never stored
        if until_ms is not None:
            end = min(end, until_ms)
        if progress is None and Progress.wanted():
            expected = sum(max(end - since_ms, 0) // tf_ms for _ in wanted)
            progress = Progress(max(expected, 1), unit="bars")
        job = _Job(ex, db, exchange, progress)
        out = []
        try:
            for sym in wanted:
                out.append(await job.bars(sym, timeframe, tf_ms, since_ms, end))
            if funding:
                fund_end = min(now, until_ms) if until_ms is not None else now
                for sym in wanted:
                    out.append(await job.funding(sym, markets[sym], since_ms, fund_end))
        finally:
            if progress is not None:
                progress.finish(job.fetched)
    return out


class _Job:
    def __init__(
        self, ex: ccxt_venue.CcxtExchange, db: MarketStore, exchange: str, progress: Progress | None
    ) -> None:
        self.ex = ex
        self.db = db
        self.exchange = exchange
        self.progress = progress
        self.fetched = 0
        self.requests = 0

    async def _ask(self, what: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        """One page, asked again after a 429/418 (the budget waits) or a network failure."""
        failures = limited = 0
        while True:
            self.requests += 1
            try:
                return await fn()
            except RateLimited as exc:
                # The rate budget holds the next try until Retry-After has passed.
                limited += 1
                if limited > MAX_RATE_LIMITED:
                    raise RateLimited(
                        f"{self.exchange} {what}: still rate-limited after {limited} waits "
                        f"({exc}); run the download again later to carry on from what was stored",
                        exc.retry_after,
                    ) from exc
                continue
            except NetworkError as exc:
                if failures >= len(RETRY_WAITS_S):
                    raise NetworkError(
                        f"{self.exchange} {what}: {failures + 1} tries failed, the last with "
                        f"{exc}; run the download again to carry on from what was stored"
                    ) from exc
                await trio.sleep(RETRY_WAITS_S[failures])
                failures += 1

    async def bars(self, sym: str, timeframe: str, tf_ms: int, since: int, end: int) -> Downloaded:
        db = self.db
        start_requests = self.requests
        limit = self.ex.page_limit("fetchOHLCV", sym)
        added = 0
        with db.writing(self.exchange, sym, timeframe):
            series = db.open(self.exchange, sym, timeframe)
            if series is None:
                series = db.create(self.exchange, sym, timeframe, start=since)
            if since < series.start:
                # Further back than the store reaches: fetch the head, then rebuild the group.
                head = _Buffer()
                await self._pages_ohlcv(sym, timeframe, tf_ms, since, series.start, limit, head)
                times, values = head.arrays()
                series = db.rewrite(series, times, values, start=since)
                added += len(times)
            begin = series.complete_until
            if end > begin:
                added += await self._pages_ohlcv(sym, timeframe, tf_ms, begin, end, limit, series)
            return self._result(sym, timeframe, series, added, start_requests)

    async def _pages_ohlcv(
        self,
        sym: str,
        timeframe: str,
        tf_ms: int,
        begin: int,
        end: int,
        limit: int,
        sink: Series | _Buffer,
    ) -> int:
        cursor = begin
        added = 0
        last_commit = time.monotonic()
        try:
            while cursor < end:
                page = await self._ask(
                    f"fetch_ohlcv {sym} {timeframe}",
                    functools.partial(
                        self.ex.fetch_ohlcv, sym, timeframe, cursor, limit, {"until": end - 1}
                    ),
                )
                rows = _page_array(page) if page else None
                if rows is not None:
                    t = rows[:, 0].astype(np.int64)
                    rows = rows[(t >= cursor) & (t < end)]
                if rows is None or not len(rows):
                    sink.append(_NO_TIMES, _NO_VALUES, end)  # nothing more up to `end`
                    break
                times = rows[:, 0].astype(np.int64)
                values = {c: rows[:, k + 1] for k, c in enumerate(BAR_COLUMNS)}
                cursor = int(times[-1]) + tf_ms
                added += sink.append(times, values, min(cursor, end))
                self.fetched += len(times)
                if self.progress is not None:
                    self.progress.update(self.fetched)
                if isinstance(sink, Series) and (
                    sink.pending_rows >= BAR_CHUNK_ROWS
                    or time.monotonic() - last_commit >= COMMIT_EVERY_S
                ):
                    sink.commit()
                    last_commit = time.monotonic()
        finally:
            # Also on Ctrl-C or cancellation: what was fetched is kept.
            if isinstance(sink, Series):
                sink.commit()
        return added

    async def funding(self, sym: str, market: dict[str, Any], since: int, end: int) -> Downloaded:
        start_requests = self.requests
        if not market.get("swap"):
            return Downloaded(
                self.exchange, sym, FUNDING, 0, 0, 0, None, None, 0, since,
                note=f"{sym} is not a perpetual: no funding",
            )  # fmt: skip
        db = self.db
        added = 0
        with db.writing(self.exchange, sym, FUNDING):
            series = db.open(self.exchange, sym, FUNDING)
            if series is None:
                series = db.create(self.exchange, sym, FUNDING, start=since, kind=FUNDING)
            if since < series.start:
                head = _Buffer(funding=True)
                await self._pages_funding(sym, since, series.start, head)
                times, values = head.arrays()
                series = db.rewrite(series, times, values, start=since)
                added += len(times)
            if end > series.complete_until:
                added += await self._pages_funding(sym, series.complete_until, end, series)
            return self._result(sym, FUNDING, series, added, start_requests)

    async def _pages_funding(self, sym: str, begin: int, end: int, sink: Series | _Buffer) -> int:
        cursor = begin
        added = 0
        try:
            while cursor < end:
                page = await self._ask(
                    f"fetch_funding_rate_history {sym}",
                    functools.partial(
                        self.ex.fetch_funding_rate_history,
                        sym,
                        cursor,
                        FUNDING_PAGE,
                        {"until": end - 1},
                    ),
                )
                got = [r for r in page if cursor <= int(r["timestamp"]) < end]
                if not got:
                    sink.append(_NO_TIMES, _NO_FUNDING, end)
                    break
                times = np.array([int(r["timestamp"]) for r in got], dtype=np.int64)
                rates = np.array([float(r["fundingRate"]) for r in got], dtype=np.float64)
                marks = np.array([_mark_price(r) for r in got], dtype=np.float64)
                cursor = int(times[-1]) + 1
                added += sink.append(times, {"rate": rates, "mark_price": marks}, min(cursor, end))
        finally:
            if isinstance(sink, Series):
                sink.commit()
        return added

    def _result(
        self, sym: str, name: str, series: Series, added: int, start_requests: int
    ) -> Downloaded:
        return Downloaded(
            self.exchange,
            sym,
            name,
            added,
            self.requests - start_requests,
            series.rows,
            series.first,
            series.last,
            len(series.gaps),
            series.complete_until,
        )


def _page_array(page: list[list[Any]]) -> np.ndarray:
    """A ccxt OHLCV page as an (n, 6) float64 array (missing values NaN)."""
    try:  # twice as fast as np.array on lists of lists (measured)
        flat = itertools.chain.from_iterable(page)
        return np.fromiter(flat, np.float64, count=6 * len(page)).reshape(-1, 6)
    except (TypeError, ValueError):  # a None, or a row that is not 6 long
        return np.array([(list(r) + [None] * 6)[:6] for r in page], dtype=np.float64)


def _mark_price(row: dict[str, Any]) -> float:
    info = row.get("info") or {}
    value = info.get("markPrice") if isinstance(info, dict) else None
    try:
        return float(value) if value not in (None, "") else math.nan
    except (TypeError, ValueError):
        return math.nan


_NO_TIMES: Final = np.empty(0, np.int64)
_NO_VALUES: Final = {c: np.empty(0, np.float64) for c in BAR_COLUMNS}
_NO_FUNDING: Final = {c: np.empty(0, np.float64) for c in ("rate", "mark_price")}


class _Buffer:
    """Rows held in memory (the head of a store being extended backwards)."""

    def __init__(self, funding: bool = False) -> None:
        self.columns = ("rate", "mark_price") if funding else BAR_COLUMNS
        self.times: list[np.ndarray] = []
        self.values: dict[str, list[np.ndarray]] = {c: [] for c in self.columns}

    def append(self, times: np.ndarray, values: dict[str, np.ndarray], covered: int) -> int:
        if len(times):
            self.times.append(times)
            for c in self.columns:
                self.values[c].append(values[c])
        return len(times)

    def arrays(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if not self.times:
            return _NO_TIMES, {c: np.empty(0, np.float64) for c in self.columns}
        return np.concatenate(self.times), {c: np.concatenate(v) for c, v in self.values.items()}


def _public_env(exchange: str) -> dict[str, str]:
    """Market data needs no keys: only the URL override reaches the exchange object."""
    name = f"VIGIL_{exchange.upper()}_URL"
    return {name: os.environ[name]} if name in os.environ else {}


def _unknown_market(exchange: str, symbol: str, markets: dict[str, Any]) -> str:
    close = difflib.get_close_matches(symbol, list(markets), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (
        f"{exchange} has no market {symbol!r}{hint} (perpetuals are written like 'BTC/USDT:USDT')"
    )
