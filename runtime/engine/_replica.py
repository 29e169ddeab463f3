"""The state replica: the strategy's state rebuilt from its trace, for replay and restarts.

It applies every recorded engine event again, in seq order, through the same `apply` the run
used, and fails loudly (`ReplayMismatch`, naming the seq) when:

* a seq is missing: the trace skips an event, so the state after it cannot be trusted;
* an event cannot be applied, or leaves a state that differs from the digest recorded with it;
* at the end of a run, the state differs from the snapshot its `RUN_STOPPED` record carries.

A run that started fresh (Sim, a first Live run) begins from an empty state; a later run (a
Live restart) continues the state the earlier ones left.

Speed (bench/replay.py): payloads replay does not read (market data, plumbing) are never
decoded; an engine event is decoded with its recorded digest in one msgspec call, into a
Struct with its class's fields that the engine's own per-class apply reads as it would the
event, and the digest is compared in place; the final snapshot is compared by its encoded
bytes. Each fast path only ever says "equal": anything else goes the generic way
(`event_from_dict`, `digest`, `check_snapshot`), which decides and reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union, cast

import msgpack
import msgspec
import numpy as np

from runtime._errors import ReplayMismatch, TraceError
from runtime._progress import Progress
from runtime.engine._engine import (
    _APPLY,
    EVENT_TYPES,
    BalanceUpdated,
    Event,
    FundingPaid,
    LeverageChanged,
    OrderAcknowledged,
    OrderCancelled,
    OrderCreated,
    OrderFilled,
    OrderRejected,
    PositionUpdated,
    State,
    _asset_currencies,
    digest,
    event_from_dict,
    settle_fill,
)
from runtime.model._assets import AssetInstance
from runtime.model._orders import Order, Trade, client_seq_of
from traces import STATE_KINDS, Kind, RunInfo, open_view, runs_of
from traces._codec import Payloads, gc_paused


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
                    # Only protective orders carry it: older snapshots stay comparable.
                    **({} if o.trigger_price is None else {"trigger_price": o.trigger_price}),
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
    out: dict[str, Any] = {"balances": balances, "assets": assets}
    if state.halted is not None:  # only when halted: older traces' snapshots have no key
        out["halted"] = state.halted
    return out


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


# Engine events, the run's stop (its snapshot) and order intents (client ids continue after
# the last one) are decoded; everything else (market data, plumbing) is skipped unread.
_IS_STATE = np.zeros(1 << 16, dtype=bool)  # by kind code (uint16)
_IS_STATE[[int(k) for k in STATE_KINDS]] = True
_REJECTED = int(Kind.ORDER_REJECTED)
_INTENT = int(Kind.ORDER_INTENT)
_RUN_STOPPED = int(Kind.RUN_STOPPED)
BLOCK = 65_536  # rows read and decoded at a time

# Called after each applied event: (seq, ts_ns, event, what `apply` returned).
OnEvent = Callable[[int, int, Event, Any], None]


class _Check(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A recorded digest (`digest`) as decoded: ``b`` balances (total, committed) by currency,
    ``o`` the order's (filled, status, committed), ``p`` the position's (long, short)
    contracts. Typed, it decodes in a fifth less time than as dicts and lists (measured); a
    digest of any other shape fails the decode and takes the generic path."""

    b: dict[str, tuple[float, float]]
    o: tuple[float, str, float] | None = None
    p: tuple[float, float] | None = None


def _check_dict(check: _Check | None) -> dict[str, Any] | None:
    """The recorded digest as `digest` builds it (for the full comparison and messages)."""
    if check is None:
        return None
    out: dict[str, Any] = {}
    if check.p is not None:
        out["p"] = list(check.p)
    if check.o is not None:
        out["o"] = list(check.o)
    out["b"] = {currency: list(pair) for currency, pair in check.b.items()}
    return out


