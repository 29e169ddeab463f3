"""One readable line per trace event: the fields a person reads (side, amount, price, status,
reason ...), arrays and snapshots elided. Used by `trace_tail` and `vigil trace tail`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

# Shown first, in this order, when present; then any other key not in _HIDDEN.
_FIRST = (
    "event",
    "side",
    "order_type",
    "type",
    "amount",
    "price",
    "fee",
    "fee_currency",
    "status",
    "rule",
    "reason",
    "error",
    "currency",
    "total",
    "contracts",
    "entry_price",
    "leverage",
    "equity",
    "prices",
    "watcher",
    "health",
    "mode",
    "run_id",
    "client_id",
    "id",
    "trade_id",
)
# Bulky or internal: a state digest, raw exchange payloads, request params, market rules.
# The symbol and the venue's timestamp are on the line already (asset, time).
_HIDDEN = frozenset(
    {"check", "raw", "params", "market_defs", "state", "markets", "source", "symbol", "timestamp"}
)
_MAX_LINE = 200
_MAX_TEXT = 80


def _value(v: Any, depth: int = 0) -> str:
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, str):
        return v if len(v) <= _MAX_TEXT else v[: _MAX_TEXT - 1] + "…"
    if isinstance(v, Mapping):
        if depth or len(v) > 4:
            return f"{{{len(v)} keys}}"
        return "{" + ", ".join(f"{k}: {_value(x, depth + 1)}" for k, x in v.items()) + "}"
    if isinstance(v, Sequence) and not isinstance(v, bytes | bytearray):
        if depth or len(v) > 3:
            return f"[{len(v)} values]"
        return "[" + ", ".join(_value(x, depth + 1) for x in v) + "]"
    return str(v)


def summarise(payload: Any) -> str:
    """The payload as ``key=value`` pairs, the readable fields first, arrays elided."""
    if not isinstance(payload, Mapping):
        return _value(payload)
    keys = [k for k in _FIRST if k in payload]
    keys += [k for k in payload if k not in _FIRST and k not in _HIDDEN]
    # Columns of one table (a block of bars): one mention, with the row count.
    columns = [k for k in keys if isinstance(payload[k], list) and len(payload[k]) > 3]
    lengths = {len(payload[k]) for k in columns}
    parts = []
    if len(columns) > 1 and len(lengths) == 1:
        parts.append(f"{lengths.pop()} rows of {','.join(columns)}")
        keys = [k for k in keys if k not in columns]
    parts += [f"{k}={_value(payload[k])}" for k in keys if payload[k] is not None]
    if "state" in payload:
        parts.append("state={snapshot}")
    line = " ".join(parts)
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"


def event_line(record: Mapping[str, Any]) -> str:
    """One event (a `tail_records` dict) as one line: seq, UTC time, kind, asset, summary."""
    when = dt.datetime.fromtimestamp(record["ts_ns"] / 1e9, dt.UTC)
    asset = record.get("asset") or "-"
    return (
        f"{record['seq']:>8} {when:%Y-%m-%d %H:%M:%S.%f}"[:-3]
        + f" {record['kind']:<18} {asset:<14} {summarise(record.get('payload'))}"
    )


class TailRecords(list[dict[str, Any]]):
    """The list of event dicts `trace_tail` returns; its repr shows one line per event."""

    def __repr__(self) -> str:
        if not self:
            return "(no events)"
        return "\n".join(event_line(r) for r in self)

    def __str__(self) -> str:
        return self.__repr__()
