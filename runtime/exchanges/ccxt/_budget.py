"""The rate budget of one exchange account: a token bucket that also honours 429/418.

**Where it runs.** On the bridge's asyncio loop, installed as the ccxt object's ``throttle``:
ccxt calls ``await self.throttle(cost)`` before *every* REST request it sends, with the
endpoint's Binance weight as ``cost`` (``calculate_rate_limiter_cost``). So the budget sees all
of an account's requests (``call``'s orders, the watchers' polls, and the requests ccxt makes on
its own: markets, currencies, listen keys, order-book snapshots) with their true weights. One
loop runs all of them, so it needs no lock (ccxt's own throttle, shared across threads,
does not hold its rate; DESIGN §5). A trio caller still waits cancellably: cancelling the call
cancels the asyncio task that waits here.

**Backoff.** When a request gets 429 or 418, :meth:`RateBudget.pause` stops every request on the
account until the ``Retry-After`` instant has passed (Binance answers requests sent earlier with
a 418 IP ban).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["RateBudget", "RateLimit"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """How fast one account may send: ``rate_per_s`` cost units per second, with bursts of up
    to ``burst`` units after idling. Costs are ccxt's (Binance weights relative to the
    exchange's ``rateLimit``), so ccxt's own limit is ``rate_per_s = 1000 / rateLimit``.

    ``backoff_s`` is the pause after a 429/418 that carries no ``Retry-After``.
    ``rate_per_s=math.inf`` disables the limit but keeps the 429/418 backoff.
    """

    rate_per_s: float
    burst: float = 1.0
    backoff_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0:
            raise ValueError(
                f"rate_per_s={self.rate_per_s!r} must be > 0 cost units per second "
                "(math.inf for no limit)"
            )
        if not (self.burst >= 1 and math.isfinite(self.burst)) and self.rate_per_s != math.inf:
            raise ValueError(f"burst={self.burst!r} must be a finite number >= 1 cost unit")
        if not (self.backoff_s >= 0 and math.isfinite(self.backoff_s)):
            raise ValueError(f"backoff_s={self.backoff_s!r} must be a finite number of seconds")

    @classmethod
    def for_ccxt(cls, rate_limit_ms: float, *, burst_s: float = 1.0) -> RateLimit:
        """ccxt's rate for an exchange whose ``rateLimit`` is ``rate_limit_ms``, allowing a
        burst of ``burst_s`` seconds' worth of requests."""
        rate = 1000.0 / rate_limit_ms
        return cls(rate_per_s=rate, burst=max(1.0, rate * burst_s))


class RateBudget:
    """A token bucket (GCRA form) plus a pause for 429/418, on one asyncio loop.

    Waiters are served in arrival order. Not thread-safe by design: every method runs on the
    bridge loop.
    """

    def __init__(
        self,
        limit: RateLimit,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.limit = limit
        self._clock = clock
        self._sleep = sleep
        self._tat = -math.inf  # theoretical arrival time of the next request
        self._paused_until = -math.inf
        #: How many acquisitions had to wait, and for how long in total (for tests and stats).
        self.waits = 0
        self.waited_s = 0.0

    @property
    def paused_until(self) -> float:
        """The clock time before which no request may go (``-inf`` when not paused)."""
        return self._paused_until

    def pause(self, seconds: float) -> None:
        """Hold every request until ``seconds`` from now (never shortens an earlier pause)."""
        until = self._clock() + max(seconds, 0.0)
        if until > self._paused_until:
            self._paused_until = until

    async def acquire(self, cost: float | None = 1.0) -> None:
        """Wait until a request of ``cost`` units may go (ccxt's ``throttle(cost)``).

        Cancellation: a cancelled waiter gives up its place; its reserved slot is not returned,
        so the budget errs on the slow side.
        """
        units = 1.0 if cost is None else float(cost)
        now = self._clock()
        rate = self.limit.rate_per_s
        tat = max(self._tat, now) + units / rate
        self._tat = tat
        allowed_at = tat - self.limit.burst / rate if rate != math.inf else now
        start = max(allowed_at, self._paused_until)
        if start <= now:
            return
        self.waits += 1
        began = now
        while True:
            await self._sleep(start - now)
            now = self._clock()
            # A 429 that arrived while we slept moves the start again.
            start = max(start, self._paused_until)
            if start <= now:
                break
        self.waited_s += now - began
