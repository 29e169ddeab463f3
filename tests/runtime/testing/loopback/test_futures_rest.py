"""Real ccxt.async_support.binanceusdm against the loopback USDⓈ-M REST API.

BTC is held at 60,000; fills are exact (no spread, no impact); fees are 0.02% maker and 0.05%
taker; the account is isolated margin, one-way, 100,000 USDT.
"""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from runtime.exchanges._markets import load_markets
from runtime.testing.loopback import LoopbackExchange
from tests.runtime.testing.loopback.support import BTC, BTC_PERP, futures, opened, run


def test_load_markets_matches_the_shipped_snapshot(loopback: LoopbackExchange) -> None:
    async def go() -> dict:
        async with opened(futures(loopback)) as f:
            return dict(f.markets)

    markets = run(go())
    for symbol, expected in load_markets("binanceusdm").items():
        for key in ("id", "precision", "limits", "maker", "taker", "swap", "linear", "settle"):
            if key == "limits":
                # Leverage limits come from leverageBracket once keys are set, as on Binance.
                got = {k: v for k, v in markets[symbol][key].items() if k != "leverage"}
                want = {k: v for k, v in expected[key].items() if k != "leverage"}
                assert got == want, symbol
            else:
                assert markets[symbol][key] == expected[key], (symbol, key)


def test_leverage_position_and_balance_after_a_market_buy(loopback: LoopbackExchange) -> None:
    async def go() -> tuple[dict, dict, list, dict]:
        async with opened(futures(loopback)) as f:
            leverage = await f.set_leverage(10, BTC_PERP)
            order = await f.create_order(BTC_PERP, "market", "buy", 0.1)
            return leverage, order, await f.fetch_positions(), await f.fetch_balance()

    leverage, order, positions, balance = run(go())
    assert leverage["leverage"] == 10
    assert order["status"] == "closed"
    assert order["filled"] == 0.1
    assert order["average"] == 60_000.0
    assert order["cost"] == pytest.approx(6_000.0)
    [position] = positions
    assert position["symbol"] == BTC_PERP
    assert position["side"] == "long"
    assert position["contracts"] == 0.1
    assert position["entryPrice"] == 60_000.0
    assert position["marginMode"] == "isolated"
    assert position["initialMargin"] == pytest.approx(600.0)
    assert position["unrealizedPnl"] == pytest.approx(0.0)
    # Isolated long: (size × entry − margin) / (size × (1 − 0.4% maintenance)).
    assert position["liquidationPrice"] == pytest.approx((6_000 - 600) / (0.1 * 0.996), rel=1e-6)
    assert balance["USDT"]["total"] == pytest.approx(100_000 - 3.0)  # 0.05% taker fee
    assert balance["USDT"]["used"] == pytest.approx(600.0)


def test_reduce_only_close_realizes_the_profit(loopback: LoopbackExchange) -> None:
    async def go() -> tuple[dict, list, list, dict]:
        async with opened(futures(loopback)) as f:
            await f.create_order(BTC_PERP, "market", "buy", 0.1)
            loopback.set_price(BTC, 61_000.0)
            close = await f.create_order(
                BTC_PERP, "market", "sell", 0.1, None, {"reduceOnly": True}
            )
            trades = await f.fetch_my_trades(BTC_PERP)
            return close, await f.fetch_positions(), trades, await f.fetch_balance()

    close, positions, trades, balance = run(go())
    assert close["reduceOnly"] is True
    assert close["status"] == "closed"
    assert positions == []
    assert [t["side"] for t in trades] == ["buy", "sell"]
    assert float(trades[-1]["info"]["realizedPnl"]) == pytest.approx(100.0)
    assert trades[-1]["fee"]["cost"] == pytest.approx(0.1 * 61_000 * 0.0005)
    assert balance["USDT"]["total"] == pytest.approx(100_000 + 100 - 3.0 - 3.05)
    assert balance["USDT"]["used"] == pytest.approx(0.0)


