"""The trace schema: column layout, the versioned event-kind enum, and the recorder protocol."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec

SCHEMA_VERSION = 1

# Each column is a 1-D Zarr array of this dtype; `payload` holds msgpack bytes.
COLUMNS: dict[str, str] = {
    "seq": "uint64",
    "ts_ns": "int64",
    "ts_exchange_ns": "int64",
    "kind": "uint16",
    "asset": "int32",  # index into the group's symbol table; -1 for none
}
NO_ASSET = -1


@enum.unique  # two names on one code would make a kind an alias of another
class Kind(enum.IntEnum):
    """What a trace record is. Codes are stable: add new ones, never renumber (bump SCHEMA_VERSION
    when a payload's meaning changes)."""

    RUN_STARTED = 1
    RUN_STOPPED = 2
    # Order path. Payloads of ORDER_* and TRADE are ccxt unified dicts or the request sent.
    ORDER_INTENT = 10  # client id and parameters, written before the order is sent
    ORDER_ACK = 11  # the exchange's answer to create_order
    ORDER_UPDATE = 12  # an order as reported later (watcher, fetch, simulated exchange)
    ORDER_REJECTED = 13  # the exchange refused the order
    ORDER_CHECK_FAILED = 14  # a local check refused it; it never reached the exchange
    CANCEL_REQUEST = 15
    ORDER_UNKNOWN = 16  # send timed out or lost its connection; resolving by client id
    # The exchange refused the send outright (nothing was placed): a record of the refusal,
    # not a state change. Before this code, vigil wrote these under ORDER_REJECTED.
    ORDER_REFUSED = 17
    # A bracket (DESIGN §10): the entry's client id, its stop-loss and take-profit triggers
    # and its legs' client ids, written before the entry is sent; a restart rebuilds the
    # one-cancels-other link, and places missing legs, from it.
    BRACKET = 18
    TRADE = 20  # a fill
    TRADE_EMULATED = 21  # a fill derived from cumulative filled/cost deltas
    # Account.
    BALANCE = 30
    POSITION = 31
    LEVERAGE = 32
    MARGIN_MODE = 33
    LIQUIDATION = 34
    # Market data.
    BAR = 40
    TICKER = 41
    PUBLIC_TRADES = 42
    ORDER_BOOK = 43
    BARS = 44  # a block of bars of one market: {"time": [ms...], "open": [...], ... "volume"}
    # Plumbing.
    ERROR = 50
    RECONNECT = 51
    GAP_FILL = 52
    HEALTH = 53
    HOOK_ERROR = 54
    RECONCILE = 60
    STATE = 70  # a snapshot of strategy state, written at run stop, that replay must reproduce
    # Risk and operations (DESIGN §9).
    HALTED = 80  # trading turned off: {"reason", ...}; state (replay restores the halt)
    RESUMED = 81  # trading turned back on; state
    STRATEGY_ERROR = 82  # on_tick raised: {"error", "bar", "in_a_row"}
    ALERT = 83  # an alert as delivered to on_alert and the webhook: {"kind", "message", "data"}
    # Funding settled on a perpetual position (Sim charges stored funding at each funding time).
    FUNDING = 45
    # Live and Paper, at each tick: {"time": ms, "prices": {symbol: mark price}, "equity": ...},
    # so a trace alone prices the account (results and reports of every mode).
    MARK = 90


# The kinds whose payloads are engine events: replay applies exactly these, in seq order.
STATE_KINDS: frozenset[Kind] = frozenset(
    {
        Kind.ORDER_ACK,
        Kind.ORDER_UPDATE,
        Kind.ORDER_REJECTED,
        Kind.TRADE,
        Kind.TRADE_EMULATED,
        Kind.BALANCE,
        Kind.POSITION,
        Kind.LEVERAGE,
        Kind.RECONCILE,
        Kind.HALTED,
        Kind.RESUMED,
        Kind.FUNDING,
    }
)


#: Kinds whose payloads hold numbers only, by construction (a backtest's bars, from its
#: arrays): the writer does not scan them for secrets, whose byte patterns floats can mimic.
NUMERIC_KINDS = frozenset({int(Kind.BAR), int(Kind.BARS)})


class TypedPayload(dict[str, Any]):
    """A payload the runtime built from one of its own typed events (an order acknowledged or
    filled, a balance, a position, leverage, funding), whose strings are all ids, symbols,
    currencies, sides or type names: nothing a secret could be in. The writer does not scan it
    for secrets (on a backtest's order path the scan cost more than the encoding, measured);
    any other payload, and any that carries the exchange's own report, is a plain dict and is
    scanned."""

    __slots__ = ()


#: A payload as a recorder takes it: a mapping, or the msgpack of one as `msgspec.Raw`, which
#: is written as is and, like a `TypedPayload`, not scanned: what the runtime makes of its
#: typed events on a traced backtest (the same bytes as the dict, built without the dict).
RecordPayload = Mapping[str, Any] | msgspec.Raw

#: Payload types the writer does not scan for secrets (see `TypedPayload`).
UNSCANNED: frozenset[type] = frozenset({TypedPayload, msgspec.Raw})

#: One event for `Recorder.record_rows`: (kind, payload, ts_ns, asset, ts_exchange_ns).
Row = tuple[int, RecordPayload, int, "str | None", int]


class Recorder(Protocol):
    """Where the runtime sends every event. The Zarr trace writer is the real one."""

    def record(
        self,
        kind: Kind,
        payload: RecordPayload,
        *,
        ts_ns: int,
        asset: str | None = None,
        ts_exchange_ns: int = -1,
        durable: bool = False,
    ) -> int:
        """Append one event and return its seq. With ``durable=True`` the record has reached the
        OS (and is fsynced if the policy says so) when this returns."""
        ...

    def record_rows(self, rows: Sequence[Row], *, durable: bool = False) -> range:
        """Append ``(kind, payload, ts_ns, asset, ts_exchange_ns)`` rows as :meth:`record`
        would one by one (``durable`` as on the last); return their seqs."""
        ...

    @property
    def next_seq(self) -> int:
        """The seq the next record will get."""
        ...

    def persist(self) -> None:
        """Make every record so far durable, as ``durable=True`` on the last one would have."""
        ...

    def close(self) -> None: ...


class NullRecorder:
    """Records nothing; seq still counts, so callers see the same numbers."""

    def __init__(self) -> None:
        self.seq = 0

    def record(
        self,
        kind: Kind,
        payload: RecordPayload,
        *,
        ts_ns: int,
        asset: str | None = None,
        ts_exchange_ns: int = -1,
        durable: bool = False,
    ) -> int:
        seq = self.seq
        self.seq += 1
        return seq

    def record_rows(self, rows: Sequence[Row], *, durable: bool = False) -> range:
        seq0 = self.seq
        self.seq += len(rows)
        return range(seq0, self.seq)

    @property
    def next_seq(self) -> int:
        return self.seq

    def persist(self) -> None:
        pass

    def close(self) -> None:
        pass


# The on-disk layout, shared by the writer, the readers and the object-store mirror. The
# payload column is three arrays: `payload` (uint8, every payload back to back),
# `payload_offset` and `payload_size`. Why not zarr's variable-length bytes dtype: in zarr 3.1
# it has no v3 spec (it warns that other readers may not read it), and reading it builds one
# Python bytes object per row, while this layout reads as flat numpy arrays and lets payloads
# stay encoded until a row is looked at (on 160K small payloads, measured: 15% faster to write
# and 25% faster to read than vlen-bytes).
PAYLOAD_ARRAYS: dict[str, str] = {
    "payload_offset": "int64",
    "payload_size": "uint32",
    "payload": "uint8",
}
ARRAYS: dict[str, str] = {**COLUMNS, **PAYLOAD_ARRAYS}
WAL_DIR = "wal"
LOCK_FILE = "writer.lock"
