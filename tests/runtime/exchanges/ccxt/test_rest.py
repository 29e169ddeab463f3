"""REST through vigil's ccxt exchange under trio: real ccxt.pro Binance classes, loopback server.

BTC is held at 60,000 and the fill model has no spread or impact, so a taker fill happens at
exactly 60,000 and a resting order at its limit price. Spot fees are 0.1%; futures fees are
0.02% maker and 0.05% taker; each account starts with 100,000 USDT.
"""

from __future__ import annotations

import itertools

import pytest

from runtime.exchanges._interface import Exchange
from runtime.exchanges._markets import load_markets
from runtime.exchanges.ccxt import CcxtExchange
from runtime.testing.loopback import LoopbackExchange
from tests.runtime.exchanges.ccxt.support import FAST
from tests.runtime.testing.loopback.support import BTC, BTC_PERP


async def test_it_is_an_exchange_and_loads_the_snapshot_markets(spot: CcxtExchange) -> None:
    assert isinstance(spot, Exchange)
    assert spot.id == "binance"
    markets = await spot.load_markets()
    for symbol, expected in load_markets("binance").items():
        for key in ("id", "precision", "limits", "maker", "taker", "spot"):
            assert markets[symbol][key] == expected[key], (symbol, key)
    assert spot.markets.keys() == markets.keys()


async def test_sandbox_mode_reaches_the_loopback_too(loopback: LoopbackExchange) -> None:
    async with CcxtExchange.open(
        "binance", sandbox=True, env=loopback.env(), rate_limit=FAST
    ) as ex:
        assert "sandbox" in repr(ex)
        balance = await ex.fetch_balance()
    assert balance["USDT"] == {"free": 100_000.0, "used": 0.0, "total": 100_000.0}


async def test_spot_market_order_balance_and_trades(spot: CcxtExchange) -> None:
    order = await spot.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "m-1"})
    assert order["status"] == "closed"
    assert order["type"] == "market"
    assert order["clientOrderId"] == "m-1"
    assert order["filled"] == 0.01
    assert order["average"] == 60_000.0
    assert order["cost"] == pytest.approx(600.0)
    assert order["fee"] == {"cost": pytest.approx(0.6), "currency": "USDT"}
    balance = await spot.fetch_balance()
    assert balance["BTC"]["total"] == 0.01
    assert balance["USDT"]["total"] == pytest.approx(100_000 - 600 - 0.6)
    [trade] = await spot.fetch_my_trades(BTC)
    assert trade["order"] == order["id"]
    assert trade["takerOrMaker"] == "taker"
    assert (trade["price"], trade["amount"]) == (60_000.0, 0.01)
    assert trade["fee"]["cost"] == pytest.approx(0.6)


async def test_spot_limit_gtc_rests_then_fills_as_maker(
    spot: CcxtExchange, loopback: LoopbackExchange
) -> None:
    placed = await spot.create_order(BTC, "limit", "buy", 0.01, 59_000.0, {"clientOrderId": "g-1"})
    assert (placed["status"], placed["timeInForce"]) == ("open", "GTC")
    assert (placed["price"], placed["remaining"]) == (59_000.0, 0.01)
    locked = await spot.fetch_balance()
    assert locked["USDT"]["used"] == pytest.approx(0.01 * 59_000 * 1.001)
    assert [o["id"] for o in await spot.fetch_open_orders(BTC)] == [placed["id"]]
    assert [o["id"] for o in await spot.fetch_open_orders()] == [placed["id"]]  # every symbol
    loopback.set_price(BTC, 58_000.0)
    filled = await spot.fetch_order(placed["id"], BTC)
    assert (filled["status"], filled["average"], filled["filled"]) == ("closed", 59_000.0, 0.01)
    [closed] = await spot.fetch_closed_orders(BTC)
    assert closed["id"] == placed["id"]
    [trade] = await spot.fetch_my_trades(BTC)
    assert trade["takerOrMaker"] == "maker"
    assert trade["fee"]["cost"] == pytest.approx(0.59)
    assert await spot.fetch_open_orders(BTC) == []


