"""Funding history of the loopback's USDⓈ-M perpetuals: ``GET /fapi/v1/fundingRate``.

Funding is settled every 8 hours on the UTC clock (00:00, 08:00, 16:00), as on Binance. Each
rate derives from the market feed, so it is reproducible: the interest rate (0.01%) plus the
premium, taken as a tenth of the price change over the 8 hours before the funding time,
clamped to ±0.75%; ``markPrice`` is the close of the bar ending at the funding time. Only
funding times whose bar has closed exist.

Binance's rules: ``limit`` defaults to 100, at most 1000; with neither ``startTime`` nor
``endTime`` the most recent ``limit`` records; otherwise the first ``limit`` records from
``startTime`` (or ending at ``endTime``), oldest first; ``startTime`` after ``endTime`` is
error -1023.
"""

from __future__ import annotations

from typing import Any, Final

from runtime.testing.loopback._auth import BinanceError
from runtime.testing.loopback._feed import BarClock
from runtime.testing.loopback._wire import Market

__all__ = ["FUNDING_INTERVAL_MS", "funding_history", "funding_rate"]

FUNDING_INTERVAL_MS: Final = 8 * 3_600_000
_INTEREST: Final = 0.0001
_CAP: Final = 0.0075


def funding_rate(clock: BarClock, m: Market, time_ms: int) -> tuple[float, float] | None:
    """The rate and mark price at funding time ``time_ms``, or None when its bar has not
    closed or no bar 8 hours before it exists."""
    i = clock.index_at(time_ms) - 1  # the bar that closes at the funding time
    j = clock.index_at(time_ms - FUNDING_INTERVAL_MS) - 1
    end = clock.closed_bar(m.symbol, i)
    begin = clock.closed_bar(m.symbol, max(j, 0))
    if end is None or begin is None or i <= 0:
        return None
    premium = (end.close / begin.close - 1.0) / 10.0
    rate = max(-_CAP, min(_CAP, _INTEREST + premium))
    return round(rate, 8), end.close


def funding_history(clock: BarClock, m: Market, params: Any) -> list[dict[str, Any]]:
    """``GET /fapi/v1/fundingRate`` for one perpetual (see the module doc)."""
    limit = max(1, min(int(params.get("limit") or 100), 1000))
    start = params.get("startTime")
    end = params.get("endTime")
    first_ms = clock.time_of(1)
    last_ms = clock.forming_open_ms
    lo = first_ms if start is None else max(int(start), first_ms)
    hi = last_ms if end is None else min(int(end), last_ms)
    if start is not None and end is not None and int(start) > int(end):
        raise BinanceError(-1023, "Start time is greater than end time.")
    times = range(-(-lo // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS, hi + 1, FUNDING_INTERVAL_MS)
    rows = []
    for t in times:
        found = funding_rate(clock, m, t)
        if found is not None:
            rate, mark = found
            rows.append(
                {
                    "symbol": m.id,
                    "fundingTime": t,
                    "fundingRate": f"{rate:.8f}",
                    "markPrice": m.fill_price(mark),
                }
            )
    if start is None:
        return rows[-limit:]  # the most recent (or those ending at endTime)
    return rows[:limit]
