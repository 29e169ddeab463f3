"""Live mode: real orders through ccxt, local state kept in step by watchers.

`start(s)` (usable as ``await nursery.start(start, s)``):

1. opens the exchange (credentials and URL from ``VIGIL_<EXCHANGE>_*``), refreshes the markets'
   rules, and, when the strategy's trace has earlier runs, replays them into the state;
2. syncs with the exchange: balances, positions and open orders (adopted, with their fills),
   and the most recent closed orders with their trades; every difference is applied as an
   event recorded under RECONCILE;
3. starts the account watchers (balance; positions for margin), and per-asset order and trade
   watchers for assets with open orders (others start on their first order and stop after
   ``idle_stop_s`` with none open);
4. reports started, calls ``on_start``, then ticks at the strategy's timeframe, after the bar
   closes, with the closed bars fetched first.

`stop(s)` ends the tick loop; watchers stop through their cancel scopes. On every way out
(stop, an error, Ctrl-C, SIGTERM) ``Live(on_stop=...)`` applies: "cancel" the strategy's open
orders, "flatten" them and its positions, or "leave" them for the next run to adopt. Every
``Live(reconcile_every_s=...)`` a full REST read corrects whatever the watchers missed.

`LiveDriver` is the clock, the watchers and the run; `LiveSends` is how `call` sends through
them (stale watchers refuse, lost sends are resolved by client id).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from runtime._errors import ExchangeError, NetworkError, OrderCheckFailed, OrderNotFound
from runtime.engine._engine import LeverageChanged
from runtime.engine._engine import OrderRejected as OrderRejectedEvent
from runtime.engine._replica import restore
from runtime.exchanges._interface import StreamingExchange
from runtime.model._assets import AssetInstance
from runtime.model._modes import Live
from runtime.model._orders import Order, client_seq_of
from runtime.modes._clock import WallClock
from runtime.modes._dispatch import resume_brackets
from runtime.modes._operations import ON_STOP_LIMIT_S, on_stop_action, run_operations
from runtime.modes._venues import adopt_exchange_markets
from traces._schema import Kind
from watchers._account import BalanceWatcher, OrdersWatcher, PositionsWatcher, TradesWatcher
from watchers._base import HEALTHY, Watcher, WatcherConfig, retrying
from watchers._market import TickerWatcher

if TYPE_CHECKING:
    from runtime.engine._runtime import Runtime
    from runtime.engine._strategy import Strategy

log = logging.getLogger("vigil")

CLOSED_ORDERS_ON_START = 50  # most recent closed orders read per market at start
UNKNOWN_RESOLVE_S = 15.0  # how long a lost send is looked up before it counts as not placed
ACCOUNT_GRACE_S = 1.0  # see LiveSends.wait_account
SEND_FLOOR_S = 10.0  # the least time an order request gets before it counts as lost


def _holding(ai: AssetInstance) -> float:
    """The base held (spot) or the signed position (margin), as the exchange last reported."""
    return ai.cash


class LiveDriver:
    """Live's wall clock and tick loop, its watchers and the sync on start (see the module
    docstring). How `call` sends through it is `LiveSends`."""

    def __init__(
        self,
        rt: Runtime,
        mode: Live,
        *,
        open_exchange: Callable[[], Any],
        watcher_config: WatcherConfig,
    ) -> None:
        self.rt = rt
        self.mode = mode
        self.open_exchange = open_exchange
        self.watcher_config = watcher_config
        self.clock = WallClock(rt, lambda: rt.exchange)  # Live's bars come from the exchange
        self.on_watcher = self.clock.record_watcher_event
        self.account_watchers: list[Watcher] = []
        self.asset_watchers: dict[str, tuple[OrdersWatcher, TradesWatcher, trio.CancelScope]] = {}
        self.last_active: dict[str, float] = {}
        self._nursery: trio.Nursery | None = None
        self._send: trio.MemorySendChannel[Any] | None = None
        self.streams: StreamingExchange | None = None  # the open exchange, while running

    # Clock.
    def now_ms(self) -> int:
        return self.clock.now_ms()

    async def wait_order(self, order: Order, deadline_ms: int) -> bool:
        return await self.clock.wait_order(order, deadline_ms)

    # Watchers.
    async def _apply_reports(self, receive: trio.MemoryReceiveChannel[Any]) -> None:
        rt = self.rt
        async for report in receive:
            # The reports already queued are applied in this wake-up, their durable records
            # written to the OS together; a fill's hooks still run before the next report.
            while True:
                with rt.durable_together():
                    more = self._apply_queued(report, receive)
                if rt.has_hooks:
                    await rt.run_hooks()
                if not more:
                    break
                try:
                    report = receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break

    def _apply_queued(self, report: Any, receive: trio.MemoryReceiveChannel[Any]) -> bool:
        """Apply `report`, then the reports queued behind it until one queues hooks (True:
        more may be queued) or none is left (False)."""
        rt = self.rt
        while True:
            kind, payload = report
            if kind == "ticker":  # market data: the price local checks use between bars
                symbol, ticker = payload
                last = ticker.get("last") or ticker.get("close")
                if last is not None:
                    rt.on_price(symbol, float(last))
            else:
                rt.on_exchange(kind, payload)
                if rt.has_hooks:
                    return True
            try:
                report = receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return False

    async def _run_asset_watchers(
        self, ai: AssetInstance, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        assert self._send is not None

        def local_open() -> list[tuple[str | None, str]]:
            return [(o.id, o.client_id) for o in ai.open_orders.values()]

        ex = self.streams
        assert ex is not None
        orders = OrdersWatcher(ex, self.watcher_config, ai.symbol, local_open, self.on_watcher)
        trades = TradesWatcher(ex, self.watcher_config, ai.symbol, self.on_watcher)
        with trio.CancelScope() as scope:
            self.asset_watchers[ai.symbol] = (orders, trades, scope)
            try:
                async with trio.open_nursery() as n:
                    await n.start(orders.run, self._send.clone())
                    await n.start(trades.run, self._send.clone())
                    task_status.started()
                    await self._idle_stop(ai, scope)
            finally:
                self.asset_watchers.pop(ai.symbol, None)

    async def _idle_stop(self, ai: AssetInstance, scope: trio.CancelScope) -> None:
        idle = self.watcher_config.idle_stop_s
        while True:
            await trio.sleep(min(idle, 30.0))
            quiet = trio.current_time() - self.last_active.get(ai.symbol, -math.inf)
            if not ai.open_orders and quiet >= idle:
                scope.cancel()
                return

    # Start-up.
    async def _refresh_markets(self) -> None:
        ex = self.rt.exchange
        markets = await ex.load_markets()  # loaded at open: no request
        settings = getattr(ex, "settings", None)  # a CcxtExchange's; scripted ones have none
        if settings is None:
            for ai in self.rt.universe:
                if (market := markets.get(ai.symbol)) is not None:
                    ai.set_market(market)
            return
        adopt_exchange_markets(
            self.rt, markets, venue=settings.exchange_id, sandbox=settings.sandbox
        )

    async def _reconcile_account(self) -> None:
        """Balances, and positions for margin, from REST, applied under RECONCILE."""
        rt = self.rt
        ex = rt.exchange
        rt.on_exchange("balance", await retrying(ex.fetch_balance), tag=Kind.RECONCILE)
        if rt.margin:
            symbols = list(rt.universe.keys())
            positions = await retrying(lambda: ex.fetch_positions(symbols))
            rt.on_exchange(
                "positions", {"symbols": symbols, "positions": positions}, tag=Kind.RECONCILE
            )

    async def reconcile(self) -> None:
        """Sync on start: every difference with the exchange becomes a RECONCILE event."""
        rt = self.rt
        ex = rt.exchange
        tag = Kind.RECONCILE
        await self._reconcile_account()
        for ai in rt.universe:

            async def open_orders(sym: str = ai.symbol) -> Any:
                return await ex.fetch_open_orders(sym)

            async def closed_orders(sym: str = ai.symbol) -> Any:
                return await ex.fetch_closed_orders(sym, limit=CLOSED_ORDERS_ON_START)

            opened = await retrying(open_orders)
            closed = await retrying(closed_orders)
            ours = [
                o
                for o in closed
                if rt.own_client_id(o.get("clientOrderId"))
                or o.get("clientOrderId") in rt.state.orders
            ]
            reports = opened + ours
            for report in reports:
                rt.on_exchange("order", report, tag=tag)
                # Client ids continue past ours on the exchange, trace or not: a reused id is
                # refused as a duplicate.
                seq_of = client_seq_of(str(report.get("clientOrderId") or ""))
                if rt.own_client_id(report.get("clientOrderId")) and seq_of is not None:
                    rt.continue_client_ids(seq_of)
            # Locally open orders the exchange no longer lists ended while we were away.
            listed = {o.get("clientOrderId") for o in opened}
            for order in list(ai.open_orders.values()):
                if order.client_id not in listed:

                    async def lookup(o: Order = order) -> Any:
                        return await ex.fetch_order(o.id, o.symbol, {"clientOrderId": o.client_id})

                    try:
                        report = await retrying(lookup)
                    except OrderNotFound:
                        # A lost send the exchange never received (the run ended before it
                        # was resolved): it was never placed.
                        rt.emit(
                            OrderRejectedEvent(
                                order.symbol,
                                order.client_id,
                                self.clock.now_ms(),
                                "never placed: not on the exchange at restart",
                            ),
                            durable=True,
                            kind=tag,
                        )
                        continue
                    reports.append(report)
                    rt.on_exchange("order", report, tag=tag)
            if any(r.get("filled") for r in reports):
                since = min(int(r.get("timestamp") or 0) for r in reports) - 1_000

                async def trades(sym: str = ai.symbol, t: int = since) -> Any:
                    return await ex.fetch_my_trades(sym, since=t)

                for trade in await retrying(trades):
                    rt.on_exchange("trade", trade, tag=tag)
            for report in reports:  # closures that wait on fills apply now that fills are in
                rt.on_exchange("order", report, tag=tag)

    async def _set_leverage(self) -> None:
        rt = self.rt
        if not rt.margin or rt.strategy is None:
            return
        wanted = float(rt.config.leverage or type(rt.strategy).leverage)
        for ai in rt.universe:
            pos = ai.long or ai.short
            if pos is not None or ai.open_orders:
                if pos is not None and pos.leverage != ai.leverage:
                    rt.emit(
                        LeverageChanged(ai.symbol, pos.leverage, self.now_ms()), kind=Kind.RECONCILE
                    )
                continue
            await rt.exchange.set_margin_mode(rt.margin, ai.symbol)
            await rt.exchange.set_leverage(
                int(wanted) if wanted.is_integer() else wanted, ai.symbol
            )
            if ai.leverage != wanted:
                rt.emit(LeverageChanged(ai.symbol, wanted, self.now_ms()), durable=True)

    def request_stop(self) -> None:
        self.clock.request_stop()

    async def run(self, s: Strategy, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        rt = self.rt
        async with self.open_exchange() as ex:
            rt.exchange = self.streams = ex
            has = getattr(getattr(ex, "_client", None), "has", {}) or {}
            # No trade endpoints at all: fills are derived from order updates instead.
            rt.emulate_trades = not (has.get("fetchMyTrades") or has.get("watchMyTrades"))
            await self._refresh_markets()
            path = getattr(rt.recorder, "path", None)
            replica = restore(rt.state, path) if path is not None else None
            if replica is not None:
                rt.continue_client_ids(replica.client_seq)
            restored = replica is not None
            rt.record_run_start(fresh=not restored)
            send, receive = trio.open_memory_channel[Any](4096)
            self._send = send
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._apply_reports, receive)
                    await self.reconcile()
                    await self._set_leverage()
                    balance = BalanceWatcher(ex, self.watcher_config, self.on_watcher)
                    self.account_watchers.append(balance)
                    await nursery.start(balance.run, send.clone())
                    if rt.margin:
                        positions = PositionsWatcher(
                            ex, self.watcher_config, list(rt.universe.keys()), self.on_watcher
                        )
                        self.account_watchers.append(positions)
                        await nursery.start(positions.run, send.clone())
                    rt.open_bar_windows()
                    for ai in rt.universe:
                        if ai.open_orders:
                            await nursery.start(self._run_asset_watchers, ai)
                        await self.clock.fetch_bars(ai, limit=max(rt.strategy_warmup, 1) + 1)
                        ticker = TickerWatcher(ex, self.watcher_config, ai.symbol, self.on_watcher)
                        await nursery.start(ticker.run, send.clone())
                    nursery.start_soon(run_operations, rt)
                    if self.mode.reconcile_every_s:
                        nursery.start_soon(self._reconcile_every, self.mode.reconcile_every_s)
                    # Brackets a crash left half done (DESIGN §10), once the watchers are up.
                    await resume_brackets(rt, path)
                    task_status.started()
                    try:
                        await rt.call_hook("on_start", s.on_start)
                        await self.clock.tick_loop(s)
                    finally:
                        # Every way out (stop, an error, Ctrl-C, SIGTERM, a cancelled run).
                        ends_by = trio.current_time() + ON_STOP_LIMIT_S
                        await on_stop_action(rt, self.mode.on_stop)
                        await self._last_account_read(ends_by)
                    nursery.cancel_scope.cancel()
            finally:
                self._nursery = None
                self.streams = None  # the exchange closes with this block
                self.account_watchers.clear()
                with trio.CancelScope(shield=True):
                    await send.aclose()

    async def _last_account_read(self, ends_by: float) -> None:
        """One REST read of the account as the run ends, so the state a stopped strategy
        keeps (and its trace) matches the exchange even if the stream's last balance report
        was lost. Shielded; it shares the on-stop action's time so `stop` keeps its bound."""
        rt = self.rt
        with trio.CancelScope(shield=True), trio.move_on_at(ends_by) as scope:
            try:
                await self._reconcile_account()
            # Best effort on every way out, a failed run's included: what ended the run, not
            # this read's error, is what propagates.
            except Exception as exc:
                # An ExchangeError's text is redacted where it is made; of another, its type.
                why = str(exc) if isinstance(exc, ExchangeError) else type(exc).__name__
                rt.record(Kind.ERROR, {"error": f"account read at stop failed: {why}"})
                log.warning("strategy %s: account read at stop failed: %s", rt.name, why)
        if scope.cancelled_caught:
            log.warning(
                "strategy %s: the account read at stop did not finish in time; the last "
                "balances may lag the exchange's",
                rt.name,
            )

    async def _reconcile_every(self, every_s: float) -> None:
        """Periodic reconcile (DESIGN §4): a full REST read every `every_s`, differences
        applied as RECONCILE events; drift found is logged and alerted."""
        rt = self.rt
        while True:
            await trio.sleep(every_s)
            fixes = rt.reconcile_fixes
            try:
                await self.reconcile_now()
            except ExchangeError as exc:
                rt.record(Kind.ERROR, {"error": f"periodic reconcile failed: {exc}"})
                log.warning("strategy %s: periodic reconcile failed: %s", rt.name, exc)
                continue
            if rt.has_hooks:
                await rt.run_hooks()
            found = rt.reconcile_fixes - fixes
            if found and rt.guard is not None:
                log.warning(
                    "strategy %s: reconcile corrected %d order/fill difference(s) the "
                    "watchers missed",
                    rt.name,
                    found,
                )
                rt.guard.alert(
                    "drift",
                    f"reconcile corrected {found} order/fill difference(s) the watchers missed",
                    {"corrections": found},
                )

    async def reconcile_now(self) -> None:
        """One full REST read of the account and the universe's open orders, applied under
        RECONCILE (a lost send still being resolved is left to its resolver)."""
        rt = self.rt
        ex = rt.exchange
        tag = Kind.RECONCILE
        await self._reconcile_account()
        for ai in rt.universe:

            async def open_orders(sym: str = ai.symbol) -> Any:
                return await ex.fetch_open_orders(sym)

            listed = await retrying(open_orders)
            for report in listed:
                rt.on_exchange("order", report, tag=tag)
            ids = {o.get("clientOrderId") for o in listed}
            for order in list(ai.open_orders.values()):
                if order.client_id in ids or order.id is None:
                    continue
                try:
                    await self.order_and_fills(order.symbol, order.id, order.client_id, tag)
                except OrderNotFound:
                    continue

    async def order_and_fills(
        self, symbol: str, order_id: str | None, client_id: str, tag: Kind | None = None
    ) -> None:
        """Fetch an order and, if it has filled, its trades, then apply them (under `tag`).
        Both requests are made before anything is applied, so a failure leaves nothing half
        done."""
        ex = self.rt.exchange
        report = await ex.fetch_order(order_id, symbol, {"clientOrderId": client_id})
        trades: list[dict[str, Any]] = []
        if report.get("filled"):
            since = int(report.get("timestamp") or self.clock.now_ms()) - 1_000
            trades = [
                trade
                for trade in await ex.fetch_my_trades(symbol, since=since)
                if trade.get("order") == report.get("id")
            ]
        self.rt.on_exchange("order", report, tag=tag)
        for trade in trades:
            self.rt.on_exchange("trade", trade, tag=tag)
        if trades:
            self.rt.on_exchange("order", report, tag=tag)  # a closure that waited on the fills


