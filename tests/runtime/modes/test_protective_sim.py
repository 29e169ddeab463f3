"""Protective orders in Sim (DESIGN §10): stops and take-profits on bar high/low, gaps, a
stop-limit that gaps past its limit, brackets with one-cancels-other, and the local checks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from runtime import (
    Buy,
    GTCOrder,
    MarketOrder,
    Pending,
    Sell,
    Sim,
    StopOrder,
    TakeProfitOrder,
    Trade,
    call,
    strategy,
)
from runtime.engine._replica import snapshot
from tests.conftest import HERE
from traces import iter_events, replay_from_trace

MARGIN = HERE / "manual_margin_strategy.py"
BTC = "BTC/USDT"


def ohlc(rows: list[tuple[float, float, float, float]], volume: float = 100.0) -> pd.DataFrame:
    """Bars from explicit (open, high, low, close) rows, one a minute."""
    o, h, lo, c = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    time = pd.date_range("2024-01-01", periods=len(rows), freq="1min", tz="UTC")
    return pd.DataFrame(
        {"timestamp": time, "open": o, "high": h, "low": lo, "close": c, "volume": volume}
    )


FLAT = (30_000.0, 30_010.0, 29_990.0, 30_000.0)


def manual(path: Path, rows: list[tuple[float, float, float, float]], **kw: Any) -> Any:
    return strategy(path, mode=Sim(), data=ohlc(rows), config={"trace": False}, **kw)


def slipped(s: Any, side: str, at: float, bar: tuple[float, float, float, float]) -> float:
    """The fill model's taker price from `at` on `bar` (0.01 BTC of a 100 BTC bar)."""
    fm = s._rt.exchange.fill_model
    _o, h, lo, c = bar
    slip = fm.spread_bps / 2e4 + fm.impact * (h - lo) / c * math.sqrt(0.01 / 100.0)
    return at * (1 + slip) if side == "buy" else at * (1 - slip)


async def test_a_stop_that_triggers_intrabar_fills_at_the_trigger_plus_slippage(
    manual_path: Path,
) -> None:
    through = (30_000.0, 30_050.0, 29_500.0, 29_900.0)  # opens above 29,700, trades below
    s = manual(manual_path, [FLAT, FLAT, through, FLAT])
    ai = s.universe[BTC]
    assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)
    p = await call(s, ai, StopOrder[Sell], amount=0.01, trigger_price=29_700.0, waitfor=0)
    assert isinstance(p, Pending)
    assert p.order.trigger_price == 29_700.0
    assert ai.orders == (p.order,)
    assert s.cash_committed == pytest.approx(0.0)  # a waiting trigger reserves nothing
    assert await p.wait(60.0) is None  # a flat bar: the stop waits
    trade = await p.wait(60.0)
    assert isinstance(trade, Trade)
    assert trade.price == pytest.approx(slipped(s, "sell", 29_700.0, through))
    assert trade.price < 29_700.0
    assert trade.taker
    assert p.order.status == "closed"
    assert ai.cash == pytest.approx(0.0)


async def test_a_bar_that_gaps_through_the_trigger_fills_at_its_open(manual_path: Path) -> None:
    gap = (29_400.0, 29_450.0, 29_300.0, 29_420.0)
    s = manual(manual_path, [FLAT, FLAT, gap])
    ai = s.universe[BTC]
    await call(s, ai, MarketOrder[Buy], amount=0.01)
    p = await call(s, ai, StopOrder[Sell], amount=0.01, trigger_price=29_700.0, waitfor=0)
    trade = await p.wait(120.0)
    assert isinstance(trade, Trade)
    assert trade.price == pytest.approx(slipped(s, "sell", 29_400.0, gap))  # the open, not 29,700


