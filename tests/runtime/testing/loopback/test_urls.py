"""The URL rewrite that points ccxt at the loopback (and that VIGIL_<EXCHANGE>_URL reuses)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from runtime.testing.loopback import loopback_url, point_ccxt_at, rewrite_urls

BASE = "http://127.0.0.1:8765"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.binance.com/api/v3", f"{BASE}/api/v3"),
        ("https://fapi.binance.com/fapi/v2", f"{BASE}/fapi/v2"),
        ("https://api.binance.com/sapi/v1", f"{BASE}/sapi/v1"),
        ("wss://ws-api.binance.com:443/ws-api/v3", "ws://127.0.0.1:8765/ws-api/v3"),
        ("wss://stream.binance.com:9443/ws", "ws://127.0.0.1:8765/stream/ws"),
        ("wss://fstream.binance.com/ws", "ws://127.0.0.1:8765/fstream/ws"),
        (
            "wss://fstream.binance.com/private/ws?listenKey=K",
            "ws://127.0.0.1:8765/fstream/private/ws?listenKey=K",
        ),
        ("https://testnet.binance.vision/api/v3", f"{BASE}/api/v3"),
        ("not a url", "not a url"),
    ],
)
def test_loopback_url(url: str, expected: str) -> None:
    assert loopback_url(url, BASE) == expected


def test_https_base_gives_wss_streams() -> None:
    assert loopback_url("wss://fstream.binance.com/ws", "https://h:1") == "wss://h:1/fstream/ws"


@pytest.mark.parametrize("base", ["127.0.0.1:8765", "http://127.0.0.1:8765/api", "ftp://x"])
def test_a_base_url_must_be_an_http_origin(base: str) -> None:
    with pytest.raises(ValueError, match=r"origin|path"):
        rewrite_urls({"api": {}}, base)


@pytest.mark.parametrize(
    "cls", [ccxt_async.binance, ccxt_async.binanceusdm, ccxt_pro.binance, ccxt_pro.binanceusdm]
)
def test_every_endpoint_of_a_ccxt_object_moves_and_links_stay(cls: type) -> None:
    exchange = cls()
    www = exchange.urls.get("www")
    point_ccxt_at(exchange, BASE)
    for table in ("api", "test", "demo"):
        for url in _strings(exchange.urls.get(table, {})):
            assert url.startswith((f"{BASE}/", "ws://127.0.0.1:8765/")), url
    assert exchange.urls.get("www") == www
    if "ws" in exchange.urls["api"]:  # ccxt.pro classes
        ws = exchange.urls["api"]["ws"]
        # ccxt.pro tells spot streams by "/stream" in the URL and derives futures categories.
        assert "/stream" in ws["spot"]
        assert "/stream" not in ws["linear"]
        assert exchange.get_ws_url("linear", "private") == "ws://127.0.0.1:8765/fstream/private/ws"


def test_error_tables_still_match_by_market_type() -> None:
    exchange = point_ccxt_at(ccxt_async.binanceusdm(), BASE)
    linear = exchange.get_exceptions_by_url(f"{BASE}/fapi/v1/order", "exact")
    spot = exchange.get_exceptions_by_url(f"{BASE}/api/v3/order", "exact")
    assert linear["-2019"] is ccxt_async.InsufficientFunds
    assert spot is not linear
    assert exchange.get_exceptions_by_url(None, "exact") == {}
