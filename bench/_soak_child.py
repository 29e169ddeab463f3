"""The strategy process of `bench/soak.py`: a Live strategy on the loopback with random order
flow, until the file ``<root>/stop`` appears; then it stops, checks that its trace replays to the
state it ends with, and writes that state to ``<root>/summary.json``. The soak kills it with
SIGKILL at random moments and starts it again on the same trace.

    python bench/_soak_child.py ROOT SEED      (VIGIL_BINANCE_* in the environment)
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import trio

from runtime import (
    Buy,
    CancelOrders,
    GTCOrder,
    Live,
    MarketOrder,
    Sell,
    call,
    start,
    stop,
    strategy,
)
from runtime.engine import runtime_of, snapshot
from runtime.model import WatcherConfig
from traces import replay_from_trace

HERE = Path(__file__).resolve().parent
SYMBOL = "BTC/USDT"
MODE = Live(watchers=WatcherConfig(stall_timeout_s=1.0, backoff_initial_s=0.05, backoff_max_s=0.5))


async def trade_randomly(s: Any, rng: random.Random, stop_file: Path) -> None:
    ai = s.universe[SYMBOL]
    while not await trio.Path(stop_file).exists():
        action = rng.random()
        price = ai.price
        if action < 0.3:
            await call(s, ai, MarketOrder[Buy], amount=0.001, waitfor=1.0)
        elif action < 0.5:
            if ai.cash >= 0.001:
                await call(s, ai, MarketOrder[Sell], amount=0.001, waitfor=1.0)
        elif action < 0.8:
            side = Buy if rng.random() < 0.5 else Sell
            offset = 1 + (rng.random() - 0.5) / 100  # within 0.5% of the market
            if side is Buy or ai.cash >= 0.001:
                await call(s, ai, GTCOrder[side], amount=0.001, price=price * offset, waitfor=0.2)
        else:
            await call(s, ai, CancelOrders())
        await trio.sleep(rng.uniform(0.02, 0.1))


async def main(root: Path, seed: int) -> None:
    s = strategy(
        str(HERE / "noop_strategy.py"), mode=MODE, sandbox=False, config={"trace_root": str(root)}
    )
    stop_file = root / "stop"
    async with trio.open_nursery() as nursery:
        await nursery.start(start, s)
        (root / "started").touch()  # the soak injects faults from now on
        await trade_randomly(s, random.Random(seed), stop_file)
        ai = s.universe[SYMBOL]
        with trio.move_on_after(30.0):  # lost sends still being resolved by client id
            while any(o.id is None for o in ai.orders):  # noqa: ASYNC110 (polled, no event)
                await trio.sleep(0.2)
        with trio.move_on_after(3.0):  # let the last reports arrive: the soak is quiet now
            watchers = runtime_of(s).driver.account_watchers  # type: ignore[attr-defined]
            # Health changes have no event to wait on: look every 0.1 s for 3 s at most.
            while any(w.health != "healthy" for w in watchers):  # noqa: ASYNC110
                await trio.sleep(0.1)
        await trio.sleep(1.0)
        await stop(s)
    state = snapshot(runtime_of(s).state)
    assert s.trace_path is not None
    replayed = snapshot(runtime_of(replay_from_trace(s.trace_path)).state)
    (root / "summary.json").write_text(
        json.dumps(
            {
                "state": state,
                "replay_equal": replayed == state,
                "client_id_prefix": runtime_of(s).client_id_prefix,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), int(sys.argv[2]))
