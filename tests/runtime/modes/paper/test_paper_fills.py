"""Paper fills on a scripted book and trade tape: VWAP sweeps, the queue, FOK depth."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import (
    Buy,
    FOKOrder,
    GTCOrder,
    MarketOrder,
    Paper,
    Pending,
    Sell,
    StopOrder,
    TakeProfitOrder,
    Trade,
    call,
)
from runtime import strategy as load
from tests.conftest import MANUAL

BTC = "BTC/USDT"


def paper(cash: float = 1_000_000.0) -> Any:
    s = load(MANUAL, mode=Paper(), initial_cash=cash, config={"trace": False})
    s._rt.driver.on_market(
        "book",
        BTC,
        {
            "bids": [[59_990.0, 5.0], [59_980.0, 2.0], [59_970.0, 3.0]],
            "asks": [[60_010.0, 0.5], [60_020.0, 1.0], [60_030.0, 4.0]],
        },
    )
    return s


def tape(s: Any, *trades: tuple[float, float]) -> None:
    s._rt.driver.on_market(
        "public_trades",
        BTC,
        [
            {"price": p, "amount": a, "timestamp": 1_700_000_000_000 + i, "side": "sell"}
            for i, (p, a) in enumerate(trades)
        ],
    )


async def test_market_buy_sweeps_levels_at_the_vwap() -> None:
    s = paper()
    ai = s.universe[BTC]
    t = await call(s, ai, MarketOrder[Buy], amount=1.2)
    assert isinstance(t, Trade), s._rt.last_refusal
    vwap = (0.5 * 60_010.0 + 0.7 * 60_020.0) / 1.2
    assert t.price == pytest.approx(vwap)
    assert t.fee == pytest.approx(1.2 * vwap * ai.taker)
    # What it took is gone until the book refreshes: the next buy starts deeper.
    t2 = await call(s, ai, MarketOrder[Buy], amount=0.3)
    assert isinstance(t2, Trade)
    assert t2.price == pytest.approx(60_020.0)
    assert ai.cash == pytest.approx(1.5)


async def test_resting_bid_fills_only_after_its_queue_has_traded() -> None:
    s = paper()
    ai = s.universe[BTC]
    p = await call(s, ai, GTCOrder[Buy], amount=0.5, price=59_990.0, waitfor=0)
    assert isinstance(p, Pending)  # 5 BTC rest ahead of it at 59,990
    tape(s, (59_990.0, 3.0), (59_990.0, 1.5))
    assert p.order.filled == 0.0  # 4.5 of the 5 ahead have traded
    tape(s, (59_995.0, 2.0))  # above the bid: not its price
    assert p.order.filled == 0.0
    tape(s, (59_990.0, 0.8))  # 0.5 finishes the queue, 0.3 reaches the order
    assert p.order.filled == pytest.approx(0.3)
    assert p.order.fills[-1].price == 59_990.0
    assert not p.order.fills[-1].taker
    tape(s, (59_985.0, 1.0))  # a trade through the bid fills the rest
    assert p.order.filled == pytest.approx(0.5)
    assert p.order.status == "closed"


async def test_fok_without_enough_depth_returns_none() -> None:
    s = paper()
    ai = s.universe[BTC]
    # 1.5 BTC are offered up to 60,020: a 2 BTC FOK within that limit cannot fill.
    assert await call(s, ai, FOKOrder[Buy], amount=2.0, price=60_020.0) is None
    assert s.cash == pytest.approx(1_000_000.0)
    t = await call(s, ai, FOKOrder[Buy], amount=1.5, price=60_020.0)
    assert isinstance(t, Trade)
    assert t.amount == pytest.approx(1.5)


async def test_sell_sweeps_bids() -> None:
    s = paper()
    ai = s.universe[BTC]
    await call(s, ai, MarketOrder[Buy], amount=0.5)
    t = await call(s, ai, MarketOrder[Sell], amount=0.5)
    assert isinstance(t, Trade)
    assert t.price == pytest.approx(59_990.0)


async def test_a_stop_triggers_on_a_print_and_sweeps_the_book() -> None:
    """Paper triggers protective orders on trade prints (DESIGN §10), then executes them
    against the book as a market order arriving then."""
    s = paper()
    ai = s.universe[BTC]
    tape(s, (60_000.0, 0.1))  # the last price the trigger checks compare with
    await call(s, ai, MarketOrder[Buy], amount=1.0)
    p = await call(s, ai, StopOrder[Sell], amount=0.4, trigger_price=59_900.0, waitfor=0)
    assert isinstance(p, Pending)
    tape(s, (59_950.0, 1.0))  # above the trigger: nothing
    assert p.order.is_open
    assert not p.order.fills
    tape(s, (59_900.0, 0.2))  # a print at the trigger
    assert p.order.status == "closed"
    assert p.order.fills[-1].price == pytest.approx(59_990.0)  # the best bid takes 0.4
    assert p.order.fills[-1].taker


async def test_a_take_profit_limit_triggers_on_a_print_and_rests_within_its_limit() -> None:
    s = paper()
    ai = s.universe[BTC]
    tape(s, (60_000.0, 0.1))
    await call(s, ai, MarketOrder[Buy], amount=1.0)
    p = await call(
        s, ai, TakeProfitOrder[Sell], amount=0.5, trigger_price=60_050.0, price=60_100.0, waitfor=0
    )
    assert isinstance(p, Pending)
    tape(s, (60_040.0, 1.0))
    assert p.order.is_open  # below the trigger
    tape(s, (60_050.0, 1.0))  # triggered: a sell limit at 60,100 above the bids rests
    assert p.order.is_open
    assert not p.order.fills
    tape(s, (60_110.0, 1.0))  # a print through its limit fills it, at its limit
    assert p.order.status == "closed"
    assert p.order.fills[-1].price == 60_100.0
    assert not p.order.fills[-1].taker
