"""`vigil run` flags that override the strategy file: --markets, --timeframe, --param; and the
checks of --since/--until, so a bad value is a message, not a pandas traceback."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from runtime._errors import ConfigError
from runtime.model._bars import TIMEFRAMES


def add_override_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--markets",
        default=None,
        metavar="SYMBOL[,SYMBOL...]",
        help="trade these markets instead of the strategy's, e.g. ETH/BTC,LTC/BTC",
    )
    parser.add_argument("--timeframe", default=None, help="tick at this timeframe instead, e.g. 5m")
    parser.add_argument(
        "--param",
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help="override a class attribute the strategy declares, e.g. --param fast=20 (repeatable)",
    )


def params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The `strategy(..., params=)` the flags ask for (text values; `with_params` converts
    them to the declared types)."""
    params: dict[str, Any] = {}
    for spec in args.param or ():
        name, sep, value = spec.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--param {spec!r} must be NAME=VALUE, e.g. --param fast=20")
        params[name.strip()] = value.strip()
    if args.markets is not None:
        markets = [m.strip() for m in args.markets.split(",") if m.strip()]
        if not markets or any("/" not in m for m in markets):
            raise ConfigError(
                f"--markets {args.markets!r} must be symbols separated by commas, e.g. "
                "BTC/USDT,ETH/USDT"
            )
        params["markets"] = markets
    if args.timeframe is not None:
        if args.timeframe not in TIMEFRAMES:
            raise ConfigError(
                f"--timeframe {args.timeframe!r} is not a timeframe; use one of "
                + ", ".join(TIMEFRAMES)
            )
        params["timeframe"] = args.timeframe
    return params


def check_time_flag(flag: str, value: str | None) -> pd.Timestamp | None:
    """A --since/--until value as a UTC time; ConfigError naming the flag if it is not one."""
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = None
    if stamp is None or stamp is pd.NaT:
        raise ConfigError(
            f"{flag} {value!r} is not a date or time; write e.g. 2024-01-31 or "
            "'2024-01-31 12:00' (UTC)"
        )
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def check_time_flags(args: argparse.Namespace) -> None:
    """--since and --until cut the --data files of a Sim run: refuse them elsewhere rather
    than ignore them."""
    since = check_time_flag("--since", args.since)
    until = check_time_flag("--until", args.until)
    if since is not None and until is not None and since >= until:
        raise ConfigError(f"--since {args.since} is not before --until {args.until}")
    if (since is not None or until is not None) and (args.mode != "sim" or not args.data):
        raise ConfigError(
            "--since and --until select bars of --data files in a Sim run; without --data, "
            "Sim generates --bars bars (see --seed), and Paper and Live run from now"
        )


def sandbox_for(mode: str, flag: bool | None) -> bool:
    """--sandbox/--no-sandbox as given; unset, Live uses the test network and Paper reads
    production market data (public, no keys needed: the prices a strategy will trade at)."""
    return flag if flag is not None else mode != "paper"
