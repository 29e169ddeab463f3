"""`vigil new NAME`: write a strategy file to start from, ready to run."""

from __future__ import annotations

import argparse
import keyword
import re
from pathlib import Path

from runtime._errors import ConfigError

TEMPLATE = '''"""{title}: a strategy file for vigil.

Run it: vigil run {file} --mode sim            (a backtest on generated bars)
        vigil run {file} --mode sim --data BTC/USDT=btc.csv --data ETH/USDT=eth.csv
        vigil run {file} --mode paper          (live data, simulated fills)
Tune it without editing: --param fast=20 --markets ETH/USDT --timeframe 5m
"""

from __future__ import annotations

from typing import Any

from runtime import Buy, MarketOrder, Sell, Strategy, call


class {cls}(Strategy):
    exchange = "binance"
    markets = ["BTC/USDT", "ETH/USDT"]
    timeframe = "1m"
    warmup = 60  # bars visible before the first tick

    # Parameters: class attributes, overridden by --param NAME=VALUE or strategy(params=).
    fast = 15
    slow = 60
    allocation = 0.9  # share of each market's slice of cash put to work

    async def on_tick(self, ts: Any) -> None:
        for ai in self.universe:
            fast = ai.ohlcv.sma("close", self.fast)
            slow = ai.ohlcv.sma("close", self.slow)
            free = ai.cash - ai.cash_committed
            holding = free * ai.price >= ai.cost_min
            if fast > slow and not holding:
                budget = self.cash * self.allocation / len(self.universe)
                amount = budget / (ai.price * (1 + ai.taker))
                await call(self, ai, MarketOrder[Buy], amount=amount)
            elif fast < slow and holding:
                await call(self, ai, MarketOrder[Sell], amount=free)

    async def on_order_error(self, ai: Any, order: Any, error: Exception) -> None:
        print(f"{{ai.symbol}}: order refused: {{error}}")
'''


def add_new_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    new = sub.add_parser("new", help="write a strategy file to start from")
    new.add_argument("name", help="the strategy's name, e.g. my_strategy (writes my_strategy.py)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")


def new_main(args: argparse.Namespace) -> int:
    path = Path(args.name if args.name.endswith(".py") else f"{args.name}.py")
    stem = path.stem
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", stem) or keyword.iskeyword(stem):
        raise ConfigError(
            f"strategy name {stem!r} must be a Python identifier (letters, digits and _, not "
            "starting with a digit), e.g. my_strategy"
        )
    if path.exists() and not args.force:
        raise ConfigError(f"{path} exists; pick another name or pass --force to overwrite it")
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: the folder {path.parent} does not exist")
    cls = "".join(part.capitalize() for part in stem.split("_") if part) or "MyStrategy"
    path.write_text(
        TEMPLATE.format(title=stem, file=path, cls=cls if cls[0].isalpha() else f"S{cls}")
    )
    print(f"wrote {path}; run it with: vigil run {path} --mode sim")
    return 0
