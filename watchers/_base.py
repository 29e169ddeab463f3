"""The watcher loop: websocket first, REST as the truth, never a silent gap.

A watcher is ``async def run(self, send, *, task_status)``, started with ``nursery.start``. It
sends ``(kind, payload)`` reports ("order", "trade", "balance", "position") into `send`; one
consumer applies them to the strategy, so state changes stay serial.

Each watcher:

* opens its websocket stream, if the exchange has one, waits until the venue has its
  subscription, does a REST sync (`gap_fill`) and reports `task_status.started()` once that
  worked;
* then reads the stream, or polls REST every ``poll_interval_s`` when there is none;
* after a stream failure, reconnects with exponential backoff, waits for the subscription
  again, and fills the gap from REST;
* after a silence longer than ``stall_timeout_s`` while the runtime expects news (an order
  was sent, a fill is due), fills the gap from REST and is *stale* until the stream speaks.

Health: ``healthy`` (stream or poll up to date), ``reconnecting`` (stream down, retrying),
``stale`` (the stream is silent while REST shows changes it has not delivered).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from runtime._errors import (
    AuthenticationError,
    ConfigError,
    ExchangeError,
    NetworkError,
    RateLimited,
)
from runtime.exchanges._interface import StreamingExchange
from runtime.model._modes import WatcherConfig as WatcherConfig

log = logging.getLogger("vigil.watchers")

HEALTHY = "healthy"
RECONNECTING = "reconnecting"
STALE = "stale"

Report = tuple[str, Any]
Send = trio.MemorySendChannel[Report]


class Watcher:
    """Base class: subclasses give `open_stream`, `gap_fill` and `reports`."""

    name = "watcher"

    def __init__(
        self,
        exchange: StreamingExchange,
        config: WatcherConfig,
        on_event: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.exchange = exchange
        self.config = config
        self.health = RECONNECTING
        self.last_message = -math.inf  # trio time of the last stream message
        self.expect_since: float | None = None  # news expected since (trio time)
        self.reconnects = 0
        self.gap_fills = 0
        self._on_event = on_event or (lambda kind, info: None)
        self._scope: trio.CancelScope | None = None

    # Subclass hooks.
    #: The ``watch_*`` method `open_stream` calls, when the exchange must be told to wait for
    #: its subscription (:meth:`run`).
    stream_method: str | None = None

    def open_stream(self) -> Any | None:
        """The websocket stream, or None to poll."""
        return None

    async def gap_fill(self, send: Send) -> None:
        """Send the REST truth for this watcher's scope."""
        raise NotImplementedError

    def reports(self, message: Any) -> list[Report]:
        """Reports for one stream message."""
        raise NotImplementedError

    # The runtime tells a watcher when it expects news (an order sent, a fill due).
    def expect(self) -> None:
        if self.expect_since is None:
            self.expect_since = trio.current_time()
        if self._scope is not None:  # wake the stream read at the new stall deadline
            self._scope.deadline = min(self._scope.deadline, self._stall_deadline())

    def _heard(self) -> None:
        self.last_message = trio.current_time()
        self.expect_since = None
        self._set_health(HEALTHY)

    def _set_health(self, health: str) -> None:
        if health != self.health:
            self.health = health
            self._on_event("health", {"watcher": self.name, "health": health})

    async def _sync(self, send: Send, why: str) -> None:
        await self.gap_fill(send)
        self.gap_fills += 1
        self._on_event("gap_fill", {"watcher": self.name, "why": why})

    async def run(self, send: Send, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Subscribe, sync from REST, report started, then follow the stream (or poll) until
        cancelled. The stream opens before the REST sync, so an event between the two is
        buffered, not lost: some venues subscribe private topics per call (ccxt's Bybit sends
        ``order`` and ``execution`` subscriptions on the first ``watch_*``), and the first
        order goes out as soon as this watcher reports started."""
        first = self._open()
        try:
            if first is not None:
                await self._subscribed(first)
            await self._sync(send, "start")
        except BaseException:
            if first is not None:
                with trio.CancelScope(shield=True):
                    await first.aclose()
            raise
        self._set_health(HEALTHY)
        task_status.started()
        backoff = self.config.backoff_initial_s
        while True:
            stream, first = (first, None) if first is not None else (self._open(), None)
            if stream is None:
                await self._poll(send)
                return
            try:
                async with stream:
                    if self.reconnects:
                        await self._subscribed(stream)
                        await self._sync(send, "reconnect")
                    self._set_health(HEALTHY)
                    backoff = self.config.backoff_initial_s
                    await self._follow(stream, send)
            except AuthenticationError:
                raise  # retrying cannot help; let the strategy see it
            except (ExchangeError, trio.BrokenResourceError) as exc:
                self._set_health(RECONNECTING)
                self.reconnects += 1
                self._on_event("reconnect", {"watcher": self.name, "error": str(exc)})
                delay = exc.retry_after if isinstance(exc, RateLimited) and exc.retry_after else 0
                await trio.sleep(max(backoff, delay))
                backoff = min(backoff * 2, self.config.backoff_max_s)

    async def _subscribed(self, stream: Any) -> None:
        """Until the venue has the subscription of `stream`, just opened, or it ended: a REST
        read made earlier would miss an event sent between it and the subscription, one that
        reaches no stream either (a reconnect subscribes again, and a venue may take its
        time)."""
        subscribed = getattr(self.exchange, "subscribed", None)
        if self.stream_method and subscribed is not None:
            await subscribed(self.stream_method, stream)

    def _open(self) -> Any | None:
        try:
            return self.open_stream()
        except ConfigError:
            return None

    async def _follow(self, stream: Any, send: Send) -> None:
        """Read the stream; on a stall while news is expected, gap-fill and mark stale.

        Messages that have already arrived are taken without waiting (``receive_nowait``, when
        the stream has it), and reports go out without waiting while the consumer has room:
        a burst costs one trio scheduling step, not one per message and report. The stall
        deadline is one cancel scope's, moved as news is expected or heard, and left only on
        a stall or a full consumer: a scope per message cost more than the message's own
        work on the trio side (measured)."""
        waiting = getattr(stream, "receive_nowait", None)
        while True:
            backlog: list[Report] = []
            with trio.CancelScope(deadline=self._stall_deadline()) as scope:
                self._scope = scope
                # No checkpoint between a message and the next receive, so the deadline can
                # only pass (and cancel the scope) while the receive waits.
                while not scope.cancel_called:
                    message = await stream.receive()
                    backlog = self._hand_on(message, send, waiting)
                    if backlog:
                        break  # the consumer is full: wait for it outside the deadline
                    deadline = self._stall_deadline()
                    if deadline != scope.deadline:
                        scope.deadline = deadline
            self._scope = None
            for report in backlog:
                await send.send(report)
            # `cancel_called`, not `cancelled_caught`: a deadline already past when the scope
            # opens (news expected while this waited outside it, on the consumer or a REST read)
            # ends the loop above before any checkpoint, with nothing caught; going round again
            # would then spin without one and freeze the whole run.
            if scope.cancel_called:
                self._set_health(STALE)
                await self._sync(send, "stall")
                self.expect_since = None  # REST caught up; stale until the stream speaks

    def _hand_on(self, message: Any, send: Send, waiting: Any) -> list[Report]:
        """Hand on the reports of `message` and of the messages queued behind it; the reports
        the consumer had no room for, in order (the rest of the burst stays queued)."""
        while True:
            self._heard()
            reports = self.reports(message)
            for i, report in enumerate(reports):
                try:
                    send.send_nowait(report)
                except trio.WouldBlock:
                    return reports[i:]
            if waiting is None:
                return []
            try:
                message = waiting()
            except trio.WouldBlock:
                return []

    def _stall_deadline(self) -> float:
        if self.expect_since is None:
            return math.inf
        return self.expect_since + self.config.stall_timeout_s

    async def _poll(self, send: Send) -> None:
        while True:
            await trio.sleep(self.config.poll_interval_s)
            try:
                await self._sync(send, "poll")
                self._heard()
            except AuthenticationError:
                raise
            except ExchangeError as exc:
                self._set_health(RECONNECTING)
                self._on_event("error", {"watcher": self.name, "error": str(exc)})


# How many times a REST read is tried, and the longest wait between tries: ~14 s in all, so a
# start or a gap fill rides out a burst of 5xx answers instead of ending the run (the soak met
# bursts that outlasted five tries within 3 s).
RETRY_ATTEMPTS = 10
RETRY_MAX_BACKOFF_S = 2.0


async def retrying(
    fn: Callable[[], Awaitable[Any]], *, attempts: int = RETRY_ATTEMPTS, backoff_s: float = 0.2
) -> Any:
    """Call a REST function, retrying network errors (waits double from `backoff_s`, at most
    RETRY_MAX_BACKOFF_S) and honouring Retry-After."""

    for attempt in range(attempts):
        try:
            return await fn()
        except NetworkError as exc:
            if attempt == attempts - 1:
                raise
            delay = exc.retry_after if isinstance(exc, RateLimited) and exc.retry_after else 0
            await trio.sleep(max(min(backoff_s * 2**attempt, RETRY_MAX_BACKOFF_S), delay))
    raise AssertionError("unreachable")
