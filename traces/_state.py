"""Strategy state as plain values, and a field-by-field comparison of two such snapshots.

A run's `RUN_STOPPED` record carries the snapshot of the state it ended with; replay rebuilds
the state from the events and compares, so a difference is an error, not a log line.
"""

from __future__ import annotations

import math
from typing import Any

from runtime._engine import State


def _num(x: float) -> float | str:
    # NaN does not equal itself; keep it comparable in a snapshot.
    return "nan" if isinstance(x, float) and math.isnan(x) else x


def snapshot(state: State) -> dict[str, Any]:
    """Cash, committed cash, open orders, positions and trade history, per field."""
    balances = {
        c: {"total": _num(b.total), "committed": _num(b.committed)}
        for c, b in sorted(state.balances.items())
    }
    assets: dict[str, Any] = {}
    for symbol, ai in sorted(state.assets.items()):
        assets[symbol] = {
            "leverage": ai.leverage,
            "open_orders": [
                {
                    "client_id": o.client_id,
                    "id": o.id,
                    "side": o.side,
                    "type": o.type.__name__,
                    "amount": o.amount,
                    "price": o.price,
                    "filled": o.filled,
                    "status": o.status,
                    "committed": _num(o.committed),
                    "reduce_only": o.reduce_only,
                    "timestamp": o.timestamp,
                }
                for o in ai.open_orders.values()
            ],
            "positions": {
                p.side: {
                    "contracts": p.contracts,
                    "entry_price": p.entry_price,
                    "leverage": p.leverage,
                    "margin": _num(p.margin),
                    "liquidation_price": _num(p.liquidation_price),
                }
                for p in (ai.long, ai.short)
                if p is not None
            },
            "trades": [
                [t.id, t.order.client_id, t.timestamp, t.amount, t.price, t.fee, t.fee_currency]
                for t in ai.trades
            ],
        }
    return {"balances": balances, "assets": assets}


def diff(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Every field where `actual` differs from `expected`, as "path: expected != actual"."""
    out: list[str] = []
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{where}: missing in replay (expected {expected[key]!r})")
            elif key not in expected:
                out.append(f"{where}: unexpected in replay ({actual[key]!r})")
            else:
                out.extend(diff(expected[key], actual[key], where))
    elif isinstance(expected, list | tuple) and isinstance(actual, list | tuple):
        if len(expected) != len(actual):
            out.append(f"{path}: {len(expected)} items expected, replay has {len(actual)}")
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            out.extend(diff(e, a, f"{path}[{i}]"))
    elif expected != actual:
        out.append(f"{path}: expected {expected!r}, replay has {actual!r}")
    return out
