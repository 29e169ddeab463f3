"""Fault injection for the loopback exchange: knobs a test turns, read by the server.

Every knob is safe to set from any thread (one lock guards the state) and takes effect on the
next request or event. A counted fault ("the next k requests") is consumed request by request,
so ``fail_next(2)`` fails exactly two requests whatever their order across threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["Faults", "RequestFault"]

_HTTP_ERRORS: Final = frozenset({500, 502, 503, 504})
# How often a paused user-data stream looks at its deadline again: a test may push it back or
# end it (`Faults.reset`) from another thread while the server waits.
_PAUSE_POLL_S: Final = 0.05


@dataclass(frozen=True, slots=True)
class RequestFault:
    """What the server does instead of answering one REST request."""

    status: int  # 5xx, 429 or 418
    retry_after_s: int | None = None
    path: str | None = None  # only requests to this path (e.g. "/api/v3/myTrades"); None: any
    method: str | None = None  # only requests with this HTTP method; None: any


class Faults:
    """Thread-safe fault knobs of one loopback exchange (``LoopbackExchange.faults``).

    - :attr:`latency_ms`: added before every REST reply and WebSocket API reply.
    - :meth:`fail_next`: HTTP 5xx, with a plain-text body as a gateway sends it, on the next
      ``k`` REST requests (nothing is executed).
    - :meth:`rate_limit_next`: HTTP 429 (or 418) with ``Retry-After`` on the next ``k``
      requests. A client that sends again before ``Retry-After`` has passed gets 418, the way
      Binance bans an IP that ignores a 429, so honouring the header is checkable.
    - :meth:`drop_next_order_response`: the next order POST is executed, then the connection is
      closed without a reply (``mode="close"``) or answered 500 with no body (``mode="500"``).
    - :meth:`close_websockets`: close every open WebSocket now.
    - :meth:`pause_user_data`: hold user-data events for ``seconds``, then deliver them in order.
    - :meth:`suppress_user_data`: never deliver the next ``k`` user-data events (a stream that
      silently lost them: only a REST read finds the change).
    - :meth:`delay_user_data_subscriptions`: a user-data subscription made from now on takes
      effect (and is acknowledged) only ``seconds`` later: a slow venue after a reconnect, when
      events it sends in between reach no stream.
    - :meth:`reset`: everything back to normal.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latency_ms = 0.0
        self._fail: list[RequestFault] = []
        self._drop: list[str] = []
        self._banned_until = 0.0  # clock() time before which an early retry gets 418
        self._pause_until = 0.0
        self._suppress = 0
        self._subscribe_delay_s = 0.0
        self._subscriptions_delayed = 0
        self._close_ws: Callable[[], None] | None = None
        self.clock: Callable[[], float] = time.monotonic  # time of bans and pauses; tests fake it

    # Knobs.
    @property
    def latency_ms(self) -> float:
        with self._lock:
            return self._latency_ms

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"latency_ms={value!r} must be >= 0 (milliseconds added per reply)")
        with self._lock:
            self._latency_ms = float(value)

    def fail_next(
        self, k: int = 1, *, status: int = 503, path: str | None = None, method: str | None = None
    ) -> None:
        """Answer the next ``k`` REST requests with HTTP ``status`` (500, 502, 503 or 504);
        with ``path`` (``"/api/v3/myTrades"``) and ``method`` (``"GET"``), only those."""
        if status not in _HTTP_ERRORS:
            raise ValueError(f"status {status} is not a 5xx this server sends; use 500-504")
        self._queue(k, RequestFault(status, path=path, method=method))

    def rate_limit_next(self, k: int = 1, *, retry_after_s: int = 1, status: int = 429) -> None:
        """Answer the next ``k`` requests with 429 (or 418) and ``Retry-After: retry_after_s``."""
        if status not in (418, 429):
            raise ValueError(f"status {status} is not a rate-limit status; use 429 or 418")
        if not (isinstance(retry_after_s, int) and retry_after_s >= 0):
            raise ValueError(
                f"retry_after_s={retry_after_s!r} must be a whole number of seconds (HTTP "
                "Retry-After carries integer seconds)"
            )
        self._queue(k, RequestFault(status, retry_after_s))

    @property
    def queued_request_faults(self) -> int:
        """How many counted request faults (5xx, 429) are still waiting for their request."""
        with self._lock:
            return len(self._fail)

    def drop_next_order_response(self, k: int = 1, *, mode: str = "close") -> None:
        """Execute the next ``k`` order POSTs but lose their replies (``"close"`` or ``"500"``)."""
        if mode not in ("close", "500"):
            raise ValueError(f"mode {mode!r} is not valid; use 'close' or '500'")
        with self._lock:
            self._drop.extend([mode] * self._count(k))

    def close_websockets(self) -> None:
        """Close every open WebSocket (market streams, user data, WebSocket API) now."""
        with self._lock:
            close = self._close_ws
        if close is None:
            raise RuntimeError("the loopback exchange is not running; start() it first")
        close()

    def pause_user_data(self, seconds: float) -> None:
        """Queue user-data events for ``seconds`` from now, then deliver them in order."""
        if not seconds >= 0:
            raise ValueError(f"seconds={seconds!r} must be >= 0")
        with self._lock:
            self._pause_until = max(self._pause_until, self.clock() + seconds)

    def suppress_user_data(self, k: int = 1) -> None:
        """Drop the next ``k`` user-data events of any account: they are never sent."""
        with self._lock:
            self._suppress += self._count(k)

    def take_suppressed(self) -> bool:
        """Whether the user-data event being published now is to be dropped."""
        with self._lock:
            if self._suppress <= 0:
                return False
            self._suppress -= 1
            return True

    def delay_user_data_subscriptions(self, seconds: float) -> None:
        """Until :meth:`reset`, hold each new user-data subscription ``seconds`` before it takes
        effect: Binance's WebSocket API ``userDataStream.subscribe`` (answered then), the
        handshake of a futures listenKey connection, Bybit's private ``subscribe``."""
        if not seconds >= 0:
            raise ValueError(f"seconds={seconds!r} must be >= 0")
        with self._lock:
            self._subscribe_delay_s = float(seconds)

    @property
    def subscriptions_delayed(self) -> int:
        """How many user-data subscriptions have been held so far (one is being held from the
        moment this counts it)."""
        with self._lock:
            return self._subscriptions_delayed

    def reset(self) -> None:
        with self._lock:
            self._suppress = 0
            self._subscribe_delay_s = 0.0
            self._latency_ms = 0.0
            self._fail.clear()
            self._drop.clear()
            self._banned_until = 0.0
            self._pause_until = 0.0

    # Read by the server.
    @staticmethod
    def _count(k: int) -> int:
        if not (isinstance(k, int) and k >= 0):
            raise ValueError(f"k={k!r} must be a non-negative number of requests")
        return k

    def _queue(self, k: int, fault: RequestFault) -> None:
        with self._lock:
            self._fail.extend([fault] * self._count(k))

    def take_request_fault(self, path: str = "", method: str = "") -> RequestFault | None:
        """The fault for the `method` request to `path` arriving now, if any (consumes one
        counted fault: the first queued one that applies to this request)."""
        now = self.clock()
        with self._lock:
            if now < self._banned_until:
                # Sent before Retry-After passed: Binance escalates to a ban.
                return RequestFault(418, max(1, round(self._banned_until - now + 0.5)))
            index = next(
                (
                    i
                    for i, f in enumerate(self._fail)
                    if f.path in (None, path) and f.method in (None, method)
                ),
                None,
            )
            if index is None:
                return None
            fault = self._fail.pop(index)
            if fault.retry_after_s is not None:
                self._banned_until = now + fault.retry_after_s
            return fault

    def take_drop(self) -> str | None:
        """How to lose the reply of the order POST arriving now, if at all."""
        with self._lock:
            return self._drop.pop(0) if self._drop else None

    def user_data_pause_s(self) -> float:
        """Seconds user-data events must still wait (0 when not paused)."""
        with self._lock:
            return max(self._pause_until - self.clock(), 0.0)

    def take_subscribe_delay_s(self) -> float:
        """Seconds to hold the user-data subscription being made now (counted when > 0)."""
        with self._lock:
            if self._subscribe_delay_s > 0:
                self._subscriptions_delayed += 1
            return self._subscribe_delay_s

    async def user_data_resumed(self) -> None:
        """On the server's loop: until user data is no longer paused (the pause over, or
        :meth:`reset`), within ~50 ms."""
        while (wait := self.user_data_pause_s()) > 0:  # noqa: ASYNC110 (a deadline, not an event)
            await asyncio.sleep(min(wait, _PAUSE_POLL_S))

    def _bind(self, close_ws: Callable[[], None] | None) -> None:
        with self._lock:
            self._close_ws = close_ws
