"""Protective orders in Live on the loopback through real ccxt (DESIGN §10): visible on the
exchange with their triggers, filled when the price crosses, the fill reaching the strategy
through the watchers, the other leg of a bracket cancelled on the exchange, and a restart."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import trio

from runtime import (
    Buy,
    CancelOrders,
    MarketOrder,
    Pending,
    Sell,
    StopOrder,
    TakeProfitOrder,
    Trade,
    call,
)
from runtime.engine._replica import snapshot
from runtime.testing.loopback import LoopbackExchange
from tests.conftest import HERE, MANUAL
from tests.runtime.modes.live.test_live_rules import MARGIN, on_exchange, running, until
from tests.runtime.testing.loopback.support import BTC, BTC_PERP
from traces import iter_events, replay_from_trace


async def test_a_stop_rests_on_the_exchange_with_its_trigger_and_fills_when_crossed(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    async with running(MANUAL, tmp_path) as s:
        ai = s.universe[BTC]
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)
        p = await call(s, ai, StopOrder[Sell], amount=0.01, trigger_price=58_000.0, waitfor=0.2)
        assert isinstance(p, Pending)
        listed = (await on_exchange(None, False, BTC))["open"]
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
        assert (await on_exchange(None, False, BTC))["open"] == []


@pytest.mark.parametrize(
    ("move", "filled", "cancelled"), [(57_000.0, "sl", "tp"), (66_000.0, "tp", "sl")]
)
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
        listed = {o["clientOrderId"]: o for o in (await on_exchange(None, False, BTC))["open"]}
        assert set(listed) == {f"{cid}-sl", f"{cid}-tp"}
        assert listed[f"{cid}-sl"]["triggerPrice"] == 58_000.0
        assert listed[f"{cid}-tp"]["triggerPrice"] == 65_000.0
        assert listed[f"{cid}-tp"]["info"]["type"] == "TAKE_PROFIT"
        assert all(o["amount"] == entry.order.filled for o in listed.values())
        # Binance spot: sent as one OCO order list, which locks the 0.01 BTC once.
        (list_id,) = {o["info"]["orderListId"] for o in listed.values()}
        assert list_id != -1
        balance = (await on_exchange(None, False, BTC))["balance"]["BTC"]
        assert (balance["free"], balance["used"]) == (0.0, 0.01)
        won = s._rt.state.orders[f"{cid}-{filled}"]
        lost = s._rt.state.orders[f"{cid}-{cancelled}"]
        loopback.set_price(BTC, move)
        await until(s, lambda: won.status == "closed" and not lost.is_open)
        assert not lost.fills  # expired by the exchange's OCO list
        assert s.fills[-1].order is won
        assert (await on_exchange(None, False, BTC))["open"] == []
        path = s.trace_path
    assert path is not None
    brackets = [e.payload for e in iter_events(path) if e.kind.name == "BRACKET"]
    assert brackets[0]["legs"] == {"stop": f"{cid}-sl", "take_profit": f"{cid}-tp"}
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
        assert tp.type is TakeProfitOrder[Sell]
        assert tp.trigger_price == 65_000.0
        assert tp.status == "closed"
        assert tp.fills
        # The stop ended with it (the exchange's OCO list) and is known so after the restart.
        assert sl.status in ("canceled", "expired")
        assert not sl.fills
        assert (await on_exchange(None, False, BTC))["open"] == []
        assert not bi.orders


# The child: a Live run that SIGKILLs itself at the moment the bracket would be placed, after
# the entry's fill is in the trace (the crash is real; only its moment is chosen).
CHILD = """
import os, signal, sys
import trio
from runtime import Buy, MarketOrder, Trade, call, start, stop, strategy
from runtime.modes import _brackets
from tests.conftest import HERE, MANUAL
from tests.runtime.modes.live.test_live_rules import FAST

async def protect(self, bracket):
    entry = self.rt.state.orders.get(bracket.entry)
    if entry is not None and entry.fills and not entry.is_open:
        os.kill(os.getpid(), signal.SIGKILL)

_brackets.Brackets.protect = protect

async def main():
    s = strategy(MANUAL, mode=FAST, sandbox=False, config={"trace_root": sys.argv[1]})
    async with trio.open_nursery() as nursery:
        await nursery.start(start, s)
        ai = s.universe["BTC/USDT"]
        await call(s, ai, MarketOrder[Buy], amount=0.01, stop_loss=58_000.0, take_profit=65_000.0)
        await stop(s)

