"""The loopback exchange: a local Binance (spot and USDⓈ-M futures) that real ccxt talks to.

It serves Binance's wire protocol on 127.0.0.1 (REST, the spot WebSocket API user-data stream,
futures listenKey streams and public market streams), checks API keys and HMAC signatures as
Binance does, matches orders with the simulated exchange's engine, and moves prices from a
generated (or recorded) bar series. Point a ccxt object at it with :func:`point_ccxt_at`::

    from runtime.exchanges.loopback import LoopbackExchange, point_ccxt_at
    import ccxt.async_support as ccxt

    with LoopbackExchange() as ex:                  # ex.base_url == "http://127.0.0.1:PORT"
        binance = point_ccxt_at(ccxt.binance({"apiKey": ex.credentials.api_key,
                                              "secret": ex.credentials.secret}), ex.base_url)
        ...                                          # await binance.create_order(...)
        ex.set_price("BTC/USDT", 59_000.0)           # move the market; resting orders fill
        ex.faults.rate_limit_next(1, retry_after_s=1)

From the command line: ``vigil exchange serve`` (:func:`serve`).
"""

from ._auth import Credentials as Credentials
from ._cli import serve as serve
from ._faults import Faults as Faults
from ._feed import BarClock as BarClock
from ._server import LoopbackExchange as LoopbackExchange
from ._server import Payload as Payload
from ._urls import loopback_url as loopback_url
from ._urls import point_ccxt_at as point_ccxt_at
from ._urls import rewrite_urls as rewrite_urls

__all__ = [
    "BarClock",
    "Credentials",
    "Faults",
    "LoopbackExchange",
    "Payload",
    "loopback_url",
    "point_ccxt_at",
    "rewrite_urls",
    "serve",
]
