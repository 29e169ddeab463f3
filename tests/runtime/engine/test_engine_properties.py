"""Property tests: random order sequences keep the books consistent.

After every action: committed cash equals what the open orders (and positions) hold, never goes
negative, free cash never goes below zero, every unit of cash is accounted for by fills, fees
and realised PnL, and the strategy's state equals the simulated exchange's ledger.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import (
    Buy,
    CancelOrders,
    FOKOrder,
    GTCOrder,
    IOCOrder,
    MarketOrder,
    Pending,
    PositionClose,
    PostOnlyOrder,
    Sell,
    Sim,
    call,
    strategy,
)
from runtime.model._bars import generate_bars
from tests.conftest import HERE, MANUAL

TYPES = [MarketOrder, GTCOrder, IOCOrder, FOKOrder, PostOnlyOrder]
action = st.one_of(
    st.tuples(
        st.just("order"),
        st.sampled_from(TYPES),
        st.sampled_from([Buy, Sell]),
        st.floats(0.0005, 0.15),  # amount in BTC
        st.floats(-0.02, 0.02),  # limit price offset from the last price
        st.booleans(),  # reduce_only (margin only)
    ),
    st.tuples(st.just("wait"), st.integers(1, 30)),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("close")),
)
SETTINGS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _approx(a: float, b: float, scale: float = 1.0) -> bool:
    return abs(a - b) <= 1e-6 * max(scale, abs(a), abs(b))


def check_invariants(s: Any, initial: float) -> None:
    state = s._rt.state
    ledger = s._rt.exchange.ledger
    margin = s._rt.margin
    for currency, b in state.balances.items():
        assert b.committed >= 0.0, (currency, b)
        assert b.free >= -1e-6 * max(1.0, b.total), (currency, b)
        lb = ledger.balance(currency)
        assert _approx(b.total, lb.total, 1e3), (currency, b, lb)
        assert _approx(b.committed, lb.committed, 1e3), (currency, b, lb)
    fees = sum(t.fee for ai in s.universe for t in ai.trades)
    for ai in s.universe:
        open_orders = ai.open_orders
        assert set(open_orders) == set(ledger.assets[ai.symbol].open_orders)
        assert all(o.committed >= 0 for o in open_orders.values())
        if margin:
            settle = state.balance(ai.settle)
            held = sum(o.committed for o in open_orders.values())
            held += sum(p.margin for p in (ai.long, ai.short) if p is not None)
            assert _approx(settle.committed, held, 1e3)
            net = sum(t.amount if t.side == "buy" else -t.amount for t in ai.trades)
            assert _approx(ai.cash, net, 1.0), (ai.cash, net)
            assert ai.long is None or ai.short is None  # one-way
        else:
            quote, base = state.balance(ai.quote), state.balance(ai.base)
            bought = sum(t.amount for t in ai.trades if t.side == "buy")
            sold = sum(t.amount for t in ai.trades if t.side == "sell")
            spent = sum(t.value for t in ai.trades if t.side == "buy")
            got = sum(t.value for t in ai.trades if t.side == "sell")
            assert _approx(base.total, bought - sold, 1.0)
            assert _approx(quote.total, initial - spent + got - fees, 1e4)
            buys = sum(o.committed for o in open_orders.values() if o.side == "buy")
            sells = sum(o.committed for o in open_orders.values() if o.side == "sell")
            assert _approx(quote.committed, buys, 1e3)
            assert _approx(base.committed, sells, 1.0)
    if margin:
        # Cash moves only by fees and realised PnL: replay PnL with the engine's rules.
        realized = 0.0
        for ai in s.universe:
            size, entry = 0.0, 0.0
            for t in ai.trades:
                signed = t.amount if t.side == "buy" else -t.amount
                if size == 0 or (size > 0) == (signed > 0):
                    entry = (abs(size) * entry + abs(signed) * t.price) / (abs(size) + abs(signed))
                    size += signed
                else:
                    closing = min(abs(signed), abs(size))
                    realized += closing * (t.price - entry) * (1 if size > 0 else -1)
                    size += signed
                    if abs(size) > 1e-12 and (size > 0) == (signed > 0):
                        entry = t.price
                    elif abs(size) <= 1e-12:
                        size = 0.0
        assert _approx(s.cash, initial + realized - fees, 1e4), (s.cash, initial, realized, fees)


async def run_actions(s: Any, actions: list[tuple[Any, ...]], initial: float) -> None:
    ai = next(iter(s.universe))
    pendings: list[Pending] = []
    for act in actions:
        if act[0] == "order":
            _, kind, side, amount, offset, reduce_only = act
            params: dict[str, Any] = {"amount": amount}
            if kind is not MarketOrder:
                params["price"] = ai.price * (1 + offset)
            if reduce_only and s._rt.margin:
                params["reduce_only"] = True
            r = await call(s, ai, kind[side], waitfor=0.0, **params)
            if isinstance(r, Pending):
                pendings.append(r)
        elif act[0] == "wait":
            await s._rt.driver.advance_to(s._rt.now_ms() + act[1] * 60_000)
        elif act[0] == "cancel":
            assert await call(s, ai, CancelOrders()) is True
            assert ai.orders == ()
        elif act[0] == "close" and s._rt.margin:
            await call(s, ai, PositionClose())
            assert ai.long is None
            assert ai.short is None
        check_invariants(s, initial)


@SETTINGS
@given(seed=st.integers(0, 10_000), actions=st.lists(action, min_size=3, max_size=30))
async def test_spot_books_stay_consistent(seed: int, actions: list[tuple[Any, ...]]) -> None:
    data = generate_bars(["BTC/USDT"], 400, seed=seed)
    s = strategy(MANUAL, mode=Sim(), data=data, initial_cash=20_000.0, config={"trace": False})
    await run_actions(s, actions, 20_000.0)


@SETTINGS
@given(seed=st.integers(0, 10_000), actions=st.lists(action, min_size=3, max_size=30))
async def test_margin_books_stay_consistent(seed: int, actions: list[tuple[Any, ...]]) -> None:
    data = generate_bars(["BTC/USDT:USDT"], 400, seed=seed)
    s = strategy(
        HERE / "manual_margin_strategy.py",
        mode=Sim(),
        data=data,
        initial_cash=20_000.0,
        config={"trace": False},
    )
    await run_actions(s, actions, 20_000.0)


@pytest.mark.parametrize("margin", [False, True])
async def test_invariant_checker_catches_a_broken_book(margin: bool) -> None:
    """The checker itself must be able to fail: corrupt committed cash and expect an error."""
    path = HERE / "manual_margin_strategy.py" if margin else MANUAL
    s = strategy(
        path, mode=Sim(), data=generate_bars(["BTC/USDT"], 50, seed=1), config={"trace": False}
    )
    ai = next(iter(s.universe))
    await call(s, ai, GTCOrder[Buy], amount=0.01, price=ai.price * 0.9)
    check_invariants(s, 10_000.0)
    s._rt.state.balance("USDT").committed += 5.0
    with pytest.raises(AssertionError):
        check_invariants(s, 10_000.0)
