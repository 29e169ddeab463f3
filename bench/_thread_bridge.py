"""The helper-thread bridge: vigil's ccxt bridge before issue 20, kept only so that
``bench/bridge_hop.py`` and ``bench/exchange_roundtrip.py`` can time it beside the current
(inline) design in the same run. Not used by the product.

The trio ↔ asyncio bridge: one asyncio loop in one helper thread, driven from trio.

ccxt's asyncio client (``ccxt.async_support``, ``ccxt.pro``) binds its aiohttp session, its
websockets and its futures to the loop it first runs on, so every ccxt object lives on the
bridge's loop: created there, used there, closed there (DESIGN §5). trio talks to that loop in
two ways:

- :meth:`AsyncioBridge.run` submits one coroutine and parks the trio task on a doorbell (an
  eventfd, :class:`_Doorbell`) with ``trio.lowlevel.wait_readable``; the loop thread stores the
  asyncio task's outcome and rings the bell, so trio's I/O wait reschedules the caller itself,
  with no trip through trio's ``run_sync_soon`` queue (past :data:`_MAX_DOORBELLS` calls in
  flight, a call waits on a trio Event instead). No thread ever blocks on the other.
- :meth:`AsyncioBridge.stream` runs a pump task on the loop that awaits a ``watch_*`` coroutine
  again and again and hands each result to trio, as a :class:`Stream` (a trio
  ``ReceiveChannel``).

**Batched hand-over.** Each side wakes the other just before it waits for I/O itself: trio
through an instrument's ``before_io_wait`` (:class:`_Flusher`), asyncio through its selector
(:class:`_FlushingSelector`). Everything submitted or finished in the round goes across
together, and the woken thread finds the GIL free. When a call was answered and the loop has
more to do at once (more websocket messages), it then leaves the GIL to trio until trio waits
again (see :meth:`AsyncioBridge._flush`), so an outcome that has arrived is not held up behind
them. The loop takes the calls trio handed over as soon as its selector returns, so their
tasks take their first step in that same loop iteration (``bench/bridge_hop.py`` times the
round trip).

**Cancellation crosses both ways.** Cancelling the trio caller cancels the asyncio task (and with
it the HTTP request or the wait in the rate budget); the trio task resumes once the asyncio task
has actually finished, so nothing keeps running behind a cancelled call. A call cancelled before
it reached the loop is never sent (trio holds a round's calls one more round while it has
tasks to run, so a caller cancelled in that round withdraws its call first; see
:class:`_Flusher`). If the request completed before the cancellation reached it,
the caller gets its result and the cancellation is delivered at its next checkpoint. Closing a
stream stops its pump (see :class:`Stream`); closing the bridge cancels whatever is left on the
loop, fails the calls in flight with ``NetworkError`` (outcome unknown) and ends the streams.

**Callbacks into trio never raise** (a callback given to ``run_sync_soon`` that raises crashes the
trio run): each one catches and logs, and one whose trio run has ended is dropped.

**How many bridges.** One per process, shared and reference-counted
(:func:`acquire_shared_bridge` / :func:`release_shared_bridge`): every exchange account's ccxt
object lives on the same loop and thread, so threads do not compete for the GIL and the loop
batches wake-ups across accounts. The last account to close stops the loop and joins the thread.
A private :class:`AsyncioBridge` (``async with AsyncioBridge() as bridge``) serves tests and
tools that want their own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
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
_START_TIMEOUT_S: Final = 10.0
# Doorbells kept per bridge (file descriptors): calls in flight beyond these wait on a trio
# Event instead (_EventBell), so a burst of calls cannot exhaust the process's descriptors.
_MAX_DOORBELLS: Final = 128
# How long the loop thread, having rung a caller's doorbell, leaves the GIL to the woken trio
# thread at most (see AsyncioBridge._flush).
_HANDOVER_S: Final = 0.002
_DEFAULT_BUFFER: Final = 64


class _End:
    """The pump stopped without an error (closed, or the bridge shut down)."""

    __slots__ = ()


class _Failure:
    """The pump stopped on an exception, to be raised to the stream's consumer."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


_END: Final = _End()


