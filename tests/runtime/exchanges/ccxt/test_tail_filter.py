"""The tail-first watch filter returns exactly what ccxt's own filter returns."""

from __future__ import annotations

import random
from typing import Any

import ccxt.pro
from ccxt.async_support.base.ws.cache import ArrayCacheBySymbolById

from runtime.exchanges.ccxt._tail_filter import install_tail_filter

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def _entries(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        entry: dict[str, Any] = {"id": str(i), "symbol": rng.choice(SYMBOLS)}
        roll = rng.random()
        if roll < 0.1:
            pass  # no timestamp: ccxt drops it whenever `since` is given
        elif roll < 0.2:
            entry["timestamp"] = 0
        else:
            entry["timestamp"] = 1_700_000_000_000 + rng.randrange(0, 50) * 1000
        out.append(entry)
    return out


def test_matches_ccxt_on_lists_and_caches_for_every_argument_shape() -> None:
    rng = random.Random(7)
    reference = ccxt.pro.binance()
    fast = ccxt.pro.binance()
    install_tail_filter(fast)
    checked_fast_path = 0
    for _ in range(400):
        entries = _entries(rng, rng.randrange(0, 60))
        cache = ArrayCacheBySymbolById(rng.choice([None, 10, 200]))
        for entry in entries:
            cache.append(dict(entry))
        for array in (entries, cache):
            symbol = rng.choice([None, *SYMBOLS])
            since = rng.choice([None, 1_700_000_000_000 + rng.randrange(0, 50) * 1000])
            limit = rng.choice([None, 0, 1, 2, 5, 100])
            tail = rng.random() < 0.7
            want = reference.filter_by_symbol_since_limit(array, symbol, since, limit, tail)
            got = fast.filter_by_symbol_since_limit(array, symbol, since, limit, tail)
            assert list(got) == list(want), (symbol, since, limit, tail)
            if tail and limit and (symbol or since):
                checked_fast_path += 1
    assert checked_fast_path > 200  # the fast path itself was compared, not only the fallback


def test_watch_orders_returns_only_the_new_updates_of_its_symbol() -> None:
    fast = ccxt.pro.binance()
    install_tail_filter(fast)
    cache = ArrayCacheBySymbolById(200)
    for i in range(150):
        cache.append({"id": str(i), "symbol": SYMBOLS[i % 2], "timestamp": 1_700_000_000_000 + i})
    cache.getLimit("BTC/USDT", None)  # a consumer read everything so far
    cache.append({"id": "new", "symbol": "BTC/USDT", "timestamp": 1_700_000_001_000})
    limit = cache.getLimit("BTC/USDT", None)
    got = fast.filter_by_symbol_since_limit(cache, "BTC/USDT", None, limit, True)
    assert [o["id"] for o in got] == ["new"]