def _mirror(cls: type) -> type[msgspec.Struct]:
    """A Struct with the fields of event class `cls` (names, types, defaults) and the digest
    recorded with it (`check`), tagged by the class name under "event" as traces store it."""
    fields: list[Any] = [
        (f.name, f.type) if f.required else (f.name, f.type, f.default)
        for f in msgspec.structs.fields(cls)
    ]
    fields.append(("check", _Check | None, None))
    # gc=False: a decoded event holds only numbers, strings and its digest, never a cycle.
    return msgspec.defstruct(
        cls.__name__, fields, tag_field="event", tag=cls.__name__, frozen=True, gc=False
    )


# One C call decodes an engine event's payload (whichever class its "event" names, other keys
# such as a Live event's ccxt report under "raw" skipped unbuilt) with its digest: half the
# cost of reading the class name first and then decoding into the class (measured). A payload
# that does not fit its class's field types (an older trace's odd value) takes the generic
# path, as does one whose class is unknown.
_ENGINE_CLASS: dict[type, type] = {_mirror(cls): cls for cls in EVENT_TYPES.values()}
_DECODE = msgspec.msgpack.Decoder(cast(Any, Union)[tuple(_ENGINE_CLASS)]).decode
_NOT_TYPED = (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError)


def _engine_event(decoded: Any) -> Event:
    """The engine's own event for a decoded one (its fields, less the digest)."""
    return cast(Event, _ENGINE_CLASS[type(decoded)](*msgspec.structs.astuple(decoded)[:-1]))


# A digest compared in place, by event class: True only when the recorded digest equals
# `digest(state, event)`; False when it differs or the case is not covered here (then the
# caller compares the full digest, which decides). Building the digest to compare it cost
# twice as much (measured).
def _order_matches(state: State, event: Any, check: _Check) -> bool:
    ai = state.assets.get(event.symbol)
    if ai is None:
        return False
    client_id = event.client_id
    order = state.orders.get(client_id) if client_id else None
    return _asset_matches(state, ai, order, check)


def _market_matches(state: State, event: Any, check: _Check) -> bool:
    ai = state.assets.get(event.symbol)
    return ai is not None and _asset_matches(state, ai, None, check)


def _asset_matches(state: State, ai: AssetInstance, order: Order | None, check: _Check) -> bool:
    if order is None:
        if check.o is not None:
            return False
    elif check.o != (order.filled, order.status, order.committed):
        return False
    if ai.contract:
        long, short = ai.long, ai.short
        if check.p != (long.contracts if long else 0.0, short.contracts if short else 0.0):
            return False
    elif check.p is not None:
        return False
    b = check.b
    balances = state.balances
    present = 0
    for currency in _asset_currencies(ai):
        bal = balances.get(currency)
        if bal is not None:
            present += 1
            if b.get(currency) != (bal.total, bal.committed):
                return False
    return len(b) == present


def _fill_matches(state: State, event: Any, check: _Check) -> bool:
    ai = state.assets.get(event.symbol)
    if ai is None or event.fee_currency not in _asset_currencies(ai):
        return False
    return _order_matches(state, event, check)


def _balance_matches(state: State, event: Any, check: _Check) -> bool:
    if check.o is not None or check.p is not None:
        return False
    b = check.b
    bal = state.balances.get(event.currency)
    return bal is not None and len(b) == 1 and b.get(event.currency) == (bal.total, bal.committed)


_MATCHERS: dict[type, Callable[[State, Any, _Check], bool]] = {
    OrderCreated: _order_matches,
    OrderAcknowledged: _order_matches,
    OrderFilled: _fill_matches,
    OrderCancelled: _order_matches,
    OrderRejected: _order_matches,
    BalanceUpdated: _balance_matches,
    PositionUpdated: _market_matches,
    LeverageChanged: _market_matches,
    FundingPaid: _market_matches,
}


def digest_matches(state: State, event: Event, recorded: Any) -> bool:
    """Whether ``recorded == digest(state, event)``, compared in place rather than by building
    the digest. True only when they are equal; False when they differ or for an event this
    does not cover (trading halted or resumed, a fee in a fourth currency), where the caller
    compares the full digest. `recorded` is a `_Check` as replay decodes it, or a plain
    digest (a dict), taken as one when it has a digest's shape."""
    match = _MATCHERS.get(type(event))
    if match is None:
        return False
    if type(recorded) is not _Check:
        try:
            recorded = msgspec.convert(recorded, _Check)
        except msgspec.ValidationError:
            return False
    return match(state, event, recorded)


