"""Binance request authentication and error bodies, as the loopback server applies them.

Binance signs a request with HMAC-SHA256 of its *total params* (the query string followed by the
form body, exactly as sent, without the ``signature`` parameter) keyed with the API secret, and
sends the key in the ``X-MBX-APIKEY`` header. The WebSocket API signs the request's ``params``
sorted by name and joined as ``k=v&...`` (unencoded), with the key as the ``apiKey`` param.
``timestamp`` must lie within ``recvWindow`` (default 5000 ms, at most 60000 ms) before the
server's wall clock and at most 1000 ms after it.

Nothing here logs, and no error message echoes a key, a secret or a signature.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "BinanceError",
    "Credentials",
    "check_timestamp",
    "rest_signature_payload",
    "ws_signature_payload",
]

DEFAULT_RECV_WINDOW_MS: Final = 5_000
MAX_RECV_WINDOW_MS: Final = 60_000
# How far a request's timestamp may run ahead of the server clock.
MAX_AHEAD_MS: Final = 1_000
_KEY_ALPHABET: Final = string.ascii_letters + string.digits


class BinanceError(Exception):
    """A Binance error reply: ``{"code": code, "msg": msg}`` with an HTTP status.

    ``headers`` are extra response headers (e.g. ``Retry-After``).
    """

    def __init__(
        self, code: int, msg: str, status: int = 400, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> BinanceError:
    """-1102 for a missing parameter, in Binance's words."""
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _token(n: int) -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(n))


@dataclass(frozen=True, slots=True)
class Credentials:
    """One API key and its HMAC secret (Binance's format: 64 letters and digits each).

    ``repr`` hides both, so a stray log of the object leaks nothing.
    """

    api_key: str
    secret: str

    @classmethod
    def generate(cls) -> Credentials:
        return cls(_token(64), _token(64))

    def __repr__(self) -> str:
        return "Credentials(api_key=<hidden>, secret=<hidden>)"

    def sign(self, payload: str) -> str:
        """Hex HMAC-SHA256 of ``payload`` with the secret."""
        return hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()

    def check_key(self, api_key: str | None) -> None:
        """-2014 when no usable key was sent, -2015 when it is not this key (HTTP 401)."""
        if not api_key or any(c not in _KEY_ALPHABET for c in api_key):
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if not hmac.compare_digest(api_key.encode(), self.api_key.encode()):
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)

    def check_signature(self, payload: str, signature: str | None) -> None:
        """-1102 without a signature, -1022 when it does not match ``payload``."""
        if not signature:
            raise mandatory("signature")
        if not hmac.compare_digest(self.sign(payload).encode(), signature.lower().encode()):
            raise BinanceError(-1022, "Signature for this request is not valid.")


def rest_signature_payload(query: str, body: str) -> tuple[str, str | None]:
    """Binance's *totalParams* for a REST request and the signature it carries.

    The ``signature`` parameter is cut out of whichever part holds it; the rest is kept
    byte for byte, since the HMAC covers the encoded form the client sent.
    """
    signature: str | None = None
    parts = []
    for raw in (query, body):
        kept = []
        for item in raw.split("&") if raw else ():
            name, _, value = item.partition("=")
            if name == "signature":
                signature = value
            else:
                kept.append(item)
        parts.append("&".join(kept))
    return "".join(parts), signature


def ws_signature_payload(params: Mapping[str, Any]) -> str:
    """The WebSocket API signature payload: params but ``signature``, sorted, ``k=v&...``."""
    items = sorted((k, v) for k, v in params.items() if k != "signature")
    return "&".join(f"{k}={_plain(v)}" for k, v in items)


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_timestamp(params: Mapping[str, Any], wall_ms: int) -> None:
    """Binance's ``timestamp`` / ``recvWindow`` rule against the server's wall clock."""
    raw_ts = params.get("timestamp")
    if raw_ts is None or raw_ts == "":
        raise mandatory("timestamp")
    try:
        ts = int(str(raw_ts))
    except ValueError:
        raise BinanceError(
            -1100,
            "Illegal characters found in parameter 'timestamp'; legal range is '^[0-9]{1,20}$'.",
        ) from None
    raw_window = params.get("recvWindow")
    window = DEFAULT_RECV_WINDOW_MS
    if raw_window is not None and raw_window != "":
        try:
            window = int(str(raw_window))
        except ValueError:
            raise BinanceError(
                -1100,
                "Illegal characters found in parameter 'recvWindow'; legal range is "
                "'^[0-9]{1,20}$'.",
            ) from None
        if window > MAX_RECV_WINDOW_MS or window <= 0:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
    if ts - wall_ms > MAX_AHEAD_MS:
        raise BinanceError(
            -1021, "Timestamp for this request was 1000ms ahead of the server's time."
        )
    if wall_ms - ts > window:
        raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
