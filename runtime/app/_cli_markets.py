"""``vigil markets``: the markets cache (DESIGN §10b).

vigil markets save EXCHANGE [--sandbox]              load every market from the exchange and
                                                     cache it ($VIGIL_HOME/markets/EXCHANGE.json)
vigil markets list EXCHANGE [--quote USDT] [--type swap]
                                                     the cached (or bundled) markets
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from runtime._errors import ConfigError
from runtime.exchanges._markets import offline_markets, save_markets_cache
from runtime.exchanges.ccxt._catalog import CCXT_VERSION, fetch_markets

__all__ = ["add_markets_parser", "cmd_markets"]

_TYPES = ("spot", "swap", "future", "option")


def add_markets_parser(sub: Any) -> None:
    """Register ``markets save`` and ``markets list`` on the top-level subparsers."""
    markets = sub.add_parser("markets", help="save and list an exchange's markets")
    actions = markets.add_subparsers(dest="markets_command", required=True, metavar="ACTION")
    save = actions.add_parser(
        "save", help="load an exchange's markets now and save them to the markets cache"
    )
    save.add_argument("exchange", metavar="EXCHANGE", help="a ccxt exchange id, e.g. okx")
    save.add_argument(
        "--sandbox", action="store_true", help="load from the exchange's testnet (ccxt sandbox)"
    )
    listing = actions.add_parser("list", help="the markets of an exchange, cached or bundled")
    listing.add_argument("exchange", metavar="EXCHANGE", help="a ccxt exchange id, e.g. okx")
    listing.add_argument("--quote", default=None, help="only markets quoted in this currency")
    listing.add_argument("--type", choices=_TYPES, default=None, help="only this market type")


def cmd_markets(args: argparse.Namespace) -> int:
    if args.markets_command == "save":
        return _save(args.exchange, sandbox=args.sandbox)
    return _list(args.exchange, quote=args.quote, kind=args.type)


def _save(exchange: str, *, sandbox: bool) -> int:
    markets = fetch_markets(exchange, sandbox=sandbox)
    url = os.environ.get(f"VIGIL_{exchange.upper()}_URL")
    path = save_markets_cache(
        exchange,
        markets,
        ccxt_version=CCXT_VERSION,
        source=url or ("sandbox" if sandbox else "exchange"),
    )
    kinds: dict[str, int] = {}
    for market in markets.values():
        kinds[str(market.get("type"))] = kinds.get(str(market.get("type")), 0) + 1
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    print(f"saved {len(markets)} {exchange} markets ({detail}) to {path}")
    return 0


def _list(exchange: str, *, quote: str | None, kind: str | None) -> int:
    offline = offline_markets(exchange)
    if offline is None:
        raise ConfigError(
            f"no markets of {exchange!r} are cached or bundled: run `vigil markets save "
            f"{exchange}` first"
        )
    rows = [
        m
        for _, m in sorted(offline.markets.items())
        if (quote is None or str(m.get("quote", "")).upper() == quote.upper())
        and (kind is None or m.get("type") == kind)
    ]
    print(f"{exchange}: {len(rows)} of {len(offline.markets)} markets, from {offline.origin}")
    if rows:
        print(
            f"{'symbol':<24} {'type':<6} {'amount step':>12} {'price tick':>12} "
            f"{'min amount':>12} {'min cost':>10} {'maker':>8} {'taker':>8}"
        )
    for m in rows:
        precision = m.get("precision") or {}
        limits = m.get("limits") or {}
        print(
            f"{m['symbol']:<24} {m.get('type') or '':<6} {_num(precision.get('amount')):>12} "
            f"{_num(precision.get('price')):>12} "
            f"{_num((limits.get('amount') or {}).get('min')):>12} "
            f"{_num((limits.get('cost') or {}).get('min')):>10} "
            f"{_num(m.get('maker')):>8} {_num(m.get('taker')):>8}"
        )
    return 0


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):g}"
