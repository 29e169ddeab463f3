"""Replay's fast path gives what the generic one gives: an event decoded in one call holds
`event_from_dict`'s fields and the recorded digest, applying it as decoded leaves the state the
engine's own event leaves, the in-place digest comparison agrees with comparing the full digest
(on the recorded digests and on damaged copies of them), and a payload that does not fit its
class's types still replays, or is named, the generic way."""

from __future__ import annotations

import copy
import gc
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import msgspec
import numpy as np
import pytest

from runtime import ReplayMismatch, Sim, start, strategy
from runtime.engine._engine import (
    BalanceUpdated,
    OrderFilled,
    State,
    apply,
    digest,
    event_from_dict,
    settle_fill,
)
from runtime.engine._replay import runtime_from_start
from runtime.engine._replica import (
    _DECODE,
    _ENGINE_CLASS,
    _FAST,
    _check_dict,
    _engine_event,
    digest_matches,
    settles_fills,
    snapshot,
)
from runtime.engine._runtime import typed_payload
from runtime.model._orders import Trade
from traces import STATE_KINDS, Kind, TraceWriter, iter_events, open_view, replay_from_trace
from traces._codec import encode

GOLDEN = Path(__file__).resolve().parent / "golden"
TRACES = [
    GOLDEN / generation / f"{name}.zarr"
    for generation in ("", "before_reports")
    for name in ("sma_cross", "margin_trend")
]
STATE_CODES = {int(k) for k in STATE_KINDS}


def encoded_events(path: Path) -> Iterator[tuple[int, bytes]]:
    """(kind code, encoded payload) of every engine event of the trace, in seq order."""
    view = open_view(path)
    cols = view.read(0, view.total, ["kind", "payload"])
    for i, code in enumerate(cols["kind"].tolist()):
        if code in STATE_CODES:
            yield code, cols["payload"].raw(i)


def reachable(root: object) -> list[object]:
    """Every object `root` refers to, directly or not (not through classes or modules)."""
    seen, todo, found = {id(root)}, [root], []
    while todo:
        for ref in gc.get_referents(todo.pop()):
            if id(ref) not in seen and not isinstance(ref, type | types.ModuleType):
                seen.add(id(ref))
                todo.append(ref)
                found.append(ref)
    return found


def damaged(recorded: Any) -> Iterator[Any]:
    """Copies of a recorded digest each differing from it in one place: every number nudged,
    every string changed, every key dropped, one key added at every level."""
    if isinstance(recorded, dict):
        for key in recorded:
            without = dict(recorded)
            del without[key]
            yield without
            for changed in damaged(recorded[key]):
                yield {**recorded, key: changed}
        yield {**recorded, "x": [0.0, 0.0]}
    elif isinstance(recorded, list):
        yield recorded[:-1]
        yield [*recorded, 0.0]
        for i, item in enumerate(recorded):
            for changed in damaged(item):
                yield [*recorded[:i], changed, *recorded[i + 1 :]]
    elif isinstance(recorded, float):
        yield recorded + max(abs(recorded), 1.0) * 1e-9
    elif isinstance(recorded, str):
        yield recorded + "?"