# Engine events whose `apply` only reads the event's fields and keeps no reference to it: the
# decoded Struct is applied as it is (no dataclass built). Any other (a FundingPaid is kept in
# `State.funding`), and any event a caller or the full digest sees, is the engine's own class.
_READS_FIELDS_ONLY = (
    OrderCreated,
    OrderAcknowledged,
    OrderFilled,
    OrderCancelled,
    OrderRejected,
    BalanceUpdated,
    PositionUpdated,
    LeverageChanged,
)
_FAST: dict[type, tuple[Callable[[State, Any], Any], Callable[[State, Any, _Check], bool]]] = {
    mirror: (_APPLY[cls], _MATCHERS[cls])
    for mirror, cls in _ENGINE_CLASS.items()
    if cls in _READS_FIELDS_ONLY
}


class Replica:
    """Rebuilds state from the trace at `path`: `replay(state, lo, hi)` applies the engine
    events of seqs [lo, hi), checking each (module docstring). `client_seq` is the highest
    client order id sequence seen, so a restarted strategy never reuses one; `last_ts_ns` the
    time of the last event read."""

    def __init__(self, path: str | Path) -> None:
        self.view = open_view(path)
        self.path = self.view.path
        self.client_seq = 0
        self.last_ts_ns = 0

    def runs(self) -> list[RunInfo]:
        return runs_of(self.view)

    def first_fresh_run(self, runs: list[RunInfo], chosen: int) -> tuple[int, dict[str, Any]]:
        """Walk back from run `chosen` to the run that began from an empty state; returns it
        and the RUN_STARTED payload of `chosen`."""
        head = self.start_payload(runs, chosen)
        first, payload = chosen, head
        while first > 0 and not payload.get("fresh", True):
            first -= 1
            payload = self.start_payload(runs, first)
        return first, head

    def start_payload(self, runs: list[RunInfo], i: int) -> dict[str, Any]:
        seq = runs[i].start_seq
        head = self.view.read(seq, seq + 1, ["kind", "payload"])
        payload = head["payload"].decode(0)
        if int(head["kind"][0]) != Kind.RUN_STARTED or not isinstance(payload, dict):
            raise TraceError(f"trace {self.path}: run {i} does not begin with RUN_STARTED")
        return payload

    def replay(
        self,
        state: State,
        lo: int,
        hi: int,
        *,
        stop_seq: int | None = None,
        progress: Progress | None = None,
        on_event: OnEvent | None = None,
        settle_fills: bool = False,
    ) -> None:
        """Apply the engine events of seqs [lo, hi) to `state`, checking that no seq is
        missing, each recorded digest, and at `stop_seq` the recorded snapshot.
        `settle_fills` (see `settles_fills`) moves balances by fills as the exchange did."""
        expected = lo
        fields = ["seq", "kind", "payload"] + ([] if on_event is None else ["ts_ns"])
        with gc_paused():
            for start in range(lo, hi, BLOCK):
                end = min(hi, start + BLOCK)
                cols = self.view.read(start, end, fields)
                self._check_contiguous(cols["seq"], expected)
                expected += len(cols["seq"])
                kinds = cols["kind"]
                events = np.flatnonzero(_IS_STATE[kinds])
                # The other rows read, each in its place in seq order: the block's last order
                # intent (client ids continue after it) and the run's stop (its snapshot).
                others = []
                intents = np.flatnonzero(kinds == _INTENT)
                if len(intents):
                    others.append(int(intents[-1]))
                stop = -1 if stop_seq is None else stop_seq - start
                if 0 <= stop < len(kinds) and kinds[stop] == _RUN_STOPPED:
                    others.append(stop)
                done = 0
                for row in [*sorted(others), len(kinds)]:
                    cut = int(np.searchsorted(events, row))
                    self._apply_rows(state, start, events[done:cut], cols, on_event, settle_fills)
                    done = cut
                    if row < len(kinds):
                        self._read_other(state, start + row, int(kinds[row]), cols["payload"], row)
                if progress is not None:
                    progress.update(end - lo)
        if expected > lo:  # the time of the last row read
            self.last_ts_ns = int(self.view.read(expected - 1, expected, ["ts_ns"])["ts_ns"][0])

    def _apply_rows(
        self,
        state: State,
        seq0: int,
        rows: np.ndarray,
        cols: dict[str, Any],
        on_event: OnEvent | None,
        settle: bool,
    ) -> None:
        """Apply and check the engine events at `rows` of a block whose first seq is `seq0`."""
        payloads = cols["payload"]
        blob = memoryview(payloads.blob)
        offsets = payloads.offsets[rows]
        decode = _DECODE
        fast_of = _FAST if on_event is None else {}  # a caller sees the engine's own events
        for row, offset, end_at in zip(
            rows.tolist(), offsets.tolist(), (offsets + payloads.sizes[rows]).tolist(), strict=True
        ):
            data = blob[offset:end_at]
            try:
                decoded = decode(data)
            except _NOT_TYPED:
                self._apply_generic(state, seq0, row, cols, data, on_event, settle)
                continue
            fast = fast_of.get(type(decoded))
            if fast is None:
                event = _engine_event(decoded)
                self._apply_one(state, seq0, row, cols, event, decoded.check, on_event, settle)
                continue
            apply_event, matches = fast
            try:
                result = apply_event(state, decoded)
                if settle and isinstance(result, Trade):
                    settle_fill(state, decoded)
            except Exception as exc:
                raise self._unappliable(seq0 + row, int(cols["kind"][row]), exc) from exc
            recorded = decoded.check
            if recorded is not None and not matches(state, decoded, recorded):
                self._check_digest(state, seq0, row, cols, _engine_event(decoded), recorded)

    def _apply_generic(
        self,
        state: State,
        seq0: int,
        row: int,
        cols: dict[str, Any],
        data: memoryview,
        on_event: OnEvent | None,
        settle: bool,
    ) -> None:
        """An engine event whose payload does not fit its class: decoded as a dict."""
        code = int(cols["kind"][row])
        payload = msgpack.unpackb(data, raw=False, strict_map_key=False)
        if code == _REJECTED and "event" not in payload:
            return  # a send refusal from before ORDER_REFUSED: no change
        try:
            event = event_from_dict(payload)
        except Exception as exc:
            raise self._unappliable(seq0 + row, code, exc) from exc
        self._apply_one(state, seq0, row, cols, event, payload.get("check"), on_event, settle)

    def _apply_one(
        self,
        state: State,
        seq0: int,
        row: int,
        cols: dict[str, Any],
        event: Event,
        recorded: Any,
        on_event: OnEvent | None,
        settle: bool,
    ) -> None:
        try:
            result = _APPLY[type(event)](state, event)
            if settle and isinstance(result, Trade):
                settle_fill(state, cast(OrderFilled, event))
        except Exception as exc:
            raise self._unappliable(seq0 + row, int(cols["kind"][row]), exc) from exc
        if recorded is not None and not digest_matches(state, event, recorded):
            self._check_digest(state, seq0, row, cols, event, recorded)
        if on_event is not None:
            on_event(seq0 + row, int(cols["ts_ns"][row]), event, result)

    def _check_digest(
        self, state: State, seq0: int, row: int, cols: dict[str, Any], event: Event, recorded: Any
    ) -> None:
        """Compare the full digest, which decides, and name the event if it differs."""
        if type(recorded) is _Check:
            recorded = _check_dict(recorded)
        rebuilt = digest(state, event)
        if recorded != rebuilt:
            raise ReplayMismatch(
                f"trace {self.path}: state after event {seq0 + row} "
                f"({Kind(int(cols['kind'][row])).name} {type(event).__name__}) differs: "
                f"recorded {recorded}, replay {rebuilt}"
            )

    def _read_other(self, state: State, seq: int, code: int, payloads: Payloads, row: int) -> None:
        """An order intent (its client id) or the run's stop (its snapshot, compared)."""
        start = int(payloads.offsets[row])
        data = payloads.blob[start : start + int(payloads.sizes[row])].data
        if code == _INTENT:
            payload = msgpack.unpackb(data, raw=False, strict_map_key=False)
            seq_of = client_seq_of(str(payload.get("client_id", "")))
            if seq_of is not None:
                self.client_seq = max(self.client_seq, seq_of)
        elif not snapshot_bytes_match(state, data):
            payload = msgpack.unpackb(data, raw=False, strict_map_key=False)
            check_snapshot(state, payload, seq, self.path)

    def _unappliable(self, seq: int, code: int, exc: Exception) -> ReplayMismatch:
        return ReplayMismatch(
            f"trace {self.path}: event {seq} ({Kind(code).name}) cannot be applied: {exc!r}"
        )

    def _check_contiguous(self, seqs: np.ndarray, expected: int) -> None:
        if not len(seqs):
            raise ReplayMismatch(
                f"trace {self.path}: event {expected} is missing (the trace ends before it); "
                "the trace is damaged: replay stops rather than guess the state"
            )
        first, last = int(seqs[0]), int(seqs[-1])
        if first == expected and last - first == len(seqs) - 1 and np.all(np.diff(seqs) == 1):
            return
        steps = np.concatenate(([expected - 1], seqs.astype(np.int64)))
        k = int(np.flatnonzero(np.diff(steps) != 1)[0])
        before, after = int(steps[k]), int(steps[k + 1])
        what = f"event {before + 1} is missing" if after > before + 1 else "seqs are out of order"
        raise ReplayMismatch(
            f"trace {self.path}: {what} (seq {before} is followed by {after}); the trace is "
            "damaged: replay stops rather than guess the state"
        )


