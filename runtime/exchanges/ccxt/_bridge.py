"""The trio ↔ asyncio bridge: ccxt's asyncio loop, stepped by trio in trio's own thread.

ccxt's asyncio client (``ccxt.async_support``, ``ccxt.pro``) binds its aiohttp session, its
websockets and its futures to the loop it first runs on, so every ccxt object lives on the
bridge's loop: created there, used there, closed there (DESIGN §5). That loop has no thread of
its own: a trio system task (the *pump*) runs it one iteration at a time, and waits, between
iterations, for what the loop itself would have waited for:

- its selector's file descriptor (an epoll or kqueue descriptor is readable when any socket
  registered in it is ready), with ``trio.lowlevel.wait_readable``;
- its next timer, as a trio deadline;
- a kick (an eventfd the loop watches) when work for the loop needs the pump awake.

So a ccxt call costs no thread wake-up at all: :meth:`AsyncioBridge.run` queues the call and
parks the trio caller; while the pump waits, the loop takes the call in an iteration run just
before trio next waits for I/O (an instrument hook, :class:`_Backstop`), which sends the
request without waking the pump; the loop iteration that finishes the task reschedules the
caller directly (it runs inside trio). An answer arriving from the network wakes trio's own
I/O wait once, as it would wake a bare asyncio client's. ``bench/bridge_hop.py`` measures this
design against a helper thread (the design before it, ``bench/_thread_bridge.py``), against
trio's guest mode on the asyncio loop, and against the floors of two threads waking each other
and of one thread running both schedulers. Guest mode is slower (trio's I/O wait runs in a
thread of its own, which hands every trio tick to the host loop across threads) and does not
fit the public API anyway: users run trio themselves (``trio.run(start, s)``,
``nursery.start(start, s)``, the CLI, the IPython loop), while guest mode needs asyncio to own
the thread and start trio inside it.

A step is what ``loop.stop(); loop.run_forever()`` does (one iteration each, the selector polled
without blocking), with run_forever's set-up done once per turn of iterations rather than once per
iteration: ``_run_once`` with ``_stopping`` set, between the running-loop set-up and tear-down
run_forever does (``_run_forever_setup`` since 3.13). The pump reads the loop's ready queue and
timer heap (``_ready``, ``_scheduled``) to know how long it may wait. These internals have been
stable in CPython's ``BaseEventLoop`` for a decade. asyncio is the running loop only during a step,
so trio code never sees it. Other threads may still use ``loop.call_soon_threadsafe``: its wake-up
byte makes the selector readable. Work added on trio's thread outside a step (a call, a finalizer
the garbage collector runs) is stepped just before trio next waits for I/O (:class:`_Backstop`), so
nothing can sit on the loop while the pump sleeps.

:meth:`AsyncioBridge.stream` runs a task on the loop that awaits a ``watch_*`` coroutine again and
again and hands each result to trio, as a :class:`Stream` (a trio ``ReceiveChannel``). After a
step in which a call was answered, the pump lets trio run the caller before it steps again, so
an answer is not held up behind more websocket messages; stream results wait for the end of
the pump's turn (the loop idle, or a bounded number of steps).

**Cancellation crosses both ways.** Cancelling the trio caller cancels the asyncio task (and with
it the HTTP request or the wait in the rate budget); the trio task resumes once the asyncio task
has actually finished, so nothing keeps running behind a cancelled call. A call cancelled before
the loop took it (the loop takes new calls when trio next waits for I/O, after the other tasks of
the scheduling round that submitted them) is never sent. If the request completed before the
cancellation reached it, the caller gets its result and the cancellation is delivered at its next
checkpoint. Closing a stream stops its task (see :class:`Stream`); closing the bridge cancels
whatever is left on the loop, fails the calls in flight with ``NetworkError`` (outcome unknown) and
ends the streams.

**Lifetime.** A bridge is started inside a trio run and is driven by it: calls from another
trio run are refused, and a bridge still open when its run ends is closed with it (its pump's
last act). Code running on the loop blocks trio's thread while it runs, as it would block a
bare asyncio client's.

**How many bridges.** One per trio run, shared and reference-counted
(:func:`acquire_shared_bridge` / :func:`release_shared_bridge`): every exchange account's ccxt
objects live on the same loop, so one pump steps them all. The last account to close closes
the loop. A private :class:`AsyncioBridge` (``async with AsyncioBridge() as bridge``) serves
tests and tools that want their own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import math
import os
import selectors
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar, cast

import outcome
import trio

from runtime._errors import NetworkError

__all__ = ["AsyncioBridge", "Stream", "acquire_shared_bridge", "release_shared_bridge"]

log = logging.getLogger("vigil.ccxt")

T = TypeVar("T")
_DEFAULT_BUFFER: Final = 64
# Loop iterations the pump runs back to back while the loop has ready callbacks and nothing
# went to trio; then it lets trio's other tasks run.
_STEPS_PER_TURN: Final = 16
# Rounds of cancelling what is left on the loop at close (cancelling can spawn more).
_CLOSE_ROUNDS: Final = 10


class _End:
    """The stream's task stopped without an error (closed, or the bridge shut down)."""

    __slots__ = ()


