"""Sim throughput: bars per second for `sma_cross`, a do-nothing strategy, and a plain loop.

All three run on the same 1,000,000 generated one-minute bars of one market, in this run. The
plain-Python loop computes the same SMA(10)/SMA(30) crossover signals from running sums and the
same fills (price, slippage and fee formulas of the simulated exchange), without the runtime.
It is the baseline the ratios are measured against.

    python bench/sim_throughput.py [--bars N]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import trio

from runtime import Sim, start, strategy
from runtime.exchanges._markets import market_for
from runtime.exchanges.ccxt._precision import truncate_to_step
from runtime.exchanges.sim._exchange import FillModel
from runtime.model._bars import generate_bars

HERE = Path(__file__).resolve().parent
SYMBOL = "BTC/USDT"


def plain_loop(
    cols: dict[str, np.ndarray], fast: int = 10, slow: int = 30, cash: float = 10_000.0
) -> tuple[int, float]:
    """The crossover strategy as one Python loop: (fills, final cash).

    It makes sma_cross's decisions with its rules (rounding down to the step, minimum cost,
    fees included in the cash check) and fills at the simulated exchange's taker price."""
    market = market_for("binance", SYMBOL)
    step = market["precision"]["amount"]
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
        holding = base * c >= cost_min
        if f > s and not holding:
            amount = cash * 0.95 / (c * (1 + taker))
            if amount * c < cost_min:
                continue
            amount = truncate_to_step(float(f"{amount:.12g}"), step)
            if amount * c < cost_min or amount * c * (1 + taker) > cash:
                continue
            sign = 1.0
        elif f < s and holding:
            amount = truncate_to_step(float(f"{base:.12g}"), step)
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


async def backtest(
    name: str, data: dict, trace_root: str | None = None
) -> tuple[float, int, float]:
    config = {"trace": trace_root is not None, "markets": [SYMBOL]}
    if trace_root is not None:
        config["trace_root"] = trace_root
    s = strategy(name, mode=Sim(), data=data, config=config)
    t0 = time.perf_counter()
    await start(s)
    elapsed = time.perf_counter() - t0
    return elapsed, len(s.universe[SYMBOL].trades), s.cash


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.bars
    data = generate_bars([SYMBOL], n, seed=1)
    frame = data[SYMBOL]
    cols = {c: frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}

    t0 = time.perf_counter()
    base_fills, base_cash = plain_loop(cols)
    base = n / (time.perf_counter() - t0)

    sma_time, sma_fills, sma_cash = trio.run(backtest, "sma_cross", data)
    noop_time, _, _ = trio.run(backtest, str(HERE / "noop_strategy.py"), data)
    with tempfile.TemporaryDirectory() as root:
        traced_time, traced_fills, _ = trio.run(backtest, "sma_cross", data, root)
    sma = n / sma_time
    noop = n / noop_time
    print(f"bars: {n:,} one-minute bars of {SYMBOL}")
    print(
        f"plain-Python loop (baseline): {base:,.0f} bars/s, {base_fills} fills, "
        f"final cash {base_cash:,.2f}"
    )
    print(
        f"sma_cross:                    {sma:,.0f} bars/s, {sma_fills} fills, "
        f"final cash {sma_cash:,.2f}, {sma / base:.3f}x baseline (target 0.05x)"
    )
    traced = n / traced_time
    print(
        f"sma_cross, traced:            {traced:,.0f} bars/s, {traced_fills} fills, "
        f"{traced / base:.3f}x baseline (every order event in the Zarr trace)"
    )
    print(
        f"do-nothing strategy:          {noop:,.0f} bars/s, {noop / base:.3f}x baseline "
        f"(target 0.15x)"
    )


if __name__ == "__main__":
    main()
