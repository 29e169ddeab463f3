"""The loopback exchanges: a local Binance (spot and USDⓈ-M futures) and a local Bybit (v5,
unified account: spot and linear USDT perpetuals, :class:`BybitLoopbackExchange`) that real
ccxt talks to.

It serves Binance's wire protocol on 127.0.0.1, checks API keys and HMAC signatures as Binance
does (codes and HTTP statuses included), matches orders with the simulated exchange's engine,
and moves prices along a generated (or recorded) bar series. Point a ccxt object at it with
:func:`point_ccxt_at`::

    import ccxt.async_support as ccxt
    from runtime.testing.loopback import LoopbackExchange, point_ccxt_at

    with LoopbackExchange() as ex:                   # ex.base_url: "http://127.0.0.1:PORT"
        keys = {"apiKey": ex.credentials.api_key, "secret": ex.credentials.secret}
        binance = point_ccxt_at(ccxt.binance(keys), ex.base_url)
        ...                                           # await binance.create_order(...)
        ex.set_price("BTC/USDT", 59_000.0)            # the market moves; resting orders fill
        ex.faults.rate_limit_next(1, retry_after_s=1)

What it speaks:

- spot REST ``/api/v3``: ping, time, exchangeInfo, depth, trades, aggTrades, klines, uiKlines,
  ticker/price, ticker/24hr, ticker/bookTicker, account, order (POST, GET, DELETE), order/test,
  openOrders (GET, DELETE), allOrders, myTrades; and the ``/sapi`` and ``/dapi`` calls ccxt makes
  while loading markets with keys;
- spot user data over the WebSocket API (``/ws-api/v3``, ``userDataStream.subscribe.signature``):
  ``executionReport``, ``outboundAccountPosition``, ``balanceUpdate``;
- USDⓈ-M REST ``/fapi``: ping, time, exchangeInfo, depth, trades, aggTrades, klines, tickers,
  premiumIndex, account (v2, v3), balance (v2, v3), positionRisk (v2, v3), leverageBracket,
  leverage, marginType, positionSide/dual, multiAssetsMargin, order (POST, GET, DELETE),
  openOrder, openOrders, allOpenOrders, allOrders, userTrades, listenKey (POST, PUT, DELETE);
- USDⓈ-M user data on the listenKey stream: ``ORDER_TRADE_UPDATE``, ``ACCOUNT_UPDATE``,
  ``ACCOUNT_CONFIG_UPDATE``;
- market streams, spot and futures (``SUBSCRIBE`` on ``/ws`` or ``/stream``): ``@trade``,
  ``@aggTrade``, ``@ticker``, ``@miniTicker``, ``@bookTicker``, ``@depth[@100ms]`` (diffs that
  line up with the REST snapshot's ``lastUpdateId``) and ``@kline_<interval>``.

Test helpers are API: :class:`Faults` (``ex.faults``), ``advance``, ``set_price``, ``deposit``,
``user_events``, ``payloads`` (with ``record=True``), ``user_data_listeners`` and
``stream_listeners``. From the command line: ``vigil exchange serve`` (:func:`serve`).
"""

from runtime.exchanges.ccxt._urls import loopback_url as loopback_url
from runtime.exchanges.ccxt._urls import point_ccxt_at as point_ccxt_at
from runtime.exchanges.ccxt._urls import rewrite_urls as rewrite_urls
from runtime.testing.loopback._auth import Credentials as Credentials
from runtime.testing.loopback._bybit_server import BybitLoopbackExchange as BybitLoopbackExchange
from runtime.testing.loopback._cli import serve as serve
from runtime.testing.loopback._faults import Faults as Faults
from runtime.testing.loopback._feed import BarClock as BarClock
from runtime.testing.loopback._server import LoopbackExchange as LoopbackExchange
from runtime.testing.loopback._server import Payload as Payload

__all__ = [
    "BarClock",
    "BybitLoopbackExchange",
    "Credentials",
    "Faults",
    "LoopbackExchange",
    "Payload",
    "loopback_url",
    "point_ccxt_at",
    "rewrite_urls",
    "serve",
]
