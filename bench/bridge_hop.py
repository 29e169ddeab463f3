"""The trio -> asyncio -> trio hand-over of the ccxt bridge, without any network.

Two figures, measured in the same run:

- **bridge**: ``await bridge.run(noop)`` from trio, where ``noop`` is a coroutine that returns at
  once on the bridge's asyncio loop. This is what every ccxt call pays on top of ccxt itself:
  the trio thread wakes the loop thread, and the loop thread wakes the trio thread back.
- **raw ping-pong** (the baseline): two plain Python threads, each blocked in ``epoll``, waking
  each other through a socket pair. That is two cross-thread wake-ups with almost no Python
  around them: the floor for any design with ccxt on its own thread.

    python bench/bridge_hop.py [--n 5000] [--rounds 3]

Prints the median latency of each (best round) and the ratio.
"""

from __future__ import annotations

import argparse
import select
import socket
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runtime.exchanges.ccxt import AsyncioBridge  # noqa: E402


async def _noop() -> int:
    return 1


def bridge_latencies(n: int) -> list[float]:
    async def main() -> list[float]:
        out: list[float] = []
        async with AsyncioBridge(name="bench-bridge") as bridge:
            for _ in range(n // 10):  # warm up: doorbells, the loop's first iterations
                await bridge.run(_noop)
            for _ in range(n):
                started = time.perf_counter()
                await bridge.run(_noop)
                out.append(time.perf_counter() - started)
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
    parser.add_argument("--n", type=int, default=5000, help="hand-overs per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each")
    args = parser.parse_args(argv)
    if not hasattr(select, "epoll"):
        print("needs Linux (epoll) for the baseline")
        return 0
    bridge: list[float] = []
    raw: list[float] = []
    for _ in range(args.rounds):
        raw.append(statistics.median(ping_pong_latencies(args.n)))
        bridge.append(statistics.median(bridge_latencies(args.n)))
    b, r = min(bridge), min(raw)
    print(f"bridge.run(noop) round trip: p50 {b * 1e6:.1f} us (rounds: "
          f"{' '.join(f'{x * 1e6:.1f}' for x in bridge)})")  # fmt: skip
    print(f"raw epoll thread ping-pong:  p50 {r * 1e6:.1f} us (rounds: "
          f"{' '.join(f'{x * 1e6:.1f}' for x in raw)})")  # fmt: skip
    print(f"bridge / raw: {b / r:.2f}x (+{(b - r) * 1e6:.1f} us of Python around two wake-ups)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
