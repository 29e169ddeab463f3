"""Live mode on the loopback, on both dialects (Binance, and Bybit's unified account): futures
end to end, each return rule, faults and restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from runtime import (
    Buy,
    CancelOrders,
    FOKOrder,
    GTCOrder,
    IOCOrder,
    Live,
    MarketOrder,
    Pending,
    Sell,
    Strategy,
    Trade,
    call,
    start,
    stop,
    strategy,
)
from runtime.engine._replica import snapshot
from runtime.exchanges.ccxt import CcxtExchange
from tests.conftest import HERE, MANUAL
from tests.runtime.conftest import Dialect
from tests.runtime.testing.loopback.support import BTC, BTC_PERP
from traces import replay_from_trace
from watchers._base import WatcherConfig, retrying

MARGIN = HERE / "manual_margin_strategy.py"
FAST = Live(watchers=WatcherConfig(stall_timeout_s=1.0, backoff_initial_s=0.05, backoff_max_s=0.5))


@asynccontextmanager
async def running(
    path: Path, root: Path, dialect: Dialect | None = None, mode: Live = FAST
) -> AsyncIterator[Strategy]:
    """A Live run of `path` on `dialect`'s venue (the strategy's own exchange when None)."""
    exchange = dialect.id if dialect is not None else None
    s = strategy(
        path, mode=mode, exchange=exchange, sandbox=False, config={"trace_root": str(root)}
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(start, s)
        try:
            yield s
        finally:
            await stop(s)


async def until(s: Strategy, condition: Any, seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not condition():
            with trio.move_on_after(0.05):  # health changes are not account events: look again
                await s._rt.account_changed.wait()


async def on_exchange(dialect: Dialect | None, margin: bool, symbol: str) -> dict[str, Any]:
    async with CcxtExchange.open(
        dialect.id if dialect else "binance", sandbox=False, margin="isolated" if margin else None
    ) as ex:
        out: dict[str, Any] = {
            "balance": await ex.fetch_balance(),
            "open": await ex.fetch_open_orders(symbol),
        }
        if margin:
            out["positions"] = await ex.fetch_positions([symbol])
        return out


async def test_futures_end_to_end(dialect: Dialect, tmp_path: Path) -> None:
    async with running(MARGIN, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        assert ai.symbol == BTC_PERP
        assert ai.leverage == 2.0  # set on the exchange at start
        t = await call(s, ai, MarketOrder[Buy], amount=0.1)
        assert isinstance(t, Trade)
        assert t.price == pytest.approx(60_000.0)
        assert t.fee == pytest.approx(0.1 * 60_000.0 * dialect.perp_taker)
        assert ai.long is not None
        assert ai.long.contracts == pytest.approx(0.1)
        p = await call(s, ai, GTCOrder[Buy], amount=0.05, price=59_000.0, waitfor=0.5)
        assert isinstance(p, Pending), (p, s._rt.last_refusal)
        cash = s.cash
        dialect.ex.set_price(BTC, 58_800.0)
        filled = await p.wait(10.0)
        assert isinstance(filled, Trade)
        # The position and the wallet after the fill: Bybit reports them on separate topics,
        # in no set order, so the position alone does not mean the fee is in the cash yet.
        await until(
            s,
            lambda: (
                ai.long is not None
                and ai.long.contracts > 0.149
                and s.cash == pytest.approx(cash - filled.fee)
            ),
        )
        assert await call(s, ai, CancelOrders()) is True
    state = await on_exchange(dialect, True, BTC_PERP)
    (pos,) = [p for p in state["positions"] if p["contracts"]]
    assert ai.long is not None
    assert ai.long.contracts == pytest.approx(pos["contracts"])
    assert ai.long.entry_price == pytest.approx(pos["entryPrice"])
    assert state["open"] == []
    # Realised cash; PnL is marked separately.
    assert s.cash == pytest.approx(dialect.wallet_usdt(state["balance"]))
    # The Live run's trace replays to the same state, field by field.
    r = replay_from_trace(s)
    assert snapshot(r._rt.state) == snapshot(s._rt.state)


async def test_return_rules(dialect: Dialect, tmp_path: Path) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        # Trade.
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)
        # Pending, without and with synced.
        for synced in (False, True):
            p = await call(
                s, ai, GTCOrder[Buy], amount=0.01, price=50_000.0, waitfor=0.3, synced=synced
            )
            assert isinstance(p, Pending), s._rt.last_refusal
            assert p.state == "open"
        # None for local checks: nothing reaches the exchange.
        before = len((await on_exchange(dialect, False, BTC))["open"])
        assert await call(s, ai, GTCOrder[Buy], amount=0.000001, price=50_000.0) is None
        assert s._rt.last_refusal.rule == "amount_min"
        assert await call(s, ai, GTCOrder[Buy], amount=-1.0, price=50_000.0) is None
        assert await call(s, ai, GTCOrder[Buy], amount=0.01, price=float("nan")) is None
        assert await call(s, ai, MarketOrder[Buy], amount=50.0) is None
        assert s._rt.last_refusal.rule == "free_cash"
        assert len((await on_exchange(dialect, False, BTC))["open"]) == before
        # None for a rejection by the exchange: 0.00001 BTC (0.5 USDT) is below Binance's 5
        # USDT minimum and Bybit's 0.000048 BTC one.
        r = await call(s, ai, GTCOrder[Buy], amount=0.00001, price=50_000.0, skipchecks=True)
        assert r is None
        assert type(s._rt.last_refusal).__name__ == "OrderRejected"
        # None for an unfilled IOC and an FOK without the volume.
        assert await call(s, ai, IOCOrder[Buy], amount=0.01, price=50_000.0) is None
        assert await call(s, ai, FOKOrder[Buy], amount=0.01, price=50_000.0) is None
        assert await call(s, ai, CancelOrders()) is True


async def test_dropped_response_is_found_by_client_id(dialect: Dialect, tmp_path: Path) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        dialect.ex.faults.drop_next_order_response()
        r = await call(s, ai, GTCOrder[Buy], amount=0.01, price=50_000.0, waitfor=3.0)
        assert isinstance(r, Trade | Pending)
        assert isinstance(r, Pending)
        assert r.order.id is not None  # found by client id
        orders = (await on_exchange(dialect, False, BTC))["open"]
        assert [o["clientOrderId"] for o in orders] == [r.order.client_id]  # exactly one
        dialect.ex.faults.drop_next_order_response()
        t = await call(s, ai, MarketOrder[Buy], amount=0.01, waitfor=3.0)
        assert isinstance(t, Trade), (t, s._rt.last_refusal)
        assert await call(s, ai, CancelOrders()) is True


async def test_fill_while_the_websocket_is_down_is_recovered(
    dialect: Dialect, tmp_path: Path
) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        p = await call(s, ai, GTCOrder[Buy], amount=0.01, price=59_000.0, waitfor=0.3)
        assert isinstance(p, Pending)
        dialect.ex.faults.close_websockets()
        dialect.ex.set_price(BTC, 58_500.0)  # fills while the streams reconnect
        await until(s, lambda: not p.order.is_open)
        assert p.order.fills
        await until(s, lambda: ai.cash >= 0.01 - 1e-9)
        driver = s._rt.driver
        watchers = driver.account_watchers + list(driver.asset_watchers[BTC][:2])
        await until(s, lambda: all(w.health == "healthy" for w in watchers))
        assert sum(w.reconnects for w in watchers) >= 1  # a stream failed and reconnected
        assert all(w.gap_fills >= 2 for w in watchers if w.reconnects)  # and filled the gap


@pytest.mark.parametrize("path", [MANUAL, MARGIN], ids=["spot", "futures"])
async def test_fill_while_the_venue_subscribes_again_is_not_lost(
    dialect: Dialect, path: Path, tmp_path: Path
) -> None:
    """After a reconnect a watcher reads REST only once the venue has the new user-data
    subscription: an event sent before it reaches no stream, so a REST read made earlier
    would leave a fill nobody expects unseen for good."""
    async with running(path, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        p = await call(s, ai, GTCOrder[Buy], amount=0.01, price=59_000.0, waitfor=0.3)
        assert isinstance(p, Pending), (p, s._rt.last_refusal)
        faults = dialect.ex.faults
        orders = s._rt.driver.asset_watchers[ai.symbol][0]
        synced = orders.gap_fills
        faults.delay_user_data_subscriptions(1.0)
        faults.close_websockets()
        # The orders watcher has reconnected and read REST: from here the order fills.
        await until(s, lambda: orders.reconnects >= 1 and orders.gap_fills > synced)
        assert faults.subscriptions_delayed >= 1
        faults.delay_user_data_subscriptions(0.0)
        dialect.ex.set_price(BTC, 58_500.0)
        await until(s, lambda: not p.order.is_open, seconds=8.0)
        assert p.order.fills


async def test_5xx_and_429_bursts_converge(dialect: Dialect, tmp_path: Path) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        dialect.ex.faults.fail_next(3, status=503)
        t = await call(s, ai, MarketOrder[Buy], amount=0.01, waitfor=10.0)
        assert isinstance(t, Trade | Pending)
        dialect.ex.faults.rate_limit_next(2, retry_after_s=1)
        dialect.ex.faults.close_websockets()
        await until(
            s,
            lambda: all(w.health == "healthy" for w in s._rt.driver.account_watchers),
            seconds=20.0,
        )
        state = await retrying(lambda: on_exchange(dialect, False, BTC), attempts=8)
        await until(
            s, lambda: s.balances["BTC"].total == pytest.approx(state["balance"]["BTC"]["total"])
        )
        assert s.balances["USDT"].total == pytest.approx(state["balance"]["USDT"]["total"])


async def test_paused_user_data_makes_call_refuse_until_healthy(
    dialect: Dialect, tmp_path: Path
) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        dialect.ex.faults.pause_user_data(3.0)
        p = await call(s, ai, GTCOrder[Buy], amount=0.01, price=50_000.0, waitfor=0.2)
        assert isinstance(p, Pending)
        await until(
            s,
            lambda: any(
                w.health == "stale"
                for w in s._rt.driver.account_watchers + list(s._rt.driver.asset_watchers[BTC][:2])
            ),
            seconds=5.0,
        )
        # Not healthy by the deadline: refused, nothing sent.
        assert await call(s, ai, GTCOrder[Buy], amount=0.01, price=50_000.0, waitfor=0.2) is None
        assert s._rt.last_refusal.rule == "watchers_unhealthy"
        assert "orders BTC/USDT (stale)" in str(s._rt.last_refusal)
        # A deadline past the recovery: the call waits for the watchers, then sends.
        p = await call(s, ai, GTCOrder[Buy], amount=0.01, price=50_000.0, waitfor=10.0)
        assert isinstance(p, Pending)
        assert await call(s, ai, CancelOrders()) is True


async def test_stop_reads_the_account_when_the_last_balance_report_is_held(
    dialect: Dialect, tmp_path: Path
) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        dialect.ex.faults.pause_user_data(60.0)  # the fill's balance report never comes
        t = await call(s, ai, MarketOrder[Buy], amount=0.01, waitfor=0.5)
        assert isinstance(t, Trade | Pending)
    # After `stop`, the state and its trace hold the exchange's balances, not a report behind.
    dialect.ex.faults.reset()
    remote = (await on_exchange(dialect, False, BTC))["balance"]
    for currency in ("BTC", "USDT"):
        assert s.balances[currency].total == pytest.approx(remote[currency]["total"])
    assert s.trace_path is not None
    assert snapshot(replay_from_trace(s.trace_path)._rt.state) == snapshot(s._rt.state)


async def test_stop_keeps_its_bound_when_the_last_account_read_fails(
    dialect: Dialect, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        assert s.balances["USDT"].total > 0
        dialect.ex.faults.fail_next(10_000, status=503)  # every request from now on
        began = trio.current_time()
    # `stop` returned (the context's exit) within its 5 s, the read given up, not raised.
    assert trio.current_time() - began < 5.0
    dialect.ex.faults.reset()
    assert "account read at stop" in caplog.text


async def test_restart_adopts_orders_and_position(dialect: Dialect, tmp_path: Path) -> None:
    async with running(MARGIN, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        assert isinstance(await call(s, ai, MarketOrder[Sell], amount=0.1), Trade)
        p = await call(s, ai, GTCOrder[Buy], amount=0.05, price=59_000.0, waitfor=0.3)
        assert isinstance(p, Pending)
        before = snapshot(s._rt.state)
    # While it is down, the resting order fills.
    dialect.ex.set_price(BTC, 58_500.0)
    async with running(MARGIN, tmp_path, dialect) as again:
        bi = again.universe[BTC]
        client_ids = [o.client_id for o in bi.orders]
        assert p.order.client_id not in client_ids  # it filled while we were away
        order = again._rt.state.orders[p.order.client_id]
        assert order.status == "closed"
        assert len(order.fills) == 1  # no lost fill, no duplicate
        assert bi.short is not None
        assert bi.short.contracts == pytest.approx(0.05)
        trade_ids = [t.id for t in bi.trades]
        assert (
            len(trade_ids) == len(set(trade_ids)) == len(before["assets"][BTC_PERP]["trades"]) + 1
        )
        # New orders continue the client-id sequence instead of reusing one.
        # Within the futures PERCENT_PRICE band (0.95x to 1.05x of 58,500), below the market.
        r = await call(again, bi, GTCOrder[Buy], amount=0.05, price=56_000.0, waitfor=0.3)
        assert isinstance(r, Pending), again._rt.last_refusal
        assert r.order.client_id not in before["assets"][BTC_PERP]["trades"]
        ok = await call(again, bi, CancelOrders())
        assert ok is True, (bi.orders, again._rt.last_refusal)


async def test_leverage_and_position_close_on_futures(dialect: Dialect, tmp_path: Path) -> None:
    from runtime import PositionClose, UpdateLeverage

    async with running(MARGIN, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        assert await call(s, ai, UpdateLeverage(5)) is True
        assert ai.leverage == 5.0
        t = await call(s, ai, MarketOrder[Sell], amount=0.02)
        assert isinstance(t, Trade)
        assert await call(s, ai, UpdateLeverage(3)) is False  # a position is open
        closing = await call(s, ai, PositionClose())
        assert isinstance(closing, Trade)
        assert closing.order.reduce_only
        await until(s, lambda: ai.short is None and ai.long is None)
    positions = (await on_exchange(dialect, True, BTC_PERP))["positions"]
    assert not [p for p in positions if p["contracts"]]
