"""Live mode end to end against the loopback exchange (both dialects), with real ccxt classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from runtime import (
    Buy,
    CancelOrders,
    GTCOrder,
    Live,
    MarketOrder,
    Pending,
    Trade,
    call,
    start,
    stop,
    strategy,
)
from runtime.exchanges.ccxt import CcxtExchange
from tests.conftest import MANUAL
from tests.runtime.conftest import Dialect
from tests.runtime.testing.loopback.support import BTC


async def exchange_state(exchange: str, symbol: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async with CcxtExchange.open(exchange, sandbox=False) as ex:
        return await ex.fetch_balance(), await ex.fetch_open_orders(symbol)


async def test_spot_market_resting_fill_cancel_and_state_equals_exchange(
    dialect: Dialect, tmp_path: Path
) -> None:
    s = strategy(
        MANUAL,
        mode=Live(),
        exchange=dialect.id,
        sandbox=False,
        config={"trace_root": str(tmp_path)},
    )
    ai = s.universe[BTC]
    async with trio.open_nursery() as nursery:
        await nursery.start(start, s)
        assert s.cash == pytest.approx(100_000.0)

        t = await call(s, ai, MarketOrder[Buy], amount=0.01)
        assert isinstance(t, Trade), s._rt.last_refusal
        assert t.price == pytest.approx(60_000.0)  # the exchange's fill price
        assert t.fee == pytest.approx(0.01 * 60_000.0 * 0.001)
        assert ai.cash == pytest.approx(0.01)

        p = await call(s, ai, GTCOrder[Buy], amount=0.01, price=59_000.0, waitfor=1.0)
        assert isinstance(p, Pending)
        assert p.state == "open"
        dialect.ex.set_price(BTC, 58_900.0)  # the market trades through the bid
        fill = await p.wait(10.0)
        assert isinstance(fill, Trade)
        assert fill.price == pytest.approx(59_000.0)
        with trio.fail_after(10):
            while ai.cash < 0.02 - 1e-9:  # the watchers carry the fill into the balance
                await s._rt.account_changed.wait()

        rest = await call(s, ai, GTCOrder[Buy], amount=0.01, price=50_000.0, waitfor=0.5)
        assert isinstance(rest, Pending)
        assert await call(s, ai, CancelOrders()) is True
        assert ai.orders == ()
        await stop(s)

    balance, open_orders = await exchange_state(dialect.id, BTC)
    assert open_orders == []
    assert s.balances["USDT"].total == pytest.approx(balance["USDT"]["total"])
    assert s.balances["BTC"].total == pytest.approx(balance["BTC"]["total"])
    assert s.cash_committed == pytest.approx(0.0)
