"""``vigil data``: download bars (and funding) into the market-data store, and list it.

vigil data download EXCHANGE SYMBOL... --timeframe 1m --since 2024-01-01 [--until ...] [--funding]
vigil data list [--store PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import pandas as pd

from runtime.data import Downloaded, MarketStore, download_ohlcv

__all__ = ["add_data_parser", "cmd_data"]


def add_data_parser(sub: Any) -> None:
    """Register ``vigil data`` on the CLI's subparsers."""
    data = sub.add_parser("data", help="download and list market data (bars, funding)")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    down = data_sub.add_parser("download", help="download bars into the market-data store")
    down.add_argument("exchange", help="ccxt exchange id, e.g. binance")
    down.add_argument("symbols", nargs="+", metavar="SYMBOL", help="e.g. BTC/USDT BTC/USDT:USDT")
    down.add_argument("--timeframe", default="1m", help="bar length (default 1m)")
    down.add_argument("--since", required=True, help="first bar time, e.g. 2024-01-01")
    down.add_argument("--until", default=None, help="end time, exclusive (default now)")
    down.add_argument(
        "--funding", action="store_true", help="also store funding rates of perpetuals"
    )
    down.add_argument("--store", default=None, help="store root (default $VIGIL_HOME/data)")
    lst = data_sub.add_parser("list", help="what the market-data store holds")
    lst.add_argument("--store", default=None, help="store root (default $VIGIL_HOME/data)")


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "download":
        return _download(args)
    return _list(args)


def _download(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    results = download_ohlcv(
        args.exchange,
        args.symbols,
        args.timeframe,
        args.since,
        args.until,
        store=args.store,
        funding=args.funding,
    )
    print(_summary(results, time.perf_counter() - t0, MarketStore(args.store)))
    return 0


def _summary(results: list[Downloaded], elapsed: float, store: MarketStore) -> str:
    """One line: what was added, how many requests, and what each series now holds."""
    added = sum(r.added for r in results)
    requests = sum(r.requests for r in results)
    parts = []
    for r in results:
        if r.note:
            parts.append(r.note)
            continue
        span = f"{_fmt(r.first)}..{_fmt(r.last)}" if r.first is not None else "empty"
        gaps = f", {r.gaps} gaps" if r.gaps else ""
        parts.append(f"{r.symbol} {r.series} {r.rows:,} rows {span}{gaps}")
    return (
        f"downloaded {added:,} rows in {requests} requests in {elapsed:.1f} s into {store.root}: "
        + "; ".join(parts)
    )


def _fmt(ms: int | None) -> str:
    if ms is None:
        return "-"
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")


def _list(args: argparse.Namespace) -> int:
    store = MarketStore(args.store)
    frame = store.catalog()
    if not len(frame):
        print(f"the market-data store {store.root} is empty; fill it with `vigil data download`")
        return 0
    shown = frame.copy()
    for col in ("first", "last", "complete_until"):
        shown[col] = [_fmt(None if v is None or pd.isna(v) else v.value // 1_000_000)
                      for v in shown[col]]  # fmt: skip
    shown = shown.rename(columns={"complete_until": "complete until"})
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        sys.stdout.write(f"{store.root}\n{shown.to_string(index=False)}\n")
    return 0
