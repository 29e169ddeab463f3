"""The state replica: a missing seq stops replay by name, and Sim's account moves by the
simulated exchange's balance and position reports, applied by the engine exactly as in Live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import zarr

from runtime import (
    Buy,
    Live,
    MarketOrder,
    PositionClose,
    PostOnlyOrder,
    ReplayMismatch,
    RunConfig,
    Sim,
    call,
    start,
    strategy,
)
from runtime.engine import Replica, build_runtime, replay_from_trace, runtime_of, snapshot
from runtime.engine._engine import BalanceUpdated, State
from tests.conftest import HERE, MANUAL
from traces import Kind, TraceWriter, iter_events

MANUAL_MARGIN = HERE / "manual_margin_strategy.py"

CHUNK = 64  # small chunks: the copied trace is committed Zarr, not only a WAL


async def test_a_missing_seq_fails_replay_naming_it(tmp_path: Path) -> None:
    s = strategy("sma_cross", mode=Sim(bars=1_000, seed=3), config={"trace_root": str(tmp_path)})
    await start(s)
    assert s.trace_path is not None
    events = list(iter_events(s.trace_path))
    copy = tmp_path / "gap.zarr"
    with TraceWriter(copy, chunk_rows=CHUNK) as writer:
        for e in events:
            writer.record(
                e.kind, e.payload, ts_ns=e.ts_ns, asset=e.asset, ts_exchange_ns=e.ts_exchange_ns
            )
    replay_from_trace(copy)  # the faithful copy replays

    # Damage it as a lost write would: the committed rows from `missing` on are numbered one
    # further, so seq `missing` is absent from the trace.
    committed = (len(events) // CHUNK) * CHUNK
    missing = committed // 2
    seq = zarr.open_array(copy / "seq", mode="r+")
    seq[missing:committed] = seq[missing:committed] + 1
    with pytest.raises(ReplayMismatch, match=rf"event {missing} is missing \(seq {missing - 1} "):
        replay_from_trace(copy)
    with pytest.raises(ReplayMismatch, match=rf"event {missing} is missing"):
        Replica(copy).replay(State({}, {}, None), 0, len(events))


async def test_sim_moves_the_account_by_the_exchanges_reports_as_live_does() -> None:
    s = strategy(str(MANUAL), mode=Sim(bars=200, seed=1), config={"trace": False})
    rt = runtime_of(s)
    reports: list[tuple[str, dict[str, Any]]] = []
    rt.exchange.add_listener(lambda kind, payload: reports.append((kind, dict(payload))))
    btc_after: list[tuple[str, float]] = []  # the runtime's BTC total after each engine event
    emit = rt.emit

    def spy(event: Any, **kwargs: Any) -> Any:
        result = emit(event, **kwargs)
        btc = s.balances.get("BTC")
        btc_after.append((type(event).__name__, btc.total if btc is not None else 0.0))
        return result

    rt.emit = spy  # type: ignore[method-assign]
    ai = s.universe["BTC/USDT"]
    trade = await call(s, ai, MarketOrder[Buy], amount=0.01)
    assert trade is not None

    # The simulated exchange reported the fill, then its ledger's balances, as a venue does.
    assert [kind for kind, _ in reports] == ["order", "trade", "order", "balance"]
    assert set(reports[-1][1]["total"]) == {"BTC", "USDT"}
    # The fill moved the order only; the balance report moved the cash.
    assert ("OrderFilled", 0.0) in btc_after
    assert btc_after[-1] == ("BalanceUpdated", pytest.approx(0.01))
    ledger = rt.exchange.ledger
    assert {c: b.total for c, b in s.balances.items()} == {
        c: b.total for c, b in ledger.balances.items()
    }

    # Live's path: the same reports fed to a runtime through `on_exchange`, as Live's
    # watchers feed them, leave the same state.
    live = build_runtime(
        name="manual",
        mode=Live(),
        config=RunConfig(trace=False),
        exchange_id="binance",
        margin=None,
        markets={"BTC/USDT": ai.market},
    )
    live.balance_scope = {"BTC", "USDT"}
    live.driver = rt.driver  # the clock only
    live.state.assets["BTC/USDT"].last_price = ai.price  # as Live's ticker watcher sets it
    live.emit(BalanceUpdated("USDT", rt.initial_cash["USDT"], 0))
    for kind, payload in reports:
        live.on_exchange(kind, payload)
    assert snapshot(live.state) == snapshot(rt.state)


async def test_sim_margin_positions_come_from_position_reports() -> None:
    s = strategy(str(MANUAL_MARGIN), mode=Sim(bars=200, seed=1), config={"trace": False})
    rt = runtime_of(s)
    kinds: list[str] = []
    rt.exchange.add_listener(lambda kind, payload: kinds.append(kind))
    ai = next(iter(s.universe))
    assert await call(s, ai, MarketOrder[Buy], amount=0.01) is not None
    assert kinds[-2:] == ["position", "balance"]
    assert ai.long is not None
    assert ai.long.contracts == pytest.approx(0.01)
    assert await call(s, ai, PositionClose()) is not None
    assert kinds[-2:] == ["position", "balance"]
    assert ai.long is None
    ledger = rt.exchange.ledger
    assert s.balances[ai.settle].total == ledger.balances[ai.settle].total
    assert s.cash_committed == pytest.approx(ledger.balances[ai.settle].committed)


async def test_a_refused_send_is_no_state_event_in_old_traces_or_new(tmp_path: Path) -> None:
    s = strategy(str(MANUAL), mode=Sim(bars=200, seed=1), config={"trace_root": str(tmp_path)})
    ai = s.universe["BTC/USDT"]
    above = ai.round_price(ai.price * 1.01)
    assert await call(s, ai, PostOnlyOrder[Buy], amount=0.01, price=above) is None  # would take
    assert await call(s, ai, MarketOrder[Buy], amount=0.01) is not None
    await start(s)
    assert s.trace_path is not None
    events = list(iter_events(s.trace_path))
    assert [e.kind.name for e in events].count("ORDER_REFUSED") == 1
    replay_from_trace(s)

    # vigil wrote refusals under ORDER_REJECTED before ORDER_REFUSED existed; those replay too.
    old = tmp_path / "old.zarr"
    with TraceWriter(old) as writer:
        for e in events:
            kind = Kind.ORDER_REJECTED if e.kind.name == "ORDER_REFUSED" else e.kind
            writer.record(
                kind, e.payload, ts_ns=e.ts_ns, asset=e.asset, ts_exchange_ns=e.ts_exchange_ns
            )
    assert snapshot(runtime_of(replay_from_trace(old)).state) == snapshot(runtime_of(s).state)
