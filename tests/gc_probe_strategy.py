"""Records the cyclic collector's settings at every tick; `abort_at` makes a tick raise what
no strategy-error handling catches, so the backtest ends on it."""

from __future__ import annotations

import gc
import itertools
from typing import Any

from runtime import Strategy

TICKS = itertools.count()  # every probe's ticks in one sequence: which ran when


class ProbeAbort(BaseException):
    """Not an Exception: ends the backtest instead of counting as a strategy error."""


class GcProbe(Strategy):
    markets = ["BTC/USDT"]
    timeframe = "1m"
    abort_at: int = 0  # the tick that raises ProbeAbort (1-based); 0 for none

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int]] = []  # the thresholds at each tick
        self.frozen = 0  # objects frozen at the first tick (counting them walks them all)
        self.ticks: list[int] = []  # this probe's places in TICKS

    async def on_tick(self, ts: Any) -> None:
        if not self.seen:
            self.frozen = gc.get_freeze_count()
        self.seen.append(gc.get_threshold())
        self.ticks.append(next(TICKS))
        if len(self.seen) == self.abort_at:
            raise ProbeAbort("the probe's planned abort")
