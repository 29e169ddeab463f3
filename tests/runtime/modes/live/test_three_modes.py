"""One strategy, three modes: the same decisions on the same market path in Sim, Paper and
Live (on each loopback dialect), with fill prices that differ only as each mode's fill model
allows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import trio

from runtime import Live, Paper, Sim, start, stop, strategy
from runtime.exchanges.ccxt import CcxtExchange
from runtime.testing.loopback import LoopbackExchange
from tests.conftest import HERE
from tests.runtime.conftest import Dialect
from tests.runtime.testing.loopback.support import BTC

UPDOWN = HERE / "three_modes_strategy.py"
BRACKETS = HERE / "three_modes_bracket_strategy.py"
LEGS = ("-sl", "-tp")


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


async def test_same_bracket_decisions_in_sim_paper_and_live(
    running_market: LoopbackExchange, tmp_path: Path
) -> None:
    """The same with brackets: the same entries and protective triggers in each mode, each
    filled entry protected by both legs (unless a trigger was already crossed: refused by
    name), and once a leg has filled the other is not left open (Live spot sends the pair as
    Binance's OCO order list; Sim and Paper emulate it)."""
    live = strategy(BRACKETS, mode=Live(), sandbox=False, config={"trace_root": str(tmp_path)})
    paper = strategy(BRACKETS, mode=Paper(), sandbox=False, config={"trace_root": str(tmp_path)})

    def legs_filled(s: Any) -> int:
        return sum(bool(o.fills) for c, o in s._rt.state.orders.items() if c.endswith(LEGS))

    def one_leg_filled_other_open(s: Any) -> bool:
        orders = s._rt.state.orders
        for entry in s.entries:
            legs = [o for o in (orders.get(f"{entry}-sl"), orders.get(f"{entry}-tp")) if o]
            if any(leg.fills for leg in legs) and any(leg.is_open for leg in legs):
                return True
        return False

    async with trio.open_nursery() as nursery:
        await nursery.start(start, live)
        await nursery.start(start, paper)
        with trio.fail_after(40):
            # Ticks come from the wall clock: poll their progress.
            while (  # noqa: ASYNC110
                min(len(live.decisions), len(paper.decisions)) < 6
                or min(legs_filled(live), legs_filled(paper)) < 1
            ):
                await trio.sleep(0.1)
            # The other leg's end is its own report (Binance expires it in the OCO list): it
            # may trail the fill that ended the wait above, so let it arrive before stopping.
            while one_leg_filled_other_open(live) or one_leg_filled_other_open(paper):  # noqa: ASYNC110
                await trio.sleep(0.05)
        await stop(live)
        await stop(paper)
    async with CcxtExchange.open("binance", sandbox=False) as ex:
        rows = await ex.fetch_ohlcv(BTC, "1s", limit=120)
    frame = pd.DataFrame(rows[:-1], columns=["timestamp", "open", "high", "low", "close", "volume"])
    sim = strategy(BRACKETS, mode=Sim(), data=frame, config={"trace": False})
    await start(sim)
    assert legs_filled(sim) >= 1

    by_bar = {d[0]: d[1:] for d in sim.decisions}
    for mode in (live, paper):
        shared = [d for d in mode.decisions if d[0] in by_bar]
        assert len(shared) >= 4, (mode.mode, mode.decisions, sorted(by_bar)[-10:])
        for bar_time, side, _price, close, stop_loss, take_profit in shared:
            sim_side, _sim_price, sim_close, sim_stop, sim_take = by_bar[bar_time]
            assert (side, close, stop_loss, take_profit) == (
                sim_side,
                sim_close,
                sim_stop,
                sim_take,
            ), (mode.mode, bar_time)
        # Each buy filled, unless the live price had already crossed its stop or take-profit
        # when it was sent (then refused by that check, by name).
        buys = [d for d in mode.decisions if d[1] == "buy"]
        unfilled = [d for d in buys if d[2] is None]
        assert len(unfilled) <= len(mode.refusals), (mode.mode, unfilled, mode.refusals)
    for mode in (live, paper, sim):
        orders = mode._rt.state.orders
        protected = 0
        for entry in mode.entries:
            legs = [orders.get(f"{entry}-sl"), orders.get(f"{entry}-tp")]
            if None in legs:
                continue  # refused: the price had crossed a trigger by the fill (counted below)
            protected += 1
            assert all(leg.trigger_price is not None for leg in legs if leg is not None)
            if any(leg.fills for leg in legs if leg is not None):
                assert not any(leg.is_open for leg in legs if leg is not None), (mode.mode, legs)
        assert protected >= len(mode.entries) - len(mode.refusals), (mode.mode, mode.refusals)
        assert protected >= 1
