"""Isolated-margin, one-way positions in Sim: open, grow, reduce, flip, close, liquidate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime import (
    Buy,
    CancelOrders,
    GTCOrder,
    MarketOrder,
    Pending,
    PositionClose,
    Sell,
    Sim,
    Trade,
    UpdateLeverage,
    call,
    start,
    strategy,
)
from tests.conftest import HERE, bars
from traces import iter_events, replay_from_trace

MARGIN = HERE / "manual_margin_strategy.py"


def margin_strategy(closes: list[float], **kw: Any) -> Any:
    return strategy(MARGIN, mode=Sim(), data=bars(closes, **kw), config={"trace": False})


async def test_long_position_margin_and_pnl() -> None:
    s = margin_strategy([30_000.0] * 5)
    ai = s.universe["BTC/USDT"]  # the spot name finds the perpetual
    assert ai.symbol == "BTC/USDT:USDT"
    assert ai.leverage == 2.0
    t = await call(s, ai, MarketOrder[Buy], amount=0.1)
    assert isinstance(t, Trade)
    pos = ai.long
    assert pos is not None
    assert ai.short is None
    assert pos.contracts == pytest.approx(0.1)
    assert pos.entry_price == pytest.approx(t.price)
    assert pos.margin == pytest.approx(0.1 * t.price / 2.0)
    assert pos.leverage == 2.0
    assert s.cash == pytest.approx(10_000.0 - t.fee)
    assert s.cash_committed == pytest.approx(pos.margin)
    # Liquidation below entry by about 1/leverage.
    assert t.price * 0.45 < pos.liquidation_price < t.price * 0.55
    assert pos.unrealized_pnl == pytest.approx(0.1 * (ai.price - t.price))
    assert ai.cash == pytest.approx(0.1)


async def test_sell_more_than_long_flips_to_short() -> None:
    s = margin_strategy([30_000.0] * 5)
    ai = s.universe["BTC/USDT"]
    buy = await call(s, ai, MarketOrder[Buy], amount=0.1)
    sell = await call(s, ai, MarketOrder[Sell], amount=0.3)
    assert isinstance(buy, Trade)
    assert isinstance(sell, Trade)
    assert ai.long is None
    assert ai.short is not None
    assert ai.short.contracts == pytest.approx(0.2)
    assert ai.short.entry_price == pytest.approx(sell.price)
    realized = 0.1 * (sell.price - buy.price)
    assert s.cash == pytest.approx(10_000.0 - buy.fee - sell.fee + realized)
    assert s.cash_committed == pytest.approx(ai.short.margin)
    assert ai.cash == pytest.approx(-0.2)


async def test_update_leverage_refused_while_position_open() -> None:
    s = margin_strategy([30_000.0] * 5)
    ai = s.universe["BTC/USDT"]
    assert await call(s, ai, UpdateLeverage(5.0)) is True
    assert ai.leverage == 5.0
    await call(s, ai, MarketOrder[Buy], amount=0.1)
    assert await call(s, ai, UpdateLeverage(3.0)) is False
    assert "position" in str(s._rt.last_refusal)
    assert ai.leverage == 5.0
    assert ai.long is not None
    assert ai.long.leverage == 5.0


async def test_update_leverage_refused_while_order_open() -> None:
    s = margin_strategy([30_000.0] * 5)
    ai = s.universe["BTC/USDT"]
    assert isinstance(await call(s, ai, GTCOrder[Buy], amount=0.1, price=29_000.0), Pending)
    assert await call(s, ai, UpdateLeverage(3.0)) is False
    assert await call(s, ai, CancelOrders()) is True
    assert await call(s, ai, UpdateLeverage(3.0)) is True


async def test_position_close_cancels_orders_and_flattens() -> None:
    s = margin_strategy([30_000.0] * 5)
    ai = s.universe["BTC/USDT"]
    await call(s, ai, MarketOrder[Sell], amount=0.1)
    await call(s, ai, GTCOrder[Sell], amount=0.1, price=31_000.0)
    assert ai.short is not None
    assert len(ai.orders) == 1
    t = await call(s, ai, PositionClose())
    assert isinstance(t, Trade)
    assert t.side == "buy"
    assert t.order.reduce_only
    assert ai.short is None
    assert ai.long is None
    assert ai.orders == ()
    assert s.cash_committed == pytest.approx(0.0)
    assert await call(s, ai, PositionClose()) is None  # nothing left to close


async def test_reduce_only_cannot_grow_a_position() -> None:
    s = margin_strategy([30_000.0] * 5)
    ai = s.universe["BTC/USDT"]
    assert await call(s, ai, MarketOrder[Sell], amount=0.1, reduce_only=True) is None
    assert s.errors[-1].rule == "reduce_only"
    await call(s, ai, MarketOrder[Buy], amount=0.1)
    assert await call(s, ai, MarketOrder[Sell], amount=0.2, reduce_only=True) is None
    t = await call(s, ai, MarketOrder[Sell], amount=0.05, reduce_only=True)
    assert isinstance(t, Trade)
    assert ai.long is not None
    assert ai.long.contracts == pytest.approx(0.05)


async def test_margin_check_uses_leverage() -> None:
    s = margin_strategy([30_000.0] * 5)
    ai = s.universe["BTC/USDT"]
    # 0.7 BTC at 30k is 21k notional: 10.5k margin at 2x is more than the 10k cash.
    assert await call(s, ai, MarketOrder[Buy], amount=0.7) is None
    assert s.errors[-1].rule == "free_cash"
    assert "margin" in str(s.errors[-1])
    assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.6), Trade)


async def test_liquidation_closes_the_position() -> None:
    crash = [30_000.0] * 3 + [29_000.0, 25_000.0, 20_000.0, 14_000.0, 13_000.0]
    s = margin_strategy(crash)
    ai = s.universe["BTC/USDT"]
    assert await call(s, ai, UpdateLeverage(2.0)) is True
    t = await call(s, ai, MarketOrder[Buy], amount=0.5)
    assert isinstance(t, Trade)
    liq = ai.long.liquidation_price
    await start(s)
    assert ai.long is None
    closing = ai.trades[-1]
    assert closing.order.client_id.startswith("autoclose-")
    assert closing.price == pytest.approx(liq, abs=ai.price_tick)
    assert s.cash < 10_000.0 - 0.5 * (t.price - liq) * 0.99
    assert s.cash_committed == pytest.approx(0.0)


async def test_a_liquidation_is_recorded_as_such(tmp_path: Path) -> None:
    crash = [30_000.0] * 3 + [29_000.0, 25_000.0, 20_000.0, 14_000.0, 13_000.0]
    s = strategy(MARGIN, mode=Sim(), data=bars(crash), config={"trace_root": str(tmp_path)})
    ai = s.universe["BTC/USDT"]
    assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.5), Trade)
    await start(s)
    assert ai.long is None
    assert s.trace_path is not None
    liquidations = [e for e in iter_events(s.trace_path) if e.kind.name == "LIQUIDATION"]
    assert len(liquidations) == 1
    assert liquidations[0].payload["client_id"].startswith("autoclose-")
    assert liquidations[0].payload["amount"] == pytest.approx(0.5)
    replay_from_trace(s)
