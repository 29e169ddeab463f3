"""The ccxt exchange: vigil's exchange interface over ccxt, for trio code.

This package is the one place that imports ccxt (DESIGN §5). ccxt's asyncio client
(``ccxt.async_support`` and ``ccxt.pro``) runs on one asyncio loop that a trio system task
steps in trio's own thread (waiting on the loop's selector descriptor and timers between
steps), and trio reaches it through a bridge: a call parks the trio task until the loop step
that finishes it reschedules the task, with no thread wake-up; ``watch_*`` results arrive as
trio receive channels.

Public names:

- :class:`CcxtExchange`: one exchange account. ``async with CcxtExchange.open("binance",
  sandbox=True, margin=None, options={...}) as ex:`` (or ``await CcxtExchange.connect(...)`` and
  ``await ex.aclose()``). Credentials come from ``VIGIL_<EXCHANGE>_API_KEY`` / ``_SECRET`` /
  ``_PASSWORD`` only; ``VIGIL_<EXCHANGE>_URL`` moves every REST and websocket URL onto another
  host (the loopback exchange).
- :class:`Stream`: what ``ex.watch_orders(...)`` and the other ``watch_*`` return.
- :class:`RateLimit` and :class:`RateBudget`: the account's shared rate budget, which backs off
  on 429/418 until ``Retry-After`` has passed.
- :class:`AsyncioBridge`: the stepped loop (one per trio run is shared by default).
- :func:`map_ccxt_error`: the one mapping of ccxt's errors onto vigil's; :class:`Scrubber`.
- :func:`truncate_to_step`, :func:`round_to_tick`: ccxt's rounding, for the model's checks.

Everything loads on first use: a Sim run imports this package (for Live's and Paper's
wiring) but never uses it, and ccxt with its hundreds of exchange modules is ~100 MB.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.exchanges.ccxt._bridge import AsyncioBridge as AsyncioBridge
    from runtime.exchanges.ccxt._bridge import Stream as Stream
    from runtime.exchanges.ccxt._budget import RateBudget as RateBudget
    from runtime.exchanges.ccxt._budget import RateLimit as RateLimit
    from runtime.exchanges.ccxt._catalog import CCXT_VERSION as CCXT_VERSION
    from runtime.exchanges.ccxt._catalog import fetch_markets as fetch_markets
    from runtime.exchanges.ccxt._catalog import market_types as market_types
    from runtime.exchanges.ccxt._catalog import required_credentials as required_credentials
    from runtime.exchanges.ccxt._config import Credentials as Credentials
    from runtime.exchanges.ccxt._config import resolve_settings as resolve_settings
    from runtime.exchanges.ccxt._errors import Scrubber as Scrubber
    from runtime.exchanges.ccxt._errors import map_ccxt_error as map_ccxt_error
    from runtime.exchanges.ccxt._exchange import PRIVATE_METHODS as PRIVATE_METHODS
    from runtime.exchanges.ccxt._exchange import STREAM_METHODS as STREAM_METHODS
    from runtime.exchanges.ccxt._exchange import CcxtExchange as CcxtExchange
    from runtime.exchanges.ccxt._precision import round_to_tick as round_to_tick
    from runtime.exchanges.ccxt._precision import truncate_to_step as truncate_to_step

_LAZY = {
    "CCXT_VERSION": "._catalog",
    "fetch_markets": "._catalog",
    "market_types": "._catalog",
    "required_credentials": "._catalog",
    "resolve_settings": "._config",
    "round_to_tick": "._precision",
    "truncate_to_step": "._precision",
    "AsyncioBridge": "._bridge",
    "Stream": "._bridge",
    "RateBudget": "._budget",
    "RateLimit": "._budget",
    "Credentials": "._config",
    "Scrubber": "._errors",
    "map_ccxt_error": "._errors",
    "PRIVATE_METHODS": "._exchange",
    "STREAM_METHODS": "._exchange",
    "CcxtExchange": "._exchange",
}

__all__ = [
    "CCXT_VERSION",
    "PRIVATE_METHODS",
    "STREAM_METHODS",
    "AsyncioBridge",
    "CcxtExchange",
    "Credentials",
    "RateBudget",
    "RateLimit",
    "Scrubber",
    "Stream",
    "fetch_markets",
    "map_ccxt_error",
    "market_types",
    "required_credentials",
    "resolve_settings",
    "round_to_tick",
    "truncate_to_step",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value
