"""The per-strategy runtime context: state, exchange, trace recorder, clock and hooks.

Every state change goes through `Runtime.emit`: it records the event in the trace, then applies
it with the engine. That single path is what replay re-runs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import msgspec
import trio

from runtime._errors import ConfigError
from runtime.engine._engine import (
    BalanceUpdated,
    Event,
    FundingPaid,
    Halted,
    LeverageChanged,
    OrderAcknowledged,
    OrderCancelled,
    OrderCreated,
    OrderFilled,
    OrderRejected,
    PositionUpdated,
    Resumed,
    State,
    apply,
    digest,
    event_to_dict,
)
from runtime.engine._results import TickHistory, mark_equity
from runtime.engine._translate import (
    balance_events,
    emulated_fill,
    find_order,
    order_events,
    position_event,
    trade_event,
)
from runtime.model._assets import AssetInstance, Balance, Universe, empty_window
from runtime.model._modes import Mode, RunConfig
from runtime.model._orders import Order, Trade
from traces._codec import encode, payload_encoder
from traces._schema import Kind, NullRecorder, Recorder, RecordPayload, Row, TypedPayload

if TYPE_CHECKING:
    from runtime.engine._results import BarHistory, Results
    from runtime.engine._strategy import Strategy
    from runtime.exchanges._interface import Exchange

log = logging.getLogger("vigil")

EVENT_KINDS: dict[type, Kind] = {
    OrderCreated: Kind.ORDER_ACK,
    OrderAcknowledged: Kind.ORDER_ACK,
    OrderFilled: Kind.TRADE,
    OrderCancelled: Kind.ORDER_UPDATE,
    OrderRejected: Kind.ORDER_REJECTED,
    BalanceUpdated: Kind.BALANCE,
    PositionUpdated: Kind.POSITION,
    LeverageChanged: Kind.LEVERAGE,
    Halted: Kind.HALTED,
    Resumed: Kind.RESUMED,
    FundingPaid: Kind.FUNDING,
}


# Events whose strings are all ids, symbols, currencies, sides or type names: recorded without
# the exchange's report, their payloads skip the writer's secret scan (see `TypedPayload`).
# The others carry free text (a cancel's, a rejection's or a halt's reason).
_TYPED_EVENTS = frozenset(
    {
        OrderCreated,
        OrderAcknowledged,
        OrderFilled,
        BalanceUpdated,
        PositionUpdated,
        LeverageChanged,
        FundingPaid,
    }
)


# What `durable_together` gives inside a held batch (a backtest's every order), where it has
# nothing to do: one shared null context, not a generator-based one made each time.
_NO_BLOCK = contextlib.nullcontext()

_CHECK_KEY = encode("check")


def _typed_head(cls: type) -> bytes:
    """The msgpack a typed event's payload starts with: the header of a map of its fields plus
    "event" and "check" (a fixmap: 15 entries at most, checked), then its "event" entry.
    Encoding the event itself gives a fixmap of its fields: all that follows its header byte
    comes next, then "check" (`Runtime.emit`)."""
    n = len(msgspec.structs.fields(cls)) + 2
    if n > 15:
        raise TypeError(f"{cls.__name__} has {n - 2} fields; a typed payload takes 13 at most")
    return bytes((0x80 | n,)) + encode("event") + encode(cls.__name__)


_TYPED_HEADS: dict[type, bytes] = {cls: _typed_head(cls) for cls in _TYPED_EVENTS}


def _encoded_payload(
    head: bytes, event: Event, check: dict[str, Any], pack: Callable[[Any], bytes]
) -> msgspec.Raw:
    """The msgpack of ``{"event": name, **fields, "check": check}`` for a typed event whose
    `_typed_head` is `head`, built without that dict (1.11 -> 0.83 µs with its encoding, measured).
    `pack` is a payload encoder's (its fallback turns a numpy number into a Python one)."""
    fields = memoryview(pack(event))[1:]  # its fields, less their map header
    return msgspec.Raw(b"".join((head, fields, _CHECK_KEY, pack(check))))


def typed_payload(event: Event, check: dict[str, Any]) -> msgspec.Raw | None:
    """What `Runtime.emit` records for `event` with `check` as its digest when nothing but the
    trace reads it, or None for an event of another class (recorded as a dict)."""
    head = _TYPED_HEADS.get(type(event))
    return None if head is None else _encoded_payload(head, event, check, encode)


