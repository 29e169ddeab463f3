"""One strategy, three modes: the same decisions on the same market path in Sim, Paper and
Live (on each loopback dialect), with fill prices that differ only as each mode's fill model
allows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import trio

from runtime import Live, Paper, Sim, start, stop, strategy
from runtime.exchanges.ccxt import CcxtExchange
from tests.conftest import HERE
from tests.runtime.conftest import Dialect
from tests.runtime.testing.loopback.support import BTC

UPDOWN = HERE / "three_modes_strategy.py"


async def test_same_decisions_in_sim_paper_and_live(
    running_dialect: Dialect, tmp_path: Path
) -> None:
    venue = running_dialect.id
    config = {"trace_root": str(tmp_path)}
    live = strategy(UPDOWN, mode=Live(), exchange=venue, sandbox=False, config=config)
    paper = strategy(UPDOWN, mode=Paper(), exchange=venue, sandbox=False, config=config)
    async with trio.open_nursery() as nursery:
        await nursery.start(start, live)
        await nursery.start(start, paper)
        with trio.fail_after(30):
            # Ticks come from the wall clock: poll their progress.
            while len(live.decisions) < 6 or len(paper.decisions) < 6:  # noqa: ASYNC110
                await trio.sleep(0.1)
        await stop(live)
        await stop(paper)
    async with CcxtExchange.open(venue, sandbox=False) as ex:
        rows = await ex.fetch_ohlcv(BTC, "1s", limit=120)
    frame = pd.DataFrame(rows[:-1], columns=["timestamp", "open", "high", "low", "close", "volume"])
    sim = strategy(UPDOWN, mode=Sim(), exchange=venue, data=frame, config={"trace": False})
    await start(sim)

    by_bar = {t: (side, price, close) for t, side, price, close in sim.decisions}
    bars = frame.set_index(frame["timestamp"].astype("int64") * 1_000_000)
    for mode in (live, paper):
        shared = [d for d in mode.decisions if d[0] in by_bar]
        assert len(shared) >= 4, (mode.decisions, sorted(by_bar)[-10:])
        for bar_time, side, price, close in shared:
            sim_side, sim_price, sim_close = by_bar[bar_time]
            assert side == sim_side, (
                mode.mode,
                bar_time,
                mode.decisions,
                [(t, by_bar[t]) for t in sorted(by_bar)[-12:]],
            )
            assert close == sim_close
            assert price is not None
            assert sim_price is not None
            # Fill models: Sim pays slippage on the bar's close; Live fills at the exchange's
            # price when the order lands, Paper at the book's VWAP. Within 1-second bars all
            # stay near the close the decision saw.
            bar = bars.loc[bar_time]
            band = max(bar["high"] - bar["low"], close * 0.0005) * 3
            assert abs(price - close) <= band, (mode.mode, price, close, band)
            assert abs(sim_price - close) <= band
