"""Real ``ccxt.bybit`` and ``ccxt.pro.bybit`` against the loopback's Bybit v5 dialect.

Every unified result goes through ccxt's own structure validators, the ones ccxt's exchange
tests use (``ccxt/test/exchange/base``, shipped in the ccxt wheel), with no property skipped.
BTC is held at 60,000 and fills are exact (no spread or impact).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest
import trio
from ccxt.test.exchange.base.test_balance import test_balance as check_balance
from ccxt.test.exchange.base.test_market import test_market as check_market
from ccxt.test.exchange.base.test_ohlcv import test_ohlcv as check_ohlcv
from ccxt.test.exchange.base.test_order import test_order as check_order
from ccxt.test.exchange.base.test_order_book import test_order_book as check_order_book
from ccxt.test.exchange.base.test_position import test_position as check_position
from ccxt.test.exchange.base.test_ticker import test_ticker as check_ticker
from ccxt.test.exchange.base.test_trade import test_trade as check_trade

from runtime._errors import AuthenticationError, RateLimited
from runtime.exchanges._markets import load_markets
from runtime.exchanges.ccxt import CcxtExchange
from runtime.testing.loopback import BybitLoopbackExchange, serve
from tests.runtime.exchanges.ccxt.support import FAST
from tests.runtime.testing.loopback.support import BTC, BTC_PERP, client, make_bybit, run

STRICT: dict[str, Any] = {}  # skipped properties: none
# The one property skipped, and why: ccxt's bybit.parse_position hard-codes "marginMode": None
# (Bybit deprecated a position's tradeMode), so no Bybit position, real or loopback, has one.
POSITION_SKIPS: dict[str, Any] = {"marginMode": True}
OPTIONS = {"options": {"fetchMarkets": {"types": ["spot", "linear"]}}}


def private_topics(ex: BybitLoopbackExchange) -> int:
    """How many private topics the authenticated connections subscribe to, together."""
    return ex.call(lambda: sum(len(c.topics) for c in ex._private))


def exchange_now(ex: BybitLoopbackExchange) -> int:
    """The venue's clock, what the validators compare timestamps with. It runs ahead of the
    wall clock when a test closes bars by hand (each ``advance`` is a whole bar)."""
    return ex.call(ex.clock.now_ms) + 60_000 * 3


@pytest.fixture
def bybit() -> Iterator[BybitLoopbackExchange]:
    with make_bybit() as ex:
        ex.set_price(BTC, 60_000.0)
        yield ex


@asynccontextmanager
async def rest(ex: BybitLoopbackExchange, **config: Any) -> AsyncIterator[Any]:
    b = client(ccxt_async.bybit, ex, **{**OPTIONS, **config})
    try:
        await b.load_markets()
        yield b
    finally:
        await b.close()


@asynccontextmanager
async def pro(ex: BybitLoopbackExchange) -> AsyncIterator[Any]:
    b = client(ccxt_pro.bybit, ex, **OPTIONS)
    try:
        await b.load_markets()
        yield b
    finally:
        await b.close()


def test_load_markets_matches_the_shipped_snapshot_and_the_validators(
    bybit: BybitLoopbackExchange,
) -> None:
    async def go() -> dict[str, Any]:
        async with rest(bybit) as b:
            for market in b.markets.values():
                check_market(b, STRICT, "loadMarkets", market)
            return dict(b.markets)

    markets = run(go())
    snapshot = load_markets("bybit")
    assert sorted(markets) == sorted(snapshot)
    for symbol, expected in snapshot.items():
        for key in ("id", "type", "precision", "limits", "maker", "taker", "contractSize"):
            assert markets[symbol][key] == expected[key], (symbol, key)


def test_orders_of_every_kind_balances_trades_and_positions_pass_the_validators(
    bybit: BybitLoopbackExchange,
) -> None:
    async def go() -> None:
        async with rest(bybit) as b:
            now = exchange_now(bybit)
            check_balance(b, STRICT, "fetchBalance", await b.fetch_balance())
            # Spot: market, GTC, IOC, FOK, post-only, each with a client order id.
            placed = [
                await b.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "m1"}),
                await b.create_order(BTC, "limit", "buy", 0.01, 59_000, {"clientOrderId": "g1"}),
                await b.create_order(
                    BTC, "limit", "buy", 0.01, 59_000, {"clientOrderId": "i1", "timeInForce": "IOC"}
                ),
                await b.create_order(
                    BTC, "limit", "buy", 0.01, 61_000, {"clientOrderId": "f1", "timeInForce": "FOK"}
                ),
                await b.create_order(
                    BTC, "limit", "buy", 0.01, 58_000, {"clientOrderId": "p1", "postOnly": True}
                ),
            ]
            for order in placed:
                check_order(b, STRICT, "createOrder", order, BTC, now)
            assert [o["clientOrderId"] for o in placed] == ["m1", "g1", "i1", "f1", "p1"]
            by_id = {o["clientOrderId"]: await b.fetch_order(o["id"], BTC, {"acknowledged": True})
                     for o in placed}  # fmt: skip
            for order in by_id.values():
                check_order(b, STRICT, "fetchOrder", order, BTC, now)
            assert by_id["m1"]["status"] == "closed"
            assert by_id["m1"]["filled"] == 0.01
            assert by_id["m1"]["average"] == 60_000.0
            assert by_id["f1"]["status"] == "closed"  # FOK at 61,000 fills at the market
            assert by_id["i1"]["status"] == "canceled"  # IOC below the market: nothing
            assert by_id["g1"]["status"] == by_id["p1"]["status"] == "open"
            assert by_id["p1"]["timeInForce"] == "PO"
            opened = await b.fetch_open_orders(BTC)
            assert sorted(o["clientOrderId"] for o in opened) == ["g1", "p1"]
            cancelled = await b.cancel_order(by_id["g1"]["id"], BTC)
            check_order(b, STRICT, "cancelOrder", cancelled, BTC, now)
            closed = await b.fetch_closed_orders(BTC)
            assert sorted(o["clientOrderId"] for o in closed) == ["f1", "m1"]
            for order in opened + closed:
                check_order(b, STRICT, "fetchOrders", order, BTC, now)
            trades = await b.fetch_my_trades(BTC)
            assert sorted(t["order"] for t in trades) == sorted(
                [by_id["m1"]["id"], by_id["f1"]["id"]]
            )
            for trade in trades:
                check_trade(b, STRICT, "fetchMyTrades", trade, BTC, now, False)
            assert trades[0]["fee"]["cost"] == pytest.approx(0.6)  # 0.1% of 600 USDT

            # Linear perpetual on the same account: leverage, a long, a reduce-only close.
            assert (await b.set_leverage(5, BTC_PERP))["retCode"] == 0
            long = await b.create_order(
                BTC_PERP, "market", "buy", 0.01, None, {"clientOrderId": "l1"}
            )
            check_order(b, STRICT, "createOrder", long, BTC_PERP, now)
            positions = await b.fetch_positions([BTC_PERP])
            for position in positions:
                check_position(b, POSITION_SKIPS, "fetchPositions", position, BTC_PERP, now)
            assert [(p["side"], p["contracts"], p["leverage"]) for p in positions] == [
                ("long", 0.01, 5.0)
            ]
            assert positions[0]["initialMargin"] == pytest.approx(120.0)  # 600 at 5x
            with pytest.raises(ccxt.InvalidOrder):  # reduce-only cannot grow the position
                await b.create_order(BTC_PERP, "market", "buy", 0.01, None, {"reduceOnly": True})
            close = await b.create_order(
                BTC_PERP, "market", "sell", 0.01, None, {"reduceOnly": True, "clientOrderId": "r1"}
            )
            check_order(b, STRICT, "createOrder", close, BTC_PERP, now)
            assert (await b.fetch_positions([BTC_PERP]))[0]["contracts"] == 0
            # One unified wallet paid for the spot BTC and the perpetual's fees.
            balance = await b.fetch_balance()
            check_balance(b, STRICT, "fetchBalance", balance)
            spent = 2 * 600.0 + 2 * 0.6 + 59_000 * 0.01 * 0 + 2 * 0.36
            assert balance["USDT"]["total"] == pytest.approx(100_000.0 - spent)
            assert balance["USDT"]["used"] == pytest.approx(580.0 * 1.001)  # the post-only, fee too
            assert balance["BTC"]["total"] == pytest.approx(0.02)

    run(go())


def test_market_data_passes_the_validators(bybit: BybitLoopbackExchange) -> None:
    async def go() -> None:
        async with rest(bybit) as b:
            now = exchange_now(bybit)
            for symbol in (BTC, BTC_PERP):
                ticker = await b.fetch_ticker(symbol)
                check_ticker(b, STRICT, "fetchTicker", ticker, symbol)
                assert ticker["last"] == 60_000.0
                bars = await b.fetch_ohlcv(symbol, "1m", limit=5)
                assert len(bars) == 5
                assert bars == sorted(bars)  # oldest first, as ccxt returns them
                for bar in bars:
                    check_ohlcv(b, STRICT, "fetchOHLCV", bar, symbol, now)
                book = await b.fetch_order_book(symbol, 50)
                check_order_book(b, STRICT, "fetchOrderBook", book, symbol)
                assert book["bids"][0][0] < 60_000.0 < book["asks"][0][0]
                for trade in await b.fetch_trades(symbol):
                    check_trade(b, STRICT, "fetchTrades", trade, symbol, now, True)

    run(go())


def test_streams_pass_the_validators(bybit: BybitLoopbackExchange) -> None:
    async def go() -> None:
        async with pro(bybit) as b:
            now = exchange_now(bybit)
            ticker = await asyncio.wait_for(b.watch_ticker(BTC_PERP), 5)
            check_ticker(b, STRICT, "watchTicker", ticker, BTC_PERP)
            bars = await asyncio.wait_for(b.watch_ohlcv(BTC, "1m"), 5)
            for bar in bars:
                check_ohlcv(b, STRICT, "watchOHLCV", bar, BTC, now)
            book = await asyncio.wait_for(b.watch_order_book(BTC, 50), 5)
            check_order_book(b, STRICT, "watchOrderBook", book, BTC)
            first = await asyncio.wait_for(b.watch_positions(), 5)  # the REST snapshot
            assert first == []
            watches = {
                "orders": asyncio.ensure_future(b.watch_orders()),
                "trades": asyncio.ensure_future(b.watch_my_trades()),
                "balance": asyncio.ensure_future(b.watch_balance()),
                "positions": asyncio.ensure_future(b.watch_positions()),
                "public": asyncio.ensure_future(b.watch_trades(BTC)),
            }
            # Every topic subscribed (the server's view) before the order is sent.
            while private_topics(bybit) < 4 or bybit.stream_listeners("publicTrade.BTCUSDT") < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await b.create_order(BTC_PERP, "market", "buy", 0.01, None, {"clientOrderId": "w1"})
            await asyncio.get_running_loop().run_in_executor(None, bybit.advance, 1)
            got = {k: await asyncio.wait_for(v, 5) for k, v in watches.items()}
            for order in got["orders"]:
                check_order(b, STRICT, "watchOrders", order, BTC_PERP, now)
            assert [(o["clientOrderId"], o["status"]) for o in got["orders"]] == [("w1", "closed")]
            for trade in got["trades"]:
                check_trade(b, STRICT, "watchMyTrades", trade, BTC_PERP, now, False)
            assert [t["amount"] for t in got["trades"]] == [0.01]
            check_balance(b, STRICT, "watchBalance", got["balance"])
            for position in got["positions"]:
                check_position(b, POSITION_SKIPS, "watchPositions", position, BTC_PERP, now)
            assert [(p["side"], p["contracts"]) for p in got["positions"]] == [("long", 0.01)]
            for trade in got["public"]:
                check_trade(b, STRICT, "watchTrades", trade, BTC, now, True)

    run(go())


def test_a_wrong_signature_is_bybits_auth_error_and_vigils_authentication_error(
    bybit: BybitLoopbackExchange,
) -> None:
    async def raw() -> None:
        for config, code in (
            ({"secret": "not-the-secret"}, "10004"),
            ({"apiKey": "nope"}, "10003"),
        ):
            b = client(ccxt_async.bybit, bybit, **{**OPTIONS, **config})
            try:  # ccxt's first signed call (the currencies, while loading markets) is refused
                with pytest.raises(ccxt.AuthenticationError, match=code):
                    await b.fetch_balance()
            finally:
                await b.close()
        bad = client(ccxt_pro.bybit, bybit, secret="not-the-secret", **OPTIONS)
        try:
            with pytest.raises(ccxt.AuthenticationError):
                await asyncio.wait_for(bad.watch_orders(), 5)
        finally:
            await bad.close()

    run(raw())

    async def vigil() -> None:
        env = {**bybit.env(), "VIGIL_BYBIT_SECRET": "not-the-secret"}
        # ccxt's bybit signs its first request while loading markets (the currencies).
        with pytest.raises(AuthenticationError, match=r"bybit load_markets.*10004") as e:
            async with CcxtExchange.open("bybit", sandbox=False, env=env, rate_limit=FAST):
                pass
        assert "not-the-secret" not in str(e.value)
        assert "VIGIL_BYBIT_SECRET" in str(e.value)

    trio.run(vigil)


def test_a_rate_limit_is_honoured(bybit: BybitLoopbackExchange) -> None:
    async def go() -> None:
        async with CcxtExchange.open(
            "bybit", sandbox=False, env=bybit.env(), rate_limit=FAST
        ) as ex:
            bybit.faults.rate_limit_next(1, retry_after_s=1)
            with pytest.raises(RateLimited) as e:
                await ex.fetch_balance()
            assert e.value.retry_after == pytest.approx(1.0, abs=0.3)
            started = trio.current_time()
            balance = await ex.fetch_balance()  # held back until the window reset: no 403
            assert trio.current_time() - started >= 0.6
            assert balance["USDT"]["total"] == 100_000.0

    trio.run(go)

    async def early() -> None:
        async with rest(bybit) as b:
            bybit.faults.rate_limit_next(1, retry_after_s=5)
            with pytest.raises(ccxt.RateLimitExceeded, match="10006"):
                await b.fetch_balance()
            with pytest.raises(ccxt.RateLimitExceeded):  # too early: HTTP 403, Bybit's IP limit
                await b.fetch_balance()

    run(early())
    bybit.faults.reset()


def test_vigil_exchange_serve_venue_bybit_prints_the_bybit_environment() -> None:
    stop = threading.Event()
    out = io.StringIO()

    def main() -> None:
        with contextlib.redirect_stdout(out):
            serve(["--venue", "bybit", "--port", "0", "--manual"], until=stop)

    thread = threading.Thread(target=main)
    thread.start()
    try:
        for _ in range(200):
            if "# serving" in out.getvalue():
                break
            threading.Event().wait(0.02)
    finally:
        stop.set()
        thread.join(10)
    names = [line.split("=", 1)[0] for line in out.getvalue().splitlines() if "=" in line]
    assert names == ["VIGIL_BYBIT_URL", "VIGIL_BYBIT_API_KEY", "VIGIL_BYBIT_SECRET"]