# Client ids the exchange gives the orders that liquidate a position (Binance: "autoclose-",
# and "adl_autoclose" for auto-deleveraging; the simulated exchange uses the same).
LIQUIDATION_IDS = ("autoclose-", "adl_autoclose")


class Driver(Protocol):
    """The clock and run loop of a mode: all that differs between modes besides the exchange
    and how `call` sends to it (`SendPolicy`)."""

    def now_ms(self) -> int: ...

    async def wait_order(self, order: Order, deadline_ms: int) -> bool:
        """Return True when `order` has a new fill or has ended, False at the deadline."""
        ...

    async def run(self, s: Strategy, task_status: Any = ...) -> None: ...

    def request_stop(self) -> None:
        """End the run loop after the current tick."""
        ...


class SendPolicy(Protocol):
    """How `call` sends to the mode's exchange: a simulated exchange answers at once and never
    loses a send; a real one needs its watchers healthy, a send floor, the account's reports
    and the resolution of lost sends (DESIGN §3)."""

    def unavailable(self) -> str | None:
        """Why nothing can be sent at all (a Live strategy not running), or None."""
        ...

    async def before_send(self, ai: AssetInstance) -> None: ...

    async def refusal(self, ai: AssetInstance, deadline_ms: int) -> Exception | None:
        """Why an order on `ai` must not be sent now, or None: the account watchers of the
        asset are not healthy and did not recover by the deadline."""
        ...

    def sent(self, client_id: str) -> None: ...

    def expect_news(self, ai: AssetInstance, expected: bool = True) -> None: ...

    async def send(self, fn: Callable[[], Awaitable[Any]], deadline_ms: int) -> Any:
        """Send within the deadline; NetworkError when the outcome is unknown."""
        ...

    async def sync_order(self, order: Order) -> None:
        """One forced fetch of the order and its trades, applied (the `synced` rule)."""
        ...

    async def wait_account(self, trade: Trade, deadline_ms: int) -> None:
        """Until the balance (spot) or position (margin) reflects `trade`, or the deadline."""
        ...

    def spawn(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run `fn` in the background (resolving a lost send)."""
        ...

    async def resolve_unknown(self, ai: AssetInstance, client_id: str) -> None: ...


class Guard(Protocol):
    """The risk layer as the engine and the strategy see it (`runtime.risk.RiskGuard`)."""

    def budget_left(self) -> float: ...

    def alert(self, kind: str, message: str, data: Mapping[str, Any] | None = None) -> Any: ...


class Runtime:
    """Wires a strategy instance to its mode. Users never touch this directly."""

    def __init__(
        self,
        *,
        name: str,
        mode: Mode,
        config: RunConfig,
        exchange_id: str,
        margin: str | None,
        universe: Universe,
        state: State,
        cash_currency: str,
    ) -> None:
        self.name = name
        self.mode = mode
        self.config = config
        self.exchange_id = exchange_id
        self.margin = margin
        self.universe = universe
        self.state = state
        self.cash_currency = cash_currency
        self.exchange: Exchange = cast("Exchange", None)  # set by the wiring, before any use
        self.driver: Driver = cast("Driver", None)  # set by the wiring, before any use
        self.sends: SendPolicy | None = None  # None: no exchange (a replayed strategy)
        self.guard: Guard | None = None  # the risk layer; None for a replayed strategy
        self.run_scope: trio.CancelScope | None = None  # the running `start`, for `stop`
        self.reconcile_fixes = 0  # order and fill corrections made by reconciliation
        self.calls = 0  # `call`s so far (a simulated exchange's calls yield every so often)
        self._recorder: Recorder = NullRecorder()
        self._recording = False  # whether events are kept: an untraced run skips their payloads
        self.running = False
        self.stopping = False
        self.run_id = ""
        self.last_refusal: Exception | None = None
        self.initial_cash: dict[str, float] = {}
        self.background_error: BaseException | None = None  # a failed background run
        # Currencies whose exchange balance reports we apply (spot: the universe's; margin:
        # the collateral).
        self.balance_scope: set[str] = set()
        self.emulate_trades = False  # the exchange has no trade endpoints: derive fills
        self.orphan_trades: dict[str, list[dict[str, Any]]] = {}  # order id -> early trades
        self._order_events: dict[str, trio.Event] = {}
        self._account_event: trio.Event | None = None  # made when first waited on
        self.last_durable_seq = -1  # the newest record that reached the OS before returning
        self.reserved: dict[str, float] = {}  # currency -> held by orders being sent
        # Inside `durable_together`: the newest record that asked to be durable (-1: none yet).
        self._durable_batch: int | None = None
        self._held: list[Row] | None = None  # records kept for one write (`hold_records`)
        self._held_seq0 = 0  # the seq of the first held record
        self._held_durable = False  # whether a held record asked to be durable
        self._held_clock: Callable[[], int] = self.now_ms  # the time of held records (ms)
        self._pack = payload_encoder().encode  # its own: a runtime runs in one thread at a time
        self._hooks: list[tuple[AssetInstance, Trade]] = []
        # Called for each new fill before `on_trade`: the brackets' one-cancels-other
        # (runtime.modes._brackets), once the strategy has a bracket.
        self.after_fill: Callable[[Trade], Awaitable[None]] | None = None
        self.brackets: Any = None  # runtime.modes._brackets.Brackets, made on first use
        self._client_seq = 0
        # Short, stable tag: client ids stay within Binance's 36 characters for any name.
        self._tag = format(zlib.crc32(name.encode()) & 0xFFFFFF, "06x")
        self._asset_index = {sym: i for i, sym in enumerate(universe.keys())}
        # Called after each balance or position report is applied (Sim marks its equity).
        self.on_account: Callable[[], None] | None = None
        self.strategy: Strategy | None = None
        self.source = name
        self.timeframe = "1m"
        self.strategy_warmup = 0
        self.stopped = trio.Event()
        self.run_task: Any = None
        self.bar_history: BarHistory | None = None  # Sim: what results are computed from
        # Live and Paper: the account and mark prices at each tick (`mark_tick`).
        self.tick_history: TickHistory | None = None
        # A replayed strategy: its results, computed from its trace when asked.
        self.results_source: Callable[[], Results] | None = None
        # Called with (kind, payload, asset) for every record: the CLI's console.
        self.observers: list[Callable[[Kind, Mapping[str, Any], str | None], None]] = []

    def record_run_start(self, *, fresh: bool) -> None:
        """Bracket a new run: RUN_STARTED with what replay needs to rebuild the strategy."""
        self.run_id = uuid.uuid4().hex[:16]
        self.record(
            Kind.RUN_STARTED,
            {
                "run_id": self.run_id,
                "strategy": self.name,
                "source": self.source,
                "mode": type(self.mode).__name__.lower(),
                "exchange": self.exchange_id,
                "margin": self.margin,
                "markets": list(self.universe.keys()),
                "fresh": fresh,
                "cash_currency": self.cash_currency,
                "timeframe": self.timeframe,
                "market_defs": {ai.symbol: ai.market for ai in self.universe},
                # Balances and positions come from the exchange's reports (the replica settles
                # fills itself for runs without this: traces from before the simulated
                # exchange reported its ledger).
                "account_from_reports": True,
            },
            durable=True,
        )

    def observe(self, observer: Callable[[Kind, Mapping[str, Any], str | None], None]) -> None:
        """Call `observer(kind, payload, asset)` for every event recorded from now on, traced
        or not (an untraced run then builds the payloads it would otherwise skip)."""
        self.observers.append(observer)
        self._recording = True

    def mark_tick(self, ts_ms: int) -> None:
        """Live and Paper, at a tick: keep and record each market's mark price with the
        account, so results and reports can value it (DESIGN §2, results in every mode).
        The first call, before the first tick, keeps the starting point without recording."""
        first = self.tick_history is None
        if self.tick_history is None:
            self.tick_history = TickHistory()
        mark = self.tick_history.take(self, ts_ms * 1_000_000)
        if first:
            return
        equity = mark_equity(self, mark)
        self.record(
            Kind.MARK,
            {
                "time": ts_ms,
                "prices": mark.prices,
                "equity": equity if math.isfinite(equity) else None,
            },
        )

    # Time.
    def now_ms(self) -> int:
        return int(self.driver.now_ms())

    # Trace.
    def record(
        self,
        kind: Kind,
        payload: RecordPayload,
        *,
        asset: str | None = None,
        durable: bool = False,
        ts_exchange_ms: int | None = None,
    ) -> int:
        held = self._held
        if held is not None:
            if not held:
                self._held_seq0 = self._recorder.next_seq
            seq = self._held_seq0 + len(held)
            held.append(
                (
                    kind,
                    payload,
                    self._held_clock() * 1_000_000,
                    asset,
                    -1 if ts_exchange_ms is None else ts_exchange_ms * 1_000_000,
                )
            )
            if durable:
                self._held_durable = True
        else:
            batched = durable and self._durable_batch is not None
            seq = self._recorder.record(
                kind,
                payload,
                ts_ns=self.now_ms() * 1_000_000,
                asset=asset,
                ts_exchange_ns=-1 if ts_exchange_ms is None else ts_exchange_ms * 1_000_000,
                durable=durable and not batched,
            )
            if batched:
                self._durable_batch = seq
            elif durable:
                self.last_durable_seq = seq
        for observer in self.observers:  # a Raw payload is made only when there is none
            try:
                observer(kind, cast(Mapping[str, Any], payload), asset)
            except Exception as exc:  # a display must never stop a run
                log.warning("observer %r failed on %s: %r", observer, kind.name, exc)
        return seq

    def hold_records(self, clock: Callable[[], int] | None = None) -> list[Row]:
        """From now on keep records in the returned list until `write_held`, which writes them
        as one batch (durable if any asked to be). A backtest writes each bar's events this way:
        one frame and one write per bar instead of per event. `stop_holding` ends it. `clock`
        gives held records their time (ms), when it is `now_ms` read more directly."""
        self._held_clock = clock or self.now_ms
        if self._held is None:
            self._held = []
        return self._held

    def write_held(self) -> None:
        """Write the held records to the trace, in order, as one batch."""
        held = self._held
        if not held:
            return
        durable, self._held_durable = self._held_durable, False
        try:
            seqs = self._recorder.record_rows(held, durable=durable)
        finally:
            held.clear()
        if durable:
            self.last_durable_seq = seqs[-1]

    def stop_holding(self) -> None:
        """Write what is held and record each event at once again."""
        try:
            self.write_held()
        finally:
            self._held = None

    def durable_together(self) -> contextlib.AbstractContextManager[None]:
        """Records that ask to be durable inside this block become durable together when it
        ends, with one write to the OS: for a simulated exchange, whose answer and everything
        it reports with it happen in one step that nothing outside can see half done."""
        if self._durable_batch is not None or self._held is not None:
            return _NO_BLOCK  # the outer block (or the held batch) writes
        return self._durable_block()

    @contextlib.contextmanager
    def _durable_block(self) -> Iterator[None]:
        self._durable_batch = -1
        try:
            yield
        finally:
            last, self._durable_batch = self._durable_batch, None
            if last >= 0:
                self._recorder.persist()
                self.last_durable_seq = last

    @property
    def recording(self) -> bool:
        """Whether records are kept (a trace, or an observer such as the console)."""
        return self._recording

    @property
    def holding(self) -> bool:
        """Whether records are held for one batched write (`hold_records`)."""
        return self._held is not None

    @property
    def recorder(self) -> Recorder:
        """Where events are recorded: the trace, or a `NullRecorder` for an untraced run."""
        return self._recorder

    @recorder.setter
    def recorder(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._recording = not isinstance(recorder, NullRecorder) or bool(self.observers)

    # State changes.
    def emit(
        self,
        event: Event,
        *,
        raw: dict[str, Any] | None = None,
        durable: bool = False,
        kind: Kind | None = None,
    ) -> Any:
        """Apply `event`, then record it with the state it left (see `digest`). Queues
        `on_trade` for new fills. An event the engine refuses is recorded as an error."""
        if not self._recording:  # nothing keeps the payload or its digest: only apply
            result = apply(self.state, event)
            if isinstance(result, Trade):
                self._hooks.append((self.state.assets[result.order.symbol], result))
            return result
        symbol = getattr(event, "symbol", None)
        head = _TYPED_HEADS.get(type(event)) if raw is None and not self.observers else None
        try:
            result = apply(self.state, event)
        except Exception as exc:
            refused = event_to_dict(event)
            if raw is not None:
                refused["raw"] = raw  # the exchange's report it came from
            self.record(Kind.ERROR, {"error": str(exc), "event": refused}, asset=symbol)
            raise
        payload: RecordPayload
        if head is not None:
            # The bytes of the dict below, built without it: nothing but the writer reads it.
            payload = _encoded_payload(head, event, digest(self.state, event), self._pack)
        else:
            if raw is None and type(event) in _TYPED_EVENTS:
                payload = TypedPayload(event=type(event).__name__)
                payload.update(msgspec.structs.asdict(event))
            else:
                payload = event_to_dict(event)
                if raw is not None:
                    payload["raw"] = raw
            payload["check"] = digest(self.state, event)
        self.record(
            kind or EVENT_KINDS[type(event)],
            payload,
            asset=symbol,
            durable=durable,
            ts_exchange_ms=getattr(event, "timestamp", None),
        )
        if isinstance(result, Trade):
            self._hooks.append((self.state.assets[result.order.symbol], result))
        return result

    def on_exchange(self, kind: str, payload: Any, *, tag: Kind | None = None) -> None:
        """Apply one exchange report to local state: "order", "trade", "balance", "position"
        or "positions" (a REST snapshot, where a missing side means flat). `tag` records the
        events under another kind (RECONCILE for start-up corrections)."""
        if kind == "order":
            self._on_order(payload, tag)
        elif kind == "trade":
            self._on_trade(payload, tag)
        elif kind == "balance":
            stamp = int(payload.get("timestamp") or self.now_ms())
            for event in balance_events(payload, stamp):
                if event.currency in self.balance_scope:
                    self._emit_report(event, tag)
        elif kind == "position":
            self._on_position(payload, tag)
        elif kind == "funding":
            self._emit_report(FundingPaid(**payload), tag)
        elif kind == "positions":
            reported = {(p["symbol"], p.get("side")) for p in payload["positions"]}
            stamp = self.now_ms()
            for p in payload["positions"]:
                if p["symbol"] in self.state.assets:
                    self._on_position(p, tag, default_ts=stamp)
            for symbol in payload["symbols"]:
                ai = self.state.assets.get(symbol)
                for side, pos in (
                    ("long", ai.long if ai else None),
                    ("short", ai.short if ai else None),
                ):
                    if pos is not None and (symbol, side) not in reported:
                        self._emit_report(
                            PositionUpdated(symbol, side, 0.0, 0.0, pos.leverage, 0.0, stamp), tag
                        )

    def on_ledger(self, client_id: str | None, event: Event | None) -> None:
        """A simulated exchange's order or fill report, as the event its ledger applied: the
        same events `on_exchange` makes of the ccxt dicts, built without them. An order's
        reference price is ours (as `order_events` takes it); a cancel carries no reason."""
        if type(event) is OrderCreated:
            ai = self.state.assets.get(event.symbol)
            if ai is None:
                return
            reference = ai.price
            if not math.isfinite(reference):
                reference = event.price  # type: ignore[assignment]  # what order_events falls to
            event = OrderCreated(
                event.symbol,
                event.client_id,
                event.side,
                event.order_type,
                event.amount,
                event.price,
                event.timestamp,
                event.id,
                event.reduce_only,
                reference,
                event.trigger_price,
            )
            if event.client_id.startswith(LIQUIDATION_IDS):
                self.record(
                    Kind.LIQUIDATION,
                    {"client_id": event.client_id, "side": event.side, "amount": event.amount},
                    asset=event.symbol,
                    durable=True,
                )
            self.emit(event, durable=True)
        elif type(event) is OrderFilled:
            if event.symbol not in self.state.assets or event.trade_id in self.state.trade_ids:
                return
            self.emit(event, durable=True)
        elif type(event) is OrderCancelled:
            if event.symbol not in self.state.assets:
                return
            self.emit(
                OrderCancelled(event.symbol, event.client_id, event.timestamp, event.status),
                durable=True,
            )
        if client_id is not None:
            self.notify(client_id)

    def on_ledger_balances(self, totals: Mapping[str, float], timestamp: int) -> None:
        """A simulated exchange's balance report: totals per currency (`balance_events`),
        told to `on_account` once for them all."""
        scope = self.balance_scope
        applied = False
        for currency in sorted(totals):
            if currency in scope:
                self.emit(BalanceUpdated(currency, totals[currency], timestamp))
                applied = True
        if applied:
            self._account_changed()
            if self.on_account is not None:
                self.on_account()

    def _emit_report(self, event: Event, tag: Kind | None) -> Any:
        # Order events are durable: a restart must know every order and fill it acknowledged.
        # Account reports reach the OS with the next durable record: a restart reads the
        # account from the exchange anyway (reconcile), so a report lost in a crash costs
        # nothing, while a write per report would cost one system call each.
        account = isinstance(event, BalanceUpdated | PositionUpdated)
        if tag is Kind.RECONCILE and not account:
            self.reconcile_fixes += 1
        if tag == Kind.RECONCILE and isinstance(event, PositionUpdated):
            # The start-up sync reads the account as it is now, whatever its stamp says: a
            # venue's REST and stream clocks (or ours) may differ, and a position that a
            # protective order closed while the strategy was down must not lose to a report
            # the previous run applied.
            newest = self.state.position_as_of.get(event.symbol, 0)
            if event.timestamp < newest:
                event = msgspec.structs.replace(event, timestamp=newest)
        result = self.emit(event, durable=not account, kind=tag)
        if account:
            self._account_changed()
            if self.on_account is not None:
                self.on_account()
        return result

    @property
    def account_changed(self) -> trio.Event:
        """Set by the next account change (a report, or an order's or fill's news)."""
        if self._account_event is None:
            self._account_event = trio.Event()
        return self._account_event

    def _account_changed(self) -> None:
        # No event until someone waits: a backtest reports thousands a second to no one.
        event, self._account_event = self._account_event, None
        if event is not None:
            event.set()

    def _on_order(self, payload: dict[str, Any], tag: Kind | None) -> None:
        ai = self.state.assets.get(payload.get("symbol", ""))
        if ai is None:
            return  # another market on the same account: not ours
        for event in order_events(self.state, payload, ai.price):
            if isinstance(event, OrderCreated) and event.client_id.startswith(LIQUIDATION_IDS):
                # The exchange closing a position itself: said before its order is applied.
                self.record(
                    Kind.LIQUIDATION,
                    {"client_id": event.client_id, "side": event.side, "amount": event.amount},
                    asset=event.symbol,
                    durable=True,
                )
            self._emit_report(event, tag)
        order = find_order(self.state, payload)
        if order is None:
            return
        if self.emulate_trades:
            fill = emulated_fill(self.state, order, payload)
            if fill is not None:
                self._emit_report(fill, Kind.TRADE_EMULATED if tag is None else tag)
        waiting = self.orphan_trades.pop(order.id or "", None)
        for trade in waiting or ():
            self._on_trade(trade, tag)
        self.notify(order.client_id)

    def _on_trade(self, payload: dict[str, Any], tag: Kind | None) -> None:
        if payload.get("symbol") not in self.state.assets:
            return
        fill = trade_event(self.state, payload)
        if fill is None:
            # Its order is not known yet (the trade outran the order's ack): keep it until it is.
            self.orphan_trades.setdefault(str(payload.get("order")), []).append(payload)
            self.record(
                Kind.ERROR,
                {"error": "trade before its order; held", "trade": payload},
                asset=payload.get("symbol"),
            )
            return
        if fill.trade_id not in self.state.trade_ids:
            self._emit_report(fill, tag)
            self.notify(fill.client_id)

    def _on_position(self, p: dict[str, Any], tag: Kind | None, default_ts: int = 0) -> None:
        ai = self.state.assets.get(p.get("symbol", ""))
        if ai is None:
            return
        event = position_event(p, ai.leverage)
        if not event.timestamp:
            event = msgspec.structs.replace(event, timestamp=default_ts or self.now_ms())
        if p.get("side") not in ("long", "short"):
            # A one-way report that names no side (Binance's "both", Bybit's ""). Flat: every
            # side that was open is flat now (a protective order's fill closes a position with
            # no call waiting to see it). Not flat: it cannot be placed, so it is not applied.
            if event.contracts != 0 and event.side not in ("long", "short"):
                return
            if event.contracts == 0:
                held = [pos for pos in (ai.long, ai.short) if pos is not None]
                for pos in held:
                    self._emit_report(msgspec.structs.replace(event, side=pos.side), tag)
                if held:
                    return
                event = msgspec.structs.replace(event, side="long")
        other = ai.short if event.side == "long" else ai.long
        if event.contracts > 0 and other is not None:  # one-way: the other side is flat now
            self._emit_report(
                PositionUpdated(
                    event.symbol, other.side, 0.0, 0.0, other.leverage, 0.0, event.timestamp
                ),
                tag,
            )
        self._emit_report(event, tag)

    # Market data: what the strategy sees of prices (not accounting, so not events).
    def on_price(self, symbol: str, price: float) -> None:
        """The latest traded price of a market: what local checks value orders at between bars."""
        ai = self.state.assets.get(symbol)
        if ai is not None:
            ai.last_price = float(price)

    def open_bar_windows(self) -> None:
        """Give every asset an empty window that grows by `on_bars` (Live and Paper)."""
        for ai in self.universe:
            ai.ohlcv = empty_window()

    def on_bars(self, symbol: str, rows: Sequence[Sequence[float]]) -> None:
        """Append closed bars ``[time_ms, open, high, low, close, volume]`` (oldest first) to
        the asset's window; its last close becomes the latest price."""
        ai = self.state.assets.get(symbol)
        if ai is None or not rows:
            return
        for t, o, h, low, c, v in rows:
            ai.ohlcv.append(
                int(t) * 1_000_000, (float(o), float(h), float(low), float(c), float(v or 0.0))
            )
        ai.last_price = float(rows[-1][4])

    # Waiting for orders (Live): `call` and `Pending.wait` wait on these.
    def order_event(self, client_id: str) -> trio.Event:
        event = self._order_events.get(client_id)
        if event is None:
            event = self._order_events[client_id] = trio.Event()
        return event

    def notify(self, client_id: str) -> None:
        event = self._order_events.pop(client_id, None)
        if event is not None:
            event.set()
        self._account_changed()

    # Orders.
    def continue_client_ids(self, after: int) -> None:
        """Client ids continue after sequence `after` (one seen in the trace or on the
        exchange): a reused id would be refused as a duplicate."""
        self._client_seq = max(self._client_seq, after)

    @property
    def client_id_prefix(self) -> str:
        """How every client order id this strategy makes begins."""
        return f"vg{self._tag}-"

    def own_client_id(self, client_id: str | None) -> bool:
        """Whether `client_id` is one this strategy made."""
        return bool(client_id) and str(client_id).startswith(self.client_id_prefix)

    def next_client_id(self, ai: AssetInstance) -> str:
        self._client_seq += 1
        return f"vg{self._tag}-{self._asset_index[ai.symbol]}-{self._client_seq}"

    # Hooks.
    @property
    def has_hooks(self) -> bool:
        return bool(self._hooks)

    async def run_hooks(self) -> None:
        """Call `on_trade` for queued fills. A hook's exception is logged, recorded and raised."""
        s = self.strategy
        while self._hooks:
            ai, trade = self._hooks.pop(0)
            if self.after_fill is not None:
                await self.after_fill(trade)
            if s is not None:
                await self.call_hook("on_trade", s.on_trade, ai, trade)

    async def call_hook(self, name: str, hook: Any, *args: Any) -> None:
        try:
            await hook(*args)
        except Exception as exc:
            self.hook_failed(name, exc)
            raise

    def hook_failed(self, name: str, exc: Exception) -> None:
        """Log (with the traceback) and record a user hook's exception; the caller re-raises."""
        log.error("strategy %s: %s raised %r", self.name, name, exc, exc_info=exc)
        self.record(Kind.HOOK_ERROR, {"hook": name, "error": repr(exc)})


def build_runtime(
    *,
    name: str,
    mode: Mode,
    config: RunConfig,
    exchange_id: str,
    margin: str | None,
    markets: Mapping[str, Mapping[str, Any]],
    cash_currency: str | None = None,
    source: str | None = None,
    timeframe: str = "1m",
    warmup: int = 0,
) -> Runtime:
    """A runtime with an empty state over `markets` (symbol -> ccxt market), in their order.
    The one place a `Runtime` is made: modes add their exchange and clock, replay its clock.
    `cash_currency` defaults to the first market's settle (margin) or quote currency."""
    balances: dict[str, Balance] = {}
    assets = {sym: AssetInstance(dict(m), balances) for sym, m in markets.items()}
    if not assets:
        raise ConfigError(f"strategy {name!r} has no markets; set markets = ['BTC/USDT']")
    first = next(iter(assets.values()))
    rt = Runtime(
        name=name,
        mode=mode,
        config=config,
        exchange_id=exchange_id,
        margin=margin,
        universe=Universe(assets),
        state=State(assets, balances, margin),
        cash_currency=cash_currency or first.settle,
    )
    rt.source = source or name
    rt.timeframe = timeframe
    rt.strategy_warmup = warmup
    return rt
