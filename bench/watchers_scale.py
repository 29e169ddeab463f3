"""Resident memory and idle CPU of 500 assets' order and trade watchers in one process.

The same process is measured twice, against the same loopback Binance server (run in its own
process, so its memory and CPU are not counted):

- **baseline**: one ``CcxtExchange`` open (markets loaded, the asyncio bridge running), the
  account's balance watcher on its websocket, and the consumer of watcher reports; no per-asset
  watchers;
- **with watchers**: the same, plus ``--assets`` assets, each with a resting limit order, an
  ``OrdersWatcher`` and a ``TradesWatcher`` (``watchers/_account.py``) in the asset's own
  nursery, as ``LiveDriver`` runs them: started with ``nursery.start`` (REST gap fill first),
  then following their websocket streams (``watch_orders`` / ``watch_my_trades``).

The loopback lists a few markets, not 500, so the assets are numbered and take the loopback's
USDT-quoted spot symbols in turn (BTC/USDT, ETH/USDT, ...): every asset has its own watchers,
streams, resting order and report path, but ccxt.pro shares one subscription future per symbol
among the assets on that symbol. Only the idle state is measured (no fills), where that sharing
changes nothing on vigil's side.

Figures: RSS (``VmRSS`` from ``/proc/self/status``) after a collection, and idle CPU as process
CPU time (all threads) over a ``--idle-s`` window, in % of one core.

    python bench/watchers_scale.py [--assets 500] [--idle-s 10]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._loopback import serve_in_process  # noqa: E402
from runtime.exchanges.ccxt import CcxtExchange, RateLimit  # noqa: E402
from watchers._account import BalanceWatcher, OrdersWatcher, TradesWatcher  # noqa: E402
from watchers._base import HEALTHY, Watcher, WatcherConfig  # noqa: E402

SYMBOLS = [f"{base}/USDT" for base in ("BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "LTC", "DOGE")]
ORDER_VALUE = 12.0  # USDT per resting order: above every market's minimum cost


def rss_mb() -> float:
    """This process's resident set (VmRSS), in MB."""
    with open("/proc/self/status") as status:
        for text in status:
            if text.startswith("VmRSS:"):
                return int(text.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


async def measure(label: str, idle_s: float) -> tuple[float, float]:
    """(RSS in MB, idle CPU in % of one core over `idle_s`), printed under `label`."""
    gc.collect()
    await trio.sleep(1.0)  # let start-up stragglers (subscriptions, acks) finish first
    rss = rss_mb()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await trio.sleep(idle_s)
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 100
    print(f"{label:<38} RSS {rss:7.1f} MB   idle CPU {cpu:5.2f}% of one core over {idle_s:g} s")
    return rss, cpu


def resting_price_amount(market: dict[str, Any], last: float) -> tuple[float, float]:
    """A buy far below the market (it rests), worth about ORDER_VALUE USDT."""
    tick = market["precision"]["price"]
    step = market["precision"]["amount"]
    price = math.floor(last * 0.5 / tick) * tick
    amount = max(
        market["limits"]["amount"]["min"] or step, math.ceil(ORDER_VALUE / price / step) * step
    )
    return float(f"{price:.10g}"), float(f"{amount:.10g}")


async def asset_watchers(
    ex: CcxtExchange,
    config: WatcherConfig,
    symbol: str,
    local_open: list[tuple[str | None, str]],
    send: trio.MemorySendChannel[Any],
    started: list[Watcher],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """One asset's nursery: its orders and trades watchers, as `LiveDriver` runs them."""
    orders = OrdersWatcher(ex, config, symbol, lambda: local_open)
    trades = TradesWatcher(ex, config, symbol)
    async with trio.open_nursery() as nursery:
        await nursery.start(orders.run, send.clone())
        await nursery.start(trades.run, send.clone())
        started += [orders, trades]
        task_status.started()


async def run(env: dict[str, str], assets: int, idle_s: float) -> None:
    config = WatcherConfig()
    # No rate limit: the start-up gap fills (two REST reads per asset) would otherwise take
    # minutes at ccxt's Binance rate, and only the idle state after them is measured.
    async with (
        CcxtExchange.open(
            "binance", sandbox=False, env=env, rate_limit=RateLimit(rate_per_s=math.inf)
        ) as ex,
        trio.open_nursery() as nursery,
    ):
        send, receive = trio.open_memory_channel[Any](4096)
        reports = [0]

        async def consume() -> None:
            async for _ in receive:
                reports[0] += 1

        nursery.start_soon(consume)
        balance = BalanceWatcher(ex, config)
        await nursery.start(balance.run, send.clone())
        print(f"{ex!r}; {assets} assets over {len(SYMBOLS)} symbols; idle windows of {idle_s:g} s")
        base_rss, base_cpu = await measure("baseline (no asset watchers)", idle_s)

        # One resting order per asset, then its watchers (the driver starts them on the order).
        markets = ex.markets
        last = {sym: (await ex.fetch_ticker(sym))["last"] for sym in SYMBOLS}
        started: list[Watcher] = []
        began = time.perf_counter()
        for i in range(assets):
            symbol = SYMBOLS[i % len(SYMBOLS)]
            price, amount = resting_price_amount(markets[symbol], last[symbol])
            client_id = f"bench-{os.getpid()}-{i}"
            order = await ex.create_order(
                symbol, "limit", "buy", amount, price, {"clientOrderId": client_id}
            )
            await nursery.start(
                asset_watchers, ex, config, symbol, [(order["id"], client_id)], send, started
            )
        healthy = sum(w.health == HEALTHY for w in started)
        print(
            f"started {len(started)} watchers ({healthy} healthy) for {assets} assets with a "
            f"resting order each in {time.perf_counter() - began:.1f} s; "
            f"{reports[0]} reports applied"
        )
        rss, cpu = await measure(f"with {assets} assets' watchers", idle_s)
        per_asset_kb = (rss - base_rss) * 1024 / assets
        print(
            f"RSS {rss:.1f} MB = {rss / base_rss:.2f}x baseline ({rss - base_rss:+.1f} MB, "
            f"{per_asset_kb:.0f} kB per asset); target <= 300 MB: "
            f"{'met' if rss <= 300 else 'NOT met'}"
        )
        print(
            f"idle CPU {cpu:.2f}% of one core vs {base_cpu:.2f}% baseline "
            f"({cpu - base_cpu:+.2f} points); target <= 5%: {'met' if cpu <= 5 else 'NOT met'}"
        )
        stale = [w.name for w in [balance, *started] if w.health != HEALTHY]
        if stale:
            print(f"not healthy after the idle window: {len(stale)} ({', '.join(stale[:5])} ...)")
        nursery.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle CPU window (seconds)")
    args = parser.parse_args(argv)
    with serve_in_process({"USDT": 10_000_000.0}) as env:
        trio.run(run, env, args.assets, args.idle_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
