"""Fault knobs: latency, 5xx, 429/418 with Retry-After, lost order replies, dropped sockets,
paused user data, slow user-data subscriptions."""

from __future__ import annotations

import asyncio
import copy
import time

import ccxt.async_support as ccxt
import pytest
from trio.testing import MockClock

from runtime.exchanges.ccxt._venues import binance_subscribed
from runtime.testing.loopback import Faults, LoopbackExchange
from tests.runtime.testing.loopback.support import (
    BTC,
    opened,
    pro_spot,
    raw,
    run,
    spot,
    until,
)


def test_added_latency_delays_every_reply(loopback: LoopbackExchange) -> None:
    # Nothing here waits on a timer: the server itself adds the latency, and the client's
    # elapsed time is the fact under test (the reply cannot come sooner), so it is measured.
    async def go() -> float:
        async with opened(spot(loopback)) as b:
            loopback.faults.latency_ms = 150
            started = time.perf_counter()
            await b.fetch_balance()
            return time.perf_counter() - started

    assert run(go()) >= 0.15
    loopback.faults.latency_ms = 0


def test_5xx_on_the_next_k_requests_then_service_again(loopback: LoopbackExchange) -> None:
    async def go() -> dict:
        async with opened(spot(loopback)) as b:
            loopback.faults.fail_next(2, status=503)
            for _ in range(2):
                with pytest.raises(ccxt.ExchangeNotAvailable):
                    await b.fetch_balance()
            loopback.faults.fail_next(1, status=500)
            with pytest.raises(ccxt.NetworkError):
                await b.fetch_open_orders(BTC)
            return await b.fetch_balance()

    assert run(go())["USDT"]["total"] == 100_000.0


def test_429_carries_retry_after_and_an_early_retry_is_banned(loopback: LoopbackExchange) -> None:
    # Retry-After is judged on the faults' clock: a frozen virtual one, stepped by hand.
    clock = MockClock()
    loopback.faults.clock = clock.current_time
    loopback.faults.rate_limit_next(1, retry_after_s=1)
    status, headers, body = raw(loopback, "GET", "/api/v3/account")
    assert (status, headers["Retry-After"], body["code"]) == (429, "1", -1003)
    status, headers, body = raw(loopback, "GET", "/api/v3/account")  # did not wait
    assert status == 418
    assert int(headers["Retry-After"]) >= 1
    clock.jump(1)  # honour Retry-After: the next request is served
    assert raw(loopback, "GET", "/api/v3/account")[0] == 200


def test_ccxt_sees_the_rate_limit_and_its_retry_after(loopback: LoopbackExchange) -> None:
    async def go() -> dict:
        async with opened(spot(loopback)) as b:
            loopback.faults.rate_limit_next(1, retry_after_s=0)
            with pytest.raises(ccxt.DDoSProtection, match="429"):
                await b.fetch_balance()
            headers = dict(b.last_response_headers)
            loopback.faults.rate_limit_next(1, retry_after_s=0, status=418)
            with pytest.raises(ccxt.DDoSProtection, match="418"):
                await b.fetch_balance()
            return headers

    assert run(go())["Retry-After"] == "0"


@pytest.mark.parametrize("mode", ["close", "500"])
def test_lost_order_reply_leaves_the_order_and_lookup_by_client_id_finds_it(
    loopback: LoopbackExchange, mode: str
) -> None:
    cid = f"vigil-lost-{mode}"

    async def go() -> tuple[dict, list]:
        async with opened(spot(loopback)) as b:
            loopback.faults.drop_next_order_response(mode=mode)
            with pytest.raises(ccxt.NetworkError):
                await b.create_order(BTC, "limit", "buy", 0.01, 59_000.0, {"clientOrderId": cid})
            found = await b.fetch_order("", BTC, {"clientOrderId": cid})
            return found, await b.fetch_open_orders(BTC)

    found, open_orders = run(go())
    assert found["clientOrderId"] == cid
    assert found["status"] == "open"
    assert [o["id"] for o in open_orders] == [found["id"]]  # placed exactly once


def test_closing_every_websocket_rejects_watchers_and_they_can_reconnect(
    loopback: LoopbackExchange,
) -> None:
    async def go() -> dict:
        async with opened(pro_spot(loopback)) as p:
            first = copy.deepcopy(await asyncio.wait_for(p.watch_ticker(BTC), 5))
            pending = asyncio.ensure_future(p.watch_trades(BTC))
            await until(lambda: loopback.stream_listeners("btcusdt@trade") == 1)
            loopback.faults.close_websockets()
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(pending, 5)
            await until(lambda: loopback.stream_listeners("btcusdt@trade") == 0)
            again = await asyncio.wait_for(p.watch_ticker(BTC), 5)  # ccxt.pro reconnects
            return {"first": first, "again": again}

    out = run(go())
    assert out["first"]["last"] == out["again"]["last"] == 60_000.0