class _Failure:
    """The stream's task stopped on an exception, to be raised to the stream's consumer."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


_END: Final = _End()


class _Kick:
    """An eventfd (a socket pair off Linux) in the loop's selector: written by trio to wake a
    pump that waits on the selector, drained by the loop."""

    __slots__ = ("_fd", "_pair")

    def __init__(self) -> None:
        self._pair: tuple[socket.socket, socket.socket] | None = None
        if sys.platform == "linux":
            self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:
            pair = socket.socketpair()
            for sock in pair:
                sock.setblocking(False)
            self._pair = pair
            self._fd = pair[0].fileno()

    def fileno(self) -> int:
        return self._fd

    def ring(self) -> None:
        # An eventfd write only fails when its counter would overflow; a full pair is rung.
        with contextlib.suppress(BlockingIOError):
            if self._pair is None:
                os.eventfd_write(self._fd, 1)
            else:
                self._pair[1].send(b"\x00")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            if self._pair is None:
                os.eventfd_read(self._fd)
            else:
                self._pair[0].recv(4096)

    def close(self) -> None:
        if self._pair is None:
            os.close(self._fd)
        else:
            for sock in self._pair:
                sock.close()


def _closed_message(name: str) -> str:
    return f"bridge {name!r} is closed; open a new exchange (CcxtExchange.open) to call again"


# trio's AsyncResource: ``async with`` closes the bridge with aclose() (entering starts it).
class AsyncioBridge(trio.abc.AsyncResource):
    """An asyncio event loop stepped by a trio system task, with trio-side entry points.

    ``start()`` (inside a trio run) creates the loop and its pump; ``aclose()`` cancels what is
    left on the loop and closes it. ``async with AsyncioBridge() as bridge:`` does both.
    ``scrubbers`` clean the text of exceptions the loop reports to its exception handler
    before it is logged.
    """

    def __init__(self, *, name: str = "vigil-ccxt") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick: _Kick | None = None
        self._fd = -1  # the selector's descriptor, which the pump waits on
        self._token: trio.lowlevel.TrioToken | None = None
        self._closing = False
        self._closed = False  # the loop is closed
        self._in_flight = 0  # asyncio tasks of run() and stream tasks
        # Calls submitted from trio and not yet taken by the loop (the pump's next step).
        self._inbox: collections.deque[_Call] = collections.deque()
        # Calls launched on the loop and not yet answered: answered at shutdown.
        self._unanswered: set[_Call] = set()
        self._idle = False  # the pump waits on the selector (a kick wakes it)
        self._idle_until = math.inf  # loop time at which the idle pump wakes on its own
        self._idle_scope: trio.CancelScope | None = None  # its deadline: _idle_until
        # The context the calls' asyncio tasks copy (the pump's, wherever they are launched).
        self._context = contextvars.Context()
        self._backstop: _Backstop | None = None
        self._to_trio = False  # this step answered a call
        self._handed = False  # a step since the flag was cleared handed something to trio
        self._hook_lost = False  # trio dropped the _Backstop (it raised)
        self.scrubbers: list[Callable[[str], str]] = []

    # Lifecycle.
    def start(self) -> AsyncioBridge:
        """Create the loop and start its pump in the current trio run."""
        if self._loop is not None:
            raise RuntimeError(f"bridge {self.name!r} is already started; create another one")
        try:
            token = trio.lowlevel.current_trio_token()
        except RuntimeError:
            raise RuntimeError(
                f"bridge {self.name!r}: start() runs inside trio (its loop is stepped by the "
                "trio run that started it)"
            ) from None
        selector = selectors.DefaultSelector()
        if not hasattr(selector, "fileno"):
            selector.close()
            raise RuntimeError(
                f"bridge {self.name!r}: the platform's selector ({type(selector).__name__}) has "
                "no file descriptor for trio to wait on; vigil's ccxt bridge needs epoll or kqueue"
            )
        loop = asyncio.SelectorEventLoop(selector)
        loop.set_exception_handler(self._on_loop_exception)
        kick = _Kick()
        loop.add_reader(kick.fileno(), kick.drain)
        self._loop, self._kick, self._token = loop, kick, token
        self._fd = selector.fileno()
        self._backstop = _Backstop(self)
        trio.lowlevel.add_instrument(self._backstop)
        trio.lowlevel.spawn_system_task(self._pump, name=f"{self.name} pump")
        return self

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``aclose()`` (or the end of the trio run)."""
        return self._loop is not None and not self._closing and not self._closed

    @property
    def in_flight(self) -> int:
        """asyncio tasks still running for :meth:`run` calls and streams."""
        return self._in_flight

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The bridge's loop (to schedule work on it from trio's thread; never run it)."""
        if self._loop is None:
            raise RuntimeError(f"bridge {self.name!r} is not started; call start() first")
        return self._loop

    async def aclose(self) -> None:
        """Cancel every task left on the loop and close it (idempotent).

        Calls still in flight raise :class:`~runtime._errors.NetworkError` (outcome unknown);
        streams end. Runs to completion even when cancelled, then raises ``Cancelled``.
        """
        self._closing = True
        if self._loop is not None and not self._closed:
            self._check_run()
            self._shut_down()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> AsyncioBridge:
        if self._loop is None:
            self.start()
        return self

    def _check_run(self) -> None:
        try:
            here = trio.lowlevel.current_trio_token()
        except RuntimeError:
            here = None
        if here is not self._token:
            raise RuntimeError(
                f"bridge {self.name!r} belongs to the trio run that started it; open the "
                "exchange again in this run"
            )

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # asyncio's default handler logs the exception with its message, which for ccxt can
        # hold a signed URL: log only scrubbed text, and no traceback object.
        exc = context.get("exception")
        text = str(context.get("message", "unhandled exception on the ccxt loop"))
        if exc is not None:
            text += f": {type(exc).__name__}: {exc}"
        for scrub in list(self.scrubbers):
            text = scrub(text)
        log.error("ccxt bridge loop: %s", text)

    # The pump.
    def _wake(self) -> None:
        # On trio's side: the loop has new work; a pump waiting on the selector must step.
        if self._idle and self._kick is not None:
            self._idle = False
            self._kick.ring()

    def _before_io_wait(self, timeout: float) -> None:
        """Just before trio's thread blocks for up to `timeout` (see :class:`_Backstop`): an
        idle pump's loop takes the work trio's thread gave it since (calls submitted, and
        anything added outside a step, e.g. by a finalizer) in a step run here, rather than
        after a kick has woken the pump (a trio scheduling round later). Must not raise."""
        if not self._idle:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self._inbox or loop._ready:  # type: ignore[attr-defined]
            self._handed = False
            try:
                self._steps()
            except Exception:
                log.exception("ccxt bridge %r: a loop step failed; waking the pump", self.name)
                self._wake()
                return
            if self._inbox or loop._ready or (self._handed and timeout > 0):  # type: ignore[attr-defined]
                # More work, or a trio task made runnable that trio would not run before its
                # wait ends: the pump goes on, and the kick cuts the wait short.
                self._wake()
                return
        timers = loop._scheduled  # type: ignore[attr-defined]
        scope = self._idle_scope
        if timers and scope is not None and timers[0].when() < self._idle_until:
            due = timers[0].when()
            delay = due - loop.time()
            if delay < timeout:
                self._wake()  # trio's wait would outlast the timer
            else:
                self._idle_until = due
                scope.deadline = trio.current_time() + delay

    def _steps(self) -> None:
        """Run loop iterations until it has nothing ready, or something went to trio."""
        loop = self.loop
        inbox = self._inbox
        unanswered = self._unanswered
        run_once = loop._run_once  # type: ignore[attr-defined]
        # What run_forever sets up around its iterations, once for the whole turn (not once
        # per iteration); _stopping makes each iteration poll the selector without blocking.
        loop._check_closed()  # type: ignore[attr-defined]
        if loop.is_running():
            raise RuntimeError(f"bridge {self.name!r}: its loop is already running")
        loop._set_coroutine_origin_tracking(loop.get_debug())  # type: ignore[attr-defined]
        hooks = sys.get_asyncgen_hooks()
        loop._thread_id = threading.get_ident()  # type: ignore[attr-defined]
        sys.set_asyncgen_hooks(
            firstiter=loop._asyncgen_firstiter_hook,  # type: ignore[attr-defined]
            finalizer=loop._asyncgen_finalizer_hook,  # type: ignore[attr-defined]
        )
        asyncio._set_running_loop(loop)
        loop._stopping = True  # type: ignore[attr-defined]
        try:
            for _ in range(_STEPS_PER_TURN):
                while inbox:  # the calls trio handed over take their first step in this one
                    call = inbox.popleft()
                    unanswered.add(call)
                    call.launch()
                self._to_trio = False
                run_once()
                if self._to_trio or not loop._ready:  # type: ignore[attr-defined]
                    return
        finally:
            loop._stopping = False  # type: ignore[attr-defined]
            loop._thread_id = None  # type: ignore[attr-defined]
            asyncio._set_running_loop(None)
            loop._set_coroutine_origin_tracking(False)  # type: ignore[attr-defined]
            sys.set_asyncgen_hooks(*hooks)

    def _due(self) -> float:
        """When the loop would next have work without I/O, in loop time: -inf with callbacks
        (or calls) ready, its next timer, or +inf."""
        loop = self.loop
        if loop._ready or self._inbox:  # type: ignore[attr-defined]
            return -math.inf
        timers = loop._scheduled  # type: ignore[attr-defined]
        return cast(float, timers[0].when()) if timers else math.inf

    async def _pump(self) -> None:
        # A system task: it must not raise. It ends when the bridge closes (the kick or the
        # selector's descriptor is closed under its wait) or the trio run ends (cancelled).
        self._context = contextvars.copy_context()
        try:
            while not self._closed:
                # One scope for many waits, its deadline moved with the loop's next timer:
                # entering a scope per wait cost more than the wait's other work (measured).
                # Re-entered after its deadline has passed.
                with trio.CancelScope() as scope:
                    self._idle_scope = scope
                    self._idle_until = math.inf
                    await self._steps_and_waits(scope)
        except (trio.Cancelled, trio.ClosedResourceError):
            pass  # the run is ending, or aclose closed the loop
        except Exception:
            log.exception("ccxt bridge %r: the loop's pump failed; closing the loop", self.name)
        finally:
            self._closing = True
            if not self._closed:
                self._shut_down()

    async def _steps_and_waits(self, scope: trio.CancelScope) -> None:
        """Step the loop, and wait for what it waits for, until `scope`'s deadline (its
        next timer) passes or the bridge closes."""
        fd = self._fd
        while not self._closed:
            self._steps()
            due = self._due()
            delay = due - self.loop.time()
            if delay <= 0:
                if self._to_trio:
                    # Callers just answered are in trio's next batch, with this task:
                    # let them run it out before the loop takes more messages.
                    await trio.lowlevel.checkpoint()
                await trio.lowlevel.checkpoint()
                continue
            if due != self._idle_until:
                self._idle_until = due
                scope.deadline = trio.current_time() + delay
            self._idle = True
            try:
                await trio.lowlevel.wait_readable(fd)
            finally:
                self._idle = False

    def _shut_down(self) -> None:
        """Cancel what is left on the loop, answer every call and close the loop (trio's
        thread, inside the bridge's run). Must not raise."""
        loop = self.loop
        self._closing = True
        try:
            for _ in range(_CLOSE_ROUNDS):
                tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
                if not tasks:
                    break
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        except Exception:
            log.exception("ccxt bridge %r: closing the loop failed", self.name)
        finally:
            self._answer_the_rest()
            self._closed = True
            if self._backstop is not None:
                with contextlib.suppress(KeyError):  # trio dropped it (a hook raised)
                    trio.lowlevel.remove_instrument(self._backstop)
            assert self._kick is not None
            # The pump may wait on the selector's descriptor: wake it before it is closed.
            trio.lowlevel.notify_closing(self._fd)
            with contextlib.suppress(Exception):
                loop.remove_reader(self._kick.fileno())
            self._kick.close()
            loop.close()

    def _answer_the_rest(self) -> None:
        # Calls never launched are refused; calls whose task ended without answering
        # (cancelled before its first step) are answered "closed".
        while self._inbox:
            call = self._inbox.popleft()
            call.answer(outcome.Error(trio.ClosedResourceError(_closed_message(self.name))))
        for call in list(self._unanswered):
            call.answer(None)

    # Calls.
    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` on the loop, from trio; returns its result or raises its error.

        ``fn(*args)`` is called on the loop, so it may create and use ccxt objects.
        Cancellation: cancels the asyncio task and returns once it has finished (see the module
        doc). Raises ``trio.ClosedResourceError`` once the bridge is closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._loop is None or self._closing:
            raise trio.ClosedResourceError(_closed_message(self.name))
        if trio.lowlevel.current_trio_token() is not self._token:
            self._check_run()
        call = _Call(self, fn, args, trio.lowlevel.current_task())
        # The pump's next step launches it, or, while the pump waits for I/O, the step run
        # just before trio next waits for I/O (_before_io_wait): after the other tasks of
        # this scheduling round, so a call one of them cancels is never sent.
        self._inbox.append(call)
        if self._hook_lost:
            self._wake()

        def abort(_: Any) -> trio.lowlevel.Abort:
            if not call.launched:  # the loop never took it: it is never sent
                self._inbox.remove(call)
                call.waiting = False
                return trio.lowlevel.Abort.SUCCEEDED
            call.cancel()  # the loop answers once the asyncio task has ended
            self._wake()
            return trio.lowlevel.Abort.FAILED

        call.waiting = True
        await trio.lowlevel.wait_task_rescheduled(abort)
        result = call.result
        if result is None:
            if call.cancel_requested:  # the asyncio task was cancelled: so is the caller
                await trio.lowlevel.checkpoint()
            raise NetworkError(
                f"bridge {self.name!r} closed while a call was in flight; its outcome is "
                "unknown (look an order up by client order id)"
            )
        return cast(T, result.unwrap())

    def stream(
        self,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        transform: Callable[[Any], T],
        map_error: Callable[[Exception], BaseException],
        buffer: int = _DEFAULT_BUFFER,
    ) -> Stream[T]:
        """A :class:`Stream` of ``transform(await fn(*args))``, again and again, from the loop.

        ``transform`` runs on the loop, right after each result, so it can copy what ccxt
        keeps updating in place. ``map_error`` turns the exception that ends the stream's task
        into the one the consumer gets. At most ``buffer`` results wait undelivered; the task
        pauses until the consumer catches up.
        """
        if not (isinstance(buffer, int) and buffer >= 1):
            raise ValueError(f"buffer={buffer!r} must be a whole number >= 1 of results")
        if self._loop is None or self._closing:
            raise trio.ClosedResourceError(_closed_message(self.name))
        self._check_run()
        stream: Stream[T] = Stream(self, fn, args, transform, map_error, buffer)
        stream._launch()
        self._wake()
        return stream


class _Backstop(trio.abc.Instrument):
    """Steps its bridge's loop for an idle pump, just before trio waits for I/O, if the loop
    has work: the calls submitted since (sent without waking the pump), and anything else added
    on trio's thread outside a step (a finalizer run by the garbage collector, say), which would
    otherwise wait until the loop's next I/O. Work from other threads comes with asyncio's own
    wake-up byte. A check of the loop's queues per trio I/O wait; hooks must not raise (trio
    drops one that does: the bridge's calls then wake the pump with a kick instead).
    """

    def __init__(self, bridge: AsyncioBridge) -> None:
        self._bridge = bridge

    def before_io_wait(self, timeout: float) -> None:
        bridge = self._bridge
        done = False
        try:
            bridge._before_io_wait(timeout)
            done = True
        finally:
            if not done:
                # trio drops an instrument that raises: from now on calls wake the pump.
                bridge._hook_lost = True
                bridge._wake()


class _Call:
    """One :meth:`AsyncioBridge.run` call: launched on the loop, answered by rescheduling its
    trio task."""

    __slots__ = ("_args", "_atask", "_bridge", "_fn", "_started", "cancel_requested",
                 "delivered", "launched", "result", "task", "waiting")  # fmt: skip

    def __init__(
        self,
        bridge: AsyncioBridge,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        task: trio.lowlevel.Task,
    ) -> None:
        self._bridge = bridge
        self._fn = fn
        self._args = args
        self.task = task
        self._atask: asyncio.Future[Any] | None = None
        self.launched = False
        self.cancel_requested = False
        self._started = False  # the asyncio task took its first step
        self.waiting = False  # the trio task is parked on this call
        #: The outcome; None when the asyncio task was cancelled or the bridge closed under it.
        self.result: outcome.Outcome[Any] | None = None
        self.delivered = False

    def launch(self) -> None:
        self.launched = True
        bridge = self._bridge
        bridge._in_flight += 1
        self._atask = bridge.loop.create_task(self._drive(), context=bridge._context.copy())

    async def _drive(self) -> None:
        self._started = True
        result: outcome.Outcome[Any] | None = None  # None: cancelled
        try:
            if not self.cancel_requested:
                # Whatever it raises is the caller's to handle, not the loop's.
                result = await outcome.acapture(self._fn, *self._args)
                if isinstance(result, outcome.Error) and isinstance(
                    result.error, asyncio.CancelledError
                ):
                    result = None  # nobody awaits this task: trio is told it was cancelled
        finally:
            self._bridge._in_flight -= 1
            self.answer(result)

    def answer(self, result: outcome.Outcome[Any] | None) -> None:
        # Inside the bridge's trio run (a pump step, or the shutdown).
        if self.delivered:
            return
        self.result = result
        self.delivered = True
        bridge = self._bridge
        bridge._unanswered.discard(self)
        bridge._to_trio = bridge._handed = True
        if self.waiting:
            self.waiting = False
            trio.lowlevel.reschedule(self.task)

    def cancel(self) -> None:
        self.cancel_requested = True
        # A task cancelled before its first step would never run _drive's finally (and never
        # answer): until then the flag alone stops it, and it answers "cancelled".
        if self._started and self._atask is not None:
            self._atask.cancel()


class Stream(trio.abc.ReceiveChannel[T]):
    """Results of one ``watch_*`` subscription, arriving from the bridge loop.

    Use it as any trio receive channel::

        async with exchange.watch_orders("BTC/USDT") as updates:
            async for orders in updates:
                ...

    **How it ends.** ``receive()`` raises the mapped error (e.g. a vigil ``NetworkError`` after
    a websocket drop) once every result before it was received, then ``EndOfChannel``; it raises
    ``EndOfChannel`` at once when the exchange or the bridge was closed. ``async for`` therefore
    stops cleanly on a close and raises on a failure. A watcher re-opens the stream to
    reconnect (ccxt.pro reconnects on the next watch), then fills the gap from REST.

    **Backpressure.** At most ``buffer`` results wait undelivered; then the stream's task stops
    calling ``watch_*`` until the consumer catches up (ccxt.pro keeps caching updates meanwhile,
    within its cache limits).

    **No gap between results.** The task awaits ``watch_*`` directly and calls it again in the
    same loop step that delivered the previous result. ccxt.pro hands an update only to a watch
    already waiting (later ones see the next update), and a result reflects every message
    processed before the task woke, so nothing falls between two results.

    **Cancellation.** Cancelling ``receive()`` loses nothing: the result stays queued.
    ``aclose()`` returns at once; ``receive()`` then raises ``trio.ClosedResourceError``. The
    task stops at once if it is waiting for the consumer; a ``watch_*`` call in progress is not
    cancelled but left to finish with the next update (its result is dropped), because ccxt.pro
    gives every watcher of a subscription the same future: cancelling it would end the other
    watchers' streams too.
    """

    def __init__(
        self,
        bridge: AsyncioBridge,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        transform: Callable[[Any], T],
        map_error: Callable[[Exception], BaseException],
        buffer: int,
    ) -> None:
        self._bridge = bridge
        self._fn = fn
        self._args = args
        self._transform = transform
        self._map_error = map_error
        self._buffer = buffer
        # Unbounded: the task's count bounds it, and the loop cannot wait on trio.
        self._send, self._receive = trio.open_memory_channel[Any](math.inf)
        self._delivered = 0  # results handed to trio
        self._received = 0  # results the consumer took
        self._pump_waiting = False  # the task waits for room
        self._room: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False  # by the consumer
        self._stopping = False  # the task is to stop
        self._watching = False  # the task is inside watch_*
        self.ended = False  # the task has put its last item (an end or a failure)

    # On the loop (its tasks and callbacks run inside the bridge's trio run).
    def _launch(self) -> None:
        self._room = asyncio.Event()
        self._task = self._bridge.loop.create_task(self._run())
        self._bridge._in_flight += 1
        self._task.add_done_callback(self._task_done)

    def _task_done(self, _: asyncio.Future[None]) -> None:
        self._bridge._in_flight -= 1

    async def _run(self) -> None:
        room = self._room
        assert room is not None
        try:
            while True:
                if self._delivered - self._received >= self._buffer:
                    room.clear()
                    self._pump_waiting = True
                    await room.wait()
                    self._pump_waiting = False
                    continue
                if self._stopping:
                    break
                self._watching = True
                try:
                    value = await self._fn(*self._args)
                finally:
                    self._watching = False
                if self._stopping:
                    break
                self._delivered += 1
                self._put(self._transform(value))
        except asyncio.CancelledError:
            self._put(_END)
            raise
        except Exception as exc:
            # After a stop, ccxt's close() rejects the pending watch: that is the end, not news.
            self._put(_END if self._stopping else _Failure(exc))
            return
        self._put(_END)

    def _put(self, item: Any) -> None:
        # Never raises: it runs in the loop's tasks. A result does not stop the pump's turn
        # (only an answered call does): a call's answer, often right behind the user-data
        # messages it caused, is not held up by the watchers handling them.
        self._bridge._handed = True
        try:
            self._send.send_nowait(item)
            if item is _END or isinstance(item, _Failure):
                self.ended = True
                self._send.close()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the consumer closed the stream; the result is not wanted
        except Exception:
            log.exception("ccxt bridge: could not hand a stream result to trio")

    def _stop_task(self) -> None:
        self._stopping = True
        # Cancel only a task that waits for room: one inside watch_* awaits a ccxt.pro
        # future that other streams may share (see the class doc).
        if self._task is not None and not self._watching and not self._bridge._closed:
            self._task.cancel()
            self._bridge._wake()

    # On trio's side.
    @property
    def delivered(self) -> int:
        """Results the stream's task has handed to trio so far (taken or not)."""
        return self._delivered

    async def receive(self) -> T:
        """The next result; raises the stream's error or ``EndOfChannel`` when it ended."""
        return self._take(await self._receive.receive())

    def receive_nowait(self) -> T:
        """The next result if one has arrived, else ``trio.WouldBlock``; ends as
        :meth:`receive` does. Lets a consumer take a burst in one scheduling step."""
        return self._take(self._receive.receive_nowait())

    def _take(self, item: Any) -> T:
        if item is _END:
            raise trio.EndOfChannel
        if isinstance(item, _Failure):
            raise self._map_error(item.exc) from item.exc
        self._received += 1
        if self._pump_waiting and self._room is not None and not self._bridge._closed:
            self._room.set()
            self._bridge._wake()
        return cast(T, item)

    def _stop(self) -> None:
        """End the stream from the producer side (the exchange is closing): the consumer gets
        what was already delivered, then ``EndOfChannel``."""
        if self._bridge._closed:
            self._send.close()  # the loop is gone and sends no end marker
        else:
            self._stop_task()

    async def aclose(self) -> None:
        """Stop the subscription (idempotent); see the class doc."""
        if not self._closed:
            self._closed = True
            self._receive.close()
            self._stop_task()
        await trio.lowlevel.checkpoint()


# The shared bridge of each trio run (see the module doc): [bridge, users].
_SHARED: trio.lowlevel.RunVar[list[Any]] = trio.lowlevel.RunVar("vigil_ccxt_shared_bridge")


def current_shared_bridge() -> AsyncioBridge | None:
    """The current trio run's shared bridge while it has users, else None."""
    try:
        return cast("AsyncioBridge | None", _SHARED.get()[0])
    except LookupError:
        return None


def acquire_shared_bridge() -> AsyncioBridge:
    """The current trio run's shared bridge, started if needed; pair with
    :func:`release_shared_bridge`."""
    try:
        entry = _SHARED.get()
    except LookupError:
        entry = [None, 0]
        _SHARED.set(entry)
    bridge = entry[0]
    if bridge is None or not bridge.running:
        entry[0] = bridge = AsyncioBridge(name="vigil-ccxt").start()
        entry[1] = 0
    entry[1] += 1
    return cast(AsyncioBridge, bridge)


async def release_shared_bridge(bridge: AsyncioBridge) -> None:
    """Give back a bridge from :func:`acquire_shared_bridge`; the last user closes it."""
    try:
        entry = _SHARED.get()
    except LookupError:
        entry = [None, 0]
    if bridge is not entry[0]:
        last = True  # already replaced: this one is no longer shared
    else:
        entry[1] -= 1
        last = entry[1] <= 0
        if last:
            entry[0] = None
    if last:
        await bridge.aclose()
    else:
        await trio.lowlevel.checkpoint()
