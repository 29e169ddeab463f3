"""Every payload the loopback emits validates against Binance's official SDK models.

One session drives every REST endpoint and every stream (real ccxt, ccxt.pro and hand-made
requests) on a server started with ``record=True``; each recorded body is then validated with the
pydantic models of ``binance-sdk-spot`` and ``binance-sdk-derivatives-trading-usds-futures``:

- ``from_dict`` must succeed; the models' fields are ``Strict*`` types, so a number sent as a
  string (or the reverse) fails;
- no key may be left over in ``additional_properties``, at any depth, except the few listed in
  ``KNOWN_EXTRAS``: fields Binance sends (its documentation or live replies show them) that the
  generated models lack, each with its reason.

Where the SDK has no model the body is checked against Binance's documented shape instead
(``SHAPES``), with the reason next to it. The tests skip, saying so, when the SDK packages are
not installed (they are test-only dependencies: ``pip install -e .[dev]``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest
from pydantic import BaseModel

from runtime.testing.loopback import LoopbackExchange, Payload
from tests.runtime.testing.loopback.support import (
    BTC,
    BTC_PERP,
    futures,
    make_exchange,
    opened,
    pro_futures,
    pro_spot,
    raw,
    run,
    spot,
    until,
)

S = pytest.importorskip(
    "binance_sdk_spot.rest_api.models",
    reason="binance-sdk-spot is not installed; install the dev extra: pip install -e .[dev]",
)
F = pytest.importorskip(
    "binance_sdk_derivatives_trading_usds_futures.rest_api.models",
    reason="binance-sdk-derivatives-trading-usds-futures is not installed; install the dev "
    "extra: pip install -e .[dev]",
)
import binance_sdk_derivatives_trading_usds_futures.websocket_streams.models as FW  # noqa: E402
import binance_sdk_spot.websocket_api.models as SA  # noqa: E402
import binance_sdk_spot.websocket_streams.models as SW  # noqa: E402

SPOT_REST: dict[str, Any] = {
    "GET /api/v3/time": S.TimeResponse,
    "GET /api/v3/exchangeInfo": S.ExchangeInfoResponse,
    "GET /api/v3/depth": S.DepthResponse,
    "GET /api/v3/trades": S.GetTradesResponse,
    "GET /api/v3/aggTrades": S.AggTradesResponse,
    "GET /api/v3/ticker/price": S.TickerPriceResponse,
    "GET /api/v3/ticker/24hr": S.Ticker24hrResponse,
    "GET /api/v3/ticker/bookTicker": S.TickerBookTickerResponse,
    "GET /api/v3/account": S.GetAccountResponse,
    "POST /api/v3/order": S.NewOrderResponse,
    "POST /api/v3/order/test": S.OrderTestResponse,
    "POST /api/v3/orderList/oco": S.OrderListOcoResponse,
    "GET /api/v3/order": S.GetOrderResponse,
    "DELETE /api/v3/order": S.DeleteOrderResponse,
    "GET /api/v3/openOrders": S.GetOpenOrdersResponse,
    "DELETE /api/v3/openOrders": S.DeleteOpenOrdersResponse,
    "GET /api/v3/allOrders": S.AllOrdersResponse,
    "GET /api/v3/myTrades": S.MyTradesResponse,
}
FUTURES_REST: dict[str, Any] = {
    "GET /fapi/v1/time": F.CheckServerTimeResponse,
    "GET /fapi/v1/exchangeInfo": F.ExchangeInformationResponse,
    "GET /fapi/v1/depth": F.OrderBookResponse,
    "GET /fapi/v1/trades": F.RecentTradesListResponse,
    "GET /fapi/v1/aggTrades": F.CompressedAggregateTradesListResponse,
    "GET /fapi/v1/ticker/24hr": F.Ticker24hrPriceChangeStatisticsResponse,
    "GET /fapi/v1/ticker/price": F.SymbolPriceTickerResponse,
    "GET /fapi/v2/ticker/price": F.SymbolPriceTickerV2Response,
    "GET /fapi/v1/ticker/bookTicker": F.SymbolOrderBookTickerResponse,
    "GET /fapi/v1/premiumIndex": F.MarkPriceResponse,
    "GET /fapi/v1/fundingRate": F.GetFundingRateHistoryResponse,
    "GET /fapi/v2/account": F.AccountInformationV2Response,
    "GET /fapi/v3/account": F.AccountInformationV3Response,
    "GET /fapi/v2/balance": F.FuturesAccountBalanceV2Response,
    "GET /fapi/v3/balance": F.FuturesAccountBalanceV3Response,
    "GET /fapi/v2/positionRisk": F.PositionInformationV2Response,
    "GET /fapi/v3/positionRisk": F.PositionInformationV3Response,
    "GET /fapi/v1/leverageBracket": F.NotionalAndLeverageBracketsResponse,
    "POST /fapi/v1/leverage": F.ChangeInitialLeverageResponse,
    "POST /fapi/v1/marginType": F.ChangeMarginTypeResponse,
    "GET /fapi/v1/positionSide/dual": F.GetCurrentPositionModeResponse,
    "GET /fapi/v1/multiAssetsMargin": F.GetCurrentMultiAssetsModeResponse,
    "POST /fapi/v1/order": F.NewOrderResponse,
    "GET /fapi/v1/order": F.QueryOrderResponse,
    "DELETE /fapi/v1/order": F.CancelOrderResponse,
    "GET /fapi/v1/openOrder": F.QueryCurrentOpenOrderResponse,
    "GET /fapi/v1/openOrders": F.CurrentAllOpenOrdersResponse,
    "DELETE /fapi/v1/allOpenOrders": F.CancelAllOpenOrdersResponse,
    "GET /fapi/v1/allOrders": F.AllOrdersResponse,
    "GET /fapi/v1/userTrades": F.AccountTradeListResponse,
    "POST /fapi/v1/algoOrder": F.NewAlgoOrderResponse,
    "GET /fapi/v1/algoOrder": F.QueryAlgoOrderResponse,
    "DELETE /fapi/v1/algoOrder": F.CancelAlgoOrderResponse,
    "GET /fapi/v1/openAlgoOrders": F.CurrentAllAlgoOpenOrdersResponse,
    "GET /fapi/v1/allAlgoOrders": F.QueryAllAlgoOrdersResponse,
    "DELETE /fapi/v1/algoOpenOrders": F.CancelAllAlgoOpenOrdersResponse,
    "POST /fapi/v1/listenKey": F.StartUserDataStreamResponse,
    "PUT /fapi/v1/listenKey": F.KeepaliveUserDataStreamResponse,
}
# Endpoints without an SDK model here, and why; checked by SHAPES below.
NO_MODEL = {
    "GET /api/v3/ping": "empty object; the spot SDK has no ping model",
    "GET /fapi/v1/ping": "empty object; the futures SDK has no ping model",
    "DELETE /fapi/v1/listenKey": "empty object; the futures SDK has no close-stream model",
    "GET /api/v3/klines": "array of arrays; the SDK's KlinesResponse cannot hold it and the "
    "SDK itself skips validating list-of-list replies",
    "GET /api/v3/uiKlines": "as klines",
    "GET /fapi/v1/klines": "as klines",
    "GET /sapi/v1/capital/config/getall": "wallet API (binance-sdk-wallet, not a test dep)",
    "GET /sapi/v1/margin/allPairs": "margin API (binance-sdk-margin-trading, not a test dep)",
    "GET /sapi/v1/margin/isolated/allPairs": "margin API, as above",
    "GET /dapi/v1/exchangeInfo": "COIN-M API (binance-sdk-derivatives-trading-coin-futures)",
}
# Fields Binance sends in these replies that the generated SDK models do not declare.
KNOWN_EXTRAS: dict[type, frozenset[str]] = {
    # The user-data event type is the discriminator the oneOf wrapper reads, not a field.
    SA.ExecutionReport: frozenset({"e"}),
    SA.OutboundAccountPosition: frozenset({"e"}),
    SA.BalanceUpdate: frozenset({"e"}),
    SA.ListStatus: frozenset({"e"}),
    FW.OrderTradeUpdate: frozenset({"e"}),
    FW.AccountUpdate: frozenset({"e"}),
    FW.AccountConfigUpdate: frozenset({"e"}),
    FW.AlgoUpdate: frozenset({"e"}),
    # Binance's "Conditional fields in Order Responses": stopPrice for the stop and
    # take-profit types; the generated model lacks it.
    S.NewOrderResponse: frozenset({"stopPrice"}),
    # "New Order" and "Cancel Order" (USDⓈ-M) in Binance's docs show avgPrice and cumQuote.
    F.NewOrderResponse: frozenset({"avgPrice", "cumQuote"}),
    F.CancelOrderResponse: frozenset({"avgPrice", "cumQuote"}),
    # Live USDⓈ-M exchangeInfo replies carry these (as does the body _binance_info.py builds);
    # the generated models omit them.
    F.ExchangeInformationResponse: frozenset({"futuresType"}),
    F.ExchangeInformationResponseSymbolsInner: frozenset({"maxMoveOrderLimit", "permissionSets"}),
}


def _kline_row(row: Any) -> bool:
    kinds = (int, str, str, str, str, str, int, str, int, str, str, str)
    return (
        isinstance(row, list)
        and len(row) == 12
        and all(
            isinstance(v, k) and not isinstance(v, bool) for v, k in zip(row, kinds, strict=True)
        )
    )


SHAPES = {
    "GET /api/v3/ping": lambda body: body == {},
    "GET /fapi/v1/ping": lambda body: body == {},
    "DELETE /fapi/v1/listenKey": lambda body: body == {},
    "GET /api/v3/klines": lambda body: all(_kline_row(r) for r in body),
    "GET /api/v3/uiKlines": lambda body: all(_kline_row(r) for r in body),
    "GET /fapi/v1/klines": lambda body: all(_kline_row(r) for r in body),
    "GET /sapi/v1/capital/config/getall": lambda body: all("coin" in c for c in body),
    "GET /sapi/v1/margin/allPairs": lambda body: body == [],
    "GET /sapi/v1/margin/isolated/allPairs": lambda body: body == [],
    "GET /dapi/v1/exchangeInfo": lambda body: body["symbols"] == [],
}
REST_MODELS = {**SPOT_REST, **FUTURES_REST}


def _leftovers(obj: Any, path: str = "$") -> Iterator[tuple[type, str, str]]:
    """``(model class, path, key)`` for every key a model kept in ``additional_properties``."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _leftovers(item, f"{path}[{i}]")
        return
    if not isinstance(obj, BaseModel):
        return
    fields = type(obj).model_fields
    if "actual_instance" in fields:  # a oneOf wrapper
        yield from _leftovers(obj.actual_instance, path)
        return
    for key in getattr(obj, "additional_properties", None) or {}:
        yield type(obj), path, key
    for name in fields:
        if name != "additional_properties":
            yield from _leftovers(getattr(obj, name), f"{path}.{name}")


