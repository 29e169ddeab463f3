"""The rate budget on its own, on a fake clock (it runs on an asyncio loop, not trio)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest

from runtime.exchanges.ccxt import RateBudget, RateLimit


class FakeTime:
    """A clock that only moves when the budget sleeps; ``during_sleep`` runs while it sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.during_sleep: Callable[[], None] | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 9))
        if self.during_sleep is not None:
            hook, self.during_sleep = self.during_sleep, None
            hook()
        self.now += seconds


def budget(limit: RateLimit) -> tuple[RateBudget, FakeTime]:
    t = FakeTime()
    return RateBudget(limit, clock=t.clock, sleep=t.sleep), t


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_a_burst_goes_at_once_then_the_rate_holds() -> None:
    b, t = budget(RateLimit(rate_per_s=10.0, burst=3.0))

    async def go() -> None:
        for _ in range(5):
            await b.acquire()

    run(go())
    assert t.slept == [0.1, 0.1]
    assert (b.waits, round(b.waited_s, 9)) == (2, 0.2)


def test_costs_are_weights() -> None:
    b, t = budget(RateLimit(rate_per_s=10.0, burst=1.0))

    async def go() -> None:
        await b.acquire(5)  # 5 units with room for 1: wait for the other 4
        await b.acquire(None)  # ccxt's default cost is 1

    run(go())
    assert t.slept == [0.4, 0.1]


def test_a_pause_holds_every_request_and_never_shortens() -> None:
    b, t = budget(RateLimit(rate_per_s=math.inf))

    async def go() -> None:
        await b.acquire()
        b.pause(2.0)
        b.pause(0.5)  # an earlier instant: ignored
        await b.acquire()
        await b.acquire()

    run(go())
    assert t.slept == [2.0]
    assert b.paused_until == 102.0


def test_a_429_during_a_wait_extends_it() -> None:
    b, t = budget(RateLimit(rate_per_s=10.0, burst=1.0))

    async def go() -> None:
        await b.acquire()
        t.during_sleep = lambda: b.pause(1.0)  # another request got a 429 meanwhile
        await b.acquire()

    run(go())
    assert t.slept == [0.1, 0.9]


def test_limits_are_validated_and_ccxts_rate_converts() -> None:
    assert RateLimit.for_ccxt(50) == RateLimit(rate_per_s=20.0, burst=20.0)
    with pytest.raises(ValueError, match="rate_per_s=0"):
        RateLimit(rate_per_s=0)
    with pytest.raises(ValueError, match=r"burst=0\.5"):
        RateLimit(rate_per_s=10, burst=0.5)
    with pytest.raises(ValueError, match="backoff_s=-1"):
        RateLimit(rate_per_s=10, backoff_s=-1)
