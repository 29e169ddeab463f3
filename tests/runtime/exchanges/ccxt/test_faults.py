"""Errors and faults through vigil's ccxt exchange: each ccxt error arrives as vigil's.

The loopback's fault knobs play the exchange's part: a wrong signature, 429 with Retry-After,
5xx, an order whose reply is lost, added latency.
"""

from __future__ import annotations

import time

import ccxt
import pytest
import trio

from runtime._errors import (
    AuthenticationError,
    ExchangeError,
    InsufficientFunds,
    NetworkError,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from runtime.exchanges.ccxt import CcxtExchange, RateLimit
from runtime.testing.loopback import LoopbackExchange
from tests.runtime.exchanges.ccxt.support import FAST
from tests.runtime.testing.loopback.support import BTC, BTC_PERP, SECRET


async def test_a_wrong_secret_is_binances_auth_error_mapped_to_vigils(
    loopback: LoopbackExchange,
) -> None:
    env = {**loopback.env(), "VIGIL_BINANCE_SECRET": "W" * 64}
    async with CcxtExchange.open(
        "binance", sandbox=False, env=env, rate_limit=FAST, load_markets=False
    ) as ex:
        with pytest.raises(AuthenticationError) as caught:
            await ex.fetch_balance()
    error = caught.value
    assert isinstance(error.__cause__, ccxt.AuthenticationError)
    assert "Signature for this request is not valid" in str(error)
    assert "VIGIL_BINANCE_API_KEY and VIGIL_BINANCE_SECRET" in str(error)  # the fix
    assert "W" * 64 not in str(error)


async def test_a_wrong_secret_fails_opening_with_credentials(loopback: LoopbackExchange) -> None:
    # With keys, ccxt's Binance reads currencies (a signed call) while loading markets.
    env = {**loopback.env(), "VIGIL_BINANCE_SECRET": "W" * 64}
    with pytest.raises(AuthenticationError, match="binance load_markets"):
        await CcxtExchange.connect("binance", sandbox=False, env=env, rate_limit=FAST)


async def test_missing_credentials_fail_before_sending_and_name_the_variables(
    loopback: LoopbackExchange,
) -> None:
    env = {"VIGIL_BINANCEUSDM_URL": loopback.env()["VIGIL_BINANCEUSDM_URL"]}
    async with CcxtExchange.open("binanceusdm", sandbox=False, env=env, rate_limit=FAST) as ex:
        assert (await ex.fetch_ticker(BTC_PERP))["last"] == 60_000.0  # public calls work
        loopback.faults.fail_next(1)  # consumed by the next request that reaches the server
        with pytest.raises(AuthenticationError) as caught:
            await ex.create_order(BTC_PERP, "market", "buy", 0.01)
        message = str(caught.value)
        assert "VIGIL_BINANCEUSDM_API_KEY and VIGIL_BINANCEUSDM_SECRET" in message
        with pytest.raises(AuthenticationError, match="VIGIL_BINANCEUSDM_API_KEY"):
            ex.watch_orders()
        with pytest.raises(NetworkError):
            await ex.fetch_ticker(BTC_PERP)  # this one met the 5xx: nothing was sent before


async def test_a_429_pauses_every_caller_until_retry_after(
    spot: CcxtExchange, loopback: LoopbackExchange
) -> None:
    loopback.faults.rate_limit_next(1, retry_after_s=1)
    with pytest.raises(RateLimited) as caught:
        await spot.fetch_balance()
    limited_at = time.monotonic()
    assert caught.value.retry_after == 1.0
    assert isinstance(caught.value.__cause__, ccxt.DDoSProtection)
    assert "retry after 1 s" in str(caught.value)
    elapsed: dict[str, float] = {}

    async def timed(name: str, fn: object, *args: object) -> None:
        await fn(*args)  # type: ignore[operator]
        elapsed[name] = time.monotonic() - limited_at

    # Another caller (a watcher's poll) and the one that was limited both wait; neither is
    # sent early, which the loopback would answer with a 418 ban.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timed, "balance", spot.fetch_balance)
        nursery.start_soon(timed, "ticker", spot.fetch_ticker, BTC)
        nursery.start_soon(timed, "orders", spot.fetch_open_orders, BTC)
    assert set(elapsed) == {"balance", "ticker", "orders"}
    assert min(elapsed.values()) >= 0.9
    assert spot.budget.waits >= 3


async def test_a_418_ban_is_honoured_the_same_way(
    spot: CcxtExchange, loopback: LoopbackExchange
) -> None:
    loopback.faults.rate_limit_next(1, retry_after_s=1, status=418)
    with pytest.raises(RateLimited) as caught:
        await spot.fetch_ticker(BTC)
    started = time.monotonic()
    assert caught.value.retry_after == 1.0
    await spot.fetch_ticker(BTC)
    assert time.monotonic() - started >= 0.9


async def test_the_budget_holds_the_rate_with_binance_weights(loopback: LoopbackExchange) -> None:
    # ccxt's Binance costs (weights scaled to its 50 ms rateLimit): ticker/24hr for one symbol
    # 0.4, openOrders without a symbol 16.
    limit = RateLimit(rate_per_s=20.0, burst=1.0)
    async with CcxtExchange.open(
        "binance", sandbox=False, env=loopback.env(), rate_limit=limit
    ) as ex:
        await trio.sleep(1.0)  # markets were loaded: let the bucket refill
        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                for _ in range(3):
                    nursery.start_soon(ex.fetch_ticker, BTC)
        twelve = time.monotonic() - started
        await trio.sleep(1.0)
        started = time.monotonic()
        await ex.fetch_open_orders()  # waits until the bucket holds its weight
        heavy = time.monotonic() - started
    assert twelve >= 0.9 * (12 * 0.4 - 1) / 20
    assert heavy >= 0.9 * (16 - 1) / 20


async def test_a_lost_order_reply_is_an_unknown_outcome_found_by_client_id(
    spot: CcxtExchange, loopback: LoopbackExchange
) -> None:
    loopback.faults.drop_next_order_response()
    with pytest.raises(NetworkError, match="may or may not have executed") as caught:
        await spot.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "lost-1"})
    assert not isinstance(caught.value, RateLimited)
    found = await spot.fetch_order(None, BTC, {"clientOrderId": "lost-1"})
    assert (found["status"], found["filled"], found["clientOrderId"]) == ("closed", 0.01, "lost-1")
    loopback.faults.drop_next_order_response(mode="500")
    with pytest.raises(NetworkError):
        await spot.create_order(BTC, "limit", "buy", 0.01, 59_000.0, {"clientOrderId": "lost-2"})
    found = await spot.fetch_order(None, BTC, {"clientOrderId": "lost-2"})
    assert (found["status"], found["price"]) == ("open", 59_000.0)


