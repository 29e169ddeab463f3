"""A backtest runs with the cyclic collector tuned (`backtest_collector`): the heap from before
the run frozen and higher thresholds; both go back when the last backtest ends, however it
ends."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import trio

from runtime import Sim, start, strategy
from runtime.modes._sim import BACKTEST_GC_THRESHOLDS
from tests.conftest import HERE

PROBE = HERE / "gc_probe_strategy.py"
USER_THRESHOLDS = (1_000, 7, 3)  # a user's own, to be given back


@pytest.fixture(autouse=True)
def user_collector() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(*USER_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def probe(**params: int) -> object:
    return strategy(PROBE, mode=Sim(bars=300, seed=1), params=params, config={"trace": False})


async def test_tuned_during_the_run_restored_after() -> None:
    frozen_before = gc.get_freeze_count()
    s = probe()
    await start(s)
    assert len(s.seen) > 100
    assert set(s.seen) == {BACKTEST_GC_THRESHOLDS}
    assert s.frozen > frozen_before + 10_000  # the imports' heap, at least
    assert gc.get_threshold() == USER_THRESHOLDS
    assert gc.get_freeze_count() == 0


async def test_two_backtests_at_once_restore_once_both_end() -> None:
    # A Sim yields to other tasks every few thousand bars, so these two take turns.
    short = strategy(PROBE, mode=Sim(bars=6_000, seed=1), config={"trace": False})
    long = strategy(PROBE, mode=Sim(bars=14_000, seed=2), config={"trace": False})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(start, long)
        nursery.start_soon(start, short)
    # The short run ended inside the long one, which kept the tuned collector to its end.
    assert long.ticks[0] < short.ticks[-1] < long.ticks[-1]
    after = [t for t, tick in zip(long.seen, long.ticks, strict=True) if tick > short.ticks[-1]]
    assert len(after) > 1_000
    assert set(after) == {BACKTEST_GC_THRESHOLDS}
    assert gc.get_threshold() == USER_THRESHOLDS
    assert gc.get_freeze_count() == 0


def test_a_backtest_that_raises_restores_the_collector() -> None:
    s = probe(abort_at=50)
    with pytest.raises(BaseException, match="the probe's planned abort") as info:
        trio.run(start, s)
    assert type(info.value).__name__ == "ProbeAbort"
    assert len(s.seen) == 50
    assert gc.get_threshold() == USER_THRESHOLDS
    assert gc.get_freeze_count() == 0
