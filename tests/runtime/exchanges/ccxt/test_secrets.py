"""No key, secret, signature or listen key reaches a log record or an exception message.

A full session through vigil's ccxt exchange (markets, balance, orders, lookups, cancels, user
and market streams on spot and futures, a forced 5xx, a lost order reply, a 429, a websocket
drop, a wrong secret and missing keys) runs with a known key and secret while every logger
records at DEBUG (ccxt's request lines included: they go through vigil's scrubbing logger).
Every signature ccxt computes is recorded, and so is every exception the session raises, with its
whole chain and traceback.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

import pytest
import trio

from runtime._errors import AuthenticationError, NetworkError, RateLimited, VigilError
from runtime.exchanges.ccxt import CcxtExchange
from runtime.testing.loopback import LoopbackExchange
from tests.runtime.exchanges.ccxt.support import FAST, drain_until_error, until, watching
from tests.runtime.testing.loopback.support import BTC, BTC_PERP, KEY, SECRET
from tests.runtime.testing.loopback.test_secrets import _record_signatures

WRONG_SECRET = "wrongSecret0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"


async def _session(loopback: LoopbackExchange, signatures: set[str], raised: list[Any]) -> None:
    env = loopback.env()

    async def expect(error: type[VigilError], fn: Any, *args: Any) -> None:
        with pytest.raises(error) as caught:
            await fn(*args)
        raised.append(caught.value)

    async with (
        CcxtExchange.open("binance", sandbox=False, env=env, rate_limit=FAST) as spot,
        CcxtExchange.open(
            "binance", margin="isolated", sandbox=False, env=env, rate_limit=FAST
        ) as futures,
    ):
        for ex in (spot, futures):
            _record_signatures(ex._client, signatures)  # test-only instrumentation
        async with spot.watch_orders(BTC) as spot_orders, futures.watch_orders() as perp_orders:
            await until(lambda: loopback.user_data_listeners("spot") == 1)
            await until(lambda: loopback.user_data_listeners("futures") == 1)
            await watching(spot, 1)
            await watching(futures, 1)
            await spot.fetch_balance()
            await spot.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "sec-1"})
            resting = await spot.create_order(BTC, "limit", "buy", 0.01, 50_000.0)
            await spot.fetch_order(None, BTC, {"clientOrderId": "sec-1"})
            await spot.fetch_open_orders(BTC)
            await spot.cancel_order(resting["id"], BTC)
            await spot.fetch_my_trades(BTC)
            await futures.set_leverage(5, BTC_PERP)
            await futures.create_order(BTC_PERP, "market", "buy", 0.01)
            await futures.fetch_positions()
            with trio.fail_after(5):
                await spot_orders.receive()
                await perp_orders.receive()
            loopback.faults.fail_next(1, status=500)
            await expect(NetworkError, spot.fetch_balance)  # a signed GET: URL in the message
            loopback.faults.fail_next(1, status=502)
            await expect(NetworkError, futures.fetch_balance)
            loopback.faults.drop_next_order_response()
            await expect(
                NetworkError, spot.create_order, BTC, "market", "buy", 0.01, None,
                {"clientOrderId": "sec-2"},
            )  # fmt: skip
            await spot.fetch_order(None, BTC, {"clientOrderId": "sec-2"})
            loopback.faults.rate_limit_next(1, retry_after_s=0)
            await expect(RateLimited, spot.fetch_open_orders, BTC)
            loopback.faults.close_websockets()
            with pytest.raises(NetworkError) as dropped:
                await drain_until_error(perp_orders)
            raised.append(dropped.value)
    wrong = {**env, "VIGIL_BINANCE_SECRET": WRONG_SECRET}
    async with CcxtExchange.open(
        "binance", sandbox=False, env=wrong, rate_limit=FAST, load_markets=False
    ) as bad:
        await expect(AuthenticationError, bad.fetch_balance)
        await expect(AuthenticationError, bad.load_markets)
    keyless = {"VIGIL_BINANCE_URL": env["VIGIL_BINANCE_URL"]}
    async with CcxtExchange.open("binance", sandbox=False, env=keyless, rate_limit=FAST) as anon:
        await expect(AuthenticationError, anon.fetch_balance)


async def test_no_secret_in_any_log_record_or_exception(
    loopback: LoopbackExchange, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    signatures: set[str] = set()
    raised: list[BaseException] = []
    await _session(loopback, signatures, raised)
    listen_key = loopback.call(lambda: loopback.futures.listen_key)
    assert len(signatures) > 10
    assert listen_key
    assert len(raised) == 8
    forbidden = {KEY, SECRET, WRONG_SECRET, listen_key, *signatures}

    wire = [r for r in caplog.records if r.name == "vigil.ccxt.wire"]
    assert any("signature=***" in r.getMessage() for r in wire)  # ccxt's lines, scrubbed
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    leaks = []
    for record in caplog.records:
        text = formatter.format(record) + repr(record.args)
        leaks += [(record.name, s[:6]) for s in forbidden if s in text]
    for exc in raised:
        text = "".join(traceback.format_exception(exc)) + repr(exc)
        leaks += [(type(exc).__name__, s[:6]) for s in forbidden if s in text]
    assert leaks == []
