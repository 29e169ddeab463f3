"""A strategy's venue at `strategy(...)`: its credentials, and its markets (DESIGN §10b).

Where the markets come from, by mode:

* **Sim**: the markets cache, else the bundled snapshot; neither is a ConfigError saying to
  run ``vigil markets save EXCHANGE``. ``exchange="sim"`` is the one venue with synthetic
  markets, each scaled from its bars' first close.
* **Paper and Live**: the cache or the snapshot when they hold every market; otherwise the
  exchange itself, loaded now and saved to the cache. Both modes load the exchange's markets
  again when they start (:func:`remember_markets` then refreshes the cache).

A market the source does not hold is refused, naming close matches; a spot strategy on a
derivatives venue (and the reverse) is refused naming the exchange id to use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from runtime._errors import ConfigError, NetworkError
from runtime.engine._runtime import Runtime
from runtime.exchanges import ccxt as ccxt_venue  # loads ccxt on first use (never in Sim)
from runtime.exchanges._markets import (
    SIM_EXCHANGE,
    SNAPSHOT_EXCHANGES,
    margin_on_spot_venue,
    markets_exchange,
    offline_markets,
    resolve_markets,
    save_markets_cache,
    spot_on_derivatives_venue,
    synthetic_market,
)
from runtime.model._assets import AssetInstance
from runtime.model._bars import Bars
from runtime.model._modes import Mode, Sim

__all__ = [
    "adopt_exchange_markets",
    "remember_markets",
    "require_credentials",
    "strategy_markets",
    "venue_id",
]

log = logging.getLogger("vigil.venues")


def venue_id(exchange: str, margin: str | None) -> str:
    """The ccxt id a strategy's orders go to ("binance" with margin trades "binanceusdm")."""
    return markets_exchange(exchange, margin)


def require_credentials(exchange: str, margin: str | None) -> None:
    """Refuse a Live strategy whose environment lacks the credentials ccxt requires for its
    venue (``requiredCredentials``: OKX's passphrase is ``VIGIL_OKX_PASSWORD``)."""
    _check_exchange(exchange, margin)
    venue = venue_id(exchange, margin)
    needed = ccxt_venue.required_credentials(venue)
    missing = [name for name in needed if not os.environ.get(name, "").strip()]
    if missing:
        raise ConfigError(
            f"Live mode on {venue} needs credentials: set {' and '.join(missing)} in the "
            "environment (never in strategy files); `vigil exchange serve` prints them for the "
            "loopback exchange"
        )


def strategy_markets(
    exchange: str,
    margin: str | None,
    symbols: list[str],
    *,
    mode: Mode,
    bars: Bars | None,
    sandbox: bool,
) -> dict[str, dict[str, Any]]:
    """The market of each symbol, by the rules of the module docstring."""
    if exchange == SIM_EXCHANGE:
        if not isinstance(mode, Sim):
            raise ConfigError(
                f"exchange={SIM_EXCHANGE!r} (synthetic markets) runs in Sim only; name a ccxt "
                "exchange id for Paper and Live, e.g. exchange='binance'"
            )
        assert bars is not None
        return {
            sym: synthetic_market(
                sym, price=float(bars.columns[sym]["close"][0]), contract=bool(margin)
            )
            for sym in symbols
        }
    venue = venue_id(exchange, margin)
    offline = offline_markets(venue)
    if isinstance(mode, Sim) and offline is not None:
        # Markets saved for this venue: its id is known, and its market types are in them (a
        # backtest then needs no ccxt, ~100 MB).
        _check_market_types(venue, margin, offline.markets.values(), symbols)
    else:
        _check_exchange(exchange, margin, symbols)
    if isinstance(mode, Sim):
        if offline is None:
            raise ConfigError(
                f"Sim on {venue} needs its markets (precision, limits, fees) and none are "
                f"cached: run `vigil markets save {venue}` once while online (bundled: "
                f"{', '.join(SNAPSHOT_EXCHANGES)}), or use exchange='sim' for synthetic markets"
            )
        return resolve_markets(
            venue, symbols, offline.markets, margin=margin, origin=offline.origin
        )
    if offline is not None and all(s in offline.markets for s in symbols):
        return resolve_markets(
            venue, symbols, offline.markets, margin=margin, origin=offline.origin
        )
    # Paper or Live, and the offline markets miss a symbol: ask the exchange itself.
    try:
        markets = ccxt_venue.fetch_markets(exchange, sandbox=sandbox, margin=margin)
    except NetworkError as exc:
        if offline is not None:  # refuse with what we have, and say what failed
            log.warning("could not load %s markets from the exchange: %s", venue, exc)
            return resolve_markets(
                venue, symbols, offline.markets, margin=margin, origin=offline.origin
            )
        raise ConfigError(
            f"{type(mode).__name__} on {venue} needs its markets, and loading them failed: "
            f"{exc}. Run `vigil markets save {venue}` when the exchange is reachable"
        ) from exc
    remember_markets(venue, markets, sandbox=sandbox)
    return resolve_markets(venue, symbols, markets, margin=margin, origin=f"the exchange {venue}")