def test_paused_user_data_is_delivered_in_order_afterwards(loopback: LoopbackExchange) -> None:
    # The pause is a real-time deadline that the server's own task waits out, so the test
    # measures it instead of sleeping through it: it awaits the watch itself. That the events
    # are emitted but held is checked at once after the order's reply (the server emits them
    # before it answers), a few ms into the 0.4 s pause; `waited` is what fails if they are not.
    def reports(events: list) -> list[str]:
        return [e["x"] for e in events if e["e"] == "executionReport"]

    async def go() -> tuple[float, list]:
        async with opened(pro_spot(loopback)) as p:
            watch = asyncio.ensure_future(p.watch_orders(BTC))
            await until(lambda: loopback.user_data_listeners("spot") == 1)
            started = time.perf_counter()  # before the pause starts: no delivery sooner than it
            loopback.faults.pause_user_data(0.4)
            placed = await p.create_order(BTC, "market", "buy", 0.01)
            assert reports(loopback.user_events("spot")) == ["NEW", "TRADE"]  # emitted...
            assert not watch.done()  # ...and held back
            orders = await asyncio.wait_for(watch, 5)
            waited = time.perf_counter() - started
            assert orders[0]["id"] == placed["id"]
            return waited, loopback.user_events("spot")

    waited, events = run(go())
    assert waited >= 0.35
    assert reports(events) == ["NEW", "TRADE"]


def test_reset_ends_a_pause_and_delivers_what_it_held(loopback: LoopbackExchange) -> None:
    async def go() -> list:
        async with opened(pro_spot(loopback)) as p:
            watch = asyncio.ensure_future(p.watch_orders(BTC))
            await until(lambda: loopback.user_data_listeners("spot") == 1)
            loopback.faults.pause_user_data(60.0)
            placed = await p.create_order(BTC, "market", "buy", 0.01)
            assert not watch.done()  # held
            loopback.faults.reset()
            orders = await asyncio.wait_for(watch, 5)  # not the pause's 60 s
            assert orders[0]["id"] == placed["id"]
            return orders

    assert run(go())


def test_a_delayed_subscription_takes_effect_late_and_ccxt_is_seen_waiting(
    loopback: LoopbackExchange,
) -> None:
    # While Binance holds the WebSocket API subscription, no user data flows to the connection
    # and ccxt's watch_orders is still authenticating: `binance_subscribed` says so, then
    # says it is live once the subscription is answered.
    async def go() -> list[bool]:
        async with opened(pro_spot(loopback)) as p:
            loopback.faults.delay_user_data_subscriptions(0.3)
            watch = asyncio.ensure_future(p.watch_orders(BTC))
            await until(lambda: loopback.faults.subscriptions_delayed == 1)
            seen = [await binance_subscribed(p, "watch_orders")]
            assert loopback.user_data_listeners("spot") == 0
            await until(lambda: loopback.user_data_listeners("spot") == 1)
            await until(
                lambda: "orders:" + BTC in p.clients[p.urls["api"]["ws"]["ws-api"]["spot"]].futures
            )
            seen.append(await binance_subscribed(p, "watch_orders"))
            seen.append(await binance_subscribed(p, "watch_balance"))  # no balance call made
            loopback.faults.reset()
            watch.cancel()
            return seen

    assert run(go()) == [False, True, False]


def test_faults_validate_their_knobs() -> None:
    faults = Faults()
    with pytest.raises(ValueError, match="5xx"):
        faults.fail_next(1, status=404)
    with pytest.raises(ValueError, match="whole number of seconds"):
        faults.rate_limit_next(1, retry_after_s=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        faults.drop_next_order_response(mode="later")
    with pytest.raises(ValueError, match="seconds"):
        faults.delay_user_data_subscriptions(-1.0)
    with pytest.raises(RuntimeError, match="not running"):
        faults.close_websockets()
    faults.delay_user_data_subscriptions(2.0)
    faults.fail_next(3)
    faults.reset()
    assert faults.take_request_fault() is None
    assert faults.take_subscribe_delay_s() == 0.0
