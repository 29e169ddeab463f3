"""Order round trips (create + cancel) through vigil's ccxt exchange vs bare ccxt.

Both sides talk to the same loopback Binance server in the same run, with the same concurrency:

- **vigil/trio**: ``CcxtExchange`` under ``trio.run``; ccxt runs on the bridge's asyncio loop,
  which a trio task steps in trio's own thread (no thread wakes another). The rate budget is
  installed with no limit (``RateLimit(rate_per_s=inf)``), so its bookkeeping is measured but
  it never waits.
- **bare ccxt/asyncio**: ``ccxt.async_support.binance`` under ``asyncio.run`` in the main thread,
  ccxt's throttle off.

With ``--designs`` (the default), two more ways of running ccxt under trio, for the closing
note of issue 20 (``bench/bridge_hop.py`` times their bare hop):

- **helper-thread bridge**: ``CcxtExchange`` on the bridge design before vigil's current one
  (``bench/_thread_bridge.py``: ccxt's loop on its own thread, two cross-thread wake-ups per
  call).
- **trio guest mode**: trio runs as a guest of the asyncio loop (``start_guest_run``); trio
  tasks call a bare ccxt client on the host loop and are rescheduled through
  ``TrioToken.run_sync_soon`` when its task is done.
- **a bare ccxt client on vigil's bridge**: ``bridge.run(ex.create_order, ...)`` on an
  ``AsyncioBridge``, without ``CcxtExchange``: what the loop's stepping costs by itself.

Each round trip places a limit buy far below the market (it rests) and cancels it. The server
runs in its own process by default (``--server process``), as a real exchange would be remote;
``--server thread`` runs it in this process (it then competes for the GIL with both clients).
Rounds alternate between the clients (ABBA); the median round of each counts. "vigil
adds" is the extra time per round trip: ``bare_rate / vigil_rate - 1``. Bare ccxt and vigil
run next to each other in every round, so the median of the rounds' own ratios, printed beside
it, is free of the host's slower drifts.

    python bench/exchange_roundtrip.py [--n 400] [--concurrency 1 8] [--rounds 4] [--no-designs]

Prints, per concurrency, e.g.
``8 tasks: vigil/trio: 812 round trips/s; bare ccxt/asyncio: 850/s; vigil adds 4.5%``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import outcome
import trio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._guest import run_as_guest  # noqa: E402
from bench._loopback import KEY, SECRET, serve_in_process  # noqa: E402
from bench._thread_bridge import AsyncioBridge as ThreadBridge  # noqa: E402
from runtime.exchanges.ccxt import AsyncioBridge, CcxtExchange, RateLimit  # noqa: E402
from runtime.testing.loopback import LoopbackExchange, point_ccxt_at  # noqa: E402

SYMBOL = "BTC/USDT"


@contextmanager
def loopback_server(where: str) -> Iterator[str]:
    """A loopback exchange with KEY/SECRET and manual bars; yields its base URL."""
    if where == "thread":
        with LoopbackExchange(api_key=KEY, secret=SECRET, history=300) as ex:
            assert ex.base_url is not None
            yield ex.base_url
        return
    with serve_in_process({"USDT": 100_000_000.0}) as env:
        yield env["VIGIL_BINANCE_URL"]


def bare_client(url: str) -> Any:
    """ccxt's asyncio Binance client on the loopback, its throttle off."""
    return point_ccxt_at(
        ccxt_async.binance(
            {"apiKey": KEY, "secret": SECRET, "enableRateLimit": False, "timeout_on_exit": 0}
        ),
        url,
    )


