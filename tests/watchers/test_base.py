"""The watcher loop on a pure-trio fake stream, under trio's virtual clock."""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio
import trio.testing

from watchers._base import STALE, Report, Send, Watcher, WatcherConfig

CONFIG = WatcherConfig(stall_timeout_s=1.0, backoff_initial_s=0.05, backoff_max_s=0.5)


class FakeStream:
    """A stream of messages a test pushes (a ccxt bridge stream's receive side)."""

    def __init__(self) -> None:
        self.push, self._out = trio.open_memory_channel[Any](math.inf)

    async def receive(self) -> Any:
        return await self._out.receive()

    def receive_nowait(self) -> Any:
        return self._out.receive_nowait()

    async def __aenter__(self) -> FakeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await trio.lowlevel.checkpoint()


class CountingWatcher(Watcher):
    name = "fake"

    def __init__(self, stream: FakeStream) -> None:
        super().__init__(exchange=None, config=CONFIG)  # type: ignore[arg-type]
        self.stream = stream

    def open_stream(self) -> Any:
        return self.stream

    async def gap_fill(self, send: Send) -> None:
        await send.send(("rest", self.gap_fills))

    def reports(self, message: Any) -> list[Report]:
        return [("ws", message)]


@contextmanager
def fails_if_spinning(seconds: float = 10.0) -> Iterator[None]:
    """Raise in the test if it runs `seconds` of real time: a loop without a checkpoint never
    lets trio's own deadlines (virtual here) fire, and would hang the test instead."""

    def fail(*_: object) -> None:
        raise AssertionError(f"still running after {seconds} s of real time: a busy loop")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


async def test_news_expected_while_the_consumer_is_full_ends_in_a_stall_sync(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """News expected while the watcher waits on a full consumer, then silence past the stall
    timeout: when the consumer makes room, the watcher marks itself stale and reads REST
    (before, the stall scope opened with its deadline already past and the loop spun)."""
    stream = FakeStream()
    watcher = CountingWatcher(stream)
    send, received = trio.open_memory_channel[Report](1)
    with fails_if_spinning():
        async with trio.open_nursery() as nursery:
            await nursery.start(watcher.run, send)
            assert await received.receive() == ("rest", 0)  # the start's sync
            send.send_nowait(("filler", None))  # the consumer is full
            stream.push.send_nowait("m1")
            await trio.testing.wait_all_tasks_blocked()  # the watcher waits to hand m1 on
            watcher.expect()
            await trio.sleep(CONFIG.stall_timeout_s * 2)  # no news
            assert [await received.receive() for _ in range(3)] == [
                ("filler", None),
                ("ws", "m1"),
                ("rest", 1),  # the stall's sync
            ]
            assert watcher.health == STALE
            assert watcher.gap_fills == 2
            nursery.cancel_scope.cancel()
