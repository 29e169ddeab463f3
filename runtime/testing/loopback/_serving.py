"""What every loopback dialect shares: its server thread and asyncio loop, the aiohttp app
that routes every request to the dialect's `_dispatch`, bars that advance on their own, and
the WebSocket connections' writers. A dialect gives `_dispatch` and `_advance`."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Self, TypeVar

from aiohttp import web

from runtime.testing.loopback._auth import Credentials
from runtime.testing.loopback._faults import Faults

log = logging.getLogger("vigil.loopback")

T = TypeVar("T")

START_TIMEOUT_S: Final = 10.0


class ServedExchange:
    """The serving half of a loopback exchange (see the module docstring)."""

    venue_name = "loopback"  # for log lines and the thread's name: "Binance", "Bybit"

    _conns: set[Any]

    def _init_serving(
        self,
        *,
        api_key: str | None,
        secret: str | None,
        host: str,
        port: int,
        bar_interval_ms: float | None,
    ) -> None:
        if (api_key is None) != (secret is None):
            raise ValueError("give both api_key and secret, or neither (to generate a pair)")
        if bar_interval_ms is not None and not bar_interval_ms > 0:
            raise ValueError(
                f"bar_interval_ms={bar_interval_ms!r} must be positive, or None for manual bars"
            )
        self.credentials = (
            Credentials(api_key, secret)
            if api_key is not None and secret is not None
            else Credentials.generate()
        )
        self.faults = Faults()
        self.host = host
        self.port = port
        self.bar_interval_ms = bar_interval_ms
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop_event: asyncio.Event | None = None
        self.base_url: str | None = None

    # The dialect's.
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def _advance(self, n: int) -> None:
        raise NotImplementedError

    # Lifecycle.
    def start(self) -> str:
        """Start serving; returns the base URL, e.g. ``"http://127.0.0.1:54321"``."""
        if self._thread is not None:
            raise RuntimeError("this loopback exchange is already started; create another one")
        name = f"vigil-loopback-{self.venue_name.lower()}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError(f"the loopback exchange did not start in {START_TIMEOUT_S}s")
        if self._error is not None:
            raise RuntimeError(f"the loopback exchange failed to start: {self._error}") from (
                self._error
            )
        assert self.base_url is not None
        return self.base_url

    def stop(self) -> None:
        """Close every connection and stop the server thread (idempotent)."""
        loop, stop = self._loop, self._stop_event
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(START_TIMEOUT_S)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:
            if self._ready.is_set():
                log.exception("loopback: the server stopped on an error")
            self._error = exc  # reported by start(), which is waiting
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.base_url = f"http://{self.host}:{runner.addresses[0][1]}"
        self.faults._bind(self._close_all_soon)
        ticker: asyncio.Task[None] | None = None
        if self.bar_interval_ms is not None:
            ticker = asyncio.create_task(self._auto_advance(self.bar_interval_ms))
        log.info("loopback %s exchange listening on %s", self.venue_name, self.base_url)
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            if ticker is not None:
                ticker.cancel()
            self.faults._bind(None)
            await self._close_all()
            await runner.cleanup()
            log.info("loopback %s exchange on %s stopped", self.venue_name, self.base_url)

    async def _auto_advance(self, interval_ms: float) -> None:
        next_at = time.monotonic()
        while True:
            # A steady cadence; after a stall (a blocked loop) it resumes instead of bursting.
            next_at = max(next_at + interval_ms / 1000, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())
            try:
                self._advance(1)
            except Exception:
                log.exception("loopback: advancing the market failed; trying again next bar")

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server loop and return its result (from any thread)."""
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the loopback exchange is not running; start() it first")
        if threading.current_thread() is self._thread:
            return fn()

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(START_TIMEOUT_S)

    # Control (any thread).
    def advance(self, n: int = 1) -> None:
        """Close ``n`` bars: fill resting orders, print trades, update books and tickers."""
        if not (isinstance(n, int) and n >= 0):
            raise ValueError(f"n={n!r} must be a non-negative number of bars")
        self._on_loop(lambda: self._advance(n))

    # WebSocket connections.
    async def _writer(self, conn: Any) -> None:
        while True:
            message = await conn.out.get()
            if message is None or conn.ws.closed:
                break
            try:
                await conn.ws.send_str(message)
            except (ConnectionError, RuntimeError):
                break
        if not conn.ws.closed:
            await conn.ws.close()

    async def _close_all(self) -> None:
        for conn in list(self._conns):
            conn.out.put_nowait(None)
            await conn.ws.close()

    def _close_all_soon(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            raise RuntimeError("the loopback exchange is not running; start() it first")
        future = asyncio.run_coroutine_threadsafe(self._close_all(), loop)
        if threading.current_thread() is not self._thread:
            future.result(START_TIMEOUT_S)
