"""Market definitions: the markets cache, the shipped snapshots, and resolving a strategy's
markets against them (DESIGN §10b).

Market definitions are ccxt's unified market dicts (DESIGN §2). Paper and Live load them from
the exchange and save them to the **markets cache**, ``$VIGIL_HOME/markets/<exchange>.json``
(``VIGIL_HOME`` defaults to ``~/.vigil``; ``vigil markets save EXCHANGE`` fills it on demand).
Offline, Sim reads the cache, else a **bundled snapshot** ``markets/<exchange>.json``, which
``python -m runtime.testing._snapshot`` produces by running real ccxt parsing over the loopback
exchange. No market is invented: a symbol the exchange does not list is a ConfigError naming
close matches (:func:`resolve_markets`); :func:`synthetic_market` serves only
``exchange="sim"``.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

from runtime._errors import ConfigError

__all__ = [
    "MARGIN_MODES",
    "SIM_EXCHANGE",
    "SNAPSHOT_EXCHANGES",
    "OfflineMarkets",
    "close_matches",
    "load_markets",
    "margin_on_spot_venue",
    "market_for",
    "markets_cache_path",
    "markets_exchange",
    "offline_markets",
    "resolve_markets",
    "save_markets_cache",
    "spot_on_derivatives_venue",
    "synthetic_market",
    "vigil_home",
]

#: Exchanges with a shipped snapshot (``markets/<exchange>.json``).
SNAPSHOT_EXCHANGES: Final = tuple(
    sorted(
        entry.name.removesuffix(".json")
        for entry in resources.files("runtime.exchanges").joinpath("markets").iterdir()
        if entry.name.endswith(".json")
    )
)
#: The exchange id of a purely simulated venue: synthetic markets, Sim only.
SIM_EXCHANGE: Final = "sim"
GENERATED_BY_CACHE: Final = "vigil markets save"
# The venue that trades what a spot (or derivatives) venue does not, for refusal messages.
_SPOT_VENUE: Final = {
    "binanceusdm": "binance",
    "binancecoinm": "binance",
    "krakenfutures": "kraken",
    "kucoinfutures": "kucoin",
}
_DERIVATIVES_VENUE: Final = {
    "binance": "binanceusdm",
    "kraken": "krakenfutures",
    "kucoin": "kucoinfutures",
}
#: Valid ``margin`` settings of a strategy.
MARGIN_MODES: Final = (None, "isolated", "cross")
# Where a margin strategy's markets live, by the exchange the strategy names.
_MARGIN_EXCHANGE: Final = {"binance": "binanceusdm", "binanceusdm": "binanceusdm"}
# Quotes worth about one US dollar, which get Binance's usual 5-unit minimum order cost.
_USD_QUOTES: Final = frozenset({"USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI", "USD"})


def markets_exchange(exchange: str, margin: str | None) -> str:
    """The exchange id whose markets a strategy on ``exchange`` trades.

    A spot strategy on "binance" trades "binance" markets; a margin strategy (isolated or
    cross) on "binance" trades the USDⓈ-M perpetuals of "binanceusdm". Any other exchange
    trades its own markets (a unified venue such as "bybit" lists spot and perpetuals).
    """
    if margin not in MARGIN_MODES:
        raise ConfigError(
            f"margin {margin!r} is not a margin mode; valid: None (spot), 'isolated', 'cross'"
        )
    return _MARGIN_EXCHANGE.get(exchange, exchange) if margin else exchange


def vigil_home() -> Path:
    """``$VIGIL_HOME``, or ``~/.vigil`` when it is unset or empty."""
    home = os.environ.get("VIGIL_HOME", "").strip()
    return Path(home).expanduser() if home else Path.home() / ".vigil"


def markets_cache_path(exchange: str) -> Path:
    """``$VIGIL_HOME/markets/<exchange>.json``."""
    if not exchange or "/" in exchange or exchange.startswith("."):
        raise ConfigError(f"exchange {exchange!r} is not a ccxt exchange id")
    return vigil_home() / "markets" / f"{exchange}.json"


def save_markets_cache(
    exchange: str, markets: Mapping[str, Mapping[str, Any]], **meta: Any
) -> Path:
    """Write ``markets`` (ccxt's unified dicts by symbol) to the markets cache of ``exchange``,
    atomically (a reader never sees half a file); ``meta`` (ccxt version, source URL ...) goes
    into the document beside them. Returns the path."""
    path = markets_cache_path(exchange)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        **meta,
        "exchange": exchange,
        "generated_by": meta.get("generated_by", GENERATED_BY_CACHE),
        "markets": {symbol: markets[symbol] for symbol in sorted(markets)},
    }
    # ccxt leaves the odd non-JSON value (a Decimal, a tuple) in `info`: keep it as text.
    text = json.dumps(document, sort_keys=True, default=str) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{exchange}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class OfflineMarkets:
    """An exchange's markets read without the network, and where they came from."""

    __slots__ = ("exchange", "markets", "origin")

    def __init__(self, exchange: str, markets: dict[str, dict[str, Any]], origin: str) -> None:
        self.exchange = exchange
        self.markets = markets
        self.origin = origin  # "the markets cache <path>" or "the bundled snapshot"

    def __repr__(self) -> str:
        return f"<OfflineMarkets {self.exchange}: {len(self.markets)} from {self.origin}>"


def offline_markets(exchange: str) -> OfflineMarkets | None:
    """The markets of ``exchange`` from the markets cache, else the bundled snapshot; None when
    neither has them. A damaged cache file is a ConfigError saying how to refresh it."""
    path = markets_cache_path(exchange)
    if path.is_file():
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            markets = document["markets"]
            if not isinstance(markets, dict):
                raise TypeError("'markets' is not an object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"the markets cache {path} is unreadable ({exc}); refresh it with "
                f"`vigil markets save {exchange}` or delete the file"
            ) from exc
        return OfflineMarkets(exchange, markets, f"the markets cache {path}")
    if exchange in SNAPSHOT_EXCHANGES:
        return OfflineMarkets(exchange, load_markets(exchange), "the bundled snapshot")
    return None


def close_matches(symbol: str, symbols: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``symbols`` that look like ``symbol`` (a typo, another case, the spot
    pair of a perpetual or the reverse), best first."""
    by_upper = {s.upper(): s for s in symbols}
    wanted = symbol.upper()
    found = [by_upper[u] for u in difflib.get_close_matches(wanted, by_upper, n=n, cutoff=0.6)]
    # The same pair as another market type ranks first: "BTC/USDT" <-> "BTC/USDT:USDT".
    head = wanted.split(":", 1)[0]
    siblings = [s for u, s in by_upper.items() if u.split(":", 1)[0] == head and u != wanted]
    return list(dict.fromkeys(siblings + found))[:n]


def resolve_markets(
    exchange: str,
    symbols: Iterable[str],
    markets: Mapping[str, Mapping[str, Any]],
    *,
    margin: str | None,
    origin: str,
) -> dict[str, dict[str, Any]]:
    """The market of each of a strategy's ``symbols`` on ``exchange`` (fresh copies).

    Refused with a ConfigError: a symbol ``markets`` does not hold (naming close matches); a
    spot strategy's symbol that is a derivative, or that a derivatives-only venue lists only as
    a perpetual (naming the exchange id to use); a margin strategy's symbol that is not a linear
    perpetual, or that a spot-only venue lists only as spot (likewise).
    """
    has_spot = any(m.get("spot") for m in markets.values())
    has_swap = any(m.get("swap") for m in markets.values())
    resolved: dict[str, dict[str, Any]] = {}
    for symbol in symbols:
        market = markets.get(symbol)
        pair = symbol.split(":", 1)[0]
        if margin is None:
            if market is None and ":" not in symbol and not has_spot and has_swap:
                raise ConfigError(spot_on_derivatives_venue(exchange, symbol))
            if market is not None and not market.get("spot"):
                raise ConfigError(
                    f"market {symbol!r} on {exchange} is a {market.get('type')} market, and a "
                    f"spot strategy (margin=None) trades spot markets: write {pair!r}, or set "
                    "margin='isolated' to trade the perpetual"
                )
        else:
            if market is None and not has_swap and has_spot:
                raise ConfigError(margin_on_spot_venue(exchange, symbol))
            if market is not None and not (market.get("swap") and market.get("linear")):
                raise ConfigError(
                    f"market {symbol!r} on {exchange} is a {market.get('type')} market, and a "
                    f"margin strategy trades linear perpetuals ('{pair}:{_quote(pair)}'); set "
                    "margin=None to trade it as spot"
                )
        if market is None:
            raise ConfigError(_unknown_market(exchange, symbol, markets, origin))
        resolved[symbol] = copy.deepcopy(dict(market))
    return resolved


def spot_on_derivatives_venue(exchange: str, symbol: str) -> str:
    """Why a spot strategy cannot trade ``symbol`` on a derivatives-only ``exchange``."""
    venue = _SPOT_VENUE.get(exchange)
    where = f"exchange={venue!r}" if venue else "the exchange's spot venue in ccxt"
    pair = symbol.split(":", 1)[0]
    return (
        f"exchange {exchange!r} lists derivatives only, so a spot strategy (margin=None) cannot "
        f"trade {pair!r} there: trade spot on {where}, or set margin='isolated' to trade the "
        f"perpetual '{pair}:{_quote(pair)}'"
    )


def margin_on_spot_venue(exchange: str, symbol: str) -> str:
    """Why a margin strategy cannot trade ``symbol`` on a spot-only ``exchange``."""
    venue = _DERIVATIVES_VENUE.get(exchange)
    where = f"exchange={venue!r}" if venue else "the exchange's derivatives venue in ccxt"
    pair = symbol.split(":", 1)[0]
    return (
        f"exchange {exchange!r} lists spot markets only, so a margin strategy cannot trade "
        f"'{pair}:{_quote(pair)}' there: trade perpetuals on {where}, or set margin=None to "
        f"trade the spot pair {pair!r}"
    )


def _quote(symbol: str) -> str:
    return symbol.split(":", 1)[0].partition("/")[2]


def _unknown_market(exchange: str, symbol: str, markets: Mapping[str, Any], origin: str) -> str:
    matches = close_matches(symbol, markets)
    hint = f"did you mean {', '.join(map(repr, matches))}? " if matches else ""
    text = (
        f"market {symbol!r} is not listed by {exchange} ({len(markets)} markets, from "
        f"{origin}); {hint}vigil never invents a market: `vigil markets list {exchange}` "
        "shows the listed ones"
    )
    if origin == "the bundled snapshot":
        text += (
            f"; the snapshot holds a few markets only: `vigil markets save {exchange}` caches "
            "all of the exchange's"
        )
    return text


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
        f"exchange {exchange!r} has no bundled market snapshot (bundled: "
        f"{', '.join(SNAPSHOT_EXCHANGES)}); run `vigil markets save {exchange}` to cache its "
        "markets from the exchange"
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
