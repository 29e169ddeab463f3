"""Where an exchange account's settings come from: the strategy, and the environment.

The strategy gives the exchange id, ``sandbox``, ``margin`` and ccxt ``options``. Credentials and
the URL override come from the environment only, never from a strategy file:

- ``VIGIL_<EXCHANGE>_API_KEY``, ``VIGIL_<EXCHANGE>_SECRET``, and ``VIGIL_<EXCHANGE>_PASSWORD`` /
  ``VIGIL_<EXCHANGE>_UID`` where ccxt's ``requiredCredentials`` asks for them (OKX, KuCoin ...);
- ``VIGIL_<EXCHANGE>_URL``: every REST and websocket base URL of the exchange moves onto that
  origin (how a strategy reaches the loopback exchange: ``vigil exchange serve`` prints them).

``<EXCHANGE>`` is the upper-cased ccxt id of the exchange actually opened: a margin strategy on
"binance" trades USDⓈ-M futures, so it reads ``VIGIL_BINANCEUSDM_*``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import ccxt

from runtime._errors import ConfigError
from runtime.exchanges.ccxt._urls import point_ccxt_at

__all__ = ["MARGIN_VENUES", "Credentials", "Settings", "env_name", "resolve_settings"]

#: The ccxt exchange a margin strategy trades, by the exchange it names (isolated or cross
#: margin on one-way perpetuals; DESIGN §2). Others trade margin on the exchange they name.
MARGIN_VENUES: Final = {"binance": "binanceusdm"}
_MARGIN_MODES: Final = (None, "isolated", "cross")
# ccxt constructor keys vigil refuses from a strategy, and why.
_CREDENTIAL_KEYS: Final = frozenset(
    {
        "apiKey",
        "secret",
        "password",
        "uid",
        "login",
        "privateKey",
        "walletAddress",
        "token",
        "twofa",
        "accountId",
    }
)
_OWNED_KEYS: Final = {
    "verbose": "it prints signed requests (keys and signatures) to stdout; log "
    "'vigil.ccxt.wire' at DEBUG instead",
    "logger": "vigil installs a logger that scrubs secrets ('vigil.ccxt.wire')",
    "enableRateLimit": "vigil's rate budget replaces ccxt's throttle; pass rate_limit=",
    "rateLimit": "pass rate_limit=RateLimit(...) to CcxtExchange.open",
    "options": "pass ccxt options as options=",
    "asyncio_loop": "the bridge's loop owns every ccxt object",
    "session": "the bridge's loop owns every ccxt object",
}


def env_name(exchange_id: str, what: str) -> str:
    """``VIGIL_<EXCHANGE>_<WHAT>``, e.g. ``env_name("binanceusdm", "API_KEY")``."""
    return f"VIGIL_{exchange_id.upper()}_{what}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """An account's key, secret and (for some exchanges) password and uid; ``repr`` hides
    them."""

    api_key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    uid: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={'set' if getattr(self, name) else 'missing'}"
            for name in ("api_key", "secret", "password", "uid")
        )
        return f"Credentials({shown})"

    def values(self) -> tuple[str | None, ...]:
        return (self.api_key, self.secret, self.password, self.uid)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything needed to build one account's ccxt object (resolved, validated)."""

    exchange_id: str  # the ccxt id opened (after the margin mapping)
    requested: str  # the id the strategy named
    sandbox: bool
    margin: str | None
    options: Mapping[str, Any]
    config: Mapping[str, Any]
    credentials: Credentials = field(repr=False)
    url: str | None  # VIGIL_<EXCHANGE>_URL, when set

    def missing_credentials(self, required: Mapping[str, Any]) -> list[str]:
        """The environment variables to set before a private call (empty when none)."""
        wanted = [
            ("apiKey", "API_KEY", self.credentials.api_key),
            ("secret", "SECRET", self.credentials.secret),
            ("password", "PASSWORD", self.credentials.password),
            ("uid", "UID", self.credentials.uid),
        ]
        return [
            env_name(self.exchange_id, suffix)
            for key, suffix, value in wanted
            if required.get(key) and not value
        ]

    def credentials_hint(self) -> str:
        names = [env_name(self.exchange_id, s) for s in ("API_KEY", "SECRET")]
        return f"check {' and '.join(names)} (credentials come from the environment only)"


def resolve_settings(
    exchange: str,
    *,
    sandbox: bool,
    margin: str | None,
    options: Mapping[str, Any] | None,
    config: Mapping[str, Any] | None,
    env: Mapping[str, str],
) -> Settings:
    """Validate a strategy's exchange settings and read the account's environment.

    Raises :class:`ConfigError` naming the bad value and the valid ones.
    """
    if not isinstance(exchange, str) or exchange not in ccxt.exchanges:
        close = difflib.get_close_matches(str(exchange), ccxt.exchanges, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(
            f"exchange {exchange!r} is not a ccxt exchange id (see ccxt.exchanges, e.g. "
            f"'binance', 'binanceusdm'){hint}"
        )
    if margin not in _MARGIN_MODES:
        raise ConfigError(
            f"margin {margin!r} is not a margin mode; valid: None (spot), 'isolated', 'cross'"
        )
    if not isinstance(sandbox, bool):
        raise ConfigError(f"sandbox={sandbox!r} must be True or False")
    exchange_id = MARGIN_VENUES.get(exchange, exchange) if margin else exchange
    config = dict(config or {})
    for key in config:
        if key in _CREDENTIAL_KEYS:
            raise ConfigError(
                f"config key {key!r}: credentials never come from strategy settings; set "
                f"{env_name(exchange_id, 'API_KEY')}, {env_name(exchange_id, 'SECRET')} (and "
                f"{env_name(exchange_id, 'PASSWORD')} where needed) in the environment"
            )
        if key in _OWNED_KEYS:
            raise ConfigError(f"config key {key!r} is not accepted: {_OWNED_KEYS[key]}")
    options = dict(options or {})
    for key in options:
        if key in _CREDENTIAL_KEYS:
            raise ConfigError(
                f"options key {key!r}: credentials never come from strategy settings; set "
                f"{env_name(exchange_id, 'API_KEY')} and {env_name(exchange_id, 'SECRET')}"
            )

    def read(suffix: str) -> str | None:
        value = env.get(env_name(exchange_id, suffix))
        return value.strip() if value and value.strip() else None

    return Settings(
        exchange_id=exchange_id,
        requested=exchange,
        sandbox=sandbox,
        margin=margin,
        options=options,
        config=config,
        credentials=Credentials(read("API_KEY"), read("SECRET"), read("PASSWORD"), read("UID")),
        url=read("URL"),
    )


def aim_client(client: Any, settings: Settings) -> None:
    """Point a new ccxt object where `settings` say: the testnet for a sandbox, and every URL
    at ``VIGIL_<EXCHANGE>_URL`` when set (the loopback exchange). One place for both the
    trading client and the market catalogue's."""
    if settings.sandbox:
        try:
            client.set_sandbox_mode(True)
        # ccxt raises NotSupported, or TypeError when the exchange has no "test" URLs at all.
        except (ccxt.NotSupported, TypeError) as exc:
            raise ConfigError(
                f"exchange {settings.exchange_id!r} has no sandbox (testnet) in ccxt; pass "
                "sandbox=False to trade the real account"
            ) from exc
    if settings.url is not None:
        try:
            point_ccxt_at(client, settings.url)
        except ValueError as exc:
            raise ConfigError(
                f"{env_name(settings.exchange_id, 'URL')}={settings.url!r}: {exc}"
            ) from exc
