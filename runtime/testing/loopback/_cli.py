"""``vigil exchange serve``: run the loopback exchange until Ctrl-C.

Prints the environment a strategy needs (``VIGIL_BINANCE_URL``, ``..._API_KEY``, ``..._SECRET``
and the same for ``BINANCEUSDM``; with ``--venue bybit``, ``VIGIL_BYBIT_*``) on stdout, one
``NAME=value`` line each, so
``eval "$(vigil exchange serve ... | head -6)"``-style use works. Those lines carry the secret on
purpose; the server's log never does.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
from collections.abc import Sequence
from typing import Final

from runtime.model._bars import TIMEFRAMES, timeframe_ns
from runtime.testing.loopback._bybit_server import BybitLoopbackExchange
from runtime.testing.loopback._server import LoopbackExchange

__all__ = ["serve"]

DEFAULT_PORT: Final = 8765
_BALANCE: Final = re.compile(r"^(?:(spot|futures):)?([A-Z0-9]{1,20})=([0-9]+(?:\.[0-9]+)?)$")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vigil exchange serve",
        description="Serve a local Binance (spot and USD-M futures) for rehearsing strategies.",
    )
    p.add_argument(
        "--venue",
        choices=("binance", "bybit"),
        default="binance",
        help="the dialect: binance (spot and USD-M futures, the default) or bybit (v5, one "
        "unified account: spot and linear USDT perpetuals)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument("--api-key", default=None, help="accepted API key (generated when absent)")
    p.add_argument("--secret", default=None, help="its HMAC secret (generated when absent)")
    p.add_argument(
        "--balance",
        action="append",
        default=[],
        metavar="[spot:|futures:]ASSET=AMOUNT",
        help="starting balance, repeatable; without a prefix it applies to both accounts "
        "(default USDT=100000 on each)",
    )
    p.add_argument(
        "--timeframe",
        default=None,
        choices=list(TIMEFRAMES),
        help="bar timeframe of the market (default 1m, or the data's)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated market")
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="directory of BASE_QUOTE-<tf>.feather bars (e.g. ../shared/data)",
    )
    p.add_argument(
        "--bar-ms",
        type=float,
        default=None,
        help="wall milliseconds per bar (default: the timeframe, i.e. real time)",
    )
    p.add_argument("--manual", action="store_true", help="never advance bars on a timer")
    return p


def _balances(specs: Sequence[str]) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    spot: dict[str, float] = {}
    futures: dict[str, float] = {}
    for spec in specs:
        match = _BALANCE.match(spec)
        if match is None:
            raise SystemExit(
                f"vigil exchange serve: --balance {spec!r} is not [spot:|futures:]ASSET=AMOUNT, "
                "e.g. USDT=100000 or spot:BTC=1.5"
            )
        where, asset, amount = match.groups()
        for account, table in (("spot", spot), ("futures", futures)):
            if where in (None, account):
                table[asset] = float(amount)
    return spot or None, futures or None


def build(argv: Sequence[str]) -> LoopbackExchange | BybitLoopbackExchange:
    """The loopback exchange that ``serve(argv)`` would run (not started)."""
    args = _parser().parse_args(list(argv))
    if (args.api_key is None) != (args.secret is None):
        raise SystemExit("vigil exchange serve: give both --api-key and --secret, or neither")
    spot, futures = _balances(args.balance)
    bar_ms = args.bar_ms
    if bar_ms is None and not args.manual:
        bar_ms = timeframe_ns(args.timeframe or "1m") / 1e6
    if args.venue == "bybit":
        # One unified account: every --balance goes to it, whatever its prefix.
        return BybitLoopbackExchange(
            api_key=args.api_key,
            secret=args.secret,
            balances={**(futures or {}), **(spot or {})} or None,
            timeframe=args.timeframe,
            seed=args.seed,
            data=args.data,
            bar_interval_ms=None if args.manual else bar_ms,
            host=args.host,
            port=args.port,
        )
    return LoopbackExchange(
        api_key=args.api_key,
        secret=args.secret,
        spot_balances=spot,
        futures_balances=futures,
        timeframe=args.timeframe,
        seed=args.seed,
        data=args.data,
        bar_interval_ms=None if args.manual else bar_ms,
        host=args.host,
        port=args.port,
    )


def serve(argv: Sequence[str], *, until: threading.Event | None = None) -> int:
    """Run ``vigil exchange serve ARGV`` until Ctrl-C (or ``until`` is set); returns 0.

    Prints one ``NAME=value`` environment line per variable, then ``# serving; Ctrl-C stops``.
    """
    exchange = build(argv)
    exchange.start()
    try:
        for name, value in exchange.env().items():
            print(f"{name}={value}")
        print("# serving; Ctrl-C stops", flush=True)
        stop = until or threading.Event()
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            print("# stopped", file=sys.stderr)
    finally:
        exchange.stop()
    return 0