async def test_spot_ioc_fok_and_post_only(spot: CcxtExchange) -> None:
    ioc_out = await spot.create_order(BTC, "limit", "buy", 0.01, 59e3, {"timeInForce": "IOC"})
    fok_out = await spot.create_order(BTC, "limit", "buy", 0.01, 59e3, {"timeInForce": "FOK"})
    ioc_in = await spot.create_order(BTC, "limit", "buy", 0.01, 61e3, {"timeInForce": "IOC"})
    fok_in = await spot.create_order(BTC, "limit", "buy", 0.01, 61e3, {"timeInForce": "FOK"})
    for order, tif in ((ioc_out, "IOC"), (fok_out, "FOK")):
        assert (order["status"], order["filled"], order["timeInForce"]) == ("expired", 0.0, tif)
    for order in (ioc_in, fok_in):
        assert (order["status"], order["average"], order["filled"]) == ("closed", 60e3, 0.01)
    post = await spot.create_order(BTC, "limit", "buy", 0.01, 59e3, {"postOnly": True})
    assert (post["status"], post["postOnly"]) == ("open", True)
    assert post["info"]["type"] == "LIMIT_MAKER"


async def test_spot_client_order_id_lookup_and_cancel(
    spot: CcxtExchange, loopback: LoopbackExchange
) -> None:
    loopback.deposit("BTC", 0.01)
    cid = "vigil-spot-0001"
    placed = await spot.create_order(BTC, "limit", "sell", 0.001, 70_000.0, {"clientOrderId": cid})
    by_id = await spot.fetch_order(placed["id"], BTC)
    by_cid = await spot.fetch_order(None, BTC, {"clientOrderId": cid})
    assert by_id["clientOrderId"] == cid
    assert by_cid["id"] == placed["id"]
    assert (by_cid["side"], by_cid["amount"], by_cid["price"]) == ("sell", 0.001, 70_000.0)
    canceled = await spot.cancel_order(None, BTC, {"clientOrderId": cid})
    assert (canceled["id"], canceled["status"]) == (placed["id"], "canceled")
    assert (await spot.fetch_order(placed["id"], BTC))["status"] == "canceled"
    assert await spot.fetch_closed_orders(BTC) == []  # ccxt: cancelled is not "closed"


async def test_spot_cancel_all_orders(spot: CcxtExchange) -> None:
    for price in (58_000.0, 58_500.0):
        await spot.create_order(BTC, "limit", "buy", 0.001, price)
    canceled = await spot.cancel_all_orders(BTC)
    assert sorted(o["status"] for o in canceled) == ["canceled", "canceled"]
    assert await spot.fetch_open_orders(BTC) == []


async def test_spot_market_data(spot: CcxtExchange) -> None:
    bars = await spot.fetch_ohlcv(BTC, "1m", limit=5)
    assert len(bars) == 5
    assert [b[0] - a[0] for a, b in itertools.pairwise(bars)] == [60_000] * 4
    assert bars[-2][4] == 60_000.0  # the bar set_price closed
    assert bars[-1][1:] == [60_000.0, 60_000.0, 60_000.0, 60_000.0, 0.0]  # forming
    book = await spot.fetch_order_book(BTC, 5)
    assert len(book["bids"]) == len(book["asks"]) == 5
    assert book["bids"][0][0] < 60_000.0 < book["asks"][0][0]
    assert [p for p, _ in book["bids"]] == sorted((p for p, _ in book["bids"]), reverse=True)
    ticker = await spot.fetch_ticker(BTC)
    assert ticker["last"] == 60_000.0
    assert ticker["bid"] < 60_000.0 < ticker["ask"]
    trades = await spot.fetch_trades(BTC, limit=3)
    assert len(trades) == 3
    assert trades[-1]["price"] == 60_000.0
    assert await spot.call("fetch_time") > 0  # any other unified method


