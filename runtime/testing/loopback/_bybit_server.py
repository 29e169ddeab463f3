"""The loopback exchange's Bybit v5 dialect: HTTP and WebSocket on 127.0.0.1, in a thread.

Same machinery as the Binance dialect (:mod:`._server`): an ``aiohttp`` application on its own
asyncio loop in a daemon thread, the :class:`~._feed.BarClock` market feed, the shared
:class:`~._market.MarketData` books, tape and klines, the simulated exchange's matching engine
and the :class:`~._faults.Faults` knobs. What differs is the venue: one unified account
(:mod:`._bybit`), Bybit's v5 REST under ``/v5/...`` with ``X-BAPI-*`` HMAC headers and
``retCode``/``retMsg`` errors, and Bybit's WebSocket streams:

- ``/v5/public/spot`` and ``/v5/public/linear``: ``tickers.<symbol>``,
  ``kline.<interval>.<symbol>``, ``orderbook.<depth>.<symbol>`` (a snapshot on every
  change) and ``publicTrade.<symbol>``;
- ``/v5/private``: the ``auth`` handshake (``GET/realtime`` + expires, HMAC-SHA256), then
  ``order``, ``execution``, ``wallet`` and ``position``.

Faults in Bybit's words: a 429 fault is ``retCode`` 10006 "Too many visits!" with
``X-Bapi-Limit-Reset-Timestamp``; a request before that time is refused with HTTP 403 (Bybit's
IP limit); 5xx, latency, a lost order reply (``/v5/order/create``) and dropped websockets are as
in the Binance dialect. Logs carry method, path, status and ``retCode`` only, never a key or
signature.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from runtime.exchanges._bybit_info import SPOT_INSTRUMENTS, instruments_info
from runtime.exchanges.sim._exchange import FillModel
from runtime.testing.loopback._bybit import INTERVALS, BybitAccount, BybitError, ok
from runtime.testing.loopback._faults import RequestFault
from runtime.testing.loopback._feed import BarClock
from runtime.testing.loopback._market import MarketData
from runtime.testing.loopback._server import Payload, _EngineFeed
from runtime.testing.loopback._serving import ServedExchange
from runtime.testing.loopback._wire import Market

__all__ = ["BybitLoopbackExchange"]

log = logging.getLogger("vigil.loopback.bybit")

T = TypeVar("T")
PUBLIC, SIGNED = "public", "signed"
_DEFAULT_BALANCES: Final = {"USDT": 100_000.0}
_RECV_WINDOW_DEFAULT_MS: Final = 5_000
_EVENTS_KEPT: Final = 10_000
_DEPTHS: Final = {"spot": (1, 50, 200), "linear": (1, 50, 200, 500)}


def _json(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(eq=False)
class _Conn:
    """One WebSocket connection: public (spot or linear) or private."""

    ws: web.WebSocketResponse
    kind: str  # "spot", "linear" or "private"
    path: str
    sink: list[Payload] | None = None
    out: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    topics: set[str] = field(default_factory=set)
    authed: bool = False
    conn_id: str = field(default_factory=lambda: uuid.uuid4().hex[:20])

    def send(self, body: Any) -> None:
        text = _json(body)
        if self.sink is not None:
            self.sink.append(Payload("ws", self.path, 0, json.loads(text)))
        self.out.put_nowait(text)


class BybitLoopbackExchange(ServedExchange):
    """A local Bybit (v5, unified account: spot and linear USDT perpetuals) that real
    ``ccxt.bybit`` and ``ccxt.pro.bybit`` talk to. See the module doc.

    Keyword-only configuration, as :class:`~._server.LoopbackExchange`: ``api_key``/``secret``
    (generated when absent), ``balances`` (default 100,000 USDT in the unified account),
    ``timeframe``, ``seed``, ``history``, ``data``, ``bar_interval_ms``, ``fill_model``,
    ``host``, ``port``, ``record``. The control methods (``advance``, ``set_price``,
    ``deposit``, ``faults`` ...) match the Binance dialect's; ``account`` arguments accept
    ``"unified"`` (and ``"spot"``/``"futures"``, which are the same account here).
    """

    venue = "bybit"

    venue_name = "Bybit"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        secret: str | None = None,
        balances: Mapping[str, float] | None = None,
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
        self.clock = BarClock(
            [i.symbol for i in SPOT_INSTRUMENTS.values()],
            timeframe=timeframe,
            seed=seed,
            history=history,
            data=data,
        )
        self.account = BybitAccount(self.clock, dict(balances or _DEFAULT_BALANCES))
        self.account.sim.feed = _EngineFeed(self.clock)
        if fill_model is not None:
            self.account.sim.fill_model = fill_model
        self.account.emit = self._publish_private
        self._conns: set[_Conn] = set()
        self._private: set[_Conn] = set()
        self._held: list[tuple[str, list[dict[str, Any]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._sent: list[dict[str, Any]] = []
        self._sink: list[Payload] | None = [] if record else None
        self._routes = self._route_table()

    # Lifecycle (as the Binance dialect's).

    # Control (any thread).

    def set_price(self, symbol: str, price: float, *, hold: bool = True) -> None:
        """Move ``symbol``'s market (spot pair and perpetual alike) to ``price`` now."""

        def apply() -> None:
            self.clock.set_price(symbol, price, hold=hold)
            self._advance(1)

        self._on_loop(apply)

    def release(self, symbol: str) -> None:
        self._on_loop(lambda: self.clock.release(symbol))

    def price(self, symbol: str) -> float:
        return self._on_loop(lambda: self.clock.last_price(symbol))

    def deposit(self, asset: str, amount: float, *, account: str = "unified") -> None:
        """Credit ``amount`` of ``asset`` to the unified account (negative debits)."""
        self._check_account(account)
        self._on_loop(lambda: self.account.deposit(asset, amount))

    def call(self, fn: Callable[[], T]) -> T:
        return self._on_loop(fn)

    def user_events(self, account: str = "unified") -> list[dict[str, Any]]:
        """The private-stream messages emitted (the last 10,000; copies, oldest first)."""
        self._check_account(account)
        return self._on_loop(lambda: [json.loads(_json(e)) for e in self._sent])

    def endpoints(self) -> list[str]:
        return sorted(f"{method} {path}" for method, path in self._routes)

    def payloads(self) -> list[Payload]:
        if self._sink is None:
            raise RuntimeError("payloads are kept only with record=True")
        sink = self._sink
        return self._on_loop(lambda: list(sink))

    def user_data_listeners(self, account: str = "unified") -> int:
        """How many authenticated private connections receive the account's topics."""
        self._check_account(account)
        return self._on_loop(lambda: len([c for c in self._private if c.topics]))

    def stream_listeners(self, stream: str, *, market: str = "spot") -> int:
        """How many connections subscribe to a public topic (``"publicTrade.BTCUSDT"``)."""
        kind = {"spot": "spot", "futures": "linear", "linear": "linear"}.get(market)
        if kind is None:
            raise ValueError(f"market {market!r} is not valid; use 'spot' or 'linear'")
        return self._on_loop(
            lambda: len([c for c in self._conns if c.kind == kind and stream in c.topics])
        )

    def env(self) -> dict[str, str]:
        """The environment a vigil strategy needs to trade here (``VIGIL_BYBIT_*``)."""
        if self.base_url is None:
            raise RuntimeError("start() the loopback exchange first; the URL is not known yet")
        return {
            "VIGIL_BYBIT_URL": self.base_url,
            "VIGIL_BYBIT_API_KEY": self.credentials.api_key,
            "VIGIL_BYBIT_SECRET": self.credentials.secret,
        }

    @staticmethod
    def _check_account(account: str) -> None:
        if account not in ("unified", "spot", "futures"):
            raise ValueError(f"account {account!r} is not valid; Bybit has one: 'unified'")

    # Market steps (server loop).
    def _advance(self, n: int) -> None:
        for _ in range(n):
            self.clock.step()
            self.account.sim.on_bar()
            for kind, data in (
                ("spot", self.account.spot_data),
                ("linear", self.account.linear_data),
            ):
                changes = data.on_bar()
                self._publish_market(kind, data, changes)

    def _publish_market(
        self, kind: str, data: MarketData, changes: Mapping[str, Mapping[str, Any]]
    ) -> None:
        now = self.clock.now_ms()
        for conn in list(self._conns):
            if conn.kind != kind:
                continue
            for topic in sorted(conn.topics):
                channel, m, arg = self._parse_topic(kind, topic)
                change = changes.get(m.id, {})
                if channel == "publicTrade":
                    trades = change.get("trades", [])
                    if trades:
                        conn.send(self._trade_message(topic, m, trades, now))
                elif channel == "orderbook":
                    if change.get("depth") is not None:
                        conn.send(self._book_message(kind, topic, m, int(arg), now))
                elif channel == "kline":
                    conn.send(self._kline_message(kind, topic, m, arg, now, closing=True))
                    conn.send(self._kline_message(kind, topic, m, arg, now, closing=False))
                else:
                    conn.send(self._ticker_message(kind, topic, m, now))

    def _parse_topic(self, kind: str, topic: str) -> tuple[str, Market, str]:
        parts = topic.split(".")
        data = self.account.data(kind)
        channel = parts[0]
        arg = ""
        if channel in ("tickers", "publicTrade") and len(parts) == 2:
            market_id = parts[1]
        elif channel == "orderbook" and len(parts) == 3 and parts[1].isdigit():
            arg, market_id = parts[1], parts[2]
            if int(arg) not in _DEPTHS[kind]:
                raise BybitError(10001, f"Invalid topic: {topic} (depths {_DEPTHS[kind]})")
        elif channel == "kline" and len(parts) == 3 and parts[1] in INTERVALS:
            arg, market_id = parts[1], parts[2]
        else:
            raise BybitError(10001, f"Invalid topic: {topic}")
        m = data.markets.get(market_id)
        if m is None:
            raise BybitError(10001, f"Invalid symbol :[{topic}]")
        return channel, m, arg

    def _ticker_message(self, kind: str, topic: str, m: Market, now: int) -> dict[str, Any]:
        row = self.account.ticker_row(kind, m)
        for key in ("bid1Price", "bid1Size", "ask1Price", "ask1Size") if kind == "spot" else ():
            row.pop(key, None)  # the spot ticker stream carries no book
        return {"topic": topic, "ts": now, "type": "snapshot", "cs": now, "data": row}

    def _book_message(
        self, kind: str, topic: str, m: Market, depth: int, now: int
    ) -> dict[str, Any]:
        book = self.account.data(kind).depth(m, depth)
        return {
            "topic": topic,
            "type": "snapshot",
            "ts": now,
            "data": {
                "s": m.id,
                "b": book["bids"],
                "a": book["asks"],
                "u": book["lastUpdateId"],
                "seq": book["lastUpdateId"],
            },
            "cts": now,
        }

    def _trade_message(
        self, topic: str, m: Market, trades: list[dict[str, Any]], now: int
    ) -> dict[str, Any]:
        rows = [
            {
                "T": t["time"],
                "s": m.id,
                "S": "Sell" if t["isBuyerMaker"] else "Buy",
                "v": t["qty"],
                "p": t["price"],
                "L": "ZeroPlusTick",
                "i": str(t["id"]),
                "BT": False,
                "RPI": False,
            }
            for t in trades
        ]
        return {"topic": topic, "type": "snapshot", "ts": now, "data": rows}

    def _kline_message(
        self, kind: str, topic: str, m: Market, interval: str, now: int, *, closing: bool
    ) -> dict[str, Any]:
        data = self.account.data(kind)
        tf = data.clock.tf_ms if INTERVALS[interval] == data.clock.timeframe else None
        timeframe = INTERVALS[interval]
        rows = data.klines(m, timeframe, None, None, 2)
        row = rows[0] if closing and len(rows) > 1 else rows[-1]
        start = int(row[0])
        step = int(row[6]) - start + 1 if tf is None else tf
        return {
            "topic": topic,
            "data": [
                {
                    "start": start,
                    "end": start + step - 1,
                    "interval": interval,
                    "open": row[1],
                    "close": row[4],
                    "high": row[2],
                    "low": row[3],
                    "volume": row[5],
                    "turnover": row[7],
                    "confirm": closing and len(rows) > 1,
                    "timestamp": now,
                }
            ],
            "ts": now,
            "type": "snapshot",
        }

    # The private stream (server loop).
    def _publish_private(self, topic: str, rows: list[dict[str, Any]]) -> None:
        message = {
            "id": f"{uuid.uuid4().hex[:16]}",
            "topic": topic,
            "creationTime": self.clock.now_ms(),
            "data": rows,
        }
        self._sent.append(message)
        del self._sent[:-_EVENTS_KEPT]
        if self._held or self.faults.user_data_pause_s() > 0:
            self._held.append((topic, [message]))
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.get_running_loop().create_task(self._flush())
            return
        self._deliver(topic, message)

    def _deliver(self, topic: str, message: dict[str, Any]) -> None:
        for conn in list(self._private):
            if topic in conn.topics:
                conn.send(message)

    async def _flush(self) -> None:
        await self.faults.user_data_resumed()
        held, self._held = self._held, []
        for topic, messages in held:
            for message in messages:
                self._deliver(topic, message)

    # HTTP.
    def _route_table(self) -> dict[tuple[str, str], tuple[str, Callable[[Mapping[str, Any]], Any]]]:
        a = self.account
        r: dict[tuple[str, str], tuple[str, Callable[[Mapping[str, Any]], Any]]] = {}

        def add(
            method: str, path: str, security: str, fn: Callable[[Mapping[str, Any]], Any]
        ) -> None:
            r[(method, path)] = (security, fn)

        add("GET", "/v5/market/time", PUBLIC, lambda p: self._time())
        add("GET", "/v5/market/instruments-info", PUBLIC, self._instruments)
        add("GET", "/v5/market/kline", PUBLIC, a.kline)
        add("GET", "/v5/market/orderbook", PUBLIC, a.orderbook)
        add("GET", "/v5/market/tickers", PUBLIC, a.tickers)
        add("GET", "/v5/market/recent-trade", PUBLIC, a.recent_trades)
        add("GET", "/v5/user/query-api", SIGNED, lambda p: self._api_key_info())
        add("GET", "/v5/account/info", SIGNED, lambda p: self._account_info())
        add("GET", "/v5/asset/coin/query-info", SIGNED, lambda p: self._coins())
        add("GET", "/v5/account/wallet-balance", SIGNED, a.wallet)
        add("POST", "/v5/order/create", SIGNED, a.create_order)
        add("POST", "/v5/order/cancel", SIGNED, a.cancel_order)
        add("POST", "/v5/order/cancel-all", SIGNED, a.cancel_all)
        add("GET", "/v5/order/realtime", SIGNED, lambda p: a.orders(p, history=False))
        add("GET", "/v5/order/history", SIGNED, lambda p: a.orders(p, history=True))
        add("GET", "/v5/execution/list", SIGNED, a.executions)
        add("GET", "/v5/position/list", SIGNED, a.positions)
        add("POST", "/v5/position/set-leverage", SIGNED, a.set_leverage)
        add("POST", "/v5/account/set-margin-mode", SIGNED, self._set_margin_mode)
        return r

    def _time(self) -> dict[str, Any]:
        now_ns = time.time_ns()
        return {"timeSecond": str(now_ns // 1_000_000_000), "timeNano": str(now_ns)}

    def _instruments(self, p: Mapping[str, Any]) -> dict[str, Any]:
        if p.get("status") == "PreLaunch":
            return {"category": p.get("category"), "list": [], "nextPageCursor": ""}
        body = instruments_info(str(p.get("category") or ""), _wall_ms())
        result: dict[str, Any] = body["result"]
        return result

    def _api_key_info(self) -> dict[str, Any]:
        # What ccxt reads to tell a unified account (uta=1) from a classic one.
        return {
            "id": "1",
            "note": "vigil loopback",
            "apiKey": self.credentials.api_key[:4] + "...",
            "readOnly": 0,
            "secret": "",
            "permissions": {
                "ContractTrade": ["Order", "Position"],
                "Spot": ["SpotTrade"],
                "Wallet": ["AccountTransfer"],
                "Options": [],
                "Derivatives": [],
                "CopyTrading": [],
                "BlockTrade": [],
                "Exchange": [],
                "NFT": [],
            },
            "ips": ["*"],
            "type": 1,
            "deadlineDay": 90,
            "expiredAt": "",
            "createdAt": "2025-01-01T00:00:00Z",
            "unified": 0,
            "uta": 1,
            "userID": 1,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": True,
        }

    def _set_margin_mode(self, p: Mapping[str, Any]) -> dict[str, Any]:
        mode = p.get("setMarginMode")
        if mode == "ISOLATED_MARGIN":
            return {"reasons": []}
        if mode in ("REGULAR_MARGIN", "PORTFOLIO_MARGIN"):
            raise BybitError(
                10001, f"params error: the loopback account keeps ISOLATED_MARGIN only, not {mode}"
            )
        raise BybitError(10001, "params error: setMarginMode invalid")

    def _account_info(self) -> dict[str, Any]:
        return {
            "marginMode": "ISOLATED_MARGIN",
            "updatedTime": "1735689600000",
            "unifiedMarginStatus": 5,
            "dcpStatus": "OFF",
            "timeWindow": 10,
            "smpGroup": 0,
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
        }

    def _coins(self) -> dict[str, Any]:
        coins = sorted({c for i in SPOT_INSTRUMENTS.values() for c in (i.base, i.quote)})
        return {
            "rows": [
                {
                    "name": c,
                    "coin": c,
                    "remainAmount": "1000000",
                    "chains": [
                        {
                            "chainType": c,
                            "confirmation": "1",
                            "withdrawFee": "0",
                            "depositMin": "0",
                            "withdrawMin": "0",
                            "chain": c,
                            "chainDeposit": "1",
                            "chainWithdraw": "1",
                            "minAccuracy": "8",
                            "withdrawPercentageFee": "0",
                            "contractAddress": "",
                        }
                    ],
                }
                for c in coins
            ]
        }

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, path)
        route = self._routes.get((request.method, path))
        if route is None:
            log.warning("loopback: no route for %s %s", request.method, path)
            return web.Response(status=404, text="Not Found")
        security, fn = route
        latency = self.faults.latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)
        fault = self.faults.take_request_fault(path, request.method)
        if fault is not None:
            log.debug("loopback: %s %s -> injected %s", request.method, path, fault.status)
            return self._fault_response(fault)
        try:
            params = await self._params(request, security)
            result = fn(params)
        except BybitError as exc:
            log.debug("loopback: %s %s -> retCode %s", request.method, path, exc.code)
            body = exc.body(_wall_ms())
            self._record(request.method, path, exc.status, body)
            return web.Response(
                status=exc.status, text=_json(body), content_type="application/json"
            )
        except Exception:
            log.exception("loopback: %s %s failed inside the server", request.method, path)
            body = BybitError(10016, "Internal server error.").body(_wall_ms())
            return web.Response(status=200, text=_json(body), content_type="application/json")
        if request.method == "POST" and path == "/v5/order/create":
            drop = self.faults.take_drop()
            if drop is not None:
                log.debug(
                    "loopback: %s %s executed, reply dropped (%s)", request.method, path, drop
                )
                if drop == "close" and request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)
        body = ok(result, _wall_ms())
        self._record(request.method, path, 200, body)
        now_ms = _wall_ms()
        return web.Response(
            text=_json(body),
            content_type="application/json",
            headers={
                "X-Bapi-Limit": "20",
                "X-Bapi-Limit-Status": "19",
                "X-Bapi-Limit-Reset-Timestamp": str(now_ms + 1000),
            }
            if security == SIGNED
            else {},
        )

    def _fault_response(self, fault: RequestFault) -> web.Response:
        now = _wall_ms()
        if fault.status == 429:
            # Bybit's API rate limit: HTTP 200, retCode 10006, and when the window resets.
            reset = now + 1000 * (fault.retry_after_s or 0)
            body = BybitError(10006, "Too many visits!").body(now)
            return web.Response(
                status=200,
                text=_json(body),
                content_type="application/json",
                headers={
                    "X-Bapi-Limit": "20",
                    "X-Bapi-Limit-Status": "0",
                    "X-Bapi-Limit-Reset-Timestamp": str(reset),
                },
            )
        if fault.status == 418:
            # Sent again before the reset: Bybit's IP limit, HTTP 403.
            reset = now + 1000 * (fault.retry_after_s or 0)
            return web.Response(
                status=403,
                text="403 Forbidden: access too frequent",
                headers={"X-Bapi-Limit-Reset-Timestamp": str(reset)},
            )
        reasons = {
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
        }
        return web.Response(status=fault.status, text=reasons[fault.status])

    def _record(self, method: str, path: str, status: int, body: Any) -> None:
        if self._sink is not None:
            self._sink.append(Payload("rest", f"{method} {path}", status, json.loads(_json(body))))

    async def _params(self, request: web.Request, security: str) -> dict[str, Any]:
        query = request.rel_url.raw_query_string
        body = await request.text() if request.can_read_body else ""
        params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                raise BybitError(10001, "params error: the body is not JSON") from None
            if not isinstance(parsed, dict):
                raise BybitError(10001, "params error: the body is not a JSON object")
            params.update(parsed)
        if security == SIGNED:
            self._check_signature(request, query if request.method == "GET" else body)
        return params

    def _check_signature(self, request: web.Request, payload: str) -> None:
        """Bybit's v5 HMAC: ``timestamp + api_key + recv_window + (query | body)``."""
        headers = request.headers
        key = headers.get("X-BAPI-API-KEY")
        if not key or not hmac.compare_digest(key.encode(), self.credentials.api_key.encode()):
            raise BybitError(10003, "API key is invalid.")
        stamp = headers.get("X-BAPI-TIMESTAMP", "")
        window_text = headers.get("X-BAPI-RECV-WINDOW") or str(_RECV_WINDOW_DEFAULT_MS)
        if not stamp.isdigit() or not window_text.isdigit():
            raise BybitError(10001, "params error: X-BAPI-TIMESTAMP and X-BAPI-RECV-WINDOW")
        now = _wall_ms()
        window = int(window_text)
        if not (now - window <= int(stamp) < now + 1000):
            raise BybitError(
                10002,
                f"invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{stamp}],server_timestamp[{now}],recv_window[{window}]",
            )
        signature = headers.get("X-BAPI-SIGN", "")
        expected = self.credentials.sign(stamp + key + window_text + payload)
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            # Bybit echoes the string it signed; it holds no secret.
            raise BybitError(10004, "error sign! please check your signature")

    # WebSockets.
    async def _websocket(self, request: web.Request, path: str) -> web.StreamResponse:
        kinds = {"/v5/public/spot": "spot", "/v5/public/linear": "linear", "/v5/private": "private"}
        kind = kinds.get(path)
        if kind is None:
            log.warning("loopback: no WebSocket route for %s", path)
            return web.Response(status=404, text="Not Found")
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws, kind, path, sink=self._sink)
        self._conns.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    request_body = json.loads(msg.data)
                    if not isinstance(request_body, dict):
                        raise ValueError("not an object")
                except ValueError:
                    conn.send(
                        {"success": False, "ret_msg": "Invalid JSON", "conn_id": conn.conn_id}
                    )
                    continue
                if (
                    conn.kind == "private"
                    and request_body.get("op") == "subscribe"
                    and (delay := self.faults.take_subscribe_delay_s())
                ):
                    # Each topic's own delay, as ccxt subscribes them one call at a time.
                    asyncio.get_running_loop().call_later(
                        delay, self._ws_message, conn, request_body
                    )
                    continue
                self._ws_message(conn, request_body)
            return ws
        finally:
            self._conns.discard(conn)
            self._private.discard(conn)
            conn.out.put_nowait(None)
            await writer

    def _ws_message(self, conn: _Conn, body: dict[str, Any]) -> None:
        op = body.get("op")
        req_id = body.get("req_id")
        args = body.get("args") or []
        reply: dict[str, Any] = {"conn_id": conn.conn_id, "op": op}
        if req_id is not None:
            reply["req_id"] = req_id
        if op == "ping":
            if conn.kind == "private":
                conn.send({**reply, "op": "pong", "args": [str(_wall_ms())]})
            else:
                conn.send({**reply, "success": True, "ret_msg": "pong"})
            return
        if op == "auth" and conn.kind == "private":
            failure = self._check_ws_auth(args)
            conn.authed = failure is None
            if conn.authed:
                self._private.add(conn)
            conn.send({**reply, "success": conn.authed, "ret_msg": failure or ""})
            return
        if op in ("subscribe", "unsubscribe"):
            if conn.kind == "private" and not conn.authed:
                conn.send({**reply, "success": False, "ret_msg": "Request not authorized"})
                return
            try:
                topics = [str(t) for t in args]
                for topic in topics:
                    if conn.kind == "private":
                        if topic not in ("order", "execution", "wallet", "position"):
                            raise BybitError(10001, f"Invalid topic: {topic}")
                    else:
                        self._parse_topic(conn.kind, topic)
            except BybitError as exc:
                conn.send({**reply, "success": False, "ret_msg": exc.msg})
                return
            if op == "subscribe":
                conn.topics.update(topics)
            else:
                conn.topics.difference_update(topics)
            conn.send({**reply, "success": True, "ret_msg": "" if conn.kind == "private" else op})
            if op == "subscribe" and conn.kind != "private":
                now = self.clock.now_ms()
                for topic in topics:  # Bybit sends a snapshot of these at once
                    channel, m, arg = self._parse_topic(conn.kind, topic)
                    if channel == "tickers":
                        conn.send(self._ticker_message(conn.kind, topic, m, now))
                    elif channel == "orderbook":
                        conn.send(self._book_message(conn.kind, topic, m, int(arg), now))
                    elif channel == "kline":
                        conn.send(self._kline_message(conn.kind, topic, m, arg, now, closing=False))
            return
        conn.send({**reply, "success": False, "ret_msg": f"Invalid op: {op}"})

    def _check_ws_auth(self, args: list[Any]) -> str | None:
        """Why ``auth`` fails (None when it succeeds): [api_key, expires_ms, signature]."""
        if len(args) != 3:
            return "Params Error"
        key, expires, signature = (str(a) for a in args)
        if not hmac.compare_digest(key.encode(), self.credentials.api_key.encode()):
            return "Request not authorized"
        if not expires.isdigit() or int(expires) < _wall_ms():
            return "Params Error: expires is in the past"
        expected = self.credentials.sign("GET/realtime" + expires)
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            return "Request not authorized"
        return None
