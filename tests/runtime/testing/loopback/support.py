"""Helpers for the loopback exchange tests: a real server on 127.0.0.1 and real ccxt clients.

ccxt runs on asyncio, so the tests are plain sync functions that call ``asyncio.run`` on a
coroutine; the server runs on its own thread and loop either way. Prices are moved by hand
(``set_price``/``advance``), and the fill model has no spread or impact, so fills happen at the
exact prices a test sets.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro

from runtime.exchanges.sim._exchange import FillModel
from runtime.testing.loopback import BybitLoopbackExchange, LoopbackExchange, point_ccxt_at

KEY = "vigilTestKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
SECRET = "vigilTestSecret0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM"
EXACT = FillModel(spread_bps=0.0, impact=0.0, volume_cap=0.25)
BTC = "BTC/USDT"
BTC_PERP = "BTC/USDT:USDT"


def make_exchange(**kwargs: Any) -> LoopbackExchange:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("secret", SECRET)
    kwargs.setdefault("fill_model", EXACT)
    kwargs.setdefault("history", 300)
    return LoopbackExchange(**kwargs)


def make_bybit(**kwargs: Any) -> BybitLoopbackExchange:
    """A Bybit-dialect loopback with the same keys, exact fills and history."""
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("secret", SECRET)
    kwargs.setdefault("fill_model", EXACT)
    kwargs.setdefault("history", 300)
    return BybitLoopbackExchange(**kwargs)


def client(cls: type, ex: LoopbackExchange | BybitLoopbackExchange, **config: Any) -> Any:
    """A real ccxt object of ``cls`` pointed at ``ex``, with its keys (unless overridden)."""
    options = {"apiKey": ex.credentials.api_key, "secret": ex.credentials.secret}
    options["enableRateLimit"] = False  # the throttle would only slow the tests down
    options["timeout_on_exit"] = 0  # ccxt waits 250 ms on close for TLS; plain HTTP needs none
    options.update(config)
    assert ex.base_url is not None
    return point_ccxt_at(cls(options), ex.base_url)


@asynccontextmanager
async def opened(exchange: Any) -> AsyncIterator[Any]:
    """Load markets, yield, and always close (an unclosed aiohttp session is a warning)."""
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


def spot(ex: LoopbackExchange, **config: Any) -> Any:
    return client(ccxt_async.binance, ex, **config)


def futures(ex: LoopbackExchange, **config: Any) -> Any:
    return client(ccxt_async.binanceusdm, ex, **config)


def pro_spot(ex: LoopbackExchange, **config: Any) -> Any:
    return client(ccxt_pro.binance, ex, **config)


def pro_futures(ex: LoopbackExchange, **config: Any) -> Any:
    return client(ccxt_pro.binanceusdm, ex, **config)


def run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    finally:
        # A socket left unclosed warns when it is collected: collect now, so the warning
        # fails the test that leaked it rather than whichever test runs next.
        gc.collect()


async def until(predicate: Callable[[], bool], within_s: float = 5.0) -> None:
    """Wait (polling every 10 ms) for ``predicate()``; fail after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s")
        await asyncio.sleep(0.01)


def raw(
    ex: LoopbackExchange,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    key: str | None = KEY,
    secret: str | None = SECRET,
    signed: bool = True,
    timestamp_ms: int | None = None,
    in_body: bool = False,
) -> tuple[int, dict[str, str], Any]:
    """One hand-made HTTP request: ``(status, headers, decoded JSON body or text)``.

    Signed requests get ``timestamp`` and an HMAC-SHA256 ``signature`` over the encoded
    parameters, in the query string or (``in_body``) the form body, as Binance clients do.
    """
    query = dict(params or {})
    if signed:
        query.setdefault("timestamp", timestamp_ms if timestamp_ms is not None else _now_ms())
    encoded = urllib.parse.urlencode(query)
    if signed and secret is not None:
        digest = hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).hexdigest()
        encoded += f"&signature={digest}"
    url = f"{ex.base_url}{path}"
    data = None
    if in_body:
        data = encoded.encode()
    elif encoded:
        url += f"?{encoded}"
    request = urllib.request.Request(url, data=data, method=method)
    if key is not None:
        request.add_header("X-MBX-APIKEY", key)
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, headers, text = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, text = exc.code, dict(exc.headers), exc.read()
        exc.close()
    try:
        return status, headers, json.loads(text)
    except ValueError:
        return status, headers, text.decode()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
