"""Live you can restart (issue 13): each defect reproduced through the public API and the
loopback exchange (both dialects where the defect is not Binance's own), and the trace of the
run still replays and restarts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import trio

from runtime import (
    Buy,
    CancelOrders,
    ConfigError,
    ExchangeError,
    GTCOrder,
    MarketOrder,
    Pending,
    PostOnlyOrder,
    Sell,
    Trade,
    UpdateLeverage,
    call,
)
from runtime.engine._replica import snapshot
from runtime.testing.loopback import LoopbackExchange
from tests.conftest import MANUAL
from tests.runtime.conftest import Dialect
from tests.runtime.modes.live.test_live_rules import MARGIN, on_exchange, running, until
from tests.runtime.testing.loopback.support import BTC
from traces import iter_events, replay_from_trace
from watchers._base import RETRY_ATTEMPTS


async def test_exchange_rejections_leave_a_trace_that_replays_and_restarts(
    dialect: Dialect, tmp_path: Path
) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        # A post-only buy above the market would take: the exchange refuses it.
        assert await call(s, ai, PostOnlyOrder[Buy], amount=0.01, price=61_000.0) is None
        # Under the minimum notional, past the local checks.
        tiny = await call(s, ai, GTCOrder[Buy], amount=0.00001, price=50_000.0, skipchecks=True)
        assert tiny is None
        # A 429 on the order itself: refused unprocessed.
        dialect.ex.faults.rate_limit_next(1, retry_after_s=1)
        assert await call(s, ai, GTCOrder[Buy], amount=0.01, price=50_000.0) is None
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)
        path = s.trace_path
        assert path is not None
    refusals = [e for e in iter_events(path) if e.kind.name == "ORDER_REFUSED"]
    assert len(refusals) == 3
    assert {e.payload["rule"] for e in refusals} == {"OrderRejected", "RateLimited"}
    replayed = replay_from_trace(path)  # raised ReplayMismatch KeyError('event') before
    assert snapshot(replayed._rt.state) == snapshot(s._rt.state)
    async with running(MANUAL, tmp_path, dialect) as again:  # the restart replays the same trace
        bi = again.universe[BTC]
        assert bi.cash == pytest.approx(0.01)
        assert isinstance(await call(again, bi, MarketOrder[Buy], amount=0.01), Trade)
    assert math.isfinite(again.cash_committed)


async def test_a_restart_adopts_a_market_order_it_never_priced(
    dialect: Dialect, tmp_path: Path
) -> None:
    """A market order on the account that the trace does not know (a fresh trace here, as
    after a SIGKILL between intent and reply) is adopted without a NaN commitment."""
    async with running(MANUAL, tmp_path / "first", dialect) as s:
        ai = s.universe[BTC]
        p = await call(s, ai, GTCOrder[Buy], amount=0.01, price=50_000.0, waitfor=0.2)
        assert isinstance(p, Pending)
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)
    async with running(MANUAL, tmp_path / "fresh", dialect) as again:  # same account, new trace
        bi = again.universe[BTC]
        assert [o.client_id for o in bi.orders] == [p.order.client_id]  # adopted
        assert math.isfinite(again.cash_committed)
        assert again.cash_committed == pytest.approx(0.01 * 50_000.0 * (1 + bi.taker))
        # The free-cash check still works: 5 BTC needs far more than the account has.
        assert await call(again, bi, MarketOrder[Buy], amount=5.0) is None
        assert again._rt.last_refusal.rule == "free_cash"
        path = again.trace_path
    assert path is not None
    replay_from_trace(path)


async def test_a_5xx_while_resolving_a_lost_reply_does_not_end_the_run(
    dialect: Dialect, tmp_path: Path
) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)  # watchers up
        dialect.ex.faults.drop_next_order_response(1)
        dialect.ex.faults.fail_next(3, **dialect.path("my_trades"))
        p = await call(s, ai, MarketOrder[Buy], amount=0.01, waitfor=0.0)
        assert isinstance(p, Pending)  # the reply was lost: resolved in the background
        # The resolver finds the order, fails to read its trades three times, then reads them;
        # the first failure used to end `start` with NetworkError.
        await until(s, lambda: dialect.ex.faults.queued_request_faults == 0, seconds=20.0)
        assert isinstance(await p.wait(20.0) or p.order.fills[-1], Trade)
        await until(s, lambda: abs(ai.cash - 0.02) < 1e-9)  # the balance report follows
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)  # still running
        path = s.trace_path
    assert path is not None
    errors = [e for e in iter_events(path) if e.kind.name == "ERROR"]
    assert any("resolving a lost send" in str(e.payload.get("error")) for e in errors)


async def test_a_failed_forced_fetch_leaves_a_pending(dialect: Dialect, tmp_path: Path) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)  # watchers up
        dialect.ex.faults.fail_next(1, **dialect.path("order_get"))
        p = await call(s, ai, GTCOrder[Buy], amount=0.01, price=50_000.0, waitfor=0.2)
        assert isinstance(p, Pending)  # raised NetworkError ("may or may not have executed")
        assert p.state == "open"
        assert len((await on_exchange(dialect, False, BTC))["open"]) == 1  # nothing sent twice


async def test_cancel_orders_returns_false_on_faults_instead_of_raising(
    dialect: Dialect, tmp_path: Path
) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        p = await call(s, ai, GTCOrder[Buy], amount=0.01, price=50_000.0, waitfor=0.2)
        assert isinstance(p, Pending)
        dialect.ex.faults.fail_next(1, **dialect.path("order_cancel"))
        assert await call(s, ai, CancelOrders()) is False  # raised NetworkError
        dialect.ex.faults.rate_limit_next(1, retry_after_s=0)
        assert await call(s, ai, CancelOrders()) is False  # raised RateLimited
        dialect.ex.faults.fail_next(1, **dialect.path("open_orders"))
        assert await call(s, ai, CancelOrders(confirm=True)) is False
        assert p.order.is_open
        assert await call(s, ai, CancelOrders()) is True
        assert not p.order.is_open
        path = s.trace_path
    assert path is not None
    errors = [e.payload for e in iter_events(path) if e.kind.name == "ERROR"]
    assert sum(p.get("action") == "CancelOrders" for p in errors) == 3


async def test_the_first_order_during_a_5xx_burst_is_refused_not_raised(
    dialect: Dialect, tmp_path: Path
) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        # The asset's order watcher cannot read the open orders to start (every try fails).
        dialect.ex.faults.fail_next(RETRY_ATTEMPTS, **dialect.path("open_orders"))
        assert await call(s, ai, MarketOrder[Buy], amount=0.01) is None  # ExceptionGroup before
        assert "watchers of BTC/USDT could not start" in str(s._rt.last_refusal)
        assert (await on_exchange(dialect, False, BTC))["balance"]["total"].get("BTC", 0.0) == 0.0
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)


async def test_update_leverage_the_exchange_refuses_is_false(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    async with running(MARGIN, tmp_path) as s:
        ai = s.universe[BTC]
        assert await call(s, ai, UpdateLeverage(2.5)) is False  # Binance -1100: whole numbers
        assert isinstance(s._rt.last_refusal, ExchangeError)  # the exchange's own refusal
        assert ai.leverage == 2.0
        assert await call(s, ai, UpdateLeverage(3.0)) is True
        assert ai.leverage == 3.0


async def test_call_after_stop_says_the_strategy_is_stopped(
    dialect: Dialect, tmp_path: Path
) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
    with pytest.raises(ConfigError, match="is not running"):  # was ClosedResourceError
        await call(s, ai, MarketOrder[Buy], amount=0.01)
    with pytest.raises(ConfigError, match="is not running"):
        await call(s, ai, CancelOrders())


async def test_concurrent_orders_cannot_spend_the_same_free_cash(
    dialect: Dialect, tmp_path: Path
) -> None:
    async with running(MANUAL, tmp_path, dialect) as s:
        ai = s.universe[BTC]
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)
        await until(s, lambda: abs(ai.cash - 0.01) < 1e-9)
        results: list[object] = []

        async def sell() -> None:
            results.append(await call(s, ai, MarketOrder[Sell], amount=0.008))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sell)
            nursery.start_soon(sell)
        assert sorted(type(r).__name__ for r in results) == ["NoneType", "Trade"]
        assert s._rt.last_refusal.rule == "free_cash"
        assert (await on_exchange(dialect, False, BTC))["balance"]["total"]["BTC"] == pytest.approx(
            0.002
        )


async def test_futures_positions_carry_the_exchanges_leverage_margin_and_liquidation(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    async with running(MARGIN, tmp_path) as s:
        ai = s.universe[BTC]
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)
        # The websocket's ACCOUNT_UPDATE has no leverage and no initial margin, only "iw".
        await until(s, lambda: ai.long is not None and ai.long.margin > 0)
        pos = ai.long
        assert pos is not None
        assert pos.leverage == 2.0  # was 1.0
        assert pos.margin == pytest.approx(300.0)  # was 0
        assert pos.liquidation_price == pytest.approx(30_120.48, rel=1e-4)  # was 60,241
        exchange = (await on_exchange(None, True, BTC))["positions"][0]
        assert pos.liquidation_price == pytest.approx(exchange["liquidationPrice"], rel=1e-6)
    async with running(MARGIN, tmp_path) as again:  # a restart keeps the leverage it set
        bi = again.universe[BTC]
        assert bi.leverage == 2.0
        assert bi.long is not None
        assert bi.long.leverage == 2.0
        assert bi.long.margin == pytest.approx(300.0)
        path = again.trace_path
    assert path is not None
    reconciled = [e.payload for e in iter_events(path) if e.kind.name == "RECONCILE"]
    assert not any(p.get("event") == "LeverageChanged" for p in reconciled)


async def test_a_start_rides_out_a_burst_of_5xx(dialect: Dialect, tmp_path: Path) -> None:
    # Six failures in a row on the account read: more than the five tries a start had.
    dialect.ex.faults.fail_next(6, **dialect.path("account"))
    async with running(MANUAL, tmp_path, dialect) as s:
        assert dialect.ex.faults.queued_request_faults == 0
        assert isinstance(await call(s, s.universe[BTC], MarketOrder[Buy], amount=0.01), Trade)