def remember_markets(
    venue: str, markets: Mapping[str, Mapping[str, Any]], *, sandbox: bool
) -> None:
    """Save markets loaded from the exchange to the cache. A failure to write is logged, never
    raised: it must not stop a run."""
    if not markets:
        return
    url = os.environ.get(f"VIGIL_{venue.upper()}_URL")
    try:
        save_markets_cache(
            venue,
            markets,
            ccxt_version=ccxt_venue.CCXT_VERSION,
            source=url or ("sandbox" if sandbox else "exchange"),
        )
    except OSError as exc:
        log.warning("could not save %s markets to the cache: %s", venue, exc)


def _check_exchange(exchange: str, margin: str | None, symbols: list[str] | None = None) -> None:
    """The id (close matches named) and margin mode; then, from ccxt's ``has`` table, a spot
    strategy on a derivatives-only venue or a margin strategy on a spot-only one."""
    ccxt_venue.resolve_settings(
        exchange, sandbox=False, margin=margin, options=None, config=None, env={}
    )
    venue = venue_id(exchange, margin)
    spot, swap = ccxt_venue.market_types(venue)
    _refuse_market_type(venue, margin, spot, swap, symbols)


def _check_market_types(
    venue: str,
    margin: str | None,
    markets: Iterable[Mapping[str, Any]],
    symbols: list[str] | None,
) -> None:
    """`_check_exchange`'s market-type rule, read from the venue's saved markets."""
    listed = list(markets)
    spot = any(m.get("spot") for m in listed)
    swap = any(m.get("swap") for m in listed)
    _refuse_market_type(venue, margin, spot, swap, symbols)


def _refuse_market_type(
    venue: str, margin: str | None, spot: bool | None, swap: bool | None, symbols: list[str] | None
) -> None:
    example = (symbols or ["BTC/USDT"])[0]
    if margin is None and spot is False:
        raise ConfigError(spot_on_derivatives_venue(venue, example))
    if margin is not None and swap is False:
        raise ConfigError(margin_on_spot_venue(venue, example))


def adopt_exchange_markets(
    rt: Runtime, markets: Mapping[str, Mapping[str, Any]], *, venue: str, sandbox: bool
) -> list[AssetInstance]:
    """At a Paper or Live start: take each asset's rules from the markets the exchange just
    sent, and save those markets to the cache. A market the exchange no longer lists is a
    ConfigError naming close matches. Returns the assets whose market changed."""
    fresh = resolve_markets(
        venue, list(rt.universe.keys()), markets, margin=rt.margin, origin=f"the exchange {venue}"
    )
    remember_markets(venue, markets, sandbox=sandbox)
    changed = []
    for ai in rt.universe:
        if ai.market != fresh[ai.symbol]:
            ai.set_market(fresh[ai.symbol])
            changed.append(ai)
    return changed
