"""Protective orders in Live on the loopback through real ccxt (DESIGN §10): visible on the
exchange with their triggers, filled when the price crosses, the fill reaching the strategy
through the watchers, the other leg of a bracket cancelled on the exchange, and a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import Buy, MarketOrder, Pending, Sell, StopOrder, TakeProfitOrder, Trade, call
from runtime.engine._replica import snapshot
from runtime.testing.loopback import LoopbackExchange
from tests.conftest import MANUAL
from tests.runtime.modes.live.test_live_rules import on_exchange, running, until
from tests.runtime.testing.loopback.support import BTC
from traces import iter_events, replay_from_trace


async def test_a_stop_rests_on_the_exchange_with_its_trigger_and_fills_when_crossed(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    async with running(MANUAL, tmp_path) as s:
        ai = s.universe[BTC]
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)
        p = await call(s, ai, StopOrder[Sell], amount=0.01, trigger_price=58_000.0, waitfor=0.2)
        assert isinstance(p, Pending)
        listed = (await on_exchange(False, BTC))["open"]
        assert [(o["clientOrderId"], o["triggerPrice"], o["side"]) for o in listed] == [
            (p.order.client_id, 58_000.0, "sell")
        ]
        assert listed[0]["info"]["type"] == "STOP_LOSS"
        assert listed[0]["info"]["isWorking"] is False
        # A take-profit below the market would trigger at once: refused locally, by its rule.
        assert await call(s, ai, TakeProfitOrder[Sell], amount=0.01, trigger_price=59_000.0) is None
        assert s._rt.last_refusal.rule == "sell_take_profit_above"
        loopback.set_price(BTC, 57_500.0)  # a bar that trades down through 58,000
        trade = await p.wait(10.0)
        assert isinstance(trade, Trade)
        assert trade.price == pytest.approx(58_000.0, rel=1e-3)  # the trigger, less slippage
        assert trade.price <= 58_000.0
        await until(s, lambda: abs(ai.cash) < 1e-9)  # the balance report follows
        assert s.fills[-1].id == trade.id  # on_trade saw it through the watchers
        assert (await on_exchange(False, BTC))["open"] == []


@pytest.mark.parametrize(("move", "filled", "cancelled"), [(57_000.0, "sl", "tp"), (66_000.0, "tp", "sl")])
async def test_a_bracket_leg_fills_on_the_exchange_and_the_other_is_cancelled_there(
    loopback: LoopbackExchange, tmp_path: Path, move: float, filled: str, cancelled: str
) -> None:
    async with running(MANUAL, tmp_path) as s:
        ai = s.universe[BTC]
        entry = await call(
            s, ai, MarketOrder[Buy], amount=0.01, stop_loss=58_000.0, take_profit=65_000.0
        )
        assert isinstance(entry, Trade)
        cid = entry.order.client_id
        listed = {o["clientOrderId"]: o for o in (await on_exchange(False, BTC))["open"]}
        assert set(listed) == {f"{cid}-sl", f"{cid}-tp"}
        assert listed[f"{cid}-sl"]["triggerPrice"] == 58_000.0
        assert listed[f"{cid}-tp"]["triggerPrice"] == 65_000.0
        assert listed[f"{cid}-tp"]["info"]["type"] == "TAKE_PROFIT"
        assert all(o["amount"] == entry.order.filled for o in listed.values())
        won = s._rt.state.orders[f"{cid}-{filled}"]
        lost = s._rt.state.orders[f"{cid}-{cancelled}"]
        loopback.set_price(BTC, move)
        await until(s, lambda: won.status == "closed" and lost.status == "canceled")
        assert s.fills[-1].order is won
        assert (await on_exchange(False, BTC))["open"] == []  # cancelled on the exchange
        path = s.trace_path
    assert path is not None
    brackets = [e.payload for e in iter_events(path) if e.kind.name == "BRACKET"]
    assert brackets[0]["legs"] == {"stop": f"{cid}-sl", "take_profit": f"{cid}-tp"}
    assert brackets[1]["cancel"] == [f"{cid}-{cancelled}"]
    replayed = replay_from_trace(path)
    assert snapshot(replayed._rt.state) == snapshot(s._rt.state)


async def test_protective_orders_are_adopted_on_restart_with_their_link(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    async with running(MANUAL, tmp_path) as s:
        ai = s.universe[BTC]
        entry = await call(
            s, ai, MarketOrder[Buy], amount=0.01, stop_loss=58_000.0, take_profit=65_000.0
        )
        cid = entry.order.client_id
    # While the strategy is down the price rises through the take-profit.
    loopback.set_price(BTC, 66_000.0)
    async with running(MANUAL, tmp_path) as again:
        bi = again.universe[BTC]
        tp = again._rt.state.orders[f"{cid}-tp"]
        sl = again._rt.state.orders[f"{cid}-sl"]
        assert tp.type is TakeProfitOrder[Sell] and tp.trigger_price == 65_000.0
        assert tp.status == "closed" and tp.fills
        # The link came back from the trace: the stop was cancelled on the exchange at start.
        assert sl.status == "canceled"
        assert (await on_exchange(False, BTC))["open"] == []
        assert not bi.orders
