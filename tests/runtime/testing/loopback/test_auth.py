"""Binance authentication as the loopback checks it: key, HMAC signature, timestamp window."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import aiohttp
import ccxt.async_support as ccxt
import ccxt.pro as ccxt_pro
import pytest

from runtime.testing.loopback import LoopbackExchange
from tests.runtime.testing.loopback.support import (
    KEY,
    SECRET,
    client,
    opened,
    raw,
    run,
    spot,
)

OTHER_KEY = "A" * 64


def test_ccxt_with_a_wrong_secret_gets_authentication_error(loopback: LoopbackExchange) -> None:
    async def go() -> None:
        async with opened(spot(loopback)) as b:
            b.secret = "not-the-secret"
            with pytest.raises(ccxt.AuthenticationError, match="-1022"):
                await b.fetch_balance()

    run(go())


def test_ccxt_with_an_unknown_key_gets_authentication_error(loopback: LoopbackExchange) -> None:
    async def go() -> None:
        b = spot(loopback, apiKey=OTHER_KEY)
        try:  # loading markets already signs requests (sapi), so it fails there
            with pytest.raises(ccxt.AuthenticationError, match="-2015"):
                await b.load_markets()
        finally:
            # load_markets runs its requests together: let the ones still in flight finish
            # before the session closes, or their sockets are left unclosed.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.gather(*others, return_exceptions=True)
            await b.close()

    run(go())


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"key": OTHER_KEY}, 401, -2015),  # a key the server does not know
        ({"key": None}, 401, -2014),  # no X-MBX-APIKEY header
        ({"key": "not a key!"}, 401, -2014),  # malformed key
        ({"secret": "wrong"}, 400, -1022),  # signature by another secret
        ({"secret": None}, 400, -1102),  # no signature at all
        ({"timestamp_ms": -10_000}, 400, -1021),  # 10 s old, default recvWindow 5 s
        ({"timestamp_ms": 3_000}, 400, -1021),  # 3 s ahead of the server
    ],
)
def test_signed_request_refusals_use_binance_codes_and_statuses(
    loopback: LoopbackExchange, kwargs: dict, status: int, code: int
) -> None:
    if "timestamp_ms" in kwargs:
        kwargs["timestamp_ms"] += time.time_ns() // 1_000_000
    got_status, _, body = raw(loopback, "GET", "/api/v3/account", **kwargs)
    assert (got_status, body["code"]) == (status, code)
    assert isinstance(body["msg"], str)


def test_recv_window_limits(loopback: LoopbackExchange) -> None:
    old = time.time_ns() // 1_000_000 - 10_000
    status, _, body = raw(
        loopback, "GET", "/api/v3/account", {"recvWindow": 20_000}, timestamp_ms=old
    )
    assert status == 200, body
    status, _, body = raw(loopback, "GET", "/fapi/v2/balance", {"recvWindow": 70_000})
    assert (status, body["code"]) == (400, -1131)


def test_signature_over_the_form_body_and_public_endpoints_without_key(
    loopback: LoopbackExchange,
) -> None:
    status, _, body = raw(
        loopback,
        "POST",
        "/api/v3/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"},
        in_body=True,
    )
    assert status == 200, body
    assert body["status"] == "FILLED"
    status, _, body = raw(
        loopback, "GET", "/api/v3/depth", {"symbol": "BTCUSDT"}, key=None, signed=False
    )
    assert status == 200
    assert body["bids"]


def test_listen_key_needs_the_api_key_but_no_signature(loopback: LoopbackExchange) -> None:
    status, _, body = raw(loopback, "POST", "/fapi/v1/listenKey", key=None, signed=False)
    assert (status, body["code"]) == (401, -2014)
    status, _, body = raw(loopback, "POST", "/fapi/v1/listenKey", signed=False)
    assert status == 200
    assert len(body["listenKey"]) == 64
    again = raw(loopback, "POST", "/fapi/v1/listenKey", signed=False)[2]
    assert again["listenKey"] == body["listenKey"]  # Binance hands out the active key again


def test_ws_api_subscription_checks_the_signature(loopback: LoopbackExchange) -> None:
    def signed(secret: str) -> dict:
        params = {"apiKey": KEY, "timestamp": time.time_ns() // 1_000_000}
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        params["signature"] = hmac.new(
            secret.encode(), payload.encode(), hashlib.sha256
        ).hexdigest()
        return params

    async def go() -> list[dict]:
        replies = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{loopback.base_url}/ws-api/v3") as ws,
        ):
            for i, secret in enumerate(("wrong", SECRET)):
                await ws.send_str(
                    json.dumps(
                        {
                            "id": f"r{i}",
                            "method": "userDataStream.subscribe.signature",
                            "params": signed(secret),
                        }
                    )
                )
                replies.append(json.loads((await ws.receive(timeout=5)).data))
        return replies

    bad, good = run(go())
    assert bad == {
        "id": "r0",
        "status": 400,
        "error": {"code": -1022, "msg": "Signature for this request is not valid."},
    }
    assert good == {"id": "r1", "status": 200, "result": {"subscriptionId": 0}}


def test_ccxt_pro_with_a_wrong_secret_cannot_watch_balance(loopback: LoopbackExchange) -> None:
    async def go() -> None:
        async with opened(client(ccxt_pro.binance, loopback)) as p:
            p.secret = "nope"
            # ccxt 4.5.90 raises KeyError('spot') here: its ws error handler and its subscribe
            # both delete the same subscription. The server's reply is checked above.
            with pytest.raises((ccxt.AuthenticationError, KeyError)):
                await asyncio.wait_for(p.watch_balance(), 5)

    run(go())