@pytest.mark.parametrize("path", TRACES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_typed_decode_and_in_place_check_agree_with_the_generic_path(path: Path) -> None:
    runs = [e.payload for e in iter_events(path) if e.kind == Kind.RUN_STARTED]
    state: State = runtime_from_start(runs[0], path).state
    as_decoded: State = runtime_from_start(runs[0], path).state  # fed the decoded events
    settle = settles_fills(runs[0])
    checked = 0
    for _, raw in encoded_events(path):
        payload = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        decoded = _DECODE(raw)
        event = _engine_event(decoded)
        generic = event_from_dict(payload)
        assert type(event) is type(generic)
        assert event == generic
        assert _check_dict(decoded.check) == payload["check"]
        result = apply(state, event)
        if settle and isinstance(result, Trade):
            settle_fill(state, event)  # type: ignore[arg-type]
        fast = _FAST.get(type(decoded))
        fed = decoded if fast is not None else event  # as replay feeds it
        fed_result = fast[0](as_decoded, fed) if fast else apply(as_decoded, event)
        if settle and isinstance(fed_result, Trade):
            settle_fill(as_decoded, fed)
        recorded = payload["check"]
        assert digest(state, event) == recorded  # the golden traces replay
        assert digest(as_decoded, event) == recorded
        assert digest_matches(state, event, recorded)  # and the fast check says so
        assert fast is None or fast[1](as_decoded, decoded, decoded.check)
        for wrong in damaged(copy.deepcopy(recorded)):
            # Never equal where the full digest differs; equal only where it is equal.
            assert digest_matches(state, event, wrong) == (digest(state, event) == wrong)
        assert not digest_matches(state, event, None)
        assert not digest_matches(state, event, [recorded])
        checked += 1
    assert snapshot(as_decoded) == snapshot(state)
    # The engine kept no decoded event: it only read their fields.
    assert not [o for o in reachable(as_decoded) if type(o) in _ENGINE_CLASS]
    assert checked > 100


async def test_payloads_that_do_not_fit_their_class_replay_the_generic_way(
    tmp_path: Path,
) -> None:
    s = strategy("sma_cross", mode=Sim(bars=1_000, seed=3), config={"trace_root": str(tmp_path)})
    await start(s)
    assert s.trace_path is not None
    events = list(iter_events(s.trace_path))
    trades = [e.seq for e in events if e.kind == Kind.TRADE]
    assert len(trades) > 4
    odd_taker, with_raw, odd_amount = trades[1], trades[2], trades[-2]

    def rewrite(target: Path, odd: dict[int, dict[str, Any]]) -> Path:
        with TraceWriter(target) as writer:
            for e in events:
                writer.record(
                    e.kind,
                    {**e.payload, **odd.get(e.seq, {})},
                    ts_ns=e.ts_ns,
                    asset=e.asset,
                    ts_exchange_ns=e.ts_exchange_ns,
                )
        return target

    # An int where the class says bool (typed decoding refuses it; the generic path takes it)
    # and a Live-style ccxt report under "raw" (skipped): the same state as the run's.
    fits = rewrite(
        tmp_path / "odd.zarr",
        {odd_taker: {"taker": 1}, with_raw: {"raw": {"info": {"a": [1, 2, {"b": None}]}}}},
    )
    assert snapshot(replay_from_trace(fits)._rt.state) == snapshot(s._rt.state)

    # A value no event can be applied with is named by its seq, as before.
    broken = rewrite(tmp_path / "broken.zarr", {odd_amount: {"amount": "0.01"}})
    with pytest.raises(ReplayMismatch, match=rf"event {odd_amount} \(TRADE\) cannot be applied"):
        replay_from_trace(broken)


async def test_the_final_snapshot_is_compared_by_value_when_its_bytes_differ(
    tmp_path: Path,
) -> None:
    s = strategy("sma_cross", mode=Sim(bars=1_000, seed=3), config={"trace_root": str(tmp_path)})
    await start(s)
    assert s.trace_path is not None
    events = list(iter_events(s.trace_path))
    stopped = events[-1]
    assert stopped.kind == Kind.RUN_STOPPED
    symbol = next(iter(stopped.payload["state"]["assets"]))
    assert stopped.payload["state"]["assets"][symbol]["leverage"] == 1.0

    def rewrite(target: Path, change: Any) -> Path:
        state = copy.deepcopy(stopped.payload["state"])
        change(state["assets"][symbol])
        with TraceWriter(target) as writer:
            for e in events:
                payload = {**e.payload, "state": state} if e is stopped else e.payload
                writer.record(
                    e.kind, payload, ts_ns=e.ts_ns, asset=e.asset, ts_exchange_ns=e.ts_exchange_ns
                )
        return target

    def as_int(asset: dict[str, Any]) -> None:
        asset["leverage"] = 1  # other bytes, the same value

    def nudged(asset: dict[str, Any]) -> None:
        asset["trades"][3][4] += 0.01  # a price that was never filled at

    assert snapshot(replay_from_trace(rewrite(tmp_path / "int.zarr", as_int))._rt.state) == (
        snapshot(s._rt.state)
    )
    with pytest.raises(ReplayMismatch, match=rf"{symbol}\.trades\[3\]\[4\]"):
        replay_from_trace(rewrite(tmp_path / "nudged.zarr", nudged))


def test_a_typed_events_encoded_payload_is_the_bytes_of_its_dict() -> None:
    """`Runtime.emit` records a typed event without building its dict: the bytes it makes are
    those the dict encodes to, and those the golden traces hold, for every such event there."""
    seen: set[str] = set()
    same_bytes = 0  # payloads compared with the golden trace's own bytes
    for path in TRACES:
        for _, data in encoded_events(path):
            payload = msgpack.unpackb(data, raw=False, strict_map_key=False)
            if "raw" in payload:
                continue  # a report's payload is recorded as a dict
            event = event_from_dict(payload)
            made = typed_payload(event, payload["check"])
            if made is None:
                continue  # a class recorded as a dict (a reason in free text)
            seen.add(payload["event"])
            fields = {"event": payload["event"], **msgspec.structs.asdict(event)}
            assert bytes(made) == encode({**fields, "check": payload["check"]})
            if list(payload) == [*fields, "check"]:  # written with every field, in order
                assert bytes(made) == bytes(data), payload
                same_bytes += 1
    assert same_bytes > 1000  # 2,278 in the golden traces of this writing
    assert {"OrderCreated", "OrderFilled", "BalanceUpdated", "PositionUpdated"} <= seen, seen
    # numpy numbers (a strategy's own amounts, say) encode as the dict's fallback makes them.
    fill = OrderFilled("BTC/USDT", "c1", "t1", np.int64(5), np.float64(0.5), 60_000.0, 0.1, "USDT")
    check = {"o": [0.5, "closed", 0.0], "b": {"USDT": [1.0, 0.0]}}
    made = typed_payload(fill, check)
    assert made is not None
    fields = {"event": "OrderFilled", **msgspec.structs.asdict(fill), "check": check}
    assert bytes(made) == encode(fields)
    assert msgpack.unpackb(bytes(made))["timestamp"] == 5


class _Kept:
    """A recorder that keeps what it is given (a runtime's records, to look at)."""

    def __init__(self) -> None:
        self.kept: list[tuple[Kind, Any]] = []

    def record(self, kind: Kind, payload: Any, **_: Any) -> int:
        self.kept.append((kind, payload))
        return len(self.kept) - 1

    def record_rows(self, rows: Any, *, durable: bool = False) -> range:
        seq0 = len(self.kept)
        self.kept.extend((kind, payload) for kind, payload, *_ in rows)
        return range(seq0, len(self.kept))

    @property
    def next_seq(self) -> int:
        return len(self.kept)

    def persist(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_an_event_the_engine_refuses_is_recorded_with_its_report() -> None:
    """A refused event is recorded as an ERROR holding the event and the exchange's report
    it came from; a typed event the trace alone reads is recorded as its encoded bytes."""
    start = next(e.payload for e in iter_events(TRACES[0]) if e.kind == Kind.RUN_STARTED)
    rt = runtime_from_start(start, TRACES[0])
    rt.recorder = kept = _Kept()
    unknown = OrderFilled("DOGE/USDT", "c1", "t1", 5, 1.0, 0.1, 0.0, "USDT")
    with pytest.raises(Exception, match="not in the universe"):
        rt.emit(unknown, raw={"id": "t1", "info": {"orderId": 7}})
    kind, payload = kept.kept[-1]
    assert kind == Kind.ERROR
    assert payload["event"]["symbol"] == "DOGE/USDT"
    assert payload["event"]["raw"] == {"id": "t1", "info": {"orderId": 7}}
    rt.emit(BalanceUpdated("USDT", 123.0, 5))
    kind, payload = kept.kept[-1]
    assert kind == Kind.BALANCE
    assert isinstance(payload, msgspec.Raw)
    assert msgpack.unpackb(bytes(payload))["total"] == 123.0
