"""replay_from_trace: equal state, field by field, for every bundled strategy; golden traces;
a corrupted event is named by its seq."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from runtime import ReplayMismatch, Sim, start, strategy
from runtime.engine._replica import snapshot
from traces import TraceWriter, iter_events, list_runs, replay_from_trace, trace_tail

HERE = Path(__file__).resolve().parents[2]  # tests/

GOLDEN = Path(__file__).resolve().parent / "golden"


def assert_same_state(a: Any, b: Any) -> None:
    assert snapshot(a._rt.state) == snapshot(b._rt.state)
    assert a.cash == b.cash
    assert a.cash_committed == b.cash_committed
    for ai in a.universe:
        bi = b.universe[ai.symbol]
        assert [o.client_id for o in ai.orders] == [o.client_id for o in bi.orders]
        assert [(t.id, t.amount, t.price, t.fee) for t in ai.trades] == [
            (t.id, t.amount, t.price, t.fee) for t in bi.trades
        ]
        for side in ("long", "short"):
            pa, pb = getattr(ai, side), getattr(bi, side)
            assert (pa is None) == (pb is None)
            if pa is not None:
                assert (pa.contracts, pa.entry_price, pa.margin, pa.leverage) == (
                    pb.contracts,
                    pb.entry_price,
                    pb.margin,
                    pb.leverage,
                )


@pytest.mark.parametrize("name", ["sma_cross", "margin_trend"])
async def test_replay_equals_the_sim_run(tmp_path: Path, name: str) -> None:
    s = strategy(name, mode=Sim(bars=3_000, seed=5), config={"trace_root": str(tmp_path)})
    await start(s)
    assert sum(len(ai.trades) for ai in s.universe) > 20
    r = replay_from_trace(s)
    assert type(r) is type(s)
    assert_same_state(s, r)
    # Open orders are compared too: leave one resting and replay again.
    assert r.trace_path is None


async def test_replay_of_a_path_picks_the_last_fresh_run(tmp_path: Path) -> None:
    states = []
    for seed in (1, 2):
        s = strategy(
            "sma_cross", mode=Sim(bars=1_000, seed=seed), config={"trace_root": str(tmp_path)}
        )
        await start(s)
        states.append(s)
    path = states[-1].trace_path
    assert path is not None
    assert len(list_runs(path)) == 2
    assert_same_state(states[1], replay_from_trace(path))
    assert_same_state(states[0], replay_from_trace(path, run=0))


async def test_a_corrupted_event_is_named_by_seq(tmp_path: Path) -> None:
    s = strategy("sma_cross", mode=Sim(bars=1_000, seed=3), config={"trace_root": str(tmp_path)})
    await start(s)
    source = s.trace_path
    assert source is not None
    events = list(iter_events(source))
    victim = next(e for e in events[len(events) // 2 :] if e.kind.name == "TRADE")
    copy = tmp_path / "corrupt.zarr"
    with TraceWriter(copy) as writer:
        for e in events:
            payload = dict(e.payload)
            if e.seq == victim.seq:
                payload["amount"] = payload["amount"] * 2  # a fill that never happened
            writer.record(
                e.kind, payload, ts_ns=e.ts_ns, asset=e.asset, ts_exchange_ns=e.ts_exchange_ns
            )
    with pytest.raises(ReplayMismatch, match=rf"event {victim.seq} \(TRADE"):
        replay_from_trace(copy)
    # The untouched copy of the same events replays cleanly.
    replay_from_trace(source)


async def test_trace_tail(tmp_path: Path) -> None:
    s = strategy("sma_cross", mode=Sim(bars=500, seed=2), config={"trace_root": str(tmp_path)})
    await start(s)
    tail = trace_tail(s, n=5)
    assert len(tail) == 5
    assert tail[-1]["kind"] == "RUN_STOPPED"
    assert [e["seq"] for e in tail] == list(range(tail[0]["seq"], tail[0]["seq"] + 5))
    df = trace_tail(s, n=20, as_df=True)
    assert len(df) == 20
    assert {"seq", "time", "kind", "asset"} <= set(df.columns)
    assert "client_id" in df.columns  # payload keys become columns


# Traces of today's format, and traces written before the simulated exchange reported its
# balances and positions (their fills moved the account; replay settles them the same way).
@pytest.mark.parametrize("generation", ["", "before_reports"])
@pytest.mark.parametrize("name", ["sma_cross", "margin_trend"])
def test_golden_trace_replays_to_its_recorded_state(
    tmp_path: Path, name: str, generation: str
) -> None:
    golden = GOLDEN / generation / f"{name}.zarr"
    assert golden.is_dir(), "create the golden traces: python -m tests.runtime.engine.make_golden"
    copy = tmp_path / golden.name  # replay never writes, but keep the checked-in copy pristine
    shutil.copytree(golden, copy)
    r = replay_from_trace(copy)  # raises on any difference from the recorded snapshot
    stopped = [e for e in iter_events(copy) if e.kind.name == "RUN_STOPPED"][-1]
    assert snapshot(r._rt.state) == stopped.payload["state"]
    assert sum(len(ai.trades) for ai in r.universe) > 10
    balances = [e for e in iter_events(copy) if e.kind.name == "BALANCE"]
    # Today's Sim reports its account after fills; the older traces only had the starting cash.
    assert (len(balances) > sum(len(ai.trades) for ai in r.universe)) == (generation == "")
