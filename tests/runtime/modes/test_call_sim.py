"""Every `call` outcome in Sim mode (DESIGN §3)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from runtime import (
    Buy,
    CancelOrders,
    FOKOrder,
    GTCOrder,
    IOCOrder,
    MarketOrder,
    Pending,
    PostOnlyOrder,
    Sell,
    Sim,
    Trade,
    call,
    start,
    strategy,
)
from tests.conftest import bars

FLAT = [30_000.0] * 5
DOWN = [30_000.0] * 5 + [29_800.0, 29_500.0, 29_000.0, 28_800.0, 28_900.0]


def manual(path: Path, closes: list[float] = FLAT, **kw: Any) -> Any:
    return strategy(path, mode=Sim(), data=bars(closes, **kw), config={"trace": False})


class ExchangeSpy:
    """Counts orders that reach the simulated exchange."""

    def __init__(self, s: Any) -> None:
        self.sent: list[tuple[Any, ...]] = []
        inner = s._rt.exchange.create_order

        async def create_order(*args: Any) -> Any:
            self.sent.append(args)
            return await inner(*args)

        s._rt.exchange.create_order = create_order


async def test_market_order_returns_trade(manual_path: Path) -> None:
    s = manual(manual_path)
    ai = s.universe["BTC/USDT"]
    r = await call(s, ai, MarketOrder[Buy], amount=0.01)
    assert isinstance(r, Trade)
    assert r.amount == pytest.approx(0.01)
    assert r.price > 30_000.0  # a buy pays the slippage
    assert r.fee == pytest.approx(r.value * ai.taker)
    assert r.order.status == "closed"
    assert r.order.fills == [r]
    assert ai.cash == pytest.approx(0.01)
    assert s.cash == pytest.approx(10_000.0 - r.value - r.fee)
    assert s.cash_committed == pytest.approx(0.0)
    assert s.fills == [r]  # on_trade saw it


async def test_marketable_gtc_returns_trade_at_no_worse_than_limit(manual_path: Path) -> None:
    s = manual(manual_path)
    ai = s.universe["BTC/USDT"]
    r = await call(s, ai, GTCOrder[Buy], amount=0.01, price=30_500.0)
    assert isinstance(r, Trade)
    assert 30_000.0 < r.price <= 30_500.0
    assert not ai.orders


async def test_resting_gtc_returns_pending_then_fills(manual_path: Path) -> None:
    s = manual(manual_path, DOWN)
    ai = s.universe["BTC/USDT"]
    r = await call(s, ai, GTCOrder[Buy], amount=0.01, price=29_100.0, waitfor=5.0)
    assert isinstance(r, Pending)
    assert r.state == "open"
    assert ai.orders == (r.order,)
    assert s.cash_committed == pytest.approx(0.01 * 29_100.0 * (1 + ai.taker))
    await start(s)  # later bars trade through 29,100
    trade = r.order.fills[-1]
    assert trade.price == pytest.approx(29_100.0)
    assert not trade.taker  # it rested: maker fee
    assert trade.fee == pytest.approx(0.01 * 29_100.0 * ai.maker)
    assert r.order.status == "closed"
    assert s.cash_committed == pytest.approx(0.0)
    assert ai.cash == pytest.approx(0.01)


async def test_waitfor_runs_on_the_simulated_clock(manual_path: Path) -> None:
    s = manual(manual_path, DOWN)
    ai = s.universe["BTC/USDT"]
    t0 = s._rt.now_ms()
    # Seven minutes of simulated time reach the bar that trades through the limit.
    r = await call(s, ai, GTCOrder[Buy], amount=0.01, price=29_100.0, waitfor=420.0)
    assert isinstance(r, Trade)
    assert t0 < s._rt.now_ms() <= t0 + 420_000


async def test_pending_wait_returns_the_fill(manual_path: Path) -> None:
    s = manual(manual_path, DOWN)
    ai = s.universe["BTC/USDT"]
    p = await call(s, ai, GTCOrder[Buy], amount=0.01, price=29_100.0, waitfor=0.0)
    assert isinstance(p, Pending)
    assert await p.wait(60.0) is None  # the next bar does not reach the limit
    trade = await p.wait(600.0)
    assert isinstance(trade, Trade)
    assert trade.order is p.order


@pytest.mark.parametrize(
    ("kwargs", "rule", "words"),
    [
        ({"amount": 0.000001}, "amount_min", ["0.000001", "minimum 0.00001", "BTC/USDT"]),
        ({"amount": -1.0}, "amount_positive", ["-1.0", "positive"]),
        ({"amount": 0.01, "price": math.inf}, "price_positive", ["inf"]),
        ({"amount": 0.01, "price": math.nan}, "price_positive", ["nan"]),
        ({"amount": 1.0}, "free_cash", ["USDT", "10000"]),
    ],
)
async def test_local_checks_return_none_without_reaching_the_exchange(
    manual_path: Path, kwargs: dict[str, float], rule: str, words: list[str]
) -> None:
    s = manual(manual_path)
    spy = ExchangeSpy(s)
    ai = s.universe["BTC/USDT"]
    kwargs.setdefault("price", 30_000.0)
    r = await call(s, ai, GTCOrder[Buy], **kwargs)
    assert r is None
    assert spy.sent == []
    (error,) = s.errors
    assert error.rule == rule
    for word in words:
        assert word in str(error), (word, str(error))
    assert s.cash == 10_000.0
    assert s.cash_committed == 0.0


async def test_spot_sell_needs_base_cash(manual_path: Path) -> None:
    s = manual(manual_path)
    spy = ExchangeSpy(s)
    r = await call(s, s.universe["BTC/USDT"], MarketOrder[Sell], amount=0.01)
    assert r is None
    assert spy.sent == []
    assert s.errors[0].rule == "free_cash"
    assert "BTC" in str(s.errors[0])


async def test_unfilled_ioc_returns_none(manual_path: Path) -> None:
    s = manual(manual_path)
    ai = s.universe["BTC/USDT"]
    r = await call(s, ai, IOCOrder[Buy], amount=0.01, price=29_000.0)
    assert r is None
    (order,) = s._rt.state.orders.values()
    assert order.status == "expired"
    assert s.cash_committed == 0.0


async def test_fok_without_the_volume_returns_none(manual_path: Path) -> None:
    # 0.5 BTC traded per bar: an order may take 25% of it, far less than 1 BTC.
    s = strategy(
        manual_path,
        mode=Sim(),
        data=bars(FLAT, volume=0.5),
        config={"trace": False},
        initial_cash=100_000.0,
    )
    ai = s.universe["BTC/USDT"]
    r = await call(s, ai, FOKOrder[Buy], amount=1.0, price=31_000.0)
    assert r is None
    assert s.cash == 100_000.0
    # The same FOK for what the bar can give fills.
    r = await call(s, ai, FOKOrder[Buy], amount=0.1, price=31_000.0)
    assert isinstance(r, Trade)
    assert r.amount == pytest.approx(0.1)


async def test_ioc_fills_partially_and_expires_the_rest(manual_path: Path) -> None:
    s = strategy(
        manual_path,
        mode=Sim(),
        data=bars(FLAT, volume=0.4),
        config={"trace": False},
        initial_cash=100_000.0,
    )
    ai = s.universe["BTC/USDT"]
    r = await call(s, ai, IOCOrder[Buy], amount=1.0, price=31_000.0)
    assert isinstance(r, Trade)
    assert r.amount == pytest.approx(0.1)  # 25% of 0.4 BTC
    assert r.order.status == "expired"
    assert r.order.filled == pytest.approx(0.1)
    assert s.cash_committed == pytest.approx(0.0)


async def test_crossing_post_only_returns_none(manual_path: Path) -> None:
    s = manual(manual_path)
    ai = s.universe["BTC/USDT"]
    r = await call(s, ai, PostOnlyOrder[Buy], amount=0.01, price=30_100.0)
    assert r is None
    assert "immediately match" in str(s.errors[0])
    r = await call(s, ai, PostOnlyOrder[Buy], amount=0.01, price=29_900.0, waitfor=0)
    assert isinstance(r, Pending)


async def test_exchange_rejection_returns_none(manual_path: Path) -> None:
    s = manual(manual_path)
    ai = s.universe["BTC/USDT"]
    # skipchecks sends an unrounded amount: the exchange's LOT_SIZE filter refuses it.
    r = await call(s, ai, GTCOrder[Buy], amount=0.0123456, price=29_000.0, skipchecks=True)
    assert r is None
    assert "LOT_SIZE" in str(s.errors[0])
    assert not ai.orders


async def test_cancel_orders_leaves_no_open_order(manual_path: Path) -> None:
    s = manual(manual_path)
    ai = s.universe["BTC/USDT"]
    for price in (29_000.0, 29_100.0, 29_200.0):
        assert isinstance(await call(s, ai, GTCOrder[Buy], amount=0.01, price=price), Pending)
    assert len(ai.orders) == 3
    assert await call(s, ai, CancelOrders()) is True
    assert ai.orders == ()
    assert s.cash_committed == 0.0
    assert s.cash == 10_000.0
    assert await s._rt.exchange.fetch_open_orders("BTC/USDT") == []


async def test_cancel_orders_by_side(manual_path: Path) -> None:
    s = manual(manual_path)
    ai = s.universe["BTC/USDT"]
    await call(s, ai, MarketOrder[Buy], amount=0.02)
    await call(s, ai, GTCOrder[Buy], amount=0.01, price=29_000.0)
    await call(s, ai, GTCOrder[Sell], amount=0.01, price=31_000.0)
    assert await call(s, ai, CancelOrders(side=Sell)) is True
    assert [o.side for o in ai.orders] == ["buy"]
    assert ai.cash_committed == 0.0


async def test_amount_and_price_are_rounded_to_the_market(manual_path: Path) -> None:
    s = manual(manual_path)
    ai = s.universe["BTC/USDT"]
    p = await call(s, ai, GTCOrder[Buy], amount=0.0123456, price=29_000.126)
    assert isinstance(p, Pending)
    assert p.order.amount == 0.01234  # down to the step
    assert p.order.price == 29_000.13  # to the nearest tick


async def test_client_ids_are_deterministic(manual_path: Path) -> None:
    ids = []
    for _ in range(2):
        s = manual(manual_path)
        ai = s.universe["BTC/USDT"]
        await call(s, ai, GTCOrder[Buy], amount=0.01, price=29_000.0)
        await call(s, ai, MarketOrder[Buy], amount=0.01)
        ids.append([o.client_id for o in s._rt.state.orders.values()])
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 2
    assert all(len(i) <= 36 for i in ids[0])
