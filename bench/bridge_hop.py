"""One hop trio -> asyncio -> trio, without any network, for each way of running ccxt's asyncio
client under trio, measured in the same run:

- **inline bridge** (vigil's, ``runtime.exchanges.ccxt.AsyncioBridge``): ``await
  bridge.run(noop)``. The asyncio loop has no thread: a trio task steps it, so the hop is
  trio scheduling plus one loop iteration, and no thread wakes another.
- **helper-thread bridge** (the design before it, kept in ``bench/_thread_bridge.py``): the
  same call, with the loop on its own thread: the trio thread wakes the loop thread, and the
  loop thread wakes the trio thread back (two cross-thread wake-ups).
- **trio guest mode** (``trio.lowlevel.start_guest_run`` on an asyncio host loop; trio's code
  runs on the host's thread, its I/O wait on a thread of its own):
  the trio task creates the asyncio task directly, and its done-callback reschedules the trio
  task through ``TrioToken.run_sync_soon``, which wakes trio's I/O thread, which hands the
  next trio tick back to the host loop (``call_soon_threadsafe``).
- **raw ping-pong** (the floor of any two-thread design): two plain Python threads, each
  blocked in ``epoll``, waking each other through a socket pair.
- **one-thread floor** (the floor of any design that keeps both loops in trio's thread): a
  trio task parks; a second trio task runs one asyncio loop iteration, in which an asyncio
  task returns and reschedules the first. No bookkeeping: only the two schedulers' own steps
  (two trio task switches, one ``_run_once`` with its ``select(0)``, one asyncio task step).

    python bench/bridge_hop.py [--n 5000] [--rounds 3]

Prints the median latency of each (best round; every round listed) and ratios against the
two-wake floor. ``bench/exchange_roundtrip.py`` times the same designs with real ccxt requests.
"""

from __future__ import annotations

import argparse
import asyncio
import select
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import outcome
import trio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._guest import run_as_guest  # noqa: E402
from bench._thread_bridge import AsyncioBridge as ThreadBridge  # noqa: E402
from runtime.exchanges.ccxt import AsyncioBridge  # noqa: E402


async def _noop() -> int:
    return 1


def bridge_latencies(cls: Any, n: int) -> list[float]:
    async def main() -> list[float]:
        out: list[float] = []
        async with cls(name="bench-bridge") as bridge:
            for i in range(n + n // 10):  # a tenth untimed first: warm-up
                started = time.perf_counter()
                await bridge.run(_noop)
                if i >= n // 10:
                    out.append(time.perf_counter() - started)
        return out

    return trio.run(main)


def guest_latencies(n: int) -> list[float]:
    async def trio_main() -> list[float]:
        loop = asyncio.get_running_loop()  # the host's: guest mode runs trio on its thread
        token = trio.lowlevel.current_trio_token()
        task = trio.lowlevel.current_task()

        def done(future: asyncio.Future[int]) -> None:
            token.run_sync_soon(trio.lowlevel.reschedule, task, outcome.capture(future.result))

        out: list[float] = []
        for i in range(n + n // 10):
            started = time.perf_counter()
            loop.create_task(_noop()).add_done_callback(done)
            await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
            if i >= n // 10:
                out.append(time.perf_counter() - started)
        return out

    return run_as_guest(trio_main)


def one_thread_floor_latencies(n: int) -> list[float]:
    async def main() -> list[float]:
        loop = asyncio.new_event_loop()
        caller = trio.lowlevel.current_task()
        stepper: trio.lowlevel.Task | None = None

        async def answer() -> None:
            trio.lowlevel.reschedule(caller)

        async def step(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            nonlocal stepper
            stepper = trio.lowlevel.current_task()
            task_status.started()
            while True:
                await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.SUCCEEDED)
                task = loop.create_task(answer())
                loop.stop()
                loop.run_forever()  # one iteration: the task's first step answers
                assert task.done()

        out: list[float] = []
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(step)
                assert stepper is not None
                for i in range(n + n // 10):
                    started = time.perf_counter()
                    trio.lowlevel.reschedule(stepper)
                    await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
                    if i >= n // 10:
                        out.append(time.perf_counter() - started)
                nursery.cancel_scope.cancel()
        finally:
            loop.close()
        return out

    return trio.run(main)


def ping_pong_latencies(n: int) -> list[float]:
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setblocking(False)

    def echo() -> None:
        poller = select.epoll()
        poller.register(theirs.fileno(), select.EPOLLIN)
        while True:
            poller.poll(-1)
            data = theirs.recv(64)
            if data == b"q":
                return
            theirs.send(b"y")

    peer = threading.Thread(target=echo)
    peer.start()
    poller = select.epoll()
    poller.register(ours.fileno(), select.EPOLLIN)
    out: list[float] = []
    try:
        for i in range(n + n // 10):
            started = time.perf_counter()
            ours.send(b"x")
            poller.poll(-1)
            ours.recv(64)
            if i >= n // 10:
                out.append(time.perf_counter() - started)
    finally:
        ours.send(b"q")
        peer.join()
        ours.close()
        theirs.close()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="hops per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each")
    args = parser.parse_args(argv)
    if not hasattr(select, "epoll"):
        print("needs Linux (epoll) for the baseline")
        return 0
    designs: dict[str, Callable[[int], list[float]]] = {
        "raw epoll thread ping-pong (floor)": ping_pong_latencies,
        "one-thread floor (trio + asyncio steps)": one_thread_floor_latencies,
        "inline bridge (vigil)": lambda n: bridge_latencies(AsyncioBridge, n),
        "helper-thread bridge": lambda n: bridge_latencies(ThreadBridge, n),
        "trio guest mode on asyncio": guest_latencies,
    }
    medians: dict[str, list[float]] = {name: [] for name in designs}
    for _ in range(args.rounds):
        for name, measure in designs.items():
            medians[name].append(statistics.median(measure(args.n)))
    floor = min(medians["raw epoll thread ping-pong (floor)"])
    for name, values in medians.items():
        best = min(values)
        rounds = " ".join(f"{x * 1e6:.1f}" for x in values)
        print(
            f"{name:<40} p50 {best * 1e6:6.1f} us  {best / floor:5.2f}x the two-wake floor "
            f"(rounds: {rounds})"
        )
    one = min(medians["one-thread floor (trio + asyncio steps)"])
    inline = min(medians["inline bridge (vigil)"])
    print(
        f"inline bridge over the one-thread floor: +{(inline - one) * 1e6:.1f} us "
        f"({inline / one:.2f}x); it wakes no thread, so the two-wake floor does not bound it"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
