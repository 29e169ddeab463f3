"""`replay_from_trace`: rebuild a strategy's state by applying its recorded events again.

Replay feeds every recorded engine event through the same `apply` the run used, checking after
each one the state digest recorded with it, and at the end of the run the full state snapshot
of its `RUN_STOPPED` record. Any difference raises `ReplayMismatch` naming the seq and fields.
A run that started fresh (Sim) resets the state; a later run (a Live restart) continues it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import msgpack
import numpy as np

from runtime._assets import AssetInstance, Balance, Universe
from runtime._engine import State, apply, digest, event_from_dict
from runtime._errors import ConfigError, ReplayMismatch, TraceError
from runtime._modes import RunConfig, Sim
from runtime._progress import Progress
from runtime._runtime import Runtime
from runtime._strategy import Strategy, load_strategy_class

from ._codec import gc_paused
from ._reader import _runs, open_view
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
    state.account_from_reports = bool(start.get("account_from_reports", False))
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


def replay_from_trace(
    s_or_path: Strategy | str | Path, run: int | str = -1, *, progress: bool = False
) -> Strategy:
    """A Sim-mode strategy whose cash, committed cash, open orders, positions and trade history
    are those at the end of `run` (an index into the trace's runs, -1 the last, or a run id).

    Raises `ReplayMismatch` naming the seq of the first event whose recorded state digest, or
    the run's final snapshot, differs from what replay rebuilds; `TraceError` for a trace that
    cannot be read. With ``progress=True`` a progress bar is drawn on stderr."""
    path = _path_of(s_or_path)
    runs = _runs(open_view(path))
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
    view = open_view(path)
    first = chosen
    while True:
        head = view.read(runs[first].start_seq, runs[first].start_seq + 1, ["kind", "payload"])
        start_payload = head["payload"].decode(0)
        if int(head["kind"][0]) != Kind.RUN_STARTED or not isinstance(start_payload, dict):
            raise TraceError(f"trace {path}: run {first} does not begin with RUN_STARTED")
        if start_payload.get("fresh", True) or first == 0:
            break
        first -= 1

    s, rt = _wire(start_payload)
    lo, hi = runs[first].start_seq, runs[chosen].end_seq
    bar = Progress(hi - lo, unit="events") if progress else None
    _replay_range(rt, view, lo, hi, runs[chosen].stop_seq, bar)
    if bar is not None:
        bar.finish(hi - lo)
    return s


def restore_into(rt: Runtime, path: Path) -> bool:
    """Replay a strategy's earlier runs into its (empty) state before a Live restart; False
    when there is no trace yet. The last run may have crashed: its events are checked one by
    one, but it has no final snapshot to compare."""
    if not (Path(path) / "zarr.json").is_file():
        return False
    view = open_view(path)
    runs = _runs(view)
    if not runs:
        return False
    first = len(runs) - 1
    while first > 0:
        head = view.read(runs[first].start_seq, runs[first].start_seq + 1, ["payload"])
        payload = head["payload"].decode(0)
        if not isinstance(payload, dict) or payload.get("fresh", True):
            break
        first -= 1
    _replay_range(rt, view, runs[first].start_seq, view.total, None)
    return True


# Kinds that carry engine events; the rest (market data, errors, plumbing) are skipped without
# decoding, except the last order intent (client ids continue after it) and the final stop.
_STATE_KINDS = frozenset(
    int(k)
    for k in (
        Kind.ORDER_ACK,
        Kind.ORDER_UPDATE,
        Kind.ORDER_REJECTED,
        Kind.TRADE,
        Kind.TRADE_EMULATED,
        Kind.BALANCE,
        Kind.POSITION,
        Kind.LEVERAGE,
        Kind.RECONCILE,
    )
)
_READ = np.array(sorted(_STATE_KINDS | {int(Kind.RUN_STOPPED)}), dtype=np.uint16)


def _replay_range(
    rt: Runtime,
    view: Any,
    lo: int,
    hi: int,
    stop_seq: int | None,
    progress: Progress | None = None,
) -> None:
    """Apply the engine events of seqs [lo, hi) to `rt.state`, checking each recorded digest
    and, at `stop_seq`, the recorded snapshot."""
    state = rt.state
    path = view.path
    unpackb = msgpack.unpackb
    block = 65_536
    with gc_paused():
        for start in range(lo, hi, block):
            cols = view.read(start, min(hi, start + block), ["seq", "ts_ns", "kind", "payload"])
            kinds = cols["kind"]
            wanted = np.isin(kinds, _READ)
            intents = np.flatnonzero(kinds == Kind.ORDER_INTENT)
            if len(intents):
                wanted[intents[-1]] = True
            index = np.flatnonzero(wanted)
            payloads = cols["payload"]
            blob = memoryview(payloads.blob)
            for seq, code, offset, size in zip(
                cols["seq"][index].tolist(),
                kinds[index].tolist(),
                payloads.offsets[index].tolist(),
                payloads.sizes[index].tolist(),
                strict=True,
            ):
                payload = unpackb(blob[offset : offset + size], raw=False, strict_map_key=False)
                if code in _STATE_KINDS:
                    try:
                        event = event_from_dict(payload)
                        apply(state, event)
                    except Exception as exc:
                        raise ReplayMismatch(
                            f"trace {path}: event {seq} ({Kind(code).name}) cannot be "
                            f"applied: {exc!r}"
                        ) from exc
                    recorded = payload.get("check")
                    if recorded is not None and recorded != digest(state, event):
                        raise ReplayMismatch(
                            f"trace {path}: state after event {seq} ({Kind(code).name} "
                            f"{type(event).__name__}) differs: recorded {recorded}, replay "
                            f"{digest(state, event)}"
                        )
                elif code == Kind.ORDER_INTENT:
                    # Client ids continue after a restart instead of repeating.
                    tail = str(payload.get("client_id", "")).rsplit("-", 1)[-1]
                    if tail.isdigit():
                        rt._client_seq = max(rt._client_seq, int(tail))
                elif seq == stop_seq:
                    _check_snapshot(state, payload, seq, path)
            if len(cols["ts_ns"]):
                cast(ReplayDriver, rt.driver).last_ms = int(cols["ts_ns"][-1]) // 1_000_000
            if progress is not None:
                progress.update(min(hi, start + block) - lo)


def _check_snapshot(state: State, payload: Any, seq: int, path: Path) -> None:
    expected = payload.get("state") if isinstance(payload, dict) else None
    if expected is None:
        return
    rebuilt = snapshot(state)
    if expected != rebuilt:  # diff only to explain a difference
        differences = diff(expected, rebuilt) or ["the snapshots differ"]
        shown = "; ".join(differences[:5])
        more = f" (+{len(differences) - 5} more)" if len(differences) > 5 else ""
        raise ReplayMismatch(
            f"trace {path}: state at the end of the run (event {seq}) differs from the "
            f"recorded snapshot: {shown}{more}"
        )
