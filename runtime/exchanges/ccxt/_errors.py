"""ccxt's errors as vigil's, and the scrubbing that keeps secrets out of messages and logs.

:func:`map_ccxt_error` is the one place that decides which vigil error (``runtime._errors``) a
ccxt exception becomes; callers ``raise map_ccxt_error(...) from exc``. ccxt puts request URLs
into some messages (``ExchangeNotAvailable("binance GET https://...&signature=...")``) and logs
request headers (``X-MBX-APIKEY``) at DEBUG, so every message vigil produces or forwards goes
through a :class:`Scrubber` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import aiohttp
import ccxt

from runtime._errors import (
    AuthenticationError,
    ExchangeError,
    InsufficientFunds,
    NetworkError,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)

__all__ = [
    "ORDER_OPERATIONS",
    "RETRY_AFTER_ATTR",
    "Scrubber",
    "map_ccxt_error",
    "retry_after_s",
    "scrub_exception_chain",
]

#: Attribute the rate budget's ``fetch`` wrapper sets on a ccxt 429/418 error: the seconds the
#: exchange asked us to wait (``Retry-After``), or None when it did not say.
RETRY_AFTER_ATTR: Final = "vigil_retry_after_s"
#: Operations whose ``BadRequest``/``OperationRejected`` is a refusal of an order.
ORDER_OPERATIONS: Final = frozenset({"create_order", "edit_order", "create_orders"})

_MASK: Final = "***"
# (pattern, replacement) applied after the literal secrets. The key=value forms cover URLs and
# form bodies, the quoted forms JSON and repr()'d dicts; the last one catches any long token
# (keys, secrets, signatures and listen keys are 60-64 letters and digits) that slipped past.
_PATTERNS: Final = (
    (re.compile(r"(signature=)[^&\s\"',}]+"), rf"\g<1>{_MASK}"),
    (re.compile(r"(listenKey=)[^&\s\"',}]+", re.IGNORECASE), rf"\g<1>{_MASK}"),
    (
        re.compile(r"([\"'](?:signature|listenKey|apiKey|secret)[\"']\s*:\s*[\"'])[^\"']*"),
        rf"\g<1>{_MASK}",
    ),
    (
        re.compile(r"(X-MBX-APIKEY[\"']?\s*[:=]\s*[\"']?)[^\"',\s}]+", re.IGNORECASE),
        rf"\g<1>{_MASK}",
    ),
    (re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{48,}(?![A-Za-z0-9])"), _MASK),
)


class Scrubber:
    """Removes API keys, secrets, signatures and listen keys from text.

    ``secrets`` are literal values (the account's key, secret and password); ``dynamic``, when
    given, is called on every use for values that change while running (ccxt's listen keys).
    Calling a scrubber never raises.
    """

    __slots__ = ("_dynamic", "_secrets")

    def __init__(
        self, secrets: Iterable[str | None] = (), dynamic: Callable[[], Iterable[str]] | None = None
    ) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._dynamic = dynamic

    def __call__(self, text: str) -> str:
        secrets = list(self._secrets)
        if self._dynamic is not None:
            # A scrubber must not fail; the patterns still apply.
            with contextlib.suppress(Exception):
                secrets.extend(s for s in self._dynamic() if s)
        for secret in secrets:
            text = text.replace(secret, _MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def __repr__(self) -> str:
        return f"Scrubber({len(self._secrets)} secrets)"


def scrub_exception_chain(exc: BaseException, scrub: Callable[[str], str]) -> None:
    """Scrub the string arguments of ``exc`` and of every exception it was raised from.

    A link whose text still holds a secret after that (aiohttp errors render their request's
    URL from attributes, not arguments) is cut off the chain, so no traceback can print it.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(scrub(a) if isinstance(a, str) else a for a in current.args)
        for link in ("__cause__", "__context__"):
            nxt = getattr(current, link)
            if nxt is None:
                continue
            nxt.args = tuple(scrub(a) if isinstance(a, str) else a for a in nxt.args)
            try:
                text = str(nxt)
            except Exception:
                text = ""
            if scrub(text) != text:
                setattr(current, link, None)
                current.__suppress_context__ = True
        current = current.__cause__ or current.__context__


def retry_after_s(headers: Mapping[str, Any] | None, message: str = "") -> float | None:
    """Seconds to wait from a rate-limited response: its ``Retry-After`` header (seconds or an
    HTTP date), else Bybit's ``X-Bapi-Limit-Reset-Timestamp`` (ms), else Binance's ``banned
    until <ms>`` in the message; None when none says."""
    for name, value in (headers or {}).items():
        if name.lower() == "x-bapi-limit-reset-timestamp" and str(value).strip().isdigit():
            return max(int(str(value).strip()) / 1000 - time.time(), 0.0)
        if name.lower() != "retry-after" or value is None:
            continue
        text = str(value).strip()
        try:
            return max(float(text), 0.0)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            continue
        return max(when.timestamp() - time.time(), 0.0)
    match = re.search(r"banned until (\d{13})", message)
    if match:
        return max(int(match.group(1)) / 1000 - time.time(), 0.0)
    return None


# Most specific first: the first ccxt class in an exception's MRO found here decides.
_KINDS: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (ccxt.RateLimitExceeded, "rate"),
    (ccxt.DDoSProtection, "rate"),
    (ccxt.ChecksumError, "network"),
    (ccxt.InvalidNonce, "clock"),
    (ccxt.NetworkError, "network"),
    (ccxt.OperationFailed, "network"),
    (ccxt.AuthenticationError, "auth"),
    (ccxt.OrderNotFound, "not_found"),
    (ccxt.OrderNotCached, "not_found"),
    (ccxt.InsufficientFunds, "funds"),
    (ccxt.InvalidOrder, "rejected"),
    (ccxt.BadRequest, "bad_request"),
    (ccxt.OperationRejected, "bad_request"),
    (ccxt.BaseError, "exchange"),
    # Not ccxt's, but what its transport lets through on some paths (websockets, timeouts).
    (aiohttp.ClientError, "network"),
    (asyncio.TimeoutError, "network"),
    (ConnectionError, "network"),
)


def _kind(exc: BaseException) -> str | None:
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            return kind
    return None


def map_ccxt_error(
    exc: BaseException,
    *,
    exchange: str,
    operation: str,
    scrub: Callable[[str], str],
    credentials_hint: str = "",
) -> ExchangeError | None:
    """The vigil error for ``exc``, raised by ccxt during ``operation`` on ``exchange``.

    Returns None for exceptions that are not an exchange's answer or failure (programming
    errors such as ``TypeError``), which the caller re-raises as they are. The mapping:

    - ``RateLimitExceeded``, ``DDoSProtection`` (HTTP 429/418) → :class:`RateLimited` with
      ``retry_after`` from the response's ``Retry-After`` (see :data:`RETRY_AFTER_ATTR`);
    - other ``NetworkError``\\ s and ``OperationFailed`` (timeouts, resets, 5xx, maintenance,
      bad responses) → :class:`NetworkError`: the request may or may not have executed;
    - ``AuthenticationError``, ``PermissionDenied``, ``AccountSuspended`` and ``InvalidNonce``
      (clock skew) → :class:`AuthenticationError`;
    - ``OrderNotFound`` → :class:`OrderNotFound`; ``InsufficientFunds`` →
      :class:`InsufficientFunds`; ``InvalidOrder`` and its kin (``OrderImmediatelyFillable``,
      ``OrderNotFillable``, ``DuplicateOrderId`` ...) → :class:`OrderRejected`;
    - ``BadRequest``/``OperationRejected`` → :class:`OrderRejected` for an order placement
      (:data:`ORDER_OPERATIONS`), :class:`ExchangeError` otherwise;
    - any other ccxt error → :class:`ExchangeError`.

    The original's message is scrubbed (``exc.args`` too, and its chain; see
    :func:`scrub_exception_chain`). ``credentials_hint`` (which environment variables to set)
    is appended to authentication errors.
    """
    kind = _kind(exc)
    if kind is None:
        scrub_exception_chain(exc, scrub)
        return None
    scrub_exception_chain(exc, scrub)
    try:
        detail = str(exc) or type(exc).__name__
    except Exception:
        detail = type(exc).__name__
    detail = scrub(detail)
    origin = f"{type(exc).__module__.split('.')[0]}.{type(exc).__name__}"
    where = f"{exchange} {operation}"
    if kind == "rate":
        retry_after = getattr(exc, RETRY_AFTER_ATTR, None)
        wait = f"retry after {retry_after:g} s" if retry_after is not None else "no Retry-After"
        return RateLimited(
            f"{where}: rate limited by the exchange ({wait}; every call on this account waits "
            f"until then): {detail} [{origin}]",
            retry_after=retry_after,
        )
    if kind == "network":
        return NetworkError(
            f"{where}: no definite answer, the request may or may not have executed: {detail} "
            f"[{origin}]; look an order up by its client order id before sending it again"
        )
    if kind == "clock":
        return AuthenticationError(
            f"{where}: the exchange refused the request's timestamp (clock skew): {detail} "
            f"[{origin}]; sync the system clock or set options={{'adjustForTimeDifference': True}}"
        )
    if kind == "auth":
        hint = f"; {credentials_hint}" if credentials_hint else ""
        return AuthenticationError(
            f"{where}: the exchange refused the credentials or permissions: {detail} "
            f"[{origin}]{hint}"
        )
    if kind == "not_found":
        return OrderNotFound(f"{where}: no such order on the exchange: {detail} [{origin}]")
    if kind == "funds":
        return InsufficientFunds(
            f"{where}: the account cannot pay for the order: {detail} [{origin}]"
        )
    if kind == "rejected" or (kind == "bad_request" and operation in ORDER_OPERATIONS):
        return OrderRejected(f"{where}: the exchange rejected the order: {detail} [{origin}]")
    return ExchangeError(f"{where}: {detail} [{origin}]")