trio.run(main)
"""


async def test_a_sigkill_between_the_entry_fill_and_the_bracket_places_it_exactly_once(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    child = await trio.run_process(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        cwd=str(HERE.parent),
        check=False,
        capture_stderr=True,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    seen = await on_exchange(None, False, BTC)
    assert seen["open"] == []  # the entry filled, nothing protects it yet
    assert seen["balance"]["total"]["BTC"] == pytest.approx(0.01)
    for _ in range(2):  # the restart places the bracket; a second restart places nothing
        async with running(MANUAL, tmp_path) as s:
            listed = (await on_exchange(None, False, BTC))["open"]
            ids = sorted(o["clientOrderId"] for o in listed)
            assert len(ids) == 2
            assert ids[0].endswith("-sl")
            assert ids[1].endswith("-tp")
            entry = ids[0].removesuffix("-sl")
            assert ids[1] == f"{entry}-tp"
            assert s._rt.state.orders[entry].filled == pytest.approx(0.01)
            assert {o.client_id for o in s.universe[BTC].orders} == set(ids)
            path = s.trace_path
    assert path is not None
    intents = [e.payload["client_id"] for e in iter_events(path) if e.kind.name == "ORDER_INTENT"]
    assert intents == [entry, f"{entry}-sl", f"{entry}-tp"]  # each leg sent once


@pytest.mark.parametrize(
    ("move", "filled", "cancelled"), [(57_000.0, "sl", "tp"), (66_000.0, "tp", "sl")]
)
async def test_a_futures_bracket_through_the_algo_service(
    loopback: LoopbackExchange, tmp_path: Path, move: float, filled: str, cancelled: str
) -> None:
    """USDⓈ-M: the legs are conditional orders in Binance's Algo Service (ccxt sends them
    there), reduce-only; the one that triggers closes the position, the other is cancelled."""
    async with running(MARGIN, tmp_path) as s:
        ai = s.universe[BTC]
        entry = await call(
            s, ai, MarketOrder[Buy], amount=0.01, stop_loss=58_000.0, take_profit=65_000.0
        )
        assert isinstance(entry, Trade)
        cid = entry.order.client_id
        await until(s, lambda: ai.long is not None)
        listed = {o["clientOrderId"]: o for o in (await on_exchange(None, True, BTC_PERP))["open"]}
        assert set(listed) == {f"{cid}-sl", f"{cid}-tp"}
        sl, tp = listed[f"{cid}-sl"], listed[f"{cid}-tp"]
        assert (sl["triggerPrice"], sl["info"]["orderType"]) == (58_000.0, "STOP_MARKET")
        assert (tp["triggerPrice"], tp["info"]["orderType"]) == (65_000.0, "TAKE_PROFIT_MARKET")
        assert sl["reduceOnly"]
        assert tp["reduceOnly"]
        won = s._rt.state.orders[f"{cid}-{filled}"]
        lost = s._rt.state.orders[f"{cid}-{cancelled}"]
        loopback.set_price(BTC, move)
        await until(s, lambda: won.status == "closed" and lost.status == "canceled")
        await until(s, lambda: ai.long is None)  # the position report follows
        assert ai.trades[-1].order is won
        assert won.fills[0].amount == pytest.approx(0.01)
        seen = await on_exchange(None, True, BTC_PERP)
        assert seen["open"] == []
        assert all(p["contracts"] == 0 for p in seen["positions"])
        path = s.trace_path
    assert path is not None
    replayed = replay_from_trace(path)
    assert snapshot(replayed._rt.state) == snapshot(s._rt.state)


@pytest.mark.parametrize("margin", [False, True], ids=["spot", "futures"])
async def test_cancel_orders_cancels_waiting_triggers_on_the_exchange(
    loopback: LoopbackExchange, tmp_path: Path, margin: bool
) -> None:
    symbol = BTC_PERP if margin else BTC
    async with running(MARGIN if margin else MANUAL, tmp_path) as s:
        ai = s.universe[BTC]
        await call(s, ai, MarketOrder[Buy], amount=0.01)
        # Separate orders: on spot each locks its share of the holding, as on Binance.
        stop = await call(
            s, ai, StopOrder[Sell], amount=0.005, trigger_price=58_000.0, price=57_900.0, waitfor=0
        )
        take = await call(s, ai, TakeProfitOrder[Sell], amount=0.005, trigger_price=65_000.0)
        assert isinstance(stop, Pending)
        assert isinstance(take, Pending)
        assert len((await on_exchange(None, margin, symbol))["open"]) == 2
        assert await take.cancel() is True
        assert await call(s, ai, CancelOrders()) is True
        assert stop.order.status == "canceled"
        assert (await on_exchange(None, margin, symbol))["open"] == []


async def test_separate_spot_stops_cannot_lock_one_holding_twice(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    """Binance spot locks a waiting stop's balance: a second order for the same base is
    refused by the exchange (a bracket goes as one OCO order list instead)."""
    async with running(MANUAL, tmp_path) as s:
        ai = s.universe[BTC]
        await call(s, ai, MarketOrder[Buy], amount=0.01)
        assert isinstance(
            await call(s, ai, StopOrder[Sell], amount=0.01, trigger_price=58_000.0), Pending
        )
        refused = await call(s, ai, TakeProfitOrder[Sell], amount=0.01, trigger_price=65_000.0)
        assert refused is None
        assert type(s._rt.last_refusal).__name__ == "InsufficientFunds"
        balance = (await on_exchange(None, False, BTC))["balance"]["BTC"]
        assert (balance["free"], balance["used"]) == (0.0, 0.01)


async def test_futures_protective_orders_are_adopted_on_restart(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    async with running(MARGIN, tmp_path) as s:
        ai = s.universe[BTC]
        entry = await call(
            s, ai, MarketOrder[Buy], amount=0.01, stop_loss=58_000.0, take_profit=65_000.0
        )
        cid = entry.order.client_id
        await until(s, lambda: len(ai.orders) == 2)
    async with running(MARGIN, tmp_path / "fresh") as adopted:  # a new trace: adopted as found
        bi = adopted.universe[BTC]
        found = {o.client_id: o for o in bi.orders}
        assert set(found) == {f"{cid}-sl", f"{cid}-tp"}
        assert found[f"{cid}-sl"].type is StopOrder[Sell]
        assert found[f"{cid}-tp"].type is TakeProfitOrder[Sell]
        assert found[f"{cid}-sl"].trigger_price == 58_000.0
        assert all(o.reduce_only for o in found.values())
    loopback.set_price(BTC, 57_000.0)  # the stop fills while the strategy is down
    async with running(MARGIN, tmp_path) as again:  # the first trace: the link is rebuilt
        orders = again._rt.state.orders
        await until(again, lambda: orders[f"{cid}-tp"].status == "canceled")
        assert orders[f"{cid}-sl"].status == "closed"
        assert orders[f"{cid}-sl"].fills
        assert again.universe[BTC].long is None
        assert (await on_exchange(None, True, BTC_PERP))["open"] == []
