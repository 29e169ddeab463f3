"""ccxt reports to engine events: emulated fills from cumulative order updates."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import Sim, strategy
from runtime.engine._engine import OrderCreated, State, apply
from runtime.engine._translate import emulated_fill
from runtime.model._orders import Order
from tests.conftest import MANUAL, bars


def _apply_fill(
    state: State, order: Order, update: dict[str, Any], amount: float, price: float, fee: float
) -> None:
    """Check the fill ``update`` adds to ``order`` (amount, average price, fee), and apply it."""
    fill = emulated_fill(state, order, update)
    assert fill is not None
    assert fill.amount == pytest.approx(amount)
    assert fill.price == pytest.approx(price)
    assert fill.fee == pytest.approx(fee)
    apply(state, fill)


def test_emulated_fills_come_from_filled_and_cost_deltas() -> None:
    s = strategy(MANUAL, mode=Sim(), data=bars([30_000.0] * 3), config={"trace": False})
    state = s._rt.state
    apply(state, OrderCreated("BTC/USDT", "c1", "buy", "GTCOrder", 1.0, 30_000.0, 1, id="9"))
    order = state.orders["c1"]
    update = {
        "id": "9",
        "clientOrderId": "c1",
        "symbol": "BTC/USDT",
        "filled": 0.4,
        "cost": 0.4 * 29_990.0,
        "fee": {"cost": 12.0, "currency": "USDT"},
        "lastTradeTimestamp": 5,
    }
    _apply_fill(state, order, update, amount=0.4, price=29_990.0, fee=12.0)
    update = dict(
        update,
        filled=1.0,
        cost=0.4 * 29_990.0 + 0.6 * 30_000.0,
        fee={"cost": 30.0, "currency": "USDT"},
        lastTradeTimestamp=6,
    )
    _apply_fill(state, order, update, amount=0.6, price=30_000.0, fee=18.0)
    assert order.status == "closed"
    assert emulated_fill(state, order, update) is None  # the same update again: no new fill
