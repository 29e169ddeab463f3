"""The one tree of vigil's errors.

::

    VigilError
    ├── ConfigError                 bad strategy, mode, data or config input
    ├── OrderCheckFailed            a local check refused an order; carries ``rule``
    ├── StrategyStopped             an order sent by a strategy that `stop` is ending
    ├── ExchangeError               anything an exchange said or failed to say
    │   ├── NetworkError            retryable: timeouts, resets, 5xx
    │   │   └── RateLimited         429/418; carries ``retry_after`` seconds
    │   ├── AuthenticationError     bad key, signature or clock skew (not retryable)
    │   ├── OrderNotFound           the exchange has no such order
    │   └── OrderRejected           a definite "no" to an order (invalid price, amount, filters)
    │       └── InsufficientFunds   the account cannot pay for the order
    └── TraceError                  a trace cannot be opened, written or read
        └── ReplayMismatch          replayed state differs from the recorded state

Every message names the broken rule, the values involved and, where there is one, the fix.
"""

from __future__ import annotations


class VigilError(Exception):
    """Base class of every error vigil raises on purpose."""


class ConfigError(VigilError, ValueError):
    """Bad input to a constructor, loader or config: the message lists what is valid."""


class ExchangeError(VigilError):
    """An exchange refused, failed, or could not be reached."""


class NetworkError(ExchangeError):
    """A retryable failure: the request may or may not have reached the exchange."""


class RateLimited(NetworkError):
    """The exchange asked us to slow down (HTTP 429 or 418)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthenticationError(ExchangeError):
    """The exchange rejected the credentials or the signature. Retrying will not help."""


class OrderNotFound(ExchangeError):
    """The exchange knows no order with the given id or client id."""


class OrderRejected(ExchangeError):
    """The exchange definitely refused an order; nothing was placed."""


class InsufficientFunds(OrderRejected):
    """The account's free balance or margin cannot cover the order."""


class TraceError(VigilError):
    """A trace could not be opened, written or read."""


class ReplayMismatch(TraceError):
    """State rebuilt from a trace differs from the state recorded alongside it."""


class OrderCheckFailed(VigilError):
    """A local check refused an order before it reached the exchange (`call` returns None).

    `rule` names the check (e.g. "amount_min", "free_cash"); the message gives the values.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


class StrategyStopped(VigilError):
    """`call` was asked for a new order after `stop(s)`: nothing is sent once a stop is asked
    (cancels and `PositionClose` still work)."""