async def test_a_stop_limit_that_gaps_past_its_limit_rests_unfilled(manual_path: Path) -> None:
    gap = (29_400.0, 29_500.0, 29_300.0, 29_450.0)  # never back up to the 29,650 limit
    back = (29_450.0, 29_700.0, 29_400.0, 29_680.0)  # trades through it
    s = manual(manual_path, [FLAT, FLAT, gap, gap, back])
    ai = s.universe[BTC]
    await call(s, ai, MarketOrder[Buy], amount=0.01)
    p = await call(
        s, ai, StopOrder[Sell], amount=0.01, trigger_price=29_700.0, price=29_650.0, waitfor=0
    )
    assert isinstance(p, Pending)
    assert await p.wait(180.0) is None  # triggered by the gap, but the limit is above the bars
    assert p.order.is_open
    assert not p.order.fills
    trade = await p.wait(60.0)  # resting as a limit order: the bar that reaches it fills it
    assert isinstance(trade, Trade)
    assert trade.price == pytest.approx(29_650.0)
    assert not trade.taker


async def test_a_buy_take_profit_and_a_stop_limit_that_triggers_inside_its_limit(
    manual_path: Path,
) -> None:
    dip = (30_000.0, 30_020.0, 29_400.0, 29_600.0)
    s = manual(manual_path, [FLAT, FLAT, dip])
    ai = s.universe[BTC]
    tp = await call(s, ai, TakeProfitOrder[Buy], amount=0.01, trigger_price=29_500.0, waitfor=0)
    stop = await call(
        s, ai, StopOrder[Buy], amount=0.01, trigger_price=30_015.0, price=30_100.0, waitfor=0
    )
    assert isinstance(tp, Pending)
    assert isinstance(stop, Pending)
    assert isinstance(await tp.wait(120.0), Trade)
    assert tp.order.fills[0].price == pytest.approx(slipped(s, "buy", 29_500.0, dip))
    stop_fill = stop.order.fills[0]  # the same bar rose to 30,015 first (nearer the open)
    assert stop_fill.price == pytest.approx(slipped(s, "buy", 30_015.0, dip))


@pytest.mark.parametrize(
    ("move", "filled", "cancelled"),
    [
        ((30_000.0, 31_100.0, 29_950.0, 31_050.0), "tp", "sl"),  # up through the take-profit
        ((30_000.0, 30_050.0, 28_900.0, 28_950.0), "sl", "tp"),  # down through the stop
    ],
)
async def test_a_bracket_leg_that_fills_cancels_the_other(
    manual_path: Path, move: tuple[float, float, float, float], filled: str, cancelled: str
) -> None:
    s = manual(manual_path, [FLAT, FLAT, FLAT, move, FLAT])
    ai = s.universe[BTC]
    entry = await call(
        s, ai, MarketOrder[Buy], amount=0.01, stop_loss=29_000.0, take_profit=31_000.0
    )
    assert isinstance(entry, Trade)
    cid = entry.order.client_id
    legs = {o.client_id: o for o in ai.orders}
    assert set(legs) == {f"{cid}-sl", f"{cid}-tp"}  # placed, derived from the entry's id
    sl, tp = legs[f"{cid}-sl"], legs[f"{cid}-tp"]
    assert sl.type is StopOrder[Sell]
    assert sl.trigger_price == 29_000.0
    assert tp.type is TakeProfitOrder[Sell]
    assert tp.trigger_price == 31_000.0
    assert sl.amount == tp.amount == entry.order.filled  # sized to the fill
    assert not sl.reduce_only  # spot: no reduce-only
    await Pending(s._rt, legs[f"{cid}-{filled}"]).wait(600.0)
    won, lost = legs[f"{cid}-{filled}"], legs[f"{cid}-{cancelled}"]
    assert won.status == "closed"
    assert won.fills
    trigger = won.trigger_price
    assert won.fills[0].price == pytest.approx(slipped(s, "sell", trigger, move))
    assert lost.status == "canceled"
    assert not lost.fills
    assert not ai.orders
    assert ai.cash == pytest.approx(0.0)
    assert [t.order.client_id for t in s.fills] == [cid, won.client_id]  # on_trade saw both


