"""The loopback Binance server: HTTP and WebSocket on 127.0.0.1, in a background thread.

**Why aiohttp.** It is already installed as a dependency of ccxt (ccxt's asyncio client is built
on it), it is mature and maintained, and one ``aiohttp.web`` application serves plain HTTP and
WebSockets on the same port, which is what Binance's URL layout needs once every host is folded
onto one origin (see :mod:`._urls`). The server runs on its own asyncio event loop in a daemon
thread, so trio tests, asyncio tests and scripts all drive it through the same small sync API.

**Routes.** Spot REST under ``/api/v3`` (plus the ``/sapi`` and ``/dapi`` calls ccxt makes while
loading markets), USDⓈ-M REST under ``/fapi/v1|v2|v3``, the spot WebSocket API at
``/ws-api/v3``, spot market streams at ``/ws``, ``/stream`` (and the same under ``/stream/``,
where :func:`point_ccxt_at` sends ccxt), and futures streams under ``/fstream/`` (``ws``,
``stream``, ``public/ws``, ``market/ws``, and ``private/ws?listenKey=...`` for user data).

**Secrets.** The access log is off, and the server's own log lines carry method, path (never
the query or body), status and Binance error code only, so no key, secret, signature or listen
key is ever logged.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from runtime.exchanges._binance_info import SPOT_SYMBOLS, futures_exchange_info, spot_exchange_info
from runtime.exchanges.sim._exchange import Bar, FillModel
from runtime.testing.loopback._accounts import Account
from runtime.testing.loopback._auth import (
    BinanceError,
    Credentials,
    check_timestamp,
    mandatory,
    rest_signature_payload,
)
from runtime.testing.loopback._auth import ws_signature_payload as _ws_payload
from runtime.testing.loopback._faults import RequestFault
from runtime.testing.loopback._feed import BarClock
from runtime.testing.loopback._funding import funding_history
from runtime.testing.loopback._futures import FuturesAccount
from runtime.testing.loopback._market import MarketData
from runtime.testing.loopback._serving import ServedExchange
from runtime.testing.loopback._spot import SpotAccount
from runtime.testing.loopback._wire import FUTURES_MARKETS, SPOT_MARKETS, Market

__all__ = ["LoopbackExchange", "Payload"]

log = logging.getLogger("vigil.loopback")

T = TypeVar("T")
Params = Mapping[str, str]

PUBLIC, USER_STREAM, SIGNED = "public", "user_stream", "signed"
_DEFAULT_BALANCES: Final = {"USDT": 100_000.0}
_FUTURES_DEPTH_LIMITS: Final = (5, 10, 20, 50, 100, 500, 1000)
_EVENTS_KEPT: Final = 10_000


def _json(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


class _EngineFeed:
    """The bar clock as the matching engine must see it.

    The engine skips bars that opened before an order's timestamp ("placed after the bar
    opened, it only sees later bars"), which is right for historical bars. Here the forming bar
    lies in the order's future, so an order placed while it forms must match it when it
    closes: the engine is shown each closed bar stamped at its last millisecond instead of its
    open. Fills made on a bar are timestamped then, inside the bar, after any order placed in it.
    """

    def __init__(self, clock: BarClock) -> None:
        self.clock = clock

    def bar(self, symbol: str) -> Bar | None:
        bar = self.clock.bar(symbol)
        return None if bar is None else bar._replace(time_ms=bar.time_ms + self.clock.tf_ms - 1)

    def now_ms(self) -> int:
        return self.clock.now_ms()


@dataclass(frozen=True, slots=True)
class Payload:
    """One body the server emitted (kept when the exchange runs with ``record=True``).

    ``channel`` is ``"rest"`` (``route`` is ``"GET /api/v3/order"``, ``status`` the HTTP status)
    or ``"ws"`` (``route`` is the connection's path, ``status`` 0).
    """

    channel: str
    route: str
    status: int
    body: Any


@dataclass(eq=False)
class _Conn:
    """One WebSocket connection and what it listens to."""

    ws: web.WebSocketResponse
    kind: str  # "spot" or "futures"
    combined: bool  # /stream wraps events as {"stream": name, "data": event}
    path: str = ""
    sink: list[Payload] | None = None
    out: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    streams: set[str] = field(default_factory=set)
    subscription_id: int | None = None  # spot WebSocket API user-data subscription
    listen_key: str | None = None  # futures user data

    def send(self, body: Any) -> None:
        text = _json(body)
        if self.sink is not None:
            self.sink.append(Payload("ws", self.path, 0, json.loads(text)))
        self.out.put_nowait(text)


class _UserData:
    """Fan-out of one account's user-data events, honouring the pause knob."""

    def __init__(self, server: LoopbackExchange, wrap: Callable[[_Conn, dict[str, Any]], Any]):
        self.server = server
        self.wrap = wrap
        self.conns: set[_Conn] = set()
        self.held: list[dict[str, Any]] = []
        self.flusher: asyncio.Task[None] | None = None
        # The latest events emitted, for tests; bounded so a long `serve` does not grow.
        self.sent: collections.deque[dict[str, Any]] = collections.deque(maxlen=_EVENTS_KEPT)

    def publish(self, event: dict[str, Any]) -> None:
        if self.server.faults.take_suppressed():
            return  # lost on the way: only REST knows
        self.sent.append(event)
        if self.held or self.server.faults.user_data_pause_s() > 0:
            self.held.append(event)
            if self.flusher is None or self.flusher.done():
                self.flusher = asyncio.get_running_loop().create_task(self._flush())
            return
        self._deliver(event)

    def _deliver(self, event: dict[str, Any]) -> None:
        for conn in list(self.conns):
            conn.send(self.wrap(conn, event))

    async def _flush(self) -> None:
        await self.server.faults.user_data_resumed()
        held, self.held = self.held, []
        for event in held:
            self._deliver(event)


class LoopbackExchange(ServedExchange):
    """A local Binance (spot and USDⓈ-M futures) that real ccxt talks to. See the package doc.

    Keyword-only configuration:

    - ``api_key``, ``secret``: the one accepted key pair (generated when absent; read them from
      :attr:`credentials`).
    - ``spot_balances``, ``futures_balances``: starting balances (default 100,000 USDT each).
    - ``timeframe``, ``seed``, ``history``, ``data``: the market series (see :class:`BarClock`).
    - ``bar_interval_ms``: wall milliseconds per bar when running on its own; ``None`` (the
      default) moves prices only through :meth:`advance` and :meth:`set_price`.
    - ``fill_model``: the matching engine's fill model (spread, impact, volume cap).
    - ``host``, ``port``: where to listen; port 0 picks a free port.
    - ``record``: keep every REST body and WebSocket message sent (:meth:`payloads`), for
      checking them against Binance's SDK models.

    ``start()`` returns the base URL; ``stop()`` shuts the server down (also on leaving a
    ``with`` block). Every other method is safe to call from any thread while it runs, and
    returns once the server applied it.
    """

    venue_name = "Binance"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        secret: str | None = None,
        spot_balances: Mapping[str, float] | None = None,
        futures_balances: Mapping[str, float] | None = None,
        timeframe: str | None = None,
        seed: int = 0,
        history: int = 1_000,
        data: Any = None,
        bar_interval_ms: float | None = None,
        fill_model: FillModel | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = False,
    ) -> None:
        self._init_serving(
            api_key=api_key, secret=secret, host=host, port=port, bar_interval_ms=bar_interval_ms
        )
        self._config = {
            "spot_balances": dict(spot_balances or _DEFAULT_BALANCES),
            "futures_balances": dict(futures_balances or _DEFAULT_BALANCES),
            "timeframe": timeframe,
            "seed": seed,
            "history": history,
            "data": data,
            "fill_model": fill_model,
        }
        self._conns: set[_Conn] = set()
        self._streams: dict[tuple[str, str], set[_Conn]] = {}
        self._subscription_ids = 0
        self._sink: list[Payload] | None = [] if record else None
        self._weight: dict[str, tuple[int, int]] = {}  # api -> (minute, weight used)
        self._build()

    def _build(self) -> None:
        c = self._config
        pairs = [s.symbol for s in SPOT_SYMBOLS.values()]
        self.clock = BarClock(
            pairs, timeframe=c["timeframe"], seed=c["seed"], history=c["history"], data=c["data"]
        )
        engine_feed = _EngineFeed(self.clock)
        self.spot_data = MarketData(self.clock, SPOT_MARKETS.values())
        self.futures_data = MarketData(self.clock, FUTURES_MARKETS.values())
        self.spot = SpotAccount(self.clock, self.spot_data, c["spot_balances"])
        self.futures = FuturesAccount(self.clock, self.futures_data, c["futures_balances"])
        for account in (self.spot, self.futures):
            account.sim.feed = engine_feed
            if c["fill_model"] is not None:
                account.sim.fill_model = c["fill_model"]
        self._route_table = self._routes()
        self._spot_user = _UserData(self, self._wrap_spot_event)
        self._futures_user = _UserData(self, self._wrap_futures_event)
        self.spot.emit = self._spot_user.publish
        self.futures.emit = self._futures_user.publish

    # Lifecycle.

    # Control (any thread).

    def set_price(self, symbol: str, price: float, *, hold: bool = True) -> None:
        """Move ``symbol``'s market to ``price`` now: closes one bar (all markets) that runs
        from the last close to ``price``. With ``hold`` the market then stays at ``price``.

        ``symbol`` is a pair or perpetual in ccxt form (``"BTC/USDT"`` moves the spot market
        and the ``BTC/USDT:USDT`` perpetual alike). Resting orders fill if the move trades
        *through* their price.
        """

        def apply() -> None:
            self.clock.set_price(symbol, price, hold=hold)
            self._advance(1)

        self._on_loop(apply)

    def release(self, symbol: str) -> None:
        """Let a held market move again, from its held price."""
        self._on_loop(lambda: self.clock.release(symbol))

    def price(self, symbol: str) -> float:
        """The price the market trades at now (the last closed bar's close)."""
        return self._on_loop(lambda: self.clock.last_price(symbol))

    def deposit(self, asset: str, amount: float, *, account: str = "spot") -> None:
        """Credit ``amount`` of ``asset`` to ``"spot"`` or ``"futures"`` (negative debits)."""
        target = self._account(account)
        self._on_loop(lambda: target.deposit(asset, amount))

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the server thread (to read or change engine state consistently)."""
        return self._on_loop(fn)

    def user_events(self, account: str = "spot") -> list[dict[str, Any]]:
        """The user-data events emitted for ``account`` (the last 10,000; copies, oldest first)."""
        hub = self._spot_user if self._account(account) is self.spot else self._futures_user
        return self._on_loop(lambda: [json.loads(_json(e)) for e in hub.sent])

    def endpoints(self) -> list[str]:
        """Every REST endpoint served, as ``"METHOD /path"``, sorted."""
        return sorted(f"{method} {path}" for method, path in self._route_table)

    def payloads(self) -> list[Payload]:
        """Every body sent so far (needs ``record=True``), oldest first."""
        if self._sink is None:
            raise RuntimeError("payloads are kept only with LoopbackExchange(record=True)")
        sink = self._sink
        return self._on_loop(lambda: list(sink))

    def user_data_listeners(self, account: str = "spot") -> int:
        """How many connections currently receive ``account``'s user-data events."""
        hub = self._spot_user if self._account(account) is self.spot else self._futures_user
        return self._on_loop(lambda: len(hub.conns))

    def stream_listeners(self, stream: str, *, market: str = "spot") -> int:
        """How many connections are subscribed to a market stream (``"btcusdt@trade"``)."""
        if market not in ("spot", "futures"):
            raise ValueError(f"market {market!r} is not valid; use 'spot' or 'futures'")
        return self._on_loop(lambda: len(self._streams.get((market, stream), ())))

    def env(self) -> dict[str, str]:
        """The environment a vigil strategy needs to trade here (see ``serve``)."""
        if self.base_url is None:
            raise RuntimeError("start() the loopback exchange first; the URL is not known yet")
        out = {}
        for name in ("BINANCE", "BINANCEUSDM"):
            out[f"VIGIL_{name}_URL"] = self.base_url
            out[f"VIGIL_{name}_API_KEY"] = self.credentials.api_key
            out[f"VIGIL_{name}_SECRET"] = self.credentials.secret
        return out

    def _account(self, name: str) -> Account:
        if name == "spot":
            return self.spot
        if name == "futures":
            return self.futures
        raise ValueError(f"account {name!r} is not valid; use 'spot' or 'futures'")

    # Market steps (server loop).
    def _advance(self, n: int) -> None:
        for _ in range(n):
            self.clock.step()
            self.spot.sim.on_bar()
            self.futures.sim.on_bar()
            for kind, data in (("spot", self.spot_data), ("futures", self.futures_data)):
                changes = data.on_bar()
                self._publish_market(kind, data, changes)

    def _publish_market(
        self, kind: str, data: MarketData, changes: Mapping[str, Mapping[str, Any]]
    ) -> None:
        for (conn_kind, stream), conns in list(self._streams.items()):
            if conn_kind != kind or not conns:
                continue
            m, channel = self._parse_stream(kind, stream)
            change = changes.get(m.id, {})
            events: list[dict[str, Any]] = []
            if channel in ("trade", "aggTrade"):
                events = [
                    data.trade_event(m, t, aggregate=channel == "aggTrade")
                    for t in change.get("trades", [])
                ]
            elif channel.startswith("depth"):
                if change.get("depth") is not None:
                    events = [change["depth"]]
            elif channel.startswith("kline_"):
                interval = channel.removeprefix("kline_")
                final = data.closed_kline_event(m, interval)
                events = ([final] if final is not None else []) + [data.kline_event(m, interval)]
            else:
                events = [self._snapshot_event(data, m, channel)]
            for event in events:
                for conn in list(conns):
                    conn.send({"stream": stream, "data": event} if conn.combined else event)

    def _snapshot_event(self, data: MarketData, m: Market, channel: str) -> dict[str, Any]:
        if channel == "ticker":
            return data.ticker_event(m)
        if channel == "miniTicker":
            return data.mini_ticker_event(m)
        if channel == "bookTicker":
            return data.book_ticker_event(m)
        if channel.startswith("kline_"):
            return data.kline_event(m, channel.removeprefix("kline_"))
        raise AssertionError(channel)

    # HTTP.
    def _routes(self) -> dict[tuple[str, str], tuple[str, str, Callable[[Params], Any]]]:
        spot, fut = self.spot, self.futures
        sd, fd = self.spot_data, self.futures_data
        r: dict[tuple[str, str], tuple[str, str, Callable[[Params], Any]]] = {}

        def add(method: str, path: str, security: str, fn: Callable[[Params], Any]) -> None:
            r[(method, path)] = (
                security,
                "spot" if path.startswith(("/api", "/sapi")) else "futures",
                fn,
            )

        def add_market_data(
            prefix: str, data: MarketData, depth_limits: tuple[int, int], max_klines: int
        ) -> None:
            # Both APIs serve the same public market data under their own prefix and limits.
            add("GET", f"{prefix}/ping", PUBLIC, lambda p: {})
            add("GET", f"{prefix}/time", PUBLIC, lambda p: {"serverTime": _wall_ms()})
            add("GET", f"{prefix}/depth", PUBLIC, lambda p: self._depth(data, p, *depth_limits))
            add("GET", f"{prefix}/trades", PUBLIC, lambda p: self._trades(data, p, 500, 1000))
            add(
                "GET", f"{prefix}/aggTrades", PUBLIC, lambda p: self._agg_trades(data, p, 500, 1000)
            )
            add("GET", f"{prefix}/klines", PUBLIC, lambda p: self._klines(data, p, max_klines))
            for name, one in (
                ("price", data.price_ticker),
                ("24hr", data.ticker_24h),
                ("bookTicker", data.book_ticker),
            ):
                tickers = functools.partial(self._tickers, data, one=one)
                add("GET", f"{prefix}/ticker/{name}", PUBLIC, tickers)

        # Spot, public.
        add_market_data("/api/v3", sd, (100, 5000), 1000)
        add("GET", "/api/v3/exchangeInfo", PUBLIC, lambda p: spot_exchange_info(_wall_ms()))
        add("GET", "/api/v3/uiKlines", PUBLIC, lambda p: self._klines(sd, p, 1000))
        # Spot, signed.
        add("GET", "/api/v3/account", SIGNED, spot.account)
        add("POST", "/api/v3/order", SIGNED, spot.new_order)
        add("POST", "/api/v3/order/test", SIGNED, lambda p: self._test_order(spot, p))
        add("GET", "/api/v3/order", SIGNED, spot.get_order)
        add("DELETE", "/api/v3/order", SIGNED, spot.cancel_order)
        add("POST", "/api/v3/orderList/oco", SIGNED, spot.order_list_oco)
        add("GET", "/api/v3/openOrders", SIGNED, spot.open_orders)
        add("DELETE", "/api/v3/openOrders", SIGNED, spot.cancel_open_orders)
        add("GET", "/api/v3/allOrders", SIGNED, spot.all_orders)
        add("GET", "/api/v3/myTrades", SIGNED, spot.my_trades)
        # What ccxt asks while loading markets with keys set: minimal truthful answers.
        add("GET", "/sapi/v1/capital/config/getall", SIGNED, lambda p: _coins())
        add("GET", "/sapi/v1/margin/allPairs", SIGNED, lambda p: [])  # no spot margin here
        add("GET", "/sapi/v1/margin/isolated/allPairs", SIGNED, lambda p: [])
        add("GET", "/dapi/v1/exchangeInfo", PUBLIC, lambda p: _coin_m_info())
        # USDⓈ-M, public.
        add_market_data("/fapi/v1", fd, (500, 1000), 1500)
        add("GET", "/fapi/v1/exchangeInfo", PUBLIC, lambda p: futures_exchange_info(_wall_ms()))
        add("GET", "/fapi/v2/ticker/price", PUBLIC, lambda p: self._tickers(fd, p, fd.price_ticker))
        add("GET", "/fapi/v1/premiumIndex", PUBLIC, lambda p: self._tickers(fd, p, self._premium))
        add("GET", "/fapi/v1/fundingRate", PUBLIC, self._funding_rate)
        # USDⓈ-M, signed.
        add("GET", "/fapi/v2/account", SIGNED, lambda p: fut.account(p, version=2))
        add("GET", "/fapi/v3/account", SIGNED, lambda p: fut.account(p, version=3))
        add("GET", "/fapi/v2/balance", SIGNED, fut.balance)
        add("GET", "/fapi/v3/balance", SIGNED, fut.balance)
        add("GET", "/fapi/v2/positionRisk", SIGNED, lambda p: fut.position_risk(p, version=2))
        add("GET", "/fapi/v3/positionRisk", SIGNED, lambda p: fut.position_risk(p, version=3))
        add("GET", "/fapi/v1/leverageBracket", SIGNED, fut.leverage_brackets)
        add("POST", "/fapi/v1/leverage", SIGNED, fut.set_leverage)
        add("POST", "/fapi/v1/marginType", SIGNED, fut.set_margin_type)
        add("GET", "/fapi/v1/positionSide/dual", SIGNED, lambda p: {"dualSidePosition": False})
        add("GET", "/fapi/v1/multiAssetsMargin", SIGNED, lambda p: {"multiAssetsMargin": False})
        add("POST", "/fapi/v1/order", SIGNED, fut.new_order)
        add("GET", "/fapi/v1/order", SIGNED, fut.get_order)
        add("DELETE", "/fapi/v1/order", SIGNED, fut.cancel_order)
        add("GET", "/fapi/v1/openOrder", SIGNED, fut.open_order)
        add("GET", "/fapi/v1/openOrders", SIGNED, fut.open_orders)
        add("DELETE", "/fapi/v1/allOpenOrders", SIGNED, fut.cancel_all)
        add("GET", "/fapi/v1/allOrders", SIGNED, fut.all_orders)
        add("GET", "/fapi/v1/userTrades", SIGNED, fut.user_trades)
        add("POST", "/fapi/v1/algoOrder", SIGNED, fut.new_algo_order)
        add("GET", "/fapi/v1/algoOrder", SIGNED, fut.get_algo_order)
        add("DELETE", "/fapi/v1/algoOrder", SIGNED, fut.cancel_algo_order)
        add("GET", "/fapi/v1/openAlgoOrders", SIGNED, fut.open_algo_orders)
        add("DELETE", "/fapi/v1/algoOpenOrders", SIGNED, fut.cancel_all_algo)
        add("GET", "/fapi/v1/allAlgoOrders", SIGNED, fut.all_algo_orders)
        # USDⓈ-M user data stream.
        add("POST", "/fapi/v1/listenKey", USER_STREAM, lambda p: self._listen_key(create=True))
        add("PUT", "/fapi/v1/listenKey", USER_STREAM, lambda p: self._listen_key(create=False))
        add("DELETE", "/fapi/v1/listenKey", USER_STREAM, lambda p: self._drop_listen_key())
        return r

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, path)
        route = self._route_table.get((request.method, path))
        if route is None:
            log.warning("loopback: no route for %s %s", request.method, path)
            return web.Response(status=404, text="Not Found")
        security, api, fn = route
        started = time.perf_counter()
        latency = self.faults.latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)
        fault = self.faults.take_request_fault(path, request.method)
        if fault is not None:
            log.debug("loopback: %s %s -> injected %s", request.method, path, fault.status)
            return _fault_response(fault)
        weight = self._use_weight(api)
        try:
            params = await self._params(request, security)
            body = fn(params)
        except BinanceError as exc:
            log.debug("loopback: %s %s -> %s %s", request.method, path, exc.status, exc.code)
            self._record(request.method, path, exc.status, exc.body())
            return web.Response(
                status=exc.status,
                text=_json(exc.body()),
                content_type="application/json",
                headers={**exc.headers, "X-MBX-USED-WEIGHT-1M": str(weight)},
            )
        except Exception:
            # The request's parameters are never logged: they hold the signature.
            log.exception("loopback: %s %s failed inside the server", request.method, path)
            return web.Response(
                status=500,
                text=_json(
                    {
                        "code": -1000,
                        "msg": "An unknown error occurred while processing the request.",
                    }
                ),
                content_type="application/json",
            )
        if request.method == "POST" and path.endswith("/order"):
            drop = self.faults.take_drop()
            if drop is not None:
                log.debug(
                    "loopback: %s %s executed, reply dropped (%s)", request.method, path, drop
                )
                if drop == "500":
                    return web.Response(status=500)
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)
        self._record(request.method, path, 200, body)
        log.debug(
            "loopback: %s %s -> 200 in %.1f ms",
            request.method,
            path,
            (time.perf_counter() - started) * 1000,
        )
        return web.Response(
            text=_json(body),
            content_type="application/json",
            headers={"X-MBX-USED-WEIGHT-1M": str(weight)},
        )

    def _record(self, method: str, path: str, status: int, body: Any) -> None:
        if self._sink is not None:
            self._sink.append(Payload("rest", f"{method} {path}", status, json.loads(_json(body))))

    def _use_weight(self, api: str) -> int:
        # Every request counts 1 (Binance weighs endpoints 1 to 50); enough for a client that
        # reads X-MBX-USED-WEIGHT-1M to see usage move within the minute.
        minute = int(time.time() // 60)
        last_minute, used = self._weight.get(api, (minute, 0))
        used = used + 1 if last_minute == minute else 1
        self._weight[api] = (minute, used)
        return used

    async def _params(self, request: web.Request, security: str) -> dict[str, str]:
        query = request.rel_url.raw_query_string
        body = ""
        if request.can_read_body:
            body = await request.text()
        params: dict[str, str] = dict(parse_qsl(body, keep_blank_values=True))
        params.update(parse_qsl(query, keep_blank_values=True))  # the query string wins
        if security in (USER_STREAM, SIGNED):
            self.credentials.check_key(request.headers.get("X-MBX-APIKEY"))
        if security == SIGNED:
            payload, signature = rest_signature_payload(query, body)
            if not signature:
                raise mandatory("signature")
            check_timestamp(params, _wall_ms())
            self.credentials.check_signature(payload, signature)
        params.pop("signature", None)
        return params

    # Public REST helpers.
    def _depth(self, data: MarketData, p: Params, default: int, maximum: int) -> Any:
        m = data.market(p.get("symbol"))
        limit = int(p.get("limit") or default)
        if data.futures and limit not in _FUTURES_DEPTH_LIMITS:
            raise BinanceError(-4021, "Invalid depth limit.")
        return data.depth(m, max(1, min(limit, maximum)))

    def _trades(self, data: MarketData, p: Params, default: int, maximum: int) -> Any:
        m = data.market(p.get("symbol"))
        return data.recent_trades(m, max(1, min(int(p.get("limit") or default), maximum)))

    def _agg_trades(self, data: MarketData, p: Params, default: int, maximum: int) -> Any:
        m = data.market(p.get("symbol"))
        return data.agg_trades(m, max(1, min(int(p.get("limit") or default), maximum)))

    def _klines(self, data: MarketData, p: Params, maximum: int) -> Any:
        m = data.market(p.get("symbol"))
        interval = p.get("interval")
        if not interval:
            raise mandatory("interval")
        start = p.get("startTime")
        end = p.get("endTime")
        if start and end and int(start) > int(end):
            raise BinanceError(-1023, "Start time is greater than end time.")
        limit = max(1, min(int(p.get("limit") or 500), maximum))
        return data.klines(
            m, interval, int(start) if start else None, int(end) if end else None, limit
        )

    def _tickers(self, data: MarketData, p: Params, one: Callable[[Market], dict[str, Any]]) -> Any:
        if p.get("symbol"):
            return one(data.market(p.get("symbol")))
        if p.get("symbols"):
            try:
                ids = json.loads(p["symbols"])
            except ValueError:
                raise BinanceError(
                    -1100,
                    "Illegal characters found in parameter 'symbols'; legal range is "
                    '\'^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$\'.',
                ) from None
            return [one(data.market(i)) for i in ids]
        return [one(m) for m in data.markets.values()]

    def _funding_rate(self, p: Params) -> Any:
        if not p.get("symbol"):
            # Binance answers every symbol's history; one is enough for what ccxt reads.
            raise mandatory("symbol")
        return funding_history(self.clock, self.futures_data.market(p.get("symbol")), p)

    def _premium(self, m: Market) -> dict[str, Any]:
        price = self.clock.last_price(m.symbol)
        now = self.clock.now_ms()
        return {
            "symbol": m.id,
            "markPrice": m.fill_price(price),
            "indexPrice": m.fill_price(price),
            "estimatedSettlePrice": m.fill_price(price),
            "lastFundingRate": "0.00000000",
            "interestRate": "0.00000000",
            "nextFundingTime": now - now % 28_800_000 + 28_800_000,
            "time": now,
        }

    def _test_order(self, account: SpotAccount, p: Params) -> dict[str, Any]:
        account.market(p)
        return {}

    def _listen_key(self, *, create: bool) -> dict[str, Any]:
        key = self.futures.listen_key
        if key is None:
            if not create:
                raise BinanceError(-1125, "This listenKey does not exist.")
            key = self.futures.listen_key = Credentials.generate().api_key
        return {"listenKey": key}

    def _drop_listen_key(self) -> dict[str, Any]:
        self.futures.listen_key = None
        for conn in list(self._futures_user.conns):
            conn.out.put_nowait(None)
        return {}

    # WebSockets.
    async def _websocket(self, request: web.Request, path: str) -> web.StreamResponse:
        route = _ws_route(path)
        if route is None:
            log.warning("loopback: no WebSocket route for %s", path)
            return web.Response(status=404, text="Not Found")
        kind, mode, name = route
        listen_key = request.query.get("listenKey") or name
        streams = request.query.get("streams", "").split("/") if mode == "stream" else []
        key = self.futures.listen_key
        user_data = kind == "futures" and key is not None and key in (listen_key, *streams)
        if user_data and (delay := self.faults.take_subscribe_delay_s()):
            await asyncio.sleep(delay)  # the listenKey connection is the subscription
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws, kind, combined=mode == "stream", path=path, sink=self._sink)
        self._conns.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        try:
            if mode == "api":
                await self._serve_ws_api(conn)
                return ws
            if kind == "futures" and listen_key and listen_key == self.futures.listen_key:
                conn.listen_key = listen_key
                self._futures_user.conns.add(conn)
            elif name and "@" in name:
                self._subscribe(conn, [name])
            if mode == "stream":
                for stream in streams:
                    if stream == self.futures.listen_key and kind == "futures":
                        conn.listen_key = stream
                        self._futures_user.conns.add(conn)
                    elif stream:
                        self._subscribe(conn, [stream])
            await self._serve_market(conn)
            return ws
        finally:
            self._drop_conn(conn)
            conn.out.put_nowait(None)
            await writer

    def _drop_conn(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        self._spot_user.conns.discard(conn)
        self._futures_user.conns.discard(conn)
        for stream in list(conn.streams):
            subscribers = self._streams.get((conn.kind, stream))
            if subscribers is not None:
                subscribers.discard(conn)

    def _parse_stream(self, kind: str, stream: str) -> tuple[Market, str]:
        symbol, _, channel = stream.partition("@")
        markets = SPOT_MARKETS if kind == "spot" else FUTURES_MARKETS
        m = markets.get(symbol.upper())
        valid = {"trade", "aggTrade", "ticker", "miniTicker", "bookTicker", "depth"}
        depth_rates = ("100ms", "1000ms") if kind == "spot" else ("0ms", "100ms", "250ms", "500ms")
        base, _, rate = channel.partition("@")
        ok = (
            m is not None
            and symbol == symbol.lower()
            and (
                (channel in valid)
                or (base == "depth" and rate in depth_rates)
                or (channel.startswith("kline_") and channel.removeprefix("kline_") in _INTERVALS)
            )
        )
        if not ok or m is None:
            raise BinanceError(2, f"Invalid request: unknown stream '{stream}'")
        return m, channel

    def _subscribe(self, conn: _Conn, streams: list[str]) -> None:
        data = self.spot_data if conn.kind == "spot" else self.futures_data
        parsed = [(s, *self._parse_stream(conn.kind, s)) for s in streams]
        for stream, m, channel in parsed:
            conn.streams.add(stream)
            self._streams.setdefault((conn.kind, stream), set()).add(conn)
            if channel in ("ticker", "miniTicker", "bookTicker") or channel.startswith("kline_"):
                # Binance pushes these every second or two; the first one goes out at once.
                event = self._snapshot_event(data, m, channel)
                conn.send({"stream": stream, "data": event} if conn.combined else event)

    async def _serve_market(self, conn: _Conn) -> None:
        async for msg in conn.ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                request = json.loads(msg.data)
            except ValueError:
                conn.send({"error": {"code": 3, "msg": "Invalid JSON: expected a JSON object"}})
                continue
            if not isinstance(request, dict):
                conn.send({"error": {"code": 3, "msg": "Invalid JSON: expected a JSON object"}})
                continue
            rid = request.get("id")
            method = request.get("method")
            streams = request.get("params") or []
            try:
                if method == "SUBSCRIBE":
                    # The reply first, then any snapshot events of the new streams.
                    for stream in streams:
                        self._parse_stream(conn.kind, stream)
                    conn.send({"result": None, "id": rid})
                    self._subscribe(conn, list(streams))
                elif method == "UNSUBSCRIBE":
                    for stream in streams:
                        conn.streams.discard(stream)
                        self._streams.get((conn.kind, stream), set()).discard(conn)
                    conn.send({"result": None, "id": rid})
                elif method == "LIST_SUBSCRIPTIONS":
                    conn.send({"result": sorted(conn.streams), "id": rid})
                else:
                    raise BinanceError(2, f"Invalid request: unknown method '{method}'")
            except BinanceError as exc:
                conn.send({"error": {"code": exc.code, "msg": exc.msg}, "id": rid})

    async def _serve_ws_api(self, conn: _Conn) -> None:
        async for msg in conn.ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                request = json.loads(msg.data)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except ValueError:
                conn.send(
                    {
                        "id": None,
                        "status": 400,
                        "error": {"code": -1100, "msg": "Invalid JSON request."},
                    }
                )
                continue
            rid = request.get("id")
            latency = self.faults.latency_ms
            if latency:
                await asyncio.sleep(latency / 1000)
            if str(request.get("method")).startswith("userDataStream.subscribe") and (
                delay := self.faults.take_subscribe_delay_s()
            ):
                await asyncio.sleep(delay)
            try:
                result = self._ws_api_call(
                    conn, str(request.get("method")), request.get("params") or {}
                )
                conn.send({"id": rid, "status": 200, "result": result})
            except BinanceError as exc:
                log.debug("loopback: ws-api %s -> %s", request.get("method"), exc.code)
                conn.send({"id": rid, "status": exc.status, "error": exc.body()})

    def _ws_api_call(self, conn: _Conn, method: str, params: Mapping[str, Any]) -> Any:
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": _wall_ms()}
        if method == "userDataStream.subscribe.signature":
            self.credentials.check_key(params.get("apiKey"))
            check_timestamp({k: str(v) for k, v in params.items()}, _wall_ms())
            self.credentials.check_signature(_ws_payload(params), params.get("signature"))
            if conn.subscription_id is None:
                conn.subscription_id = self._subscription_ids
                self._subscription_ids += 1
            self._spot_user.conns.add(conn)
            return {"subscriptionId": conn.subscription_id}
        if method == "userDataStream.unsubscribe":
            self._spot_user.conns.discard(conn)
            conn.subscription_id = None
            return {}
        raise BinanceError(
            -1100 if method else -1102,
            f"Unknown method '{method}'; the loopback WebSocket API serves ping, time, "
            "userDataStream.subscribe.signature and userDataStream.unsubscribe.",
        )

    def _wrap_spot_event(self, conn: _Conn, event: dict[str, Any]) -> Any:
        return {"subscriptionId": conn.subscription_id, "event": event}

    def _wrap_futures_event(self, conn: _Conn, event: dict[str, Any]) -> Any:
        return {"stream": conn.listen_key, "data": event} if conn.combined else event


_INTERVALS: Final = (
    "1s",
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
    "1w",
)


def _ws_route(path: str) -> tuple[str, str, str | None] | None:
    """``(kind, mode, name)`` for a WebSocket path: mode is "raw", "stream" or "api"."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["ws-api", "v3"] and len(parts) == 2:
        return "spot", "api", None
    kind = "spot"
    if parts and parts[0] in ("stream", "fstream") and len(parts) > 1:
        kind = "futures" if parts[0] == "fstream" else "spot"
        parts = parts[1:]
    if kind == "futures" and parts and parts[0] in ("public", "market", "private"):
        parts = parts[1:]
    if not parts or parts[0] not in ("ws", "stream"):
        return None
    mode = "raw" if parts[0] == "ws" else "stream"
    name = parts[1] if len(parts) > 1 else None
    return kind, mode, name


def _fault_response(fault: RequestFault) -> web.Response:
    headers = {}
    if fault.retry_after_s is not None:
        headers["Retry-After"] = str(fault.retry_after_s)
    if fault.status == 429:
        body = {
            "code": -1003,
            "msg": "Too many requests; current limit of IP(127.0.0.1) is "
            "6000 requests per minute. Please use the websocket for live updates to avoid "
            "polling the API.",
        }
    elif fault.status == 418:
        until = _wall_ms() + 1000 * (fault.retry_after_s or 0)
        body = {
            "code": -1003,
            "msg": f"Way too many requests; IP(127.0.0.1) banned until "
            f"{until}. Please use the websocket for live updates to avoid bans.",
        }
    else:
        # A gateway-level failure: plain text, no Binance error code, so a client cannot tell
        # whether the request ran (ccxt raises ExchangeNotAvailable, a NetworkError).
        reasons = {
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
        }
        return web.Response(status=fault.status, text=reasons[fault.status], headers=headers)
    return web.Response(
        status=fault.status, text=_json(body), content_type="application/json", headers=headers
    )


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _coins() -> list[dict[str, Any]]:
    """``/sapi/v1/capital/config/getall``: every asset of the spot markets, one network each."""
    assets = sorted({a for s in SPOT_SYMBOLS.values() for a in (s.base, s.quote)})
    return [
        {
            "coin": a,
            "depositAllEnable": True,
            "withdrawAllEnable": True,
            "name": a,
            "free": "0",
            "locked": "0",
            "freeze": "0",
            "withdrawing": "0",
            "ipoing": "0",
            "ipoable": "0",
            "storage": "0",
            "isLegalMoney": False,
            "trading": True,
            "networkList": [
                {
                    "network": a,
                    "coin": a,
                    "withdrawIntegerMultiple": "0.00000001",
                    "isDefault": True,
                    "depositEnable": True,
                    "withdrawEnable": True,
                    "depositDesc": "",
                    "withdrawDesc": "",
                    "specialTips": "",
                    "name": a,
                    "resetAddressStatus": False,
                    "addressRegex": "",
                    "memoRegex": "",
                    "withdrawFee": "0",
                    "withdrawMin": "0",
                    "withdrawMax": "9999999999",
                    "minConfirm": 1,
                    "unLockConfirm": 0,
                    "sameAddress": False,
                    "depositDust": "0.00000001",
                }
            ],
        }
        for a in assets
    ]


def _coin_m_info() -> dict[str, Any]:
    # COIN-M futures are not offered: an exchangeInfo without symbols.
    body = futures_exchange_info(_wall_ms())
    body["symbols"] = []
    body.pop("futuresType", None)
    return body