def check(model: Any, body: Any) -> list[str]:
    """Problems validating ``body`` with ``model`` (empty when it conforms)."""
    try:
        parsed = model.from_dict(body)
    except Exception as exc:  # pydantic's ValidationError, or the oneOf wrappers' ValueError
        return [f"{model.__name__}: {exc}"]
    return [
        f"{model.__name__}: {cls.__name__} at {path} has an undeclared field {key!r}"
        for cls, path, key in _leftovers(parsed)
        if key not in KNOWN_EXTRAS.get(cls, frozenset())
    ]


def _error_body(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"code", "msg"}
        and isinstance(body["code"], int)
        and isinstance(body["msg"], str)
    )


# Market stream events by (market, event type); spot bookTicker events carry no "e".
SPOT_EVENTS = {
    "trade": SW.TradeResponse,
    "aggTrade": SW.AggTradeResponse,
    "24hrTicker": SW.TickerResponse,
    "24hrMiniTicker": SW.MiniTickerResponse,
    "depthUpdate": SW.DiffBookDepthResponse,
    "kline": SW.KlineResponse,
    None: SW.BookTickerResponse,
}
FUTURES_EVENTS = {
    "aggTrade": FW.AggregateTradeStreamsResponse,
    "24hrTicker": FW.IndividualSymbolTickerStreamsResponse,
    "24hrMiniTicker": FW.IndividualSymbolMiniTickerStreamResponse,
    "depthUpdate": FW.DiffBookDepthStreamsResponse,
    "kline": FW.KlineCandlestickStreamsResponse,
    "bookTicker": FW.IndividualSymbolBookTickerStreamsResponse,
    "ORDER_TRADE_UPDATE": FW.UserDataStreamEventsResponse,
    "ACCOUNT_UPDATE": FW.UserDataStreamEventsResponse,
    "ACCOUNT_CONFIG_UPDATE": FW.UserDataStreamEventsResponse,
    "ALGO_UPDATE": FW.UserDataStreamEventsResponse,
}
# The futures SDK has no model for the public @trade stream (ccxt.pro's watch_trades uses it):
# Binance documents it as the spot trade event without "M".
FUTURES_TRADE_FIELDS = {"e", "E", "T", "s", "t", "p", "q", "m"}


