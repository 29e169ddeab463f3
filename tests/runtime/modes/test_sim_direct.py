"""A backtest's simulated exchange reports ledger events straight to the runtime
(`Runtime.on_ledger`), skipping the ccxt dicts a listener gets. Both ways must give the same
trace, event for event: the same kinds, times, payloads and state digests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from runtime import Sim, start, strategy
from traces import read_trace

TESTS = Path(__file__).resolve().parents[2]

CASES = [
    ("sma_cross", {"bars": 20_000, "seed": 3}),
    (str(TESTS / "busy_strategy.py"), {"bars": 3_000, "seed": 1}),  # limits, cancels, markets
    (str(TESTS / "fast_margin_trend.py"), {"bars": 6_000, "seed": 2}),  # positions, shorts
    (str(TESTS / "three_modes_bracket_strategy.py"), {"bars": 3_000, "seed": 4}),  # triggers
]
# Fields that name the run rather than what happened in it.
RUN_FIELDS = {"run_id", "started", "wall_time", "pid", "host", "version"}


def run(name: str, root: Path, sim: dict[str, Any], dicts: bool) -> Any:
    s = strategy(name, mode=Sim(**sim), config={"trace_root": str(root)})
    if dicts:  # the ccxt-dict path: the exchange reports to a listener, as Paper's does
        exchange = s._rt.exchange
        exchange.direct = None
        exchange.add_listener(s._rt.on_exchange)
    trio.run(start, s)
    return read_trace(s.trace_path)


def comparable(payload: Any) -> Any:
    if isinstance(payload, dict):
        return {k: comparable(v) for k, v in payload.items() if k not in RUN_FIELDS}
    return payload


@pytest.mark.parametrize(("name", "sim"), CASES, ids=lambda c: Path(str(c)).stem)
def test_direct_reports_write_the_trace_the_dicts_write(
    tmp_path: Path, name: str, sim: dict[str, Any]
) -> None:
    direct = run(name, tmp_path / "direct", sim, dicts=False)
    dicts = run(name, tmp_path / "dicts", sim, dicts=True)
    assert len(direct) == len(dicts)
    orders = direct["kind"].isin(["ORDER_ACK", "TRADE"]).sum()
    assert orders > 20, f"{name} placed too few orders to compare ({orders} events)"
    for column in ("kind", "asset", "ts_ns", "ts_exchange_ns"):
        assert direct[column].tolist() == dicts[column].tolist(), column
    for i, (a, b) in enumerate(zip(direct["payload"], dicts["payload"], strict=True)):
        assert comparable(a) == comparable(b), (i, direct["kind"].iloc[i], a, b)
