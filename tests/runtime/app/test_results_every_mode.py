"""Results in every mode (DESIGN §2): Live and Paper mark each market at every tick, so
`s.results`, `replay_from_trace(path).results` and `vigil report` work for their runs too."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import trio

from runtime import Live, Paper, start, stop, strategy
from runtime.app._report import report_from_trace
from runtime.testing.loopback import LoopbackExchange
from tests.conftest import HERE
from traces import read_trace, replay_from_trace

UPDOWN = HERE / "three_modes_strategy.py"


async def test_live_and_paper_results_during_and_after_the_run(
    running_market: LoopbackExchange, tmp_path: Path
) -> None:
    live = strategy(UPDOWN, mode=Live(), sandbox=False, config={"trace_root": str(tmp_path)})
    paper = strategy(UPDOWN, mode=Paper(), sandbox=False, config={"trace_root": str(tmp_path)})
    async with trio.open_nursery() as nursery:
        await nursery.start(start, live)
        await nursery.start(start, paper)
        with trio.fail_after(30):
            while len(live.decisions) < 2 or len(paper.decisions) < 2:  # noqa: ASYNC110
                await trio.sleep(0.1)
        during = live.results  # while running
        assert len(during.equity) >= 1
        with trio.fail_after(30):
            while len(live.decisions) < 5 or len(paper.decisions) < 5:  # noqa: ASYNC110
                await trio.sleep(0.1)
        await stop(live)
        await stop(paper)
    for s in (live, paper):
        results = s.results
        assert len(results.trades) >= 4
        assert len(results.equity) >= 4
        assert results.equity.index.is_monotonic_increasing
        assert np.isfinite(results.equity.to_numpy()).all()
        stats = results.stats
        assert stats["trades"] == len(results.trades)
        assert math.isfinite(stats["total_return"])
        assert stats["fees"] > 0
        # The account moved only by fees and price: equity stays near the start.
        assert abs(results.equity.iloc[-1] / results.equity.attrs["start"] - 1) < 0.05
        # Every tick recorded each market's mark price.
        marks = read_trace(s.trace_path, kinds=["MARK"])
        assert len(marks) == len(results.equity)
        assert all("BTC/USDT:USDT" in p["prices"] for p in marks["payload"].array.to_numpy())

        # The same results from the trace alone: replay and report.
        replayed = replay_from_trace(s.trace_path).results
        assert len(replayed.trades) == len(results.trades)
        assert np.allclose(replayed.equity.to_numpy(), results.equity.to_numpy(), rtol=1e-9)
        assert replayed.stats["trades"] == stats["trades"]
        report = report_from_trace(s.trace_path)
        assert report.mode == type(s.mode).__name__.lower()
        png = report.to_png(tmp_path / f"{report.mode}.png")
        html = report.to_html(tmp_path / f"{report.mode}.html")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<table" in html.read_text()
