"""The process's persistent trio loop on a background thread, shared by IPython, `Session` and
``start(s, foreground=False)``.

A background task that fails is logged and its exception kept on the strategy
(``s.background_error``); it never takes the loop down.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import trio

from runtime._errors import ConfigError
from runtime.engine._strategy import Strategy, runtime_of

log = logging.getLogger("vigil")
T = TypeVar("T")


class BackgroundLoop:
    """A trio event loop on a daemon thread, with a nursery for background tasks."""

    def __init__(self) -> None:
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="vigil-trio", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        trio.run(self._amain)

    async def _amain(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await trio.sleep_forever()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def in_loop(self) -> bool:
        """True when called from this loop's own thread."""
        return threading.current_thread() is self._thread

    def run(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await afn(*args)`` on the loop from another thread and return its result.
        Raises the call's exception; a KeyboardInterrupt here does not cancel the call."""
        if self.in_loop():
            raise ConfigError("BackgroundLoop.run() called from the loop itself: use await")
        return trio.from_thread.run(afn, *args, trio_token=self._token)

    def run_coroutine(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await an existing coroutine object on the loop (IPython's cells are these)."""

        async def await_it() -> T:
            return await coro

        return self.run(await_it)

    def spawn(
        self,
        name: str,
        afn: Callable[..., Awaitable[Any]],
        *args: Any,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Start ``afn(*args)`` as a background task; returns at once. Its exception is logged
        and passed to `on_error` instead of stopping the loop."""

        async def guarded() -> None:
            try:
                await afn(*args)
            except Exception as exc:
                log.error("background task %s failed: %r", name, exc, exc_info=exc)
                if on_error is not None:
                    on_error(exc)

        assert self._nursery is not None
        assert self._token is not None
        nursery = self._nursery

        def start_it() -> None:
            # Runs as a run_sync_soon callback, which must never raise.
            try:
                nursery.start_soon(guarded, name=name)
            except Exception as exc:
                log.error("could not start background task %s: %r", name, exc)

        if self.in_loop():
            start_it()
        else:
            self._token.run_sync_soon(start_it)

    def close(self) -> None:
        """Cancel every background task and stop the loop thread."""
        if not self.alive or self._nursery is None or self._token is None:
            return
        nursery = self._nursery
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(nursery.cancel_scope.cancel)
        self._thread.join(timeout=10)


_loop: BackgroundLoop | None = None
_lock = threading.Lock()


def background_loop(create: bool = True) -> BackgroundLoop | None:
    """The process's background loop, started on first use."""
    global _loop
    with _lock:
        if (_loop is None or not _loop.alive) and create:
            _loop = BackgroundLoop()
        return _loop


def spawn_strategy(s: Strategy, afn: Callable[..., Awaitable[Any]]) -> None:
    """Run ``afn(s)`` in the background loop (for `start(s, foreground=False)`)."""
    loop = background_loop(create=False)
    if loop is None or not loop.alive:
        raise ConfigError(
            "start(s, foreground=False) needs the background loop: in IPython run "
            "`%load_ext runtime` first; in a script use runtime.Session"
        )

    def keep(exc: BaseException) -> None:
        runtime_of(s).background_error = exc

    loop.spawn(f"strategy {runtime_of(s).name}", afn, s, on_error=keep)
