"""Offline market definitions: the shipped ccxt snapshot, plus synthetic markets.

Market definitions are ccxt's unified market dicts (DESIGN §2). Live, they come from the
exchange; offline (Sim, Paper, tests) they come from ``markets/<exchange>.json``, which
``python -m runtime.testing._snapshot`` produces by running real ccxt parsing over the
loopback exchange's ``exchangeInfo``. A symbol outside the snapshot can still be simulated with
:func:`synthetic_market`.
"""

from __future__ import annotations

import copy
import json
import math
from functools import cache
from importlib import resources
from typing import Any, Final

from runtime._errors import ConfigError

__all__ = [
    "MARGIN_MODES",
    "SNAPSHOT_EXCHANGES",
    "load_markets",
    "market_for",
    "markets_exchange",
    "synthetic_market",
]

#: Exchanges with a shipped snapshot: Binance spot and Binance USDⓈ-M futures.
SNAPSHOT_EXCHANGES: Final = ("binance", "binanceusdm")
#: Valid ``margin`` settings of a strategy.
MARGIN_MODES: Final = (None, "isolated", "cross")
# Where a margin strategy's markets live, by the exchange the strategy names.
_MARGIN_EXCHANGE: Final = {"binance": "binanceusdm", "binanceusdm": "binanceusdm"}
# Quotes worth about one US dollar, which get Binance's usual 5-unit minimum order cost.
_USD_QUOTES: Final = frozenset({"USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI", "USD"})


def markets_exchange(exchange: str, margin: str | None) -> str:
    """The snapshot exchange that holds the markets of a strategy on ``exchange``.

    A spot strategy on "binance" trades "binance" markets; a margin strategy (isolated or
    cross) on "binance" trades the USDⓈ-M perpetuals of "binanceusdm".
    """
    if margin not in MARGIN_MODES:
        raise ConfigError(
            f"margin {margin!r} is not a margin mode; valid: None (spot), 'isolated', 'cross'"
        )
    if exchange not in SNAPSHOT_EXCHANGES:
        raise ConfigError(_unknown_exchange(exchange))
    return exchange if margin is None else _MARGIN_EXCHANGE[exchange]


def load_markets(exchange: str) -> dict[str, dict[str, Any]]:
    """All snapshot markets of ``exchange``, by ccxt symbol.

    The result is a fresh deep copy: a caller may change it without affecting anyone else.
    """
    return copy.deepcopy(_snapshot(exchange))


def market_for(exchange: str, symbol: str) -> dict[str, Any]:
    """The snapshot market of ``symbol`` on ``exchange`` (a fresh copy).

    On a futures exchange a spot-style symbol resolves to its linear perpetual, as ccxt does:
    ``market_for("binanceusdm", "BTC/USDT")`` is the ``"BTC/USDT:USDT"`` market.
    """
    markets = _snapshot(exchange)
    market = markets.get(symbol)
    if market is None and ":" not in symbol and "/" in symbol:
        market = markets.get(f"{symbol}:{symbol.split('/', 1)[1]}")
    if market is None:
        raise ConfigError(
            f"market {symbol!r} is not in the {exchange} snapshot; available: "
            f"{', '.join(markets)}. Use one of those, or pass bars for it and let Sim "
            "build a synthetic market"
        )
    return copy.deepcopy(market)


