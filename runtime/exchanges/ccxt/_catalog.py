"""What ccxt knows about a venue before any connection: its id, the credentials it requires,
and a one-shot synchronous market load (for ``strategy(...)`` and ``vigil markets save``).

The load uses ccxt's synchronous client on purpose: it runs once, outside trio (or before the
runtime's trio tasks exist), and needs no bridge thread. It reads no credentials: markets are
public. ``VIGIL_<EXCHANGE>_URL`` moves it onto the loopback exchange like every other call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import ccxt

from runtime._errors import ConfigError, ExchangeError
from runtime.exchanges.ccxt._config import aim_client, env_name, resolve_settings
from runtime.exchanges.ccxt._errors import map_ccxt_error
from runtime.exchanges.ccxt._venues import BYBIT_OPTIONS, is_bybit

__all__ = [
    "CCXT_VERSION",
    "CREDENTIAL_ENV",
    "fetch_markets",
    "market_types",
    "required_credentials",
]

CCXT_VERSION: Final = ccxt.__version__
#: ccxt's ``requiredCredentials`` keys vigil reads, and the environment suffix of each.
CREDENTIAL_ENV: Final = {
    "apiKey": "API_KEY",
    "secret": "SECRET",
    "password": "PASSWORD",
    "uid": "UID",
}


def required_credentials(exchange_id: str) -> list[str]:
    """The ``VIGIL_<EXCHANGE>_*`` names ``exchange_id`` needs for private calls, from ccxt's
    ``requiredCredentials`` (OKX and KuCoin add ``_PASSWORD``, some venues ``_UID``)."""
    cls = getattr(ccxt, exchange_id, None)
    if cls is None or exchange_id not in ccxt.exchanges:
        raise ConfigError(f"exchange {exchange_id!r} is not a ccxt exchange id")
    required = cls().requiredCredentials
    unsupported = sorted(k for k, v in required.items() if v and k not in CREDENTIAL_ENV)
    if unsupported:
        raise ConfigError(
            f"exchange {exchange_id!r} needs credentials vigil does not read "
            f"({', '.join(unsupported)}); vigil trades venues that use API_KEY, SECRET, "
            "PASSWORD and UID"
        )
    return [env_name(exchange_id, CREDENTIAL_ENV[k]) for k, v in required.items() if v]


def market_types(exchange_id: str) -> tuple[bool | None, bool | None]:
    """Whether ccxt says ``exchange_id`` lists (spot, swap) markets; None where it does not say.
    ``binanceusdm`` is ``(False, True)``, ``kraken`` ``(True, False)``, ``bybit`` both."""
    has = getattr(ccxt, exchange_id)().has
    spot, swap = has.get("spot"), has.get("swap")
    return (None if spot is None else bool(spot), None if swap is None else bool(swap))


def fetch_markets(
    exchange: str,
    *,
    sandbox: bool = False,
    margin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_ms: int = 20_000,
) -> dict[str, dict[str, Any]]:
    """Every market of ``exchange`` (after the margin mapping), loaded now by ccxt's sync
    client: ccxt's unified market dicts by symbol.

    Raises ConfigError for a bad id, NetworkError (or another vigil ExchangeError) when the
    exchange cannot be reached; the message names the exchange and the operation.
    """
    settings = resolve_settings(
        exchange,
        sandbox=sandbox,
        margin=margin,
        options=None,
        config=None,
        env=os.environ if env is None else env,
    )
    cls = getattr(ccxt, settings.exchange_id)
    options = dict(BYBIT_OPTIONS) if is_bybit(settings.exchange_id) else {}
    client = cls({"timeout": timeout_ms, "options": options})
    try:
        aim_client(client, settings)
        try:
            markets: dict[str, dict[str, Any]] = client.load_markets()
        except Exception as exc:
            mapped = map_ccxt_error(
                exc, exchange=settings.exchange_id, operation="load_markets", scrub=str
            )
            if isinstance(mapped, ExchangeError):
                raise mapped from exc
            raise
        return dict(markets)
    finally:
        close = getattr(client, "close", None)
        if callable(close):
            close()
