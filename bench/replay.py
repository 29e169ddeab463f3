"""Replay speed: events per second through `replay_from_trace`, against a dict-update loop.

Two traces from Sim runs of tests/busy_strategy.py (an order on every bar):
  * "mixed": the bars are recorded too (market data is most of a real trace); replay skips
    them without decoding their payloads;
  * "order path": only order, fill and account events, each decoded, applied and checked.
The baseline is a plain loop that updates a dict once per event of the same trace, in this run.

    python bench/replay.py [--bars N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import trio

from runtime import Sim, start, strategy
from traces import read_trace, replay_from_trace

BUSY = Path(__file__).resolve().parents[1] / "tests" / "busy_strategy.py"


async def make_trace(root: str, bars: int, with_market: bool) -> Path:
    config = {"trace_root": root, "trace_market": with_market}
    s = strategy(BUSY, mode=Sim(bars=bars, seed=1), config=config)
    await start(s)
    assert s.trace_path is not None
    return s.trace_path


def dict_loop(kinds: list[int], seqs: list[int]) -> float:
    t0 = time.perf_counter()
    state: dict[int, int] = {}
    for kind, seq in zip(kinds, seqs, strict=True):
        state[kind] = seq
    return time.perf_counter() - t0


def measure(path: Path, label: str) -> None:
    frame = read_trace(path)
    n = len(frame)
    base_s = dict_loop(frame["kind"].cat.codes.tolist(), frame["seq"].tolist())
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        replay_from_trace(path)
        best = min(best, time.perf_counter() - t0)
    rate, base = n / best, n / base_s
    print(
        f"{label}: {n:,} events replayed at {rate:,.0f} events/s "
        f"({rate / base:.4f}x a dict-update loop at {base:,.0f} events/s; target 500,000/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        mixed = trio.run(make_trace, f"{root}/mixed", args.bars, True)
        orders = trio.run(make_trace, f"{root}/orders", args.bars, False)
        measure(mixed, "mixed trace (bars + orders)")
        measure(orders, "order-path trace")


if __name__ == "__main__":
    main()
