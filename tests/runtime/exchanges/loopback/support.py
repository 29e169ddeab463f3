"""Helpers for the loopback exchange tests: a real server on 127.0.0.1 and real ccxt clients.

ccxt runs on asyncio, so the tests are plain sync functions that call ``asyncio.run`` on a
coroutine; the server runs on its own thread and loop either way. Prices are moved by hand
(``set_price``/``advance``), and the fill model has no spread or impact, so fills happen at the
exact prices a test sets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro

from runtime.exchanges.loopback import LoopbackExchange, point_ccxt_at
from runtime.exchanges.sim._exchange import FillModel

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


def client(cls: type, ex: LoopbackExchange, **config: Any) -> Any:
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
    return asyncio.run(coro)


async def until(predicate: Callable[[], bool], within_s: float = 5.0) -> None:
    """Wait (polling every 10 ms) for ``predicate()``; fail after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s")
        await asyncio.sleep(0.01)