async def test_margin_brackets_are_reduce_only_and_close_the_position() -> None:
    down = (30_000.0, 30_050.0, 28_900.0, 28_950.0)
    s = manual(MARGIN, [FLAT, FLAT, down, FLAT])
    ai = s.universe[BTC]
    entry = await call(
        s, ai, MarketOrder[Buy], amount=0.01, stop_loss=29_000.0, take_profit=31_000.0
    )
    assert isinstance(entry, Trade)
    assert ai.long is not None
    legs = list(ai.orders)
    assert len(legs) == 2
    assert all(o.reduce_only for o in legs)
    await Pending(s._rt, legs[0]).wait(300.0)
    assert ai.long is None  # the stop closed it
    assert not ai.orders  # and the take-profit was cancelled


async def test_reduce_only_stop_on_margin() -> None:
    s = manual(MARGIN, [FLAT, FLAT])
    ai = s.universe[BTC]
    await call(s, ai, MarketOrder[Buy], amount=0.01)
    p = await call(
        s, ai, StopOrder[Sell], amount=0.01, trigger_price=29_000.0, reduce_only=True, waitfor=0
    )
    assert isinstance(p, Pending)
    assert p.order.reduce_only
    # More than the position: refused by the reduce-only rule.
    assert (
        await call(s, ai, StopOrder[Sell], amount=0.02, trigger_price=29_000.0, reduce_only=True)
        is None
    )
    assert s._rt.last_refusal.rule == "reduce_only"


@pytest.mark.parametrize(
    ("order_type", "trigger", "rule"),
    [
        (StopOrder[Sell], 30_100.0, "sell_stop_below"),
        (TakeProfitOrder[Sell], 29_900.0, "sell_take_profit_above"),
        (StopOrder[Buy], 29_900.0, "buy_stop_above"),
        (TakeProfitOrder[Buy], 30_100.0, "buy_take_profit_below"),
        (StopOrder[Sell], None, "trigger_price_required"),
        (StopOrder[Sell], -5.0, "trigger_price_positive"),
        (StopOrder[Sell], math.nan, "trigger_price_positive"),
    ],
)
async def test_trigger_checks_name_their_rule(
    manual_path: Path, order_type: Any, trigger: Any, rule: str
) -> None:
    s = manual(manual_path, [FLAT, FLAT])
    ai = s.universe[BTC]
    await call(s, ai, MarketOrder[Buy], amount=0.01)
    sent = len(s._rt.exchange.ledger.orders)
    assert await call(s, ai, order_type, amount=0.01, trigger_price=trigger) is None
    error = s.errors[-1]
    assert error.rule == rule
    if rule.endswith(("below", "above")):
        where = rule.rsplit("_", 1)[1]
        assert f"must be {where} the last price" in str(error)
        assert "30000" in str(error)
        assert BTC in str(error)
    assert len(s._rt.exchange.ledger.orders) == sent  # nothing reached the exchange


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"stop_loss": 30_500.0}, "sell_stop_below"),
        ({"take_profit": 29_500.0}, "sell_take_profit_above"),
        ({"trigger_price": 29_000.0}, "trigger_price_unused"),
    ],
)
async def test_entry_bracket_checks(manual_path: Path, kwargs: dict[str, Any], rule: str) -> None:
    s = manual(manual_path, [FLAT, FLAT])
    ai = s.universe[BTC]
    assert await call(s, ai, MarketOrder[Buy], amount=0.01, **kwargs) is None
    assert s.errors[-1].rule == rule
    assert not ai.trades  # the entry was not sent either


async def test_a_bracket_on_a_trigger_order_is_refused(manual_path: Path) -> None:
    s = manual(manual_path, [FLAT, FLAT])
    ai = s.universe[BTC]
    await call(s, ai, MarketOrder[Buy], amount=0.01)
    r = await call(
        s, ai, StopOrder[Sell], amount=0.01, trigger_price=29_000.0, take_profit=31_000.0
    )
    assert r is None
    assert s.errors[-1].rule == "bracket_on_trigger"


