"""Real ccxt.async_support.binance against the loopback spot REST API.

BTC is held at 60,000 and the fill model has no spread or impact, so a taker fill happens at
exactly 60,000 and a resting order at exactly its limit price.
"""

from __future__ import annotations

import itertools
import math
import time

import ccxt.async_support as ccxt
import pytest

from runtime.exchanges._markets import load_markets
from runtime.testing.loopback import LoopbackExchange
from tests.runtime.testing.loopback.support import BTC, opened, run, spot


def test_load_markets_matches_the_shipped_snapshot(loopback: LoopbackExchange) -> None:
    async def go() -> dict:
        async with opened(spot(loopback)) as b:
            return dict(b.markets)

    markets = run(go())
    snapshot = load_markets("binance")
    assert set(snapshot) <= set(markets)
    for symbol, expected in snapshot.items():
        got = markets[symbol]
        for key in ("id", "base", "quote", "precision", "limits", "maker", "taker", "spot",
                    "active", "marginModes"):  # fmt: skip
            assert got[key] == expected[key], (symbol, key)


def test_fetch_time_and_balance(loopback: LoopbackExchange) -> None:
    async def go() -> tuple[int, dict]:
        async with opened(spot(loopback)) as b:
            return await b.fetch_time(), await b.fetch_balance()

    server_time, balance = run(go())
    assert abs(server_time - time.time() * 1000) < 5_000
    assert balance["USDT"] == {"free": 100_000.0, "used": 0.0, "total": 100_000.0}


def test_market_order_fills_at_the_price_with_the_taker_fee(loopback: LoopbackExchange) -> None:
    async def go() -> tuple[dict, dict, list]:
        async with opened(spot(loopback)) as b:
            order = await b.create_order(BTC, "market", "buy", 0.01)
            return order, await b.fetch_balance(), await b.fetch_my_trades(BTC)

    order, balance, trades = run(go())
    assert order["status"] == "closed"
    assert order["type"] == "market"
    assert order["filled"] == 0.01
    assert order["average"] == 60_000.0
    assert order["cost"] == pytest.approx(600.0)
    assert order["fee"] == {"cost": pytest.approx(0.6), "currency": "USDT"}
    assert balance["BTC"]["total"] == 0.01
    assert balance["USDT"]["total"] == pytest.approx(100_000 - 600 - 0.6)
    assert len(trades) == 1
    assert trades[0]["takerOrMaker"] == "taker"
    assert trades[0]["order"] == order["id"]
    assert trades[0]["price"] == 60_000.0


def test_limit_gtc_rests_then_fills_as_maker_when_the_price_trades_through(
    loopback: LoopbackExchange,
) -> None:
    async def go() -> tuple[dict, dict, dict, dict, list]:
        async with opened(spot(loopback)) as b:
            placed = await b.create_order(BTC, "limit", "buy", 0.01, 59_000.0)
            locked = await b.fetch_balance()
            loopback.set_price(BTC, 58_000.0)
            filled = await b.fetch_order(placed["id"], BTC)
            return placed, locked, filled, await b.fetch_balance(), await b.fetch_my_trades(BTC)

    placed, locked, filled, balance, trades = run(go())
    assert placed["status"] == "open"
    assert placed["timeInForce"] == "GTC"
    assert placed["price"] == 59_000.0
    assert placed["remaining"] == 0.01
    assert locked["USDT"]["used"] == pytest.approx(0.01 * 59_000 * 1.001)
    assert filled["status"] == "closed"
    assert filled["average"] == 59_000.0
    assert filled["filled"] == 0.01
    assert trades[0]["takerOrMaker"] == "maker"
    assert trades[0]["fee"]["cost"] == pytest.approx(0.59)
    assert balance["USDT"]["used"] == 0.0
    assert balance["USDT"]["total"] == pytest.approx(100_000 - 590 - 0.59)


