"""`CcxtExchange`: the exchange interface over ccxt's asyncio client, for trio callers.

One :class:`CcxtExchange` is one exchange account: one ``ccxt.pro`` object (which also does all
of ``ccxt.async_support``'s REST), living on the bridge loop (:mod:`._bridge`), with one rate
budget (:mod:`._budget`) that every caller on the account shares, and errors mapped in one place
(:mod:`._errors`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import pickle
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, TypedDict, Unpack

import ccxt
import ccxt.async_support
import ccxt.pro
import msgspec
import trio

from runtime._errors import (
    AuthenticationError,
    ConfigError,
    ExchangeError,
    NetworkError,
    OrderNotFound,
)
from runtime.exchanges.ccxt._bridge import (
    AsyncioBridge,
    Stream,
    acquire_shared_bridge,
    release_shared_bridge,
)
from runtime.exchanges.ccxt._budget import RateBudget, RateLimit
from runtime.exchanges.ccxt._config import Settings, aim_client, resolve_settings
from runtime.exchanges.ccxt._errors import RETRY_AFTER_ATTR, Scrubber, map_ccxt_error, retry_after_s
from runtime.exchanges.ccxt._tail_filter import install_tail_filter
from runtime.exchanges.ccxt._venues import (
    BINANCE_HASHES,
    BYBIT_OPTIONS,
    BYBIT_TOPICS,
    binance_subscribed,
    bybit_cancel_order,
    bybit_create_order,
    bybit_fetch_order,
    bybit_fetch_positions,
    bybit_orders,
    bybit_set_leverage,
    bybit_subscribed,
    bybit_ws_balance,
    is_binance,
    is_bybit,
    track_bybit_acks,
)

__all__ = ["PRIVATE_METHODS", "STREAM_METHODS", "CcxtExchange"]

log = logging.getLogger("vigil.ccxt")
#: ccxt's request/response DEBUG lines, scrubbed, go to this logger.
WIRE_LOGGER: Final = "vigil.ccxt.wire"

Order = dict[str, Any]
Trade = dict[str, Any]

#: Unified methods that need credentials (checked before anything is sent).
PRIVATE_METHODS: Final = frozenset(
    {
        "create_order",
        "cancel_order",
        "cancel_all_orders",
        "fetch_order",
        "fetch_open_orders",
        "fetch_closed_orders",
        "fetch_my_trades",
        "fetch_balance",
        "fetch_positions",
        "set_leverage",
        "set_margin_mode",
        "private_post_orderlist_oco",
        "watch_orders",
        "watch_my_trades",
        "watch_balance",
        "watch_positions",
    }
)
#: The ccxt.pro methods :meth:`CcxtExchange.open_stream` accepts.
STREAM_METHODS: Final = frozenset(
    {
        "watch_orders",
        "watch_my_trades",
        "watch_balance",
        "watch_positions",
        "watch_ticker",
        "watch_ohlcv",
        "watch_order_book",
        "watch_trades",
    }
)
# ccxt options vigil sets unless the strategy sets them: the runtime reads every open order at
# start on purpose, which ccxt's Binance refuses without this.
# ccxt.pro keeps up to 1000 orders and trades per connection and scans them on every update
# (measured: call p50 11.6 ms after 1000 orders, 5.0 ms with 200). The stream buffer holds 64
# undelivered results, well below 200; gap fills recover anything evicted.
_DEFAULT_OPTIONS: Final = {
    "warnOnFetchOpenOrdersWithoutSymbol": False,
    "ordersLimit": 200,
    "tradesLimit": 200,
}
_DEFAULT_BUFFER: Final = 64
# Waits between attempts at loading markets when opening (then one last attempt): ~15 s in all.
LOAD_MARKETS_RETRIES_S: Final = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)


class _ScrubbingLogger:
    """What ccxt gets as its ``logger``: formats, scrubs, then logs to :data:`WIRE_LOGGER`.

    ccxt logs each request's URL (signature included) and headers (the API key) at DEBUG.
    """

    def __init__(self, scrub: Scrubber) -> None:
        self._logger = logging.getLogger(WIRE_LOGGER)
        self._scrub = scrub

    def isEnabledFor(self, level: int) -> bool:
        return self._logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: object, **_: object) -> None:
        if not self._logger.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except Exception:
            text = " ".join(map(str, (msg, *args)))
        self._logger.log(level, "%s", self._scrub(text))

    def debug(self, msg: object, *args: object, **kwargs: object) -> None:
        self.log(logging.DEBUG, msg, *args)

    def info(self, msg: object, *args: object, **kwargs: object) -> None:
        self.log(logging.INFO, msg, *args)

    def warning(self, msg: object, *args: object, **kwargs: object) -> None:
        self.log(logging.WARNING, msg, *args)

    def error(self, msg: object, *args: object, **kwargs: object) -> None:
        self.log(logging.ERROR, msg, *args)

    exception = error
    critical = error
    warn = warning


def _plain_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_tree(v) for v in value]
    return value


_COPY_ENCODER: Final = msgspec.msgpack.Encoder()
_COPY_DECODER: Final = msgspec.msgpack.Decoder()


def _plain(value: Any) -> Any:
    """A deep copy as plain dicts and lists (ccxt.pro updates what it returned in place).

    ccxt's results are parsed JSON under one container (a dict, or a list subclass of
    ccxt.pro's caches): a msgpack round trip through msgspec copies that in C, 2.2x faster
    than pickle (which was 2.4x faster than walking it in Python; ~60 us saved per order on
    the loop, measured), once the container itself is made plain. Anything msgpack cannot
    hold (an int beyond 64 bits, a foreign object) is copied by pickle, else walked."""
    if isinstance(value, dict):
        top: Any = dict(value)
    elif isinstance(value, list | tuple):
        top = list(value)
    else:
        return value
    try:
        return _COPY_DECODER.decode(_COPY_ENCODER.encode(top))
    except (TypeError, ValueError, OverflowError, msgspec.MsgspecError):
        pass
    try:
        return pickle.loads(pickle.dumps(top, pickle.HIGHEST_PROTOCOL))
    except Exception:
        return _plain_tree(value)


def _listen_keys(options: Any) -> list[str]:
    """Every ``listenKey`` string in a ccxt options tree (they change while running)."""
    found: list[str] = []
    stack = [options]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in list(node.items()):
                if key == "listenKey" and isinstance(value, str):
                    found.append(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    return found


def _build_client(
    settings: Settings, limit: RateLimit | None, scrubber: Scrubber
) -> tuple[Any, RateBudget]:
    """The account's ccxt object, with its budget installed. Runs on the bridge loop."""
    cls = getattr(ccxt.pro, settings.exchange_id, None) or getattr(
        ccxt.async_support, settings.exchange_id
    )
    config: dict[str, Any] = dict(settings.config)
    venue_options = BYBIT_OPTIONS if is_bybit(settings.exchange_id) else {}
    config["options"] = {**_DEFAULT_OPTIONS, **venue_options, **settings.options}
    config["enableRateLimit"] = True  # ccxt then awaits self.throttle(cost): our budget
    config["logger"] = _ScrubbingLogger(scrubber)
    creds = settings.credentials
    pairs = (
        ("apiKey", creds.api_key),
        ("secret", creds.secret),
        ("password", creds.password),
        ("uid", creds.uid),
    )
    for key, value in pairs:
        if value:
            config[key] = value
    client = cls(config)
    install_tail_filter(client)
    if is_bybit(settings.exchange_id) and hasattr(client, "handle_subscription_status"):
        track_bybit_acks(client)
    aim_client(client, settings)
    if settings.url is not None and settings.url.startswith("http://"):
        client.timeout_on_exit = 0  # ccxt lingers 250 ms on close for TLS; plain HTTP has none
    budget = RateBudget(limit or RateLimit.for_ccxt(client.rateLimit))
    client.throttle = budget.acquire
    fetch = client.fetch

    async def fetch_with_backoff(
        url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> Any:
        try:
            return await fetch(url, method, headers, body)
        except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as exc:
            # ccxt set last_response_headers just before raising, with no await in between.
            wait = retry_after_s(client.last_response_headers, str(exc))
            budget.pause(wait if wait is not None else budget.limit.backoff_s)
            setattr(exc, RETRY_AFTER_ATTR, wait)
            raise

    client.fetch = fetch_with_backoff
    return client, budget


async def _load_markets(client: Any, reload: bool) -> dict[str, dict[str, Any]]:
    # ccxt shares one markets_loading task among callers and keeps it if it was cancelled,
    # which would fail every later call: a cancelled caller must leave it running.
    await asyncio.shield(client.load_markets(reload))
    return dict(client.markets)


async def _close_client(client: Any) -> None:
    # ccxt runs some requests together (load_markets gathers markets and currencies); when one
    # fails, the others are still in flight, and closing the session under them leaves their
    # sockets unclosed. Let the tasks running this client's methods finish first (bounded).
    current = asyncio.current_task()
    pending = [
        task
        for task in asyncio.all_tasks()
        if task is not current and not task.done() and _runs_method_of(task, client)
    ]
    if pending:
        await asyncio.wait(pending, timeout=min(client.timeout / 1000, 5.0))
    await client.close()


def _runs_method_of(task: asyncio.Task[Any], client: Any) -> bool:
    frame = getattr(task.get_coro(), "cr_frame", None)
    return frame is not None and frame.f_locals.get("self") is client


async def _set_margin_mode(client: Any, mode: str, symbol: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await client.set_margin_mode(mode, symbol)
    except ccxt.NoChange:
        # Setting the mode it already has is success (Binance answers -4046).
        return {"info": None, "symbol": symbol, "marginMode": mode, "changed": False}
    return result


class _ConnectOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`CcxtExchange.connect`, which :meth:`CcxtExchange.open`
    passes on (defaults and meanings: see ``connect``)."""

    sandbox: bool
    margin: str | None
    options: Mapping[str, Any] | None
    config: Mapping[str, Any] | None
    rate_limit: RateLimit | None
    load_markets: bool
    bridge: AsyncioBridge | None
    env: Mapping[str, str] | None


# trio's AsyncResource gives ``async with ex:``, which closes it with aclose().
class CcxtExchange(trio.abc.AsyncResource):
    """One exchange account through ccxt, for trio code. Implements
    :class:`runtime.exchanges._interface.Exchange`, plus market data and ``watch_*`` streams.

    Open it with :meth:`open` (an async context manager) or :meth:`connect` + :meth:`aclose`::

        async with CcxtExchange.open("binance", sandbox=True) as ex:
            order = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, 30_000.0,
                                          {"clientOrderId": "s1-btc-1"})
            async with ex.watch_orders("BTC/USDT") as updates:
                async for orders in updates:
                    ...

    **Results** are ccxt's unified dicts, as ccxt returns them. **Errors** are vigil's
    (``runtime._errors``), raised ``from`` the ccxt exception, with no key, secret, signature or
    listen key in any message: :class:`~runtime._errors.NetworkError` when the outcome is
    unknown, :class:`~runtime._errors.RateLimited` on 429/418,
    :class:`~runtime._errors.OrderRejected` / :class:`~runtime._errors.InsufficientFunds` for a
    definite refusal, :class:`~runtime._errors.OrderNotFound`,
    :class:`~runtime._errors.AuthenticationError` (also before sending, when a private call
    lacks credentials: the message names the environment variables to set).

    **Cancellation.** Cancelling a call cancels its request on the asyncio side and returns
    once that has stopped. A cancelled order placement may or may not have reached the
    exchange: look it up by client order id; never send it again blindly.

    **Concurrency.** Any number of trio tasks may call at once; they share the account's rate
    budget (``rate_limit``). Calls made after :meth:`aclose` raise ``trio.ClosedResourceError``.
    """

    id: str

    def __init__(
        self,
        *,
        settings: Settings,
        bridge: AsyncioBridge,
        client: Any,
        budget: RateBudget,
        scrubber: Scrubber,
        owns_bridge: bool,
    ) -> None:
        """Internal: use :meth:`open` or :meth:`connect`."""
        self.id = settings.exchange_id
        self.settings = settings
        self.bridge = bridge
        self._client = client
        self._scrub = scrubber
        self._owns_bridge = owns_bridge
        self._budget = budget
        self._missing = settings.missing_credentials(dict(client.requiredCredentials))
        self._streams: weakref.WeakSet[Stream[Any]] = weakref.WeakSet()
        self._closed = False
        self._markets_loaded = False

    # Opening and closing.
    @classmethod
    async def connect(
        cls,
        exchange: str,
        *,
        sandbox: bool = True,
        margin: str | None = None,
        options: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        rate_limit: RateLimit | None = None,
        load_markets: bool = True,
        bridge: AsyncioBridge | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CcxtExchange:
        """Open the account; the caller must ``await ex.aclose()`` (or use :meth:`open`).

        - ``exchange``: a ccxt id ("binance", "binanceusdm", ...). With ``margin`` set
          ("isolated" or "cross"), "binance" opens "binanceusdm" (USDⓈ-M perpetuals).
        - ``sandbox``: ccxt's ``set_sandbox_mode`` (the exchange's testnet); True by default.
        - ``options``: ccxt ``options`` (merged over vigil's defaults); ``config``: other ccxt
          constructor keys (``timeout``, ...). Credentials there are refused.
        - ``rate_limit``: the account's budget; default ccxt's rate for the exchange
          (``1000 / rateLimit`` cost units per second, one second of burst).
        - ``load_markets``: load markets now (one REST round, rate-limited).
        - ``bridge``: run on this bridge instead of the process's shared one.
        - ``env``: where to read ``VIGIL_<EXCHANGE>_*`` (default ``os.environ``).

        Raises ConfigError for bad settings; the vigil error of a failed market load.
        Cancellation: nothing is left open.
        """
        settings = resolve_settings(
            exchange,
            sandbox=sandbox,
            margin=margin,
            options=options,
            config=config,
            env=os.environ if env is None else env,
        )
        owns = bridge is None
        the_bridge = acquire_shared_bridge() if bridge is None else bridge
        scrubber: Scrubber | None = None
        try:
            holder: list[Any] = []
            scrubber = Scrubber(
                settings.credentials.values(),
                dynamic=lambda: _listen_keys(holder[0].options) if holder else (),
            )
            the_bridge.scrubbers.append(scrubber)

            async def build() -> tuple[Any, RateBudget]:
                return _build_client(settings, rate_limit, scrubber)

            client, budget = await the_bridge.run(build)
            holder.append(client)
        except BaseException:
            with trio.CancelScope(shield=True):
                if scrubber is not None and scrubber in the_bridge.scrubbers:
                    the_bridge.scrubbers.remove(scrubber)
                if owns:
                    await release_shared_bridge(the_bridge)
            raise
        ex = cls(
            settings=settings,
            bridge=the_bridge,
            client=client,
            budget=budget,
            scrubber=scrubber,
            owns_bridge=owns,
        )
        if load_markets:
            try:
                await ex._load_markets_patiently()
            except BaseException:
                await ex.aclose()
                raise
        return ex

    async def _load_markets_patiently(self) -> None:
        """Load the markets, riding out a 5xx or 429 burst: a start (or a restart after a
        crash) must not fail for a fault the next attempt would not meet. The rate budget
        already holds every call back until a Retry-After has passed."""
        for delay_s in LOAD_MARKETS_RETRIES_S:
            try:
                await self.load_markets()
                return
            except NetworkError as exc:
                log.warning("loading markets failed (%s); trying again in %.1f s", exc, delay_s)
                await trio.sleep(delay_s)
        await self.load_markets()

    @classmethod
    @asynccontextmanager
    async def open(
        cls, exchange: str, **options: Unpack[_ConnectOptions]
    ) -> AsyncIterator[CcxtExchange]:
        """``async with CcxtExchange.open(...) as ex``: :meth:`connect`, then :meth:`aclose`."""
        ex = await cls.connect(exchange, **options)
        try:
            yield ex
        finally:
            await ex.aclose()

    async def aclose(self) -> None:
        """End every stream, close the ccxt object on its loop, and release the bridge
        (stopping it if this was its last user). Idempotent; completes even when cancelled."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            for stream in list(self._streams):
                stream._stop()
            try:
                await self.bridge.run(_close_client, self._client)
            except Exception as exc:
                text = self._scrub(repr(exc))
                log.warning("%s: closing the ccxt client failed: %s", self.id, text)
            finally:
                if self._scrub in self.bridge.scrubbers:
                    self.bridge.scrubbers.remove(self._scrub)
                if self._owns_bridge:
                    await release_shared_bridge(self.bridge)

    close = aclose  # the exchange interface's name

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        mode = "sandbox" if self.settings.sandbox else "live"
        url = f" via {self.settings.url}" if self.settings.url else ""
        return f"<CcxtExchange {self.id} {mode}{url} {state}>"

    # Introspection.
    @property
    def budget(self) -> RateBudget:
        """The account's rate budget (read-only use: ``waits``, ``waited_s``, ``paused_until``)."""
        return self._budget

    @property
    def markets(self) -> dict[str, dict[str, Any]]:
        """The loaded markets by symbol (empty before :meth:`load_markets`). Do not mutate."""
        markets = self._client.markets
        return dict(markets) if markets else {}

    # The call path.
    def _check(self, operation: str, private: bool) -> None:
        if self._closed:
            raise trio.ClosedResourceError(
                f"{self.id} {operation}: this CcxtExchange is closed; open a new one"
            )
        if private and self._missing:
            raise AuthenticationError(
                f"{self.id} {operation} is a private call and needs API credentials: set "
                f"{' and '.join(self._missing)} in the environment (credentials never come "
                "from strategy files)"
            )

    def _map(self, exc: Exception, operation: str) -> BaseException:
        mapped = map_ccxt_error(
            exc,
            exchange=self.id,
            operation=operation,
            scrub=self._scrub,
            credentials_hint=self.settings.credentials_hint(),
        )
        if isinstance(mapped, ExchangeError):
            mapped.__cause__ = exc
            return mapped
        return exc

    async def _run(self, operation: str, fn: Any, *args: Any) -> Any:
        try:
            return await self.bridge.run(fn, *args)
        except Exception as exc:
            mapped = self._map(exc, operation)
            if mapped is exc:
                raise
            raise mapped from exc

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Any other unified ccxt method (``await ex.call("fetch_time")``), errors mapped.

        Credentials are not checked first (ccxt's own refusal maps to AuthenticationError).
        """
        private = method in PRIVATE_METHODS
        self._check(method, private)
        if not self._markets_loaded and method != "load_markets":
            await self.load_markets()
        fn = getattr(self._client, method, None)
        if fn is None or method.startswith("_") or not callable(fn):
            raise ConfigError(f"{self.id} has no ccxt method {method!r}")
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        try:  # _run, inlined: every order goes this way
            result = await self.bridge.run(fn, *args)
        except Exception as exc:
            mapped = self._map(exc, method)
            if mapped is exc:
                raise
            raise mapped from exc
        return bybit_orders(method, result) if is_bybit(self.id) else result

    # The exchange interface.
    async def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]:
        """Markets by symbol (ccxt's unified market dicts), loaded once unless ``reload``."""
        self._check("load_markets", private=False)
        markets: dict[str, dict[str, Any]] = await self._run(
            "load_markets", _load_markets, self._client, reload
        )
        self._markets_loaded = True
        return markets

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Order:
        """Place an order; ``params`` pass through (``clientOrderId``, ``timeInForce``,
        ``postOnly``, ``reduceOnly`` ...). NetworkError means the outcome is unknown."""
        if is_bybit(self.id):
            return await self._venue_call(
                "create_order",
                bybit_create_order,
                symbol,
                type,
                side,
                amount,
                price,
                dict(params or {}),
            )
        result: Order = await self.call(
            "create_order", symbol, type, side, amount, price, dict(params or {})
        )
        return result

    # Binance USDⓈ-M keeps conditional orders (stop and take-profit) in its Algo Service until
    # they trigger: ccxt reaches them with the `trigger` param. Lookups and cancels that the
    # matching engine does not know are asked of it again, and listings include it.
    def _conditional_service(self) -> bool:
        return str(getattr(self._client, "id", "")) == "binanceusdm"

    async def cancel_order(
        self, id: str | None, symbol: str, params: Mapping[str, Any] | None = None
    ) -> Order:
        """Cancel by exchange id, or with ``id=None`` and ``params={"clientOrderId": ...}``."""
        if is_bybit(self.id):
            return await self._venue_call(
                "cancel_order", bybit_cancel_order, id, symbol, dict(params or {})
            )
        try:
            result: Order = await self.call("cancel_order", id, symbol, dict(params or {}))
        except OrderNotFound:
            if not self._conditional_service():
                raise
            algo = {**(params or {}), "trigger": True}
            done = await self.call("cancel_order", id, symbol, algo)
            # The Algo Service answers a cancel with a code, not the order: read it back.
            result = await self.call("fetch_order", done.get("id") or id, symbol, algo)
        return result

    def has_oco(self, symbol: str) -> bool:
        """Whether a stop and a take-profit on `symbol` can be sent as one OCO order list,
        which the exchange links and locks funds for once (Binance spot)."""
        if str(getattr(self._client, "id", "")) != "binance":
            return False
        market = (getattr(self._client, "markets", None) or {}).get(symbol)
        return bool(market and market.get("spot"))

    async def create_oco_order(
        self,
        symbol: str,
        side: str,
        amount: float,
        stop: tuple[float, str],
        take_profit: tuple[float, str],
        list_client_id: str,
    ) -> list[Order]:
        """A stop-loss and a take-profit (each ``(trigger price, client id)``) on `side` as
        one Binance OCO order list (``POST /api/v3/orderList/oco``; ccxt has no unified call,
        so its implicit endpoint), returned as ccxt orders."""
        client = self._client
        market = client.market(symbol)
        stop_leg = {"Type": "STOP_LOSS", "StopPrice": stop[0], "ClientOrderId": stop[1]}
        take_leg = {
            "Type": "TAKE_PROFIT",
            "StopPrice": take_profit[0],
            "ClientOrderId": take_profit[1],
        }
        # A sell takes profit above the price and stops below it; a buy the reverse.
        above, below = (take_leg, stop_leg) if side == "sell" else (stop_leg, take_leg)
        request: dict[str, Any] = {
            "symbol": market["id"],
            "side": side.upper(),
            "quantity": client.amount_to_precision(symbol, amount),
            "listClientOrderId": list_client_id,
            "newOrderRespType": "RESULT",
        }
        for where, leg in (("above", above), ("below", below)):
            request[f"{where}Type"] = leg["Type"]
            request[f"{where}StopPrice"] = client.price_to_precision(symbol, leg["StopPrice"])
            request[f"{where}ClientOrderId"] = leg["ClientOrderId"]
        response = await self.call("private_post_orderlist_oco", request)
        return [client.parse_order(report, market) for report in response["orderReports"]]

    async def cancel_all_orders(
        self, symbol: str | None = None, params: Mapping[str, Any] | None = None
    ) -> list[Order]:
        """Cancel every open order (of ``symbol``; Binance requires one)."""
        result: list[Order] = await self.call("cancel_all_orders", symbol, dict(params or {}))
        return result

    async def fetch_order(
        self, id: str | None, symbol: str, params: Mapping[str, Any] | None = None
    ) -> Order:
        """By exchange id, or with ``id=None`` and ``params={"clientOrderId": ...}``."""
        if is_bybit(self.id):
            return await self._venue_call(
                "fetch_order", bybit_fetch_order, id, symbol, dict(params or {})
            )
        try:
            result: Order = await self.call("fetch_order", id, symbol, dict(params or {}))
        except OrderNotFound:
            if not self._conditional_service():
                raise
            algo = {**(params or {}), "trigger": True}
            result = await self.call("fetch_order", id, symbol, algo)
        return result

    async def fetch_open_orders(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> list[Order]:
        """Open orders (of every symbol when ``symbol`` is None)."""
        result: list[Order] = await self.call(
            "fetch_open_orders", symbol, since, limit, dict(params or {})
        )
        if self._conditional_service() and not (params or {}).get("trigger"):
            algo = {**(params or {}), "trigger": True}
            result = result + await self.call("fetch_open_orders", symbol, since, limit, algo)
        return result

    async def fetch_closed_orders(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[Order]:
        """Filled orders of ``symbol`` (ccxt status "closed"; cancelled ones are not here)."""
        result: list[Order] = await self.call("fetch_closed_orders", symbol, since, limit)
        if self._conditional_service():
            algo = await self.call("fetch_closed_orders", symbol, since, limit, {"trigger": True})
            result = result + algo
        return result

    async def fetch_my_trades(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[Trade]:
        """The account's fills on ``symbol``, oldest first."""
        result: list[Trade] = await self.call("fetch_my_trades", symbol, since, limit)
        return result

    async def fetch_balance(self) -> dict[str, Any]:
        """Balances: ``{currency: {"free", "used", "total"}, ...}`` plus ccxt's totals."""
        result: dict[str, Any] = await self.call("fetch_balance")
        return result

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[dict[str, Any]]:
        """Open positions (derivatives accounts)."""
        if is_bybit(self.id):
            return await self._venue_call("fetch_positions", bybit_fetch_positions, symbols)
        result: list[dict[str, Any]] = await self.call("fetch_positions", symbols)
        return result

    async def set_leverage(self, leverage: float, symbol: str) -> dict[str, Any]:
        """Setting the leverage it already has succeeds (``{"changed": False, ...}``)."""
        if is_bybit(self.id):
            return await self._venue_call("set_leverage", bybit_set_leverage, leverage, symbol)
        result: dict[str, Any] = await self.call("set_leverage", leverage, symbol)
        return result

    async def _venue_call(self, operation: str, fn: Any, *args: Any) -> Any:
        """``fn(client, *args)`` on the bridge loop: a unified method with the venue's own
        parameters (:mod:`._venues`), checked and mapped like :meth:`call`."""
        self._check(operation, private=operation in PRIVATE_METHODS)
        if not self._markets_loaded:
            await self.load_markets()
        return await self._run(operation, fn, self._client, *args)

    async def set_margin_mode(self, mode: str, symbol: str) -> dict[str, Any]:
        """Set "isolated" or "cross"; setting the current mode again succeeds
        (``{"changed": False, ...}``)."""
        self._check("set_margin_mode", private=True)
        if not self._markets_loaded:
            await self.load_markets()
        result: dict[str, Any] = await self._run(
            "set_margin_mode", _set_margin_mode, self._client, mode, symbol
        )
        return result

    # Market data.
    async def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("fetch_ticker", symbol)
        return result

    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        since: int | None = None,
        limit: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> list[list[float]]:
        """Bars ``[time_ms, open, high, low, close, volume]``, oldest first (``params``:
        ccxt's, e.g. ``{"until": ms}`` for the last bar's time)."""
        result: list[list[float]] = await self.call(
            "fetch_ohlcv", symbol, timeframe, since, limit, dict(params or {})
        )
        return result

    async def fetch_funding_rate_history(
        self,
        symbol: str,
        since: int | None = None,
        limit: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """A perpetual's past funding rates (``fundingRate``, ``timestamp``), oldest first."""
        result: list[dict[str, Any]] = await self.call(
            "fetch_funding_rate_history", symbol, since, limit, dict(params or {})
        )
        return result

    def page_limit(self, method: str, symbol: str, default: int = 1000) -> int:
        """The most rows one ``method`` request returns for ``symbol``'s market, as ccxt's
        ``features`` declare it (``fetchOHLCV``: Binance spot 1000), else ``default``."""
        market = self._client.markets.get(symbol) if self._client.markets else None
        features = getattr(self._client, "features", None) or {}
        kind = (market or {}).get("type") or "spot"
        node = features.get(kind) or {}
        if kind in ("swap", "future") and isinstance(node, dict):
            sub = "inverse" if (market or {}).get("inverse") else "linear"
            node = node.get(sub) or {}
        entry = node.get(method) if isinstance(node, dict) else None
        limit = entry.get("limit") if isinstance(entry, dict) else None
        return int(limit) if isinstance(limit, int) and limit > 0 else default

    async def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("fetch_order_book", symbol, limit)
        return result

    async def fetch_trades(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[Trade]:
        """Public trades of ``symbol``, oldest first."""
        result: list[Trade] = await self.call("fetch_trades", symbol, since, limit)
        return result

    # Streams.
    def open_stream(
        self, method: str, *args: Any, buffer: int = _DEFAULT_BUFFER, **kwargs: Any
    ) -> Stream[Any]:
        """A :class:`Stream` of ``method``'s results (a ccxt.pro ``watch_*``), started now.

        Each result is a plain deep copy, safe to keep. The stream ends with the mapped vigil
        error (e.g. NetworkError when the websocket drops: re-open it to reconnect, then fill
        the gap from REST), or cleanly when the exchange closes. Close it with ``aclose()`` or
        ``async with``. Must be called from trio.
        """
        if method not in STREAM_METHODS:
            raise ConfigError(
                f"{method!r} is not a stream; valid: {', '.join(sorted(STREAM_METHODS))}"
            )
        self._check(method, private=method in PRIVATE_METHODS)
        fn = getattr(self._client, method, None)
        if fn is None or not self._client.has.get(_has_key(method)):
            raise ConfigError(f"{self.id} has no websocket {method} in ccxt.pro; poll instead")
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        transform: Any = _plain
        if is_bybit(self.id) and method == "watch_balance":

            def transform(value: Any) -> Any:
                return bybit_ws_balance(_plain(value))

        elif is_bybit(self.id) and method == "watch_orders":

            def transform(value: Any) -> Any:
                return bybit_orders(method, _plain(value))

        stream = self.bridge.stream(
            fn,
            *args,
            transform=transform,
            map_error=functools.partial(self._map, operation=method),
            buffer=buffer,
        )
        self._streams.add(stream)
        return stream

    async def subscribed(
        self, method: str, stream: Stream[Any] | None = None, timeout_s: float = 5.0
    ) -> None:
        """Until a private stream just opened with ``method`` is subscribed on the venue, so an
        event from now on reaches it: Bybit acknowledges each topic (``order``, ``execution``...
        subscribed per call); Binance's user data flows once ccxt has authenticated the call
        and connected it. Other venues: no wait. Gives up after ``timeout_s`` (logged): the
        watcher's gap fills cover what a late subscription misses. Returns at once when
        ``stream`` (the one opened) has ended: its error is what the watcher must see; and
        once it has delivered two results: the second came from a message on the new
        subscription (a first may be a REST snapshot), and a stream whose buffer fills stops
        re-arming the watch that the venue checks look for."""
        check: Callable[[], Awaitable[bool]] | None = None
        if is_bybit(self.id) and method in BYBIT_TOPICS:
            # The record track_bybit_acks keeps (ccxt drops the acknowledgement).
            check = functools.partial(bybit_subscribed, self._client, BYBIT_TOPICS[method])
        elif is_binance(self.id) and method in BINANCE_HASHES:
            check = functools.partial(binance_subscribed, self._client, method)
        if check is None:
            await trio.lowlevel.checkpoint()
            return
        with trio.move_on_after(timeout_s) as scope:
            # ccxt signals no subscription made: poll its state, on its own loop.
            while not await self.bridge.run(check):
                if stream is not None and (stream.ended or stream.delivered >= 2):
                    return
                await trio.sleep(0.005)
        if scope.cancelled_caught:
            log.warning(
                "%s: %s not subscribed after %.0f s; reading REST anyway",
                self.id,
                method,
                timeout_s,
            )

    def watch_orders(
        self, symbol: str | None = None, *, buffer: int = _DEFAULT_BUFFER
    ) -> Stream[list[Order]]:
        """Order updates (each result: the orders that changed since the previous one)."""
        return self.open_stream("watch_orders", symbol, buffer=buffer)

    def watch_my_trades(
        self, symbol: str | None = None, *, buffer: int = _DEFAULT_BUFFER
    ) -> Stream[list[Trade]]:
        """The account's new fills."""
        return self.open_stream("watch_my_trades", symbol, buffer=buffer)

    def watch_balance(self, *, buffer: int = _DEFAULT_BUFFER) -> Stream[dict[str, Any]]:
        """The balance after each change."""
        return self.open_stream("watch_balance", buffer=buffer)

    def watch_positions(
        self, symbols: list[str] | None = None, *, buffer: int = _DEFAULT_BUFFER
    ) -> Stream[list[dict[str, Any]]]:
        """Position updates (the first result is the current positions)."""
        return self.open_stream("watch_positions", symbols, buffer=buffer)

    def watch_ticker(self, symbol: str, *, buffer: int = _DEFAULT_BUFFER) -> Stream[dict[str, Any]]:
        return self.open_stream("watch_ticker", symbol, buffer=buffer)

    def watch_ohlcv(
        self, symbol: str, timeframe: str = "1m", *, buffer: int = _DEFAULT_BUFFER
    ) -> Stream[list[list[float]]]:
        """New and updated bars ``[time_ms, open, high, low, close, volume]``."""
        return self.open_stream("watch_ohlcv", symbol, timeframe, buffer=buffer)

    def watch_order_book(
        self, symbol: str, limit: int | None = None, *, buffer: int = _DEFAULT_BUFFER
    ) -> Stream[dict[str, Any]]:
        """The order book after each update (``bids``/``asks`` as ``[price, amount]``)."""
        return self.open_stream("watch_order_book", symbol, limit, buffer=buffer)

    def watch_trades(self, symbol: str, *, buffer: int = _DEFAULT_BUFFER) -> Stream[list[Trade]]:
        """New public trades."""
        return self.open_stream("watch_trades", symbol, buffer=buffer)


def _has_key(method: str) -> str:
    """ccxt's ``has`` key of a method: ``watch_order_book`` → ``watchOrderBook``."""
    head, *rest = method.split("_")
    return head + "".join("OHLCV" if part == "ohlcv" else part.title() for part in rest)
