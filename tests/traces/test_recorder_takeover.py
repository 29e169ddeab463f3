"""Two strategies of one trace in one process: the newer takes the writer over, no deadlock."""

from __future__ import annotations

from pathlib import Path

import trio

from runtime import Sim, start, strategy
from traces import list_runs


def test_the_same_strategy_created_twice_runs(tmp_path: Path) -> None:
    config = {"trace_root": str(tmp_path)}
    first = strategy("sma_cross", mode=Sim(bars=300), config=config)
    second = strategy("sma_cross", mode=Sim(bars=300), config=config)  # takes the trace over
    trio.run(start, second)
    trio.run(start, first)  # reopens it
    assert second.trace_path == first.trace_path
    assert first.trace_path is not None
    assert len(list_runs(first.trace_path)) >= 2