def test_refusals_raise_the_ccxt_classes_binance_gets(loopback: LoopbackExchange) -> None:
    async def go() -> None:
        async with opened(futures(loopback)) as f:
            with pytest.raises(ccxt.InvalidOrder, match="-2022"):  # reduce-only while flat
                await f.create_order(BTC_PERP, "market", "sell", 0.1, None, {"reduceOnly": True})
            with pytest.raises(ccxt.InvalidOrder, match="-4164"):  # below 100 USDT notional
                await f.create_order(BTC_PERP, "limit", "buy", 0.001, 59_000.0)
            with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
                await f.create_order(BTC_PERP, "market", "buy", 20.0)
            with pytest.raises(ccxt.OrderNotFillable, match="-5022"):  # post-only would take
                await f.create_order(BTC_PERP, "limit", "buy", 0.01, 61_000.0, {"postOnly": True})
            with pytest.raises(ccxt.MarginModeAlreadySet):
                await f.set_margin_mode("isolated", BTC_PERP)
            with pytest.raises(ccxt.BadRequest, match="marginType"):
                await f.set_margin_mode("cross", BTC_PERP)
            with pytest.raises(ccxt.BadRequest, match="-4028"):  # ccxt checks 1..125 itself
                await f.fapiPrivatePostLeverage({"symbol": "BTCUSDT", "leverage": 200})
            with pytest.raises(ccxt.OrderNotFound):
                await f.fetch_order("424242", BTC_PERP)

    run(go())


def test_time_in_force_post_only_client_ids_and_listings(loopback: LoopbackExchange) -> None:
    cid = "vigil-perp-0001"

    async def go() -> dict:
        async with opened(futures(loopback)) as f:
            out = {
                "ioc": await f.create_order(
                    BTC_PERP, "limit", "buy", 0.01, 59_000.0, {"timeInForce": "IOC"}
                ),
                "fok": await f.create_order(
                    BTC_PERP, "limit", "sell", 0.01, 61_000.0, {"timeInForce": "FOK"}
                ),
                "post": await f.create_order(
                    BTC_PERP,
                    "limit",
                    "buy",
                    0.01,
                    59_000.0,
                    {"postOnly": True, "clientOrderId": cid},
                ),
            }
            out["by_cid"] = await f.fetch_order("", BTC_PERP, {"clientOrderId": cid})
            out["open"] = await f.fetch_open_orders(BTC_PERP)
            out["canceled"] = await f.cancel_order(out["post"]["id"], BTC_PERP)
            out["gtc"] = await f.create_order(BTC_PERP, "limit", "buy", 0.01, 59_500.0)
            loopback.set_price(BTC, 59_000.0)
            out["filled"] = await f.fetch_order(out["gtc"]["id"], BTC_PERP)
            out["closed"] = await f.fetch_closed_orders(BTC_PERP)
            out["trades"] = await f.fetch_my_trades(BTC_PERP)
            return out

    out = run(go())
    assert (out["ioc"]["status"], out["ioc"]["timeInForce"]) == ("expired", "IOC")
    assert (out["fok"]["status"], out["fok"]["timeInForce"]) == ("expired", "FOK")
    assert out["post"]["status"] == "open"
    assert out["post"]["postOnly"] is True
    assert out["post"]["clientOrderId"] == cid
    assert out["by_cid"]["id"] == out["post"]["id"]
    assert [o["id"] for o in out["open"]] == [out["post"]["id"]]
    assert out["canceled"]["status"] == "canceled"
    assert out["filled"]["status"] == "closed"
    assert out["filled"]["average"] == 59_500.0
    assert [o["id"] for o in out["closed"]] == [out["gtc"]["id"]]
    assert out["trades"][-1]["takerOrMaker"] == "maker"
    assert out["trades"][-1]["fee"]["cost"] == pytest.approx(0.01 * 59_500 * 0.0002)


def test_market_data(loopback: LoopbackExchange) -> None:
    async def go() -> tuple[list, dict, dict]:
        async with opened(futures(loopback)) as f:
            return (
                await f.fetch_ohlcv(BTC_PERP, "1m", limit=3),
                await f.fetch_order_book(BTC_PERP, 5),
                await f.fetch_ticker(BTC_PERP),
            )

    ohlcv, book, ticker = run(go())
    assert len(ohlcv) == 3
    assert ohlcv[-2][4] == 60_000.0
    assert book["bids"][0][0] < 60_000.0 < book["asks"][0][0]
    assert len(book["bids"]) == 5
    assert ticker["last"] == 60_000.0
