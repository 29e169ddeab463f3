"""ccxt reports to engine events: emulated fills from cumulative order updates."""

from __future__ import annotations

import pytest

from runtime import Sim, strategy
from runtime.engine._engine import OrderCreated, apply
from runtime.engine._translate import emulated_fill
from tests.conftest import MANUAL, bars


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
    first = emulated_fill(state, order, update)
    assert first is not None
    assert first.amount == pytest.approx(0.4)
    assert first.price == pytest.approx(29_990.0)
    assert first.fee == pytest.approx(12.0)
    apply(state, first)
    update = dict(
        update,
        filled=1.0,
        cost=0.4 * 29_990.0 + 0.6 * 30_000.0,
        fee={"cost": 30.0, "currency": "USDT"},
        lastTradeTimestamp=6,
    )
    second = emulated_fill(state, order, update)
    assert second is not None
    assert second.amount == pytest.approx(0.6)
    assert second.price == pytest.approx(30_000.0)
    assert second.fee == pytest.approx(18.0)
    apply(state, second)
    assert order.status == "closed"
    assert emulated_fill(state, order, update) is None  # the same update again: no new fill