def check_ws(payload: Payload) -> list[str]:
    body = payload.body
    if payload.route == "/ws-api/v3":
        if "event" in body:
            problems = [] if set(body) == {"subscriptionId", "event"} else [f"wrapper {body}"]
            return problems + check(SA.UserDataStreamEventsResponse, body["event"])
        if "error" in body:
            ok = set(body) == {"id", "status", "error"} and _error_body(body["error"])
            return [] if ok else [f"ws-api error reply {body}"]
        result = body.get("result")
        if isinstance(result, dict) and "subscriptionId" in result:
            return check(SA.UserDataStreamSubscribeSignatureResponse, body)
        if isinstance(result, dict) and "serverTime" in result:
            return check(SA.TimeResponse, body)
        return check(SA.UserDataStreamUnsubscribeResponse, body)
    if set(body) == {"result", "id"}:  # a SUBSCRIBE acknowledgement
        return [] if body["result"] is None or isinstance(body["result"], list) else [str(body)]
    if set(body) == {"stream", "data"}:
        body = body["data"]
    futures_stream = payload.route.startswith("/fstream")
    event = body.get("e")
    if futures_stream and event == "trade":
        return [] if set(body) == FUTURES_TRADE_FIELDS else [f"futures trade {sorted(body)}"]
    models = FUTURES_EVENTS if futures_stream else SPOT_EVENTS
    if event not in models:
        return [f"no model for {'futures' if futures_stream else 'spot'} event {event!r}"]
    return check(models[event], body)


