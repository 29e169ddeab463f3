"""Order round trips (create + cancel) through vigil's ccxt exchange vs bare ccxt.

Both sides talk to the same loopback Binance server in the same run, with the same concurrency:

- **vigil/trio**: ``CcxtExchange`` under ``trio.run``; ccxt runs on the bridge's asyncio loop in
  its helper thread, and every call crosses the bridge twice. The rate budget is installed with
  no limit (``RateLimit(rate_per_s=inf)``), so its bookkeeping is measured but it never waits.
- **bare ccxt/asyncio**: ``ccxt.async_support.binance`` under ``asyncio.run`` in the main thread,
  ccxt's throttle off.

Each round trip places a limit buy far below the market (it rests) and cancels it. The server
runs in its own process by default (``--server process``), as a real exchange would be remote;
``--server thread`` runs it in this process (it then competes for the GIL with both clients).
Rounds alternate between the two clients (ABBA); the median round of each counts. "vigil
adds" is the extra time per round trip: ``bare_rate / vigil_rate - 1``.

    python bench/exchange_roundtrip.py [--n 400] [--concurrency 1 8] [--rounds 3]

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import ccxt.async_support as ccxt_async
import trio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._loopback import KEY, SECRET, serve_in_process  # noqa: E402
from runtime.exchanges.ccxt import CcxtExchange, RateLimit  # noqa: E402
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


# The asyncio side.
async def bare_round_trips(url: str, n: int, concurrency: int) -> float:
    """Round trips per second through a bare ccxt.async_support.binance."""
    ex = point_ccxt_at(
        ccxt_async.binance(
            {"apiKey": KEY, "secret": SECRET, "enableRateLimit": False, "timeout_on_exit": 0}
        ),
        url,
    )
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
async def vigil_round_trips(url: str, n: int, concurrency: int) -> float:
    """Round trips per second through vigil's CcxtExchange under trio."""
    env = {"VIGIL_BINANCE_URL": url, "VIGIL_BINANCE_API_KEY": KEY, "VIGIL_BINANCE_SECRET": SECRET}
    async with CcxtExchange.open(
        "binance", sandbox=False, env=env, rate_limit=RateLimit(rate_per_s=math.inf)
    ) as ex:
        price = round((await ex.fetch_ticker(SYMBOL))["last"] * 0.8, 2)

        async def worker(count: int) -> None:
            for _ in range(count):
                order = await ex.create_order(SYMBOL, "limit", "buy", 0.001, price)
                await ex.cancel_order(order["id"], SYMBOL)

        await worker(10)
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker, n // concurrency)
        elapsed = time.perf_counter() - started
    return (n // concurrency) * concurrency / elapsed


def _rates(values: list[float]) -> str:
    return " ".join(f"{x:.0f}" for x in values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="round trips per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=4, help="rounds per side (alternating)")
    parser.add_argument("--server", choices=("process", "thread"), default="process")
    args = parser.parse_args(argv)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())  # other work on the machine skews both
    with loopback_server(args.server) as url:
        print(
            f"loopback server ({args.server}) at {url}; {args.n} round trips per round, "
            f"{args.rounds} rounds per side; {os.cpu_count()} CPUs, load average {load}"
        )
        for concurrency in args.concurrency:
            vigil: list[float] = []
            bare: list[float] = []
            for i in range(args.rounds):
                # ABBA order, so a drift in the machine's load does not favour either side.
                order = ("bare", "vigil") if i % 2 == 0 else ("vigil", "bare")
                for side in order:
                    if side == "bare":
                        bare.append(asyncio.run(bare_round_trips(url, args.n, concurrency)))
                    else:
                        vigil.append(trio.run(vigil_round_trips, url, args.n, concurrency))
            v, b = statistics.median(vigil), statistics.median(bare)
            label = "sequential" if concurrency == 1 else f"{concurrency} tasks"
            # Two calls per round trip. Sequentially this is the latency vigil adds to a call;
            # with concurrency, the throughput cost of a call (calls overlap).
            extra_us = (1 / v - 1 / b) / 2 * 1e6
            print(
                f"{label}: vigil/trio: {v:.0f} round trips/s; bare ccxt/asyncio: {b:.0f}/s; "
                f"vigil adds {(b / v - 1) * 100:.1f}% ({extra_us:+.0f} us per call; medians of "
                f"rounds: vigil {_rates(vigil)}, bare {_rates(bare)})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
