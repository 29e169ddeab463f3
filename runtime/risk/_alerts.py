"""Alerts: what a person watching a strategy must hear about, delivered to `on_alert` and,
with ``config={"webhook_url": url}``, POSTed as JSON.

Delivery never holds trading up: alerts wait in a bounded queue (the oldest are dropped, and
counted, when it is full), the webhook is posted from a worker thread with a short timeout, and
a failing webhook is logged at most once a minute. Nothing secret leaves: payloads are masked
like trace payloads, and the values of the ``VIGIL_*`` credential variables are masked too.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from runtime._errors import ConfigError
from traces import redact

log = logging.getLogger("vigil.alerts")

QUEUE_LIMIT = 256  # alerts kept for delivery; older ones are dropped (and counted) past it
WEBHOOK_TIMEOUT_S = 5.0
FAILURE_LOG_INTERVAL_S = 60.0
_SECRET_SUFFIXES = ("_API_KEY", "_SECRET", "_PASSWORD", "_UID", "_TOKEN")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. `kind` is "halt", "resume", "breach", "health", "unknown_outcome",
    "strategy_error" or "drift"; `data` holds the figures behind `message`."""

    kind: str
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)
    strategy: str = ""
    timestamp: int = 0  # ms, the strategy's clock

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "kind": self.kind,
            "message": self.message,
            "data": dict(self.data),
            "timestamp": self.timestamp,
        }


def _env_secrets() -> list[str]:
    return [
        v
        for k, v in os.environ.items()
        if k.startswith("VIGIL_") and k.endswith(_SECRET_SUFFIXES) and len(v) >= 4
    ]


def _mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def clean_alert(kind: str, message: str, data: Mapping[str, Any] | None, **meta: Any) -> Alert:
    """An `Alert` with every secret masked (keys, signatures, credential values)."""
    secrets = _env_secrets()
    masked = redact({"message": message, "data": dict(data or {})})
    text = json.dumps(masked["data"], default=str)
    return Alert(
        kind=kind,
        message=_mask(str(masked["message"]), secrets),
        data=json.loads(_mask(text, secrets)),
        **meta,
    )


class AlertQueue:
    """Alerts waiting for `on_alert`: bounded, drained by whoever runs the strategy's hooks."""

    def __init__(self) -> None:
        self.pending: collections.deque[Alert] = collections.deque()
        self.dropped = 0
        self.arrived = trio.Event()

    def put(self, alert: Alert) -> None:
        if len(self.pending) >= QUEUE_LIMIT:
            self.pending.popleft()
            self.dropped += 1
        self.pending.append(alert)
        self.arrived.set()

    def take(self) -> list[Alert]:
        out = list(self.pending)
        self.pending.clear()
        self.arrived = trio.Event()
        return out


class Webhook:
    """POSTs alerts as JSON to `url` in order, from one worker thread, never blocking the
    caller: `post` only queues (dropping the oldest past QUEUE_LIMIT); `run` delivers."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            scheme = url.split(":", 1)[0] if ":" in url else ""
            raise ConfigError(
                f"config webhook_url scheme {scheme!r} is not supported: use an http:// or "
                "https:// URL"
            )
        self.url = url
        self.queue = AlertQueue()
        self.sent = 0
        self.failed = 0
        self.attempted = trio.Event()  # set (and replaced) after each delivery attempt
        self._last_failure_log = -FAILURE_LOG_INTERVAL_S

    def post(self, alert: Alert) -> None:
        self.queue.put(alert)

    def _post_blocking(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
            response.read()

    def _failed(self, exc: BaseException) -> None:
        self.failed += 1
        now = time.monotonic()
        if now - self._last_failure_log >= FAILURE_LOG_INTERVAL_S:
            self._last_failure_log = now
            # The URL itself may carry a token: name only its host.
            host = urllib.parse.urlsplit(self.url).hostname
            log.warning(
                "alert webhook on %s failed (%s); %d failed so far, trading goes on",
                host,
                type(exc).__name__,
                self.failed,
            )

    async def run(self) -> None:
        """Deliver queued alerts until cancelled."""
        while True:
            await self.queue.arrived.wait()
            for alert in self.queue.take():
                body = json.dumps(alert.to_json()).encode()
                try:
                    await trio.to_thread.run_sync(self._post_blocking, body, abandon_on_cancel=True)
                    self.sent += 1
                except (OSError, urllib.error.URLError, ValueError) as exc:
                    self._failed(exc)
                self.attempted.set()
                self.attempted = trio.Event()
