"""IPython's persistent loop (%load_ext runtime) and the sync Session facade."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runtime import Buy, GTCOrder, MarketOrder, Pending, Session, Sim, Trade, strategy


def run_ipython(cells: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Feed `cells` to a real IPython, one line per cell, and return what it printed."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "IPython",
            "--simple-prompt",
            "--no-banner",
            "--colors=NoColor",
            "--HistoryManager.enabled=False",
        ],
        input=cells,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env=env,
    ).stdout


# No cell sleeps. `warm` is set by a wrapped on_tick (on the loop thread) once 30 bars are
# visible; the prompt blocks on it in a plain cell, so the run goes on with no cell awaiting on
# the loop. `stop` returns once the run has stopped, so nothing needs waiting after it.
CELLS = """\
%load_ext runtime
import threading
from runtime import strategy, Sim, start, stop, call, MarketOrder, Buy
s = strategy("sma_cross", mode=Sim(bars=400_000), config={{"trace_root": {root!r}}})
ai = s.universe["BTC/USDT"]
r = await call(s, ai, MarketOrder[Buy], amount=0.01)
print("CALL", type(r).__name__, r.amount)
warm = threading.Event(); tick = s.on_tick
async def signalling_tick(ts): await tick(ts); len(ai.ohlcv) > 30 and warm.set()
s.on_tick = signalling_tick
await start(s, foreground=False)
print("WARM", warm.wait(60))
print("RUNNING", s._rt.running, len(ai.ohlcv) > 30)
print("STATE", repr(s).startswith("<SmaCross"), len(ai.trades) >= 1)
await stop(s)
print("STOPPED", s._rt.running, len(ai.ohlcv) < 400_000)
from traces import trace_tail
print("TAIL", trace_tail(s, 3)[-1]["kind"])
"""


@pytest.mark.skipif(shutil.which("ipython") is None, reason="ipython is not installed")
def test_ipython_keeps_a_strategy_running_between_cells(tmp_path: Path) -> None:
    cells = CELLS.format(root=str(tmp_path / "traces"))
    out = run_ipython(cells, tmp_path)
    assert "CALL Trade 0.01" in out, out
    assert "WARM True" in out, out  # it ticked on the loop while no cell was running
    assert "RUNNING True True" in out, out  # still running after the cell that started it
    assert "STATE True True" in out, out
    assert "STOPPED False True" in out, out  # stopped early, before the end of the data
    assert "TAIL RUN_STOPPED" in out, out


def test_session_drives_a_strategy_from_sync_code(manual_path: Path) -> None:
    from tests.conftest import bars

    s = strategy(
        manual_path, mode=Sim(), data=bars([30_000.0] * 5 + [28_000.0] * 5), config={"trace": False}
    )
    ai = s.universe["BTC/USDT"]
    with Session() as v:
        t = v.call(s, ai, MarketOrder[Buy], amount=0.01)
        assert isinstance(t, Trade)
        p = v.call(s, ai, GTCOrder[Buy], amount=0.01, price=29_000.0, waitfor=0)
        assert isinstance(p, Pending)
        v.start(s)
        assert p.order.status == "closed"
        assert s.ticks > 0


def test_background_start_returns_at_once(manual_path: Path) -> None:
    from tests.conftest import bars

    # Far more bars than the test lets it run: the stop must end it early.
    s = strategy(
        manual_path, mode=Sim(), data=bars([30_000.0] * 2_000_000), config={"trace": False}
    )
    # Wait until it is ticking on an event its first tick sets (on the loop thread), not by
    # polling: on_tick is looked up on the instance when the run starts.
    ticking = threading.Event()
    tick = s.on_tick

    async def signalling_tick(ts: object) -> None:
        await tick(ts)
        ticking.set()

    s.on_tick = signalling_tick  # type: ignore[method-assign]
    with Session() as v:
        v.start(s, background=True)  # returns at once
        assert ticking.wait(30)
        v.stop(s)  # returns once the run has stopped
        assert not s._rt.running
        assert s._rt.background_error is None
        assert 0 < s.ticks < 2_000_000  # it stopped before the end


# No cell sleeps or polls. `booked` is set by a wrapped feed.set_book (on the loop thread) at
# every BTC/USDT book update, and also at once if the first book came before the wrapper; the
# prompt blocks on it in plain cells, so the watchers run with no cell awaiting on the loop.
# `seen` is read before `booked` is cleared: an update in between is then waited for again
# rather than missed.
PAPER_CELLS = """\
%load_ext runtime
import threading
from runtime import strategy, Paper, start, stop, call, MarketOrder, Buy
s = strategy({manual!r}, mode=Paper(), sandbox=False, config={{"trace_root": {root!r}}})
await start(s, foreground=False)
feed = s._rt.driver.paper.paper_feed
booked = threading.Event(); set_book = feed.set_book
def signalling_set_book(sym, *a, **k): set_book(sym, *a, **k); sym == "BTC/USDT" and booked.set()
feed.set_book = signalling_set_book; _ = "BTC/USDT" in feed.books and booked.set()
print("BOOK", booked.wait(60))
r = await call(s, s.universe["BTC/USDT"], MarketOrder[Buy], amount=0.01)
print("CALL", type(r).__name__, r.amount)
seen = feed.books["BTC/USDT"].version; booked.clear()
print("MOVED", booked.wait(60))
print("LIVE", s._rt.running, feed.books["BTC/USDT"].version > seen)
print("STATE", s.universe["BTC/USDT"].cash, s.cash < 100_000)
from traces import trace_tail
df = trace_tail(s, 5, as_df=True)
print("TAIL", len(df), "kind" in df.columns)
await stop(s)
print("STOPPED", s._rt.running)
"""


@pytest.mark.skipif(shutil.which("ipython") is None, reason="ipython is not installed")
def test_ipython_paper_session_against_the_loopback(tmp_path: Path) -> None:
    from tests.conftest import MANUAL
    from tests.runtime.testing.loopback.support import make_exchange

    with make_exchange(timeframe="1s", bar_interval_ms=500) as loopback:
        env = {**__import__("os").environ, **loopback.env()}
        cells = PAPER_CELLS.format(manual=str(MANUAL), root=str(tmp_path / "traces"))
        out = run_ipython(cells, tmp_path, env)
    assert "BOOK True" in out, out
    assert "CALL Trade 0.01" in out, out
    assert "MOVED True" in out, out
    assert "LIVE True True" in out, out  # watchers kept the book moving between cells
    assert "STATE 0.01 True" in out, out
    assert "TAIL 5 True" in out, out
    assert "STOPPED False" in out, out