def settles_fills(start: dict[str, Any]) -> bool:
    """Whether a run's fills must be settled on replay: runs recorded before the simulated
    exchange reported its balances and positions (no "account_from_reports" in RUN_STARTED)."""
    return not start.get("account_from_reports", False)


class _Stopped(msgspec.Struct):
    """The snapshot in a RUN_STOPPED record, left encoded."""

    state: msgspec.Raw = msgspec.Raw()


_STOPPED = msgspec.msgpack.Decoder(_Stopped).decode
# A snapshot (numbers, strings, lists, dicts) encodes to the bytes the trace's msgpack packer
# wrote, at half its cost (measured); bytes that differ only send it to the compare by value.
_ENCODE = msgspec.msgpack.Encoder().encode


def snapshot_bytes_match(state: State, data: Any) -> bool:
    """Whether the RUN_STOPPED record ``data`` (encoded) carries a snapshot whose bytes are
    those of `snapshot(state)` encoded as the trace encodes it: then they are equal, without
    decoding the recorded one (it holds every trade). False says only "compare the decoded
    snapshots" (`check_snapshot`): a value stored as an int and rebuilt as a float, say."""
    try:
        recorded = _STOPPED(data).state
    except msgspec.MsgspecError:
        return False
    if not len(recorded):
        return False
    try:
        rebuilt = _ENCODE(snapshot(state))
    except (TypeError, ValueError, OverflowError, msgspec.MsgspecError):
        return False
    return memoryview(recorded) == rebuilt


def check_snapshot(state: State, payload: Any, seq: int, path: Path) -> None:
    """Compare the state with the snapshot a RUN_STOPPED record carries."""
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


def restore(state: State, path: str | Path) -> Replica | None:
    """Replay a strategy's earlier runs into its (empty) state before a Live restart; None
    when there is no trace yet. The last run may have crashed: its events are checked one by
    one, but it has no final snapshot to compare."""
    if not (Path(path) / "zarr.json").is_file():
        return None
    replica = Replica(path)
    runs = replica.runs()
    if not runs:
        return None
    first, _ = replica.first_fresh_run(runs, len(runs) - 1)
    replica.replay(state, runs[first].start_seq, replica.view.total)
    return replica
