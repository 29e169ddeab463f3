"""The per-strategy runtime context: state, exchange, trace recorder, clock and hooks.

Every state change goes through `Runtime.emit`: it records the event in the trace, then applies
it with the engine. That single path is what replay re-runs.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from traces._schema import Kind, NullRecorder, Recorder

from ._assets import AssetInstance, Universe
from ._engine import (
    BalanceUpdated,
    Event,
    LeverageChanged,
    OrderAcknowledged,
    OrderCancelled,
    OrderCreated,
    OrderFilled,
    OrderRejected,
    PositionUpdated,
    State,
    apply,
    digest,
    event_to_dict,
)
from ._modes import Mode, RunConfig
from ._orders import Order, Trade
from ._translate import order_events, trade_event

if TYPE_CHECKING:
    from ._strategy import Strategy
    from .exchanges._interface import Exchange

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
}


class Driver(Protocol):
    """What differs between modes: the clock, waiting for orders, and the run loop."""

    def now_ms(self) -> int: ...

    async def wait_order(self, order: Order, deadline_ms: int) -> bool:
        """Return True when `order` has a new fill or has ended, False at the deadline."""
        ...

    async def sync_order(self, order: Order) -> None:
        """One forced fetch of the order and its trades, applied (the `synced` rule)."""
        ...

    async def run(self, s: Strategy) -> None: ...


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
        self.exchange: Exchange | Any = None
        self.driver: Driver | Any = None
        self.recorder: Recorder = NullRecorder()
        self.running = False
        self.stopping = False
        self.run_id = ""
        self.last_refusal: Exception | None = None
        self.initial_cash: dict[str, float] = {}
        self.background_error: BaseException | None = None  # a failed background run
        self.last_durable_seq = -1  # the newest record that reached the OS before returning
        self._hooks: list[tuple[AssetInstance, Trade]] = []
        self._client_seq = 0
        # Short, stable tag: client ids stay within Binance's 36 characters for any name.
        self._tag = format(zlib.crc32(name.encode()) & 0xFFFFFF, "06x")
        self._asset_index = {sym: i for i, sym in enumerate(universe.keys())}
        self.on_fill: Callable[[AssetInstance, Trade], None] | None = None
        self.strategy: Strategy | None = None

    # Time.
    def now_ms(self) -> int:
        return int(self.driver.now_ms())

    # Trace.
    def record(
        self,
        kind: Kind,
        payload: dict[str, Any],
        *,
        asset: str | None = None,
        durable: bool = False,
        ts_exchange_ms: int | None = None,
    ) -> int:
        seq = self.recorder.record(
            kind,
            payload,
            ts_ns=self.now_ms() * 1_000_000,
            asset=asset,
            ts_exchange_ns=-1 if ts_exchange_ms is None else ts_exchange_ms * 1_000_000,
            durable=durable,
        )
        if durable:
            self.last_durable_seq = seq
        return seq

    # State changes.
    def emit(
        self, event: Event, *, raw: dict[str, Any] | None = None, durable: bool = False
    ) -> Any:
        """Apply `event`, then record it with the state it left (see `digest`). Queues
        `on_trade` for new fills. An event the engine refuses is recorded as an error."""
        symbol = getattr(event, "symbol", None)
        payload = event_to_dict(event)
        if raw is not None:
            payload["raw"] = raw
        try:
            result = apply(self.state, event)
        except Exception as exc:
            self.record(Kind.ERROR, {"error": str(exc), "event": payload}, asset=symbol)
            raise
        payload["check"] = digest(self.state, event)
        self.record(
            EVENT_KINDS[type(event)],
            payload,
            asset=symbol,
            durable=durable,
            ts_exchange_ms=getattr(event, "timestamp", None),
        )
        if isinstance(result, Trade):
            ai = self.state.assets[result.order.symbol]
            if self.on_fill is not None:
                self.on_fill(ai, result)
            self._hooks.append((ai, result))
        return result

    def on_exchange(self, kind: str, payload: dict[str, Any]) -> None:
        """Apply one exchange report (order or trade dict) to local state."""
        if kind == "order":
            ai = self.state.assets.get(payload.get("symbol", ""))
            reference = ai.price if ai is not None else None
            for event in order_events(self.state, payload, reference):
                self.emit(event, durable=True)
        elif kind == "trade":
            fill = trade_event(self.state, payload)
            if fill is None:
                self.record(
                    Kind.ERROR,
                    {"error": "trade for an unknown order", "trade": payload},
                    asset=payload.get("symbol"),
                )
                log.error("trade %s for unknown order %s", payload.get("id"), payload.get("order"))
            elif fill.trade_id not in self.state.trade_ids:
                self.emit(fill, durable=True)

    # Orders.
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
