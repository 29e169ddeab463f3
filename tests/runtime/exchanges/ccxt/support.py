"""Helpers for the ccxt exchange tests (real clock: the bridge and the server are threads)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from runtime.exchanges.ccxt import RateLimit

T = TypeVar("T")

#: A budget that never waits in these tests (test_faults.py checks the real one).
FAST = RateLimit(rate_per_s=10_000.0, burst=10_000.0)
_POLL_S = 0.01


async def until(predicate: Callable[[], bool], within_s: float = 5.0) -> None:
    """Wait (polling the server's state every 10 ms) until ``predicate()``; fail after
    ``within_s``. The loopback's counters live in another thread: there is no event to await."""
    for _ in range(math.ceil(within_s / _POLL_S)):
        if predicate():
            return
        await trio.sleep(_POLL_S)
    raise AssertionError(f"condition not met within {within_s}s")


async def first(
    stream: trio.abc.ReceiveChannel[T], done: Callable[[T], bool], within_s: float = 5.0
) -> T:
    """The first result of ``stream`` that satisfies ``done``."""
    with trio.fail_after(within_s):
        async for item in stream:
            if done(item):
                return item
    raise AssertionError("the stream ended first")


async def drain_until_error(stream: trio.abc.ReceiveChannel[object], within_s: float = 5.0) -> None:
    """Receive until the stream raises (the caller expects the error)."""
    with trio.fail_after(within_s):
        async for _ in stream:
            pass


async def watching(exchange: Any, pending: int, within_s: float = 5.0) -> None:
    """Wait until ``exchange``'s ccxt.pro websockets hold at least ``pending`` watch futures.

    ccxt.pro delivers an update only to a watch already waiting for it (later ones see the next
    update), so a test triggers an event only once every stream it reads is waiting. Counted on
    the bridge loop, which owns the ccxt object (test-only look inside ``_client``).
    """

    async def count() -> int:
        clients = exchange._client.clients.values()
        return sum(len(c.futures) for c in clients if hasattr(c, "futures"))

    for _ in range(math.ceil(within_s / _POLL_S)):
        if await exchange.bridge.run(count) >= pending:
            return
        await trio.sleep(_POLL_S)
    raise AssertionError(f"fewer than {pending} watches were waiting after {within_s}s")
