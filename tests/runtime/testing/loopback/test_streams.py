"""Real ccxt.pro binance / binanceusdm against the loopback WebSocket streams.

User data: spot over the WebSocket API (``userDataStream.subscribe.signature``), futures over the
listenKey stream. Market data: ``SUBSCRIBE`` on the spot and futures stream endpoints. Each test
waits until the server sees the subscription before it moves the market or trades, so nothing
depends on timing.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from runtime.testing.loopback import LoopbackExchange
from tests.runtime.testing.loopback.support import (
    BTC,
    BTC_PERP,
    make_exchange,
    opened,
    pro_futures,
    pro_spot,
    run,
    until,
)


async def watch_until(
    watch: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], within_s: float = 5.0
) -> Any:
    """Call ``watch()`` until its result satisfies ``done``."""

    async def loop() -> Any:
        while True:
            result = await watch()
            if done(result):
                return result

    return await asyncio.wait_for(loop(), within_s)


def test_spot_user_data_orders_trades_and_balance(loopback: LoopbackExchange) -> None:
    async def go() -> tuple[list, list, dict, dict]:
        async with opened(pro_spot(loopback)) as p:
            orders = asyncio.ensure_future(
                watch_until(lambda: p.watch_orders(BTC), lambda os: os[-1]["status"] == "closed")
            )
            trades = asyncio.ensure_future(p.watch_my_trades(BTC))
            balance = asyncio.ensure_future(
                watch_until(p.watch_balance, lambda b: b.get("BTC", {}).get("total") == 0.01)
            )
            await until(lambda: loopback.user_data_listeners("spot") == 1)
            await asyncio.sleep(0.05)  # let every watch register on the connection
            placed = await p.create_order(BTC, "market", "buy", 0.01)
            return await orders, await asyncio.wait_for(trades, 5), await balance, placed

    orders, trades, balance, placed = run(go())
    assert orders[-1]["id"] == placed["id"]
    assert orders[-1]["filled"] == 0.01
    assert orders[-1]["clientOrderId"] == placed["clientOrderId"]
    assert trades[-1]["order"] == placed["id"]
    assert trades[-1]["price"] == 60_000.0
    assert trades[-1]["amount"] == 0.01
    assert trades[-1]["fee"] == {"cost": pytest.approx(0.6), "currency": "USDT"}
    assert balance["BTC"]["total"] == 0.01
    assert balance["USDT"]["total"] == pytest.approx(100_000 - 600.6)


def test_spot_resting_fill_and_deposit_arrive_as_events(loopback: LoopbackExchange) -> None:
    async def go() -> tuple[list, dict]:
        async with opened(pro_spot(loopback)) as p:
            placed = await p.create_order(BTC, "limit", "buy", 0.01, 59_000.0)
            orders = asyncio.ensure_future(
                watch_until(lambda: p.watch_orders(BTC), lambda os: os[-1]["status"] == "closed")
            )
            balance = asyncio.ensure_future(
                watch_until(p.watch_balance, lambda b: b.get("ETH", {}).get("total") == 2.0)
            )
            await until(lambda: loopback.user_data_listeners("spot") == 1)
            await asyncio.sleep(0.05)
            loopback.set_price(BTC, 58_000.0)
            loopback.deposit("ETH", 2.0)
            got = await orders
            assert got[-1]["id"] == placed["id"]
            return got, await balance

    orders, balance = run(go())
    assert orders[-1]["average"] == 59_000.0
    assert balance["ETH"]["free"] == 2.0


def test_spot_market_streams(loopback: LoopbackExchange) -> None:
    async def go() -> dict:
        async with opened(pro_spot(loopback)) as p:
            out: dict[str, Any] = {"ticker": await asyncio.wait_for(p.watch_ticker(BTC), 5)}
            # ccxt.pro updates what it returned in place: copy what is asserted later.
            out["ohlcv"] = copy.deepcopy(await asyncio.wait_for(p.watch_ohlcv(BTC, "1m"), 5))
            book0 = await asyncio.wait_for(p.watch_order_book(BTC), 5)
            out["book"] = {
                "bids": copy.deepcopy(book0["bids"][:1]),
                "asks": copy.deepcopy(book0["asks"][:1]),
            }
            out["book_nonce"] = book0["nonce"]
            trades = asyncio.ensure_future(p.watch_trades(BTC))
            await until(lambda: loopback.stream_listeners("btcusdt@trade") == 1)
            book = asyncio.ensure_future(p.watch_order_book(BTC))
            ohlcv = asyncio.ensure_future(
                watch_until(lambda: p.watch_ohlcv(BTC, "1m"), lambda c: c[-1][4] == 61_000.0)
            )
            loopback.set_price(BTC, 61_000.0)
            out["trades"] = await asyncio.wait_for(trades, 5)
            out["book2"] = await asyncio.wait_for(book, 5)
            out["ohlcv2"] = await ohlcv
            return out

    out = run(go())
    assert out["ticker"]["symbol"] == BTC
    assert out["ticker"]["last"] == 60_000.0
    assert out["ohlcv"][-1][1:5] == [60_000.0] * 4
    assert out["book"]["bids"][0][0] < 60_000.0 < out["book"]["asks"][0][0]
    assert out["trades"][-1]["price"] == 61_000.0
    assert out["trades"][-1]["symbol"] == BTC
    assert out["book2"]["nonce"] == out["book_nonce"] + 1  # one diff, applied in sequence
    assert out["book2"]["bids"][0][0] < 61_000.0 < out["book2"]["asks"][0][0]
    assert out["ohlcv2"][-1][4] == 61_000.0


def test_futures_user_data_positions_orders_trades_and_balance(loopback: LoopbackExchange) -> None:
    async def go() -> dict:
        async with opened(pro_futures(loopback)) as p:
            snapshot = await asyncio.wait_for(p.watch_positions(), 5)
            out: dict[str, Any] = {"snapshot": copy.deepcopy(snapshot)}
            positions = asyncio.ensure_future(
                watch_until(p.watch_positions, lambda ps: any(x["contracts"] for x in ps))
            )
            orders = asyncio.ensure_future(
                watch_until(p.watch_orders, lambda os: os[-1]["status"] == "closed")
            )
            trades = asyncio.ensure_future(p.watch_my_trades())
            balance = asyncio.ensure_future(p.watch_balance())
            await until(lambda: loopback.user_data_listeners("futures") == 1)
            await asyncio.sleep(0.05)
            out["placed"] = await p.create_order(BTC_PERP, "market", "sell", 0.1)
            out["positions"] = await positions
            out["orders"] = await orders
            out["trades"] = await asyncio.wait_for(trades, 5)
            out["balance"] = await asyncio.wait_for(balance, 5)
            return out

    out = run(go())
    assert out["snapshot"] == []
    [position] = [x for x in out["positions"] if x["contracts"]]
    assert position["symbol"] == BTC_PERP
    assert position["side"] == "short"
    assert position["contracts"] == 0.1
    assert position["entryPrice"] == 60_000.0
    assert position["marginMode"] == "isolated"
    assert out["orders"][-1]["id"] == out["placed"]["id"]
    assert out["orders"][-1]["average"] == 60_000.0
    assert out["trades"][-1]["price"] == 60_000.0
    assert out["trades"][-1]["fee"]["cost"] == pytest.approx(3.0)
    assert out["balance"]["USDT"]["total"] == pytest.approx(100_000 - 3.0)


def test_futures_market_streams(loopback: LoopbackExchange) -> None:
    async def go() -> tuple[dict, list, list]:
        async with opened(pro_futures(loopback)) as p:
            ticker = copy.deepcopy(await asyncio.wait_for(p.watch_ticker(BTC_PERP), 5))
            ohlcv = copy.deepcopy(await asyncio.wait_for(p.watch_ohlcv(BTC_PERP, "1m"), 5))
            following = asyncio.ensure_future(
                watch_until(lambda: p.watch_ohlcv(BTC_PERP, "1m"), lambda c: c[-1][4] == 59e3)
            )
            await asyncio.sleep(0.05)
            loopback.set_price(BTC, 59_000.0)
            return ticker, ohlcv, await following

    ticker, ohlcv, following = run(go())
    assert ticker["symbol"] == BTC_PERP
    assert ticker["last"] == 60_000.0
    assert ohlcv[-1][4] == 60_000.0
    assert following[-1][4] == 59_000.0


def test_bars_advance_on_their_own_with_a_bar_interval() -> None:
    with make_exchange(bar_interval_ms=20) as ex:
        start = ex.call(lambda: ex.clock.index)

        async def go() -> list:
            async with opened(pro_spot(ex)) as p:
                return await asyncio.wait_for(p.watch_trades(BTC), 5)

        trades = run(go())
        assert trades
        assert ex.call(lambda: ex.clock.index) > start


@pytest.mark.parametrize("market", ["spot", "futures"])
def test_sandbox_mode_still_reaches_the_loopback(loopback: LoopbackExchange, market: str) -> None:
    # vigil strategies default to sandbox=True: ccxt then swaps in its "test" URLs, which the
    # rewrite moved too (and USDⓈ-M no longer trips ccxt's "futures testnet" refusal).
    symbol = BTC if market == "spot" else BTC_PERP

    async def go() -> tuple[list, dict]:
        p = (pro_spot if market == "spot" else pro_futures)(loopback)
        p.set_sandbox_mode(True)
        async with opened(p):
            orders = asyncio.ensure_future(p.watch_orders(symbol))
            await until(lambda: loopback.user_data_listeners(market) == 1)
            await asyncio.sleep(0.05)
            placed = await p.create_order(symbol, "market", "buy", 0.01)
            return await asyncio.wait_for(orders, 5), placed

    orders, placed = run(go())
    assert orders[-1]["id"] == placed["id"]
    assert placed["status"] == "closed"
