"""Reading traces: ``read_trace``, ``tail_records``, ``tail_frame`` and ``iter_events``.

Readers see a view's consistent snapshot (`traces._view`) and never modify a file. Payloads
stay encoded until asked for: ``read_trace``'s ``payload`` column is a
:class:`~traces._payloads.PayloadArray`, which decodes an element when it is accessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from runtime._errors import ConfigError, TraceError
from traces._codec import gc_paused
from traces._payloads import PayloadArray
from traces._runs import choose_run, runs_of
from traces._schema import NO_ASSET, SCHEMA_VERSION, Kind
from traces._view import FIELDS, SPARSE, open_view

__all__ = [
    "Event",
    "iter_events",
    "read_trace",
    "tail_frame",
    "tail_records",
]

# ------------------------------------------------------------------------------------------------
# Public readers


def _to_ns(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name}={value!r}: expected a timestamp or int nanoseconds")
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{name}={value!r} is not a timestamp: pass int nanoseconds since the epoch or "
            "anything pandas.Timestamp parses"
        ) from exc
    if ts is pd.NaT:
        raise ConfigError(f"{name}={value!r} is NaT")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")  # naive means UTC, as trace times are
    return int(ts.as_unit("ns").value)


def _kind_codes(kinds: Any) -> list[int]:
    if isinstance(kinds, (Kind, str, int, np.integer)):
        kinds = [kinds]
    codes = []
    for k in kinds:
        if isinstance(k, str):
            try:
                codes.append(int(Kind[k.upper()]))
            except KeyError:
                valid = ", ".join(m.name for m in Kind)
                raise ConfigError(f"unknown kind {k!r}: valid kinds are {valid}") from None
        else:
            codes.append(int(k))
    return codes


def _kind_categorical(kind: np.ndarray) -> pd.Categorical:
    members = list(Kind)
    names = [m.name for m in members]
    known = {int(m): i for i, m in enumerate(members)}
    present = np.flatnonzero(np.bincount(kind)) if len(kind) else np.empty(0, np.intp)
    extra = [int(v) for v in present if int(v) not in known]
    lut = np.full(max([*known, *extra, 0]) + 1, -1, np.int32)
    for code, i in known.items():
        lut[code] = i
    for j, code in enumerate(extra):
        lut[code] = len(names) + j
    return pd.Categorical.from_codes(lut[kind], categories=names + [f"KIND_{v}" for v in extra])


def _frame(cols: Mapping[str, Any], symbols: list[str]) -> pd.DataFrame:
    ts = cols["ts_ns"]
    return pd.DataFrame(
        {
            "seq": cols["seq"],
            "time": pd.to_datetime(ts, unit="ns", utc=True),
            "ts_ns": ts,
            "ts_exchange_ns": cols["ts_exchange_ns"],
            "kind": _kind_categorical(cols["kind"]),
            "asset": pd.Categorical.from_codes(cols["asset"], categories=symbols),
            "payload": PayloadArray(cols["payload"]),
        }
    )


def read_trace(
    path: str | Path,
    since: Any = None,
    until: Any = None,
    kinds: Any = None,
    assets: Any = None,
) -> pd.DataFrame:
    """The trace at ``path`` as a DataFrame, one row per event in seq order.

    Columns: ``seq`` (uint64), ``time`` (datetime64[ns, UTC] of ``ts_ns``), ``ts_ns``,
    ``ts_exchange_ns`` (-1 when the venue gave none), ``kind`` (categorical of Kind names),
    ``asset`` (categorical of symbols; NaN for events without one) and ``payload`` (a
    :class:`PayloadArray`: dicts decoded on access).

    Filters combine with AND: ``since <= ts_ns < until`` (int nanoseconds, or anything
    ``pandas.Timestamp`` parses; naive times are UTC); ``kinds``: Kind members, names or codes;
    ``assets``: symbols (``None`` selects events without an asset). Raises TraceError if the
    trace is missing or has an unknown schema version.
    """
    view = open_view(path)
    total = view.total
    filters: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    if since is not None or until is not None:
        lo_ns = _to_ns(since, "since") if since is not None else None
        hi_ns = _to_ns(until, "until") if until is not None else None

        def ts_mask(ts: np.ndarray) -> np.ndarray:
            m = np.ones(len(ts), bool)
            if lo_ns is not None:
                m &= ts >= lo_ns
            if hi_ns is not None:
                m &= ts < hi_ns
            return m

        filters["ts_ns"] = ts_mask
    if kinds is not None:
        codes = np.array(_kind_codes(kinds), dtype=np.int64)
        filters["kind"] = lambda k: np.isin(k, codes)
    if assets is not None:
        wanted = [assets] if isinstance(assets, str) or assets is None else list(assets)
        index = {s: i for i, s in enumerate(view.symbols)}
        idx = np.array(
            [NO_ASSET if a is None else index.get(a, -2) for a in wanted], dtype=np.int64
        )
        filters["asset"] = lambda a: np.isin(a, idx)
    if not filters:
        return _frame(view.read(0, total), view.symbols)
    keys = list(filters)
    cols = view.read(0, total, keys)
    mask = np.ones(total, bool)
    for k in keys:
        mask &= filters[k](cols[k])
    sel = np.flatnonzero(mask)
    lo, hi = (int(sel[0]), int(sel[-1]) + 1) if len(sel) else (0, 0)
    others = [f for f in FIELDS if f not in filters]
    if len(sel) * SPARSE < hi - lo:  # scattered rows: read only the chunks they touch
        out = view.read_at(sel, others)
    else:
        rest = view.read(lo, hi, others)
        rel = sel - lo
        out = {f: (rest[f].take(rel) if f == "payload" else rest[f][rel]) for f in rest}
    out.update({k: cols[k][sel] for k in keys})
    return _frame(out, view.symbols)


def _rows(cols: Mapping[str, Any]) -> Iterator[tuple[int, int, int, int, int, Any]]:
    """The rows of columns read with every field, as ``(seq, ts_ns, ts_exchange_ns, kind,
    asset, payload)`` tuples of Python values (payloads decoded, all at once)."""
    return zip(
        cols["seq"].tolist(),
        cols["ts_ns"].tolist(),
        cols["ts_exchange_ns"].tolist(),
        cols["kind"].tolist(),
        cols["asset"].tolist(),
        cols["payload"].decode_all(),
        strict=True,
    )


def _kind_name(code: int) -> str:
    try:
        return Kind(code).name
    except ValueError:
        return f"KIND_{code}"


def tail_records(path: str | Path, n: int = 10) -> list[dict[str, Any]]:
    """The last ``n`` events, oldest first, as dicts with keys ``seq``, ``ts_ns``,
    ``ts_exchange_ns``, ``kind`` (name), ``asset`` (symbol or None) and ``payload`` (decoded).
    Reads only the chunks holding those rows plus the WAL."""
    if n < 0:
        raise ConfigError(f"n={n}: the number of events must be >= 0")
    view = open_view(path)
    total = view.total
    rows = _rows(view.read(max(0, total - n), total))
    symbols = view.symbols
    with gc_paused():
        return [
            {
                "seq": seq,
                "ts_ns": ts,
                "ts_exchange_ns": tsx,
                "kind": _kind_name(kind),
                "asset": symbols[asset] if asset >= 0 else None,
                "payload": payload,
            }
            for seq, ts, tsx, kind, asset, payload in rows
        ]


_BASE = ("seq", "time", "kind", "asset", "ts_ns", "ts_exchange_ns")


def tail_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Records from :func:`tail_records` as a DataFrame: the base columns, then every payload
    key flattened into its own column (nested keys joined with ``.``; a key that clashes with a
    base column becomes ``payload.<key>``)."""
    base = pd.DataFrame(
        {
            "seq": np.array([r["seq"] for r in records], dtype=np.uint64),
            "time": pd.to_datetime(
                np.array([r["ts_ns"] for r in records], dtype=np.int64), unit="ns", utc=True
            ),
            "kind": [r["kind"] for r in records],
            "asset": [r["asset"] for r in records],
            "ts_ns": np.array([r["ts_ns"] for r in records], dtype=np.int64),
            "ts_exchange_ns": np.array([r["ts_exchange_ns"] for r in records], dtype=np.int64),
        }
    )
    if not records:
        return base
    flat = pd.json_normalize([dict(r["payload"] or {}) for r in records], sep=".")
    flat.columns = [f"payload.{c}" if c in _BASE else c for c in flat.columns]
    return pd.concat([base, flat], axis=1)