async def _ws_messages(
    url: str, requests: list[dict], count: int, then: Any = None, more: int = 0
) -> list[Any]:
    """Send ``requests``, read ``count`` messages, call ``then()``, read ``more``."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        for request in requests:
            await ws.send_str(json.dumps(request))
        out = [json.loads((await ws.receive(timeout=5)).data) for _ in range(count)]
        if then is not None:
            then()
        out += [json.loads((await ws.receive(timeout=5)).data) for _ in range(more)]
        return out


async def _look_up_and_cancel(client: Any, order_id: str, symbol: str) -> None:
    """Look a resting order up (by id, among the open ones), cancel it, list the orders."""
    await client.fetch_order(order_id, symbol)
    await client.fetch_open_orders(symbol)
    await client.cancel_order(order_id, symbol)
    await client.fetch_orders(symbol)


async def _fetch_market_data(client: Any, symbol: str) -> None:
    """Every REST market-data read of ``symbol``: bars, book, ticker, public trades."""
    await client.fetch_ohlcv(symbol, "1m", limit=3)
    await client.fetch_order_book(symbol, 5)
    await client.fetch_ticker(symbol)
    await client.fetch_trades(symbol, limit=3)


async def _watch_market_data(pro: Any, symbol: str) -> asyncio.Future[Any]:
    """One update of each market stream of ``symbol``; the trades watch is returned still
    waiting, for the caller to make a trade print."""
    await pro.watch_ticker(symbol)
    await pro.watch_ohlcv(symbol, "1m")
    await pro.watch_order_book(symbol)
    return asyncio.ensure_future(pro.watch_trades(symbol))


async def _session(ex: LoopbackExchange) -> None:
    """Touch every endpoint and stream, successes and refusals."""
    base = ex.base_url
    assert base is not None
    ex.deposit("BTC", 0.5)
    async with opened(spot(ex)) as b, opened(pro_spot(ex)) as p:
        orders = asyncio.ensure_future(p.watch_orders(BTC))
        balance = asyncio.ensure_future(p.watch_balance())
        await until(lambda: ex.user_data_listeners("spot") == 1)
        await b.fetch_time()
        await b.fetch_balance()
        await b.create_order(BTC, "market", "buy", 0.01)
        resting = await b.create_order(BTC, "limit", "buy", 0.01, 59_000.0, {"clientOrderId": "s1"})
        await b.create_order(BTC, "limit", "sell", 0.01, 61_000.0, {"postOnly": True})
        await b.create_order(BTC, "limit", "buy", 0.01, 59_000.0, {"timeInForce": "IOC"})
        await b.create_order(BTC, "limit", "buy", 0.01, 61_000.0, {"timeInForce": "FOK"})
        await _look_up_and_cancel(b, resting["id"], BTC)
        await b.fetch_my_trades(BTC)
        await _fetch_market_data(b, BTC)
        await b.cancel_all_orders(BTC)
        with pytest.raises(ccxt.InsufficientFunds):
            await b.create_order(BTC, "market", "buy", 100.0)
        trades = await _watch_market_data(p, BTC)
        await until(lambda: ex.stream_listeners("btcusdt@trade") == 1)
        ex.set_price(BTC, 59_500.0)
        ex.deposit("ETH", 1.0)
        await asyncio.wait_for(asyncio.gather(orders, balance, trades), 5)
        # The four trigger types (DESIGN §10); a bar down to 58,800 triggers the two stops.
        stops = [
            await b.create_order(BTC, "market", "sell", 0.002, None, {"stopLossPrice": 59_000.0}),
            await b.create_order(BTC, "limit", "sell", 0.002, 58_900.0, {"stopLossPrice": 59e3}),
        ]
        take = await b.create_order(BTC, "market", "sell", 0.002, None, {"takeProfitPrice": 6e4})
        await b.create_order(BTC, "limit", "sell", 0.002, 60_100.0, {"takeProfitPrice": 60_050.0})
        await _look_up_and_cancel(b, take["id"], BTC)
        with pytest.raises(ccxt.OrderImmediatelyFillable):
            await b.create_order(BTC, "market", "sell", 0.002, None, {"stopLossPrice": 60_000.0})
        ex.set_price(BTC, 58_800.0)
        for stop in stops:
            assert (await b.fetch_order(stop["id"], BTC))["status"] == "closed"
        # An OCO order list (what a bracket is sent as on spot): one lock; the stop triggers,
        # the take-profit expires; listStatus events.
        oco = {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "quantity": "0.002",
            "aboveType": "TAKE_PROFIT_LIMIT",
            "aboveStopPrice": "61000",
            "abovePrice": "61000",
            "aboveTimeInForce": "GTC",
            "belowType": "STOP_LOSS",
            "belowStopPrice": "58700",
            "listClientOrderId": "list1",
            "newOrderRespType": "RESULT",
        }
        listed = await b.private_post_orderlist_oco(oco)
        assert [o["status"] for o in listed["orderReports"]] == ["NEW", "NEW"]
        ex.set_price(BTC, 58_600.0)  # the list's stop triggers; its take-profit expires
        reports = [await b.fetch_order(str(o["orderId"]), BTC) for o in listed["orders"]]
        assert sorted(o["status"] for o in reports) == ["closed", "expired"]
        ex.set_price(BTC, 59_500.0)  # back where the futures part expects the market
    sym = {"symbol": "BTCUSDT"}
    order = {
        **sym,
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.001",
        "price": "50000",
    }
    for path, params, signed in [
        ("/api/v3/ping", {}, False),
        ("/api/v3/trades", {**sym, "limit": 3}, False),
        ("/api/v3/uiKlines", {**sym, "interval": "5m", "limit": 2}, False),
        ("/api/v3/ticker/price", sym, False),
        ("/api/v3/ticker/price", {}, False),
        ("/api/v3/ticker/bookTicker", sym, False),
        ("/api/v3/ticker/24hr", {}, False),
        ("/api/v3/klines", {**sym, "interval": "7m"}, False),  # an error body
    ]:
        raw(ex, "GET", path, params, signed=signed)
    raw(ex, "POST", "/api/v3/order/test", order)
    raw(ex, "POST", "/api/v3/order", {**order, "newOrderRespType": "ACK"})
    raw(ex, "POST", "/api/v3/order", {**order, "newOrderRespType": "RESULT"})
    raw(ex, "DELETE", "/api/v3/openOrders", sym)
    raw(ex, "GET", "/api/v3/account", {}, secret="wrong")
    # Snapshots of ticker and bookTicker at once; a bar then prints 4 aggTrades and both again.
    await _ws_messages(
        f"{base}/stream?streams=btcusdt@ticker/btcusdt@aggTrade/btcusdt@bookTicker",
        [],
        2,
        then=lambda: ex.advance(1),
        more=6,
    )
    await _ws_messages(
        f"{base}/ws-api/v3",
        [
            {"id": "1", "method": "ping"},
            {"id": "2", "method": "time"},
            {"id": "3", "method": "userDataStream.unsubscribe"},
        ],
        3,
    )

    async with opened(futures(ex)) as f, opened(pro_futures(ex)) as q:
        await q.watch_positions()  # the REST snapshot, then the listenKey stream
        updates = asyncio.ensure_future(q.watch_orders())
        await until(lambda: ex.user_data_listeners("futures") == 1)
        await f.fetch_balance()
        await f.set_leverage(5, BTC_PERP)
        with pytest.raises(ccxt.MarginModeAlreadySet):
            await f.set_margin_mode("isolated", BTC_PERP)
        await f.create_order(BTC_PERP, "market", "buy", 0.01)
        await f.create_order(BTC_PERP, "market", "sell", 0.005, None, {"reduceOnly": True})
        rest = await f.create_order(BTC_PERP, "limit", "buy", 0.01, 59_000.0, {"postOnly": True})
        await f.create_order(BTC_PERP, "limit", "buy", 0.01, 59_000.0, {"timeInForce": "IOC"})
        await _look_up_and_cancel(f, rest["id"], BTC_PERP)
        await f.fetch_my_trades(BTC_PERP)
        await f.fetch_positions()
        await _fetch_market_data(f, BTC_PERP)
        await f.create_order(BTC_PERP, "limit", "buy", 0.01, 58_000.0)
        await f.cancel_all_orders(BTC_PERP)
        # Conditional orders go to the Algo Service (ccxt sends them there): the four types,
        # a lookup, the open and all listings, a cancel, the immediate-trigger refusal; a bar
        # down to 59,000 triggers the two stops (reduce-only: the position left is 0.005).
        stop = {"stopLossPrice": 59_200.0, "reduceOnly": True}
        algo = [
            await f.create_order(BTC_PERP, "market", "sell", 0.002, None, stop),
            await f.create_order(BTC_PERP, "limit", "sell", 0.002, 59_100.0, stop),
        ]
        tp = {"takeProfitPrice": 60_400.0, "reduceOnly": True}
        take = await f.create_order(BTC_PERP, "market", "sell", 0.002, None, tp)
        await f.create_order(BTC_PERP, "limit", "sell", 0.002, 60_500.0, tp)
        await f.fetch_order(take["id"], BTC_PERP, {"trigger": True})
        await f.fetch_open_orders(BTC_PERP, None, None, {"trigger": True})
        await f.cancel_order(take["id"], BTC_PERP, {"trigger": True})
        with pytest.raises(ccxt.OrderImmediatelyFillable):
            await f.create_order(BTC_PERP, "market", "sell", 0.002, None, {"stopLossPrice": 6e4})
        ex.set_price(BTC, 59_000.0)
        for triggered in algo:
            found = await f.fetch_order(triggered["id"], BTC_PERP, {"trigger": True})
            assert found["status"] == "closed"
        await f.fetch_orders(BTC_PERP, None, None, {"trigger": True})
        await f.fetch_my_trades(BTC_PERP)
        await f.cancel_all_orders(BTC_PERP, {"trigger": True})
        ex.set_price(BTC, 59_500.0)
        with pytest.raises(ccxt.InsufficientFunds):
            await f.create_order(BTC_PERP, "market", "buy", 50.0)
        trades = await _watch_market_data(q, BTC_PERP)
        await until(lambda: ex.stream_listeners("btcusdt@trade", market="futures") == 1)
        ex.set_price(BTC, 60_500.0)
        ex.deposit("USDT", 10.0, account="futures")
        await asyncio.wait_for(asyncio.gather(updates, trades), 5)
        listen_key = raw(ex, "POST", "/fapi/v1/listenKey", signed=False)[2]["listenKey"]
    open_order = raw(
        ex, "POST", "/fapi/v1/order", {**order, "quantity": "0.002", "price": "59000"}
    )[2]
    for path, params, signed in [
        ("/fapi/v1/ping", {}, False),
        ("/fapi/v1/time", {}, False),
        ("/fapi/v1/trades", {**sym, "limit": 3}, False),
        ("/fapi/v1/ticker/price", sym, False),
        ("/fapi/v2/ticker/price", sym, False),
        ("/fapi/v1/ticker/bookTicker", sym, False),
        ("/fapi/v1/premiumIndex", sym, False),
        ("/fapi/v1/fundingRate", {**sym, "limit": 5}, False),
        ("/fapi/v2/account", {}, True),
        ("/fapi/v2/balance", {}, True),
        ("/fapi/v3/balance", {}, True),
        ("/fapi/v2/positionRisk", {}, True),
        ("/fapi/v1/positionSide/dual", {}, True),
        ("/fapi/v1/multiAssetsMargin", {}, True),
        ("/fapi/v1/openOrder", {**sym, "orderId": open_order["orderId"]}, True),
    ]:
        raw(ex, "GET", path, params, signed=signed)
    await _ws_messages(
        f"{base}/fstream/market/stream?streams=btcusdt@ticker/btcusdt@miniTicker/"
        "btcusdt@bookTicker/btcusdt@kline_1m/btcusdt@aggTrade/btcusdt@depth@100ms",
        [],
        4,
        then=lambda: ex.advance(1),
        more=5,
    )
    raw(ex, "PUT", "/fapi/v1/listenKey", signed=False)
    raw(ex, "DELETE", "/fapi/v1/listenKey", signed=False)
    assert listen_key


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[list[Payload], list[str]]]:
    with make_exchange(record=True) as ex:
        ex.set_price(BTC, 60_000.0)
        run(_session(ex))
        yield ex.payloads(), ex.endpoints()


def test_every_rest_body_validates(recorded: tuple[list[Payload], list[str]]) -> None:
    payloads, _ = recorded
    problems = []
    for p in payloads:
        if p.channel != "rest":
            continue
        if p.status != 200:
            if not _error_body(p.body):
                problems.append(f"{p.route} {p.status}: not a Binance error body: {p.body}")
            continue
        if p.route in SHAPES:
            if not SHAPES[p.route](p.body):
                problems.append(f"{p.route}: not the documented shape: {p.body}")
            continue
        model = REST_MODELS.get(p.route)
        if model is None:
            problems.append(f"{p.route}: no model or shape to check it against")
            continue
        problems += [f"{p.route}: {problem}" for problem in check(model, p.body)]
    assert problems == []


def test_every_websocket_message_validates(recorded: tuple[list[Payload], list[str]]) -> None:
    payloads, _ = recorded
    messages = [p for p in payloads if p.channel == "ws"]
    problems = [f"{p.route}: {problem}" for p in messages for problem in check_ws(p)]
    assert problems == []
    seen = {
        (p.route.startswith("/fstream"), (p.body.get("data") or p.body).get("e"))
        for p in messages
        if isinstance(p.body, dict)
    } | {(False, (p.body.get("event") or {}).get("e")) for p in messages}
    for event in (
        "executionReport",
        "outboundAccountPosition",
        "balanceUpdate",
        "trade",
        "aggTrade",
        "24hrTicker",
        "24hrMiniTicker",
        "depthUpdate",
        "kline",
    ):
        assert (False, event) in seen, f"spot {event} never emitted"
    for event in (
        "ORDER_TRADE_UPDATE",
        "ACCOUNT_UPDATE",
        "ACCOUNT_CONFIG_UPDATE",
        "trade",
        "24hrTicker",
        "24hrMiniTicker",
        "depthUpdate",
        "kline",
        "bookTicker",
    ):
        assert (True, event) in seen, f"futures {event} never emitted"


def test_every_endpoint_was_exercised(recorded: tuple[list[Payload], list[str]]) -> None:
    payloads, endpoints = recorded
    answered = {p.route for p in payloads if p.channel == "rest" and p.status == 200}
    assert set(endpoints) - answered - {"POST /fapi/v1/marginType"} == set()
    assert set(endpoints) <= set(REST_MODELS) | set(NO_MODEL)


def test_checker_rejects_wrong_types_and_unknown_fields() -> None:
    assert check(S.TimeResponse, {"serverTime": 1}) == []
    assert check(S.TimeResponse, {"serverTime": "1"})  # strict: a string is not an int
    assert check(S.TimeResponse, {"serverTime": 1, "extra": True}) == [
        "TimeResponse: TimeResponse at $ has an undeclared field 'extra'"
    ]
