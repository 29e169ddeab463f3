"""The trio ↔ asyncio bridge: one asyncio loop in one helper thread, driven from trio.

ccxt's asyncio client (``ccxt.async_support``, ``ccxt.pro``) binds its aiohttp session, its
websockets and its futures to the loop it first runs on, so every ccxt object lives on the
bridge's loop: created there, used there, closed there (DESIGN §5). trio talks to that loop in
two ways:

- :meth:`AsyncioBridge.run` submits one coroutine (``loop.call_soon_threadsafe``) and parks the
  trio task (``wait_task_rescheduled``); the asyncio task's outcome comes back through
  ``TrioToken.run_sync_soon``. No thread ever blocks on the other.
- :meth:`AsyncioBridge.stream` runs a pump task on the loop that awaits a ``watch_*`` coroutine
  again and again and hands each result to trio, as a :class:`Stream` (a trio
  ``ReceiveChannel``).

**Batched hand-over.** Each side wakes the other at most once per scheduling round, just before
it waits for I/O itself: trio through an instrument's ``before_io_wait`` (:class:`_Flusher`),
asyncio through its selector (:class:`_FlushingSelector`). Everything submitted or finished in
the round goes across together, and the woken thread finds the GIL free.

**Cancellation crosses both ways.** Cancelling the trio caller cancels the asyncio task (and with
it the HTTP request or the wait in the rate budget); the trio task resumes once the asyncio task
has actually finished, so nothing keeps running behind a cancelled call. A call cancelled before
it reached the loop is never sent. If the request completed before the cancellation reached it,
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
import selectors
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, TypeVar, cast

import outcome
import trio

from runtime._errors import NetworkError

__all__ = ["AsyncioBridge", "Stream", "acquire_shared_bridge", "release_shared_bridge"]

log = logging.getLogger("vigil.ccxt")

T = TypeVar("T")
_START_TIMEOUT_S: Final = 10.0
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


class AsyncioBridge:
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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _main(self) -> None:
        loop = asyncio.SelectorEventLoop(_FlushingSelector(self._flush))
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
                self._flush()  # the last outcomes (the loop no longer selects)
                asyncio.set_event_loop(None)
                loop.close()

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
        call = _Call(self, loop, fn, args)
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
        return cast(T, await trio.lowlevel.wait_task_rescheduled(call.abort))

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

    def _drain_inbox(self) -> None:
        # On the loop thread.
        self._inbox_scheduled = False
        inbox = self._inbox
        while inbox:
            inbox.popleft().launch()

    def _send(
        self, token: trio.lowlevel.TrioToken, callback: Callable[[Any], None], arg: Any
    ) -> None:
        # On the loop thread: queue ``callback(arg)`` for the trio run of ``token``.
        batch = self._outgoing.get(token)
        if batch is None:
            batch = self._outgoing[token] = []
        batch.append((callback, arg))

    def _flush(self) -> None:
        # On the loop thread, just before it waits for I/O (see _FlushingSelector): one
        # wake-up per trio run per iteration, sent when this thread is about to release the
        # GIL, so the woken trio thread does not wait for it. Must never raise.
        if not self._outgoing:
            return
        outgoing, self._outgoing = self._outgoing, {}
        for token, batch in outgoing.items():
            try:
                token.run_sync_soon(_deliver_batch, batch)
            except trio.RunFinishedError:
                pass  # that trio run has ended; nobody is left to resume
            except Exception:
                log.exception("ccxt bridge: could not hand results back to trio")

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
    """The loop's selector, calling ``before_select`` each time the loop is about to wait."""

    def __init__(self, before_select: Callable[[], None]) -> None:
        super().__init__()
        self._before_select = before_select

    def select(self, timeout: float | None = None) -> Any:
        self._before_select()
        return super().select(timeout)


class _Flusher(trio.abc.Instrument):
    """Per trio run: before trio waits for I/O, hand the calls submitted since to the loop.

    Batching both ways (see :meth:`AsyncioBridge._flush`) means one wake-up of the other thread
    per scheduling round instead of one per call, sent when this thread is about to release
    the GIL. Instrument hooks must not raise; flushing does not.
    """

    def __init__(self) -> None:
        self.bridges: set[AsyncioBridge] = set()

    def before_io_wait(self, timeout: float) -> None:
        for bridge in self.bridges:
            bridge._flush_inbox()


_FLUSHER: trio.lowlevel.RunVar[_Flusher] = trio.lowlevel.RunVar("vigil_ccxt_bridge_flusher")


def _deliver_batch(batch: list[tuple[Callable[[Any], None], Any]]) -> None:
    # On the trio thread, given to run_sync_soon: must never raise (no callback does).
    for callback, arg in batch:
        callback(arg)