class Event(NamedTuple):
    """One recorded event, as replay consumes it."""

    seq: int
    ts_ns: int
    ts_exchange_ns: int
    kind: Kind
    asset: str | None
    payload: dict[str, Any]


def iter_events(
    path: str | Path, run: int | str | None = None, *, block_rows: int = 65536
) -> Iterator[Event]:
    """Yield every event in seq order as :class:`Event` tuples
    ``(seq, ts_ns, ts_exchange_ns, kind, asset, payload)``; with ``run`` (an index into
    :func:`list_runs`, -1 for the last, or a run id) only that run's events, from its
    RUN_STARTED through its RUN_STOPPED. Reads and decodes ``block_rows`` rows at a time.
    Raises TraceError on an event kind this version does not know."""
    view = open_view(path)
    lo, hi = 0, view.total
    if run is not None:
        runs = runs_of(view)
        chosen = runs[choose_run(runs, run, view.path)]
        lo, hi = chosen.start_seq, chosen.end_seq
    symbols = view.symbols
    for start in range(lo, hi, block_rows):
        block = _rows(view.read(start, min(hi, start + block_rows)))
        for seq, ts, tsx, code, asset, payload in block:
            try:
                kind = Kind(code)
            except ValueError:
                raise TraceError(
                    f"trace {view.path}: event {seq} has kind code {code}, unknown to this "
                    f"vigil (schema {SCHEMA_VERSION}): upgrade vigil to replay it"
                ) from None
            yield Event(seq, ts, tsx, kind, symbols[asset] if asset >= 0 else None, payload)