async def test_a_resting_entry_is_protected_when_it_fills(manual_path: Path) -> None:
    dip = (30_000.0, 30_010.0, 29_850.0, 29_950.0)
    s = manual(manual_path, [FLAT, FLAT, dip, FLAT])
    ai = s.universe[BTC]
    p = await call(s, ai, GTCOrder[Buy], amount=0.01, price=29_900.0, stop_loss=29_000.0, waitfor=0)
    assert isinstance(p, Pending)
    assert ai.orders == (p.order,)  # no leg before the fill
    assert isinstance(await p.wait(120.0), Trade)
    (leg,) = ai.orders
    assert leg.client_id == f"{p.order.client_id}-sl"
    assert leg.trigger_price == 29_000.0


async def test_a_bracket_run_replays_from_its_trace(manual_path: Path, tmp_path: Path) -> None:
    up = (30_000.0, 31_100.0, 29_950.0, 31_050.0)
    s = strategy(
        manual_path,
        mode=Sim(),
        data=ohlc([FLAT, FLAT, up, FLAT]),
        config={"trace_root": str(tmp_path)},
    )
    ai = s.universe[BTC]
    entry = await call(
        s, ai, MarketOrder[Buy], amount=0.01, stop_loss=29_000.0, take_profit=31_000.0
    )
    await Pending(s._rt, s._rt.state.orders[f"{entry.order.client_id}-tp"]).wait(300.0)
    s._rt.recorder.close()
    path = s.trace_path
    kinds = [e.kind.name for e in iter_events(path)]
    assert kinds.count("BRACKET") == 2  # the bracket, then its one-cancels-other
    replayed = replay_from_trace(path)
    assert snapshot(replayed._rt.state) == snapshot(s._rt.state)


async def test_a_partly_filled_entry_cancelled_is_protected_for_what_filled(
    manual_path: Path,
) -> None:
    # A thin bar: the resting entry gets a quarter of its volume (the fill model's cap).
    dip = (30_000.0, 30_010.0, 29_850.0, 29_950.0)
    rows = [FLAT, FLAT, dip, FLAT]
    frame = ohlc(rows)
    frame.loc[2, "volume"] = 0.04  # 0.01 BTC may fill there
    s = strategy(manual_path, mode=Sim(), data=frame, config={"trace": False})
    ai = s.universe[BTC]
    p = await call(s, ai, GTCOrder[Buy], amount=0.03, price=29_900.0, stop_loss=29_000.0, waitfor=0)
    assert isinstance(p, Pending)
    assert isinstance(await p.wait(120.0), Trade)
    assert p.order.filled == pytest.approx(0.01)
    assert p.order.is_open  # the rest still rests: no leg yet
    assert ai.orders == (p.order,)
    assert await p.cancel() is True
    (leg,) = ai.orders
    assert leg.client_id == f"{p.order.client_id}-sl"
    assert leg.amount == pytest.approx(0.01)


async def test_a_short_bracket_on_margin_has_buy_legs_and_a_wide_bar_fills_only_one() -> None:
    """A short's legs buy: the stop above, the take-profit below. A bar that crosses both
    triggers fills the one nearer its open; the other, reduce-only, finds no position left and
    ends unfilled, so the position is closed, never reversed."""
    wide = (30_000.0, 30_600.0, 29_400.0, 30_000.0)  # opens nearer the stop at 30,500
    s = manual(MARGIN, [FLAT, FLAT, wide, FLAT])
    ai = s.universe[BTC]
    entry = await call(
        s, ai, MarketOrder[Sell], amount=0.01, stop_loss=30_500.0, take_profit=29_000.0
    )
    assert isinstance(entry, Trade)
    assert ai.short is not None
    legs = {o.client_id: o for o in ai.orders}
    sl, tp = legs[f"{entry.order.client_id}-sl"], legs[f"{entry.order.client_id}-tp"]
    assert sl.type is StopOrder[Buy]
    assert tp.type is TakeProfitOrder[Buy]
    await Pending(s._rt, sl).wait(300.0)
    assert sl.status == "closed"
    assert sl.fills[0].price == pytest.approx(slipped(s, "buy", 30_500.0, wide))
    assert not tp.fills  # reduce-only with nothing left to reduce
    assert tp.status in ("canceled", "expired")
    assert ai.short is None
    assert ai.long is None  # never reversed
