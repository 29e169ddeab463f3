"""`replay_from_trace`: a strategy whose state is rebuilt from its trace by the replica.

The result is a Sim-mode strategy of the recorded class (or a bare `Strategy` when its file
cannot be loaded) over the recorded markets; it has no market data and no exchange, so it is
for reading state and results, not for placing orders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime._errors import ConfigError, TraceError
from runtime._progress import Progress
from runtime.engine._replica import Replica, settles_fills
from runtime.engine._runtime import Runtime, build_runtime
from runtime.engine._strategy import Strategy, bind, load_strategy_class
from runtime.model._modes import RunConfig, Sim
from traces import TraceOwner, choose_run, trace_path_of


class ReplayClock:
    """The clock of a replayed strategy: the time of the last replayed event. It has no
    market and no exchange, so it cannot place orders."""

    def __init__(self, last_ms: int = 0) -> None:
        self.last_ms = last_ms

    def now_ms(self) -> int:
        return self.last_ms

    async def wait_order(self, order: Any, deadline_ms: int) -> bool:
        return False

    def request_stop(self) -> None:
        """Nothing runs."""

    async def run(self, s: Strategy, task_status: Any = None) -> None:
        raise ConfigError(
            "a replayed strategy has no market data to run on; load it with "
            "strategy(..., mode=Sim()) to backtest"
        )


def strategy_class_of(start: dict[str, Any]) -> type[Strategy]:
    """The recorded strategy's class, or `Strategy` if its file cannot be loaded any more."""
    source = start.get("source") or start.get("strategy")
    if source:
        try:
            return load_strategy_class(source)[1]
        except (ConfigError, OSError, ImportError):
            pass
    return Strategy


def runtime_from_start(start: dict[str, Any], path: Path) -> Runtime:
    """A runtime with an empty state over the markets a RUN_STARTED record names."""
    markets: dict[str, dict[str, Any]] = start.get("market_defs") or {}
    if not markets:
        raise TraceError(
            f"trace {path}: run {start.get('run_id')} has no market definitions in its "
            "RUN_STARTED record, so it cannot be rebuilt; it was written by an older vigil"
        )
    rt = build_runtime(
        name=str(start.get("strategy")),
        mode=Sim(),
        config=RunConfig(trace=False),
        exchange_id=str(start.get("exchange")),
        margin=start.get("margin"),
        markets=markets,
        cash_currency=str(start.get("cash_currency")),
        source=start.get("source"),
        timeframe=str(start.get("timeframe") or "1m"),
    )
    rt.driver = ReplayClock()
    return rt


def replay_from_trace(
    s_or_path: TraceOwner | str | Path, run: int | str = -1, *, progress: bool = False
) -> Strategy:
    """A Sim-mode strategy whose cash, committed cash, open orders, positions and trade history
    are those at the end of `run` (an index into the trace's runs, -1 the last, or a run id).

    Raises `ReplayMismatch` naming the seq of the first event that is missing, or whose
    recorded state digest, or the run's final snapshot, differs from what replay rebuilds;
    `TraceError` for a trace that cannot be read. With ``progress=True`` a progress bar is drawn
    on stderr."""
    path = trace_path_of(s_or_path)
    replica = Replica(path)
    runs = replica.runs()
    chosen = choose_run(runs, run, path)
    first, _ = replica.first_fresh_run(runs, chosen)
    start = replica.start_payload(runs, first)
    rt = runtime_from_start(start, path)
    try:
        s = strategy_class_of(start)()
    except TypeError:  # a strategy class that needs arguments: a bare one reads the same state
        s = Strategy()
    bind(s, rt)
    lo, hi = runs[first].start_seq, runs[chosen].end_seq
    bar = Progress(hi - lo, unit="events") if progress else None
    replica.replay(
        rt.state,
        lo,
        hi,
        stop_seq=runs[chosen].stop_seq,
        progress=bar,
        settle_fills=settles_fills(start),
    )
    if bar is not None:
        bar.finish(hi - lo)
    rt.continue_client_ids(replica.client_seq)
    rt.driver = ReplayClock(replica.last_ts_ns // 1_000_000)
    return s