async def test_a_5xx_is_a_network_error_without_the_signature(
    spot: CcxtExchange, loopback: LoopbackExchange
) -> None:
    loopback.faults.fail_next(1, status=503)
    with pytest.raises(NetworkError) as caught:
        await spot.fetch_balance()  # a signed GET: ccxt's message holds the signed URL
    message = str(caught.value)
    assert "503" in message
    assert "signature=***" in message
    assert str(caught.value.__cause__).count("signature=***") == 1  # the cause is scrubbed too
    assert SECRET not in message


async def test_refusals_map_to_rejected_insufficient_and_not_found(
    spot: CcxtExchange, futures: CcxtExchange
) -> None:
    with pytest.raises(InsufficientFunds, match="cannot pay"):
        await spot.create_order(BTC, "market", "buy", 10.0)
    with pytest.raises(OrderRejected, match="rejected the order") as post_only:
        await spot.create_order(BTC, "limit", "buy", 0.01, 61_000.0, {"postOnly": True})
    assert isinstance(post_only.value.__cause__, ccxt.OrderImmediatelyFillable)
    with pytest.raises(OrderRejected, match="NOTIONAL"):  # ccxt BadRequest on an order
        await spot.create_order(BTC, "limit", "buy", 0.00001, 59_000.0)
    with pytest.raises(OrderNotFound):
        await spot.cancel_order("987654", BTC)
    with pytest.raises(OrderNotFound):
        await spot.fetch_order(None, BTC, {"clientOrderId": "never-sent"})
    with pytest.raises(OrderRejected, match="-2022"):  # reduce-only while flat
        await futures.create_order(BTC_PERP, "market", "sell", 0.1, None, {"reduceOnly": True})
    with pytest.raises(InsufficientFunds, match="-2019"):
        await futures.create_order(BTC_PERP, "market", "buy", 20.0)
    with pytest.raises(ExchangeError, match="marginType") as bad:  # not an order: no rejection
        await futures.set_margin_mode("cross", BTC_PERP)
    assert not isinstance(bad.value, OrderRejected)


async def test_cancelling_a_call_cancels_the_asyncio_request_and_the_bridge_stays_usable(
    spot: CcxtExchange, loopback: LoopbackExchange
) -> None:
    loopback.faults.latency_ms = 1_000
    started = time.monotonic()
    with trio.move_on_after(0.2) as scope:
        await spot.fetch_balance()
    assert scope.cancelled_caught
    assert time.monotonic() - started < 0.8  # did not wait for the reply
    assert spot.bridge.in_flight == 0  # the asyncio task has finished: nothing left behind
    loopback.faults.latency_ms = 0
    assert (await spot.fetch_balance())["USDT"]["total"] == 100_000.0
