"""Sim throughput: bars per second of two strategies and a do-nothing one, against plain loops.

Two workloads of 1,000,000 one-minute bars of one market each, in this run:

* order-heavy: `sma_heavy_strategy.py` (SMA 10/30 cross, 0.01 BTC a trade, ~42,000 fills)
  on the real BTC perpetual month in ../shared/data, repeated and rescaled (generated bars
  without it);
* `sma_cross` (95% of the cash a trade, ~7,600 fills) on generated bars.

Each is measured untraced and traced (every order event in the Zarr trace, the default). The
baseline is a plain-Python loop computing the same SMA(10)/SMA(30) signals from running sums and
the same fills (price, slippage and fee formulas of the simulated exchange), without the
runtime; the fill counts must be equal. Each backtest runs in a fresh process, whose peak RSS
(VmHWM, read before anything else runs in it) is printed beside its figure.

This host's speed drifts by a fifth from one minute to the next and by more for seconds at a
time, so each backtest's baseline brackets it: the loop runs just before it (in this process)
and just after it (in the backtest's own process, once its peak RSS is read), and the backtest's
ratio is against the mean of the two. Every backtest runs `--repeat` times in turn; the median
of the ratios is kept, and every run's figures are printed in brackets.

    python bench/sim_throughput.py [--bars N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import trio
from sma_heavy_strategy import SmaHeavy

from runtime import Sim, start, strategy
from runtime.exchanges._markets import market_for
from runtime.exchanges.sim._exchange import FillModel
from runtime.model._bars import generate_bars
from runtime.model._grid import Grid

HERE = Path(__file__).resolve().parent
REAL_BARS = HERE.parents[1] / "shared" / "data" / "btc-perp-20211231-20220201_1m.csv"
SYMBOL = "BTC/USDT"


def plain_loop(
    cols: dict[str, np.ndarray],
    fast: int = 10,
    slow: int = 30,
    cash: float = 10_000.0,
    fixed: float | None = None,
) -> tuple[int, float]:
    """The crossover strategy as one Python loop: (fills, final cash).

    It makes sma_cross's decisions with its rules (rounding down to the step, minimum cost,
    fees included in the cash check) and fills at the simulated exchange's taker price. With
    `fixed`, it buys that amount instead of 95% of the cash (sma_heavy's rule)."""
    market = market_for("binance", SYMBOL)
    step = Grid(market["precision"]["amount"])  # the runtime's rounding, ccxt's results
    taker = market["taker"]
    cost_min = market["limits"]["cost"]["min"]
    fm = FillModel()
    close = cols["close"].tolist()
    high = cols["high"].tolist()
    low = cols["low"].tolist()
    volume = cols["volume"].tolist()
    sums = [0.0] * len(close)
    running = 0.0
    base = 0.0
    fills = 0
    for i, c in enumerate(close):
        running += c
        sums[i] = running
        if i + 1 < slow:
            continue
        f = (running - sums[i - fast]) / fast if i >= fast else running / fast
        s = (running - sums[i - slow]) / slow if i >= slow else running / slow
        holding = base * c >= cost_min if fixed is None else base > 0
        if f > s and not holding:
            amount = cash * 0.95 / (c * (1 + taker)) if fixed is None else fixed
            if amount * c < cost_min:
                continue
            amount = step.truncate(float(f"{amount:.12g}"))
            if amount * c < cost_min or amount * c * (1 + taker) > cash:
                continue
            sign = 1.0
        elif f < s and holding:
            amount = step.truncate(float(f"{base:.12g}"))
            if amount * c < cost_min:
                continue
            sign = -1.0
        else:
            continue
        slip = fm.spread_bps / 2e4 + fm.impact * (high[i] - low[i]) / c * math.sqrt(
            min(1.0, amount / volume[i])
        )
        price = c * (1 + sign * slip)
        cash -= sign * amount * price + amount * price * taker
        base = float(f"{base + sign * amount:.12g}")
        fills += 1
    return fills, cash


def heavy_bars(n: int) -> tuple[pd.DataFrame, str]:
    """`n` one-minute bars for the order-heavy workload: the month of real BTC perpetual bars
    in ../shared/data repeated, each copy rescaled to start at the previous one's last close,
    or generated bars when that file is absent. Returns the bars and where they came from."""
    if not REAL_BARS.exists():
        return generate_bars([SYMBOL], n, seed=1)[SYMBOL], "generated (seed 1)"
    month = pd.read_csv(REAL_BARS)
    prices = month[["open", "high", "low", "close"]].to_numpy()
    copies = -(-n // len(month))
    blocks, scale = [], 1.0
    for _ in range(copies):
        blocks.append(prices * scale)
        scale *= prices[-1, 3] / prices[0, 0]
    ohlc = np.concatenate(blocks)[:n]
    frame = pd.DataFrame(ohlc, columns=["open", "high", "low", "close"])
    frame.insert(0, "timestamp", pd.date_range("2022-01-01", periods=n, freq="1min", tz="UTC"))
    frame["volume"] = np.tile(month["volume"].to_numpy(), copies)[:n]
    return frame, f"{REAL_BARS.name} repeated {copies}x, rescaled"


async def backtest(
    name: str, data: dict, trace_root: str | None = None
) -> tuple[float, int, float]:
    config = {"trace": trace_root is not None, "markets": [SYMBOL]}
    if trace_root is not None:
        config["trace_root"] = trace_root
    s = strategy(name, mode=Sim(), data=data, config=config)
    data.clear()
    t0 = time.perf_counter()
    await start(s)
    elapsed = time.perf_counter() - t0
    return elapsed, len(s.universe[SYMBOL].trades), s.cash


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: getrusage's ru_maxrss would carry the parent's peak over
    fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(name: str, data_path: str, trace_root: str, loop_json: str) -> None:
    """One backtest in this fresh process: prints its figures and the process's peak RSS,
    then (with loop keywords in `loop_json`) the plain loop's rate on the same bars, timed
    right after the backtest; it runs once the peak is read, so it does not raise it."""
    # The bars as a script gets them from a file: the runtime keeps its own arrays, and the
    # frame is dropped once the strategy is built (`backtest` holds the last reference).
    data = {SYMBOL: pd.read_pickle(data_path)}
    before = peak_rss_mb()
    elapsed, fills, cash = trio.run(backtest, name, data, trace_root or None)
    figures = {
        "elapsed": elapsed,
        "fills": fills,
        "cash": cash,
        "before_mb": before,
        "peak_mb": peak_rss_mb(),
    }
    if loop_json:  # the bars read again: holding them through the backtest would raise its peak
        figures["loop_rate"] = timed_loop(
            columns(pd.read_pickle(data_path)), json.loads(loop_json)
        )[0]
    print(json.dumps(figures))


def in_child(
    name: str, data_path: Path, trace_root: str = "", loop: dict[str, Any] | None = None
) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            name,
            str(data_path),
            trace_root,
            "" if loop is None else json.dumps(loop),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def timed_loop(cols: dict[str, np.ndarray], loop: dict[str, Any]) -> tuple[float, int, float]:
    """The plain loop's bars per second on `cols`, its fills and its final cash."""
    t0 = time.perf_counter()
    fills, cash = plain_loop(cols, **loop)
    return len(cols["close"]) / (time.perf_counter() - t0), fills, cash


def columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}


def run_workload(
    label: str,
    name: str,
    frame: pd.DataFrame,
    target: str,
    workdir: Path,
    repeat: int,
    **loop: Any,
) -> None:
    """The strategy untraced and traced, each in a fresh process, `repeat` times in turn, each
    against the plain loop run just before it and just after it (module docstring); the
    median ratio is printed, every run's figures in brackets."""
    n = len(frame)
    data_path = workdir / f"{label}.pkl"
    frame.to_pickle(data_path)
    cols = columns(frame)
    loop_rates: list[float] = []
    runs: dict[bool, list[tuple[dict[str, float], float]]] = {False: [], True: []}
    base_fills = 0
    base_cash = 0.0
    for r in range(repeat):
        for traced in (False, True):
            before, base_fills, base_cash = timed_loop(cols, loop)
            root = str(workdir / f"traces-{label}-{r}") if traced else ""
            result = in_child(name, data_path, root, loop)
            after = result["loop_rate"]
            loop_rates += [before, after]
            runs[traced].append((result, (before + after) / 2))
    print(
        f"  plain-Python loop (baseline): {statistics.median(loop_rates):,.0f} bars/s median "
        f"of {len(loop_rates)} runs, each just before or after a backtest "
        f"({spread(loop_rates)}), {base_fills:,} fills, final cash {base_cash:,.2f}"
    )
    for traced, results in runs.items():
        rates = [n / r["elapsed"] for r, _ in results]
        ratios = [n / r["elapsed"] / base for r, base in results]
        fills = {int(r["fills"]) for r, _ in results}
        same = "same as the loop" if fills == {base_fills} else f"THE LOOP HAS {base_fills}"
        print(
            f"  {label} {'traced:  ' if traced else 'untraced:'} {statistics.median(ratios):.3f}x "
            f"its bracketing loops (runs {', '.join(f'{x:.3f}x' for x in ratios)})"
            + (f", target {target}" if traced else "")
            + f"; {statistics.median(rates):,.0f} bars/s ({spread(rates)}); "
            f"{min(fills):,} fills ({same}); peak RSS "
            f"{max(r['peak_mb'] for r, _ in results):,.0f} MB at most "
            f"({results[0][0]['before_mb']:,.0f} MB before the run)"
        )


def spread(rates: list[float]) -> str:
    return ", ".join(f"{x:,.0f}" for x in rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each, taken in turn; the median is kept"
    )
    parser.add_argument(
        "--child",
        nargs=4,
        metavar=("STRATEGY", "DATA", "TRACE_ROOT", "LOOP"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    n = args.bars
    print(
        f"bars: {n:,} one-minute bars of {SYMBOL} per workload; nproc {os.cpu_count()}, "
        f"loadavg {os.getloadavg()[0]:.2f}; each backtest in a fresh process; median of "
        f"{args.repeat} runs taken in turn (all runs in brackets)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        heavy, source = heavy_bars(n)
        print(f"order-heavy (SMA 10/30, {SmaHeavy.amount} a trade) on {source}:")
        run_workload(
            "sma_heavy",
            str(HERE / "sma_heavy_strategy.py"),
            heavy,
            "0.10x",
            workdir,
            args.repeat,
            fixed=SmaHeavy.amount,
        )
        frame = generate_bars([SYMBOL], n, seed=1)[SYMBOL]
        print("sma_cross (95% of the cash a trade) on generated bars (seed 1):")
        run_workload("sma_cross", "sma_cross", frame, "0.15x", workdir, args.repeat)
        noop = in_child(str(HERE / "noop_strategy.py"), workdir / "sma_cross.pkl", loop={})
        print(
            f"  do-nothing strategy: {n / noop['elapsed']:,.0f} bars/s (same bars; the loop "
            f"just after it: {noop['loop_rate']:,.0f} bars/s)"
        )


if __name__ == "__main__":
    main()
