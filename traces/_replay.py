"""`replay_from_trace`: rebuild a strategy's state by applying its recorded events again.

Replay feeds every recorded engine event through the same `apply` the run used, checking after
each one the state digest recorded with it, and at the end of the run the full state snapshot
of its `RUN_STOPPED` record. Any difference raises `ReplayMismatch` naming the seq and fields.
A run that started fresh (Sim) resets the state; a later run (a Live restart) continues it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

from runtime._assets import AssetInstance, Balance, Universe
from runtime._engine import State, apply, digest, event_from_dict
from runtime._errors import ConfigError, ReplayMismatch, TraceError
from runtime._modes import RunConfig, Sim
from runtime._runtime import Runtime
from runtime._strategy import Strategy, load_strategy_class

from ._reader import Event, iter_events, list_runs
from ._schema import Kind
from ._state import diff, snapshot


class ReplayDriver:
    """The clock of a replayed strategy: the time of the last replayed event. It has no
    market and no exchange, so it cannot place orders."""

    def __init__(self) -> None:
        self.last_ms = 0

    def now_ms(self) -> int:
        return self.last_ms

    async def wait_order(self, order: Any, deadline_ms: int) -> bool:
        return False

    async def sync_order(self, order: Any) -> None:
        return None

    async def run(self, s: Strategy) -> None:
        raise ConfigError(
            "a replayed strategy has no market data to run on; load it with "
            "strategy(..., mode=Sim()) to backtest"
        )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _path_of(s_or_path: Strategy | str | Path) -> Path:
    if isinstance(s_or_path, Strategy):
        recorder = s_or_path._rt.recorder
        path = getattr(recorder, "path", None)
        if path is None:
            raise TraceError(
                f"strategy {s_or_path._rt.name} records no trace (config trace=False), "
                "so there is nothing to replay"
            )
        flush = getattr(recorder, "flush", None)
        if flush is not None:
            flush()
        return Path(path)
    return Path(s_or_path)


def _strategy_shell(start: dict[str, Any]) -> Strategy:
    """An instance of the recorded strategy's class, or of `Strategy` if it cannot be loaded."""
    cls: type[Strategy] = Strategy
    source = start.get("source") or start.get("strategy")
    if source:
        try:
            _, cls = load_strategy_class(source)
        except (ConfigError, OSError, ImportError):
            cls = Strategy
    try:
        return cls()
    except TypeError:
        return Strategy()


def _wire(start: dict[str, Any]) -> tuple[Strategy, Runtime]:
    markets: dict[str, dict[str, Any]] = start.get("market_defs") or {}
    if not markets:
        raise TraceError("the run's RUN_STARTED record has no market definitions to replay with")
    balances: dict[str, Balance] = {}
    assets = {sym: AssetInstance(m, balances) for sym, m in markets.items()}
    state = State(assets, balances, start.get("margin"))
    s = _strategy_shell(start)
    rt = Runtime(
        name=str(start.get("strategy")),
        mode=Sim(),
        config=RunConfig(trace=False),
        exchange_id=str(start.get("exchange")),
        margin=start.get("margin"),
        universe=Universe(assets),
        state=state,
        cash_currency=str(start.get("cash_currency")),
    )
    rt.strategy = s
    rt.driver = ReplayDriver()
    s._rt = rt
    return s, rt


def replay_from_trace(s_or_path: Strategy | str | Path, run: int | str = -1) -> Strategy:
    """A Sim-mode strategy whose cash, committed cash, open orders, positions and trade history
    are those at the end of `run` (an index into the trace's runs, -1 the last, or a run id).

    Raises `ReplayMismatch` naming the seq of the first event whose recorded state digest, or
    the run's final snapshot, differs from what replay rebuilds; `TraceError` for a trace that
    cannot be read."""
    path = _path_of(s_or_path)
    runs = list_runs(path)
    if not runs:
        raise TraceError(f"trace {path} has no runs to replay")
    if isinstance(run, str):
        matches = [i for i, r in enumerate(runs) if r.run_id == run]
        if not matches:
            raise TraceError(
                f"trace {path} has no run {run!r}; runs: " + ", ".join(r.run_id for r in runs)
            )
        chosen = matches[0]
    else:
        if not -len(runs) <= run < len(runs):
            raise TraceError(f"trace {path} has {len(runs)} runs, so run={run} does not exist")
        chosen = run % len(runs)

    # Walk back to the run that started from an empty state.
    first = chosen
    starts: dict[int, dict[str, Any]] = {}
    while True:
        start_event = next(iter_events(path, run=first))
        if start_event.kind != Kind.RUN_STARTED:
            raise TraceError(f"trace {path}: run {first} does not begin with RUN_STARTED")
        starts[first] = start_event.payload
        if start_event.payload.get("fresh", True) or first == 0:
            break
        first -= 1

    s, rt = _wire(starts[first])
    driver = cast(ReplayDriver, rt.driver)
    for index in range(first, chosen + 1):
        for ev in iter_events(path, run=index):
            _replay_event(rt, driver, ev, path, check_snapshot=index == chosen)
    return s


def _replay_event(
    rt: Runtime, driver: ReplayDriver, ev: Event, path: Path, *, check_snapshot: bool
) -> None:
    payload = ev.payload
    driver.last_ms = ev.ts_ns // 1_000_000
    if isinstance(payload, dict) and "event" in payload and ev.kind != Kind.ERROR:
        try:
            event = event_from_dict(payload)
            apply(rt.state, event)
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayMismatch(
                f"trace {path}: event {ev.seq} ({ev.kind.name}) cannot be applied: {exc!r}"
            ) from exc
        except Exception as exc:
            raise ReplayMismatch(
                f"trace {path}: event {ev.seq} ({ev.kind.name}) cannot be applied: {exc}"
            ) from exc
        recorded = payload.get("check")
        if recorded is not None:
            rebuilt = digest(rt.state, event)
            if not _same(recorded, rebuilt):
                raise ReplayMismatch(
                    f"trace {path}: state after event {ev.seq} ({ev.kind.name} "
                    f"{type(event).__name__}) differs: recorded {recorded}, replay {rebuilt}"
                )
    elif ev.kind == Kind.ORDER_INTENT and isinstance(payload, dict):
        # Client ids continue after a restart instead of repeating.
        tail = str(payload.get("client_id", "")).rsplit("-", 1)[-1]
        if tail.isdigit():
            rt._client_seq = max(rt._client_seq, int(tail))
    elif ev.kind == Kind.RUN_STOPPED and check_snapshot and isinstance(payload, dict):
        expected = payload.get("state")
        if expected is not None:
            differences = diff(expected, snapshot(rt.state))
            if differences:
                shown = "; ".join(differences[:5])
                more = f" (+{len(differences) - 5} more)" if len(differences) > 5 else ""
                raise ReplayMismatch(
                    f"trace {path}: state at the end of the run (event {ev.seq}) differs "
                    f"from the recorded snapshot: {shown}{more}"
                )
