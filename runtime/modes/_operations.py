"""Operations on a running strategy (DESIGN §9): the kill switch, resume, flatten, the halts
the risk guard calls for, strategy errors, alert delivery, and what Live does on its way out.

Every mode runs these the same way, so a Sim run shows the halts a live run would have.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from runtime._errors import ConfigError
from runtime.engine._engine import Halted, Resumed
from runtime.engine._strategy import runtime_of
from runtime.modes._dispatch import cancel_orders, exit_market, risk_of

if TYPE_CHECKING:
    from runtime.engine._runtime import Runtime
    from runtime.engine._strategy import Strategy

log = logging.getLogger("vigil.risk")

EXIT_WAIT_S = 10.0  # how long a flatten waits for each market's closing order
ON_STOP_LIMIT_S = 3.0  # Live's on-stop action, bounded so `stop(s)` returns within 5 s


async def halt(s: Strategy, reason: str = "manual") -> None:
    """The kill switch: trading off, open orders cancelled (positions closed too with
    ``Risk(on_halt="flatten")``); every later order is refused with "halted: <reason>" until
    `resume(s)`. A halt is state: a restart replays into it."""
    if not isinstance(reason, str) or not reason:
        raise ConfigError(f"halt(s, reason): reason must be a non-empty string, not {reason!r}")
    await halt_runtime(runtime_of(s), f"{reason} (halt called)", rule="manual")


def resume(s: Strategy) -> None:
    """Trading on again after a halt. The drawdown peak and the day's opening equity start
    again from now, and the strategy-error count from zero."""
    rt = runtime_of(s)
    if rt.state.halted is None:
        return
    reason = rt.state.halted
    rt.emit(Resumed(rt.now_ms()), durable=True)
    if rt.guard is not None:
        guard = risk_of(rt)
        guard.reset_watermarks()
        guard.alert("resume", f"trading resumed (was halted: {reason})", {"was": reason})
    log.warning("strategy %s: trading resumed (was halted: %s)", rt.name, reason)


async def flatten(s: Strategy) -> bool:
    """Cancel every open order and close every position (margin) or sell the universe's base
    holdings (spot; the strategy's own with a capital cap). True when nothing is left but
    dust below the markets' minimum order. Works while halted."""
    return await flatten_runtime(runtime_of(s))


async def flatten_runtime(rt: Runtime) -> bool:
    done = True
    for ai in rt.universe:
        deadline = rt.now_ms() + int(EXIT_WAIT_S * 1000)
        done = await exit_market(rt, ai, deadline) and done
    return done


async def halt_runtime(
    rt: Runtime, reason: str, *, rule: str, data: dict[str, Any] | None = None
) -> None:
    """Halt (see `halt`): the `Halted` event, the alert, then the cancels (and the flatten)."""
    if rt.state.halted is not None:
        return
    rt.emit(Halted(reason, rt.now_ms()), durable=True)
    log.warning("strategy %s: halted: %s", rt.name, reason)
    guard = risk_of(rt) if rt.guard is not None else None
    if guard is not None:
        guard.alert("halt", f"halted: {reason}", {"rule": rule, **(data or {})})
    if guard is not None and guard.risk.on_halt == "flatten":
        await flatten_runtime(rt)
    else:
        for ai in rt.universe:
            if ai.open_orders:
                await cancel_orders(rt, list(ai.open_orders.values()))


async def enforce(rt: Runtime) -> None:
    """Before a tick: halt on an equity breach, and hand queued alerts to `on_alert`."""
    guard = risk_of(rt)
    found = guard.breach(rt.now_ms())
    if found is not None:
        rule, reason, data = found
        guard.alert("breach", reason, {"rule": rule, **data})
        await halt_runtime(rt, reason, rule=rule, data=data)
    if guard.alerts.pending:
        await deliver_alerts(rt)


async def deliver_alerts(rt: Runtime) -> None:
    """Call `on_alert` with each queued alert; its exceptions are logged and recorded only."""
    s = rt.strategy
    for alert in risk_of(rt).alerts.take():
        if s is None:
            continue
        try:
            await s.on_alert(alert)
        except Exception as exc:
            rt.hook_failed("on_alert", exc)


async def tick_failed(rt: Runtime, exc: Exception, bar: Any) -> None:
    """An `on_tick` exception: recorded, logged with its bar, alerted; the next tick runs,
    unless it is ``max_strategy_errors`` in a row, which halts."""
    guard = risk_of(rt)
    if guard.strategy_error(exc, bar):
        n = guard.errors_in_a_row
        await halt_runtime(
            rt,
            f"max_strategy_errors: on_tick raised {n} times in a row (limit "
            f"{guard.risk.max_strategy_errors}); the last: {exc!r}",
            rule="max_strategy_errors",
            data={"in_a_row": n, "error": repr(exc)},
        )
    if guard.alerts.pending:
        await deliver_alerts(rt)


async def run_operations(rt: Runtime) -> None:
    """Live and Paper, in the background for the whole run: alerts reach `on_alert` (and the
    webhook) while `on_tick` is busy."""
    guard = risk_of(rt)
    async with trio.open_nursery() as nursery:
        if guard.webhook is not None:
            nursery.start_soon(guard.webhook.run)
        while True:
            await guard.alerts.arrived.wait()
            await deliver_alerts(rt)


async def on_stop_action(rt: Runtime, action: str) -> None:
    """Live's ``on_stop``: "cancel" the open orders, "flatten" them and the positions, or
    "leave" them. Bounded by ON_STOP_LIMIT_S and shielded, so it runs on every way out."""
    if action == "leave":
        return
    with trio.CancelScope(shield=True), trio.move_on_after(ON_STOP_LIMIT_S) as scope:
        if action == "flatten":
            await flatten_runtime(rt)
        else:
            for ai in rt.universe:
                if ai.open_orders:
                    await cancel_orders(rt, list(ai.open_orders.values()))
    if scope.cancelled_caught:
        log.error(
            "strategy %s: on_stop=%r did not finish within %.0f s; check the exchange for "
            "open orders and positions",
            rt.name,
            action,
            ON_STOP_LIMIT_S,
        )