class _Call:
    """One :meth:`AsyncioBridge.run` call: launched on the loop, resumed in trio."""

    __slots__ = ("_aborted", "_args", "_atask", "_bridge", "_cancel_requested", "_delivered",
                 "_fn", "_loop", "_raise_cancel", "_task", "_token")  # fmt: skip

    def __init__(
        self,
        bridge: AsyncioBridge,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
    ) -> None:
        self._bridge = bridge
        self._loop = loop
        self._fn = fn
        self._args = args
        self._token = trio.lowlevel.current_trio_token()
        self._task = trio.lowlevel.current_task()
        self._atask: asyncio.Future[Any] | None = None
        self._raise_cancel: Any = None
        self._aborted = False
        self._cancel_requested = False  # loop thread: trio cancelled before the launch
        self._delivered = False  # set on the loop once the outcome is on its way to trio

    # On the loop thread.
    def launch(self) -> None:
        if self._cancel_requested:  # cancelled in trio before it was sent: send nothing
            self._delivered = True
            self._bridge._send(self._token, self._resume, None)
            return
        self._bridge._in_flight += 1
        self._atask = self._loop.create_task(self._drive())

    async def _drive(self) -> None:
        # The hand-back happens here rather than in a done callback, which asyncio would run
        # one loop iteration later: that iteration was a measurable share of a round trip.
        result: outcome.Outcome[Any] | None = None  # None: cancelled, or the outcome is lost
        try:
            value = await self._fn(*self._args)
        except asyncio.CancelledError:
            pass  # nobody awaits this task: the cancellation is reported to trio instead
        except Exception as exc:
            result = outcome.Error(exc)
        else:
            result = outcome.Value(value)
        finally:
            self._bridge._in_flight -= 1
            self._delivered = True
            self._bridge._send(self._token, self._resume, result)

    def _cancel(self) -> None:
        self._cancel_requested = True
        if self._atask is not None:
            self._atask.cancel()

    # On the trio thread.
    def abort(self, raise_cancel: Any) -> trio.lowlevel.Abort:
        self._raise_cancel = raise_cancel
        self._aborted = True
        try:
            self._bridge._inbox.remove(self)
        except ValueError:
            pass  # already taken by the loop: cancel it there
        else:
            return trio.lowlevel.Abort.SUCCEEDED  # never sent
        try:
            self._loop.call_soon_threadsafe(self._cancel)
        except RuntimeError:
            # The loop is closed: nothing more runs there. If the outcome was sent, it will
            # resume us; otherwise nobody will, so let trio raise Cancelled now.
            return trio.lowlevel.Abort.FAILED if self._delivered else trio.lowlevel.Abort.SUCCEEDED
        return trio.lowlevel.Abort.FAILED

    def refuse(self, error: Exception) -> None:
        """Fail a call that was never launched (from any thread)."""
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._resume, outcome.Error(error))

    def _resume(self, result: outcome.Outcome[Any] | None) -> None:
        # Given to run_sync_soon: must never raise.
        try:
            if result is None:
                if self._aborted:
                    result = outcome.capture(self._raise_cancel)
                else:
                    result = outcome.Error(
                        NetworkError(
                            f"bridge {self._bridge.name!r} closed while a call was in flight; its "
                            "outcome is unknown (look an order up by client order id)"
                        )
                    )
            trio.lowlevel.reschedule(self._task, result)
        except Exception:
            log.exception("ccxt bridge: could not resume a trio task")


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
        # Unbounded: the pump's credits bound it, and run_sync_soon callbacks cannot block.
        self._send, self._receive = trio.open_memory_channel[Any](math.inf)
        self._credits: asyncio.Semaphore | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closed = False  # by the consumer (trio thread)
        self._stopping = False  # the pump is to stop (loop thread)
        self._watching = False  # the pump is inside watch_* (loop thread)

    # On the loop thread.
    def _launch(self) -> None:
        self._credits = asyncio.Semaphore(self._buffer)
        self._pump = asyncio.ensure_future(self._run())
        self._bridge._in_flight += 1
        self._pump.add_done_callback(self._pump_done)

    def _pump_done(self, _: asyncio.Future[None]) -> None:
        self._bridge._in_flight -= 1

    async def _run(self) -> None:
        credits = self._credits
        assert credits is not None
        try:
            while True:
                await credits.acquire()  # no suspension while the consumer keeps up
                if self._stopping:
                    break
                self._watching = True
                try:
                    value = await self._fn(*self._args)
                finally:
                    self._watching = False
                if self._stopping:
                    break
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
        # Cancel only a pump that waits for credits: one inside watch_* awaits a ccxt.pro
        # future that other streams may share (see the class doc).
        if self._pump is not None and not self._watching:
            self._pump.cancel()

    def _release_credit(self) -> None:
        if self._credits is not None:
            self._credits.release()

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
        with contextlib.suppress(RuntimeError):  # the loop is closed; no pump left to feed
            self._loop.call_soon_threadsafe(self._release_credit)
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