# trio's AsyncResource: ``async with`` closes the bridge with aclose() (entering starts it).
class AsyncioBridge(trio.abc.AsyncResource):
    """An asyncio event loop on a helper thread, with trio-side entry points.

    ``start()`` launches the thread; ``aclose()`` cancels what is left on the loop, stops it and
    joins the thread. ``async with AsyncioBridge() as bridge:`` does both. ``scrubbers`` clean
    the text of exceptions the loop reports to its exception handler before it is logged.
    """

    def __init__(self, *, name: str = "vigil-ccxt") -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._closing = False
        self._in_flight = 0  # asyncio tasks of run() and stream pumps; changed on the loop only
        # Calls submitted from trio, launched by one loop callback per batch (see _submit).
        self._inbox: collections.deque[_Call] = collections.deque()
        self._inbox_scheduled = False
        # What goes back to trio this loop iteration, per trio run: (callback, argument) pairs,
        # handed over in one run_sync_soon per run just before the loop waits (loop thread).
        self._outgoing: dict[trio.lowlevel.TrioToken, list[tuple[Callable[[Any], None], Any]]] = {}
        # Bells of finished calls, rung just before the loop waits (loop thread).
        self._ringing: list[_Bell] = []
        # Calls launched on the loop and not yet answered (loop thread): answered at shutdown.
        self._unanswered: set[_Call] = set()
        # Idle doorbells, reused by later calls (any trio thread; deque pop/append are atomic).
        self._bells: collections.deque[_Doorbell] = collections.deque()
        self._doorbells = 0  # created and not closed
        # The GIL hand-over after a doorbell rings (see _flush): the loop thread sets
        # _handing_over and waits for _trio_done; trio notes that it woke (_trio_woke) and sets
        # _trio_done when it next waits for I/O, its work done.
        self._handing_over = False
        self._trio_woke = False
        self._trio_done = threading.Event()
        self.scrubbers: list[Callable[[str], str]] = []

    # Lifecycle.
    def start(self) -> AsyncioBridge:
        """Start the loop thread and wait (briefly, in this thread) until the loop runs."""
        if self._thread is not None:
            raise RuntimeError(f"bridge {self.name!r} is already started; create another one")
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise RuntimeError(f"bridge {self.name!r}: the asyncio loop did not start")
        return self

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``aclose()``."""
        return self._loop is not None and not self._closing and not self._loop.is_closed()

    @property
    def in_flight(self) -> int:
        """asyncio tasks still running for :meth:`run` calls and stream pumps."""
        return self._in_flight

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The bridge's loop (only to schedule work on it; never run it from another thread)."""
        if self._loop is None:
            raise RuntimeError(f"bridge {self.name!r} is not started; call start() first")
        return self._loop

    async def aclose(self) -> None:
        """Cancel every task left on the loop, stop it and join its thread (idempotent).

        Calls still in flight raise :class:`~runtime._errors.NetworkError` (outcome unknown);
        streams end. Runs to completion even when cancelled, then raises ``Cancelled``.
        """
        loop, thread = self._loop, self._thread
        self._closing = True
        if loop is None or thread is None:
            await trio.lowlevel.checkpoint()
            return
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed between the check and the call
                loop.call_soon_threadsafe(loop.stop)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(thread.join)

    async def __aenter__(self) -> AsyncioBridge:
        if self._thread is None:
            self.start()
        return self

    def _main(self) -> None:
        loop = asyncio.SelectorEventLoop(_FlushingSelector(self._flush, self._take_submitted))
        loop.set_exception_handler(self._on_loop_exception)
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                # Cancel what is left, again if cancelling spawned more (ccxt schedules).
                for _ in range(10):
                    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
                    if not tasks:
                        break
                    for task in tasks:
                        task.cancel()
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                self._closing = True
                self._answer_the_rest()
                self._flush()  # the last outcomes (the loop no longer selects)
                asyncio.set_event_loop(None)
                loop.close()
                while self._bells:  # no call holds these; trio waits on none of them
                    self._close_doorbell(self._bells.pop())

    def _scrub(self, text: str) -> str:
        for scrub in list(self.scrubbers):
            text = scrub(text)
        return text

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # asyncio's default handler logs the exception with its message, which for ccxt can
        # hold a signed URL: log only scrubbed text, and no traceback object.
        exc = context.get("exception")
        text = str(context.get("message", "unhandled exception on the ccxt loop"))
        if exc is not None:
            text += f": {type(exc).__name__}: {exc}"
        log.error("ccxt bridge loop: %s", self._scrub(text))

    # Calls.
    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` on the loop, from trio; returns its result or raises its error.

        ``fn(*args)`` is called on the loop thread, so it may create and use ccxt objects.
        Cancellation: cancels the asyncio task and returns once it has finished (see the module
        doc). Raises ``trio.ClosedResourceError`` once the bridge is closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        loop = self._loop
        if loop is None or self._closing:
            raise trio.ClosedResourceError(_closed_message(self.name))
        bell = self._take_bell()
        call = _Call(self, loop, fn, args, bell)
        self._inbox.append(call)
        # The loop thread is woken once per trio scheduling round, when trio is about to wait
        # (see _Flusher), carrying every call submitted in that round.
        try:
            flusher = _FLUSHER.get()
        except LookupError:
            flusher = _Flusher()
            _FLUSHER.set(flusher)
            trio.lowlevel.add_instrument(flusher)
        flusher.bridges.add(self)
        try:
            await bell.wait()
        except trio.Cancelled:
            if not self._withdraw(call):
                raise  # never sent
            with trio.CancelScope(shield=True):
                await bell.wait()
            if call.result is None:  # the asyncio task was cancelled: so is the caller
                self._recycle(bell)
                raise
        self._recycle(bell)
        result = call.result
        if result is None:
            raise NetworkError(
                f"bridge {self.name!r} closed while a call was in flight; its outcome is "
                "unknown (look an order up by client order id)"
            )
        return cast(T, result.unwrap())

    def _withdraw(self, call: _Call) -> bool:
        """Cancel ``call`` for a cancelled trio caller (trio thread). False: it never reached the
        loop and never will; True: it is answered later (cancelled, or with its outcome)."""
        try:
            self._inbox.remove(call)
        except ValueError:
            pass  # already taken by the loop: cancel it there
        else:
            self._recycle(call.bell)
            return False
        try:
            call.loop.call_soon_threadsafe(call.cancel)
        except RuntimeError:
            # The loop is closed and rings nothing more; every call it took was answered first.
            if not call.delivered:
                self._close_doorbell(call.bell)
            return call.delivered
        return True

    def _take_bell(self) -> _Bell:
        # On a trio thread.
        try:
            return self._bells.pop()
        except IndexError:
            pass
        if self._doorbells < _MAX_DOORBELLS:
            try:
                bell = _Doorbell()
            except OSError:  # out of file descriptors: the slower bell needs none
                log.warning("ccxt bridge: no file descriptor for a doorbell; using a trio Event")
            else:
                self._doorbells += 1
                return bell
        return _EventBell()

    def _recycle(self, bell: _Bell) -> None:
        if not isinstance(bell, _Doorbell):
            return
        bell.clear()
        if self._closing:
            self._close_doorbell(bell)
        else:
            self._bells.append(bell)

    def _close_doorbell(self, bell: _Bell) -> None:
        if isinstance(bell, _Doorbell):
            bell.close()
            self._doorbells -= 1

    def _flush_inbox(self) -> None:
        # On a trio thread (any run that submitted). The loop's drain clears the flag before
        # it pops, so a call appended meanwhile is either popped by it or schedules another.
        if not self._inbox or self._inbox_scheduled:
            return
        self._inbox_scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain_inbox)
        except RuntimeError:  # the loop has closed: nothing will launch these calls
            self._inbox_scheduled = False
            while self._inbox:
                try:
                    call = self._inbox.popleft()
                except IndexError:
                    break
                call.refuse(trio.ClosedResourceError(_closed_message(self.name)))

    def _take_submitted(self) -> None:
        # On the loop thread, right after its selector returns (see _FlushingSelector): the
        # tasks created for the calls trio has handed over take their first step in this loop
        # iteration. Calls still in trio's current round stay until trio hands them over.
        if self._inbox_scheduled:
            self._drain_inbox()

    def _drain_inbox(self) -> None:
        # On the loop thread.
        self._inbox_scheduled = False
        inbox = self._inbox
        while inbox:
            try:
                call = inbox.popleft()
            except IndexError:  # a cancelled caller withdrew it meanwhile
                break
            self._unanswered.add(call)
            call.launch()

    def _answer_the_rest(self) -> None:
        # On the loop thread, once it has stopped: calls never launched are refused, calls
        # whose task ended without answering (cancelled before its first step) are answered.
        while self._inbox:
            try:
                call = self._inbox.popleft()
            except IndexError:
                break
            call.answer(outcome.Error(trio.ClosedResourceError(_closed_message(self.name))))
        for call in list(self._unanswered):
            call.answer(None)

    def _send(
        self, token: trio.lowlevel.TrioToken, callback: Callable[[Any], None], arg: Any
    ) -> None:
        # On the loop thread: queue ``callback(arg)`` for the trio run of ``token``.
        batch = self._outgoing.get(token)
        if batch is None:
            batch = self._outgoing[token] = []
        batch.append((callback, arg))

    def _flush(self, busy: Callable[[], bool] = lambda: False) -> None:
        # On the loop thread, just before it waits for I/O (see _FlushingSelector): ring the
        # doorbells of finished calls and send one wake-up per trio run for stream results,
        # when this thread is about to release the GIL. ``busy()`` tells whether the loop has
        # more to do at once. Must never raise.
        if not self._ringing and not self._outgoing:
            return
        answered = bool(self._ringing)
        if answered:
            # Set before the bells ring: the trio thread reads these once it wakes.
            self._trio_done.clear()
            self._trio_woke = False
            self._handing_over = True
            ringing, self._ringing = self._ringing, []
            for bell in ringing:
                bell.ring()
        if self._outgoing:
            outgoing, self._outgoing = self._outgoing, {}
            for token, batch in outgoing.items():
                try:
                    token.run_sync_soon(_deliver_batch, batch)
                except trio.RunFinishedError:
                    pass  # that trio run has ended; nobody is left to resume
                except Exception:
                    log.exception("ccxt bridge: could not hand results back to trio")
        # Leave the GIL to the trio thread just woken until it has handled what it got, when
        # a call was answered and this loop has more to do at once (an idle loop releases the
        # GIL in its wait anyway). Python gives a thread waiting for the GIL no turn while the
        # holder releases and retakes it between short steps (every syscall, every loop
        # iteration): a loop busy with websocket messages kept a caller waiting ~1 ms for an
        # outcome that had arrived (measured with bench/call_overhead.py). The caller waits on
        # trio's side; the messages wait instead, for at most _HANDOVER_S. Stream results
        # alone do not hand over: the messages still to read are usually the rest of the same
        # news (a synced call waits for the balance report that follows the order's reports).
        if answered and busy():
            self._trio_done.wait(_HANDOVER_S)
        self._handing_over = False

    def stream(
        self,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        transform: Callable[[Any], T],
        map_error: Callable[[Exception], BaseException],
        buffer: int = _DEFAULT_BUFFER,
    ) -> Stream[T]:
        """A :class:`Stream` of ``transform(await fn(*args))``, again and again, from the loop.

        ``transform`` runs on the loop thread, right after each result, so it can copy what ccxt
        keeps updating in place. ``map_error`` turns the exception that ends the pump into the
        one the consumer gets (it runs in trio). At most ``buffer`` results wait undelivered;
        the pump pauses until the consumer catches up.
        """
        if not (isinstance(buffer, int) and buffer >= 1):
            raise ValueError(f"buffer={buffer!r} must be a whole number >= 1 of results")
        loop = self._loop
        if loop is None or self._closing:
            raise trio.ClosedResourceError(_closed_message(self.name))
        stream: Stream[T] = Stream(self, loop, fn, args, transform, map_error, buffer)
        try:
            loop.call_soon_threadsafe(stream._launch)
        except RuntimeError as exc:
            raise trio.ClosedResourceError(_closed_message(self.name)) from exc
        return stream


def _closed_message(name: str) -> str:
    return f"bridge {name!r} is closed; open a new exchange (CcxtExchange.open) to call again"


class _FlushingSelector(selectors.DefaultSelector):
    """The loop's selector: ``before_select(busy)`` runs each time the loop is about to wait
    (``busy()``: the loop has ready callbacks or ready I/O, so it will not block), and
    ``after_select`` each time it stops waiting, before the loop runs its ready callbacks."""

    def __init__(
        self,
        before_select: Callable[[Callable[[], bool]], None],
        after_select: Callable[[], None],
    ) -> None:
        super().__init__()
        self._before_select = before_select
        self._after_select = after_select
        self._timeout: float | None = None

    def _busy(self) -> bool:
        timeout = self._timeout
        return (timeout is not None and timeout <= 0) or bool(super().select(0))

    def select(self, timeout: float | None = None) -> Any:
        self._timeout = timeout
        self._before_select(self._busy)
        events = super().select(timeout)
        self._after_select()
        return events


class _Flusher(trio.abc.Instrument):
    """Per trio run: before trio waits for I/O, hand the calls submitted since to the loop.

    Batching both ways (see :meth:`AsyncioBridge._flush`) means one wake-up of the other thread
    per scheduling round instead of one per call, sent when this thread is about to release
    the GIL. Instrument hooks must not raise; flushing does not.

    While trio still has tasks to run (``timeout == 0``), calls are held for one more round:
    a caller cancelled in the round that submitted its call (trio aborts its wait at once, but
    the caller handles it in the next round) then withdraws it before it is sent.
    """

    def __init__(self) -> None:
        self.bridges: set[AsyncioBridge] = set()
        self._held = False

    def before_io_wait(self, timeout: float) -> None:
        hold = timeout <= 0 and not self._held
        self._held = hold
        for bridge in self.bridges:
            if not hold:
                bridge._flush_inbox()
            if bridge._handing_over and bridge._trio_woke:
                bridge._trio_done.set()

    def after_io_wait(self, timeout: float) -> None:
        for bridge in self.bridges:
            if bridge._handing_over:
                bridge._trio_woke = True


_FLUSHER: trio.lowlevel.RunVar[_Flusher] = trio.lowlevel.RunVar("vigil_ccxt_bridge_flusher")


def _deliver_batch(batch: list[tuple[Callable[[Any], None], Any]]) -> None:
    # On the trio thread, given to run_sync_soon: must never raise (no callback does).
    for callback, arg in batch:
        callback(arg)


class _Doorbell:
    """What a trio caller waits on (``trio.lowlevel.wait_readable``) until the loop thread rings.

    An eventfd on Linux, a socket pair elsewhere (trio waits on sockets on every platform).
    Rung at most once per use and cleared by its caller before reuse.
    """

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

    async def wait(self) -> None:
        await trio.lowlevel.wait_readable(self)

    def ring(self) -> None:
        # On the loop thread. An eventfd write only fails when its counter would overflow.
        with contextlib.suppress(BlockingIOError):
            if self._pair is None:
                os.eventfd_write(self._fd, 1)
            else:
                self._pair[1].send(b"\x00")

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            if self._pair is None:
                os.eventfd_read(self._fd)
            else:
                self._pair[0].recv(64)

    def close(self) -> None:
        if self._pair is None:
            os.close(self._fd)
        else:
            for sock in self._pair:
                sock.close()


class _EventBell:
    """A bell without a file descriptor: a trio Event, set through ``run_sync_soon``. One use."""

    __slots__ = ("_event", "_token")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._token = trio.lowlevel.current_trio_token()

    async def wait(self) -> None:
        await self._event.wait()

    def ring(self) -> None:
        # On any thread; never raises.
        with contextlib.suppress(trio.RunFinishedError):  # nobody is left to wake
            self._token.run_sync_soon(self._event.set)


_Bell = _Doorbell | _EventBell


class _Call:
    """One :meth:`AsyncioBridge.run` call: launched on the loop, answered through its bell."""

    __slots__ = ("_args", "_atask", "_bridge", "_cancel_requested", "_fn", "_started", "bell",
                 "delivered", "loop", "result")  # fmt: skip

    def __init__(
        self,
        bridge: AsyncioBridge,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        bell: _Bell,
    ) -> None:
        self._bridge = bridge
        self.loop = loop
        self._fn = fn
        self._args = args
        self.bell = bell
        self._atask: asyncio.Future[Any] | None = None
        self._cancel_requested = False  # loop thread
        self._started = False  # loop thread: the task took its first step
        #: The outcome; None when the asyncio task was cancelled or the bridge closed under it.
        self.result: outcome.Outcome[Any] | None = None
        #: Set (on the loop thread) once ``result`` is final and the bell is to ring.
        self.delivered = False

    # On the loop thread.
    def launch(self) -> None:
        self._bridge._in_flight += 1
        self._atask = self.loop.create_task(self._drive())

    async def _drive(self) -> None:
        # The answer is given here rather than in a done callback, which asyncio would run
        # one loop iteration later: that iteration was a measurable share of a round trip.
        self._started = True
        result: outcome.Outcome[Any] | None = None  # None: cancelled
        try:
            if not self._cancel_requested:
                value = await self._fn(*self._args)
                result = outcome.Value(value)
        except asyncio.CancelledError:
            pass  # nobody awaits this task: the cancellation is reported to trio instead
        except Exception as exc:
            result = outcome.Error(exc)
        finally:
            self._bridge._in_flight -= 1
            self.answer(result)

    def answer(self, result: outcome.Outcome[Any] | None) -> None:
        if self.delivered:
            return
        self.result = result
        self.delivered = True
        self._bridge._unanswered.discard(self)
        self._bridge._ringing.append(self.bell)

    def cancel(self) -> None:
        self._cancel_requested = True
        # A task cancelled before its first step would never run _drive's finally (and never
        # answer): until then the flag alone stops it, and it answers "cancelled".
        if self._started and self._atask is not None:
            self._atask.cancel()

    # On a trio thread, once the loop is closed.
    def refuse(self, error: Exception) -> None:
        """Fail a call that was never launched, and wake its caller."""
        self.result = outcome.Error(error)
        self.delivered = True
        self.bell.ring()


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

    **Backpressure.** At most ``buffer`` results wait undelivered; then the pump stops calling
    ``watch_*`` until the consumer catches up (ccxt.pro keeps caching updates meanwhile, within
    its cache limits).

    **No gap between results.** The pump awaits ``watch_*`` directly and calls it again in the
    same loop step that delivered the previous result. ccxt.pro hands an update only to a watch
    already waiting (later ones see the next update), and a result reflects every message
    processed before the pump woke, so nothing falls between two results.

    **Cancellation.** Cancelling ``receive()`` loses nothing: the result stays queued.
    ``aclose()`` returns at once; ``receive()`` then raises ``trio.ClosedResourceError``. The
    pump stops at once if it is waiting for the consumer; a ``watch_*`` call in progress is not
    cancelled but left to finish with the next update (its result is dropped), because ccxt.pro
    gives every watcher of a subscription the same future: cancelling it would end the other
    watchers' streams too.
    """

    def __init__(
        self,
        bridge: AsyncioBridge,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        transform: Callable[[Any], T],
        map_error: Callable[[Exception], BaseException],
        buffer: int,
    ) -> None:
        self._bridge = bridge
        self._loop = loop
        self._fn = fn
        self._args = args
        self._transform = transform
        self._map_error = map_error
        self._buffer = buffer
        self._token = trio.lowlevel.current_trio_token()
        # Unbounded: the pump's count bounds it, and run_sync_soon callbacks cannot block.
        self._send, self._receive = trio.open_memory_channel[Any](math.inf)
        # Backpressure without a wake-up per result: the loop counts results delivered, trio
        # counts results received, and only a pump that found the buffer full asks trio for a
        # wake-up (``_pump_waiting``), which trio sends once (``_room_requested``). Each side
        # writes its own fields and reads the other's; the pump re-checks the counts after
        # announcing that it waits, so no wake-up is lost.
        self._delivered = 0  # loop thread
        self._received = 0  # trio thread
        self._pump_waiting = False  # loop thread
        self._room_requested = False  # trio thread sets, loop thread clears
        self._room: asyncio.Event | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closed = False  # by the consumer (trio thread)
        self._stopping = False  # the pump is to stop (loop thread)
        self._watching = False  # the pump is inside watch_* (loop thread)

    # On the loop thread.
    def _launch(self) -> None:
        self._room = asyncio.Event()
        self._pump = asyncio.ensure_future(self._run())
        self._bridge._in_flight += 1
        self._pump.add_done_callback(self._pump_done)

    def _pump_done(self, _: asyncio.Future[None]) -> None:
        self._bridge._in_flight -= 1

    async def _run(self) -> None:
        room = self._room
        assert room is not None
        try:
            while True:
                if self._delivered - self._received >= self._buffer:
                    room.clear()
                    self._pump_waiting = True
                    if self._delivered - self._received >= self._buffer:
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
                self._deliver(self._transform(value))
        except asyncio.CancelledError:
            self._deliver(_END)
            raise
        except Exception as exc:
            # After a stop, ccxt's close() rejects the pending watch: that is the end, not news.
            self._deliver(_END if self._stopping else _Failure(exc))
            return
        self._deliver(_END)

    def _deliver(self, item: Any) -> None:
        self._bridge._send(self._token, self._put, item)

    def _stop_pump(self) -> None:
        self._stopping = True
        # Cancel only a pump that waits for room: one inside watch_* awaits a ccxt.pro
        # future that other streams may share (see the class doc).
        if self._pump is not None and not self._watching:
            self._pump.cancel()

    def _make_room(self) -> None:
        self._room_requested = False
        if self._room is not None:
            self._room.set()

    # On the trio thread.
    def _put(self, item: Any) -> None:
        # Given to run_sync_soon: must never raise.
        try:
            self._send.send_nowait(item)
            if item is _END or isinstance(item, _Failure):
                self._send.close()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the consumer closed the stream; the result is not wanted
        except Exception:
            log.exception("ccxt bridge: could not hand a stream result to trio")

    async def receive(self) -> T:
        """The next result; raises the stream's error or ``EndOfChannel`` when it ended."""
        try:
            item = await self._receive.receive()
        except trio.EndOfChannel:
            raise
        if item is _END:
            raise trio.EndOfChannel
        if isinstance(item, _Failure):
            raise self._map_error(item.exc) from item.exc
        self._received += 1
        if self._pump_waiting and not self._room_requested:
            self._room_requested = True
            with contextlib.suppress(RuntimeError):  # the loop is closed; no pump left to feed
                self._loop.call_soon_threadsafe(self._make_room)
        return cast(T, item)

    def _stop(self) -> None:
        """End the stream from the producer side (the exchange is closing): the consumer gets
        what was already delivered, then ``EndOfChannel``."""
        try:
            self._loop.call_soon_threadsafe(self._stop_pump)
        except RuntimeError:
            # The loop is gone and cannot send the end marker: close the queue ourselves.
            self._send.close()

    async def aclose(self) -> None:
        """Stop the subscription (idempotent); see the class doc."""
        if not self._closed:
            self._closed = True
            self._receive.close()
            with contextlib.suppress(RuntimeError):  # the loop is closed, the pump with it
                self._loop.call_soon_threadsafe(self._stop_pump)
        await trio.lowlevel.checkpoint()


# The process-wide bridge (see the module doc).
_shared_lock = threading.Lock()
_shared: AsyncioBridge | None = None
_shared_users = 0


def acquire_shared_bridge() -> AsyncioBridge:
    """The process's shared bridge, started if needed; pair with :func:`release_shared_bridge`."""
    global _shared, _shared_users
    with _shared_lock:
        if _shared is None or not _shared.running:
            _shared = AsyncioBridge(name="vigil-ccxt").start()
            _shared_users = 0
        _shared_users += 1
        return _shared


async def release_shared_bridge(bridge: AsyncioBridge) -> None:
    """Give back a bridge from :func:`acquire_shared_bridge`; the last user closes it."""
    global _shared, _shared_users
    with _shared_lock:
        if bridge is not _shared:
            last = True  # already replaced: this one is no longer shared
        else:
            _shared_users -= 1
            last = _shared_users <= 0
            if last:
                _shared = None
    if last:
        await bridge.aclose()
    else:
        await trio.lowlevel.checkpoint()