class LiveSends:
    """Live's send policy (DESIGN §3, §4) around the venue `driver` opened: no send while an
    account watcher of the asset is stale, a floor under each send's time, the asset's
    watchers started by its first order, fills confirmed by the account's reports, and a lost
    send resolved by client id in the background, never by sending again."""

    def __init__(self, driver: LiveDriver) -> None:
        self.driver = driver
        self.rt = driver.rt
        # client id -> the asset's holding when it was sent (see wait_account)
        self.holding_at_send: dict[str, float] = {}
        # client id -> balance reports applied when it was sent (see wait_account)
        self.balance_reports_at_send: dict[str, int] = {}
        self._sending = 0.0

    def unavailable(self) -> str | None:
        if self.driver.streams is None:
            return (
                f"strategy {self.rt.name} is not running (never started, or stopped), so Live "
                "orders cannot reach the exchange: start(s) it before calling"
            )
        return None

    async def sync_order(self, order: Order) -> None:
        await self.driver.order_and_fills(order.symbol, order.id, order.client_id)

    async def send(self, fn: Callable[[], Awaitable[Any]], deadline_ms: int) -> Any:
        """Send within the deadline, but give the request at least SEND_FLOOR_S: a short
        `waitfor` bounds the waiting, not the send (abandoning a send makes its outcome
        unknown). A send still unanswered then is abandoned: NetworkError, resolved by the
        caller through the client id."""
        deadline_ms = max(deadline_ms, self.driver.clock.now_ms() + int(SEND_FLOOR_S * 1000))
        # A bare scope rather than trio.fail_at: no generator context manager on every send.
        with trio.CancelScope(deadline=self.driver.clock.trio_deadline(deadline_ms)):
            return await fn()
        raise NetworkError("the order send did not answer before the deadline")

    async def refusal(self, ai: AssetInstance, deadline_ms: int) -> OrderCheckFailed | None:
        """Why `call` must not send now: an account watcher of the asset is reconnecting or
        stale, and did not recover before the deadline (DESIGN §4)."""

        def unhealthy() -> list[str]:
            watchers = list(self.driver.account_watchers)
            if ai.symbol in self.driver.asset_watchers:
                orders, trades, _ = self.driver.asset_watchers[ai.symbol]
                watchers += [orders, trades]
            return [f"{w.name} ({w.health})" for w in watchers if w.health != HEALTHY]

        if not unhealthy():  # the usual case: no deadline scope to set up
            return None
        clock = self.driver.clock
        with trio.move_on_at(clock.trio_deadline(deadline_ms)):
            while unhealthy():
                await clock.health_changed.wait()
        waiting = unhealthy()
        if waiting:
            return OrderCheckFailed(
                "watchers_unhealthy",
                f"not sending on {ai.symbol}: watcher(s) {', '.join(waiting)} did not recover "
                "within the call's deadline, so the strategy cannot see the order's outcome; "
                "retry later or with a longer waitfor",
            )
        return None

    async def before_send(self, ai: AssetInstance) -> None:
        """Start the asset's watchers on its first order; note its holding (wait_account)."""
        self.driver.last_active[ai.symbol] = trio.current_time()
        self._sending = _holding(ai)
        if ai.symbol not in self.driver.asset_watchers and self.driver._nursery is not None:
            try:
                await self.driver._nursery.start(self.driver._run_asset_watchers, ai)
            except ExceptionGroup as group:
                faults, others = group.split(ExchangeError)
                if faults is None or others is not None:
                    raise  # not (only) the exchange: a bug, not a fault to report
                raise NetworkError(
                    f"the order and trade watchers of {ai.symbol} could not start: "
                    f"{faults.exceptions[0]}; nothing was sent"
                ) from group

    def sent(self, client_id: str) -> None:
        self.holding_at_send[client_id] = self._sending
        self.balance_reports_at_send[client_id] = self.rt.state.balance_reports

    def expect_news(self, ai: AssetInstance, expected: bool = True) -> None:
        """An order is about to be sent on `ai` (True), or was refused (False): its orders
        stream must echo it within the stall timeout, or the watcher is stale."""
        if ai.symbol in self.driver.asset_watchers:
            watcher = self.driver.asset_watchers[ai.symbol][0]
            if expected:
                watcher.expect()
            else:
                watcher.expect_since = None

    async def wait_account(self, trade: Any, deadline_ms: int) -> None:
        """Until the exchange's balance (spot) or position (margin) reports include the
        order's fills so far: the base holding, or the signed position, moved by them."""
        rt = self.rt
        order = trade.order
        ai = rt.state.assets[order.symbol]
        before = self.holding_at_send.get(order.client_id)
        if before is None:
            return
        sign = 1.0 if order.side == "buy" else -1.0
        reports = rt.state.position_reports if ai.contract else rt.state.balance_reports

        def reflected() -> bool:
            moved = _holding(ai) - before
            return abs(moved - sign * order.filled) <= ai.amount_step / 2

        def reported_since() -> bool:
            now = rt.state.position_reports if ai.contract else rt.state.balance_reports
            return now > reports

        def wallet_reported() -> bool:
            return rt.state.balance_reports > self.balance_reports_at_send.get(order.client_id, 0)

        # A venue may report the wallet apart from the position (Bybit's wallet and position
        # topics; Binance's ACCOUNT_UPDATE carries both): the fill's fee and realised PnL are
        # in the wallet report, so a margin fill also waits for one since the send.
        needs_wallet = bool(ai.contract and order.filled)
        if reflected() and (not needs_wallet or wallet_reported()):
            return  # already reported: no deadline scope to set up
        # The holding moving by this order's fills is the proof. When an earlier order's
        # report was still in flight at the send, the holding moves by both, so after a grace
        # period any report since the fill is taken instead of waiting out the deadline.
        # The usual case needs one scope: the grace period's (or the deadline's, if earlier).
        deadline = self.driver.clock.trio_deadline(deadline_ms)
        with trio.CancelScope(deadline=min(trio.current_time() + ACCOUNT_GRACE_S, deadline)):
            while not reflected():
                await rt.account_changed.wait()
        if reflected() and (not needs_wallet or wallet_reported()):
            return
        with trio.move_on_at(deadline):
            while not reflected() and not reported_since():
                await rt.account_changed.wait()
            if needs_wallet:
                while not wallet_reported():
                    await rt.account_changed.wait()

    def spawn(self, fn: Callable[[], Awaitable[Any]]) -> None:
        if self.driver._nursery is not None:
            self.driver._nursery.start_soon(fn)

    async def resolve_unknown(self, ai: AssetInstance, client_id: str) -> None:
        """Look a lost send up by client id until it is found or cannot exist any more. An
        exchange or network fault on the way is recorded and the lookup tried again: nothing
        here may end the strategy."""
        give_up = trio.current_time() + UNKNOWN_RESOLVE_S
        while True:
            try:
                await self.driver.order_and_fills(ai.symbol, None, client_id)
                return
            except OrderNotFound:
                if trio.current_time() >= give_up:
                    self.rt.emit(
                        OrderRejectedEvent(
                            ai.symbol,
                            client_id,
                            self.driver.clock.now_ms(),
                            "never placed: not found after a lost send",
                        ),
                        durable=True,
                    )
                    self.rt.notify(client_id)
                    return
            except ExchangeError as exc:
                self.rt.record(
                    Kind.ERROR,
                    {"client_id": client_id, "error": f"resolving a lost send: {exc}"},
                    asset=ai.symbol,
                )
            await trio.sleep(0.5)