# The asyncio side.
async def bare_round_trips(url: str, n: int, concurrency: int) -> float:
    """Round trips per second through a bare ccxt.async_support.binance."""
    ex = bare_client(url)
    try:
        await ex.load_markets()
        price = round((await ex.fetch_ticker(SYMBOL))["last"] * 0.8, 2)

        async def worker(count: int) -> None:
            for _ in range(count):
                order = await ex.create_order(SYMBOL, "limit", "buy", 0.001, price)
                await ex.cancel_order(order["id"], SYMBOL)

        await worker(10)  # warm up the connection pool
        started = time.perf_counter()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await ex.close()
    return (n // concurrency) * concurrency / elapsed


# The trio side.
async def vigil_round_trips(url: str, n: int, concurrency: int, thread: bool = False) -> float:
    """Round trips per second through vigil's CcxtExchange under trio (with ``thread``, on the
    helper-thread bridge)."""
    env = {"VIGIL_BINANCE_URL": url, "VIGIL_BINANCE_API_KEY": KEY, "VIGIL_BINANCE_SECRET": SECRET}
    bridge: Any = ThreadBridge(name="bench-thread-bridge").start() if thread else None
    try:
        return await _vigil_round_trips(env, n, concurrency, bridge)
    finally:
        if bridge is not None:
            await bridge.aclose()


async def _vigil_round_trips(env: dict[str, str], n: int, concurrency: int, bridge: Any) -> float:
    async with CcxtExchange.open(
        "binance",
        sandbox=False,
        env=env,
        rate_limit=RateLimit(rate_per_s=math.inf),
        bridge=bridge,
    ) as ex:
        price = round((await ex.fetch_ticker(SYMBOL))["last"] * 0.8, 2)

        async def round_trip() -> None:
            order = await ex.create_order(SYMBOL, "limit", "buy", 0.001, price)
            await ex.cancel_order(order["id"], SYMBOL)

        return await _trio_rate(round_trip, n, concurrency)


async def bridge_round_trips(url: str, n: int, concurrency: int) -> float:
    """Round trips per second through a bare ccxt client on vigil's bridge: vigil's loop
    stepping, without `CcxtExchange` (its budget, error mapping and result handling)."""
    async with AsyncioBridge(name="bench-bare-client") as bridge:

        async def make() -> Any:  # on the bridge's loop, which ccxt binds to
            return bare_client(url)

        ex = await bridge.run(make)
        try:
            await bridge.run(ex.load_markets)
            price = round((await bridge.run(ex.fetch_ticker, SYMBOL))["last"] * 0.8, 2)

            async def round_trip() -> None:
                order = await bridge.run(ex.create_order, SYMBOL, "limit", "buy", 0.001, price)
                await bridge.run(ex.cancel_order, order["id"], SYMBOL)

            return await _trio_rate(round_trip, n, concurrency)
        finally:
            await bridge.run(ex.close)


async def _trio_rate(round_trip: Callable[[], Awaitable[None]], n: int, concurrency: int) -> float:
    """Round trips per second from `concurrency` trio tasks sharing `n`, after 10 untimed."""

    async def worker(count: int) -> None:
        for _ in range(count):
            await round_trip()

    await worker(10)
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker, n // concurrency)
    elapsed = time.perf_counter() - started
    return (n // concurrency) * concurrency / elapsed


def guest_round_trips(url: str, n: int, concurrency: int) -> float:
    """Round trips per second from trio tasks in guest mode, through a bare ccxt client on the
    host asyncio loop."""

    async def trio_main() -> float:
        ex = bare_client(url)
        loop = asyncio.get_running_loop()
        token = trio.lowlevel.current_trio_token()

        async def on_host(coro: Any) -> Any:
            task = trio.lowlevel.current_task()

            def done(future: asyncio.Future[Any]) -> None:
                token.run_sync_soon(trio.lowlevel.reschedule, task, outcome.capture(future.result))

            loop.create_task(coro).add_done_callback(done)
            return await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)

        try:
            await on_host(ex.load_markets())
            price = round((await on_host(ex.fetch_ticker(SYMBOL)))["last"] * 0.8, 2)

            async def round_trip() -> None:
                order = await on_host(ex.create_order(SYMBOL, "limit", "buy", 0.001, price))
                await on_host(ex.cancel_order(order["id"], SYMBOL))

            return await _trio_rate(round_trip, n, concurrency)
        finally:
            await on_host(ex.close())

    return run_as_guest(trio_main)


def _rates(values: list[float]) -> str:
    return " ".join(f"{x:.0f}" for x in values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="round trips per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=4, help="rounds per side (alternating)")
    parser.add_argument("--server", choices=("process", "thread"), default="process")
    parser.add_argument(
        "--designs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time a bare client on the bridge, the helper-thread bridge and guest mode",
    )
    args = parser.parse_args(argv)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())  # other work on the machine skews both
    with loopback_server(args.server) as url:
        print(
            f"loopback server ({args.server}) at {url}; {args.n} round trips per round, "
            f"{args.rounds} rounds per side; {os.cpu_count()} CPUs, load average {load}"
        )
        for concurrency in args.concurrency:
            # bare and vigil run next to each other in every round, in either order.
            sides = ["bare", "vigil"] + (["bridge", "thread", "guest"] if args.designs else [])
            rates: dict[str, list[float]] = {side: [] for side in sides}
            for i in range(args.rounds):
                # Alternating order, so a drift in the machine's load favours no side.
                for side in sides if i % 2 == 0 else sides[::-1]:
                    if side == "bare":
                        rate = asyncio.run(bare_round_trips(url, args.n, concurrency))
                    elif side == "guest":
                        rate = guest_round_trips(url, args.n, concurrency)
                    elif side == "bridge":
                        rate = trio.run(bridge_round_trips, url, args.n, concurrency)
                    else:
                        rate = trio.run(
                            vigil_round_trips, url, args.n, concurrency, side == "thread"
                        )
                    rates[side].append(rate)
            v, b = statistics.median(rates["vigil"]), statistics.median(rates["bare"])
            label = "sequential" if concurrency == 1 else f"{concurrency} tasks"
            # Two calls per round trip. Sequentially this is the latency vigil adds to a call;
            # with concurrency, the throughput cost of a call (calls overlap).
            extra_us = (1 / v - 1 / b) / 2 * 1e6
            # Each round's pair ran back to back: their ratio is free of slower drifts.
            paired = statistics.median(
                bare / vigil for bare, vigil in zip(rates["bare"], rates["vigil"], strict=True)
            )
            print(
                f"{label}: vigil/trio: {v:.0f} round trips/s; bare ccxt/asyncio: {b:.0f}/s; "
                f"vigil adds {(b / v - 1) * 100:.1f}% ({extra_us:+.0f} us per call; median of "
                f"the rounds' pairs {(paired - 1) * 100:+.1f}%; medians of rounds: vigil "
                f"{_rates(rates['vigil'])}, bare {_rates(rates['bare'])})"
            )
            for side, name in (
                ("bridge", "bare ccxt client on vigil's bridge"),
                ("thread", "helper-thread bridge"),
                ("guest", "trio guest mode"),
            ):
                if side in rates:
                    r = statistics.median(rates[side])
                    print(
                        f"  {name}: {r:.0f} round trips/s, adds {(b / r - 1) * 100:.1f}% "
                        f"(rounds: {_rates(rates[side])})"
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
