"""Paper mode on the loopback exchange's public streams (both dialects): fills locally, the
account untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from runtime import Buy, GTCOrder, MarketOrder, Paper, Pending, Trade, call, start, stop, strategy
from runtime.engine._replica import snapshot
from runtime.exchanges.ccxt import CcxtExchange
from tests.conftest import MANUAL
from tests.runtime.conftest import Dialect
from tests.runtime.testing.loopback.support import BTC
from traces import replay_from_trace


async def test_paper_fills_locally_and_the_exchange_sees_nothing(
    dialect: Dialect, tmp_path: Path
) -> None:
    s = strategy(
        MANUAL,
        mode=Paper(),
        exchange=dialect.id,
        sandbox=False,
        config={"trace_root": str(tmp_path)},
    )
    ai = s.universe[BTC]
    feed = s._rt.driver.paper.paper_feed
    async with trio.open_nursery() as nursery:
        await nursery.start(start, s)
        with trio.fail_after(10):
            # The book arrives from the public stream, written by the applier: poll for it.
            while BTC not in feed.books:  # noqa: ASYNC110
                await trio.sleep(0.02)
        best_ask = feed.books[BTC].asks[0][0]
        t = await call(s, ai, MarketOrder[Buy], amount=0.01)
        assert isinstance(t, Trade)
        assert t.price == pytest.approx(best_ask, rel=1e-3)
        p = await call(s, ai, GTCOrder[Buy], amount=0.01, price=59_000.0, waitfor=0)
        assert isinstance(p, Pending)
        # Public trades print through the bid. The trade stream subscribes asynchronously
        # and the tape has no history to replay, so keep the market moving until it is read.
        fill = None
        for step in range(10):
            dialect.ex.set_price(BTC, 58_000.0 - 10 * step)
            fill = await p.wait(1.0)
            if fill is not None:
                break
        assert isinstance(fill, Trade)
        assert fill.price == 59_000.0
        await stop(s)
    assert ai.cash == pytest.approx(0.02)
    # The exchange account saw no order and no trade.
    async with CcxtExchange.open(dialect.id, sandbox=False) as ex:
        assert await ex.fetch_open_orders(BTC) == []
        assert await ex.fetch_closed_orders(BTC) == []
        assert await ex.fetch_my_trades(BTC) == []
        assert (await ex.fetch_balance())["USDT"]["total"] == pytest.approx(100_000.0)
    # The paper run replays like any other.
    assert snapshot(replay_from_trace(s)._rt.state) == snapshot(s._rt.state)
