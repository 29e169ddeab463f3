"""`vigil sweep`: a parameter sweep from the command line (DESIGN §12).

vigil sweep STRATEGY --param fast=5,10,20 --param slow=30,50 [--scheduler ADDR] --out r.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

# Through the package's lazy facade: dask and optuna load when a sweep runs, not with the CLI.
import runtime
from runtime._errors import ConfigError
from runtime.data import StoreData
from runtime.model import Sim

# The columns printed to the terminal besides the params (the file gets every column).
SHOWN = ("total_return", "max_drawdown", "sharpe", "trades", "seconds", "error")


def add_sweep_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a strategy over a grid of parameters (serially or on a dask cluster)",
        description="One Sim run per combination of --param values (x --market sets); one row "
        "per run with its params, statistics, trace path, seconds and error.",
    )
    p.add_argument("strategy", help="a bundled strategy or a .py path")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="values of one parameter (repeat per parameter); LOW:HIGH:STEP is a range",
    )
    engine = p.add_mutually_exclusive_group()
    engine.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDR",
        help="a dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local cluster, one "
        "worker process per core)",
    )
    engine.add_argument("--serial", action="store_true", help="run in this process, no dask")
    p.add_argument(
        "--market",
        action="append",
        default=None,
        metavar="SYMBOL[,SYMBOL...]",
        help="a set of markets to run on (repeat for several sets; default the strategy's)",
    )
    p.add_argument(
        "--data",
        action="append",
        default=None,
        metavar="[SYMBOL=]PATH",
        help="bars file (CSV/Parquet), repeat as SYMBOL=PATH for several markets; or 'store' "
        "for the market-data store",
    )
    p.add_argument("--since", default=None, help="first bar time with --data store")
    p.add_argument("--until", default=None, help="end time with --data store")
    p.add_argument("--bars", type=int, default=20_000, help="generated bars without --data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cash", type=float, default=None, help="initial cash")
    p.add_argument("--trace-root", default="traces", help="traces go to ROOT/sweeps/ID/JOB/")
    p.add_argument("--sweep-id", default=None, help="name of the sweep (default: from a hash)")
    p.add_argument("--out", default=None, metavar="PATH", help="write the rows (.parquet, .csv)")


def cmd_sweep(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"--out {args.out!r}: write a .parquet or a .csv file")
    client: Any = "serial" if args.serial else args.scheduler
    rows = runtime.sweep(
        args.strategy,
        parse_params(args.param),
        data=_data(args.data, args.since, args.until),
        markets=[m.split(",") for m in args.market] if args.market else None,
        mode=Sim(bars=args.bars, seed=args.seed),
        initial_cash=args.cash,
        client=client,
        trace_root=args.trace_root,
        sweep_id=args.sweep_id,
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".csv":
            rows.to_csv(out, index=False)
        else:
            rows.to_parquet(out, index=False)
    shown = [c for c in rows.columns if c not in ("trace",) and c in _head(rows) + list(SHOWN)]
    with pd.option_context("display.max_rows", 200, "display.width", 200):
        print(rows[shown].to_string(index=False))
    failed = int(rows["error"].notna().sum())
    print(f"{len(rows)} jobs, {failed} failed" + (f"; rows in {out}" if out else ""))
    return 1 if failed else 0


def parse_params(specs: list[str]) -> dict[str, list[Any]]:
    """``["fast=5,10", "slow=30:50:10"]`` -> ``{"fast": [5, 10], "slow": [30, 40, 50]}``."""
    params: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not name or not values:
            raise ConfigError(f"--param {spec!r} is not NAME=V1,V2,...; e.g. --param fast=5,10")
        if name in params:
            raise ConfigError(f"--param {name} is given twice; list its values once: {name}=1,2")
        params[name] = [v for part in values.split(",") for v in _values(part.strip(), spec)]
    return params


def _values(text: str, spec: str) -> list[Any]:
    if text.count(":") == 2:
        low, high, step = (_scalar(t) for t in text.split(":"))
        if not all(isinstance(v, int | float) for v in (low, high, step)) or not step > 0:
            raise ConfigError(f"--param {spec!r}: a range is LOW:HIGH:STEP with a positive step")
        out, value, i = [], low, 0
        while value <= high + 1e-12:
            out.append(value)
            i += 1
            value = low + i * step
        return out
    return [_scalar(text)]


def _scalar(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _head(rows: pd.DataFrame) -> list[str]:
    """The columns before the statistics: the job, its params, markets and window."""
    end = list(rows.columns).index(SHOWN[0]) if SHOWN[0] in rows else len(rows.columns)
    return [c for c in rows.columns[:end] if c != "job"]


def _data(specs: list[str] | None, since: str | None, until: str | None) -> Any:
    if specs == ["store"]:
        return StoreData(since=since, until=until)
    if since is not None or until is not None:
        raise ConfigError("--since and --until go with --data store")
    if not specs:
        return None
    if len(specs) == 1 and "=" not in specs[0]:
        return specs[0]
    data: dict[str, str] = {}
    for spec in specs:
        symbol, sep, path = spec.partition("=")
        if not sep:
            raise ConfigError(f"--data {spec!r}: with several files write SYMBOL=PATH")
        data[symbol] = path
    return data
