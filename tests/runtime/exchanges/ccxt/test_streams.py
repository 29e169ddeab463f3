"""``watch_*`` streams through the bridge: real ccxt.pro Binance against the loopback's websockets.

Each test waits until the server sees the subscription before it moves the market or trades, so
nothing depends on timing; ``fail_after`` only bounds a hang.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from runtime._errors import NetworkError
from runtime.exchanges.ccxt import CcxtExchange
from runtime.testing.loopback import LoopbackExchange
from tests.runtime.exchanges.ccxt.support import (
    FAST,
    drain_until_error,
    first,
    until,
    watching,
)
from tests.runtime.testing.loopback.support import BTC, BTC_PERP


async def test_spot_user_data_orders_trades_and_balance(
    spot: CcxtExchange, loopback: LoopbackExchange
) -> None:
    async with (
        spot.watch_orders(BTC) as orders,
        spot.watch_my_trades(BTC) as trades,
        spot.watch_balance() as balances,
    ):
        await until(lambda: loopback.user_data_listeners("spot") == 1)
        await watching(spot, 3)  # an update reaches only the watches already waiting
        placed = await spot.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "s1"})
        order = (await first(orders, lambda os: os[-1]["status"] == "closed"))[-1]
        trade = (await first(trades, lambda ts: bool(ts)))[-1]
        balance = await first(balances, lambda b: b.get("BTC", {}).get("total") == 0.01)
    assert (order["id"], order["clientOrderId"]) == (placed["id"], "s1")
    assert (order["filled"], order["average"]) == (0.01, 60_000.0)
    assert (trade["order"], trade["price"], trade["amount"]) == (placed["id"], 60_000.0, 0.01)
    assert trade["fee"] == {"cost": pytest.approx(0.6), "currency": "USDT"}
    assert balance["USDT"]["total"] == pytest.approx(100_000 - 600.6)


async def test_spot_resting_fill_arrives_as_an_order_update(
    spot: CcxtExchange, loopback: LoopbackExchange
) -> None:
    placed = await spot.create_order(BTC, "limit", "buy", 0.01, 59_000.0)
    async with spot.watch_orders(BTC) as orders:
        await until(lambda: loopback.user_data_listeners("spot") == 1)
        await watching(spot, 1)
        loopback.set_price(BTC, 58_000.0)
        [order] = await first(orders, lambda os: os[-1]["status"] == "closed")
    assert (order["id"], order["average"], order["filled"]) == (placed["id"], 59_000.0, 0.01)


async def test_spot_market_streams(spot: CcxtExchange, loopback: LoopbackExchange) -> None:
    async with (
        spot.watch_ticker(BTC) as tickers,
        spot.watch_ohlcv(BTC, "1m") as bars,
        spot.watch_order_book(BTC) as books,
        spot.watch_trades(BTC) as trades,
    ):
        ticker = await first(tickers, lambda t: True)
        assert (ticker["symbol"], ticker["last"]) == (BTC, 60_000.0)
        assert (await first(bars, lambda c: True))[-1][1:5] == [60_000.0] * 4
        book = await first(books, lambda b: True)
        assert book["bids"][0][0] < 60_000.0 < book["asks"][0][0]
        await until(lambda: loopback.stream_listeners("btcusdt@trade") == 1)
        await watching(spot, 4)
        loopback.set_price(BTC, 61_000.0)
        traded = await first(trades, lambda ts: ts[-1]["price"] == 61_000.0)
        moved = await first(bars, lambda c: c[-1][4] == 61_000.0)
        book2 = await first(books, lambda b: b["nonce"] > book["nonce"])
    assert traded[-1]["symbol"] == BTC
    assert moved[-1][4] == 61_000.0
    assert book2["bids"][0][0] < 61_000.0 < book2["asks"][0][0]
    # Results are copies: ccxt.pro's in-place updates did not change what we received.
    assert book["bids"][0][0] < 60_000.0


async def test_futures_user_data_positions_orders_trades_and_balance(
    futures: CcxtExchange, loopback: LoopbackExchange
) -> None:
    async with (
        futures.watch_positions() as positions,
        futures.watch_orders() as orders,
        futures.watch_my_trades() as trades,
        futures.watch_balance() as balances,
    ):
        assert await first(positions, lambda ps: True) == []  # the snapshot: flat
        await until(lambda: loopback.user_data_listeners("futures") == 1)
        await watching(futures, 4)
        placed = await futures.create_order(BTC_PERP, "market", "sell", 0.1)
        changed = await first(positions, lambda ps: any(p["contracts"] for p in ps))
        order = (await first(orders, lambda os: os[-1]["status"] == "closed"))[-1]
        trade = (await first(trades, lambda ts: bool(ts)))[-1]
        balance = await first(balances, lambda b: "USDT" in b)
    [position] = [p for p in changed if p["contracts"]]
    assert (position["symbol"], position["side"], position["contracts"]) == (BTC_PERP, "short", 0.1)
    assert (position["entryPrice"], position["marginMode"]) == (60_000.0, "isolated")
    assert (order["id"], order["average"]) == (placed["id"], 60_000.0)
    assert trade["price"] == 60_000.0
    assert trade["fee"]["cost"] == pytest.approx(3.0)
    assert balance["USDT"]["total"] == pytest.approx(100_000 - 3.0)


async def test_futures_market_streams(futures: CcxtExchange, loopback: LoopbackExchange) -> None:
    async with futures.watch_ticker(BTC_PERP) as tickers, futures.watch_ohlcv(BTC_PERP) as bars:
        ticker = await first(tickers, lambda t: True)
        assert (ticker["symbol"], ticker["last"]) == (BTC_PERP, 60_000.0)
        assert (await first(bars, lambda c: True))[-1][4] == 60_000.0
        await watching(futures, 2)
        loopback.set_price(BTC, 59_000.0)
        assert (await first(bars, lambda c: c[-1][4] == 59_000.0))[-1][4] == 59_000.0


async def test_a_websocket_drop_ends_the_stream_with_network_error_and_reopening_reconnects(
    spot: CcxtExchange, loopback: LoopbackExchange
) -> None:
    async with spot.watch_trades(BTC) as trades:
        await until(lambda: loopback.stream_listeners("btcusdt@trade") == 1)
        loopback.faults.close_websockets()
        with pytest.raises(NetworkError, match="binance watch_trades"):
            await drain_until_error(trades)
        with pytest.raises(trio.EndOfChannel):
            await trades.receive()  # after the error, the stream is over
    async with spot.watch_trades(BTC) as again:
        await until(lambda: loopback.stream_listeners("btcusdt@trade") == 1)
        await watching(spot, 1)
        loopback.set_price(BTC, 60_500.0)
        assert (await first(again, lambda ts: ts[-1]["price"] == 60_500.0))[-1]["symbol"] == BTC


async def test_closing_the_exchange_ends_its_streams_cleanly(loopback: LoopbackExchange) -> None:
    ex = await CcxtExchange.connect("binance", sandbox=False, env=loopback.env(), rate_limit=FAST)
    stream = ex.watch_ticker(BTC)
    assert (await first(stream, lambda t: True))["last"] == 60_000.0
    await ex.aclose()
    with trio.fail_after(5):
        received: list[Any] = [item async for item in stream]  # ends: EndOfChannel
    assert all(t["symbol"] == BTC for t in received)
    with pytest.raises(trio.ClosedResourceError, match="closed"):
        ex.watch_ticker(BTC)
    with pytest.raises(trio.ClosedResourceError, match="closed"):
        await ex.fetch_ticker(BTC)
    await stream.aclose()


async def test_a_stream_whose_buffer_filled_counts_as_subscribed(
    spot: CcxtExchange, loopback: LoopbackExchange
) -> None:
    # A busy account fills a new stream's buffer before the watcher looks: the stream stops
    # re-arming ccxt's watch, so the venue check finds no watch waiting. The results it
    # delivered came through the subscription, so the wait ends there, not at its timeout.
    async with spot.watch_orders(BTC, buffer=2) as orders:
        await until(lambda: loopback.user_data_listeners("spot") == 1)
        await watching(spot, 1)
        for _ in range(2):
            await spot.create_order(BTC, "market", "buy", 0.01)
        await until(lambda: orders.delivered >= 2)
        with trio.fail_after(10):  # the wait's own bound is 60 s
            await spot.subscribed("watch_orders", orders, timeout_s=60.0)
        assert len(await orders.receive()) >= 1
