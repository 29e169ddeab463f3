"""`start` and `stop`: run a strategy in its mode until the data ends or `stop` is called."""

from __future__ import annotations

import trio

from runtime._errors import ConfigError
from runtime.app._loop import spawn_strategy
from runtime.engine._replica import snapshot
from runtime.engine._strategy import Strategy, runtime_of
from traces._schema import Kind

STOP_GRACE_S = 1.5  # how long `stop` lets the current tick finish before cancelling it


async def start(
    s: Strategy,
    *,
    foreground: bool = True,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run `s` until its data ends (Sim) or `stop(s)` is called.

    Usable as ``await nursery.start(start, s)``: `task_status.started()` is called once the
    strategy is running. On cancellation the run is recorded as stopped and the trace flushed.
    With ``foreground=False`` (IPython after ``%load_ext runtime``, or `Session`) it returns at
    once and the run continues on the background loop.
    """
    rt = runtime_of(s)
    if not foreground:
        if rt.running:
            raise ConfigError(f"strategy {rt.name} is already running; stop(s) it first")
        spawn_strategy(s, start)
        task_status.started()
        return
    if rt.running:
        raise ConfigError(f"strategy {rt.name} is already running; stop(s) it first")
    rt.running = True
    rt.stopped = trio.Event()
    rt.run_task = trio.lowlevel.current_task()
    try:
        # `stop` cancels this scope when the run does not end by itself in time.
        with trio.CancelScope() as rt.run_scope:
            await rt.driver.run(s, task_status)
        await rt.call_hook("on_stop", s.on_stop)
    finally:
        rt.run_scope = None
        rt.running = False
        rt.stopping = False  # a stop asked before the run began still applied to it
        rt.stopped.set()
        rt.record(Kind.RUN_STOPPED, {"run_id": rt.run_id, "state": state_snapshot(s)}, durable=True)
        # Commit whole chunks and release the trace; recording again reopens it.
        rt.recorder.close()


async def stop(s: Strategy) -> None:
    """Stop a running strategy after its current tick and wait until it has stopped (at once
    when called from the strategy's own hooks, which cannot wait for themselves).

    From the moment it is called no new order is sent (`call` raises `StrategyStopped`). A
    tick that has not returned after STOP_GRACE_S is cancelled, so `stop` returns within 5 s
    even for an `on_tick` that never returns; Live's ``on_stop`` action still runs."""
    rt = runtime_of(s)
    rt.stopping = True
    rt.driver.request_stop()
    if rt.running and trio.lowlevel.current_task() is not rt.run_task:
        with trio.move_on_after(STOP_GRACE_S):
            await rt.stopped.wait()
        if not rt.stopped.is_set() and rt.run_scope is not None:
            rt.run_scope.cancel()
        await rt.stopped.wait()


def state_snapshot(s: Strategy) -> dict[str, object]:
    """The strategy state that replay must reproduce, as plain values (see traces.replay)."""
    return snapshot(runtime_of(s).state)
