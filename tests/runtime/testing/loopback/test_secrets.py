"""No key, secret, signature or listen key ever reaches the server's log.

A full session (REST and both user-data streams, spot and futures, a refused signature, a 5xx, a
lost reply) runs with a known key and secret while every log record at DEBUG is captured. The
records of everything but ccxt itself (its own DEBUG log prints request headers and URLs, keys
and signatures included; silencing it is the ccxt bridge's job) must not contain any of them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ccxt.async_support as ccxt
import pytest

from runtime.testing.loopback import LoopbackExchange
from tests.runtime.testing.loopback.support import (
    BTC,
    BTC_PERP,
    KEY,
    SECRET,
    opened,
    pro_futures,
    pro_spot,
    raw,
    run,
    spot,
    until,
)


def _record_signatures(exchange: Any, seen: set[str]) -> Any:
    """Wrap ccxt's signing so every signature it produces is kept in ``seen``."""
    sign, sign_params = exchange.sign, getattr(exchange, "sign_params", None)

    def signed(*args: Any, **kwargs: Any) -> Any:
        request = sign(*args, **kwargs)
        for part in (request["url"], request["body"] or ""):
            for item in str(part).replace("?", "&").split("&"):
                if item.startswith("signature="):
                    seen.add(item.removeprefix("signature="))
        return request

    def signed_params(*args: Any, **kwargs: Any) -> Any:
        params = sign_params(*args, **kwargs)
        seen.add(params["signature"])
        return params

    exchange.sign = signed
    if sign_params is not None:
        exchange.sign_params = signed_params
    return exchange


async def _session(ex: LoopbackExchange, signatures: set[str]) -> None:
    async with (
        opened(_record_signatures(spot(ex), signatures)) as b,
        opened(_record_signatures(pro_spot(ex), signatures)) as p,
        opened(_record_signatures(pro_futures(ex), signatures)) as f,
    ):
        orders = asyncio.ensure_future(p.watch_orders(BTC))
        positions = asyncio.ensure_future(f.watch_orders())
        await until(lambda: ex.user_data_listeners("spot") == 1)
        await until(lambda: ex.user_data_listeners("futures") == 1)
        await b.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "secret-1"})
        await f.create_order(BTC_PERP, "market", "buy", 0.01)
        await asyncio.wait_for(asyncio.gather(orders, positions), 5)
        ex.faults.fail_next(1, status=500)
        with pytest.raises(ccxt.NetworkError):
            await b.fetch_balance()
        ex.faults.drop_next_order_response()
        with pytest.raises(ccxt.NetworkError):
            await b.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "secret-2"})
        b.secret = "wrong-secret"
        with pytest.raises(ccxt.AuthenticationError):
            await b.fetch_balance()
        b.secret = SECRET
        await b.fetch_order("", BTC, {"clientOrderId": "secret-2"})
    raw(ex, "GET", "/api/v3/account", {}, key="B" * 64)  # an unknown key


def test_no_secret_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    signatures: set[str] = set()
    with LoopbackExchange(api_key=KEY, secret=SECRET) as ex:
        ex.set_price(BTC, 60_000.0)
        run(_session(ex, signatures))
        listen_key = ex.call(lambda: ex.futures.listen_key)
    assert len(signatures) > 10
    assert listen_key
    forbidden = {KEY, SECRET, listen_key, *signatures}
    formatter = logging.Formatter("%(name)s %(message)s")
    ours = [r for r in caplog.records if not r.name.startswith("ccxt")]
    assert any(r.name == "vigil.loopback" for r in ours)  # the server did log
    leaks = [
        (record.name, secret[:6])
        for record in ours
        for secret in forbidden
        if secret in formatter.format(record) or secret in repr(record.args)
    ]
    assert leaks == []


def test_credentials_repr_hides_both_parts() -> None:
    with LoopbackExchange(api_key=KEY, secret=SECRET) as ex:
        assert KEY not in repr(ex.credentials)
        assert SECRET not in repr(ex.credentials)