def synthetic_market(symbol: str, *, price: float, contract: bool = False) -> dict[str, Any]:
    """A plausible unified market for a symbol the snapshot lacks, scaled from ``price``.

    ``symbol`` is ``"BASE/QUOTE"`` or, for a linear perpetual, ``"BASE/QUOTE:SETTLE"``
    (``contract=True`` turns ``"BASE/QUOTE"`` into ``"BASE/QUOTE:QUOTE"``). The tick keeps six
    significant digits of ``price``; the amount step is the power of ten just below ``1/price``,
    capped at 1, so a step is worth 1 to 10 quote units for prices above 1, as on Binance. The
    minimum cost is 5 for dollar-like quotes and unset otherwise; fees are Binance's defaults.
    ``info`` is ``{"synthetic": True, ...}`` so a reader can tell it from a real market.
    """
    if not (isinstance(price, int | float) and math.isfinite(price) and price > 0):
        raise ConfigError(
            f"price {price!r} for a synthetic {symbol!r} market must be finite and positive; "
            "pass a recent price of the symbol"
        )
    base, sep, rest = symbol.partition("/")
    quote, colon, settle = rest.partition(":")
    if not sep or not base or not quote or (colon and not settle):
        raise ConfigError(
            f"symbol {symbol!r} is not a ccxt symbol; write 'BASE/QUOTE' (spot) or "
            "'BASE/QUOTE:SETTLE' (perpetual), e.g. 'BTC/USDT' or 'BTC/USDT:USDT'"
        )
    contract = contract or bool(colon)
    if contract and not colon:
        settle = quote
    if contract and settle != quote:
        raise ConfigError(
            f"synthetic market {symbol!r}: only linear perpetuals (settle == quote) are "
            f"supported; write '{base}/{quote}:{quote}'"
        )
    unified = f"{base}/{quote}:{settle}" if contract else f"{base}/{quote}"
    tick = _power_of_ten(math.floor(math.log10(price)) - 5)
    step = _power_of_ten(min(0, math.floor(math.log10(1.0 / price))))
    min_cost = 5.0 if quote in _USD_QUOTES else None
    market_id = f"{base}{quote}"
    return {
        "id": market_id,
        "lowercaseId": market_id.lower(),
        "symbol": unified,
        "base": base,
        "quote": quote,
        "settle": settle if contract else None,
        "baseId": base,
        "quoteId": quote,
        "settleId": settle if contract else None,
        "type": "swap" if contract else "spot",
        "spot": not contract,
        "margin": False,
        "marginModes": {"cross": contract, "isolated": contract},
        "swap": contract,
        "future": False,
        "option": False,
        "index": None if contract else False,
        "stock": False,
        "active": True,
        "contract": contract,
        "linear": True if contract else None,
        "inverse": False if contract else None,
        "subType": "linear" if contract else None,
        # Binance's defaults, as ccxt applies them (see runtime.exchanges._binance_info).
        "taker": 0.0005 if contract else 0.001,
        "maker": 0.0002 if contract else 0.001,
        "feeSide": "get",
        "tierBased": False,
        "percentage": True,
        "contractSize": 1.0 if contract else None,
        "expiry": None,
        "expiryDatetime": None,
        "strike": None,
        "optionType": None,
        "created": None,
        "precision": {"amount": step, "price": tick, "base": 1e-08, "quote": 1e-08},
        "limits": {
            "leverage": {"min": None, "max": None},
            "amount": {"min": step, "max": None},
            "price": {"min": tick, "max": None},
            "cost": {"min": min_cost, "max": None},
            "market": {"min": step if contract else 0.0, "max": None},
        },
        "info": {"synthetic": True, "reference_price": price},
    }


def _power_of_ten(exponent: int) -> float:
    # float("1e-6") is the double nearest 10**-6, as ccxt's parse_number gives; 10.0**-6 is not.
    return float(f"1e{exponent}")


def _unknown_exchange(exchange: str) -> str:
    return (
        f"exchange {exchange!r} has no offline market snapshot; available: "
        f"{', '.join(SNAPSHOT_EXCHANGES)}. Use one of those, or Live mode to load markets "
        "from the exchange"
    )


@cache
def _snapshot(exchange: str) -> dict[str, dict[str, Any]]:
    # Cached parsed file; never handed out directly, since callers may mutate what they get.
    if exchange not in SNAPSHOT_EXCHANGES:
        raise ConfigError(_unknown_exchange(exchange))
    text = resources.files("runtime.exchanges").joinpath("markets", f"{exchange}.json")
    document = json.loads(text.read_text(encoding="utf-8"))
    markets: dict[str, dict[str, Any]] = document["markets"]
    return markets
