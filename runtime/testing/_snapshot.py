"""Regenerate the offline market snapshot with real ccxt parsing.

Run ``python -m runtime.testing._snapshot`` after changing
``runtime/exchanges/_binance_info.py`` or ``_bybit_info.py``, or upgrading ccxt. Two sources give
the same bytes (Bybit's snapshot the same way, from the loopback's Bybit v5 dialect and
``/v5/market/instruments-info``):

- ``--source loopback`` (the default, DESIGN §2): starts the loopback exchange on 127.0.0.1 and
  loads markets through real ``ccxt.async_support.binance`` (spot only) and ``binanceusdm``
  (linear only) pointed at it, so ccxt's own ``parse_market`` reads the loopback's
  ``exchangeInfo`` over HTTP, exactly as it reads Binance's.
- ``--source canned``: real ``ccxt.binance`` / ``ccxt.binanceusdm`` whose HTTP layer, ``fetch``,
  answers from the canned ``exchangeInfo`` bodies, with no server at all; any request other than
  ``exchangeInfo`` fails loudly. :func:`build_snapshot` uses it (the tests compare it with the
  shipped files).

Both serve the same ``_binance_info`` bodies, and nothing time-dependent reaches a market, so the
output is byte-for-byte reproducible for a given ccxt version.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from runtime.exchanges._binance_info import (
    FUTURES_SYMBOLS,
    SPOT_SYMBOLS,
    futures_exchange_info,
    spot_exchange_info,
)
from runtime.exchanges._bybit_info import LINEAR_INSTRUMENTS, SPOT_INSTRUMENTS, instruments_info
from runtime.exchanges.ccxt._urls import point_ccxt_at
from runtime.testing.loopback import LoopbackExchange
from runtime.testing.loopback._bybit_server import BybitLoopbackExchange

__all__ = [
    "EXCHANGES",
    "SERVER_TIME_MS",
    "SOURCES",
    "build_snapshot",
    "build_snapshot_from_loopback",
    "main",
    "render",
    "write_snapshots",
]

#: Fixed server time of the canned responses: 2025-01-01T00:00:00Z.
SERVER_TIME_MS: Final = 1_735_689_600_000
#: The exchanges a snapshot is produced for.
EXCHANGES: Final = ("binance", "binanceusdm", "bybit")
GENERATED_BY: Final = "python -m runtime.testing._snapshot"
MARKETS_DIR: Final = Path(__file__).resolve().parents[1] / "exchanges" / "markets"
#: Where the exchangeInfo bodies come from (see the module doc).
SOURCES: Final = ("loopback", "canned")
# ccxt's fetchMarkets restricted to the one market type each exchange snapshots.
_MARKET_TYPES: Final = {
    "binance": ["spot"],
    "binanceusdm": ["linear"],
    "bybit": ["spot", "linear"],
}


def _canned(url: str, method: str) -> dict[str, Any]:
    parts = urlsplit(url)
    path = parts.path
    if method == "GET" and path == "/v5/market/instruments-info":
        query = dict(parse_qsl(parts.query))
        if query.get("status") == "PreLaunch":  # ccxt also asks for pre-launch perpetuals
            return instruments_info("none", SERVER_TIME_MS) | {
                "result": {"category": query["category"], "list": [], "nextPageCursor": ""}
            }
        return instruments_info(query.get("category", ""), SERVER_TIME_MS)
    if method == "GET" and path == "/api/v3/exchangeInfo":
        return spot_exchange_info(SERVER_TIME_MS)
    if method == "GET" and path == "/fapi/v1/exchangeInfo":
        return futures_exchange_info(SERVER_TIME_MS)
    # The snapshot must stay offline: a new endpoint in load_markets needs a canned body here.
    raise RuntimeError(f"no canned response for {method} {url}; add one to _snapshot._canned")


class _CannedBinance(ccxt.binance):
    def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> dict[str, Any]:
        return _canned(url, method)


class _CannedBinanceUsdm(ccxt.binanceusdm):
    def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> dict[str, Any]:
        return _canned(url, method)


class _CannedBybit(ccxt.bybit):
    def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> dict[str, Any]:
        return _canned(url, method)


def _exchange(name: str) -> Any:
    # Restrict each exchange to the one market type it snapshots, so only one endpoint is hit.
    if name == "binance":
        return _CannedBinance({"options": {"fetchMarkets": {"types": ["spot"]}}})
    if name == "binanceusdm":
        return _CannedBinanceUsdm({"options": {"fetchMarkets": {"types": ["linear"]}}})
    if name == "bybit":
        return _CannedBybit({"options": {"fetchMarkets": {"types": _MARKET_TYPES["bybit"]}}})
    raise ValueError(f"no snapshot for exchange {name!r}; valid: {', '.join(EXCHANGES)}")


def build_snapshot(exchange: str) -> dict[str, Any]:
    """The snapshot document of ``exchange`` (one of :data:`EXCHANGES`), as JSON-ready data,
    from the canned ``exchangeInfo`` (instruments-info) bodies.

    ``{"ccxt_version": ..., "generated_by": ..., "markets": {symbol: unified market}}``, with the
    markets exactly as ``load_markets()`` of real ccxt returns them, ``info`` included.
    """
    return _document(exchange, _exchange(exchange).load_markets())


def build_snapshot_from_loopback(exchange: str, base_url: str) -> dict[str, Any]:
    """The snapshot document of ``exchange``, from real async ccxt loading the markets of the
    loopback exchange at ``base_url`` (no credentials: only ``exchangeInfo`` is requested).

    Runs its own asyncio loop: call it from synchronous code, not from a running loop.
    """
    if exchange not in _MARKET_TYPES:
        raise ValueError(f"no snapshot for exchange {exchange!r}; valid: {', '.join(EXCHANGES)}")

    async def load() -> dict[str, Any]:
        cls = getattr(ccxt_async, exchange)
        config = {"options": {"fetchMarkets": {"types": _MARKET_TYPES[exchange]}}}
        ex = point_ccxt_at(cls({**config, "timeout_on_exit": 0}), base_url)
        try:
            markets: dict[str, Any] = await ex.load_markets()
        finally:
            await ex.close()
        return markets

    return _document(exchange, asyncio.run(load()))


def _document(exchange: str, markets: dict[str, Any]) -> dict[str, Any]:
    wanted = {
        "binance": list(SPOT_SYMBOLS),
        "binanceusdm": list(FUTURES_SYMBOLS),
        "bybit": [i.symbol for i in (*SPOT_INSTRUMENTS.values(), *LINEAR_INSTRUMENTS.values())],
    }[exchange]
    missing = sorted(set(wanted) - set(markets))
    if missing:
        raise RuntimeError(f"ccxt did not produce markets {missing} for {exchange}")
    document = {
        "ccxt_version": ccxt.__version__,
        "generated_by": GENERATED_BY,
        "markets": {symbol: markets[symbol] for symbol in sorted(wanted)},
    }
    # A JSON round trip turns ccxt's tuples and the like into what a reader of the file gets.
    result: dict[str, Any] = json.loads(render(document))
    return result


def render(document: dict[str, Any]) -> str:
    """The file text of a snapshot document: sorted keys, indent 1, trailing newline."""
    return json.dumps(document, sort_keys=True, indent=1, allow_nan=False) + "\n"


def write_snapshots(directory: Path = MARKETS_DIR, *, source: str = "loopback") -> list[Path]:
    """Write ``<exchange>.json`` for every exchange in :data:`EXCHANGES`; return the paths.

    ``source`` is "loopback" (start a loopback exchange and read it over HTTP) or "canned".
    """
    if source not in SOURCES:
        raise ValueError(f"source {source!r} is not valid; use one of {', '.join(SOURCES)}")
    documents: dict[str, dict[str, Any]] = {}
    if source == "canned":
        documents = {name: build_snapshot(name) for name in EXCHANGES}
    else:
        with LoopbackExchange(history=10) as server:
            assert server.base_url is not None
            for name in ("binance", "binanceusdm"):
                documents[name] = build_snapshot_from_loopback(name, server.base_url)
        with BybitLoopbackExchange(history=10) as bybit:
            assert bybit.base_url is not None
            documents["bybit"] = build_snapshot_from_loopback("bybit", bybit.base_url)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in EXCHANGES:
        path = directory / f"{name}.json"
        path.write_text(render(documents[name]), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=GENERATED_BY.removeprefix("python -m "), description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=MARKETS_DIR, help="output directory")
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="loopback",
        help="read exchangeInfo from a loopback exchange over HTTP (default) or canned bodies",
    )
    args = parser.parse_args(argv)
    for path in write_snapshots(args.out, source=args.source):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
