"""A reconnect of the market streams in the middle of a run loses no bar (both dialects)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trio

from runtime import Paper, start, stop, strategy
from runtime.exchanges.ccxt import CcxtExchange
from tests.conftest import HERE
from tests.runtime.conftest import Dialect
from tests.runtime.testing.loopback.support import BTC


async def test_stream_reconnect_loses_no_bar(running_dialect: Dialect, tmp_path: Path) -> None:
    s = strategy(
        HERE / "three_modes_strategy.py",
        mode=Paper(),
        exchange=running_dialect.id,
        sandbox=False,
        config={"trace_root": str(tmp_path)},
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(start, s)
        with trio.fail_after(20):
            while len(s.decisions) < 3:  # noqa: ASYNC110  (ticks follow the wall clock)
                await trio.sleep(0.05)
            running_dialect.ex.faults.close_websockets()
            while len(s.decisions) < 7:  # noqa: ASYNC110
                await trio.sleep(0.05)
        await stop(s)
    window = s.universe[BTC].ohlcv
    times = window.time.astype("int64") // 1_000_000
    assert np.all(np.diff(times) == 1_000)  # one bar per second, none missing
    async with CcxtExchange.open(running_dialect.id, sandbox=False) as ex:
        rows = await ex.fetch_ohlcv(BTC, "1s", since=int(times[0]), limit=len(times))
    closes = {int(r[0]): r[4] for r in rows}
    assert [closes[int(t)] for t in times] == list(window["close"])  # the exchange's bars