def test_ioc_and_fok_expire_when_not_marketable_and_fill_when_they_are(
    loopback: LoopbackExchange,
) -> None:
    async def go() -> list[dict]:
        async with opened(spot(loopback)) as b:
            return [
                await b.create_order(BTC, "limit", "buy", 0.01, 59_000.0, {"timeInForce": "IOC"}),
                await b.create_order(BTC, "limit", "buy", 0.01, 59_000.0, {"timeInForce": "FOK"}),
                await b.create_order(BTC, "limit", "buy", 0.01, 61_000.0, {"timeInForce": "IOC"}),
                await b.create_order(BTC, "limit", "buy", 0.01, 61_000.0, {"timeInForce": "FOK"}),
            ]

    ioc_out, fok_out, ioc_in, fok_in = run(go())
    for order in (ioc_out, fok_out):
        assert order["status"] == "expired"
        assert order["filled"] == 0.0
    assert (ioc_out["timeInForce"], fok_out["timeInForce"]) == ("IOC", "FOK")
    for order in (ioc_in, fok_in):
        assert order["status"] == "closed"
        assert order["average"] == 60_000.0  # a marketable limit takes at the market


def test_fok_larger_than_the_bar_allows_expires_and_ioc_fills_part(
    loopback: LoopbackExchange,
) -> None:
    async def go() -> tuple[dict, dict]:
        async with opened(spot(loopback)) as b:
            last_closed = (await b.fetch_ohlcv(BTC, "1m", limit=2))[0]
            available = 0.25 * last_closed[5]  # the engine's volume cap of the last bar
            amount = math.ceil((available + 0.5) * 100) / 100
            loopback.deposit("USDT", amount * 61_000 * 2)
            fok = await b.create_order(BTC, "limit", "buy", amount, 61e3, {"timeInForce": "FOK"})
            ioc = await b.create_order(BTC, "limit", "buy", amount, 61e3, {"timeInForce": "IOC"})
            return fok, ioc

    fok, ioc = run(go())
    assert fok["status"] == "expired"
    assert fok["filled"] == 0.0
    assert ioc["status"] == "expired"
    assert 0 < ioc["filled"] < ioc["amount"]


def test_post_only_rests_and_a_crossing_one_is_rejected(loopback: LoopbackExchange) -> None:
    async def go() -> dict:
        async with opened(spot(loopback)) as b:
            resting = await b.create_order(BTC, "limit", "buy", 0.01, 59_000.0, {"postOnly": True})
            with pytest.raises(ccxt.OrderImmediatelyFillable, match="immediately match"):
                await b.create_order(BTC, "limit", "buy", 0.01, 61_000.0, {"postOnly": True})
            return resting

    resting = run(go())
    assert resting["status"] == "open"
    assert resting["postOnly"] is True
    assert resting["info"]["type"] == "LIMIT_MAKER"


def test_client_order_id_lookup_cancel_and_listings(loopback: LoopbackExchange) -> None:
    cid = "vigil-spot-0001"

    async def go() -> dict:
        async with opened(spot(loopback)) as b:
            placed = await b.create_order(
                BTC, "limit", "sell", 0.001, 70_000.0, {"clientOrderId": cid}
            )
            out = {
                "placed": placed,
                "by_id": await b.fetch_order(placed["id"], BTC),
                "by_cid": await b.fetch_order("", BTC, {"clientOrderId": cid}),
                "open": await b.fetch_open_orders(BTC),
            }
            out["canceled"] = await b.cancel_order(placed["id"], BTC)
            out["all"] = await b.fetch_orders(BTC)
            out["open_after"] = await b.fetch_open_orders(BTC)
            out["market"] = await b.create_order(BTC, "market", "sell", 0.001)
            out["closed"] = await b.fetch_closed_orders(BTC)
            with pytest.raises(ccxt.OrderNotFound):
                await b.cancel_order(placed["id"], BTC)
            with pytest.raises(ccxt.OrderNotFound):
                await b.fetch_order("987654", BTC)
            with pytest.raises(ccxt.InvalidOrder, match="Duplicate order"):
                await b.create_order(BTC, "limit", "sell", 0.001, 70_000.0, {"clientOrderId": cid})
            return out

    loopback.deposit("BTC", 0.01)
    out = run(go())
    assert out["placed"]["clientOrderId"] == cid
    assert out["by_id"]["clientOrderId"] == cid
    assert out["by_cid"]["id"] == out["placed"]["id"]
    assert [o["id"] for o in out["open"]] == [out["placed"]["id"]]
    assert out["canceled"]["status"] == "canceled"
    assert out["canceled"]["id"] == out["placed"]["id"]
    assert out["canceled"]["info"]["origClientOrderId"] == cid
    assert [o["status"] for o in out["all"]] == ["canceled"]
    assert [o["id"] for o in out["closed"]] == [out["market"]["id"]]  # ccxt: status "closed"
    assert out["open_after"] == []


