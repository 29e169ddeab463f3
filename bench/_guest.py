"""trio's guest mode on an asyncio loop, as the bridge benchmarks measure it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import outcome
import trio

T = TypeVar("T")


def run_as_guest(trio_main: Callable[[], Awaitable[T]]) -> T:
    """`trio_main` run by trio as a guest of a fresh asyncio loop in this thread: its result."""

    async def host() -> T:
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[outcome.Outcome[T]] = loop.create_future()
        trio.lowlevel.start_guest_run(
            trio_main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=finished.set_result,
        )
        return (await finished).unwrap()

    return asyncio.run(host())