async def test_futures_leverage_position_and_balance(futures: CcxtExchange) -> None:
    assert futures.id == "binanceusdm"  # margin on "binance" trades USDⓈ-M
    leverage = await futures.set_leverage(10, BTC_PERP)
    assert leverage["leverage"] == 10
    mode = await futures.set_margin_mode("isolated", BTC_PERP)  # already isolated: success
    assert mode["changed"] is False
    order = await futures.create_order(BTC_PERP, "market", "buy", 0.1, None, {"clientOrderId": "f"})
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.1, 60_000.0)
    assert order["cost"] == pytest.approx(6_000.0)
    [position] = await futures.fetch_positions()
    assert position["symbol"] == BTC_PERP
    assert (position["side"], position["contracts"], position["entryPrice"]) == (
        "long",
        0.1,
        60_000.0,
    )
    assert position["marginMode"] == "isolated"
    assert position["initialMargin"] == pytest.approx(600.0)
    assert position["liquidationPrice"] == pytest.approx((6_000 - 600) / (0.1 * 0.996), rel=1e-6)
    [again] = await futures.fetch_positions([BTC_PERP])
    assert (again["symbol"], again["contracts"]) == (BTC_PERP, 0.1)
    balance = await futures.fetch_balance()
    assert balance["USDT"]["total"] == pytest.approx(100_000 - 3.0)  # 0.05% taker fee
    assert balance["USDT"]["used"] == pytest.approx(600.0)


async def test_futures_reduce_only_close_and_trades(
    futures: CcxtExchange, loopback: LoopbackExchange
) -> None:
    await futures.create_order(BTC_PERP, "market", "buy", 0.1)
    loopback.set_price(BTC, 61_000.0)
    close = await futures.create_order(BTC_PERP, "market", "sell", 0.1, None, {"reduceOnly": True})
    assert (close["reduceOnly"], close["status"], close["average"]) == (True, "closed", 61_000.0)
    assert await futures.fetch_positions() == []
    trades = await futures.fetch_my_trades(BTC_PERP)
    assert [t["side"] for t in trades] == ["buy", "sell"]
    assert float(trades[-1]["info"]["realizedPnl"]) == pytest.approx(100.0)
    assert trades[-1]["fee"]["cost"] == pytest.approx(0.1 * 61_000 * 0.0005)
    balance = await futures.fetch_balance()
    assert balance["USDT"]["total"] == pytest.approx(100_000 + 100 - 3.0 - 3.05)


async def test_futures_time_in_force_post_only_client_ids_and_listings(
    futures: CcxtExchange, loopback: LoopbackExchange
) -> None:
    cid = "vigil-perp-0001"
    ioc = await futures.create_order(BTC_PERP, "limit", "buy", 0.01, 59e3, {"timeInForce": "IOC"})
    fok = await futures.create_order(BTC_PERP, "limit", "sell", 0.01, 61e3, {"timeInForce": "FOK"})
    assert (ioc["status"], ioc["timeInForce"]) == ("expired", "IOC")
    assert (fok["status"], fok["timeInForce"]) == ("expired", "FOK")
    post = await futures.create_order(
        BTC_PERP, "limit", "buy", 0.01, 59_000.0, {"postOnly": True, "clientOrderId": cid}
    )
    assert (post["status"], post["postOnly"], post["clientOrderId"]) == ("open", True, cid)
    assert (await futures.fetch_order(None, BTC_PERP, {"clientOrderId": cid}))["id"] == post["id"]
    assert [o["id"] for o in await futures.fetch_open_orders(BTC_PERP)] == [post["id"]]
    assert (await futures.cancel_order(post["id"], BTC_PERP))["status"] == "canceled"
    gtc = await futures.create_order(BTC_PERP, "limit", "buy", 0.01, 59_500.0)
    loopback.set_price(BTC, 59_000.0)
    filled = await futures.fetch_order(gtc["id"], BTC_PERP)
    assert (filled["status"], filled["average"]) == ("closed", 59_500.0)
    assert [o["id"] for o in await futures.fetch_closed_orders(BTC_PERP)] == [gtc["id"]]
    trade = (await futures.fetch_my_trades(BTC_PERP))[-1]
    assert trade["takerOrMaker"] == "maker"
    assert trade["fee"]["cost"] == pytest.approx(0.01 * 59_500 * 0.0002)


async def test_futures_market_data(futures: CcxtExchange) -> None:
    bars = await futures.fetch_ohlcv(BTC_PERP, "1m", limit=3)
    assert len(bars) == 3
    assert bars[-2][4] == 60_000.0
    book = await futures.fetch_order_book(BTC_PERP, 5)
    assert book["bids"][0][0] < 60_000.0 < book["asks"][0][0]
    assert (await futures.fetch_ticker(BTC_PERP))["last"] == 60_000.0