def test_refusals_raise_the_ccxt_classes_binance_gets(loopback: LoopbackExchange) -> None:
    async def go() -> None:
        async with opened(spot(loopback)) as b:
            with pytest.raises(ccxt.InsufficientFunds):
                await b.create_order(BTC, "market", "buy", 10.0)
            with pytest.raises(ccxt.InsufficientFunds):
                await b.create_order(BTC, "limit", "sell", 1.0, 60_000.0)
            with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
                await b.create_order(BTC, "limit", "buy", 0.00001, 59_000.0)
            with pytest.raises(ccxt.BadSymbol):
                await b.public_get_depth({"symbol": "NOPEUSDT"})

    run(go())


def test_fetch_ohlcv_returns_closed_bars_then_the_forming_one(loopback: LoopbackExchange) -> None:
    async def go() -> tuple[list, list, list]:
        async with opened(spot(loopback)) as b:
            one = await b.fetch_ohlcv(BTC, "1m", limit=5)
            five = await b.fetch_ohlcv(BTC, "5m", limit=3)
            since = await b.fetch_ohlcv(BTC, "1m", since=one[0][0], limit=2)
            return one, five, since

    one, five, since = run(go())
    assert len(one) == 5
    assert [b[0] - a[0] for a, b in itertools.pairwise(one)] == [60_000] * 4
    assert one[-1][1:] == [60_000.0, 60_000.0, 60_000.0, 60_000.0, 0.0]  # forming: flat, no volume
    assert one[-2][4] == 60_000.0  # the bar set_price closed
    assert all(bar[2] >= max(bar[1], bar[4]) and bar[3] <= min(bar[1], bar[4]) for bar in one)
    assert len(five) == 3
    assert all(bar[0] % 300_000 == 0 for bar in five)
    assert since == one[:2]


def test_fetch_order_book_is_sorted_around_the_price(loopback: LoopbackExchange) -> None:
    async def go() -> dict:
        async with opened(spot(loopback)) as b:
            return await b.fetch_order_book(BTC, 5)

    book = run(go())
    bids, asks = book["bids"], book["asks"]
    assert len(bids) == len(asks) == 5
    assert bids[0][0] < 60_000.0 < asks[0][0]
    assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
    assert [p for p, _ in asks] == sorted(p for p, _ in asks)
    assert all(q > 0 for _, q in bids + asks)
    assert book["nonce"] >= 1


def test_public_tickers_and_trades(loopback: LoopbackExchange) -> None:
    async def go() -> tuple[dict, list]:
        async with opened(spot(loopback)) as b:
            return await b.fetch_ticker(BTC), await b.fetch_trades(BTC, limit=4)

    ticker, trades = run(go())
    assert ticker["last"] == 60_000.0
    assert ticker["bid"] < 60_000.0 < ticker["ask"]
    assert ticker["high"] >= ticker["low"] > 0
    assert len(trades) == 4
    assert trades[-1]["price"] == 60_000.0
